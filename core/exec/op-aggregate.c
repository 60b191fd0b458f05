/*
 * Aggregate: GROUP BY with aggregates, optionally per tumbling window of
 * event time, emitting CHANGES (the group's updated row after each input
 * row) or FINAL (one row per group when its window closes, or at the end
 * of a bounded input).
 *
 * Groups live in open-addressing tables, one per open window (one in all
 * without a window). A group is a fixed-size record in a dense array:
 * its full hash, its key values (strings copied into the table's arena
 * when the group is created, never again), then every aggregate's state.
 * The index holds (hash tag, record id) pairs, probed linearly, grown by
 * doubling at half load. A row costs one hash, usually one probe, and one
 * update per aggregate; nothing is allocated for a group that exists.
 *
 * Windows: a tumbling window starts at floor(t / size) * size; hopping
 * windows start every `advance`, so a row belongs to the ceil(size /
 * advance) windows [s, s + size) with s = floor(t / advance) * advance -
 * k * advance that contain it. The window's table is found from its start
 * (the last one used is cached). The watermark trails the highest event
 * time seen by the bounded out-of-orderness, advanced row by row (or by
 * velo_op_watermark from outside); when it reaches a window's end plus
 * its grace the window closes: FINAL emits its groups, then the table is
 * recycled (arena reset, index cleared), so memory follows the open
 * windows, not the input. A row whose every window has closed (end +
 * grace <= the watermark at that row) is late: counted, reported through
 * on_late_row, and dropped; a hopping row still counts in its windows
 * that are open. With the update strategy (EMIT CHANGES) closed windows
 * are held for a further retention of max(grace, out-of-orderness): a
 * late row for a held window is added to it and the group's corrected
 * row is emitted as an UPDATE; only rows later than that are dropped.
 *
 * Hopping rows are assigned in the aggregate loop itself: a batch is
 * walked once per window offset k (EMIT FINAL; the rows of one window
 * then still arrive in time order) or row by row, window by window (EMIT
 * CHANGES, so every input row's updates come out together), through
 * fixed scratch arrays: nothing is allocated per row.
 *
 * EMIT CHANGES must show each row's effect on its own, so a batch is cut
 * into segments in which no group repeats (and the window does not
 * change); each segment is updated vectorized, then its rows' groups are
 * written out in input order, INSERT the first time a group is emitted
 * and UPDATE after.
 *
 * SESSION windows (per key, [first, last + gap), merged when a row
 * bridges two) have their own section below; checkpoints (snapshot and
 * restore of groups, windows, sessions and the watermark) are at the
 * end, before construction.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <velo/log.h>

#include "exec/exec-internal.h"
#include "exec/func-internal.h"
#include "exec/state.h"

#define ALIGN8(n) (((n) + 7) & ~(size_t)7)
#define AGG_SEED UINT64_C(0x9ae16a3b2f90404f)
#define TABLE_ARENA_CHUNK (16 * 1024)
#define MAX_SPARE_TABLES 2

/* Record header; key nulls, key values and states follow. */
struct grec {
    uint64_t hash;
    uint32_t seg; /* EMIT CHANGES: last segment that touched the group */
    uint8_t emitted;
    uint8_t pad[3];
};

struct gtable {
    int64_t ws;
    size_t stride;
    struct velo_hindex idx;
    char *recs;
    size_t n, cap;
    struct velo_arena *arena;
};

struct agg_rt {
    const struct velo_agg *agg;
    struct velo_expr *args[2];
    size_t nargs;
    struct velo_expr *filter;
    struct velo_evaluator *arg_ev[2];
    struct velo_evaluator *filter_ev;
    size_t off;
    const struct velo_column *argc[2];
    uint8_t *pass; /* per batch row: FILTER (WHERE) is TRUE */
    char *name;
};

struct agg_impl {
    size_t nkeys;
    struct velo_expr **keys;
    struct velo_evaluator **key_ev;
    const struct velo_column **keyc;
    size_t naggs;
    struct agg_rt *aggs;
    int windowed;
    int kind;          /* enum velo_window_kind */
    int64_t size_us;
    int64_t step_us;   /* advance (hopping) or size (tumbling) */
    int64_t grace_us;  /* windows close at end + grace */
    int64_t ooo_us;    /* watermark = highest event time - ooo_us */
    int64_t retain_us; /* update strategy: held after closing */
    int late_update;   /* enum velo_late_strategy == UPDATE */
    size_t hops;       /* windows per row: ceil(size / advance) */
    int64_t maxt;      /* highest event time seen */
    int have_maxt;
    struct velo_expr *time_expr;
    struct velo_evaluator *time_ev;
    int ts_col;
    int emit;
    size_t stride, nulls_off, vals_off, out_key0;
    struct gtable **wins; /* open windows, ascending start */
    size_t nwins, capwins;
    struct gtable *global; /* without a window */
    struct gtable *spare[MAX_SPARE_TABLES];
    size_t nspare;
    struct gtable *last;
    int64_t wm;
    int have_wm;
    struct velo_eval_ctx ctx;  /* input rows */
    struct velo_eval_ctx fctx; /* output rows (final errors) */
    struct velo_agg_ctx actx;
    struct velo_arena *eval_arena;
    uint64_t *hashes;
    int64_t *wst;
    int64_t *wmr;     /* hopping: the watermark at each row */
    uint16_t *it_rows; /* items (row, window) of one pass */
    int64_t *it_ws;
    uint64_t *it_hash;
    uint16_t *valid, *seg_rows, *f_rows, *tmp_rows;
    uint32_t *seg_gid, *f_gid;
    uint32_t segstamp;
    struct velo_batch *out;
    size_t cap;
    int fast_i64; /* one BIGINT-like key */
    char *tmpl;   /* a new group's record: every state initialized */

    /* SESSION windows (see the section "Sessions"). */
    int session;
    struct gtable *skeys;  /* key records: key values + struct skey */
    size_t skey_off;       /* of struct skey in a key record */
    char *srecs;           /* session records: struct srec + states */
    size_t sstride, nsrec, capsrec;
    uint32_t sfree;        /* free list through srec.next */
    size_t live_sess, live_keys;
    char *stmpl;           /* a new session's record */
    struct sheap_e *heap;  /* pending closes, earliest first */
    size_t nheap, capheap;
    uint32_t *closing;     /* sessions closing in one watermark step */
    size_t capclosing;
    size_t arena_mark;     /* key arena bytes after the last compaction */
    size_t keys_mark;      /* key records after the last compaction */
    uint32_t sseg;         /* segment stamp of sessions */
};

/* A session: [start, last + gap) of one key. */
struct srec {
    int64_t start, last;
    uint32_t next; /* the key's next session by start, or the free list */
    uint32_t key;  /* key record id */
    uint32_t gen;  /* bumped when freed: heap entries of old lives */
    uint32_t seg;
    uint8_t emitted, live;
    uint8_t pad[6];
};

struct skey {
    uint32_t head; /* first open session (by start), or SNONE */
    uint32_t nsess;
};

struct sheap_e {
    int64_t at; /* the watermark that releases the session (or later) */
    uint32_t sid, gen;
};

#define SNONE UINT32_MAX

/* ---- Group tables ------------------------------------------------------- */

static struct grec *rec_at(const struct gtable *g, size_t id)
{
    return (struct grec *)(g->recs + id * g->stride);
}

static uint64_t rec_hash(void *arg, uint32_t id)
{
    return rec_at(arg, id)->hash;
}

static void gtable_free(struct gtable *g)
{
    if (g == NULL) {
        return;
    }
    velo_hindex_free(&g->idx);
    free(g->recs);
    velo_arena_destroy(g->arena);
    free(g);
}

static size_t gtable_bytes(const struct gtable *g)
{
    return velo_hindex_bytes(&g->idx) + g->cap * g->stride +
           velo_arena_bytes(g->arena);
}

static struct gtable *gtable_get(struct agg_impl *a, int64_t ws)
{
    struct gtable *g;
    if (a->nspare > 0) {
        g = a->spare[--a->nspare];
    } else {
        g = calloc(1, sizeof(*g));
        if (g == NULL) {
            return NULL;
        }
        g->stride = a->stride;
        g->arena = velo_arena_create(TABLE_ARENA_CHUNK);
        if (g->arena == NULL || velo_hindex_init(&g->idx, 64) != VELO_OK) {
            gtable_free(g);
            return NULL;
        }
    }
    g->ws = ws;
    return g;
}

static void gtable_release(struct agg_impl *a, struct gtable *g)
{
    for (size_t j = 0; j < a->naggs; j++) {
        const struct velo_agg *agg = a->aggs[j].agg;
        if (agg->destroy == NULL) {
            continue;
        }
        for (size_t id = 0; id < g->n; id++) {
            agg->destroy((char *)rec_at(g, id) + a->aggs[j].off);
        }
    }
    if (a->last == g) {
        a->last = NULL;
    }
    if (a->nspare < MAX_SPARE_TABLES) {
        velo_arena_reset(g->arena);
        velo_hindex_clear(&g->idx);
        g->n = 0;
        a->spare[a->nspare++] = g;
    } else {
        gtable_free(g);
    }
}

static inline int64_t sat_add(int64_t x, int64_t y)
{
    int64_t r;
    if (__builtin_add_overflow(x, y, &r)) {
        return y > 0 ? INT64_MAX : INT64_MIN;
    }
    return r;
}

/* The window [ws, ws + size) no longer takes rows once the watermark
 * reaches this (its state may still be held: see held_until). */
static inline int64_t close_at(const struct agg_impl *a, int64_t ws)
{
    return sat_add(sat_add(ws, a->size_us), a->grace_us);
}

/* The window's state is released once the watermark reaches this. */
static inline int64_t held_until(const struct agg_impl *a, int64_t ws)
{
    return sat_add(close_at(a, ws), a->retain_us);
}

/* A new highest event time moves the watermark. */
static inline void see_event_time(struct agg_impl *a, int64_t t)
{
    if (!a->have_maxt || t > a->maxt) {
        a->maxt = t;
        a->have_maxt = 1;
        int64_t wm = sat_add(t, -a->ooo_us);
        if (!a->have_wm || wm > a->wm) {
            a->wm = wm;
            a->have_wm = 1;
        }
    }
}

