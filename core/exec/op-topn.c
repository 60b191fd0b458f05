/*
 * Top-N per key, incremental: the planner's form of
 *   SELECT * FROM (SELECT ..., ROW_NUMBER() OVER (PARTITION BY keys
 *   ORDER BY sort) AS rn FROM s) WHERE rn <= n.
 *
 * Each partition keeps its best n rows, in rank order, as ids into one
 * row store (input columns, then the sort values; freed slots are reused,
 * strings compacted when garbage dominates). A new row is placed after
 * the rows that sort before or equal to it (ties keep arrival order, as a
 * stable ROW_NUMBER does); if it lands within n it enters:
 *   - the row it pushes out of a full list is DELETEd (with its last
 *     rank),
 *   - the new row is INSERTed with its rank,
 *   - with a rank column, each row whose rank moved down is UPDATEd with
 *     its new rank, in rank order.
 * Rows that do not make the cut produce nothing. With emit FINAL (bounded
 * input) nothing is emitted while rows arrive; at finish each partition's
 * top n goes out in rank order as plain inserts, partitions in the order
 * they first appeared.
 *
 * The input is treated as append-only (changelog marks on the input are
 * not interpreted: a retraction would need the rows below the cut, which
 * this operator does not keep).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <velo/log.h>

#include "exec/exec-internal.h"
#include "exec/state.h"

#define TOPN_SEED UINT64_C(0xbe5466cf34e90c6c)
#define TOPN_MAX_N 100000
#define TOPN_STATE_MAGIC UINT32_C(0x544f504e) /* "TOPN" */
#define TOPN_STATE_VERSION 1

struct topn_part {
    uint64_t hash;
    uint32_t count;
};

struct topn_impl {
    size_t nkeys, nsort, nin;
    struct velo_expr **keys;
    struct velo_sort_key *sort;
    struct velo_evaluator **kevs, **sevs;
    const struct velo_column **kc, **sc;
    int *sphys;
    size_t n;
    int with_rank, final;

    struct velo_datatype *types;
    struct velo_rowstore rs; /* input columns, then the sort values */
    uint32_t *free_rows;
    size_t nfree, free_cap;
    uint64_t seq;

    struct velo_rowstore keys_rs; /* partition keys; id = partition id */
    struct topn_part *parts;
    uint32_t *ranks; /* n per partition: row ids in rank order */
    size_t parts_cap;
    struct velo_hindex idx;

    struct velo_eval_ctx ctx;
    struct velo_arena *arena;
    uint64_t *hashes;
    size_t cap;
    struct velo_batch *out;
};

/* Order of stored rows a and b: < 0 when a ranks first. */
static int cmp_rows(struct topn_impl *t, uint32_t a, uint32_t b)
{
    return velo_rowstore_cmp(&t->rs, a, b, t->nin, t->sort, t->sphys,
                             t->nsort);
}

/* Would batch row r rank before stored row id? (Equal keys: no, the
 * stored row arrived first.) Lets a row that cannot make the cut be
 * dropped without copying it. */
static int batch_row_before(struct topn_impl *t, size_t r, uint32_t id)
{
    return velo_rowstore_before(&t->rs, id, t->sc, r, t->nin, t->sort,
                                t->sphys, t->nsort);
}

static long row_alloc(struct topn_impl *t)
{
    if (t->nfree > 0) {
        uint32_t id = t->free_rows[--t->nfree];
        memset(t->rs.rows + (size_t)id * t->rs.stride, 0, t->rs.stride);
        return id;
    }
    long id = velo_rowstore_add(&t->rs);
    if (id >= (long)UINT32_MAX) {
        errno = ENOMEM;
        return -1;
    }
    return id;
}

static int row_free(struct topn_impl *t, uint32_t id)
{
    velo_rowstore_release(&t->rs, id);
    return velo_ids_push(&t->free_rows, &t->nfree, &t->free_cap, 256, id);
}

static uint64_t part_hash(void *arg, uint32_t id)
{
    return ((struct topn_impl *)arg)->parts[id].hash;
}

