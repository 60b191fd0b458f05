/*
 * Window join: both inputs are cut into the same TUMBLING or HOPPING
 * windows of event time; a window's rows are buffered until it closes
 * (watermark >= end + grace, or finish) and are then joined on the keys.
 *
 * Each open window holds two sides (join-internal.h) indexed by key as
 * rows arrive, so closing a window is one probe of the right side per
 * left row. A hopping row is stored once in every window that contains
 * it. Windows are kept sorted by start (few are open at a time) and a
 * closed window's sides are cleared and pooled for the next one, so
 * memory follows the open windows. A row whose every window has already
 * closed is late: counted, reported, dropped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <velo/log.h>

#include "exec/func-internal.h"
#include "exec/join-internal.h"

#define JOIN_VERSION_WINDOW UINT32_C(0x4a570001) /* "JW" v1 */

struct jwin {
    int64_t start;
    struct velo_join_side side[2];
};

struct window_impl {
    int type;
    int64_t size, step, grace;
    int kind;
    struct velo_join_timed in;
    const struct velo_schema *schema[2];
    struct jwin **wins; /* open, sorted by start */
    size_t nwins, wins_cap;
    struct jwin **pool;
    size_t npool, pool_cap;
    struct velo_join_out out;
    int64_t wm;
};

static void win_free(struct jwin *w)
{
    if (w != NULL) {
        velo_join_side_free(&w->side[0]);
        velo_join_side_free(&w->side[1]);
        free(w);
    }
}

static void window_stats(struct velo_op *op)
{
    struct window_impl *j = op->impl;
    size_t rows = 0, bytes = 0;
    for (size_t i = 0; i < j->nwins; i++) {
        for (int s = 0; s < 2; s++) {
            rows += j->wins[i]->side[s].live;
            bytes += velo_join_side_bytes(&j->wins[i]->side[s]);
        }
    }
    for (size_t i = 0; i < j->npool; i++) {
        bytes += velo_join_side_bytes(&j->pool[i]->side[0]) +
                 velo_join_side_bytes(&j->pool[i]->side[1]);
    }
    op->stats.state_rows = rows;
    op->stats.state_bytes = bytes;
}

/* The open window starting at `start`, created when missing. */
static struct jwin *win_get(struct window_impl *j, int64_t start)
{
    size_t lo = 0, hi = j->nwins;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (j->wins[mid]->start < start) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < j->nwins && j->wins[lo]->start == start) {
        return j->wins[lo];
    }
    if (j->nwins == j->wins_cap) {
        size_t cap = j->wins_cap ? j->wins_cap * 2 : 16;
        struct jwin **w = realloc(j->wins, cap * sizeof(*w));
        if (w == NULL) {
            return NULL;
        }
        j->wins = w;
        j->wins_cap = cap;
    }
    struct jwin *w;
    if (j->npool > 0) {
        w = j->pool[--j->npool];
    } else {
        w = calloc(1, sizeof(*w));
        if (w == NULL ||
            velo_join_side_init(&w->side[0], j->schema[0], j->in.ktypes[0],
                                j->in.nkeys) != VELO_OK ||
            velo_join_side_init(&w->side[1], j->schema[1], j->in.ktypes[0],
                                j->in.nkeys) != VELO_OK) {
            win_free(w);
            errno = ENOMEM;
            return NULL;
        }
    }
    w->start = start;
    memmove(&j->wins[lo + 1], &j->wins[lo], (j->nwins - lo) * sizeof(*j->wins));
    j->wins[lo] = w;
    j->nwins++;
    return w;
}

static int64_t close_at(const struct window_impl *j, int64_t start)
{
    return velo_join_sat_add(velo_join_sat_add(start, j->size), j->grace);
}