static struct gtable *find_window(struct agg_impl *a, int64_t ws)
{
    if (a->last != NULL && a->last->ws == ws) {
        return a->last;
    }
    size_t lo = 0, hi = a->nwins;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (a->wins[mid]->ws < ws) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < a->nwins && a->wins[lo]->ws == ws) {
        a->last = a->wins[lo];
        return a->last;
    }
    if (a->nwins == a->capwins) {
        size_t cap = a->capwins ? a->capwins * 2 : 8;
        struct gtable **w = realloc(a->wins, cap * sizeof(*w));
        if (w == NULL) {
            return NULL;
        }
        a->wins = w;
        a->capwins = cap;
    }
    struct gtable *g = gtable_get(a, ws);
    if (g == NULL) {
        return NULL;
    }
    memmove(&a->wins[lo + 1], &a->wins[lo],
            (a->nwins - lo) * sizeof(*a->wins));
    a->wins[lo] = g;
    a->nwins++;
    a->last = g;
    return g;
}

/* Key of batch row r equals the record's? */
static inline int rec_key_eq(const struct agg_impl *a, const struct grec *rec,
                             size_t r)
{
    const uint8_t *nulls = (const uint8_t *)rec + a->nulls_off;
    const union velo_slot *vals =
        (const union velo_slot *)((const char *)rec + a->vals_off);
    if (a->fast_i64 && !a->keyc[0]->has_nulls) {
        return !nulls[0] && vals[0].i == a->keyc[0]->v.i64[r];
    }
    return velo_keys_eq(a->keyc, a->nkeys, r, nulls, vals);
}

/* The group of batch row r (hash h) in g, created when new.
 * @return its id, or -1 when out of memory. */
static long group_of(struct agg_impl *a, struct gtable *g, size_t r,
                     uint64_t h)
{
    if ((g->idx.count + 1) * 2 > g->idx.mask + 1 &&
        velo_hindex_reserve(&g->idx, rec_hash, g) != VELO_OK) {
        return -1;
    }
    size_t mask = g->idx.mask;
    size_t pos = h & mask;
    uint64_t tag = h & UINT64_C(0xffffffff00000000);
    for (;;) {
        uint64_t s = g->idx.slots[pos];
        if (s == 0) {
            break;
        }
        if ((s & UINT64_C(0xffffffff00000000)) == tag) {
            uint32_t id = (uint32_t)(s & 0xffffffffu) - 1;
            const struct grec *rec = rec_at(g, id);
            if (rec->hash == h && rec_key_eq(a, rec, r)) {
                return id;
            }
        }
        pos = (pos + 1) & mask;
    }
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 64;
        char *p = realloc(g->recs, cap * g->stride);
        if (p == NULL) {
            return -1;
        }
        g->recs = p;
        g->cap = cap;
    }
    size_t id = g->n;
    struct grec *rec = rec_at(g, id);
    /* The template holds every aggregate's initial state: one copy
     * instead of a call per aggregate. */
    memcpy(rec, a->tmpl, g->stride);
    rec->hash = h;
    uint8_t *nulls = (uint8_t *)rec + a->nulls_off;
    union velo_slot *vals = (union velo_slot *)((char *)rec + a->vals_off);
    if (a->fast_i64 && !a->keyc[0]->has_nulls) {
        vals[0].i = a->keyc[0]->v.i64[r];
    } else if (velo_keys_store(a->keyc, a->nkeys, r, nulls, vals,
                               g->arena) != VELO_OK) {
        return -1;
    }
    g->n++;
    velo_hindex_put(&g->idx, pos, h, (uint32_t)id);
    return (long)id;
}

/* ---- Output ------------------------------------------------------------- */

static int flush_out(struct velo_op *op)
{
    struct agg_impl *a = op->impl;
    struct velo_batch *out = a->out;
    int rc = VELO_OK;
    if (out->nrows > 0) {
        if (a->fctx.n_errors > 0) {
            velo_op_report_errors(op, &a->fctx, out, NULL, out->nrows);
            out->nsel = velo_sel_drop_failed(&a->fctx, NULL, out->nrows,
                                             velo_batch_sel_buf(out));
            out->sel = velo_batch_sel_buf(out);
            velo_eval_ctx_clear(&a->fctx, a->cap);
        }
        rc = velo_op_emit(op, out);
    }
    velo_batch_reset(out);
    return rc;
}

static int emit_group(struct velo_op *op, struct gtable *g, size_t id)
{
    struct agg_impl *a = op->impl;
    struct velo_batch *out = a->out;
    size_t row = out->nrows;
    struct grec *rec = rec_at(g, id);
    /* Without aggregates (SELECT DISTINCT, GROUP BY alone) a repeated key
     * changes nothing: EMIT CHANGES emits each key once, as an insert. */
    if (a->naggs == 0 && rec->emitted) {
        return VELO_OK;
    }
    if (a->windowed) {
        out->cols[0].v.i64[row] = g->ws;
        out->cols[1].v.i64[row] = g->ws + a->size_us;
    }
    const uint8_t *nulls = (const uint8_t *)rec + a->nulls_off;
    const union velo_slot *vals =
        (const union velo_slot *)((const char *)rec + a->vals_off);
    velo_slots_put_row(out->cols + a->out_key0, row, nulls, vals, a->nkeys);
    a->actx.arena = g->arena;
    a->actx.eval = &a->fctx;
    size_t col0 = a->out_key0 + a->nkeys;
    for (size_t j = 0; j < a->naggs; j++) {
        a->aggs[j].agg->final(&a->actx, (char *)rec + a->aggs[j].off,
                              &out->cols[col0 + j], row, out->arena);
    }
    if (out->op != NULL) {
        out->op[row] = rec->emitted ? VELO_ROW_UPDATE : VELO_ROW_INSERT;
    }
    rec->emitted = 1;
    out->nrows++;
    if (out->nrows == out->cap) {
        return flush_out(op);
    }
    return VELO_OK;
}

/* Close a window: FINAL emits every group (the output views the table's
 * arena, so it is flushed before the table is recycled). */
static int close_table(struct velo_op *op, struct gtable *g)
{
    struct agg_impl *a = op->impl;
    int rc = VELO_OK;
    if (a->emit == VELO_EMIT_FINAL) {
        for (size_t id = 0; id < g->n && rc == VELO_OK; id++) {
            rc = emit_group(op, g, id);
        }
        if (rc == VELO_OK) {
            rc = flush_out(op);
        }
    }
    return rc;
}

static void update_stats(struct velo_op *op)
{
    struct agg_impl *a = op->impl;
    size_t rows = 0, bytes = 0;
    for (size_t i = 0; i < a->nwins; i++) {
        rows += a->wins[i]->n;
        bytes += gtable_bytes(a->wins[i]);
    }
    if (a->global != NULL) {
        rows += a->global->n;
        bytes += gtable_bytes(a->global);
    }
    for (size_t i = 0; i < a->nspare; i++) {
        bytes += gtable_bytes(a->spare[i]);
    }
    if (a->session) {
        rows += a->live_sess;
        bytes += gtable_bytes(a->skeys) + a->capsrec * a->sstride +
                 a->capheap * sizeof(*a->heap);
    }
    op->stats.state_rows = rows;
    op->stats.state_bytes = bytes;
}

/* ---- Push --------------------------------------------------------------- */

/* Update the s rows of the segment (seg_rows, seg_gid) into the records
 * at base (stride bytes apart), variable data in arena. */
static void update_records(struct agg_impl *a, char *base, size_t stride,
                           struct velo_arena *arena, size_t s)
{
    a->actx.arena = arena;
    a->actx.eval = &a->ctx;
    for (size_t j = 0; j < a->naggs; j++) {
        struct agg_rt *ag = &a->aggs[j];
        char *states = base + ag->off;
        if (ag->pass == NULL) {
            ag->agg->update(&a->actx, states, stride, a->seg_gid, ag->argc,
                            a->seg_rows, s);
            continue;
        }
        size_t m = 0;
        for (size_t t = 0; t < s; t++) {
            size_t r = a->seg_rows[t];
            a->f_rows[m] = (uint16_t)r;
            a->f_gid[m] = a->seg_gid[t];
            m += ag->pass[r];
        }
        if (m > 0) {
            ag->agg->update(&a->actx, states, stride, a->f_gid, ag->argc,
                            a->f_rows, m);
        }
    }
}

static void update_segment(struct agg_impl *a, struct gtable *g, size_t s)
{
    update_records(a, g->recs, a->stride, g->arena, s);
}

/* Does the hopping window starting at ws take a row at time t that came
 * when the watermark was wm? It must contain t and not have closed. */
static inline int hop_takes(const struct agg_impl *a, int64_t ws, int64_t t,
                            int64_t wm)
{
    if (sat_add(ws, a->size_us) <= t) {
        return 0;
    }
    int64_t until = a->late_update ? held_until(a, ws) : close_at(a, ws);
    return wm == INT64_MIN || until > wm;
}

/* Add the n items (it_rows[i] into the window starting at it_ws[i], key
 * hash it_hash[i]) to their groups, in order. */
