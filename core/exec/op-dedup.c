/*
 * Dedup: one row per key, the planner's form of
 *   ROW_NUMBER() OVER (PARTITION BY keys ORDER BY time ASC|DESC) = 1.
 *
 * keep_last 0 (ORDER BY time ASC): the first row of a key passes as an
 * insert and every later one is dropped. keep_last 1 (DESC): the latest
 * row of a key by event time passes, as INSERT the first time and UPDATE
 * after (a changelog keyed by the keys); a row older than the one already
 * passed is dropped, an equal time replaces (the later arrival wins).
 *
 * The state is only the key and two times per key (the kept row's time
 * and the last time a row was seen), never the row itself: an UPDATE
 * carries the new row and the key identifies what it replaces. Output is
 * the input batch itself with a narrowed selection and changelog marks,
 * so nothing is copied. A key unseen for ttl_us of event time is dropped
 * when the watermark passes, so the state is bounded by the keys active
 * within the TTL; the sweep compacts the key arena as it goes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <velo/log.h>

#include "exec/exec-internal.h"
#include "exec/state.h"

#define DEDUP_SEED UINT64_C(0x13198a2e03707344)
#define DEDUP_STATE_MAGIC UINT32_C(0x44445550) /* "DDUP" */
#define DEDUP_STATE_VERSION 1

struct dedup_entry {
    uint64_t hash;
    int64_t kept_time; /* event time of the row passed last */
    int64_t seen_time; /* highest event time seen for the key (TTL) */
};

struct dedup_impl {
    size_t nkeys;
    struct velo_expr **keys;
    struct velo_evaluator **evs;
    const struct velo_column **kc;
    struct velo_datatype *ktypes;
    int keep_last;
    int64_t ttl_us;
    int ts_col; /* the input's _timestamp, or -1 */

    struct dedup_entry *ents;
    uint8_t *knulls;        /* nkeys per entry */
    union velo_slot *kvals; /* nkeys per entry; strings in arena */
    size_t n, ecap;
    struct velo_hindex idx;
    struct velo_arena *karena;
    size_t key_bytes;

    int64_t wm, next_sweep;

    struct velo_eval_ctx ctx;
    struct velo_arena *arena;
    uint64_t *hashes;
    uint16_t *sel;
    uint8_t *ops;
    size_t cap;
};

static uint64_t ent_hash(void *arg, uint32_t id)
{
    return ((struct dedup_impl *)arg)->ents[id].hash;
}

static int ents_grow(struct dedup_impl *d)
{
    if (d->n < d->ecap) {
        return VELO_OK;
    }
    size_t cap = d->ecap ? d->ecap * 2 : 1024;
    size_t nk = d->nkeys ? d->nkeys : 1;
    struct dedup_entry *e = realloc(d->ents, cap * sizeof(*e));
    if (e == NULL) {
        return VELO_ERR;
    }
    d->ents = e;
    uint8_t *kn = realloc(d->knulls, cap * nk);
    if (kn == NULL) {
        return VELO_ERR;
    }
    d->knulls = kn;
    union velo_slot *kv = realloc(d->kvals, cap * nk * sizeof(*kv));
    if (kv == NULL) {
        return VELO_ERR;
    }
    d->kvals = kv;
    d->ecap = cap;
    return VELO_OK;
}

static size_t str_bytes(struct dedup_impl *d, size_t id)
{
    size_t b = 0;
    for (size_t k = 0; k < d->nkeys; k++) {
        if (!d->knulls[id * d->nkeys + k] &&
            velo_phys(d->keys[k]->type.id) == VELO_PHYS_STR) {
            b += d->kvals[id * d->nkeys + k].s.len;
        }
    }
    return b;
}