/* Join a closing window's rows and emit them. */
static int win_close(struct velo_op *op, struct window_impl *j, struct jwin *w)
{
    struct velo_join_side *l = &w->side[0], *r = &w->side[1];
    int64_t ws = w->start, we = velo_join_sat_add(w->start, j->size);
    j->out.mark_l = l;
    j->out.mark_r = r;
    struct velo_join_src ls, rsrc;
    for (uint32_t a = 0; a < l->rs.n; a++) {
        if (!l->used[a] || velo_join_side_key_null(l, a)) {
            continue;
        }
        uint64_t h = l->idx.hash[a];
        velo_join_stored_src(l, a, &ls);
        for (uint32_t b = velo_join_chain_first(&r->idx, h);
             b != VELO_JOIN_NONE; b = r->idx.next[b]) {
            if (r->idx.hash[b] != h || !velo_join_side_keys_eq(l, a, r, b)) {
                continue;
            }
            velo_join_stored_src(r, b, &rsrc);
            int64_t ts = l->time[a] > r->time[b] ? l->time[a] : r->time[b];
            int rc =
                velo_join_out_row(op, &j->out, &ls, &rsrc, a, b, 1, ts, ws, we);
            if (rc != VELO_OK) {
                return rc;
            }
        }
    }
    /* Matched flags are final only once every pair has been decided. */
    int rc = velo_join_out_flush(op, &j->out);
    for (int s = 0; rc == VELO_OK && s < 2; s++) {
        struct velo_join_side *side = &w->side[s];
        if (!velo_join_side_outer(j->type, s)) {
            continue;
        }
        for (uint32_t a = 0; rc == VELO_OK && a < side->rs.n; a++) {
            if (side->used[a] && !side->matched[a]) {
                rc = velo_join_emit_unmatched(op, &j->out, side, s, a, ws, we);
            }
        }
    }
    if (rc == VELO_OK) {
        rc = velo_join_out_flush(op, &j->out);
    }
    return rc;
}

/* Close every window that closes at or before wm (all: every window). */
static int close_until(struct velo_op *op, int64_t wm, int all)
{
    struct window_impl *j = op->impl;
    size_t closed = 0;
    int rc = VELO_OK;
    while (closed < j->nwins &&
           (all || close_at(j, j->wins[closed]->start) <= wm)) {
        struct jwin *w = j->wins[closed];
        rc = win_close(op, j, w);
        closed++;
        velo_join_side_clear(&w->side[0]);
        velo_join_side_clear(&w->side[1]);
        if (j->npool == j->pool_cap) {
            size_t cap = j->pool_cap ? j->pool_cap * 2 : 8;
            struct jwin **p = realloc(j->pool, cap * sizeof(*p));
            if (p == NULL) {
                win_free(w);
                rc = VELO_ERR;
                break;
            }
            j->pool = p;
            j->pool_cap = cap;
        }
        j->pool[j->npool++] = w;
        if (rc != VELO_OK) {
            break;
        }
    }
    if (closed > 0) {
        memmove(j->wins, j->wins + closed,
                (j->nwins - closed) * sizeof(*j->wins));
        j->nwins -= closed;
    }
    /* Keep a few cleared windows for reuse; free what a burst left. */
    while (j->npool > 4) {
        win_free(j->pool[--j->npool]);
    }
    window_stats(op);
    return rc;
}

static int window_push_port(struct velo_op *op, size_t port,
                            struct velo_batch *in)
{
    struct window_impl *j = op->impl;
    int side = port == 0 ? 0 : 1;
    struct velo_join_timed *ti = &j->in;
    size_t n = velo_batch_live(in);
    const struct velo_column *tc = velo_join_timed_eval(op, ti, side, in);
    int outer = velo_join_side_outer(j->type, side);
    for (size_t i = 0; i < n; i++) {
        size_t r = in->sel != NULL ? in->sel[i] : i;
        if (ti->k.ctx.row_error[r]) {
            continue;
        }
        if (velo_col_is_null(tc, r)) {
            velo_eval_error(&ti->k.ctx, r, VELO_EVAL_BAD_ARG,
                            "the event time is NULL: the row belongs to "
                            "no window");
            continue;
        }
        if (!outer && velo_join_keys_null(&ti->k, ti->nkeys, r)) {
            continue;
        }
        int64_t t = tc->v.i64[r], last;
        if (__builtin_mul_overflow(velo_floor_div(t, j->step), j->step,
                                   &last)) {
            velo_eval_error(&ti->k.ctx, r, VELO_EVAL_OVERFLOW,
                            "the event time is out of range for a window");
            continue;
        }
        if (close_at(j, last) <= j->wm) {
            velo_join_report_late(op, in, r, t, j->wm);
            continue;
        }
        /* Windows [s, s + size) holding t, from the last one back; those
         * already closed are skipped (a hopping row still counts in its
         * open windows). */
        int64_t first_end = velo_join_sat_add(t, -j->size);
        for (int64_t s = last; s > first_end; s -= j->step) {
            if (close_at(j, s) <= j->wm) {
                break;
            }
            struct jwin *w = win_get(j, s);
            if (w == NULL) {
                return VELO_ERR;
            }
            uint32_t id = velo_join_side_alloc(&w->side[side]);
            if (id == VELO_JOIN_NONE ||
                velo_join_side_put(&w->side[side], id, in, r, ti->k.kcols,
                                   ti->k.hashes[i], t) != VELO_OK) {
                return VELO_ERR;
            }
            if (s < INT64_MIN + j->step) {
                break;
            }
        }
    }
    velo_join_scratch_report(op, &ti->k, in, n);
    window_stats(op);
    return VELO_OK;
}