static int run_items(struct velo_op *op, size_t m)
{
    struct agg_impl *a = op->impl;
    int changes = a->emit == VELO_EMIT_CHANGES;
    int rc = VELO_OK;
    size_t i = 0;
    while (i < m && rc == VELO_OK) {
        struct gtable *g =
            a->windowed ? find_window(a, a->it_ws[i]) : a->global;
        if (g == NULL) {
            rc = VELO_ERR;
            break;
        }
        uint32_t stamp = ++a->segstamp;
        size_t s = 0, j = i;
        for (; j < m; j++) {
            size_t r = a->it_rows[j];
            if (a->windowed && a->it_ws[j] != g->ws) {
                break;
            }
            if (j + 8 < m) {
                /* The index slot a few rows ahead: its miss overlaps
                 * with this row's probe. */
                __builtin_prefetch(
                    &g->idx.slots[a->it_hash[j + 8] & g->idx.mask]);
            }
            long gid = group_of(a, g, r, a->it_hash[j]);
            if (gid < 0) {
                rc = VELO_ERR;
                break;
            }
            if (changes) {
                struct grec *rec = rec_at(g, (size_t)gid);
                if (rec->seg == stamp) {
                    break; /* the group repeats: next segment */
                }
                rec->seg = stamp;
            }
            a->seg_rows[s] = (uint16_t)r;
            a->seg_gid[s] = (uint32_t)gid;
            s++;
        }
        if (rc != VELO_OK) {
            break;
        }
        update_segment(a, g, s);
        if (changes) {
            for (size_t t = 0; t < s && rc == VELO_OK; t++) {
                rc = emit_group(op, g, a->seg_gid[t]);
            }
        }
        i = j;
    }
    return rc;
}

/* ---- Sessions ------------------------------------------------------------
 * Keys live in their own table (skeys); each key record ends with a
 * struct skey heading the key's open sessions, a short list sorted by
 * start. Sessions are records of one dense pool (srecs: struct srec, then
 * every aggregate's state), recycled through a free list, so aggregate
 * updates stay vectorized over (row, session id) segments exactly like
 * groups. A row at t opens the window [t, t + gap); every session it
 * overlaps (at most two: open sessions are disjoint and each is at least
 * gap long) becomes one, the earliest absorbing the later (states combine
 * with velo_agg.merge, the earlier's rows first). Closing is driven by a
 * min-heap of (release watermark, session): an entry is only a lower
 * bound (sessions grow after it is pushed), so a popped session that has
 * grown is pushed again with its real bound, and a session costs one heap
 * entry per life, not one per row. Variable data of every session and
 * the key strings share the key table's arena; once most keys are dead
 * or the arena has doubled, the table is rebuilt with the live keys and
 * the live states copied through save/load, so memory follows the open
 * sessions, not the input. */

static inline struct srec *srec_at(const struct agg_impl *a, uint32_t sid)
{
    return (struct srec *)(a->srecs + (size_t)sid * a->sstride);
}

static inline struct skey *skey_of(const struct agg_impl *a, uint32_t kid)
{
    return (struct skey *)((char *)rec_at(a->skeys, kid) + a->skey_off);
}

static inline int64_t sess_end(const struct agg_impl *a, const struct srec *s)
{
    return sat_add(s->last, a->size_us);
}

/* The session takes rows (and FINAL has not emitted it) until the
 * watermark reaches end + grace; its state is released at held. */
static inline int64_t sess_close_at(const struct agg_impl *a,
                                    const struct srec *s)
{
    return sat_add(sess_end(a, s), a->grace_us);
}

static inline int64_t sess_held(const struct agg_impl *a, const struct srec *s)
{
    return sat_add(sess_close_at(a, s), a->retain_us);
}

static int heap_push(struct agg_impl *a, int64_t at, uint32_t sid)
{
    if (a->nheap == a->capheap) {
        size_t cap = a->capheap ? a->capheap * 2 : 64;
        struct sheap_e *h = realloc(a->heap, cap * sizeof(*h));
        if (h == NULL) {
            return VELO_ERR;
        }
        a->heap = h;
        a->capheap = cap;
    }
    size_t i = a->nheap++;
    struct sheap_e e = {at, sid, srec_at(a, sid)->gen};
    while (i > 0 && a->heap[(i - 1) / 2].at > at) {
        a->heap[i] = a->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    a->heap[i] = e;
    return VELO_OK;
}

static struct sheap_e heap_pop(struct agg_impl *a)
{
    struct sheap_e top = a->heap[0];
    struct sheap_e last = a->heap[--a->nheap];
    size_t i = 0, n = a->nheap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) {
            break;
        }
        if (c + 1 < n && a->heap[c + 1].at < a->heap[c].at) {
            c++;
        }
        if (a->heap[c].at >= last.at) {
            break;
        }
        a->heap[i] = a->heap[c];
        i = c;
    }
    if (n > 0) {
        a->heap[i] = last;
    }
    return top;
}

/* A new session of key kid at t, linked in start order. SNONE when out of
 * memory. */
static uint32_t sess_new(struct agg_impl *a, uint32_t kid, int64_t t)
{
    uint32_t sid;
    if (a->sfree != SNONE) {
        sid = a->sfree;
        a->sfree = srec_at(a, sid)->next;
    } else {
        if (a->nsrec == a->capsrec) {
            size_t cap = a->capsrec ? a->capsrec * 2 : 64;
            if (cap >= SNONE) {
                return SNONE;
            }
            char *p = realloc(a->srecs, cap * a->sstride);
            if (p == NULL) {
                return SNONE;
            }
            a->srecs = p;
            a->capsrec = cap;
        }
        sid = (uint32_t)a->nsrec++;
        srec_at(a, sid)->gen = 0;
    }
    struct srec *s = srec_at(a, sid);
    uint32_t gen = s->gen;
    memcpy(s, a->stmpl, a->sstride);
    s->gen = gen;
    s->start = s->last = t;
    s->key = kid;
    s->live = 1;
    s->emitted = 0;
    s->seg = 0;
    struct skey *k = skey_of(a, kid);
    uint32_t *link = &k->head;
    while (*link != SNONE && srec_at(a, *link)->start <= t) {
        link = &srec_at(a, *link)->next;
    }
    s->next = *link;
    *link = sid;
    if (k->nsess++ == 0) {
        a->live_keys++;
    }
    a->live_sess++;
    if (heap_push(a, sess_held(a, s), sid) != VELO_OK) {
        return SNONE;
    }
    return sid;
}

static void sess_free(struct agg_impl *a, uint32_t sid)
{
    struct srec *s = srec_at(a, sid);
    struct skey *k = skey_of(a, s->key);
    uint32_t *link = &k->head;
    while (*link != SNONE && *link != sid) {
        link = &srec_at(a, *link)->next;
    }
    if (*link == sid) {
        *link = s->next;
    }
    if (--k->nsess == 0) {
        a->live_keys--;
    }
    for (size_t j = 0; j < a->naggs; j++) {
        if (a->aggs[j].agg->destroy != NULL) {
            a->aggs[j].agg->destroy((char *)s + a->aggs[j].off);
        }
    }
    s->live = 0;
    s->gen++;
    s->next = a->sfree;
    a->sfree = sid;
    a->live_sess--;
}

/* One output row for session sid: INSERT or UPDATE by whether it was
 * emitted before, or `mark` when not 0 (DELETE). */
static int emit_session(struct velo_op *op, uint32_t sid, uint8_t mark)
{
    struct agg_impl *a = op->impl;
    struct velo_batch *out = a->out;
    size_t row = out->nrows;
    struct srec *s = srec_at(a, sid);
    const struct grec *rec = rec_at(a->skeys, s->key);
    out->cols[0].v.i64[row] = s->start;
    out->cols[1].v.i64[row] = sess_end(a, s);
    const uint8_t *nulls = (const uint8_t *)rec + a->nulls_off;
    const union velo_slot *vals =
        (const union velo_slot *)((const char *)rec + a->vals_off);
    velo_slots_put_row(out->cols + a->out_key0, row, nulls, vals, a->nkeys);
    a->actx.arena = a->skeys->arena;
    a->actx.eval = &a->fctx;
    size_t col0 = a->out_key0 + a->nkeys;
    for (size_t j = 0; j < a->naggs; j++) {
        a->aggs[j].agg->final(&a->actx, (char *)s + a->aggs[j].off,
                              &out->cols[col0 + j], row, out->arena);
    }
    if (out->op != NULL) {
        out->op[row] = mark != 0         ? mark
                       : s->emitted ? VELO_ROW_UPDATE
                                    : VELO_ROW_INSERT;
    }
    s->emitted = 1;
    out->nrows++;
    if (out->nrows == out->cap) {
        return flush_out(op);
    }
    return VELO_OK;
}

/* Apply the pending segment (s rows) and, for CHANGES, emit its sessions'
 * rows in input order. */
static int sess_flush_segment(struct velo_op *op, size_t *s)
{
    struct agg_impl *a = op->impl;
    int rc = VELO_OK;
    if (*s == 0) {
        return rc;
    }
    update_records(a, a->srecs, a->sstride, a->skeys->arena, *s);
    if (a->emit == VELO_EMIT_CHANGES) {
        for (size_t i = 0; i < *s && rc == VELO_OK; i++) {
            rc = emit_session(op, a->seg_gid[i], 0);
        }
    }
    *s = 0;
    a->sseg++;
    return rc;
}

static void report_late(struct velo_op *op, const struct velo_batch *in,
                        size_t r, int64_t t, int64_t wm)
{
    if (op->env->on_late_row != NULL) {
        static const struct velo_row_origin unknown = {-1, 0, 0};
        op->env->on_late_row(op->env->cb_arg, op,
                             in->origin != NULL ? &in->origin[r] : &unknown,
                             t, wm);
    }
}

/* The m valid rows (a->valid; event time a->wst[r], the watermark when it
 * arrived a->wmr[r], key hash a->hashes[j]) into their sessions. */
