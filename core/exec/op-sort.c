/*
 * Sort (ORDER BY on bounded input): buffers rows (values in a row store,
 * strings in its arena) and emits them in order at finish. With a limit
 * it keeps only the best limit+offset rows in a heap, so memory is
 * bounded by the limit, not the input; a row that cannot make the cut is
 * rejected by comparing its keys straight from the batch, without a copy.
 * Ties keep arrival order (a stable sort), so results are deterministic.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <velo/log.h>

#include "exec/exec-internal.h"
#include "exec/state.h"

struct sort_impl {
    size_t nkeys;
    struct velo_sort_key *keys; /* exprs owned */
    struct velo_evaluator **evs;
    int *phys;
    int64_t limit, offset;
    int topn;
    size_t k; /* rows to keep with topn */
    size_t ncols_in;
    struct velo_rowstore rs; /* input columns, then key values */
    uint32_t *heap;          /* topn: row ids, worst on top */
    size_t nheap;
    long scratch; /* topn: row id being filled */
    uint64_t seq;
    int saw_ops; /* the input carried changelog marks: keep them */
    struct velo_eval_ctx ctx;
    struct velo_arena *arena;
    const struct velo_column **kc;
    size_t cap;
    struct velo_batch *out;
};

/* Order of stored rows a and b: < 0 when a comes first. */
static int cmp_rows(struct sort_impl *s, size_t a, size_t b)
{
    return velo_rowstore_cmp(&s->rs, a, b, s->ncols_in, s->keys, s->phys,
                             s->nkeys);
}

/* Would batch row r come before stored row id? (Equal keys: no, the
 * stored row arrived first.) */
static int batch_row_before(struct sort_impl *s, size_t r, size_t id)
{
    return velo_rowstore_before(&s->rs, id, s->kc, r, s->ncols_in, s->keys,
                                s->phys, s->nkeys);
}

static int fill_row(struct sort_impl *s, size_t id,
                    const struct velo_batch *in, size_t r)
{
    for (size_t c = 0; c < s->ncols_in; c++) {
        if (velo_rowstore_set(&s->rs, id, c, &in->cols[c], r) != VELO_OK) {
            return VELO_ERR;
        }
    }
    for (size_t k = 0; k < s->nkeys; k++) {
        if (velo_rowstore_set(&s->rs, id, s->ncols_in + k, s->kc[k], r) !=
            VELO_OK) {
            return VELO_ERR;
        }
    }
    struct velo_rowhdr *h = velo_rowstore_hdr(&s->rs, id);
    h->seq = s->seq++;
    h->op = in->op != NULL ? in->op[r] : VELO_ROW_INSERT;
    s->saw_ops |= in->op != NULL;
    if (in->origin != NULL) {
        h->origin = in->origin[r];
    } else {
        h->origin.source = -1;
    }
    return VELO_OK;
}

/* Max-heap on the sort order: the row that would come last on top. */
static void heap_down(struct sort_impl *s, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->nheap && cmp_rows(s, s->heap[l], s->heap[m]) > 0) {
            m = l;
        }
        if (r < s->nheap && cmp_rows(s, s->heap[r], s->heap[m]) > 0) {
            m = r;
        }
        if (m == i) {
            return;
        }
        uint32_t t = s->heap[i];
        s->heap[i] = s->heap[m];
        s->heap[m] = t;
        i = m;
    }
}

static void heap_up(struct sort_impl *s, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (cmp_rows(s, s->heap[i], s->heap[p]) <= 0) {
            return;
        }
        uint32_t t = s->heap[i];
        s->heap[i] = s->heap[p];
        s->heap[p] = t;
        i = p;
    }
}