static int window_watermark(struct velo_op *op, int64_t wm_us)
{
    struct window_impl *j = op->impl;
    if (wm_us <= j->wm) {
        return VELO_OK;
    }
    j->wm = wm_us;
    return close_until(op, wm_us, 0);
}

static int window_finish(struct velo_op *op)
{
    return close_until(op, INT64_MAX, 1);
}

static void window_destroy(struct velo_op *op)
{
    struct window_impl *j = op->impl;
    if (j == NULL) {
        return;
    }
    for (size_t i = 0; i < j->nwins; i++) {
        win_free(j->wins[i]);
    }
    for (size_t i = 0; i < j->npool; i++) {
        win_free(j->pool[i]);
    }
    free(j->wins);
    free(j->pool);
    velo_join_timed_free(&j->in);
    velo_join_out_free(&j->out);
    free(j);
}

static void window_explain(const struct velo_op *op, char *buf, size_t len)
{
    const struct window_impl *j = op->impl;
    if (j->kind == VELO_WINDOW_HOPPING) {
        snprintf(buf, len,
                 "%s window join on %zu key%s; HOPPING %lld us every %lld "
                 "us (grace %lld us); joins a window's rows when it "
                 "closes%s",
                 velo_join_type_name(j->type), j->in.nkeys,
                 j->in.nkeys == 1 ? "" : "s", (long long)j->size,
                 (long long)j->step, (long long)j->grace,
                 j->out.residual != NULL ? "; residual predicate" : "");
    } else {
        snprintf(buf, len,
                 "%s window join on %zu key%s; TUMBLING %lld us (grace %lld "
                 "us); joins a window's rows when it closes%s",
                 velo_join_type_name(j->type), j->in.nkeys,
                 j->in.nkeys == 1 ? "" : "s", (long long)j->size,
                 (long long)j->grace,
                 j->out.residual != NULL ? "; residual predicate" : "");
    }
}

static int window_snapshot(const struct velo_op *op,
                           struct velo_state_writer *w)
{
    struct window_impl *j = op->impl;
    velo_sw_u32(w, JOIN_VERSION_WINDOW);
    velo_sw_i64(w, j->wm);
    velo_sw_u64(w, j->nwins);
    for (size_t i = 0; i < j->nwins; i++) {
        struct jwin *win = j->wins[i];
        velo_sw_i64(w, win->start);
        for (int s = 0; s < 2; s++) {
            struct velo_join_side *side = &win->side[s];
            velo_sw_u64(w, side->live);
            for (uint32_t id = 0; id < side->rs.n; id++) {
                if (side->used[id]) {
                    velo_join_side_save_row(side, id, w);
                }
            }
        }
    }
    return w->oom ? VELO_ERR : VELO_OK;
}