static int parts_grow(struct topn_impl *t, size_t need)
{
    if (need <= t->parts_cap) {
        return VELO_OK;
    }
    size_t cap = t->parts_cap ? t->parts_cap * 2 : 64;
    while (cap < need) {
        cap *= 2;
    }
    struct topn_part *p = realloc(t->parts, cap * sizeof(*p));
    if (p == NULL) {
        return VELO_ERR;
    }
    t->parts = p;
    uint32_t *r = realloc(t->ranks, cap * t->n * sizeof(*r));
    if (r == NULL) {
        return VELO_ERR;
    }
    t->ranks = r;
    t->parts_cap = cap;
    return VELO_OK;
}

static long part_find(struct topn_impl *t, uint64_t h, size_t r)
{
    if (velo_hindex_reserve(&t->idx, part_hash, t) != VELO_OK) {
        return -1;
    }
    size_t pos = h & t->idx.mask;
    uint64_t tag = h & UINT64_C(0xffffffff00000000);
    for (;;) {
        uint64_t s = t->idx.slots[pos];
        if (s == 0) {
            break;
        }
        uint32_t id = (uint32_t)(s & 0xffffffffu) - 1;
        if ((s & UINT64_C(0xffffffff00000000)) == tag &&
            t->parts[id].hash == h &&
            velo_keys_eq(t->kc, t->nkeys, r,
                         velo_rowstore_nulls(&t->keys_rs, id),
                         velo_rowstore_vals(&t->keys_rs, id))) {
            return id;
        }
        pos = (pos + 1) & t->idx.mask;
    }
    long id = velo_rowstore_add(&t->keys_rs);
    if (id < 0 || id >= (long)UINT32_MAX ||
        parts_grow(t, (size_t)id + 1) != VELO_OK) {
        return -1;
    }
    for (size_t k = 0; k < t->nkeys; k++) {
        if (velo_rowstore_set(&t->keys_rs, (size_t)id, k, t->kc[k], r) !=
            VELO_OK) {
            return -1;
        }
    }
    t->parts[id].hash = h;
    t->parts[id].count = 0;
    velo_hindex_put(&t->idx, pos, h, (uint32_t)id);
    return id;
}

/* ---- Output ---------------------------------------------------------------
 */

static int flush(struct velo_op *op)
{
    struct topn_impl *t = op->impl;
    if (t->out->nrows == 0) {
        return VELO_OK;
    }
    op->stats.rows_out += t->out->nrows;
    int rc = velo_op_emit(op, t->out);
    velo_batch_reset(t->out);
    t->out->op = t->final ? NULL : velo_batch_op_buf(t->out);
    return rc;
}

static int emit_row(struct velo_op *op, uint32_t id, int64_t rank, int rowop)
{
    struct topn_impl *t = op->impl;
    struct velo_batch *out = t->out;
    size_t row = out->nrows;
    uint8_t *nulls = velo_rowstore_nulls(&t->rs, id);
    union velo_slot *vals = velo_rowstore_vals(&t->rs, id);
    velo_slots_put_row(out->cols, row, nulls, vals, t->nin);
    if (t->with_rank) {
        out->cols[t->nin].nulls[row] = 0;
        out->cols[t->nin].v.i64[row] = rank;
    }
    out->origin[row] = velo_rowstore_hdr(&t->rs, id)->origin;
    if (out->op != NULL) {
        out->op[row] = (uint8_t)rowop;
    }
    out->nrows++;
    return out->nrows == out->cap ? flush(op) : VELO_OK;
}

/* Offer stored row id to partition pid: it enters, or is freed. */
static int offer(struct velo_op *op, uint32_t pid, uint32_t id)
{
    struct topn_impl *t = op->impl;
    struct topn_part *p = &t->parts[pid];
    uint32_t *list = t->ranks + (size_t)pid * t->n;
    /* Binary search: the first position whose row ranks after id. */
    size_t lo = 0, hi = p->count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cmp_rows(t, list[mid], id) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    size_t pos = lo;
    if (pos >= t->n) {
        return row_free(t, id);
    }
    int rc = VELO_OK;
    if (p->count == t->n) {
        uint32_t out = list[t->n - 1];
        if (!t->final) {
            rc = emit_row(op, out, (int64_t)t->n, VELO_ROW_DELETE);
        }
        if (rc != VELO_OK || row_free(t, out) != VELO_OK) {
            return VELO_ERR;
        }
        p->count--;
    }
    memmove(list + pos + 1, list + pos, (p->count - pos) * sizeof(*list));
    list[pos] = id;
    p->count++;
    if (t->final) {
        return VELO_OK;
    }
    rc = emit_row(op, id, (int64_t)pos + 1, VELO_ROW_INSERT);
    for (size_t i = pos + 1; t->with_rank && i < p->count && rc == VELO_OK;
         i++) {
        rc = emit_row(op, list[i], (int64_t)i + 1, VELO_ROW_UPDATE);
    }
    return rc;
}