static int sort_push(struct velo_op *op, struct velo_batch *in)
{
    struct sort_impl *s = op->impl;
    size_t n = velo_batch_live(in);
    if (s->topn && s->k == 0) {
        return VELO_OK;
    }
    velo_arena_reset(s->arena);
    s->ctx.arena = s->arena;
    s->ctx.now_us = velo_op_now(op->env);
    for (size_t k = 0; k < s->nkeys; k++) {
        s->kc[k] = velo_evaluate(s->evs[k], &s->ctx, in);
    }
    if (s->ctx.n_errors > 0) {
        velo_op_report_errors(op, &s->ctx, in, in->sel, n);
    }
    for (size_t i = 0; i < n; i++) {
        size_t r = in->sel != NULL ? in->sel[i] : i;
        if (s->ctx.n_errors > 0 && s->ctx.row_error[r]) {
            continue;
        }
        if (!s->topn) {
            long id = velo_rowstore_add(&s->rs);
            if (id < 0 || fill_row(s, (size_t)id, in, r) != VELO_OK) {
                return VELO_ERR;
            }
            continue;
        }
        if (s->nheap == s->k && !batch_row_before(s, r, s->heap[0])) {
            s->seq++; /* keeps arrival numbering exact for later rows */
            continue;
        }
        if (s->scratch < 0) {
            s->scratch = velo_rowstore_add(&s->rs);
            if (s->scratch < 0) {
                return VELO_ERR;
            }
        }
        if (fill_row(s, (size_t)s->scratch, in, r) != VELO_OK) {
            return VELO_ERR;
        }
        if (s->nheap < s->k) {
            s->heap[s->nheap++] = (uint32_t)s->scratch;
            heap_up(s, s->nheap - 1);
            s->scratch = -1;
        } else {
            /* Replace the worst row; its slot is the next scratch. */
            uint32_t worst = s->heap[0];
            s->heap[0] = (uint32_t)s->scratch;
            s->scratch = worst;
            heap_down(s, 0);
        }
    }
    velo_eval_ctx_clear(&s->ctx, s->cap);
    if (velo_rowstore_maybe_compact(&s->rs) != VELO_OK) {
        return VELO_ERR;
    }
    op->stats.state_rows = s->topn ? s->nheap : s->rs.n;
    op->stats.state_bytes = velo_rowstore_bytes(&s->rs);
    return VELO_OK;
}

static int cmp_ids(const void *a, const void *b, void *arg)
{
    return cmp_rows(arg, *(const uint32_t *)a, *(const uint32_t *)b);
}

static int sort_finish(struct velo_op *op)
{
    struct sort_impl *s = op->impl;
    uint32_t *ids;
    size_t n;
    if (s->topn) {
        ids = s->heap;
        n = s->nheap;
    } else {
        n = s->rs.n;
        ids = malloc((n ? n : 1) * sizeof(*ids));
        if (ids == NULL) {
            return VELO_ERR;
        }
        for (size_t i = 0; i < n; i++) {
            ids[i] = (uint32_t)i;
        }
    }
    qsort_r(ids, n, sizeof(*ids), cmp_ids, s);
    struct velo_batch *out = s->out;
    int rc = VELO_OK;
    size_t start = (size_t)s->offset < n ? (size_t)s->offset : n;
    size_t end = n;
    if (s->limit >= 0 && start + (size_t)s->limit < end) {
        end = start + (size_t)s->limit;
    }
    velo_batch_reset(out);
    out->op = s->saw_ops ? velo_batch_op_buf(out) : NULL;
    for (size_t i = start; i < end && rc == VELO_OK; i++) {
        size_t id = ids[i], row = out->nrows;
        uint8_t *nulls = velo_rowstore_nulls(&s->rs, id);
        union velo_slot *vals = velo_rowstore_vals(&s->rs, id);
        velo_slots_put_row(out->cols, row, nulls, vals, s->ncols_in);
        out->origin[row] = velo_rowstore_hdr(&s->rs, id)->origin;
        if (out->op != NULL) {
            out->op[row] = velo_rowstore_hdr(&s->rs, id)->op;
        }
        out->nrows++;
        if (out->nrows == out->cap || i + 1 == end) {
            rc = velo_op_emit(op, out);
            velo_batch_reset(out);
        }
    }
    if (!s->topn) {
        free(ids);
    }
    /* The input is over: give the memory back. */
    velo_rowstore_clear(&s->rs);
    s->nheap = 0;
    s->scratch = -1;
    op->stats.state_rows = 0;
    op->stats.state_bytes = velo_rowstore_bytes(&s->rs);
    return rc;
}