static int window_restore(struct velo_op *op, struct velo_state_reader *r)
{
    struct window_impl *j = op->impl;
    if (velo_sr_u32(r) != JOIN_VERSION_WINDOW) {
        velo_sr_fail(r);
        return VELO_ERR;
    }
    j->wm = velo_sr_i64(r);
    uint64_t nw = velo_sr_u64(r);
    if (!velo_sr_ok(r, 0) || nw > (r->len - r->off) / 8) {
        velo_sr_fail(r);
        return VELO_ERR;
    }
    for (uint64_t i = 0; i < nw; i++) {
        int64_t start = velo_sr_i64(r);
        if (!velo_sr_ok(r, 0) ||
            (j->nwins > 0 && j->wins[j->nwins - 1]->start >= start) ||
            start % j->step != 0) {
            velo_sr_fail(r); /* windows are written in order, aligned */
            return VELO_ERR;
        }
        struct jwin *w = win_get(j, start);
        if (w == NULL) {
            return VELO_ERR;
        }
        for (int s = 0; s < 2; s++) {
            uint64_t n = velo_sr_u64(r);
            if (!velo_sr_ok(r, 0) || n > (r->len - r->off) / 8) {
                velo_sr_fail(r);
                return VELO_ERR;
            }
            for (uint64_t k = 0; k < n; k++) {
                if (velo_join_side_load_row(&w->side[s], r) == VELO_JOIN_NONE) {
                    return VELO_ERR;
                }
            }
        }
    }
    window_stats(op);
    return velo_sr_ok(r, 1) ? VELO_OK : VELO_ERR;
}

static const struct velo_op_ops window_ops = {
    .name = "WindowJoin",
    .watermark = window_watermark,
    .finish = window_finish,
    .destroy = window_destroy,
    .explain = window_explain,
    .push_port = window_push_port,
    .snapshot = window_snapshot,
    .restore = window_restore,
};

struct velo_op *velo_op_window_join(const struct velo_exec_env *env,
                                    const struct velo_schema *left,
                                    const struct velo_schema *right,
                                    struct velo_join_keys *keys,
                                    const struct velo_window_spec *window,
                                    struct velo_expr *rtime)
{
    struct window_impl *j = NULL;
    struct velo_schema *out = NULL;
    struct velo_op *op = NULL;
    struct velo_expr *ltime = window != NULL ? window->time : NULL;
    if (env == NULL || left == NULL || right == NULL || window == NULL ||
        velo_join_keys_check(keys) != VELO_OK || keys->nkeys == 0 ||
        keys->nkeys > 64 || window->size_us <= 0 || window->grace_us < 0 ||
        (window->kind != VELO_WINDOW_TUMBLING &&
         window->kind != VELO_WINDOW_HOPPING) ||
        (window->kind == VELO_WINDOW_HOPPING &&
         (window->advance_us <= 0 || window->advance_us > window->size_us))) {
        errno = EINVAL;
        goto fail;
    }
    j = calloc(1, sizeof(*j));
    out = velo_join_schema(left, right, 1);
    if (j == NULL || out == NULL) {
        goto fail;
    }
    j->type = keys->type;
    j->kind = window->kind;
    j->size = window->size_us;
    j->step = window->kind == VELO_WINDOW_HOPPING ? window->advance_us
                                                  : window->size_us;
    j->grace = window->grace_us;
    j->wm = INT64_MIN;
    struct velo_expr *residual = keys->residual;
    keys->residual = NULL;
    if (velo_join_out_init(&j->out, env, out, 2, left->n, right->n, residual) !=
        VELO_OK) {
        goto fail;
    }
    j->schema[0] = left;
    j->schema[1] = right;
    j->in.time[0] = ltime;
    j->in.time[1] = rtime;
    ltime = rtime = NULL;
    if (velo_join_timed_init(&j->in, env, keys, left, right) != VELO_OK) {
        goto fail;
    }
    op = velo_op_alloc(env, &window_ops, out, j);
    if (op == NULL || velo_op_ports_init(op, 2, NULL) != VELO_OK) {
        goto fail;
    }
    op->keeps_state = 1;
    return op;
fail:;
    int saved = errno != 0 ? errno : ENOMEM;
    if (op != NULL) {
        velo_op_destroy(op);
    } else {
        if (j != NULL) {
            struct velo_op tmp = {.impl = j};
            window_destroy(&tmp);
        }
        velo_schema_destroy(out);
    }
    velo_join_keys_free(keys);
    velo_expr_free(ltime);
    velo_expr_free(rtime);
    errno = saved;
    return NULL;
}