static void update_stats(struct velo_op *op)
{
    struct topn_impl *t = op->impl;
    op->stats.state_rows = t->rs.n - t->nfree;
    op->stats.state_bytes =
        velo_rowstore_bytes(&t->rs) + velo_rowstore_bytes(&t->keys_rs) +
        velo_hindex_bytes(&t->idx) +
        t->parts_cap * (sizeof(struct topn_part) + t->n * sizeof(uint32_t));
}

static int topn_push(struct velo_op *op, struct velo_batch *in)
{
    struct topn_impl *t = op->impl;
    size_t n = velo_batch_live(in);
    op->stats.rows_in += n;
    op->stats.batches_in++;
    velo_arena_reset(t->arena);
    t->ctx.arena = t->arena;
    t->ctx.now_us = velo_op_now(op->env);
    for (size_t k = 0; k < t->nkeys; k++) {
        t->kc[k] = velo_evaluate(t->kevs[k], &t->ctx, in);
    }
    for (size_t k = 0; k < t->nsort; k++) {
        t->sc[k] = velo_evaluate(t->sevs[k], &t->ctx, in);
    }
    if (t->ctx.n_errors > 0) {
        velo_op_report_errors(op, &t->ctx, in, in->sel, n);
    }
    velo_keys_hash(t->kc, t->nkeys, in->sel, n, t->hashes, TOPN_SEED);
    for (size_t i = 0; i < n; i++) {
        size_t r = in->sel != NULL ? in->sel[i] : i;
        if (t->ctx.n_errors > 0 && t->ctx.row_error[r]) {
            continue;
        }
        long pid = part_find(t, t->hashes[i], r);
        if (pid < 0) {
            return VELO_ERR;
        }
        const struct topn_part *p = &t->parts[pid];
        if (p->count == t->n &&
            !batch_row_before(t, r, t->ranks[(size_t)pid * t->n + t->n - 1])) {
            t->seq++; /* keeps arrival numbering exact for later rows */
            continue;
        }
        long id = row_alloc(t);
        if (id < 0) {
            return VELO_ERR;
        }
        for (size_t c = 0; c < t->nin; c++) {
            if (velo_rowstore_set(&t->rs, (size_t)id, c, &in->cols[c], r) !=
                VELO_OK) {
                return VELO_ERR;
            }
        }
        for (size_t k = 0; k < t->nsort; k++) {
            if (velo_rowstore_set(&t->rs, (size_t)id, t->nin + k, t->sc[k],
                                  r) != VELO_OK) {
                return VELO_ERR;
            }
        }
        struct velo_rowhdr *h = velo_rowstore_hdr(&t->rs, (size_t)id);
        h->seq = t->seq++;
        if (in->origin != NULL) {
            h->origin = in->origin[r];
        } else {
            h->origin.source = -1;
        }
        if (offer(op, (uint32_t)pid, (uint32_t)id) != VELO_OK) {
            return VELO_ERR;
        }
    }
    velo_eval_ctx_clear(&t->ctx, t->cap);
    int rc = flush(op);
    if (rc == VELO_OK && velo_rowstore_maybe_compact(&t->rs) != VELO_OK) {
        rc = VELO_ERR;
    }
    update_stats(op);
    return rc;
}

static int topn_finish(struct velo_op *op)
{
    struct topn_impl *t = op->impl;
    if (!t->final) {
        return VELO_OK;
    }
    for (uint32_t pid = 0; pid < t->keys_rs.n; pid++) {
        const uint32_t *list = t->ranks + (size_t)pid * t->n;
        for (uint32_t i = 0; i < t->parts[pid].count; i++) {
            if (emit_row(op, list[i], (int64_t)i + 1, VELO_ROW_INSERT) !=
                VELO_OK) {
                return VELO_ERR;
            }
        }
    }
    return flush(op);
}