static int session_run(struct velo_op *op, const struct velo_batch *in,
                       size_t m)
{
    struct agg_impl *a = op->impl;
    int changes = a->emit == VELO_EMIT_CHANGES;
    size_t s = 0;
    int rc = VELO_OK;
    a->sseg++;
    for (size_t j = 0; j < m && rc == VELO_OK; j++) {
        size_t r = a->valid[j];
        int64_t t = a->wst[r], wm = a->wmr[r];
        long kid = group_of(a, a->skeys, r, a->hashes[j]);
        if (kid < 0) {
            rc = VELO_ERR;
            break;
        }
        int64_t tend = sat_add(t, a->size_us);
        uint32_t dst = SNONE;
        uint32_t sid = skey_of(a, (uint32_t)kid)->head;
        while (sid != SNONE && rc == VELO_OK) {
            struct srec *x = srec_at(a, sid);
            uint32_t next = x->next;
            /* Sessions already released at this row's watermark are gone
             * for it (they leave the list at the batch's end). */
            if ((wm == INT64_MIN || sess_held(a, x) > wm) &&
                t < sess_end(a, x) && x->start < tend) {
                if (dst == SNONE) {
                    dst = sid;
                } else {
                    /* The row bridges dst and x: x's pending rows first,
                     * then its retraction, then one state. */
                    rc = sess_flush_segment(op, &s);
                    if (rc == VELO_OK && changes && x->emitted) {
                        rc = emit_session(op, sid, VELO_ROW_DELETE);
                    }
                    struct srec *d = srec_at(a, dst);
                    a->actx.arena = a->skeys->arena;
                    a->actx.eval = &a->ctx;
                    for (size_t q = 0; q < a->naggs; q++) {
                        a->aggs[q].agg->merge(&a->actx,
                                              (char *)d + a->aggs[q].off,
                                              (char *)x + a->aggs[q].off);
                    }
                    if (x->last > d->last) {
                        d->last = x->last;
                    }
                    if (x->start < d->start) {
                        d->start = x->start;
                    }
                    sess_free(a, sid);
                }
            }
            sid = next;
        }
        if (rc != VELO_OK) {
            break;
        }
        if (dst == SNONE) {
            /* A session of its own: late when even it would have closed
             * at this row's watermark. The update strategy only reaches
             * sessions still held (found above): a new session is never
             * opened behind the watermark, so closed sessions are never
             * overlapped by a later one. */
            int64_t own_close = sat_add(tend, a->grace_us);
            if (wm != INT64_MIN && own_close <= wm) {
                op->stats.rows_late++;
                report_late(op, in, r, t, wm);
                continue;
            }
            dst = sess_new(a, (uint32_t)kid, t);
            if (dst == SNONE) {
                rc = VELO_ERR;
                break;
            }
        } else {
            struct srec *d = srec_at(a, dst);
            if (wm != INT64_MIN && sess_close_at(a, d) <= wm) {
                /* Only a held session (update strategy) is still here. */
                op->stats.rows_late++;
                op->stats.rows_late_updated++;
            }
            if (changes && d->seg == a->sseg) {
                /* The session repeats: its pending row goes out with the
                 * bounds it had before this row. */
                rc = sess_flush_segment(op, &s);
                if (rc != VELO_OK) {
                    break;
                }
            }
            if (t < d->start) {
                d->start = t;
            }
            if (t > d->last) {
                d->last = t;
            }
        }
        struct srec *d = srec_at(a, dst);
        d->seg = a->sseg;
        a->seg_rows[s] = (uint16_t)r;
        a->seg_gid[s] = dst;
        s++;
    }
    if (rc == VELO_OK) {
        rc = sess_flush_segment(op, &s);
    }
    return rc;
}

static int sess_order(const void *x, const void *y, void *arg)
{
    const struct agg_impl *a = arg;
    const struct srec *p = srec_at(a, *(const uint32_t *)x);
    const struct srec *q = srec_at(a, *(const uint32_t *)y);
    if (p->last != q->last) {
        return p->last < q->last ? -1 : 1;
    }
    if (p->start != q->start) {
        return p->start < q->start ? -1 : 1;
    }
    uint64_t hp = rec_at(a->skeys, p->key)->hash;
    uint64_t hq = rec_at(a->skeys, q->key)->hash;
    return hp < hq ? -1 : hp > hq;
}

/* Emit (FINAL) and free the n sessions in a->closing, by end, start and
 * key hash: the order does not depend on how state was built (restored
 * or not). */
static int sess_close_list(struct velo_op *op, size_t n)
{
    struct agg_impl *a = op->impl;
    int rc = VELO_OK;
    if (n > 1) {
        qsort_r(a->closing, n, sizeof(*a->closing), sess_order, a);
    }
    for (size_t i = 0; i < n; i++) {
        if (rc == VELO_OK && a->emit == VELO_EMIT_FINAL) {
            rc = emit_session(op, a->closing[i], 0);
        }
    }
    if (rc == VELO_OK) {
        rc = flush_out(op); /* the rows view the arena: out before reuse */
    }
    for (size_t i = 0; i < n; i++) {
        sess_free(a, a->closing[i]);
    }
    return rc;
}

static int closing_add(struct agg_impl *a, size_t n, uint32_t sid)
{
    if (n == a->capclosing) {
        size_t cap = a->capclosing ? a->capclosing * 2 : 64;
        uint32_t *c = realloc(a->closing, cap * sizeof(*c));
        if (c == NULL) {
            return VELO_ERR;
        }
        a->closing = c;
        a->capclosing = cap;
    }
    a->closing[n] = sid;
    return VELO_OK;
}

static int sess_compact(struct agg_impl *a);

static int session_watermark(struct velo_op *op)
{
    struct agg_impl *a = op->impl;
    size_t n = 0;
    while (a->nheap > 0 && a->heap[0].at <= a->wm) {
        struct sheap_e e = heap_pop(a);
        struct srec *s = srec_at(a, e.sid);
        if (!s->live || s->gen != e.gen) {
            continue; /* merged away or closed in an earlier life */
        }
        int64_t held = sess_held(a, s);
        if (held > a->wm) {
            if (heap_push(a, held, e.sid) != VELO_OK) {
                return VELO_ERR;
            }
            continue;
        }
        if (closing_add(a, n, e.sid) != VELO_OK) {
            return VELO_ERR;
        }
        n++;
    }
    int rc = n > 0 ? sess_close_list(op, n) : VELO_OK;
    if (rc == VELO_OK) {
        rc = sess_compact(a);
    }
    return rc;
}

static int session_finish(struct velo_op *op)
{
    struct agg_impl *a = op->impl;
    size_t n = 0;
    for (uint32_t sid = 0; sid < a->nsrec; sid++) {
        if (srec_at(a, sid)->live) {
            if (closing_add(a, n, sid) != VELO_OK) {
                return VELO_ERR;
            }
            n++;
        }
    }
    int rc = n > 0 ? sess_close_list(op, n) : VELO_OK;
    a->nheap = 0;
    if (rc == VELO_OK) {
        rc = sess_compact(a);
    }
    return rc;
}

/* Copy a session's states into dst (initialized) through save/load,
 * their variable data into arena. */
static int sess_copy_states(struct agg_impl *a, const struct srec *src,
                            char *dst, struct velo_arena *arena,
                            struct velo_state_writer *w)
{
    struct velo_agg_ctx ctx = {arena, &a->ctx};
    for (size_t j = 0; j < a->naggs; j++) {
        const struct velo_agg *agg = a->aggs[j].agg;
        velo_sw_reset(w);
        if (agg->save((const char *)src + a->aggs[j].off, w) != VELO_OK) {
            return VELO_ERR;
        }
        struct velo_state_reader r;
        velo_sr_init(&r, w->buf, w->len);
        if (agg->load(dst + a->aggs[j].off, &r, &ctx) != VELO_OK ||
            !velo_sr_ok(&r, 1)) {
            return VELO_ERR;
        }
    }
    return VELO_OK;
}

static void states_destroy(struct agg_impl *a, char *rec)
{
    for (size_t j = 0; j < a->naggs; j++) {
        if (a->aggs[j].agg->destroy != NULL) {
            a->aggs[j].agg->destroy(rec + a->aggs[j].off);
        }
    }
}

/* Rebuild the key table with the live keys only when dead keys dominate,
 * and move the sessions' variable data (and key strings) to a fresh arena
 * when dead data dominates it. A dead key's record is reused when the key
 * comes back, so the table is only rebuilt once it has doubled since the
 * last rebuild: the cost is amortized over the new keys that made it
 * grow. Everything is built aside first; the operator changes only once
 * nothing can fail any more. */
static int sess_compact(struct agg_impl *a)
{
    struct gtable *old = a->skeys;
    size_t dead = old->n - a->live_keys;
    size_t bytes = velo_arena_bytes(old->arena);
    int keys_due = old->n > 1024 && dead > a->live_keys &&
                   old->n >= 2 * a->keys_mark;
    int move = bytes > (size_t)4 << 20 && bytes > 2 * a->arena_mark;
    if (!keys_due && !move) {
        return VELO_OK;
    }
    size_t want = a->live_keys > 32 ? a->live_keys : 32;
    struct gtable *g = calloc(1, sizeof(*g));
    uint32_t *newkey = malloc((a->nsrec + 1) * sizeof(*newkey));
    /* Moved states, by session id (only with move). */
    char *moved = move ? malloc((a->nsrec + 1) * a->sstride) : NULL;
    struct velo_state_writer w;
    velo_sw_init(&w);
    int rc = VELO_ERR;
    if (g == NULL || newkey == NULL || (move && moved == NULL)) {
        goto out;
    }
    g->stride = old->stride;
    g->arena = move ? velo_arena_create(TABLE_ARENA_CHUNK) : old->arena;
    if (g->arena == NULL || velo_hindex_init(&g->idx, want) != VELO_OK ||
        (g->recs = malloc(want * g->stride)) == NULL) {
        goto out;
    }
    g->cap = want;
    rc = VELO_OK;
    for (size_t id = 0; id < old->n && rc == VELO_OK; id++) {
        const struct grec *orec = rec_at(old, id);
        const struct skey *ok =
            (const struct skey *)((const char *)orec + a->skey_off);
        if (ok->nsess == 0) {
            continue;
        }
        uint32_t nid = (uint32_t)g->n++;
        struct grec *nrec = rec_at(g, nid);
        memcpy(nrec, orec, g->stride);
        uint8_t *nulls = (uint8_t *)nrec + a->nulls_off;
        union velo_slot *vals =
            (union velo_slot *)((char *)nrec + a->vals_off);
        for (size_t k = 0; move && k < a->nkeys && rc == VELO_OK; k++) {
            if (!nulls[k] && velo_phys(a->keys[k]->type.id) == VELO_PHYS_STR) {
                char *c = velo_arena_strdup(g->arena, vals[k].s.ptr,
                                            vals[k].s.len);
                if (c == NULL) {
                    rc = VELO_ERR;
                }
                vals[k].s.ptr = c;
            }
        }
        velo_hindex_insert(&g->idx, nrec->hash, nid);
        for (uint32_t sid = ok->head; sid != SNONE && rc == VELO_OK;
             sid = srec_at(a, sid)->next) {
            newkey[sid] = nid;
            if (move) {
                char *dst = moved + (size_t)sid * a->sstride;
                memcpy(dst, a->stmpl, a->sstride);
                rc = sess_copy_states(a, srec_at(a, sid), dst, g->arena, &w);
            }
        }
    }
    if (rc != VELO_OK) {
        goto out;
    }
    /* Commit: nothing fails from here on. */
    for (uint32_t sid = 0; sid < a->nsrec; sid++) {
        struct srec *s = srec_at(a, sid);
        if (!s->live) {
            continue;
        }
        s->key = newkey[sid];
        if (move) {
            states_destroy(a, (char *)s);
            memcpy((char *)s + sizeof(struct srec),
                   moved + (size_t)sid * a->sstride + sizeof(struct srec),
                   a->sstride - sizeof(struct srec));
        }
    }
    /* Dead keys' records have no sessions, hence no states to destroy. */
    velo_hindex_free(&old->idx);
    free(old->recs);
    if (move) {
        velo_arena_destroy(old->arena);
    }
    free(old);
    a->skeys = g;
    g = NULL;
    a->arena_mark = velo_arena_bytes(a->skeys->arena);
    a->keys_mark = a->skeys->n;
out:
    if (g != NULL) {
        /* Failed (out of memory): the operator is as it was. */
        if (g->arena == old->arena) {
            g->arena = NULL; /* not ours: the old table keeps it */
        }
        velo_hindex_free(&g->idx);
        free(g->recs);
        velo_arena_destroy(g->arena);
        free(g);
    }
    free(newkey);
    free(moved);
    velo_sw_free(&w);
    return rc;
}