/* Entry of batch row r (hash h); *created says whether it is new. */
static long find_or_add(struct dedup_impl *d, uint64_t h, size_t r,
                        int *created)
{
    if (velo_hindex_reserve(&d->idx, ent_hash, d) != VELO_OK) {
        return -1;
    }
    size_t pos = h & d->idx.mask;
    uint64_t tag = h & UINT64_C(0xffffffff00000000);
    for (;;) {
        uint64_t s = d->idx.slots[pos];
        if (s == 0) {
            break;
        }
        uint32_t id = (uint32_t)(s & 0xffffffffu) - 1;
        if ((s & UINT64_C(0xffffffff00000000)) == tag &&
            d->ents[id].hash == h &&
            velo_keys_eq(d->kc, d->nkeys, r, d->knulls + id * d->nkeys,
                         d->kvals + id * d->nkeys)) {
            *created = 0;
            return id;
        }
        pos = (pos + 1) & d->idx.mask;
    }
    if (d->n >= UINT32_MAX - 1 || ents_grow(d) != VELO_OK) {
        errno = ENOMEM;
        return -1;
    }
    size_t id = d->n;
    if (velo_keys_store(d->kc, d->nkeys, r, d->knulls + id * d->nkeys,
                        d->kvals + id * d->nkeys, d->karena) != VELO_OK) {
        return -1;
    }
    d->n++;
    d->key_bytes += str_bytes(d, id);
    d->ents[id].hash = h;
    velo_hindex_put(&d->idx, pos, h, (uint32_t)id);
    *created = 1;
    return (long)id;
}

static void update_stats(struct velo_op *op)
{
    struct dedup_impl *d = op->impl;
    size_t nk = d->nkeys ? d->nkeys : 1;
    op->stats.state_rows = d->n;
    op->stats.state_bytes =
        d->ecap *
            (sizeof(struct dedup_entry) + nk * (1 + sizeof(union velo_slot))) +
        velo_hindex_bytes(&d->idx) + velo_arena_bytes(d->karena);
}

static int dedup_push(struct velo_op *op, struct velo_batch *in)
{
    struct dedup_impl *d = op->impl;
    size_t n = velo_batch_live(in);
    op->stats.rows_in += n;
    op->stats.batches_in++;
    velo_arena_reset(d->arena);
    d->ctx.arena = d->arena;
    d->ctx.now_us = velo_op_now(op->env);
    for (size_t k = 0; k < d->nkeys; k++) {
        d->kc[k] = velo_evaluate(d->evs[k], &d->ctx, in);
    }
    if (d->ctx.n_errors > 0) {
        velo_op_report_errors(op, &d->ctx, in, in->sel, n);
    }
    velo_keys_hash(d->kc, d->nkeys, in->sel, n, d->hashes, DEDUP_SEED);
    const struct velo_column *tc = d->ts_col >= 0 ? &in->cols[d->ts_col] : NULL;
    size_t nout = 0;
    for (size_t i = 0; i < n; i++) {
        size_t r = in->sel != NULL ? in->sel[i] : i;
        if (d->ctx.n_errors > 0 && d->ctx.row_error[r]) {
            continue;
        }
        int created;
        long id = find_or_add(d, d->hashes[i], r, &created);
        if (id < 0) {
            return VELO_ERR;
        }
        struct dedup_entry *e = &d->ents[id];
        int has_t = tc != NULL && !velo_col_is_null(tc, r);
        int64_t t = has_t ? tc->v.i64[r] : (created ? INT64_MIN : e->kept_time);
        if (created) {
            e->kept_time = t;
            e->seen_time = t;
            d->sel[nout] = (uint16_t)r;
            d->ops[r] = VELO_ROW_INSERT;
            nout++;
            continue;
        }
        if (t > e->seen_time) {
            e->seen_time = t;
        }
        if (!d->keep_last || t < e->kept_time) {
            continue; /* a duplicate, or older than the row passed */
        }
        e->kept_time = t;
        d->sel[nout] = (uint16_t)r;
        d->ops[r] = VELO_ROW_UPDATE;
        nout++;
    }
    velo_eval_ctx_clear(&d->ctx, d->cap);
    update_stats(op);
    if (nout == 0) {
        return VELO_OK;
    }
    op->stats.rows_out += nout;
    uint16_t *saved_sel = in->sel;
    size_t saved_nsel = in->nsel;
    uint8_t *saved_op = in->op;
    in->sel = d->sel;
    in->nsel = nout;
    in->op = d->keep_last ? d->ops : NULL;
    int rc = velo_op_emit(op, in);
    in->sel = saved_sel;
    in->nsel = saved_nsel;
    in->op = saved_op;
    return rc;
}