static void sort_destroy(struct velo_op *op)
{
    struct sort_impl *s = op->impl;
    if (s == NULL) {
        return;
    }
    for (size_t k = 0; k < s->nkeys; k++) {
        if (s->evs != NULL) {
            velo_evaluator_destroy(s->evs[k]);
        }
        velo_expr_free(s->keys[k].expr);
    }
    free(s->evs);
    free(s->keys);
    free(s->phys);
    free(s->heap);
    free(s->kc);
    velo_rowstore_free(&s->rs);
    velo_eval_ctx_free(&s->ctx);
    velo_arena_destroy(s->arena);
    velo_batch_destroy(s->out);
    free(s);
}

static void sort_explain(const struct velo_op *op, char *buf, size_t len)
{
    const struct sort_impl *s = op->impl;
    size_t used = (size_t)snprintf(buf, len, "by ");
    for (size_t k = 0; k < s->nkeys && used < len; k++) {
        char e[200];
        velo_expr_format(s->keys[k].expr, op->out_schema, e, sizeof(e));
        int w = snprintf(buf + used, len - used, "%s%s%s%s", k ? ", " : "", e,
                         s->keys[k].desc ? " DESC" : "",
                         s->keys[k].nulls_first != s->keys[k].desc
                             ? (s->keys[k].nulls_first ? " NULLS FIRST"
                                                       : " NULLS LAST")
                             : "");
        if (w < 0) {
            return;
        }
        used += (size_t)w;
    }
    if (used >= len) {
        return;
    }
    if (s->topn) {
        snprintf(buf + used, len - used,
                 "; keeps the top %zu rows; emits at the end of the input",
                 s->k);
    } else {
        snprintf(buf + used, len - used,
                 "; buffers every row; emits at the end of the input");
    }
}

/* Checkpoints: the buffered rows (with their arrival numbers, so ties
 * still come out in arrival order) and, for a top-N, the heap of row
 * ids, which stay valid because rows come back in the same order. */
static int sort_snapshot(const struct velo_op *op, struct velo_state_writer *w)
{
    const struct sort_impl *s = op->impl;
    velo_sw_u64(w, s->seq);
    velo_sw_u8(w, (uint8_t)s->saw_ops);
    velo_sw_i64(w, s->scratch);
    velo_sw_u64(w, s->nheap);
    for (size_t i = 0; i < s->nheap; i++) {
        velo_sw_u32(w, s->heap[i]);
    }
    velo_rowstore_snapshot(&s->rs, w);
    return w->oom ? VELO_ERR : VELO_OK;
}

static int sort_restore(struct velo_op *op, struct velo_state_reader *r)
{
    struct sort_impl *s = op->impl;
    s->seq = velo_sr_u64(r);
    s->saw_ops = velo_sr_u8(r) != 0;
    int64_t scratch = velo_sr_i64(r);
    uint64_t nheap = velo_sr_u64(r);
    if (!velo_sr_ok(r, 0) || nheap > s->k || (!s->topn && nheap != 0)) {
        return VELO_ERR;
    }
    for (size_t i = 0; i < nheap; i++) {
        s->heap[i] = velo_sr_u32(r);
    }
    s->nheap = (size_t)nheap;
    velo_rowstore_clear(&s->rs);
    if (velo_rowstore_restore(&s->rs, r) != VELO_OK || !velo_sr_ok(r, 1)) {
        s->nheap = 0;
        return VELO_ERR;
    }
    for (size_t i = 0; i < s->nheap; i++) {
        if (s->heap[i] >= s->rs.n) {
            s->nheap = 0;
            return VELO_ERR;
        }
    }
    if (scratch < -1 || scratch >= (int64_t)s->rs.n) {
        return VELO_ERR;
    }
    s->scratch = (long)scratch;
    op->stats.state_rows = s->topn ? s->nheap : s->rs.n;
    op->stats.state_bytes = velo_rowstore_bytes(&s->rs);
    return VELO_OK;
}

