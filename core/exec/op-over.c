/*
 * Over (row windows): ROW_NUMBER, RANK, DENSE_RANK, LAG, LEAD,
 * FIRST_VALUE, LAST_VALUE and running aggregates, one extra column per
 * call appended to every input row.
 *
 * Rows are copied into one row store (input columns, then the ORDER BY
 * value, each call's argument and default, and each call's result) and
 * wait in a pending list of (time, arrival, row). With the ORDER BY on
 * the event time the list is released up to the watermark, sorted first
 * only when rows arrived out of order (in-order input costs an append
 * and a scan), so disorder within the allowed lateness does not change
 * the result; on bounded input everything is sorted (stably) and
 * released at finish. Rows are processed one at a time in that order.
 *
 * Each partition keeps a deque of its last processed rows (a doubly
 * linked list through the row store, so no allocation per row): as many
 * as the largest LAG offset, ROWS frame or LEAD offset needs, plus the
 * rows inside the largest RANGE interval. The previous row is always
 * there, which is what RANK and DENSE_RANK compare against. A partition
 * with LEAD holds back its last `max lead` rows until the rows they look
 * at have been processed (or the input ends, giving the default).
 *
 * Frames end at the current row (peers that come later are not
 * included), as the contract says for LAST_VALUE; a RANGE frame holds the
 * processed rows whose ORDER BY value is within the interval before the
 * current one. Running aggregates over UNBOUNDED frames keep one
 * aggregate state per partition. ROWS and RANGE frames are sliding FIFO
 * windows; the velo_agg interface has no retraction, so they use the
 * two-stacks method with velo_agg.merge: rows enter a running "back"
 * state; leaving rows pop off a "front" stack of suffix aggregates, which
 * is rebuilt from the back rows when it runs empty. Each row is merged a
 * constant number of times (amortized), whatever the frame size, for
 * every aggregate (MIN/MAX of strings, STDDEV, ...). ROWS frames of up to
 * OVER_SMALL_FRAME rows, and aggregates without merge, recompute over the
 * frame instead (O(frame) per row, but the rows sit together in the
 * deque; without merge frames are limited to OVER_MAX_RECOMPUTE rows).
 * After a restore the windows are rebuilt from the kept rows.
 * FIRST_VALUE over ROWS/RANGE and LAG/LEAD walk the deque: O(offset) per
 * row, offsets up to OVER_MAX_RECOMPUTE.
 *
 * A partition unseen for idle_ttl_us of event time, with nothing
 * buffered, is dropped when the watermark passes; its held LEAD rows are
 * emitted with their defaults first.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <velo/log.h>

#include "exec/exec-internal.h"
#include "exec/state.h"
#include "util/log.h"

#define OVER_SEED UINT64_C(0x452821e638d01377)
#define NONE UINT32_MAX
#define OVER_MAX_RECOMPUTE 4096
#define OVER_SMALL_FRAME 64 /* ROWS frames up to this recompute */
#define OVER_MAX_FRAME_ROWS (1 << 24)
#define OVER_STATE_MAGIC UINT32_C(0x4f564552) /* "OVER" */
#define OVER_STATE_VERSION 1

/* Row flags: a row is freed when none is set. */
enum {
    RF_DEQUE = 1,   /* in its partition's deque */
    RF_PINNED = 2,  /* the partition's first row (UNBOUNDED FIRST_VALUE) */
    RF_PENDING = 4, /* waiting in the pending list */
    RF_HELD = 8,    /* processed, waiting for its LEAD rows */
    RF_LIVE = 16,   /* allocated */
    RF_MARK = 32    /* restore: seen in the pending list */
};

/* Hot fields first: a lookup and an append touch the first 64 bytes. */
struct over_part {
    uint64_t hash;
    union velo_slot k0; /* the first key, compared without a trip to the
                           key store (strings point into it) */
    uint8_t k0null;
    uint8_t live;
    uint32_t head, tail; /* deque, oldest first */
    uint32_t count;      /* rows in the deque */
    uint32_t held;       /* processed rows not yet emitted (LEAD) */
    uint32_t pending;    /* rows in the pending list */
    uint64_t nrows;      /* processed rows: ROW_NUMBER */
    int64_t last_seen;   /* highest event time (idle TTL) */
    uint32_t first_row;  /* pinned first row, or NONE */
    int64_t rank, dense_rank;
};

struct over_pend {
    int64_t t; /* event time (order_is_time) */
    uint64_t seq;
    uint32_t id;
};

/* A sliding window aggregate of one partition and one call (two stacks). */
struct over_win {
    char *front; /* nfront suffix states; the top (oldest rows) last */
    uint32_t nfront, cap;
    char *back; /* the rows pushed since the front was built */
    uint32_t nback;
    uint32_t first;           /* oldest row in the window, or NONE */
    struct velo_arena *arena; /* the states' variable data */
};

struct over_impl {
    size_t nin, ncalls, npart;
    struct velo_expr **partition;
    struct velo_sort_key order;
    int order_is_time;
    struct velo_over_call *calls;
    int64_t idle_ttl_us;

    struct velo_evaluator **part_evs;
    struct velo_evaluator *order_ev;
    struct velo_evaluator **arg_evs, **def_evs;
    const struct velo_column **pc;
    int order_phys;
    struct velo_datatype *types;         /* row store columns */
    size_t c_order, c_arg, c_def, c_out; /* first column of each group */

    /* Rows. */
    struct velo_rowstore rs;
    uint32_t *prev, *next;
    uint8_t *flags;
    uint32_t *row_bytes; /* string bytes each row holds (garbage counts) */
    size_t links_cap;
    uint32_t *free_rows;
    size_t nfree, free_cap;
    uint64_t seq;

    /* Rows waiting to be processed; sorted says whether they are in
     * (t, seq) order already. */
    struct over_pend *pend;
    size_t npend, pend_cap;
    int sorted;

    /* Partitions: keys in their own row store, id = key row. */
    struct velo_rowstore keys;
    struct over_part *parts;
    size_t parts_cap;
    uint32_t *free_parts;
    size_t nfree_parts;
    size_t live_parts;
    struct velo_hindex idx;
    char *agg_states; /* per partition: every UNBOUNDED AGG call's state */
    size_t agg_stride;
    size_t *agg_off; /* per call: offset in the stride, or SIZE_MAX */
    size_t *win_idx; /* per call: its sliding window, or SIZE_MAX */
    size_t nwin;
    struct over_win *wins;            /* nwin per partition */
    struct velo_arena *agg_arena;     /* UNBOUNDED states' variable data */
    struct velo_arena *scratch_arena; /* recomputed frames, finals */
    char *scratch_state;

    /* Shape of the calls. */
    uint32_t keep_rows; /* deque length needed by LAG / ROWS / LEAD */
    int64_t max_range;  /* largest RANGE interval, -1: none */
    uint32_t max_lead;
    int need_pin;
    int need_rank; /* RANK or DENSE_RANK: compare with the previous row */
    uint8_t *phys; /* per row store column */

    int64_t wm;
    int64_t next_sweep;

    struct velo_eval_ctx ctx;
    struct velo_eval_ctx agg_eval; /* one row: aggregates' own errors */
    struct velo_arena *arena;
    uint64_t *hashes;
    const struct velo_column **ac, **dc; /* per call: evaluated columns */
    size_t cap;
    struct velo_batch *out;
    struct velo_op *op; /* back pointer for reports */
};

/* ---- Rows --------------------------------------------------------------- */

static int links_grow(struct over_impl *o)
{
    if (o->links_cap >= o->rs.cap) {
        return VELO_OK;
    }
    size_t cap = o->rs.cap;
    uint32_t *p = realloc(o->prev, cap * sizeof(*p));
    if (p == NULL) {
        return VELO_ERR;
    }
    o->prev = p;
    p = realloc(o->next, cap * sizeof(*p));
    if (p == NULL) {
        return VELO_ERR;
    }
    o->next = p;
    uint8_t *f = realloc(o->flags, cap);
    if (f == NULL) {
        return VELO_ERR;
    }
    o->flags = f;
    memset(o->flags + o->links_cap, 0, cap - o->links_cap);
    p = realloc(o->row_bytes, cap * sizeof(*p));
    if (p == NULL) {
        return VELO_ERR;
    }
    o->row_bytes = p;
    o->links_cap = cap;
    return VELO_OK;
}

static long row_alloc(struct over_impl *o)
{
    uint32_t id;
    if (o->nfree > 0) {
        /* Every column is written by the caller and the freed row's
         * nulls are all set, so no clearing is needed. */
        id = o->free_rows[--o->nfree];
    } else {
        long n = velo_rowstore_add(&o->rs);
        if (n < 0 || n >= (long)NONE || links_grow(o) != VELO_OK) {
            errno = ENOMEM;
            return -1;
        }
        id = (uint32_t)n;
    }
    o->flags[id] = RF_LIVE;
    o->row_bytes[id] = 0;
    o->prev[id] = o->next[id] = NONE;
    return id;
}

/* Give a row back when nothing refers to it any more. Its strings become
 * garbage for the next compaction; the row itself is not touched (it is
 * usually cold by now), the next owner overwrites every column. */
static int row_release(struct over_impl *o, uint32_t id, uint8_t flag)
{
    o->flags[id] &= (uint8_t)~flag;
    if (o->flags[id] != RF_LIVE) {
        return VELO_OK;
    }
    o->rs.garbage += o->row_bytes[id];
    o->rs.live_bytes -= o->row_bytes[id];
    o->row_bytes[id] = 0;
    o->flags[id] = 0;
    return velo_ids_push(&o->free_rows, &o->nfree, &o->free_cap, 256, id);
}

/* Rebuild the row arena when garbage outweighs the live strings (and
 * 1 MiB), copying only live rows (flags != 0), as freed rows are not
 * cleared. */
static int rows_compact(struct over_impl *o)
{
    return velo_rowstore_maybe_compact_live(&o->rs, o->flags);
}

/* ---- Pending rows ---------------------------------------------------------
 */

static int order_cmp(struct over_impl *o, uint32_t a, uint32_t b)
{
    if (o->order.expr != NULL) {
        size_t c = o->c_order;
        uint8_t na = velo_rowstore_nulls(&o->rs, a)[c];
        uint8_t nb = velo_rowstore_nulls(&o->rs, b)[c];
        if (na || nb) {
            if (!(na && nb)) {
                int a_first = na ? o->order.nulls_first : !o->order.nulls_first;
                return a_first ? -1 : 1;
            }
        } else {
            int r =
                velo_slot_cmp(o->order_phys, velo_rowstore_vals(&o->rs, a)[c],
                              velo_rowstore_vals(&o->rs, b)[c]);
            if (r != 0) {
                return o->order.desc ? -r : r;
            }
        }
    }
    return 0;
}