/* Drop keys unseen for the TTL: rebuild the entries densely, with their
 * strings in a fresh arena, and the index over them. */
static int expire(struct velo_op *op)
{
    struct dedup_impl *d = op->impl;
    int64_t limit = d->wm - d->ttl_us;
    size_t nk = d->nkeys;
    size_t keep = 0;
    for (size_t id = 0; id < d->n; id++) {
        keep +=
            d->ents[id].seen_time > limit || d->ents[id].seen_time == INT64_MIN;
    }
    if (keep == d->n) {
        return VELO_OK;
    }
    struct velo_arena *fresh = velo_arena_create(64 * 1024);
    if (fresh == NULL) {
        return VELO_ERR;
    }
    size_t w = 0;
    d->key_bytes = 0;
    for (size_t id = 0; id < d->n; id++) {
        const struct dedup_entry *e = &d->ents[id];
        if (e->seen_time <= limit && e->seen_time != INT64_MIN) {
            continue;
        }
        d->ents[w] = *e;
        for (size_t k = 0; k < nk; k++) {
            uint8_t isnull = d->knulls[id * nk + k];
            union velo_slot v = d->kvals[id * nk + k];
            if (!isnull && velo_phys(d->keys[k]->type.id) == VELO_PHYS_STR &&
                v.s.len > 0) {
                char *p = velo_arena_strdup(fresh, v.s.ptr, v.s.len);
                if (p == NULL) {
                    velo_arena_destroy(fresh);
                    return VELO_ERR;
                }
                v.s.ptr = p;
            }
            d->knulls[w * nk + k] = isnull;
            d->kvals[w * nk + k] = v;
        }
        w++;
    }
    velo_arena_destroy(d->karena);
    d->karena = fresh;
    d->n = w;
    for (size_t id = 0; id < d->n; id++) {
        d->key_bytes += str_bytes(d, id);
    }
    velo_hindex_clear(&d->idx);
    for (uint32_t id = 0; id < d->n; id++) {
        if (velo_hindex_reserve(&d->idx, ent_hash, d) != VELO_OK) {
            return VELO_ERR;
        }
        velo_hindex_insert(&d->idx, d->ents[id].hash, id);
    }
    update_stats(op);
    return VELO_OK;
}

static int dedup_watermark(struct velo_op *op, int64_t wm)
{
    struct dedup_impl *d = op->impl;
    if (wm <= d->wm) {
        return VELO_OK;
    }
    d->wm = wm;
    if (d->ttl_us <= 0 || wm < d->next_sweep) {
        return VELO_OK;
    }
    /* Sweep every eighth of the TTL: a key lives at most 9/8 TTL. */
    int64_t step = d->ttl_us / 8 > 0 ? d->ttl_us / 8 : 1;
    d->next_sweep = wm > INT64_MAX - step ? INT64_MAX : wm + step;
    return expire(op);
}

static void dedup_destroy(struct velo_op *op)
{
    struct dedup_impl *d = op->impl;
    if (d == NULL) {
        return;
    }
    for (size_t k = 0; k < d->nkeys; k++) {
        if (d->evs != NULL) {
            velo_evaluator_destroy(d->evs[k]);
        }
        velo_expr_free(d->keys[k]);
    }
    free(d->keys);
    free(d->evs);
    free(d->kc);
    free(d->ktypes);
    free(d->ents);
    free(d->knulls);
    free(d->kvals);
    velo_hindex_free(&d->idx);
    velo_arena_destroy(d->karena);
    velo_eval_ctx_free(&d->ctx);
    velo_arena_destroy(d->arena);
    free(d->hashes);
    free(d->sel);
    free(d->ops);
    free(d);
}