static int agg_watermark(struct velo_op *op, int64_t wm);

static int agg_push(struct velo_op *op, struct velo_batch *in)
{
    struct agg_impl *a = op->impl;
    const uint16_t *sel = in->sel;
    size_t n = velo_batch_live(in);
    velo_arena_reset(a->eval_arena);
    a->ctx.arena = a->eval_arena;
    a->ctx.now_us = velo_op_now(op->env);
    a->fctx.now_us = a->ctx.now_us;

    for (size_t k = 0; k < a->nkeys; k++) {
        a->keyc[k] = velo_evaluate(a->key_ev[k], &a->ctx, in);
    }
    const struct velo_column *tc = NULL;
    if (a->windowed) {
        tc = a->time_ev != NULL ? velo_evaluate(a->time_ev, &a->ctx, in)
                                : &in->cols[a->ts_col];
    }
    for (size_t j = 0; j < a->naggs; j++) {
        struct agg_rt *ag = &a->aggs[j];
        const uint16_t *asel = sel;
        size_t an = n;
        if (ag->filter_ev != NULL) {
            const struct velo_column *fc =
                velo_evaluate(ag->filter_ev, &a->ctx, in);
            an = 0;
            for (size_t i = 0; i < n; i++) {
                size_t r = sel != NULL ? sel[i] : i;
                uint8_t ok = fc->v.u8[r] && !velo_col_is_null(fc, r);
                ag->pass[r] = ok;
                a->tmp_rows[an] = (uint16_t)r;
                an += ok;
            }
            asel = a->tmp_rows;
        }
        for (size_t k = 0; k < ag->nargs; k++) {
            ag->argc[k] =
                velo_evaluate_sel(ag->arg_ev[k], &a->ctx, in, asel, an);
        }
    }

    /* Rows that count: not failed, with an event time, not late. Rows
     * arrive mostly in time order, so the previous row's window usually
     * holds the next one and the division is skipped. */
    size_t m = 0;
    int64_t cur_ws = INT64_MIN, cur_we = INT64_MIN;
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        if (a->ctx.n_errors > 0 && a->ctx.row_error[r]) {
            continue;
        }
        if (a->windowed) {
            if (velo_col_is_null(tc, r)) {
                velo_eval_error(&a->ctx, r, VELO_EVAL_BAD_ARG,
                                "the event time is NULL: the row belongs to "
                                "no window");
                continue;
            }
            int64_t t = tc->v.i64[r];
            if (a->session) {
                /* Lateness depends on the sessions the row meets: decided
                 * in session_run at this row's watermark. */
                a->wst[r] = t;
                a->wmr[r] = a->have_wm ? a->wm : INT64_MIN;
                see_event_time(a, t);
                a->valid[m++] = (uint16_t)r;
                continue;
            }
            int64_t ws, we;
            /* ws: the start of the last window holding t. */
            if (t >= cur_ws && t < cur_we) {
                ws = cur_ws;
            } else if (__builtin_mul_overflow(velo_floor_div(t, a->step_us),
                                              a->step_us, &ws) ||
                       __builtin_add_overflow(ws, a->step_us, &cur_we) ||
                       __builtin_add_overflow(ws, a->size_us, &we)) {
                velo_eval_error(&a->ctx, r, VELO_EVAL_OVERFLOW,
                                "the event time is out of range for a "
                                "window");
                cur_ws = cur_we = INT64_MIN;
                continue;
            } else {
                cur_ws = ws;
            }
            /* A row is late when even its last window has closed at the
             * watermark of this row: it never depends on where batch
             * boundaries fall. */
            if (a->have_wm && close_at(a, ws) <= a->wm) {
                op->stats.rows_late++;
                if (a->late_update && held_until(a, ws) > a->wm) {
                    op->stats.rows_late_updated++;
                } else {
                    if (op->env->on_late_row != NULL) {
                        static const struct velo_row_origin unknown = {-1, 0,
                                                                       0};
                        op->env->on_late_row(op->env->cb_arg, op,
                                             in->origin != NULL
                                                 ? &in->origin[r]
                                                 : &unknown,
                                             t, a->wm);
                    }
                    continue;
                }
            }
            a->wst[r] = ws;
            a->wmr[r] = a->have_wm ? a->wm : INT64_MIN;
            see_event_time(a, t);
        }
        a->valid[m++] = (uint16_t)r;
    }
    if (a->ctx.n_errors > 0) {
        velo_op_report_errors(op, &a->ctx, in, sel, n);
    }
    velo_keys_hash(a->keyc, a->nkeys, a->valid, m, a->hashes, AGG_SEED);

    int rc = VELO_OK;
    if (a->session) {
        rc = session_run(op, in, m);
    } else if (a->kind != VELO_WINDOW_HOPPING) {
        for (size_t j = 0; j < m; j++) {
            a->it_rows[j] = a->valid[j];
            a->it_ws[j] = a->windowed ? a->wst[a->valid[j]] : 0;
            a->it_hash[j] = a->hashes[j];
        }
        rc = run_items(op, m);
    } else if (a->emit == VELO_EMIT_FINAL) {
        /* Offset by offset: each window still sees its rows in input
         * order, and a pass is a long run of rows of one window. */
        for (size_t k = 0; k < a->hops && rc == VELO_OK; k++) {
            size_t q = 0;
            for (size_t j = 0; j < m; j++) {
                size_t r = a->valid[j];
                int64_t ws = a->wst[r] - (int64_t)k * a->step_us;
                if (hop_takes(a, ws, tc->v.i64[r], a->wmr[r])) {
                    a->it_rows[q] = (uint16_t)r;
                    a->it_ws[q] = ws;
                    a->it_hash[q] = a->hashes[j];
                    q++;
                }
            }
            rc = run_items(op, q);
        }
    } else {
        /* EMIT CHANGES: row by row, its windows oldest first. */
        size_t q = 0;
        for (size_t j = 0; j < m && rc == VELO_OK; j++) {
            size_t r = a->valid[j];
            for (size_t k = a->hops; k-- > 0 && rc == VELO_OK;) {
                int64_t ws = a->wst[r] - (int64_t)k * a->step_us;
                if (!hop_takes(a, ws, tc->v.i64[r], a->wmr[r])) {
                    continue;
                }
                a->it_rows[q] = (uint16_t)r;
                a->it_ws[q] = ws;
                a->it_hash[q] = a->hashes[j];
                if (++q == a->cap) {
                    rc = run_items(op, q);
                    q = 0;
                }
            }
        }
        if (rc == VELO_OK) {
            rc = run_items(op, q);
        }
    }
    if (rc == VELO_OK && a->emit == VELO_EMIT_CHANGES) {
        rc = flush_out(op);
    }
    /* Windows the rows of this batch moved past are complete: close them
     * now, so state follows the open windows, not the input. */
    if (rc == VELO_OK && a->windowed && a->have_wm) {
        rc = agg_watermark(op, a->wm);
    }
    velo_eval_ctx_clear(&a->ctx, a->cap);
    update_stats(op);
    if (rc != VELO_OK && errno == 0) {
        errno = ENOMEM;
    }
    return rc;
}

static int agg_watermark(struct velo_op *op, int64_t wm)
{
    struct agg_impl *a = op->impl;
    if (!a->windowed) {
        return VELO_OK;
    }
    if (!a->have_wm || wm > a->wm) {
        a->wm = wm;
        a->have_wm = 1;
    }
    int rc = VELO_OK;
    if (a->session) {
        rc = session_watermark(op);
        update_stats(op);
        return rc;
    }
    size_t closed = 0;
    /* FINAL emits a window when it closes; with the update strategy its
     * state is released only after the retention (CHANGES has emitted
     * every row already). */
    while (closed < a->nwins && rc == VELO_OK &&
           held_until(a, a->wins[closed]->ws) <= a->wm) {
        rc = close_table(op, a->wins[closed]);
        gtable_release(a, a->wins[closed]);
        closed++;
    }
    if (closed > 0) {
        memmove(a->wins, a->wins + closed,
                (a->nwins - closed) * sizeof(*a->wins));
        a->nwins -= closed;
    }
    update_stats(op);
    return rc;
}