static void topn_destroy(struct velo_op *op)
{
    struct topn_impl *t = op->impl;
    if (t == NULL) {
        return;
    }
    for (size_t k = 0; k < t->nkeys; k++) {
        if (t->kevs != NULL) {
            velo_evaluator_destroy(t->kevs[k]);
        }
        velo_expr_free(t->keys[k]);
    }
    for (size_t k = 0; k < t->nsort; k++) {
        if (t->sevs != NULL) {
            velo_evaluator_destroy(t->sevs[k]);
        }
        velo_expr_free(t->sort[k].expr);
    }
    free(t->keys);
    free(t->sort);
    free(t->kevs);
    free(t->sevs);
    free(t->kc);
    free(t->sc);
    free(t->sphys);
    free(t->types);
    velo_rowstore_free(&t->rs);
    free(t->free_rows);
    velo_rowstore_free(&t->keys_rs);
    free(t->parts);
    free(t->ranks);
    velo_hindex_free(&t->idx);
    velo_eval_ctx_free(&t->ctx);
    velo_arena_destroy(t->arena);
    free(t->hashes);
    velo_batch_destroy(t->out);
    free(t);
}

static void topn_explain(const struct velo_op *op, char *buf, size_t len)
{
    const struct topn_impl *t = op->impl;
    size_t used = (size_t)snprintf(buf, len, "top %zu by ", t->n);
    for (size_t k = 0; k < t->nsort && used < len; k++) {
        char e[200];
        velo_expr_format(t->sort[k].expr, NULL, e, sizeof(e));
        int w = snprintf(buf + used, len - used, "%s%s%s", k ? ", " : "", e,
                         t->sort[k].desc ? " DESC" : "");
        if (w < 0) {
            return;
        }
        used += (size_t)w;
    }
    if (used < len) {
        snprintf(buf + used, len - used, " per key (%zu key%s); %s", t->nkeys,
                 t->nkeys == 1 ? "" : "s",
                 t->final ? "emits the final top rows at the end of the input"
                          : "emits a changelog as rows enter and leave");
    }
}

/* ---- Checkpoints -------------------------------------------------------- */

static int topn_snapshot(const struct velo_op *op, struct velo_state_writer *w)
{
    struct topn_impl *t = op->impl;
    velo_sw_u32(w, TOPN_STATE_MAGIC);
    velo_sw_u32(w, TOPN_STATE_VERSION);
    velo_sw_u64(w, t->n);
    velo_sw_u64(w, t->seq);
    velo_sw_u32(w, (uint32_t)t->keys_rs.n);
    for (uint32_t pid = 0; pid < t->keys_rs.n; pid++) {
        const struct topn_part *p = &t->parts[pid];
        velo_sw_u64(w, p->hash);
        velo_sw_row(w, t->keys_rs.types, t->nkeys,
                    velo_rowstore_nulls(&t->keys_rs, pid),
                    velo_rowstore_vals(&t->keys_rs, pid));
        velo_sw_u32(w, p->count);
        const uint32_t *list = t->ranks + (size_t)pid * t->n;
        for (uint32_t i = 0; i < p->count; i++) {
            struct velo_rowhdr *h = velo_rowstore_hdr(&t->rs, list[i]);
            velo_sw_u64(w, h->seq);
            velo_sw_u32(w, (uint32_t)h->origin.source);
            velo_sw_i64(w, h->origin.position);
            velo_sw_i64(w, h->origin.line);
            velo_sw_row(w, t->types, t->rs.ncols,
                        velo_rowstore_nulls(&t->rs, list[i]),
                        velo_rowstore_vals(&t->rs, list[i]));
        }
    }
    return w->oom ? VELO_ERR : VELO_OK;
}