/* Processing order of two rows: ORDER BY value, then arrival. */
static int row_before(struct over_impl *o, uint32_t a, uint32_t b)
{
    if (o->order_is_time) {
        int64_t ta = velo_rowstore_vals(&o->rs, a)[o->c_order].i;
        int64_t tb = velo_rowstore_vals(&o->rs, b)[o->c_order].i;
        if (ta != tb) {
            return ta < tb;
        }
    } else {
        int r = order_cmp(o, a, b);
        if (r != 0) {
            return r < 0;
        }
    }
    return velo_rowstore_hdr(&o->rs, a)->seq <
           velo_rowstore_hdr(&o->rs, b)->seq;
}

static int pend_add(struct over_impl *o, uint32_t id, int64_t t)
{
    if (o->npend == o->pend_cap) {
        size_t cap = o->pend_cap ? o->pend_cap * 2 : 1024;
        struct over_pend *p = realloc(o->pend, cap * sizeof(*p));
        if (p == NULL) {
            errno = ENOMEM;
            return VELO_ERR;
        }
        o->pend = p;
        o->pend_cap = cap;
    }
    if (!o->order_is_time || (o->npend > 0 && t < o->pend[o->npend - 1].t)) {
        o->sorted = 0;
    }
    struct over_pend *e = &o->pend[o->npend++];
    e->t = t;
    e->seq = velo_rowstore_hdr(&o->rs, id)->seq;
    e->id = id;
    return VELO_OK;
}