static int agg_finish(struct velo_op *op)
{
    struct agg_impl *a = op->impl;
    int rc = VELO_OK;
    if (a->session) {
        rc = session_finish(op);
    } else if (a->windowed) {
        for (size_t i = 0; i < a->nwins; i++) {
            if (rc == VELO_OK) {
                rc = close_table(op, a->wins[i]);
            }
            gtable_release(a, a->wins[i]);
        }
        a->nwins = 0;
    } else {
        if (a->emit == VELO_EMIT_FINAL && a->nkeys == 0 &&
            a->global->n == 0) {
            /* SQL: an aggregate without GROUP BY has one row even over no
             * input (COUNT(*) = 0, SUM = NULL). */
            if (group_of(a, a->global, 0, AGG_SEED) < 0) {
                return VELO_ERR;
            }
        }
        rc = close_table(op, a->global);
        velo_arena_reset(a->global->arena);
        velo_hindex_clear(&a->global->idx);
        a->global->n = 0;
    }
    update_stats(op);
    return rc;
}

/* ---- Checkpoints ---------------------------------------------------------
 * Section layout (state.h encoding): magic, version, window kind, emit
 * mode, key and aggregate counts (a plan mismatch is refused), the event
 * time and watermark, then either every live session (key row, start,
 * last, emitted, states) or every group table (window start, groups:
 * key row, emitted, states). Aggregate states go through velo_agg's
 * save/load. Output already emitted is not state: restore continues
 * with the next row exactly as the uninterrupted operator would. */

#define AGG_SNAP_MAGIC UINT32_C(0x53474741) /* "AGGS" */
#define AGG_SNAP_VERSION 1

static void snap_key(const struct agg_impl *a, const struct grec *rec,
                     const struct velo_datatype *kt,
                     struct velo_state_writer *w)
{
    velo_sw_row(w, kt, a->nkeys, (const uint8_t *)rec + a->nulls_off,
                (const char *)rec + a->vals_off);
}

static int snap_states(const struct agg_impl *a, const char *rec,
                       struct velo_state_writer *w)
{
    for (size_t j = 0; j < a->naggs; j++) {
        if (a->aggs[j].agg->save(rec + a->aggs[j].off, w) != VELO_OK) {
            return VELO_ERR;
        }
    }
    return VELO_OK;
}

static int agg_snapshot(const struct velo_op *op, struct velo_state_writer *w)
{
    const struct agg_impl *a = op->impl;
    struct velo_datatype *kt = calloc(a->nkeys + 1, sizeof(*kt));
    if (kt == NULL) {
        w->oom = 1;
        return VELO_ERR;
    }
    for (size_t k = 0; k < a->nkeys; k++) {
        kt[k] = a->keys[k]->type;
    }
    int rc = VELO_OK;
    velo_sw_u32(w, AGG_SNAP_MAGIC);
    velo_sw_u8(w, AGG_SNAP_VERSION);
    velo_sw_u8(w, (uint8_t)(a->windowed ? a->kind : VELO_WINDOW_NONE));
    velo_sw_u8(w, (uint8_t)a->emit);
    velo_sw_u32(w, (uint32_t)a->nkeys);
    velo_sw_u32(w, (uint32_t)a->naggs);
    velo_sw_u8(w, (uint8_t)a->have_maxt);
    velo_sw_i64(w, a->maxt);
    velo_sw_u8(w, (uint8_t)a->have_wm);
    velo_sw_i64(w, a->wm);
    if (a->session) {
        velo_sw_u32(w, (uint32_t)a->live_sess);
        for (uint32_t sid = 0; sid < a->nsrec && rc == VELO_OK; sid++) {
            const struct srec *s = srec_at(a, sid);
            if (!s->live) {
                continue;
            }
            snap_key(a, rec_at(a->skeys, s->key), kt, w);
            velo_sw_i64(w, s->start);
            velo_sw_i64(w, s->last);
            velo_sw_u8(w, s->emitted);
            rc = snap_states(a, (const char *)s, w);
        }
    } else {
        struct gtable *const *tabs = a->windowed ? a->wins : &a->global;
        size_t ntabs = a->windowed ? a->nwins : 1;
        velo_sw_u32(w, (uint32_t)ntabs);
        for (size_t i = 0; i < ntabs && rc == VELO_OK; i++) {
            const struct gtable *g = tabs[i];
            velo_sw_i64(w, g->ws);
            velo_sw_u32(w, (uint32_t)g->n);
            for (size_t id = 0; id < g->n && rc == VELO_OK; id++) {
                const struct grec *rec = rec_at(g, id);
                snap_key(a, rec, kt, w);
                velo_sw_u8(w, rec->emitted);
                rc = snap_states(a, (const char *)rec, w);
            }
        }
    }
    free(kt);
    return rc == VELO_OK && !w->oom ? VELO_OK : VELO_ERR;
}

/* Read a key row and find or create its record in g: *fresh tells
 * whether it was new (a repeated key is a corrupt section). */
static long restore_key(struct agg_impl *a, struct gtable *g,
                        struct velo_batch *kb, struct velo_state_reader *r,
                        int *fresh)
{
    velo_batch_reset(kb);
    for (size_t k = 0; k < a->nkeys; k++) {
        struct velo_column *c = &kb->cols[k];
        union velo_slot v;
        uint8_t isnull;
        velo_sr_row(r, &c->type, 1, &isnull, &v, kb->arena);
        if (!velo_sr_ok(r, 0)) {
            return -1;
        }
        if (isnull) {
            velo_col_set_null(c, 0);
        } else {
            velo_col_put(c, 0, v);
            c->nulls[0] = 0;
        }
        a->keyc[k] = c;
    }
    kb->nrows = 1;
    uint64_t h;
    velo_keys_hash(a->keyc, a->nkeys, NULL, 1, &h, AGG_SEED);
    size_t before = g->n;
    long id = group_of(a, g, 0, h);
    *fresh = g->n > before;
    return id;
}

static int restore_states(struct agg_impl *a, char *rec,
                          struct velo_state_reader *r,
                          struct velo_arena *arena)
{
    a->actx.arena = arena;
    a->actx.eval = &a->ctx;
    for (size_t j = 0; j < a->naggs; j++) {
        if (a->aggs[j].agg->load(rec + a->aggs[j].off, r, &a->actx) !=
            VELO_OK) {
            return VELO_ERR;
        }
    }
    return velo_sr_ok(r, 0) ? VELO_OK : VELO_ERR;
}

static int agg_restore(struct velo_op *op, struct velo_state_reader *r)
{
    struct agg_impl *a = op->impl;
    if (a->nwins > 0 || a->live_sess > 0 ||
        (a->global != NULL && a->global->n > 0)) {
        return VELO_ERR; /* only into a fresh operator */
    }
    uint32_t magic = velo_sr_u32(r);
    uint8_t version = velo_sr_u8(r);
    uint8_t kind = velo_sr_u8(r);
    uint8_t emit = velo_sr_u8(r);
    uint32_t nkeys = velo_sr_u32(r);
    uint32_t naggs = velo_sr_u32(r);
    if (!velo_sr_ok(r, 0) || magic != AGG_SNAP_MAGIC ||
        version != AGG_SNAP_VERSION ||
        kind != (a->windowed ? a->kind : VELO_WINDOW_NONE) ||
        emit != a->emit || nkeys != a->nkeys || naggs != a->naggs) {
        velo_sr_fail(r);
        return VELO_ERR;
    }
    uint8_t have_maxt = velo_sr_u8(r);
    int64_t maxt = velo_sr_i64(r);
    uint8_t have_wm = velo_sr_u8(r);
    int64_t wm = velo_sr_i64(r);
    if (have_maxt > 1 || have_wm > 1) {
        velo_sr_fail(r);
    }
    a->have_maxt = have_maxt;
    a->maxt = maxt;
    a->have_wm = have_wm;
    a->wm = wm;
    /* A one-row batch of the key columns: restored keys go through the
     * same hashing and storing as keys of input rows. */
    struct velo_schema *ks = velo_schema_create(a->nkeys);
    struct velo_batch *kb = NULL;
    int rc = ks != NULL ? VELO_OK : VELO_ERR;
    for (size_t k = 0; k < a->nkeys && rc == VELO_OK; k++) {
        rc = velo_schema_set(ks, k, "k", a->keys[k]->type, 1, 0);
    }
    if (rc == VELO_OK && (kb = velo_batch_create(ks, 1)) == NULL) {
        rc = VELO_ERR;
    }
    uint32_t n = velo_sr_u32(r);
    if (a->session) {
        for (uint32_t i = 0; i < n && rc == VELO_OK && velo_sr_ok(r, 0);
             i++) {
            int fresh;
            long kid = restore_key(a, a->skeys, kb, r, &fresh);
            int64_t start = velo_sr_i64(r);
            int64_t last = velo_sr_i64(r);
            uint8_t emitted = velo_sr_u8(r);
            if (kid < 0 || !velo_sr_ok(r, 0) || last < start ||
                emitted > 1) {
                rc = VELO_ERR;
                break;
            }
            uint32_t sid = sess_new(a, (uint32_t)kid, start);
            if (sid == SNONE) {
                rc = VELO_ERR;
                break;
            }
            struct srec *s = srec_at(a, sid);
            s->last = last;
            s->emitted = emitted;
            rc = restore_states(a, (char *)s, r, a->skeys->arena);
        }
    } else {
        int64_t prev = INT64_MIN;
        for (uint32_t i = 0; i < n && rc == VELO_OK && velo_sr_ok(r, 0);
             i++) {
            int64_t ws = velo_sr_i64(r);
            uint32_t ng = velo_sr_u32(r);
            if (!velo_sr_ok(r, 0) || (!a->windowed && (n != 1 || ws != 0)) ||
                (a->windowed && i > 0 && ws <= prev)) {
                rc = VELO_ERR;
                break;
            }
            prev = ws;
            struct gtable *g = a->windowed ? find_window(a, ws) : a->global;
            if (g == NULL) {
                rc = VELO_ERR;
                break;
            }
            for (uint32_t q = 0; q < ng && rc == VELO_OK; q++) {
                int fresh;
                long id = restore_key(a, g, kb, r, &fresh);
                uint8_t emitted = velo_sr_u8(r);
                if (id < 0 || !fresh || emitted > 1 || !velo_sr_ok(r, 0)) {
                    rc = VELO_ERR;
                    break;
                }
                struct grec *rec = rec_at(g, (size_t)id);
                rec->emitted = emitted;
                rc = restore_states(a, (char *)rec, r, g->arena);
            }
        }
    }
    velo_batch_destroy(kb);
    velo_schema_destroy(ks);
    update_stats(op);
    if (rc != VELO_OK || !velo_sr_ok(r, 1)) {
        velo_sr_fail(r);
        return VELO_ERR;
    }
    return VELO_OK;
}