static const struct velo_op_ops sort_ops = {
    .name = "Sort",
    .push = sort_push,
    .finish = sort_finish,
    .destroy = sort_destroy,
    .explain = sort_explain,
    .snapshot = sort_snapshot,
    .restore = sort_restore,
};

struct velo_op *velo_op_sort(const struct velo_exec_env *env,
                             const struct velo_schema *in,
                             struct velo_sort_key *keys, size_t n,
                             int64_t limit, int64_t offset)
{
    struct sort_impl *s = calloc(1, sizeof(*s));
    struct velo_schema *out = in != NULL ? velo_schema_copy(in) : NULL;
    struct velo_datatype *types = NULL;
    if (s != NULL) {
        s->keys = calloc(n ? n : 1, sizeof(*s->keys));
        if (s->keys != NULL) {
            s->nkeys = n;
            for (size_t k = 0; k < n; k++) {
                s->keys[k] = keys[k];
            }
        }
    }
    if (s == NULL || s->keys == NULL || out == NULL || env == NULL ||
        offset < 0) {
        errno = EINVAL;
        goto fail;
    }
    s->cap = env->batch_cap ? env->batch_cap : VELO_BATCH_ROWS;
    s->limit = limit;
    s->offset = offset;
    s->topn = limit >= 0;
    s->k = s->topn ? (size_t)(limit + offset) : 0;
    s->scratch = -1;
    s->ncols_in = in->n;
    s->evs = calloc(n ? n : 1, sizeof(*s->evs));
    s->phys = calloc(n ? n : 1, sizeof(int));
    s->kc = calloc(n ? n : 1, sizeof(*s->kc));
    types = calloc(in->n + n + 1, sizeof(*types));
    s->arena = velo_arena_create(16 * 1024);
    s->out = velo_batch_create(out, s->cap);
    if (s->evs == NULL || s->phys == NULL || s->kc == NULL ||
        types == NULL || s->arena == NULL || s->out == NULL ||
        velo_eval_ctx_init(&s->ctx, s->cap, 1) != VELO_OK) {
        goto fail;
    }
    if (s->topn && s->k > 0) {
        if (s->k > UINT32_MAX / 2) {
            errno = EINVAL;
            goto fail;
        }
        s->heap = calloc(s->k, sizeof(*s->heap));
        if (s->heap == NULL) {
            goto fail;
        }
    }
    for (size_t c = 0; c < in->n; c++) {
        types[c] = in->fields[c].type;
    }
    for (size_t k = 0; k < n; k++) {
        if (s->keys[k].expr == NULL) {
            errno = EINVAL;
            goto fail;
        }
        s->evs[k] = velo_expr_compile(s->keys[k].expr, in, s->cap);
        if (s->evs[k] == NULL) {
            goto fail;
        }
        types[in->n + k] = s->keys[k].expr->type;
        s->phys[k] = velo_phys(s->keys[k].expr->type.id);
    }
    if (velo_rowstore_init(&s->rs, types, in->n + n) != VELO_OK) {
        goto fail;
    }
    free(types);
    struct velo_op *op = velo_op_alloc(env, &sort_ops, out, s);
    if (op == NULL) {
        goto fail_notypes;
    }
    op->keeps_state = 1;
    return op;
fail:
    free(types);
fail_notypes:;
    int saved = errno != 0 ? errno : ENOMEM;
    if (s != NULL && s->keys != NULL) {
        struct velo_op tmp = {.impl = s};
        sort_destroy(&tmp);
    } else {
        free(s);
        for (size_t k = 0; keys != NULL && k < n; k++) {
            velo_expr_free(keys[k].expr);
        }
    }
    velo_schema_destroy(out);
    errno = saved;
    return NULL;
}