static void dedup_explain(const struct velo_op *op, char *buf, size_t len)
{
    const struct dedup_impl *d = op->impl;
    size_t used = (size_t)snprintf(buf, len, "one row per key (");
    for (size_t k = 0; k < d->nkeys && used < len; k++) {
        char e[200];
        velo_expr_format(d->keys[k], op->out_schema, e, sizeof(e));
        int w = snprintf(buf + used, len - used, "%s%s", k ? ", " : "", e);
        if (w < 0) {
            return;
        }
        used += (size_t)w;
    }
    if (used >= len) {
        return;
    }
    int w = snprintf(buf + used, len - used, "); %s",
                     d->keep_last ? "keeps the latest row by event time, "
                                    "emits INSERT then UPDATE"
                                  : "passes the first row of each key");
    if (w > 0 && (used += (size_t)w) < len && d->ttl_us > 0) {
        snprintf(buf + used, len - used, "; keys expire after %lld us",
                 (long long)d->ttl_us);
    }
}

static int dedup_snapshot(const struct velo_op *op, struct velo_state_writer *w)
{
    const struct dedup_impl *d = op->impl;
    velo_sw_u32(w, DEDUP_STATE_MAGIC);
    velo_sw_u32(w, DEDUP_STATE_VERSION);
    velo_sw_u32(w, (uint32_t)d->nkeys);
    velo_sw_i64(w, d->wm);
    velo_sw_i64(w, d->next_sweep);
    velo_sw_u64(w, d->n);
    const struct velo_datatype *types = d->ktypes;
    for (size_t id = 0; id < d->n; id++) {
        velo_sw_u64(w, d->ents[id].hash);
        velo_sw_i64(w, d->ents[id].kept_time);
        velo_sw_i64(w, d->ents[id].seen_time);
        velo_sw_row(w, types, d->nkeys, d->knulls + id * d->nkeys,
                    d->kvals + id * d->nkeys);
    }
    return w->oom ? VELO_ERR : VELO_OK;
}

static int dedup_restore(struct velo_op *op, struct velo_state_reader *r)
{
    struct dedup_impl *d = op->impl;
    if (d->n != 0) {
        return VELO_ERR;
    }
    if (velo_sr_u32(r) != DEDUP_STATE_MAGIC ||
        velo_sr_u32(r) != DEDUP_STATE_VERSION ||
        velo_sr_u32(r) != (uint32_t)d->nkeys) {
        velo_sr_fail(r);
        return VELO_ERR;
    }
    d->wm = velo_sr_i64(r);
    d->next_sweep = velo_sr_i64(r);
    uint64_t n = velo_sr_u64(r);
    /* Each entry takes at least 24 bytes: refuse impossible counts. */
    if (!velo_sr_ok(r, 0) || n > (r->len - r->off) / 24 || n >= UINT32_MAX) {
        velo_sr_fail(r);
        return VELO_ERR;
    }
    const struct velo_datatype *types = d->ktypes;
    for (uint64_t i = 0; i < n && velo_sr_ok(r, 0); i++) {
        if (ents_grow(d) != VELO_OK) {
            return VELO_ERR;
        }
        size_t id = d->n;
        d->ents[id].hash = velo_sr_u64(r);
        d->ents[id].kept_time = velo_sr_i64(r);
        d->ents[id].seen_time = velo_sr_i64(r);
        velo_sr_row(r, types, d->nkeys, d->knulls + id * d->nkeys,
                    d->kvals + id * d->nkeys, d->karena);
        if (!velo_sr_ok(r, 0)) {
            break;
        }
        d->n++;
        d->key_bytes += str_bytes(d, id);
        if (velo_hindex_reserve(&d->idx, ent_hash, d) != VELO_OK) {
            return VELO_ERR;
        }
        velo_hindex_insert(&d->idx, d->ents[id].hash, (uint32_t)id);
    }
    if (!velo_sr_ok(r, 1)) {
        velo_sr_fail(r);
        return VELO_ERR;
    }
    update_stats(op);
    return VELO_OK;
}