static int cmp_pend_time(const void *a, const void *b)
{
    const struct over_pend *x = a, *y = b;
    if (x->t != y->t) {
        return x->t < y->t ? -1 : 1;
    }
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int cmp_pend_order(const void *a, const void *b, void *arg)
{
    struct over_impl *o = arg;
    const struct over_pend *x = a, *y = b;
    int r = order_cmp(o, x->id, y->id);
    if (r != 0) {
        return r;
    }
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void pend_sort(struct over_impl *o)
{
    if (o->sorted) {
        return;
    }
    if (o->order_is_time) {
        qsort(o->pend, o->npend, sizeof(*o->pend), cmp_pend_time);
    } else {
        qsort_r(o->pend, o->npend, sizeof(*o->pend), cmp_pend_order, o);
    }
    o->sorted = 1;
}

/* ---- Output ---------------------------------------------------------------
 */

static int flush(struct velo_op *op)
{
    struct over_impl *o = op->impl;
    if (o->out->nrows == 0) {
        return VELO_OK;
    }
    op->stats.rows_out += o->out->nrows;
    int rc = velo_op_emit(op, o->out);
    velo_batch_reset(o->out);
    return rc;
}

static int emit_row(struct velo_op *op, uint32_t id)
{
    struct over_impl *o = op->impl;
    struct velo_batch *out = o->out;
    size_t row = out->nrows;
    uint8_t *nulls = velo_rowstore_nulls(&o->rs, id);
    union velo_slot *vals = velo_rowstore_vals(&o->rs, id);
    velo_slots_put_row(out->cols, row, nulls, vals, o->nin);
    velo_slots_put_row(out->cols + o->nin, row, nulls + o->c_out,
                       vals + o->c_out, o->ncalls);
    out->origin[row] = velo_rowstore_hdr(&o->rs, id)->origin;
    out->nrows++;
    if (out->nrows == out->cap) {
        return flush(op);
    }
    return VELO_OK;
}

/* Store value (null, v) of type t as call k's result of row id. */
static int set_out(struct over_impl *o, uint32_t id, size_t k, int isnull,
                   union velo_slot v)
{
    size_t c = o->c_out + k;
    uint8_t *nulls = velo_rowstore_nulls(&o->rs, id);
    union velo_slot *vals = velo_rowstore_vals(&o->rs, id);
    int str = velo_phys(o->types[c].id) == VELO_PHYS_STR;
    if (str && !nulls[c]) {
        o->rs.garbage += vals[c].s.len;
        o->rs.live_bytes -= vals[c].s.len;
        o->row_bytes[id] -= (uint32_t)vals[c].s.len;
    }
    if (isnull) {
        nulls[c] = 1;
        memset(&vals[c], 0, sizeof(vals[c]));
        return VELO_OK;
    }
    if (str) {
        if (v.s.len > 0) {
            char *p = velo_arena_strdup(o->rs.arena, v.s.ptr, v.s.len);
            if (p == NULL) {
                errno = ENOMEM;
                return VELO_ERR;
            }
            v.s.ptr = p;
        } else {
            v.s.ptr = "";
        }
        o->rs.live_bytes += v.s.len;
        o->row_bytes[id] += (uint32_t)v.s.len;
    }
    nulls[c] = 0;
    vals[c] = v;
    return VELO_OK;
}

/* Call k's result is column c (arg or default) of row src. */
static int set_out_from(struct over_impl *o, uint32_t id, size_t k,
                        uint32_t src, size_t c)
{
    int isnull = velo_rowstore_nulls(&o->rs, src)[c];
    union velo_slot v = velo_rowstore_vals(&o->rs, src)[c];
    if (isnull || velo_phys(o->types[c].id) != VELO_PHYS_STR) {
        return set_out(o, id, k, isnull, v);
    }
    /* The source may be this very row's slot: copy through a buffer in
     * the arena is avoided by reusing the row store's copy directly. */
    size_t oc = o->c_out + k;
    uint8_t *nulls = velo_rowstore_nulls(&o->rs, id);
    union velo_slot *vals = velo_rowstore_vals(&o->rs, id);
    if (!nulls[oc]) {
        o->rs.garbage += vals[oc].s.len;
        o->rs.live_bytes -= vals[oc].s.len;
        o->row_bytes[id] -= (uint32_t)vals[oc].s.len;
    }
    /* The source's bytes live in the same arena for as long as the
     * source row does; copying keeps this row independent of it. */
    char *p = v.s.len > 0 ? velo_arena_strdup(o->rs.arena, v.s.ptr, v.s.len)
                          : (char *)"";
    if (p == NULL) {
        errno = ENOMEM;
        return VELO_ERR;
    }
    v.s.ptr = p;
    o->rs.live_bytes += v.s.len;
    o->row_bytes[id] += (uint32_t)v.s.len;
    nulls[oc] = 0;
    vals[oc] = v;
    return VELO_OK;
}

/* A one-row column over a stored value, for aggregate updates. */
struct slot_col {
    struct velo_column col;
    uint8_t null;
    uint8_t u8;
    union velo_slot v;
};

static void slot_col_load(struct slot_col *s, struct velo_datatype t,
                          int isnull, union velo_slot v)
{
    s->col.type = t;
    s->null = (uint8_t)isnull;
    s->col.nulls = &s->null;
    s->col.has_nulls = (uint8_t)isnull;
    s->v = v;
    s->u8 = (uint8_t)v.i;
    switch (velo_phys(t.id)) {
    case VELO_PHYS_U8:
        s->col.v.u8 = &s->u8;
        break;
    case VELO_PHYS_F64:
        s->col.v.f64 = &s->v.d;
        break;
    case VELO_PHYS_STR:
        s->col.v.str = &s->v.s;
        break;
    default:
        s->col.v.i64 = &s->v.i;
        break;
    }
}

static void agg_add_row(struct over_impl *o, const struct velo_agg *agg,
                        char *state, size_t k, uint32_t id,
                        struct velo_arena *arena)
{
    struct slot_col sc;
    const struct velo_column *args[1];
    size_t nargs = 0;
    if (o->calls[k].arg != NULL) {
        size_t c = o->c_arg + k;
        slot_col_load(&sc, o->types[c], velo_rowstore_nulls(&o->rs, id)[c],
                      velo_rowstore_vals(&o->rs, id)[c]);
        args[nargs++] = &sc.col;
    }
    struct velo_agg_ctx actx = {arena, &o->agg_eval};
    uint32_t gid = 0;
    uint16_t row = 0;
    agg->update(&actx, state, agg->state_size, &gid, nargs ? args : NULL, &row,
                1);
}

/* Write the aggregate's result into call k's column of row id. */
static int agg_final(struct velo_op *op, const struct velo_agg *agg,
                     const char *state, size_t k, uint32_t id,
                     struct velo_arena *arena)
{
    struct over_impl *o = op->impl;
    struct slot_col sc;
    union velo_slot zero;
    memset(&zero, 0, sizeof(zero));
    slot_col_load(&sc, o->calls[k].type, 0, zero);
    struct velo_agg_ctx actx = {arena, &o->agg_eval};
    agg->final(&actx, state, &sc.col, 0, o->scratch_arena);
    int failed = o->agg_eval.n_errors > 0;
    if (failed) {
        op->stats.rows_failed++;
        if (op->env->on_row_error != NULL) {
            op->env->on_row_error(
                op->env->cb_arg, op, &velo_rowstore_hdr(&o->rs, id)->origin,
                o->agg_eval.row_error[0], velo_eval_row_msg(&o->agg_eval, 0));
        }
        velo_eval_ctx_clear(&o->agg_eval, 1);
    }
    if (velo_phys(sc.col.type.id) == VELO_PHYS_U8) {
        sc.v.i = sc.u8;
    }
    return set_out(o, id, k, failed || sc.null, sc.v);
}

/* ---- Sliding window aggregates (two stacks) ---------------------------- */

static struct over_win *win_of(struct over_impl *o, uint32_t pid, size_t k)
{
    return &o->wins[(size_t)pid * o->nwin + o->win_idx[k]];
}

static void win_free(struct over_impl *o, struct over_win *w, size_t k)
{
    const struct velo_agg *agg = o->calls[k].agg;
    size_t sz = agg->state_size;
    if (agg->destroy != NULL) {
        for (uint32_t i = 0; i < w->nfront; i++) {
            agg->destroy(w->front + (size_t)i * sz);
        }
        if (w->back != NULL) {
            agg->destroy(w->back);
        }
    }
    free(w->front);
    free(w->back);
    velo_arena_destroy(w->arena);
    memset(w, 0, sizeof(*w));
    w->first = NONE;
}

/* Add row id (the newest) to the window. */
static int win_push(struct over_impl *o, struct over_win *w, size_t k,
                    uint32_t id)
{
    const struct velo_agg *agg = o->calls[k].agg;
    if (w->back == NULL) {
        w->back = malloc(agg->state_size > 0 ? agg->state_size : 1);
        w->arena = velo_arena_create(1024);
        if (w->back == NULL || w->arena == NULL) {
            errno = ENOMEM;
            return VELO_ERR;
        }
        agg->init(w->back);
    }
    agg_add_row(o, agg, w->back, k, id, w->arena);
    w->nback++;
    if (w->first == NONE) {
        w->first = id;
    }
    return VELO_OK;
}

/* The front is empty: rebuild it from the back rows (the newest nback
 * rows ending at `newest`), as suffix aggregates, and empty the back. */
static int win_flip(struct over_impl *o, struct over_win *w, size_t k,
                    uint32_t newest)
{
    const struct velo_agg *agg = o->calls[k].agg;
    size_t sz = agg->state_size;
    uint32_t n = w->nback;
    if (n > w->cap) {
        uint32_t cap = w->cap ? w->cap : 16;
        while (cap < n) {
            cap *= 2;
        }
        char *f = realloc(w->front, (size_t)cap * (sz > 0 ? sz : 1));
        if (f == NULL) {
            errno = ENOMEM;
            return VELO_ERR;
        }
        w->front = f;
        w->cap = cap;
    }
    /* Nothing refers to the arena's data any more once the back goes. */
    if (agg->destroy != NULL) {
        agg->destroy(w->back);
    }
    velo_arena_reset(w->arena);
    struct velo_agg_ctx actx = {w->arena, &o->agg_eval};
    uint32_t r = newest;
    for (uint32_t j = 0; j < n; j++, r = o->prev[r]) {
        char *st = w->front + (size_t)j * sz;
        agg->init(st);
        agg_add_row(o, agg, st, k, r, w->arena);
        if (j > 0) {
            agg->merge(&actx, st, st - sz);
        }
    }
    w->nfront = n;
    agg->init(w->back);
    w->nback = 0;
    return VELO_OK;
}

static int win_pop(struct over_impl *o, struct over_win *w, size_t k,
                   uint32_t newest)
{
    const struct velo_agg *agg = o->calls[k].agg;
    if (w->nfront == 0 && win_flip(o, w, k, newest) != VELO_OK) {
        return VELO_ERR;
    }
    w->nfront--;
    if (agg->destroy != NULL) {
        agg->destroy(w->front + (size_t)w->nfront * agg->state_size);
    }
    w->first = o->next[w->first];
    return VELO_OK;
}

/* Row id was processed: slide call k's window to end at it and store the
 * aggregate over it. */
static int win_step(struct velo_op *op, uint32_t pid, size_t k, uint32_t id)
{
    struct over_impl *o = op->impl;
    const struct velo_over_call *call = &o->calls[k];
    const struct velo_agg *agg = call->agg;
    struct over_win *w = win_of(o, pid, k);
    if (win_push(o, w, k, id) != VELO_OK) {
        return VELO_ERR;
    }
    if (call->frame == VELO_FRAME_ROWS) {
        while (w->nfront + w->nback > (uint64_t)call->frame_rows + 1) {
            if (win_pop(o, w, k, id) != VELO_OK) {
                return VELO_ERR;
            }
        }
    } else {
        int64_t t = velo_rowstore_vals(&o->rs, id)[o->c_order].i;
        while (w->first != id) {
            int64_t ft = velo_rowstore_vals(&o->rs, w->first)[o->c_order].i;
            int64_t dist = o->order.desc ? ft - t : t - ft;
            if (dist <= call->frame_range_us) {
                break;
            }
            if (win_pop(o, w, k, id) != VELO_OK) {
                return VELO_ERR;
            }
        }
    }
    const char *top = w->nfront > 0
                          ? w->front + (size_t)(w->nfront - 1) * agg->state_size
                          : NULL;
    if (top == NULL) {
        return agg_final(op, agg, w->back, k, id, o->scratch_arena);
    }
    if (w->nback == 0) {
        return agg_final(op, agg, top, k, id, o->scratch_arena);
    }
    velo_arena_reset(o->scratch_arena);
    struct velo_agg_ctx actx = {o->scratch_arena, &o->agg_eval};
    agg->init(o->scratch_state);
    agg->merge(&actx, o->scratch_state, top);
    agg->merge(&actx, o->scratch_state, w->back);
    int rc = agg_final(op, agg, o->scratch_state, k, id, o->scratch_arena);
    if (agg->destroy != NULL) {
        agg->destroy(o->scratch_state);
    }
    return rc;
}

/* ---- Processing one row ---------------------------------------------------
 */

/* The row `back` places before id in its deque, or NONE. */
static uint32_t walk_back(struct over_impl *o, uint32_t id, int64_t back)
{
    while (back-- > 0 && id != NONE) {
        id = o->prev[id];
    }
    return id;
}

/* First row of a RANGE frame ending at id: the oldest deque row whose
 * order value is >= id's - range. */
static uint32_t range_start(struct over_impl *o, uint32_t id, int64_t range)
{
    size_t c = o->c_order;
    int64_t t = velo_rowstore_vals(&o->rs, id)[c].i;
    uint32_t first = id;
    for (uint32_t p = o->prev[id]; p != NONE; p = o->prev[p]) {
        int64_t pt = velo_rowstore_vals(&o->rs, p)[c].i;
        int64_t dist = o->order.desc ? pt - t : t - pt;
        if (dist > range) {
            break;
        }
        first = p;
    }
    return first;
}

static uint32_t frame_start(struct over_impl *o, struct over_part *p,
                            const struct velo_over_call *call, uint32_t id)
{
    switch (call->frame) {
    case VELO_FRAME_ROWS: {
        uint32_t s = id;
        for (int64_t i = 0; i < call->frame_rows && o->prev[s] != NONE; i++) {
            s = o->prev[s];
        }
        return s;
    }
    case VELO_FRAME_RANGE:
        return range_start(o, id, call->frame_range_us);
    default:
        return p->first_row != NONE ? p->first_row : p->head;
    }
}

static int fill_leads(struct over_impl *o, uint32_t id)
{
    for (size_t k = 0; k < o->ncalls; k++) {
        const struct velo_over_call *call = &o->calls[k];
        if (call->fn != VELO_WF_LEAD) {
            continue;
        }
        uint32_t t = id;
        for (int64_t i = 0; i < call->offset && t != NONE; i++) {
            t = o->next[t];
        }
        int rc = t != NONE ? set_out_from(o, id, k, t, o->c_arg + k)
                           : set_out_from(o, id, k, id, o->c_def + k);
        if (rc != VELO_OK) {
            return rc;
        }
    }
    return VELO_OK;
}

static int drop_front(struct over_impl *o, struct over_part *p)
{
    uint32_t h = p->head;
    p->head = o->next[h];
    if (p->head != NONE) {
        o->prev[p->head] = NONE;
    } else {
        p->tail = NONE;
    }
    o->next[h] = NONE;
    p->count--;
    return row_release(o, h, RF_DEQUE);
}

static int process_row(struct velo_op *op, uint32_t id)
{
    struct over_impl *o = op->impl;
    uint32_t pid = (uint32_t)velo_rowstore_hdr(&o->rs, id)->hash;
    struct over_part *p = &o->parts[pid];
    o->flags[id] &= (uint8_t)~RF_PENDING;
    p->pending--;

    /* Peers share a rank: compare with the previous row (without an
     * ORDER BY every row is a peer). */
    if (o->need_rank && (p->tail == NONE || (o->order.expr != NULL &&
                                             order_cmp(o, p->tail, id) != 0))) {
        p->rank = (int64_t)p->nrows + 1;
        p->dense_rank++;
    }
    p->nrows++;
    o->prev[id] = p->tail;
    o->next[id] = NONE;
    if (p->tail != NONE) {
        o->next[p->tail] = id;
    } else {
        p->head = id;
    }
    p->tail = id;
    p->count++;
    o->flags[id] |= RF_DEQUE;
    if (o->need_pin && p->first_row == NONE) {
        p->first_row = id;
        o->flags[id] |= RF_PINNED;
    }

    union velo_slot v;
    for (size_t k = 0; k < o->ncalls; k++) {
        const struct velo_over_call *call = &o->calls[k];
        int rc = VELO_OK;
        switch (call->fn) {
        case VELO_WF_ROW_NUMBER:
            v.i = (int64_t)p->nrows;
            rc = set_out(o, id, k, 0, v);
            break;
        case VELO_WF_RANK:
            v.i = p->rank;
            rc = set_out(o, id, k, 0, v);
            break;
        case VELO_WF_DENSE_RANK:
            v.i = p->dense_rank;
            rc = set_out(o, id, k, 0, v);
            break;
        case VELO_WF_LAG: {
            uint32_t src = walk_back(o, id, call->offset);
            rc = src != NONE ? set_out_from(o, id, k, src, o->c_arg + k)
                             : set_out_from(o, id, k, id, o->c_def + k);
            break;
        }
        case VELO_WF_LEAD:
            break; /* filled when the lead rows have come */
        case VELO_WF_FIRST_VALUE:
            rc = set_out_from(o, id, k, frame_start(o, p, call, id),
                              o->c_arg + k);
            break;
        case VELO_WF_LAST_VALUE:
            rc = set_out_from(o, id, k, id, o->c_arg + k);
            break;
        case VELO_WF_AGG: {
            const struct velo_agg *agg = call->agg;
            if (call->frame == VELO_FRAME_UNBOUNDED) {
                char *st = o->agg_states + pid * o->agg_stride + o->agg_off[k];
                agg_add_row(o, agg, st, k, id, o->agg_arena);
                rc = agg_final(op, agg, st, k, id, o->agg_arena);
                break;
            }
            if (o->win_idx[k] != SIZE_MAX) {
                rc = win_step(op, pid, k, id);
                break;
            }
            velo_arena_reset(o->scratch_arena);
            agg->init(o->scratch_state);
            for (uint32_t r = frame_start(o, p, call, id); r != NONE;
                 r = o->next[r]) {
                agg_add_row(o, agg, o->scratch_state, k, r, o->scratch_arena);
                if (r == id) {
                    break;
                }
            }
            rc = agg_final(op, agg, o->scratch_state, k, id, o->scratch_arena);
            if (agg->destroy != NULL) {
                agg->destroy(o->scratch_state);
            }
            break;
        }
        default:
            break;
        }
        if (rc != VELO_OK) {
            return rc;
        }
    }

    /* Emit: at once, or the row max_lead back now that its leads exist. */
    if (o->max_lead == 0) {
        if (emit_row(op, id) != VELO_OK) {
            return VELO_ERR;
        }
    } else {
        o->flags[id] |= RF_HELD;
        p->held++;
        if (p->held > o->max_lead) {
            uint32_t r = walk_back(o, id, o->max_lead);
            if (fill_leads(o, r) != VELO_OK || emit_row(op, r) != VELO_OK) {
                return VELO_ERR;
            }
            o->flags[r] &= (uint8_t)~RF_HELD;
            p->held--;
        }
    }

    /* Forget rows no call can reach any more. */
    while (p->count > o->keep_rows && !(o->flags[p->head] & RF_HELD)) {
        if (o->max_range >= 0) {
            int64_t t = velo_rowstore_vals(&o->rs, id)[o->c_order].i;
            int64_t h = velo_rowstore_vals(&o->rs, p->head)[o->c_order].i;
            int64_t dist = o->order.desc ? h - t : t - h;
            if (dist <= o->max_range) {
                break;
            }
        }
        if (drop_front(o, p) != VELO_OK) {
            return VELO_ERR;
        }
    }
    return VELO_OK;
}

/* Emit a partition's held rows with whatever leads exist (end of input,
 * idle partition). */
static int release_held(struct velo_op *op, struct over_part *p)
{
    struct over_impl *o = op->impl;
    if (p->held == 0) {
        return VELO_OK;
    }
    uint32_t r = walk_back(o, p->tail, p->held - 1);
    for (; r != NONE; r = o->next[r]) {
        if (fill_leads(o, r) != VELO_OK || emit_row(op, r) != VELO_OK) {
            return VELO_ERR;
        }
        o->flags[r] &= (uint8_t)~RF_HELD;
    }
    p->held = 0;
    return VELO_OK;
}

/* ---- Partitions
 * -------------------------------------------------------------- */

static uint64_t part_hash(void *arg, uint32_t id)
{
    return ((struct over_impl *)arg)->parts[id].hash;
}

static int parts_grow(struct over_impl *o, size_t need)
{
    if (need <= o->parts_cap) {
        return VELO_OK;
    }
    size_t cap = o->parts_cap ? o->parts_cap * 2 : 64;
    while (cap < need) {
        cap *= 2;
    }
    struct over_part *p = realloc(o->parts, cap * sizeof(*p));
    if (p == NULL) {
        return VELO_ERR;
    }
    o->parts = p;
    uint32_t *f = realloc(o->free_parts, cap * sizeof(*f));
    if (f == NULL) {
        return VELO_ERR;
    }
    o->free_parts = f;
    if (o->agg_stride > 0) {
        char *s = realloc(o->agg_states, cap * o->agg_stride);
        if (s == NULL) {
            return VELO_ERR;
        }
        o->agg_states = s;
    }
    if (o->nwin > 0) {
        struct over_win *w = realloc(o->wins, cap * o->nwin * sizeof(*w));
        if (w == NULL) {
            return VELO_ERR;
        }
        o->wins = w;
    }
    o->parts_cap = cap;
    return VELO_OK;
}

static void part_init_states(struct over_impl *o, uint32_t pid)
{
    for (size_t w = 0; w < o->nwin; w++) {
        memset(&o->wins[(size_t)pid * o->nwin + w], 0, sizeof(*o->wins));
        o->wins[(size_t)pid * o->nwin + w].first = NONE;
    }
    for (size_t k = 0; k < o->ncalls; k++) {
        if (o->agg_off[k] != SIZE_MAX) {
            o->calls[k].agg->init(o->agg_states + pid * o->agg_stride +
                                  o->agg_off[k]);
        }
    }
}

static void part_destroy_states(struct over_impl *o, uint32_t pid)
{
    for (size_t k = 0; k < o->ncalls; k++) {
        if (o->win_idx[k] != SIZE_MAX) {
            win_free(o, win_of(o, pid, k), k);
        }
    }
    for (size_t k = 0; k < o->ncalls; k++) {
        if (o->agg_off[k] != SIZE_MAX && o->calls[k].agg->destroy != NULL) {
            o->calls[k].agg->destroy(o->agg_states + pid * o->agg_stride +
                                     o->agg_off[k]);
        }
    }
}

/* Copy the first key into the partition (after the key store moved). */
static void part_load_k0(struct over_impl *o, uint32_t id)
{
    struct over_part *p = &o->parts[id];
    if (o->npart > 0) {
        p->k0null = velo_rowstore_nulls(&o->keys, id)[0];
        p->k0 = velo_rowstore_vals(&o->keys, id)[0];
    }
}

/* Is partition id the one of batch row r (hash h)? */
static inline int part_is(struct over_impl *o, uint32_t id, uint64_t h,
                          size_t r)
{
    const struct over_part *p = &o->parts[id];
    if (p->hash != h) {
        return 0;
    }
    if (o->npart == 0) {
        return 1;
    }
    const struct velo_column *c = o->pc[0];
    int isnull = c->has_nulls && c->nulls[r];
    if (isnull != p->k0null ||
        (!isnull &&
         !velo_slot_key_eq(velo_phys(c->type.id), velo_col_get(c, r), p->k0))) {
        return 0;
    }
    return o->npart == 1 || velo_keys_eq(o->pc + 1, o->npart - 1, r,
                                         velo_rowstore_nulls(&o->keys, id) + 1,
                                         velo_rowstore_vals(&o->keys, id) + 1);
}

/* Partition of batch row r (hash h); created when new. */
static long part_find(struct over_impl *o, uint64_t h, size_t r)
{
    if (velo_hindex_reserve(&o->idx, part_hash, o) != VELO_OK) {
        return -1;
    }
    size_t pos = h & o->idx.mask;
    uint64_t tag = h & UINT64_C(0xffffffff00000000);
    for (;;) {
        uint64_t s = o->idx.slots[pos];
        if (s == 0) {
            break;
        }
        uint32_t id = (uint32_t)(s & 0xffffffffu) - 1;
        if ((s & UINT64_C(0xffffffff00000000)) == tag && part_is(o, id, h, r)) {
            return id;
        }
        pos = (pos + 1) & o->idx.mask;
    }
    uint32_t id;
    if (o->nfree_parts > 0) {
        id = o->free_parts[--o->nfree_parts];
    } else {
        long n = velo_rowstore_add(&o->keys);
        if (n < 0 || parts_grow(o, (size_t)n + 1) != VELO_OK) {
            return -1;
        }
        id = (uint32_t)n;
    }
    for (size_t k = 0; k < o->npart; k++) {
        if (velo_rowstore_set(&o->keys, id, k, o->pc[k], r) != VELO_OK) {
            return -1;
        }
    }
    struct over_part *p = &o->parts[id];
    memset(p, 0, sizeof(*p));
    p->hash = h;
    p->head = p->tail = p->first_row = NONE;
    p->last_seen = INT64_MIN;
    p->live = 1;
    part_load_k0(o, id);
    part_init_states(o, id);
    velo_hindex_put(&o->idx, pos, h, id);
    o->live_parts++;
    return id;
}

static int index_rebuild(struct over_impl *o)
{
    velo_hindex_clear(&o->idx);
    for (uint32_t id = 0; id < o->keys.n; id++) {
        if (!o->parts[id].live) {
            continue;
        }
        if (velo_hindex_reserve(&o->idx, part_hash, o) != VELO_OK) {
            return VELO_ERR;
        }
        velo_hindex_insert(&o->idx, o->parts[id].hash, id);
    }
    return VELO_OK;
}

static int part_drop(struct velo_op *op, uint32_t pid)
{
    struct over_impl *o = op->impl;
    struct over_part *p = &o->parts[pid];
    if (release_held(op, p) != VELO_OK) {
        return VELO_ERR;
    }
    while (p->count > 0) {
        if (drop_front(o, p) != VELO_OK) {
            return VELO_ERR;
        }
    }
    if (p->first_row != NONE &&
        row_release(o, p->first_row, RF_PINNED) != VELO_OK) {
        return VELO_ERR;
    }
    part_destroy_states(o, pid);
    uint8_t *nulls = velo_rowstore_nulls(&o->keys, pid);
    union velo_slot *vals = velo_rowstore_vals(&o->keys, pid);
    for (size_t k = 0; k < o->npart; k++) {
        if (velo_phys(o->keys.types[k].id) == VELO_PHYS_STR && !nulls[k]) {
            o->keys.garbage += vals[k].s.len;
            o->keys.live_bytes -= vals[k].s.len;
        }
        nulls[k] = 1;
    }
    p->live = 0;
    o->free_parts[o->nfree_parts++] = pid;
    o->live_parts--;
    return VELO_OK;
}

static int sweep_idle(struct velo_op *op)
{
    struct over_impl *o = op->impl;
    if (o->idle_ttl_us <= 0 || o->wm < o->next_sweep) {
        return VELO_OK;
    }
    /* Sweep every eighth of the TTL, not every watermark: the scan is
     * over all partitions. */
    int64_t step = o->idle_ttl_us / 8 > 0 ? o->idle_ttl_us / 8 : 1;
    o->next_sweep = o->wm > INT64_MAX - step ? INT64_MAX : o->wm + step;
    size_t dropped = 0;
    for (uint32_t id = 0; id < o->keys.n; id++) {
        struct over_part *p = &o->parts[id];
        if (p->live && p->pending == 0 && p->last_seen != INT64_MIN &&
            p->last_seen <= o->wm - o->idle_ttl_us) {
            if (part_drop(op, id) != VELO_OK) {
                return VELO_ERR;
            }
            dropped++;
        }
    }
    if (dropped > 0) {
        if (flush(op) != VELO_OK || index_rebuild(o) != VELO_OK ||
            velo_rowstore_maybe_compact(&o->keys) != VELO_OK) {
            return VELO_ERR;
        }
        for (uint32_t id = 0; id < o->keys.n; id++) {
            if (o->parts[id].live) {
                part_load_k0(o, id);
            }
        }
    }
    return VELO_OK;
}

static void update_stats(struct velo_op *op)
{
    struct over_impl *o = op->impl;
    op->stats.state_rows = o->rs.n - o->nfree;
    op->stats.state_bytes =
        velo_rowstore_bytes(&o->rs) + velo_rowstore_bytes(&o->keys) +
        velo_hindex_bytes(&o->idx) + o->links_cap * 9 +
        o->pend_cap * sizeof(struct over_pend) +
        o->parts_cap * (sizeof(struct over_part) + o->agg_stride) +
        velo_arena_bytes(o->agg_arena);
}

/* ---- Operator callbacks ----------------------------------------------------
 */

static void report_row(struct velo_op *op, const struct velo_batch *in,
                       size_t r, const char *msg)
{
    static const struct velo_row_origin unknown = {-1, 0, 0};
    op->stats.rows_failed++;
    if (op->env->on_row_error != NULL) {
        op->env->on_row_error(op->env->cb_arg, op,
                              in->origin != NULL ? &in->origin[r] : &unknown,
                              VELO_EVAL_BAD_ARG, msg);
    }
}

/* Store row r of col as column c of a row being filled (its previous
 * contents, if any, were accounted for when it was freed). */
static inline int put_val(struct over_impl *o, uint32_t id, uint8_t *nulls,
                          union velo_slot *vals, size_t c,
                          const struct velo_column *col, size_t r)
{
    if (col->has_nulls && col->nulls[r]) {
        nulls[c] = 1;
        vals[c].i = 0;
        return VELO_OK;
    }
    nulls[c] = 0;
    switch (o->phys[c]) {
    case VELO_PHYS_I64:
        vals[c].i = col->v.i64[r];
        break;
    case VELO_PHYS_F64:
        vals[c].d = col->v.f64[r];
        break;
    case VELO_PHYS_U8:
        vals[c].i = col->v.u8[r];
        break;
    case VELO_PHYS_STR: {
        struct velo_str v = col->v.str[r];
        if (v.len > 0) {
            char *p = velo_arena_strdup(o->rs.arena, v.ptr, v.len);
            if (p == NULL) {
                nulls[c] = 1;
                errno = ENOMEM;
                return VELO_ERR;
            }
            v.ptr = p;
        } else {
            v.ptr = "";
        }
        o->rs.live_bytes += v.len;
        o->row_bytes[id] += (uint32_t)v.len;
        vals[c].s = v;
        break;
    }
    default:
        vals[c].i = 0;
        break;
    }
    return VELO_OK;
}

static int over_push(struct velo_op *op, struct velo_batch *in)
{
    struct over_impl *o = op->impl;
    size_t n = velo_batch_live(in);
    op->stats.rows_in += n;
    op->stats.batches_in++;
    velo_arena_reset(o->arena);
    o->ctx.arena = o->arena;
    o->ctx.now_us = velo_op_now(op->env);
    for (size_t k = 0; k < o->npart; k++) {
        o->pc[k] = velo_evaluate(o->part_evs[k], &o->ctx, in);
    }
    const struct velo_column *oc =
        o->order_ev != NULL ? velo_evaluate(o->order_ev, &o->ctx, in) : NULL;
    const struct velo_column **ac = o->ac, **dc = o->dc;
    for (size_t k = 0; k < o->ncalls; k++) {
        ac[k] = o->arg_evs[k] != NULL
                    ? velo_evaluate(o->arg_evs[k], &o->ctx, in)
                    : NULL;
        dc[k] = o->def_evs[k] != NULL
                    ? velo_evaluate(o->def_evs[k], &o->ctx, in)
                    : NULL;
    }
    if (o->ctx.n_errors > 0) {
        velo_op_report_errors(op, &o->ctx, in, in->sel, n);
    }
    velo_keys_hash(o->pc, o->npart, in->sel, n, o->hashes, OVER_SEED);
    static const struct velo_row_origin unknown = {-1, 0, 0};
    for (size_t i = 0; i < n; i++) {
        size_t r = in->sel != NULL ? in->sel[i] : i;
        /* With many partitions the index slot and the partition are
         * cache misses: start them a few rows ahead so they overlap. */
        if (i + 16 < n) {
            __builtin_prefetch(&o->idx.slots[o->hashes[i + 16] & o->idx.mask]);
        }
        if (i + 8 < n) {
            uint64_t sl = o->idx.slots[o->hashes[i + 8] & o->idx.mask];
            if (sl != 0) {
                __builtin_prefetch(&o->parts[(uint32_t)sl - 1u]);
            }
        }
        if (o->ctx.n_errors > 0 && o->ctx.row_error[r]) {
            continue;
        }
        int64_t t = 0;
        if (o->order_is_time) {
            if (velo_col_is_null(oc, r)) {
                report_row(op, in, r,
                           "the ORDER BY event time is NULL: the row "
                           "cannot be placed in its window; give every row "
                           "a time");
                continue;
            }
            t = oc->v.i64[r];
            if (t < o->wm) {
                op->stats.rows_late++;
                if (op->env->on_late_row != NULL) {
                    op->env->on_late_row(op->env->cb_arg, op,
                                         in->origin != NULL ? &in->origin[r]
                                                            : &unknown,
                                         t, o->wm);
                }
                continue;
            }
        }
        long pid = part_find(o, o->hashes[i], r);
        long id = pid >= 0 ? row_alloc(o) : -1;
        if (id < 0) {
            return VELO_ERR;
        }
        struct velo_rowstore *rs = &o->rs;
        uint8_t *nulls = velo_rowstore_nulls(rs, (size_t)id);
        union velo_slot *vals = velo_rowstore_vals(rs, (size_t)id);
        int rc = VELO_OK;
        for (size_t c = 0; c < o->nin; c++) {
            rc |= put_val(o, (uint32_t)id, nulls, vals, c, &in->cols[c], r);
        }
        if (oc != NULL) {
            rc |= put_val(o, (uint32_t)id, nulls, vals, o->c_order, oc, r);
        } else {
            nulls[o->c_order] = 1;
        }
        for (size_t k = 0; k < o->ncalls; k++) {
            if (ac[k] != NULL) {
                rc |= put_val(o, (uint32_t)id, nulls, vals, o->c_arg + k, ac[k],
                              r);
            } else {
                nulls[o->c_arg + k] = 1;
            }
            if (dc[k] != NULL) {
                rc |= put_val(o, (uint32_t)id, nulls, vals, o->c_def + k, dc[k],
                              r);
            } else {
                nulls[o->c_def + k] = 1;
            }
            nulls[o->c_out + k] = 1;
        }
        if (rc != VELO_OK) {
            return VELO_ERR;
        }
        struct velo_rowhdr *h = velo_rowstore_hdr(rs, (size_t)id);
        h->seq = o->seq++;
        h->hash = (uint64_t)pid;
        if (in->origin != NULL) {
            h->origin = in->origin[r];
        } else {
            h->origin = unknown;
        }
        struct over_part *p = &o->parts[pid];
        p->pending++;
        if (o->order_is_time && t > p->last_seen) {
            p->last_seen = t;
        }
        o->flags[id] |= RF_PENDING;
        if (pend_add(o, (uint32_t)id, t) != VELO_OK) {
            return VELO_ERR;
        }
    }
    velo_eval_ctx_clear(&o->ctx, o->cap);
    update_stats(op);
    return VELO_OK;
}

/* Process the pending rows whose time is before `upto` (all of them
 * with `all`), in processing order. */
static int release(struct velo_op *op, int64_t upto, int all)
{
    struct over_impl *o = op->impl;
    pend_sort(o);
    size_t k = 0;
    if (all) {
        k = o->npend;
    } else {
        while (k < o->npend && o->pend[k].t < upto) {
            k++;
        }
    }
    for (size_t i = 0; i < k; i++) {
        if (i + 8 < k) {
            uint64_t pid = velo_rowstore_hdr(&o->rs, o->pend[i + 8].id)->hash;
            __builtin_prefetch(&o->parts[pid]);
        }
        if (process_row(op, o->pend[i].id) != VELO_OK) {
            return VELO_ERR;
        }
    }
    memmove(o->pend, o->pend + k, (o->npend - k) * sizeof(*o->pend));
    o->npend -= k;
    return VELO_OK;
}

static int over_watermark(struct velo_op *op, int64_t wm)
{
    struct over_impl *o = op->impl;
    if (!o->order_is_time || wm <= o->wm) {
        return VELO_OK;
    }
    o->wm = wm;
    if (release(op, wm, 0) != VELO_OK || sweep_idle(op) != VELO_OK ||
        flush(op) != VELO_OK) {
        return VELO_ERR;
    }
    if (rows_compact(o) != VELO_OK) {
        return VELO_ERR;
    }
    update_stats(op);
    return VELO_OK;
}

/* Processing order (ORDER BY value, then arrival), so what is emitted
 * at the end does not depend on how the input was disordered. */
static int cmp_processed(const void *a, const void *b, void *arg)
{
    struct over_impl *o = arg;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return row_before(o, x, y) ? -1 : row_before(o, y, x) ? 1 : 0;
}

static int over_finish(struct velo_op *op)
{
    struct over_impl *o = op->impl;
    if (release(op, 0, 1) != VELO_OK) {
        return VELO_ERR;
    }
    if (o->max_lead > 0) {
        /* Held rows of every partition, in the order they were
         * processed. */
        size_t n = 0;
        for (uint32_t id = 0; id < o->rs.n; id++) {
            n += (o->flags[id] & RF_HELD) != 0;
        }
        uint32_t *ids = malloc((n ? n : 1) * sizeof(*ids));
        if (ids == NULL) {
            return VELO_ERR;
        }
        n = 0;
        for (uint32_t id = 0; id < o->rs.n; id++) {
            if (o->flags[id] & RF_HELD) {
                ids[n++] = id;
            }
        }
        qsort_r(ids, n, sizeof(*ids), cmp_processed, o);
        int rc = VELO_OK;
        for (size_t i = 0; i < n && rc == VELO_OK; i++) {
            rc = fill_leads(o, ids[i]);
            if (rc == VELO_OK) {
                rc = emit_row(op, ids[i]);
            }
            o->flags[ids[i]] &= (uint8_t)~RF_HELD;
        }
        free(ids);
        for (uint32_t id = 0; id < o->keys.n; id++) {
            o->parts[id].held = 0;
        }
        if (rc != VELO_OK) {
            return rc;
        }
    }
    if (flush(op) != VELO_OK) {
        return VELO_ERR;
    }
    update_stats(op);
    return VELO_OK;
}

static void over_destroy(struct velo_op *op)
{
    struct over_impl *o = op->impl;
    if (o == NULL) {
        return;
    }
    if (o->parts != NULL && o->agg_off != NULL && o->win_idx != NULL) {
        for (uint32_t id = 0; id < o->keys.n; id++) {
            if (o->parts[id].live) {
                part_destroy_states(o, id);
            }
        }
    }
    for (size_t k = 0; k < o->npart; k++) {
        if (o->part_evs != NULL) {
            velo_evaluator_destroy(o->part_evs[k]);
        }
        velo_expr_free(o->partition[k]);
    }
    free(o->partition);
    free(o->part_evs);
    velo_evaluator_destroy(o->order_ev);
    velo_expr_free(o->order.expr);
    for (size_t k = 0; k < o->ncalls; k++) {
        if (o->arg_evs != NULL) {
            velo_evaluator_destroy(o->arg_evs[k]);
            velo_evaluator_destroy(o->def_evs[k]);
        }
        velo_expr_free(o->calls[k].arg);
        velo_expr_free(o->calls[k].deflt);
        free((char *)o->calls[k].name);
    }
    free(o->calls);
    free(o->arg_evs);
    free(o->def_evs);
    free(o->pc);
    free(o->types);
    free(o->phys);
    velo_rowstore_free(&o->rs);
    free(o->prev);
    free(o->next);
    free(o->flags);
    free(o->row_bytes);
    free(o->free_rows);
    free(o->pend);
    velo_rowstore_free(&o->keys);
    free(o->parts);
    free(o->free_parts);
    velo_hindex_free(&o->idx);
    free(o->agg_states);
    free(o->agg_off);
    free(o->win_idx);
    free(o->wins);
    velo_arena_destroy(o->agg_arena);
    velo_arena_destroy(o->scratch_arena);
    free(o->scratch_state);
    velo_eval_ctx_free(&o->ctx);
    velo_eval_ctx_free(&o->agg_eval);
    velo_arena_destroy(o->arena);
    free(o->hashes);
    free(o->ac);
    free(o->dc);
    velo_batch_destroy(o->out);
    free(o);
}

static const char *wf_name(const struct velo_over_call *c)
{
    switch (c->fn) {
    case VELO_WF_ROW_NUMBER:
        return "ROW_NUMBER";
    case VELO_WF_RANK:
        return "RANK";
    case VELO_WF_DENSE_RANK:
        return "DENSE_RANK";
    case VELO_WF_LAG:
        return "LAG";
    case VELO_WF_LEAD:
        return "LEAD";
    case VELO_WF_FIRST_VALUE:
        return "FIRST_VALUE";
    case VELO_WF_LAST_VALUE:
        return "LAST_VALUE";
    default:
        return c->agg != NULL ? c->agg->name : "?";
    }
}

static void over_explain(const struct velo_op *op, char *buf, size_t len)
{
    const struct over_impl *o = op->impl;
    size_t used = 0;
#define PUT(...) velo_buf_appendf(buf, len, &used, __VA_ARGS__)
    buf[0] = '\0';
    for (size_t k = 0; k < o->ncalls; k++) {
        const struct velo_over_call *c = &o->calls[k];
        char arg[160] = "";
        if (c->arg != NULL) {
            velo_expr_format(c->arg, NULL, arg, sizeof(arg));
        } else if (c->fn == VELO_WF_AGG) {
            snprintf(arg, sizeof(arg), "*");
        }
        PUT("%s%s(%s", k ? ", " : "", wf_name(c), arg);
        if (c->fn == VELO_WF_LAG || c->fn == VELO_WF_LEAD) {
            PUT(", %lld", (long long)c->offset);
        }
        PUT(") AS %s", c->name);
        if (c->frame == VELO_FRAME_ROWS) {
            PUT(" [ROWS %lld PRECEDING]", (long long)c->frame_rows);
        } else if (c->frame == VELO_FRAME_RANGE) {
            PUT(" [RANGE %lld us PRECEDING]", (long long)c->frame_range_us);
        }
    }
    if (o->npart > 0) {
        PUT("; partition by %zu key%s", o->npart, o->npart > 1 ? "s" : "");
    }
    if (o->order_is_time) {
        PUT("; rows in event-time order as the watermark passes them");
    } else {
        PUT("; buffers every row; emits at the end of the input");
    }
    if (o->idle_ttl_us > 0) {
        PUT("; idle partitions dropped after %lld us",
            (long long)o->idle_ttl_us);
    }
#undef PUT
}

/* ---- Checkpoints -------------------------------------------------------- */

static int over_snapshot(const struct velo_op *op, struct velo_state_writer *w)
{
    struct over_impl *o = op->impl;
    for (size_t k = 0; k < o->ncalls; k++) {
        if (o->agg_off[k] != SIZE_MAX && o->calls[k].agg->save == NULL) {
            return VELO_ERR; /* cannot be saved: no checkpoint */
        }
    }
    velo_sw_u32(w, OVER_STATE_MAGIC);
    velo_sw_u32(w, OVER_STATE_VERSION);
    velo_sw_i64(w, o->wm);
    velo_sw_i64(w, o->next_sweep);
    velo_sw_u64(w, o->seq);
    velo_sw_u32(w, (uint32_t)o->rs.n);
    for (uint32_t id = 0; id < o->rs.n; id++) {
        struct velo_rowhdr *h = velo_rowstore_hdr(&o->rs, id);
        velo_sw_u8(w, o->flags[id]);
        if (o->flags[id] == 0) {
            continue;
        }
        velo_sw_u32(w, o->prev[id]);
        velo_sw_u32(w, o->next[id]);
        velo_sw_u64(w, h->seq);
        velo_sw_u64(w, h->hash);
        velo_sw_u32(w, (uint32_t)h->origin.source);
        velo_sw_i64(w, h->origin.position);
        velo_sw_i64(w, h->origin.line);
        velo_sw_row(w, o->types, o->rs.ncols, velo_rowstore_nulls(&o->rs, id),
                    velo_rowstore_vals(&o->rs, id));
    }
    velo_sw_u32(w, (uint32_t)o->keys.n);
    for (uint32_t id = 0; id < o->keys.n; id++) {
        const struct over_part *p = &o->parts[id];
        velo_sw_u8(w, p->live);
        if (!p->live) {
            continue;
        }
        velo_sw_u64(w, p->hash);
        velo_sw_u32(w, p->head);
        velo_sw_u32(w, p->tail);
        velo_sw_u32(w, p->count);
        velo_sw_u32(w, p->held);
        velo_sw_u32(w, p->first_row);
        velo_sw_u32(w, p->pending);
        velo_sw_u64(w, p->nrows);
        velo_sw_i64(w, p->rank);
        velo_sw_i64(w, p->dense_rank);
        velo_sw_i64(w, p->last_seen);
        velo_sw_row(w, o->keys.types, o->npart,
                    velo_rowstore_nulls(&o->keys, id),
                    velo_rowstore_vals(&o->keys, id));
        for (size_t k = 0; k < o->ncalls; k++) {
            if (o->agg_off[k] != SIZE_MAX &&
                o->calls[k].agg->save(
                    o->agg_states + id * o->agg_stride + o->agg_off[k], w) !=
                    VELO_OK) {
                return VELO_ERR;
            }
        }
    }
    velo_sw_u32(w, (uint32_t)o->npend);
    for (size_t i = 0; i < o->npend; i++) {
        velo_sw_u32(w, o->pend[i].id);
    }
    return w->oom ? VELO_ERR : VELO_OK;
}

/* Restore into a fresh operator; every id read is checked against what
 * exists so a corrupt section cannot send a walk out of bounds. */
static int over_restore(struct velo_op *op, struct velo_state_reader *r)
{
    struct over_impl *o = op->impl;
    if (o->rs.n != 0 || o->keys.n != 0 || o->npend != 0) {
        return VELO_ERR;
    }
    if (velo_sr_u32(r) != OVER_STATE_MAGIC ||
        velo_sr_u32(r) != OVER_STATE_VERSION) {
        velo_sr_fail(r);
        return VELO_ERR;
    }
    o->wm = velo_sr_i64(r);
    o->next_sweep = velo_sr_i64(r);
    o->seq = velo_sr_u64(r);
    uint32_t nrows = velo_sr_u32(r);
    if (!velo_sr_ok(r, 0) || nrows > r->len - r->off) {
        velo_sr_fail(r);
        return VELO_ERR;
    }
    for (uint32_t id = 0; id < nrows && velo_sr_ok(r, 0); id++) {
        if (row_alloc(o) != (long)id) {
            return VELO_ERR;
        }
        uint8_t f = velo_sr_u8(r);
        if (f == 0) {
            o->flags[id] = 0;
            uint8_t *nulls = velo_rowstore_nulls(&o->rs, id);
            memset(nulls, 1, o->rs.ncols);
            continue;
        }
        if (!(f & RF_LIVE) ||
            (f & ~(RF_DEQUE | RF_PINNED | RF_PENDING | RF_HELD | RF_LIVE))) {
            velo_sr_fail(r);
            break;
        }
        o->flags[id] = f;
        o->prev[id] = velo_sr_u32(r);
        o->next[id] = velo_sr_u32(r);
        struct velo_rowhdr *h = velo_rowstore_hdr(&o->rs, id);
        h->seq = velo_sr_u64(r);
        h->hash = velo_sr_u64(r);
        h->origin.source = (int32_t)velo_sr_u32(r);
        h->origin.position = velo_sr_i64(r);
        h->origin.line = velo_sr_i64(r);
        uint8_t *nulls = velo_rowstore_nulls(&o->rs, id);
        union velo_slot *vals = velo_rowstore_vals(&o->rs, id);
        velo_sr_row(r, o->types, o->rs.ncols, nulls, vals, o->rs.arena);
        for (size_t c = 0; c < o->rs.ncols; c++) {
            if (velo_phys(o->types[c].id) == VELO_PHYS_STR && !nulls[c]) {
                o->rs.live_bytes += vals[c].s.len;
                o->row_bytes[id] += (uint32_t)vals[c].s.len;
            }
        }
    }
    uint32_t nparts = velo_sr_u32(r);
    if (!velo_sr_ok(r, 0) || nparts > r->len - r->off ||
        parts_grow(o, nparts) != VELO_OK) {
        velo_sr_fail(r);
        return VELO_ERR;
    }
    for (uint32_t id = 0; id < nparts && velo_sr_ok(r, 0); id++) {
        if (velo_rowstore_add(&o->keys) != (long)id) {
            return VELO_ERR;
        }
        struct over_part *p = &o->parts[id];
        memset(p, 0, sizeof(*p));
        /* live is set once the states are initialized, so a failure
         * half way never destroys an uninitialized state. */
        uint8_t live = velo_sr_u8(r);
        if (live > 1) {
            velo_sr_fail(r);
            break;
        }
        if (!live) {
            memset(velo_rowstore_nulls(&o->keys, id), 1, o->npart);
            continue;
        }
        p->hash = velo_sr_u64(r);
        p->head = velo_sr_u32(r);
        p->tail = velo_sr_u32(r);
        p->count = velo_sr_u32(r);
        p->held = velo_sr_u32(r);
        p->first_row = velo_sr_u32(r);
        p->pending = velo_sr_u32(r);
        p->nrows = velo_sr_u64(r);
        p->rank = velo_sr_i64(r);
        p->dense_rank = velo_sr_i64(r);
        p->last_seen = velo_sr_i64(r);
        uint8_t *nulls = velo_rowstore_nulls(&o->keys, id);
        union velo_slot *vals = velo_rowstore_vals(&o->keys, id);
        velo_sr_row(r, o->keys.types, o->npart, nulls, vals, o->keys.arena);
        part_load_k0(o, id);
        part_init_states(o, id);
        p->live = 1;
        o->live_parts++;
        struct velo_agg_ctx actx = {o->agg_arena, &o->agg_eval};
        for (size_t k = 0; k < o->ncalls; k++) {
            if (o->agg_off[k] == SIZE_MAX) {
                continue;
            }
            if (o->calls[k].agg->load == NULL ||
                o->calls[k].agg->load(o->agg_states + id * o->agg_stride +
                                          o->agg_off[k],
                                      r, &actx) != VELO_OK) {
                velo_sr_fail(r);
                break;
            }
        }
        /* The deque must be well formed: ids in range, linked both ways,
         * of this partition, as long as it says, held rows at its end. */
        uint32_t seen = 0, prev = NONE, held = 0;
        for (uint32_t x = p->head; velo_sr_ok(r, 0) && x != NONE;
             x = o->next[x]) {
            if (x >= nrows || !(o->flags[x] & RF_DEQUE) ||
                (o->flags[x] & RF_PENDING) || o->prev[x] != prev ||
                velo_rowstore_hdr(&o->rs, x)->hash != id || ++seen > p->count ||
                (held > 0 && !(o->flags[x] & RF_HELD))) {
                velo_sr_fail(r);
                break;
            }
            held += (o->flags[x] & RF_HELD) != 0;
            prev = x;
        }
        if (prev != p->tail || seen != p->count || held != p->held ||
            held > o->max_lead ||
            (p->first_row != NONE &&
             (p->first_row >= nrows || !(o->flags[p->first_row] & RF_PINNED) ||
              velo_rowstore_hdr(&o->rs, p->first_row)->hash != id))) {
            velo_sr_fail(r);
        }
    }
    /* Every row belongs to a live partition and is where its flags say;
     * each partition's pending count is its rows in the pending list,
     * and the list holds each pending row once. */
    uint32_t *pend = calloc(nparts ? nparts : 1, sizeof(*pend));
    if (pend == NULL) {
        return VELO_ERR;
    }
    uint64_t pending = 0;
    for (uint32_t id = 0; id < o->rs.n && velo_sr_ok(r, 0); id++) {
        uint8_t f = o->flags[id];
        uint64_t pid = velo_rowstore_hdr(&o->rs, id)->hash;
        if (f == 0) {
            continue;
        }
        if (pid >= nparts || !o->parts[pid].live ||
            ((f & RF_PENDING) && f != (RF_LIVE | RF_PENDING)) ||
            !(f & (RF_PENDING | RF_DEQUE | RF_PINNED)) ||
            ((f & RF_HELD) && !(f & RF_DEQUE))) {
            velo_sr_fail(r);
            break;
        }
        if (f & RF_PENDING) {
            pend[pid]++;
            pending++;
        }
    }
    for (uint32_t id = 0; id < nparts && velo_sr_ok(r, 0); id++) {
        if (o->parts[id].live && o->parts[id].pending != pend[id]) {
            velo_sr_fail(r);
        }
    }
    free(pend);
    uint32_t nheap = velo_sr_u32(r);
    if (!velo_sr_ok(r, 0) || nheap != pending) {
        velo_sr_fail(r);
        return VELO_ERR;
    }
    for (uint32_t i = 0; i < nheap; i++) {
        uint32_t id = velo_sr_u32(r);
        if (id >= nrows || o->flags[id] != (RF_LIVE | RF_PENDING)) {
            velo_sr_fail(r); /* not pending, or listed twice */
            break;
        }
        o->flags[id] |= RF_MARK;
        if (pend_add(o, id,
                     o->order_is_time
                         ? velo_rowstore_vals(&o->rs, id)[o->c_order].i
                         : 0) != VELO_OK) {
            return VELO_ERR;
        }
    }
    o->sorted = 0; /* sorted again before the next release */
    for (size_t i = 0; i < o->npend; i++) {
        o->flags[o->pend[i].id] &= (uint8_t)~RF_MARK;
    }
    if (!velo_sr_ok(r, 1)) {
        return VELO_ERR;
    }
    for (uint32_t id = 0; id < o->rs.n; id++) {
        if (o->flags[id] == 0) {
            o->flags[id] = RF_LIVE | RF_DEQUE;
            if (row_release(o, id, RF_DEQUE) != VELO_OK) {
                return VELO_ERR;
            }
        }
    }
    for (uint32_t id = 0; id < nparts; id++) {
        if (!o->parts[id].live) {
            o->free_parts[o->nfree_parts++] = id;
        }
    }
    if (index_rebuild(o) != VELO_OK) {
        return VELO_ERR;
    }
    /* Sliding windows are not saved: they are the frame of each
     * partition's last processed row, rebuilt from the kept rows. */
    for (uint32_t id = 0; id < nparts && o->nwin > 0; id++) {
        struct over_part *p = &o->parts[id];
        if (!p->live || p->tail == NONE) {
            continue;
        }
        for (size_t k = 0; k < o->ncalls; k++) {
            if (o->win_idx[k] == SIZE_MAX) {
                continue;
            }
            struct over_win *w = win_of(o, id, k);
            uint32_t x = frame_start(o, p, &o->calls[k], p->tail);
            for (; x != NONE; x = o->next[x]) {
                if (win_push(o, w, k, x) != VELO_OK) {
                    return VELO_ERR;
                }
                if (x == p->tail) {
                    break;
                }
            }
        }
    }
    update_stats(op);
    return VELO_OK;
}

static const struct velo_op_ops over_ops = {
    .name = "Over",
    .push = over_push,
    .watermark = over_watermark,
    .finish = over_finish,
    .destroy = over_destroy,
    .explain = over_explain,
    .snapshot = over_snapshot,
    .restore = over_restore,
};

/* ---- Construction ----------------------------------------------------------
 */

static int check_call(const struct velo_over_call *c, const char **why)
{
    if (c->name == NULL) {
        *why = "a call has no output name";
        return VELO_ERR;
    }
    switch (c->fn) {
    case VELO_WF_ROW_NUMBER:
    case VELO_WF_RANK:
    case VELO_WF_DENSE_RANK:
        return VELO_OK;
    case VELO_WF_LAG:
    case VELO_WF_LEAD:
        if (c->arg == NULL || c->offset < 0 || c->offset > OVER_MAX_RECOMPUTE) {
            *why = "LAG/LEAD need an argument and an offset of 0..4096";
            return VELO_ERR;
        }
        return VELO_OK;
    case VELO_WF_FIRST_VALUE:
    case VELO_WF_LAST_VALUE:
        if (c->arg == NULL) {
            *why = "FIRST_VALUE/LAST_VALUE need an argument";
            return VELO_ERR;
        }
        break;
    case VELO_WF_AGG:
        if (c->agg == NULL || c->agg->nargs > 1 ||
            (c->agg->nargs == 1) != (c->arg != NULL)) {
            *why = "a window aggregate takes zero or one argument";
            return VELO_ERR;
        }
        break;
    default:
        *why = "unknown window function";
        return VELO_ERR;
    }
    if (c->frame == VELO_FRAME_ROWS &&
        (c->frame_rows < 0 || c->frame_rows > OVER_MAX_FRAME_ROWS)) {
        *why = "ROWS frames reach back 0..16777216 rows";
        return VELO_ERR;
    }
    if (c->fn == VELO_WF_FIRST_VALUE && c->frame == VELO_FRAME_ROWS &&
        c->frame_rows > OVER_MAX_RECOMPUTE) {
        *why = "FIRST_VALUE over ROWS reaches back at most 4096 rows";
        return VELO_ERR;
    }
    if (c->frame == VELO_FRAME_RANGE && c->frame_range_us < 0) {
        *why = "a RANGE interval must not be negative";
        return VELO_ERR;
    }
    if (c->frame < VELO_FRAME_UNBOUNDED || c->frame > VELO_FRAME_RANGE) {
        *why = "unknown frame kind";
        return VELO_ERR;
    }
    return VELO_OK;
}

struct velo_op *velo_op_over(const struct velo_exec_env *env,
                             const struct velo_schema *in,
                             struct velo_over_spec *spec)
{
    struct over_impl *o = calloc(1, sizeof(*o));
    struct velo_schema *out = NULL;
    const char *why = NULL;
    if (o == NULL || spec == NULL) {
        free(o);
        errno = o == NULL ? ENOMEM : EINVAL;
        return NULL;
    }
    /* Take ownership first so every failure path frees the same way. */
    o->npart = spec->npartition;
    o->partition = calloc(o->npart ? o->npart : 1, sizeof(*o->partition));
    o->ncalls = spec->ncalls;
    o->calls = calloc(o->ncalls ? o->ncalls : 1, sizeof(*o->calls));
    if (o->partition == NULL || o->calls == NULL) {
        goto fail;
    }
    for (size_t k = 0; k < o->npart; k++) {
        o->partition[k] = spec->partition[k];
        spec->partition[k] = NULL;
    }
    o->order = spec->order;
    spec->order.expr = NULL;
    for (size_t k = 0; k < o->ncalls; k++) {
        o->calls[k] = spec->calls[k];
        o->calls[k].name = NULL;
        spec->calls[k].arg = NULL;
        spec->calls[k].deflt = NULL;
    }
    for (size_t k = 0; k < o->ncalls; k++) {
        if (spec->calls[k].name != NULL) {
            o->calls[k].name = strdup(spec->calls[k].name);
            if (o->calls[k].name == NULL) {
                goto fail;
            }
        }
    }
    /* The calls array is the operator's now (the contract says so). */
    free(spec->calls);
    spec->calls = NULL;
    spec->ncalls = 0;
    if (env == NULL || in == NULL) {
        errno = EINVAL;
        goto fail;
    }
    o->order_is_time = spec->order_is_time && o->order.expr != NULL;
    if (o->order_is_time &&
        (o->order.desc || o->order.expr->type.id != VELO_TYPE_TIMESTAMP)) {
        why = "an event-time ORDER BY must be an ascending TIMESTAMP";
        errno = EINVAL;
        goto fail;
    }
    o->idle_ttl_us = spec->idle_ttl_us;
    o->nin = in->n;
    o->cap = env->batch_cap ? env->batch_cap : VELO_BATCH_ROWS;
    o->wm = INT64_MIN;
    o->sorted = 1;
    o->next_sweep = INT64_MIN;
    o->max_range = -1;
    o->keep_rows = 1;
    size_t states = 0;
    o->agg_off = calloc(o->ncalls ? o->ncalls : 1, sizeof(*o->agg_off));
    o->win_idx = calloc(o->ncalls ? o->ncalls : 1, sizeof(*o->win_idx));
    if (o->agg_off == NULL || o->win_idx == NULL) {
        goto fail;
    }
    size_t scratch = 8;
    for (size_t k = 0; k < o->ncalls; k++) {
        struct velo_over_call *c = &o->calls[k];
        o->agg_off[k] = SIZE_MAX;
        o->win_idx[k] = SIZE_MAX;
        if (check_call(c, &why) != VELO_OK) {
            errno = EINVAL;
            goto fail;
        }
        int frame = c->fn == VELO_WF_FIRST_VALUE || c->fn == VELO_WF_AGG;
        if (frame && c->frame == VELO_FRAME_RANGE) {
            if (o->order.expr == NULL ||
                velo_phys(o->order.expr->type.id) != VELO_PHYS_I64) {
                why = "a RANGE frame needs a numeric or time ORDER BY";
                errno = EINVAL;
                goto fail;
            }
            if (c->frame_range_us > o->max_range) {
                o->max_range = c->frame_range_us;
            }
        }
        uint32_t need = 1;
        if (c->fn == VELO_WF_LAG) {
            need = (uint32_t)c->offset + 1;
        } else if (c->fn == VELO_WF_LEAD) {
            need = (uint32_t)c->offset + 1;
            if ((uint32_t)c->offset > o->max_lead) {
                o->max_lead = (uint32_t)c->offset;
            }
        } else if (frame && c->frame == VELO_FRAME_ROWS) {
            need = (uint32_t)c->frame_rows + 1;
        } else if (frame && c->frame == VELO_FRAME_UNBOUNDED &&
                   c->fn == VELO_WF_FIRST_VALUE) {
            o->need_pin = 1;
        }
        o->need_rank |= c->fn == VELO_WF_RANK || c->fn == VELO_WF_DENSE_RANK;
        if (need > o->keep_rows) {
            o->keep_rows = need;
        }
        if (c->fn == VELO_WF_AGG) {
            size_t sz = (c->agg->state_size + 7) & ~(size_t)7;
            if (c->frame == VELO_FRAME_UNBOUNDED) {
                o->agg_off[k] = states;
                states += sz;
            } else {
                /* Short ROWS frames recompute: a few rows that sit
                 * together in the deque beat a window per partition. */
                int small = c->frame == VELO_FRAME_ROWS &&
                            c->frame_rows <= OVER_SMALL_FRAME;
                if (c->agg->merge != NULL && !small) {
                    o->win_idx[k] = o->nwin++;
                } else if (c->frame == VELO_FRAME_ROWS &&
                           c->frame_rows > OVER_MAX_RECOMPUTE) {
                    why = "this aggregate cannot merge states: its ROWS "
                          "frame may reach back at most 4096 rows";
                    errno = EINVAL;
                    goto fail;
                }
                if (sz > scratch) {
                    scratch = sz;
                }
            }
        }
    }
    o->agg_stride = states;

    out = velo_schema_create(in->n + o->ncalls);
    if (out == NULL) {
        goto fail;
    }
    for (size_t c = 0; c < in->n; c++) {
        const struct velo_field *f = &in->fields[c];
        if (velo_schema_set(out, c, f->name, f->type, f->nullable, f->hidden) !=
            VELO_OK) {
            goto fail;
        }
    }
    for (size_t k = 0; k < o->ncalls; k++) {
        if (velo_schema_set(out, in->n + k, o->calls[k].name, o->calls[k].type,
                            1, 0) != VELO_OK) {
            goto fail;
        }
    }

    /* Row store columns: input, order value, args, defaults, results. */
    o->c_order = in->n;
    o->c_arg = in->n + 1;
    o->c_def = o->c_arg + o->ncalls;
    o->c_out = o->c_def + o->ncalls;
    size_t ncols = o->c_out + o->ncalls;
    o->types = calloc(ncols, sizeof(*o->types));
    o->phys = calloc(ncols, 1);
    struct velo_datatype *ktypes =
        calloc(o->npart ? o->npart : 1, sizeof(*ktypes));
    if (o->types == NULL || o->phys == NULL || ktypes == NULL) {
        free(ktypes);
        goto fail;
    }
    for (size_t c = 0; c < in->n; c++) {
        o->types[c] = in->fields[c].type;
    }
    o->types[o->c_order] = o->order.expr != NULL
                               ? o->order.expr->type
                               : velo_type_of(VELO_TYPE_BIGINT);
    for (size_t k = 0; k < o->ncalls; k++) {
        const struct velo_over_call *c = &o->calls[k];
        o->types[o->c_arg + k] =
            c->arg != NULL ? c->arg->type : velo_type_of(VELO_TYPE_BIGINT);
        o->types[o->c_def + k] = c->deflt != NULL ? c->deflt->type : c->type;
        o->types[o->c_out + k] = c->type;
        if ((c->fn == VELO_WF_LAG || c->fn == VELO_WF_LEAD ||
             c->fn == VELO_WF_FIRST_VALUE || c->fn == VELO_WF_LAST_VALUE) &&
            (velo_phys(c->arg->type.id) != velo_phys(c->type.id) ||
             (c->deflt != NULL &&
              velo_phys(c->deflt->type.id) != velo_phys(c->type.id)))) {
            why = "the argument and default must have the result's type "
                  "(the planner casts them)";
            errno = EINVAL;
            free(ktypes);
            goto fail;
        }
    }
    for (size_t c = 0; c < ncols; c++) {
        o->phys[c] = (uint8_t)velo_phys(o->types[c].id);
    }
    for (size_t k = 0; k < o->npart; k++) {
        ktypes[k] = o->partition[k]->type;
    }
    int krc = velo_rowstore_init(&o->keys, ktypes, o->npart);
    free(ktypes);
    if (krc != VELO_OK ||
        velo_rowstore_init(&o->rs, o->types, ncols) != VELO_OK) {
        goto fail;
    }
    o->part_evs = calloc(o->npart ? o->npart : 1, sizeof(*o->part_evs));
    o->pc = calloc(o->npart ? o->npart : 1, sizeof(*o->pc));
    o->arg_evs = calloc(o->ncalls ? o->ncalls : 1, sizeof(*o->arg_evs));
    o->def_evs = calloc(o->ncalls ? o->ncalls : 1, sizeof(*o->def_evs));
    o->hashes = calloc(o->cap, sizeof(*o->hashes));
    o->ac = calloc(o->ncalls ? o->ncalls : 1, sizeof(*o->ac));
    o->dc = calloc(o->ncalls ? o->ncalls : 1, sizeof(*o->dc));
    o->arena = velo_arena_create(16 * 1024);
    o->agg_arena = velo_arena_create(16 * 1024);
    o->scratch_arena = velo_arena_create(4 * 1024);
    o->scratch_state = calloc(1, scratch);
    if (o->part_evs == NULL || o->pc == NULL || o->arg_evs == NULL ||
        o->def_evs == NULL || o->hashes == NULL || o->ac == NULL ||
        o->dc == NULL || o->arena == NULL || o->agg_arena == NULL ||
        o->scratch_arena == NULL || o->scratch_state == NULL ||
        velo_eval_ctx_init(&o->ctx, o->cap, 1) != VELO_OK ||
        velo_eval_ctx_init(&o->agg_eval, 1, 1) != VELO_OK ||
        velo_hindex_init(&o->idx, 64) != VELO_OK) {
        goto fail;
    }
    for (size_t k = 0; k < o->npart; k++) {
        o->part_evs[k] = velo_expr_compile(o->partition[k], in, o->cap);
        if (o->part_evs[k] == NULL) {
            goto fail;
        }
    }
    if (o->order.expr != NULL) {
        o->order_ev = velo_expr_compile(o->order.expr, in, o->cap);
        if (o->order_ev == NULL) {
            goto fail;
        }
        o->order_phys = velo_phys(o->order.expr->type.id);
    }
    for (size_t k = 0; k < o->ncalls; k++) {
        const struct velo_over_call *c = &o->calls[k];
        if (c->arg != NULL) {
            o->arg_evs[k] = velo_expr_compile(c->arg, in, o->cap);
            if (o->arg_evs[k] == NULL) {
                goto fail;
            }
        }
        if (c->deflt != NULL) {
            o->def_evs[k] = velo_expr_compile(c->deflt, in, o->cap);
            if (o->def_evs[k] == NULL) {
                goto fail;
            }
        }
    }
    o->out = velo_batch_create(out, o->cap);
    if (o->out == NULL) {
        goto fail;
    }
    struct velo_op *op = velo_op_alloc(env, &over_ops, out, o);
    if (op == NULL) {
        goto fail;
    }
    o->op = op;
    op->keeps_state = 1;
    return op;
fail:;
    int saved = errno != 0 ? errno : ENOMEM;
    if (why != NULL) {
        velo_log_error("OVER: %s", why);
    }
    struct velo_op tmp = {.impl = o};
    over_destroy(&tmp);
    velo_schema_destroy(out);
    errno = saved;
    return NULL;
}