static int topn_restore(struct velo_op *op, struct velo_state_reader *r)
{
    struct topn_impl *t = op->impl;
    if (t->keys_rs.n != 0 || t->rs.n != 0) {
        return VELO_ERR;
    }
    if (velo_sr_u32(r) != TOPN_STATE_MAGIC ||
        velo_sr_u32(r) != TOPN_STATE_VERSION || velo_sr_u64(r) != t->n) {
        velo_sr_fail(r);
        return VELO_ERR;
    }
    t->seq = velo_sr_u64(r);
    uint32_t nparts = velo_sr_u32(r);
    if (!velo_sr_ok(r, 0) || nparts > r->len - r->off) {
        velo_sr_fail(r);
        return VELO_ERR;
    }
    for (uint32_t pid = 0; pid < nparts && velo_sr_ok(r, 0); pid++) {
        long id = velo_rowstore_add(&t->keys_rs);
        if (id != (long)pid || parts_grow(t, pid + 1) != VELO_OK) {
            return VELO_ERR;
        }
        struct topn_part *p = &t->parts[pid];
        p->hash = velo_sr_u64(r);
        p->count = 0;
        uint8_t *kn = velo_rowstore_nulls(&t->keys_rs, pid);
        union velo_slot *kv = velo_rowstore_vals(&t->keys_rs, pid);
        velo_sr_row(r, t->keys_rs.types, t->nkeys, kn, kv, t->keys_rs.arena);
        uint32_t count = velo_sr_u32(r);
        if (count > t->n) {
            velo_sr_fail(r);
            break;
        }
        uint32_t *list = t->ranks + (size_t)pid * t->n;
        for (uint32_t i = 0; i < count && velo_sr_ok(r, 0); i++) {
            long rid = row_alloc(t);
            if (rid < 0) {
                return VELO_ERR;
            }
            struct velo_rowhdr *h = velo_rowstore_hdr(&t->rs, (size_t)rid);
            h->seq = velo_sr_u64(r);
            h->origin.source = (int32_t)velo_sr_u32(r);
            h->origin.position = velo_sr_i64(r);
            h->origin.line = velo_sr_i64(r);
            uint8_t *nulls = velo_rowstore_nulls(&t->rs, (size_t)rid);
            union velo_slot *vals = velo_rowstore_vals(&t->rs, (size_t)rid);
            velo_sr_row(r, t->types, t->rs.ncols, nulls, vals, t->rs.arena);
            for (size_t c = 0; c < t->rs.ncols; c++) {
                if (velo_phys(t->types[c].id) == VELO_PHYS_STR && !nulls[c]) {
                    t->rs.live_bytes += vals[c].s.len;
                }
            }
            list[p->count++] = (uint32_t)rid;
            /* Rank order must hold, or the lists would be searched
             * wrongly. */
            if (i > 0 && cmp_rows(t, list[i - 1], list[i]) >= 0) {
                velo_sr_fail(r);
            }
        }
        if (!velo_sr_ok(r, 0)) {
            break;
        }
        if (velo_hindex_reserve(&t->idx, part_hash, t) != VELO_OK) {
            return VELO_ERR;
        }
        velo_hindex_insert(&t->idx, p->hash, pid);
    }
    if (!velo_sr_ok(r, 1)) {
        velo_sr_fail(r);
        return VELO_ERR;
    }
    update_stats(op);
    return VELO_OK;
}

static const struct velo_op_ops topn_ops = {
    .name = "TopN",
    .push = topn_push,
    .finish = topn_finish,
    .destroy = topn_destroy,
    .explain = topn_explain,
    .snapshot = topn_snapshot,
    .restore = topn_restore,
};