static const struct velo_op_ops dedup_ops = {
    .name = "Dedup",
    .push = dedup_push,
    .watermark = dedup_watermark,
    .destroy = dedup_destroy,
    .explain = dedup_explain,
    .snapshot = dedup_snapshot,
    .restore = dedup_restore,
};

struct velo_op *velo_op_dedup(const struct velo_exec_env *env,
                              const struct velo_schema *in,
                              struct velo_expr **keys, size_t nkeys,
                              int keep_last, int64_t ttl_us)
{
    struct dedup_impl *d = calloc(1, sizeof(*d));
    struct velo_schema *out = NULL;
    if (d != NULL) {
        d->keys = calloc(nkeys ? nkeys : 1, sizeof(*d->keys));
        if (d->keys != NULL) {
            d->nkeys = nkeys;
            for (size_t k = 0; k < nkeys; k++) {
                d->keys[k] = keys != NULL ? keys[k] : NULL;
            }
        }
    }
    if (d == NULL || d->keys == NULL) {
        goto fail;
    }
    if (env == NULL || in == NULL || (nkeys > 0 && keys == NULL) ||
        ttl_us < 0) {
        errno = EINVAL;
        goto fail;
    }
    d->cap = env->batch_cap ? env->batch_cap : VELO_BATCH_ROWS;
    d->keep_last = keep_last != 0;
    d->ttl_us = ttl_us;
    d->wm = INT64_MIN;
    d->next_sweep = INT64_MIN;
    d->ts_col = velo_schema_find(in, VELO_COL_TIMESTAMP);
    if (d->ts_col >= 0 &&
        in->fields[d->ts_col].type.id != VELO_TYPE_TIMESTAMP) {
        d->ts_col = -1;
    }
    out = velo_schema_copy(in);
    d->evs = calloc(nkeys ? nkeys : 1, sizeof(*d->evs));
    d->kc = calloc(nkeys ? nkeys : 1, sizeof(*d->kc));
    d->ktypes = calloc(nkeys ? nkeys : 1, sizeof(*d->ktypes));
    d->karena = velo_arena_create(64 * 1024);
    d->arena = velo_arena_create(16 * 1024);
    d->hashes = calloc(d->cap, sizeof(*d->hashes));
    d->sel = calloc(d->cap, sizeof(*d->sel));
    d->ops = calloc(d->cap, 1);
    if (out == NULL || d->evs == NULL || d->kc == NULL || d->ktypes == NULL ||
        d->karena == NULL || d->arena == NULL || d->hashes == NULL ||
        d->sel == NULL || d->ops == NULL ||
        velo_eval_ctx_init(&d->ctx, d->cap, 1) != VELO_OK ||
        velo_hindex_init(&d->idx, 1024) != VELO_OK) {
        goto fail;
    }
    for (size_t k = 0; k < nkeys; k++) {
        if (d->keys[k] == NULL) {
            errno = EINVAL;
            goto fail;
        }
        d->ktypes[k] = d->keys[k]->type;
        d->evs[k] = velo_expr_compile(d->keys[k], in, d->cap);
        if (d->evs[k] == NULL) {
            goto fail;
        }
    }
    struct velo_op *op = velo_op_alloc(env, &dedup_ops, out, d);
    if (op == NULL) {
        goto fail;
    }
    op->keeps_state = 1;
    return op;
fail:;
    int saved = errno != 0 ? errno : ENOMEM;
    if (d != NULL && d->keys != NULL) {
        struct velo_op tmp = {.impl = d};
        dedup_destroy(&tmp);
    } else {
        free(d);
        for (size_t k = 0; keys != NULL && k < nkeys; k++) {
            velo_expr_free(keys[k]);
        }
    }
    velo_schema_destroy(out);
    errno = saved;
    return NULL;
}