/* ---- Construction ------------------------------------------------------- */

static void agg_destroy(struct velo_op *op)
{
    struct agg_impl *a = op->impl;
    if (a == NULL) {
        return;
    }
    for (size_t k = 0; k < a->nkeys; k++) {
        if (a->key_ev != NULL) {
            velo_evaluator_destroy(a->key_ev[k]);
        }
        if (a->keys != NULL) {
            velo_expr_free(a->keys[k]);
        }
    }
    free(a->keys);
    free(a->key_ev);
    free(a->keyc);
    for (size_t j = 0; a->aggs != NULL && j < a->naggs; j++) {
        struct agg_rt *ag = &a->aggs[j];
        for (size_t k = 0; k < 2; k++) {
            velo_evaluator_destroy(ag->arg_ev[k]);
            velo_expr_free(ag->args[k]);
        }
        velo_evaluator_destroy(ag->filter_ev);
        velo_expr_free(ag->filter);
        free(ag->pass);
        free(ag->name);
    }
    for (uint32_t sid = 0; a->srecs != NULL && sid < a->nsrec; sid++) {
        struct srec *s = srec_at(a, sid);
        for (size_t j = 0; a->aggs != NULL && s->live && j < a->naggs; j++) {
            if (a->aggs[j].agg->destroy != NULL) {
                a->aggs[j].agg->destroy((char *)s + a->aggs[j].off);
            }
        }
    }
    free(a->aggs);
    velo_evaluator_destroy(a->time_ev);
    velo_expr_free(a->time_expr);
    for (size_t i = 0; i < a->nwins; i++) {
        gtable_free(a->wins[i]);
    }
    free(a->wins);
    free(a->srecs);
    free(a->stmpl);
    free(a->heap);
    free(a->closing);
    gtable_free(a->skeys);
    gtable_free(a->global);
    for (size_t i = 0; i < a->nspare; i++) {
        gtable_free(a->spare[i]);
    }
    velo_eval_ctx_free(&a->ctx);
    velo_eval_ctx_free(&a->fctx);
    velo_arena_destroy(a->eval_arena);
    free(a->hashes);
    free(a->wst);
    free(a->wmr);
    free(a->it_rows);
    free(a->it_ws);
    free(a->it_hash);
    free(a->valid);
    free(a->seg_rows);
    free(a->f_rows);
    free(a->tmp_rows);
    free(a->seg_gid);
    free(a->f_gid);
    velo_batch_destroy(a->out);
    free(a->tmpl);
    free(a);
}

static void format_interval(int64_t us, char *buf, size_t len)
{
    static const struct {
        int64_t us;
        const char *one, *many;
    } units[] = {{INT64_C(86400000000), "DAY", "DAYS"},
                 {INT64_C(3600000000), "HOUR", "HOURS"},
                 {60000000, "MINUTE", "MINUTES"},
                 {1000000, "SECOND", "SECONDS"},
                 {1000, "MILLISECOND", "MILLISECONDS"},
                 {1, "MICROSECOND", "MICROSECONDS"}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (us % units[i].us == 0) {
            long long k = (long long)(us / units[i].us);
            snprintf(buf, len, "%lld %s", k, k == 1 ? units[i].one
                                                    : units[i].many);
            return;
        }
    }
}

static void agg_explain(const struct velo_op *op, char *buf, size_t len)
{
    const struct agg_impl *a = op->impl;
    size_t used = 0;
#define PUT(...) velo_buf_appendf(buf, len, &used, __VA_ARGS__)
    if (a->nkeys > 0) {
        PUT("keys: ");
        for (size_t k = 0; k < a->nkeys; k++) {
            PUT("%s%s", k ? ", " : "",
                op->out_schema->fields[a->out_key0 + k].name);
        }
        PUT("; ");
    } else {
        PUT("one group; ");
    }
    if (a->naggs > 0) {
        PUT("aggregates: ");
        for (size_t j = 0; j < a->naggs; j++) {
            PUT("%s%s", j ? ", " : "", a->aggs[j].name);
        }
    } else {
        PUT("distinct keys");
    }
    if (a->windowed) {
        char iv[64];
        format_interval(a->size_us, iv, sizeof(iv));
        PUT("; window: %s %s",
            a->kind == VELO_WINDOW_HOPPING   ? "HOPPING"
            : a->kind == VELO_WINDOW_SESSION ? "SESSION gap"
                                             : "TUMBLING",
            iv);
        if (a->kind == VELO_WINDOW_HOPPING) {
            format_interval(a->step_us, iv, sizeof(iv));
            PUT(" advancing %s", iv);
        }
        if (a->time_expr != NULL) {
            char e[128];
            velo_expr_format(a->time_expr, NULL, e, sizeof(e));
            PUT(" on %s", a->time_expr->text != NULL ? a->time_expr->text : e);
        } else {
            PUT(" on %s", VELO_COL_TIMESTAMP);
        }
        if (a->grace_us > 0) {
            format_interval(a->grace_us, iv, sizeof(iv));
            PUT("; grace %s", iv);
        }
        if (a->ooo_us > 0) {
            format_interval(a->ooo_us, iv, sizeof(iv));
            PUT("; watermark: highest event time - %s", iv);
        }
        if (a->late_update) {
            format_interval(a->retain_us, iv, sizeof(iv));
            PUT("; late rows update windows held %s after closing", iv);
        }
    }
    if (a->emit == VELO_EMIT_FINAL) {
        PUT(a->windowed ? "; emits FINAL rows when a window closes "
                          "(watermark) or the input ends"
                        : "; emits FINAL rows when the input ends");
    } else if (a->session) {
        PUT("; emits CHANGES: the session's row after every input row, "
            "DELETE for sessions merged away");
    } else {
        PUT("; emits CHANGES: the group's row after every input row");
    }
#undef PUT
}

static const struct velo_op_ops agg_ops = {
    .name = "Aggregate",
    .push = agg_push,
    .watermark = agg_watermark,
    .finish = agg_finish,
    .destroy = agg_destroy,
    .explain = agg_explain,
    .snapshot = agg_snapshot,
    .restore = agg_restore,
};

/* Wrap e in a CAST to `to` when its representation differs (the binder
 * normally did this already). */
static struct velo_expr *coerce_arg(struct velo_expr *e,
                                    struct velo_datatype to)
{
    if (e == NULL || to.id == VELO_TYPE_NULL || e->type.id == to.id) {
        return e;
    }
    struct velo_datatype target = velo_widen_target(e->type, to);
    if (!velo_cast_supported(e->type, target)) {
        return e; /* compile will report it */
    }
    struct velo_expr *c = velo_expr_new(VELO_EXPR_CAST, target, 1);
    if (c == NULL) {
        return NULL;
    }
    c->args[0] = e;
    return c;
}