struct velo_op *velo_op_topn(const struct velo_exec_env *env,
                             const struct velo_schema *in,
                             struct velo_expr **keys, size_t nkeys,
                             struct velo_sort_key *sort, size_t nsort,
                             int64_t n, const char *rank_name, int emit)
{
    struct topn_impl *t = calloc(1, sizeof(*t));
    struct velo_schema *out = NULL;
    struct velo_datatype *ktypes = NULL;
    if (t != NULL) {
        t->keys = calloc(nkeys ? nkeys : 1, sizeof(*t->keys));
        t->sort = calloc(nsort ? nsort : 1, sizeof(*t->sort));
        if (t->keys != NULL && t->sort != NULL) {
            t->nkeys = nkeys;
            t->nsort = nsort;
            for (size_t k = 0; k < nkeys; k++) {
                t->keys[k] = keys != NULL ? keys[k] : NULL;
            }
            for (size_t k = 0; k < nsort; k++) {
                t->sort[k] = sort[k];
            }
        }
    }
    if (t == NULL || t->keys == NULL || t->sort == NULL) {
        goto fail;
    }
    if (env == NULL || in == NULL || n <= 0 || n > TOPN_MAX_N) {
        errno = EINVAL;
        goto fail;
    }
    t->cap = env->batch_cap ? env->batch_cap : VELO_BATCH_ROWS;
    t->n = (size_t)n;
    t->nin = in->n;
    t->with_rank = rank_name != NULL;
    t->final = emit == VELO_EMIT_FINAL;
    out = velo_schema_create(in->n + (t->with_rank ? 1 : 0));
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
    if (t->with_rank &&
        velo_schema_set(out, in->n, rank_name, velo_type_of(VELO_TYPE_BIGINT),
                        0, 0) != VELO_OK) {
        goto fail;
    }
    t->kevs = calloc(nkeys ? nkeys : 1, sizeof(*t->kevs));
    t->sevs = calloc(nsort ? nsort : 1, sizeof(*t->sevs));
    t->kc = calloc(nkeys ? nkeys : 1, sizeof(*t->kc));
    t->sc = calloc(nsort ? nsort : 1, sizeof(*t->sc));
    t->sphys = calloc(nsort ? nsort : 1, sizeof(*t->sphys));
    t->types = calloc(in->n + nsort + 1, sizeof(*t->types));
    ktypes = calloc(nkeys ? nkeys : 1, sizeof(*ktypes));
    t->arena = velo_arena_create(16 * 1024);
    t->hashes = calloc(t->cap, sizeof(*t->hashes));
    if (t->kevs == NULL || t->sevs == NULL || t->kc == NULL || t->sc == NULL ||
        t->sphys == NULL || t->types == NULL || ktypes == NULL ||
        t->arena == NULL || t->hashes == NULL ||
        velo_eval_ctx_init(&t->ctx, t->cap, 1) != VELO_OK ||
        velo_hindex_init(&t->idx, 64) != VELO_OK) {
        goto fail;
    }
    for (size_t c = 0; c < in->n; c++) {
        t->types[c] = in->fields[c].type;
    }
    for (size_t k = 0; k < nkeys; k++) {
        if (t->keys[k] == NULL) {
            errno = EINVAL;
            goto fail;
        }
        ktypes[k] = t->keys[k]->type;
        t->kevs[k] = velo_expr_compile(t->keys[k], in, t->cap);
        if (t->kevs[k] == NULL) {
            goto fail;
        }
    }
    for (size_t k = 0; k < nsort; k++) {
        if (t->sort[k].expr == NULL) {
            errno = EINVAL;
            goto fail;
        }
        t->types[in->n + k] = t->sort[k].expr->type;
        t->sphys[k] = velo_phys(t->sort[k].expr->type.id);
        t->sevs[k] = velo_expr_compile(t->sort[k].expr, in, t->cap);
        if (t->sevs[k] == NULL) {
            goto fail;
        }
    }
    if (velo_rowstore_init(&t->rs, t->types, in->n + nsort) != VELO_OK ||
        velo_rowstore_init(&t->keys_rs, ktypes, nkeys) != VELO_OK) {
        goto fail;
    }
    free(ktypes);
    ktypes = NULL;
    t->out = velo_batch_create(out, t->cap);
    if (t->out == NULL) {
        goto fail;
    }
    t->out->op = t->final ? NULL : velo_batch_op_buf(t->out);
    struct velo_op *op = velo_op_alloc(env, &topn_ops, out, t);
    if (op == NULL) {
        goto fail;
    }
    op->keeps_state = 1;
    return op;
fail:;
    int saved = errno != 0 ? errno : ENOMEM;
    free(ktypes);
    if (t != NULL && t->keys != NULL && t->sort != NULL) {
        struct velo_op tmp = {.impl = t};
        topn_destroy(&tmp);
    } else {
        if (t != NULL) {
            free(t->keys);
            free(t->sort);
            free(t);
        }
        for (size_t k = 0; keys != NULL && k < nkeys; k++) {
            velo_expr_free(keys[k]);
        }
        for (size_t k = 0; sort != NULL && k < nsort; k++) {
            velo_expr_free(sort[k].expr);
        }
    }
    velo_schema_destroy(out);
    errno = saved;
    return NULL;
}