struct velo_op *velo_op_aggregate(const struct velo_exec_env *env,
                                  const struct velo_schema *in,
                                  struct velo_expr **keys,
                                  const char *const *key_names, size_t nkeys,
                                  struct velo_agg_call *aggs, size_t naggs,
                                  const struct velo_window_spec *window,
                                  int emit)
{
    struct agg_impl *a = calloc(1, sizeof(*a));
    struct velo_schema *out = NULL;
    struct velo_op *op = NULL;
    int err = EINVAL;
    /* Take ownership of every expression first, so failure frees them
     * all whatever went wrong. */
    if (a != NULL) {
        a->keys = calloc(nkeys ? nkeys : 1, sizeof(*a->keys));
        a->aggs = calloc(naggs ? naggs : 1, sizeof(*a->aggs));
        a->time_expr = window != NULL ? window->time : NULL;
    }
    if (a == NULL || a->keys == NULL || a->aggs == NULL) {
        for (size_t k = 0; keys != NULL && k < nkeys; k++) {
            velo_expr_free(keys[k]);
        }
        for (size_t j = 0; aggs != NULL && j < naggs; j++) {
            velo_expr_free(aggs[j].args[0]);
            velo_expr_free(aggs[j].args[1]);
            velo_expr_free(aggs[j].filter);
        }
        if (window != NULL) {
            velo_expr_free(window->time);
        }
        if (a != NULL) {
            free(a->keys);
            free(a->aggs);
            free(a);
        }
        errno = ENOMEM;
        return NULL;
    }
    a->nkeys = nkeys;
    a->naggs = naggs;
    for (size_t k = 0; k < nkeys; k++) {
        a->keys[k] = keys[k];
    }
    for (size_t j = 0; j < naggs; j++) {
        a->aggs[j].nargs = aggs[j].nargs > 2 ? 2 : aggs[j].nargs;
        a->aggs[j].args[0] = aggs[j].args[0];
        a->aggs[j].args[1] = aggs[j].args[1];
        a->aggs[j].filter = aggs[j].filter;
        a->aggs[j].agg = aggs[j].agg;
    }
    if (env == NULL || in == NULL || (nkeys > 0 && key_names == NULL) ||
        (naggs > 0 && aggs == NULL) ||
        (emit != VELO_EMIT_CHANGES && emit != VELO_EMIT_FINAL)) {
        goto fail;
    }
    a->cap = env->batch_cap ? env->batch_cap : VELO_BATCH_ROWS;
    a->emit = emit;
    a->windowed = window != NULL && (window->kind == VELO_WINDOW_TUMBLING ||
                                     window->kind == VELO_WINDOW_HOPPING ||
                                     window->kind == VELO_WINDOW_SESSION);
    a->session = a->windowed && window->kind == VELO_WINDOW_SESSION;
    a->sfree = SNONE;
    if (window != NULL && window->kind != VELO_WINDOW_NONE &&
        !a->windowed) {
        goto fail;
    }
    if (a->windowed) {
        a->kind = window->kind;
        a->size_us = window->size_us;
        /* A session's size is its gap; it has no grid of windows. */
        a->step_us = window->kind == VELO_WINDOW_HOPPING ? window->advance_us
                                                         : window->size_us;
        a->grace_us = window->grace_us;
        a->ooo_us = window->max_ooo_us;
        a->late_update = window->late_strategy == VELO_LATE_UPDATE;
        if (a->size_us <= 0 || a->step_us <= 0 || a->step_us > a->size_us ||
            a->grace_us < 0 || a->ooo_us < 0 ||
            (window->late_strategy != VELO_LATE_DROP &&
             window->late_strategy != VELO_LATE_UPDATE) ||
            (a->late_update && emit != VELO_EMIT_CHANGES)) {
            goto fail;
        }
        /* Updates reach a closed window for as long as rows within the
         * allowed disorder or grace can still arrive for it. */
        a->retain_us = a->late_update ? (a->grace_us > a->ooo_us
                                             ? a->grace_us
                                             : a->ooo_us)
                                      : 0;
        a->hops = (size_t)((a->size_us + a->step_us - 1) / a->step_us);
        if (a->time_expr == NULL) {
            a->ts_col = velo_schema_find(in, VELO_COL_TIMESTAMP);
            if (a->ts_col < 0 ||
                velo_phys(in->fields[a->ts_col].type.id) != VELO_PHYS_I64) {
                goto fail;
            }
        } else if (a->time_expr->type.id != VELO_TYPE_TIMESTAMP) {
            goto fail; /* the binder casts other types to TIMESTAMP */
        }
    }
    err = ENOMEM;

    /* Record layout: header, key NULL flags, key values, states. Sessions
     * keep the states in their own records (struct srec, states) and the
     * key record ends with struct skey instead. */
    a->nulls_off = sizeof(struct grec);
    a->vals_off = a->nulls_off + ALIGN8(nkeys);
    size_t off = a->vals_off + nkeys * sizeof(union velo_slot);
    size_t key_rec = 0;
    if (a->session) {
        a->skey_off = off;
        key_rec = ALIGN8(off + sizeof(struct skey));
        off = sizeof(struct srec);
    }
    for (size_t j = 0; j < naggs; j++) {
        struct agg_rt *ag = &a->aggs[j];
        if (ag->agg == NULL || aggs[j].name == NULL ||
            (size_t)ag->agg->nargs != ag->nargs) {
            err = EINVAL;
            goto fail;
        }
        if (aggs[j].distinct) {
            if (strcmp(ag->agg->name, "COUNT") == 0 && ag->nargs == 1) {
                ag->agg = velo_agg_count_distinct();
            } else if (strcmp(ag->agg->name, "MIN") != 0 &&
                       strcmp(ag->agg->name, "MAX") != 0) {
                err = EINVAL; /* DISTINCT changes nothing for MIN/MAX */
                goto fail;
            }
        }
        ag->off = off;
        off += ALIGN8(ag->agg->state_size);
        ag->name = strdup(aggs[j].name);
        if (ag->name == NULL) {
            goto fail;
        }
    }
    if (a->session) {
        a->sstride = ALIGN8(off);
        a->stride = key_rec;
        a->tmpl = calloc(1, a->stride);
        a->stmpl = calloc(1, a->sstride);
        if (a->tmpl == NULL || a->stmpl == NULL) {
            goto fail;
        }
        struct skey empty = {SNONE, 0};
        memcpy(a->tmpl + a->skey_off, &empty, sizeof(empty));
        for (size_t j = 0; j < naggs; j++) {
            a->aggs[j].agg->init(a->stmpl + a->aggs[j].off);
        }
    } else {
        a->stride = ALIGN8(off);
        a->tmpl = calloc(1, a->stride);
        if (a->tmpl == NULL) {
            goto fail;
        }
        for (size_t j = 0; j < naggs; j++) {
            a->aggs[j].agg->init(a->tmpl + a->aggs[j].off);
        }
    }

    size_t nout = (a->windowed ? 2 : 0) + nkeys + naggs;
    a->out_key0 = a->windowed ? 2 : 0;
    out = velo_schema_create(nout);
    if (out == NULL) {
        goto fail;
    }
    struct velo_datatype ts = velo_type_of(VELO_TYPE_TIMESTAMP);
    if (a->windowed &&
        (velo_schema_set(out, 0, VELO_COL_WINDOW_START, ts, 0, 1) != VELO_OK ||
         velo_schema_set(out, 1, VELO_COL_WINDOW_END, ts, 0, 1) != VELO_OK)) {
        goto fail;
    }
    for (size_t k = 0; k < nkeys; k++) {
        if (a->keys[k] == NULL || key_names[k] == NULL) {
            err = EINVAL;
            goto fail;
        }
        if (velo_schema_set(out, a->out_key0 + k, key_names[k],
                            a->keys[k]->type, 1, 0) != VELO_OK) {
            goto fail;
        }
    }
    for (size_t j = 0; j < naggs; j++) {
        struct agg_rt *ag = &a->aggs[j];
        struct velo_datatype at[2];
        for (size_t k = 0; k < ag->nargs; k++) {
            if (ag->args[k] == NULL) {
                err = EINVAL;
                goto fail;
            }
            struct velo_expr *c = coerce_arg(ag->args[k], ag->agg->args[k]);
            if (c == NULL) {
                goto fail;
            }
            ag->args[k] = c;
            at[k] = c->type;
        }
        struct velo_datatype rt = ag->agg->ret_type != NULL
                                      ? ag->agg->ret_type(at, ag->nargs)
                                      : ag->agg->ret;
        int nullable = strcmp(ag->agg->name, "COUNT") != 0;
        if (velo_schema_set(out, a->out_key0 + nkeys + j, ag->name, rt,
                            nullable, 0) != VELO_OK) {
            goto fail;
        }
    }

    /* Evaluators and scratch. */
    a->key_ev = calloc(nkeys ? nkeys : 1, sizeof(*a->key_ev));
    a->keyc = calloc(nkeys ? nkeys : 1, sizeof(*a->keyc));
    if (a->key_ev == NULL || a->keyc == NULL) {
        goto fail;
    }
    for (size_t k = 0; k < nkeys; k++) {
        a->key_ev[k] = velo_expr_compile(a->keys[k], in, a->cap);
        if (a->key_ev[k] == NULL) {
            err = errno;
            goto fail;
        }
    }
    a->fast_i64 = nkeys == 1 && velo_phys(a->keys[0]->type.id) == VELO_PHYS_I64;
    for (size_t j = 0; j < naggs; j++) {
        struct agg_rt *ag = &a->aggs[j];
        for (size_t k = 0; k < ag->nargs; k++) {
            ag->arg_ev[k] = velo_expr_compile(ag->args[k], in, a->cap);
            if (ag->arg_ev[k] == NULL) {
                err = errno;
                goto fail;
            }
        }
        if (ag->filter != NULL) {
            ag->filter_ev = velo_expr_compile(ag->filter, in, a->cap);
            ag->pass = calloc(a->cap, 1);
            if (ag->filter_ev == NULL || ag->pass == NULL) {
                err = errno;
                goto fail;
            }
        }
    }
    if (a->time_expr != NULL) {
        a->time_ev = velo_expr_compile(a->time_expr, in, a->cap);
        if (a->time_ev == NULL) {
            err = errno;
            goto fail;
        }
    }
    a->eval_arena = velo_arena_create(16 * 1024);
    a->hashes = calloc(a->cap, sizeof(*a->hashes));
    a->wst = calloc(a->cap, sizeof(*a->wst));
    a->wmr = calloc(a->cap, sizeof(*a->wmr));
    a->it_rows = calloc(a->cap, sizeof(*a->it_rows));
    a->it_ws = calloc(a->cap, sizeof(*a->it_ws));
    a->it_hash = calloc(a->cap, sizeof(*a->it_hash));
    a->valid = calloc(a->cap, sizeof(uint16_t));
    a->seg_rows = calloc(a->cap, sizeof(uint16_t));
    a->f_rows = calloc(a->cap, sizeof(uint16_t));
    a->tmp_rows = calloc(a->cap, sizeof(uint16_t));
    a->seg_gid = calloc(a->cap, sizeof(uint32_t));
    a->f_gid = calloc(a->cap, sizeof(uint32_t));
    a->out = velo_batch_create(out, a->cap);
    if (a->eval_arena == NULL || a->hashes == NULL || a->wst == NULL ||
        a->wmr == NULL || a->it_rows == NULL || a->it_ws == NULL ||
        a->it_hash == NULL ||
        a->valid == NULL || a->seg_rows == NULL || a->f_rows == NULL ||
        a->tmp_rows == NULL || a->seg_gid == NULL || a->f_gid == NULL ||
        a->out == NULL || velo_eval_ctx_init(&a->ctx, a->cap, 1) != VELO_OK ||
        velo_eval_ctx_init(&a->fctx, a->cap, 1) != VELO_OK) {
        goto fail;
    }
    a->out->origin = NULL; /* rows of groups come from many inputs */
    a->out->op = emit == VELO_EMIT_CHANGES ? velo_batch_op_buf(a->out) : NULL;
    if (!a->windowed) {
        a->global = gtable_get(a, 0);
        if (a->global == NULL) {
            goto fail;
        }
    }
    if (a->session) {
        a->skeys = gtable_get(a, 0);
        if (a->skeys == NULL) {
            goto fail;
        }
    }
    op = velo_op_alloc(env, &agg_ops, out, a);
    if (op == NULL) {
        goto fail;
    }
    op->keeps_state = 1;
    update_stats(op);
    return op;
fail:
    {
        struct velo_op tmp = {.impl = a};
        agg_destroy(&tmp);
    }
    velo_schema_destroy(out);
    errno = err != 0 ? err : ENOMEM;
    return NULL;
}
