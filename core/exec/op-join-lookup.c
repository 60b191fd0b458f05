/*
 * Lookup join: each stream row is joined with a table as the table is
 * when the row arrives.
 *
 * Port mode: port 1 carries the table's changelog (INSERT/UPDATE replace
 * the row of its key, DELETE removes it) into a side keyed by the right
 * keys; a stream batch on port 0 probes it. A key has at most one table
 * row, so a stream row yields at most one output row, and LEFT JOIN keeps
 * a row whose pair fails the residual with the right side NULL.
 *
 * Provider mode (PostgreSQL, Redis through struct velo_lookup_provider):
 * one port. The key is formatted as text the way the CSV encoder writes it
 * and looked up in a bounded LRU cache of answers, negative ones included,
 * each trusted for cache_ttl_us of wall-clock time. The keys a probe batch
 * misses are deduplicated and asked for in one get() call; the answers are
 * used straight from the provider's batch and entered into the cache only
 * after the output has been emitted, so an eviction never pulls a row
 * from under a batch that borrows it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <velo/log.h>

#include "exec/func-internal.h"
#include "exec/join-internal.h"
#include "util/log.h"

#define JOIN_VERSION_LOOKUP UINT32_C(0x4a4c0001) /* "JL" v1 */

enum { SRC_NONE = 0, SRC_TABLE = 1, SRC_MISS = 2 };

struct lookup_impl {
    int type;
    size_t nkeys;
    struct velo_expr **lkeys, **rkeys;
    struct velo_evaluator **lev, **rev;
    struct velo_join_side
        table; /* port mode: right rows; provider: the cache */
    struct velo_join_out out;
    struct velo_join_scratch k;
    /* Provider mode. */
    int ext;
    struct velo_lookup_provider prov;
    struct velo_batch *pout; /* the provider's answers */
    uint8_t *found;
    uint8_t *src;     /* per probe row: SRC_* */
    uint32_t *src_id; /* cache id or miss index */
    struct velo_str *miss_keys;
    uint64_t *miss_hash;
    uint32_t *mslots; /* dedup of a batch's misses: index + 1, 0 empty */
    size_t mmask;
    uint32_t *lru_prev, *lru_next; /* per cache id; head = most recent */
    size_t lru_cap;
    uint32_t lru_head, lru_tail;
    uint64_t provider_calls, cache_hits, cache_misses;
    char err[256];
};

static void lookup_stats(struct velo_op *op)
{
    struct lookup_impl *j = op->impl;
    op->stats.state_rows = j->table.live;
    op->stats.state_bytes = velo_join_side_bytes(&j->table);
}

/* ---- Port mode ---------------------------------------------------------- */

static uint32_t table_find(struct lookup_impl *j, size_t r, uint64_t h)
{
    struct velo_join_side *t = &j->table;
    for (uint32_t id = velo_join_chain_first(&t->idx, h); id != VELO_JOIN_NONE;
         id = t->idx.next[id]) {
        if (t->idx.hash[id] == h &&
            velo_keys_eq(j->k.kcols, j->nkeys, r,
                         velo_rowstore_nulls(&t->rs, id) + t->nin,
                         velo_rowstore_vals(&t->rs, id) + t->nin)) {
            return id;
        }
    }
    return VELO_JOIN_NONE;
}

static int table_apply(struct velo_op *op, struct lookup_impl *j,
                       struct velo_batch *in)
{
    size_t n = velo_batch_live(in);
    velo_join_scratch_keys(op, &j->k, j->rev, j->nkeys, in);
    struct velo_join_side *t = &j->table;
    for (size_t i = 0; i < n; i++) {
        size_t r = in->sel != NULL ? in->sel[i] : i;
        if (j->k.ctx.row_error[r] || velo_join_keys_null(&j->k, j->nkeys, r)) {
            continue; /* a NULL key never matches: nothing to keep */
        }
        uint32_t id = table_find(j, r, j->k.hashes[i]);
        if (id != VELO_JOIN_NONE) {
            velo_join_side_kill(t, id); /* replaced or deleted */
        }
        if (in->op != NULL && in->op[r] == VELO_ROW_DELETE) {
            continue;
        }
        id = velo_join_side_alloc(t);
        if (id == VELO_JOIN_NONE ||
            velo_join_side_put(t, id, in, r, j->k.kcols, j->k.hashes[i], 0) !=
                VELO_OK) {
            return VELO_ERR;
        }
    }
    velo_join_scratch_report(op, &j->k, in, n);
    int rc = velo_join_side_compact(t);
    lookup_stats(op);
    return rc;
}

static int emit_probe_row(struct velo_op *op, struct lookup_impl *j,
                          const struct velo_batch *in, size_t r,
                          const struct velo_join_src *right)
{
    struct velo_join_src left = {in, r, NULL, NULL, velo_join_origin(in, r)};
    if (right == NULL && j->type != VELO_JOIN_LEFT) {
        return VELO_OK;
    }
    return velo_join_out_row(op, &j->out, &left, right, VELO_JOIN_NONE,
                             VELO_JOIN_NONE, right != NULL, INT64_MIN, 0, 0);
}

static int table_probe(struct velo_op *op, struct lookup_impl *j,
                       struct velo_batch *in)
{
    size_t n = velo_batch_live(in);
    velo_join_scratch_keys(op, &j->k, j->lev, j->nkeys, in);
    struct velo_join_side *t = &j->table;
    for (size_t i = 0; i < n; i++) {
        size_t r = in->sel != NULL ? in->sel[i] : i;
        if (j->k.ctx.row_error[r]) {
            continue;
        }
        uint32_t id = velo_join_keys_null(&j->k, j->nkeys, r)
                          ? VELO_JOIN_NONE
                          : table_find(j, r, j->k.hashes[i]);
        struct velo_join_src right = {NULL, 0, NULL, NULL, NULL};
        if (id != VELO_JOIN_NONE) {
            right.nulls = velo_rowstore_nulls(&t->rs, id);
            right.vals = velo_rowstore_vals(&t->rs, id);
        }
        int rc =
            emit_probe_row(op, j, in, r, id != VELO_JOIN_NONE ? &right : NULL);
        if (rc != VELO_OK) {
            return rc;
        }
    }
    velo_join_scratch_report(op, &j->k, in, n);
    return velo_join_out_flush(op, &j->out);
}

/* ---- Provider mode: the cache ------------------------------------------ */

static int lru_ids(struct lookup_impl *j, size_t n)
{
    if (n <= j->lru_cap) {
        return VELO_OK;
    }
    size_t cap = j->lru_cap ? j->lru_cap * 2 : 64;
    while (cap < n) {
        cap *= 2;
    }
    uint32_t *p = realloc(j->lru_prev, cap * sizeof(*p));
    if (p != NULL) {
        j->lru_prev = p;
    }
    uint32_t *q = realloc(j->lru_next, cap * sizeof(*q));
    if (q != NULL) {
        j->lru_next = q;
    }
    if (p == NULL || q == NULL) {
        errno = ENOMEM;
        return VELO_ERR;
    }
    j->lru_cap = cap;
    return VELO_OK;
}

static void lru_unlink(struct lookup_impl *j, uint32_t id)
{
    uint32_t p = j->lru_prev[id], n = j->lru_next[id];
    if (p != VELO_JOIN_NONE) {
        j->lru_next[p] = n;
    } else {
        j->lru_head = n;
    }
    if (n != VELO_JOIN_NONE) {
        j->lru_prev[n] = p;
    } else {
        j->lru_tail = p;
    }
}

static void lru_front(struct lookup_impl *j, uint32_t id)
{
    j->lru_prev[id] = VELO_JOIN_NONE;
    j->lru_next[id] = j->lru_head;
    if (j->lru_head != VELO_JOIN_NONE) {
        j->lru_prev[j->lru_head] = id;
    }
    j->lru_head = id;
    if (j->lru_tail == VELO_JOIN_NONE) {
        j->lru_tail = id;
    }
}

/* The cache side stores the provider's columns, then the key text; the
 * matched flag holds "the provider had a row", time the answer's age. */
static uint32_t cache_find(struct lookup_impl *j, struct velo_str key,
                           uint64_t h)
{
    struct velo_join_side *c = &j->table;
    for (uint32_t id = velo_join_chain_first(&c->idx, h); id != VELO_JOIN_NONE;
         id = c->idx.next[id]) {
        if (c->idx.hash[id] != h) {
            continue;
        }
        struct velo_str s = velo_rowstore_vals(&c->rs, id)[c->nin].s;
        if (s.len == key.len &&
            (s.len == 0 || memcmp(s.ptr, key.ptr, s.len) == 0)) {
            return id;
        }
    }
    return VELO_JOIN_NONE;
}

static void cache_drop(struct lookup_impl *j, uint32_t id)
{
    lru_unlink(j, id);
    velo_join_side_kill(&j->table, id);
}

static int cache_insert(struct lookup_impl *j, size_t m, int64_t now)
{
    struct velo_join_side *c = &j->table;
    if (c->live >= j->prov.cache_entries && j->lru_tail != VELO_JOIN_NONE) {
        cache_drop(j, j->lru_tail);
    }
    uint32_t id = velo_join_side_alloc(c);
    if (id == VELO_JOIN_NONE || lru_ids(j, (size_t)id + 1) != VELO_OK) {
        return VELO_ERR;
    }
    /* The key text as a column whose row m is miss m (has_nulls 0: the
     * null bytes are never read). */
    uint8_t nonull = 0;
    struct velo_column kc;
    memset(&kc, 0, sizeof(kc));
    kc.type = velo_type_of(VELO_TYPE_STRING);
    kc.nulls = &nonull;
    kc.v.str = j->miss_keys;
    const struct velo_column *kcols[1] = {&kc};
    if (j->found[m]) {
        if (velo_join_side_put(c, id, j->pout, m, kcols, j->miss_hash[m],
                               now) != VELO_OK) {
            return VELO_ERR;
        }
    } else {
        uint8_t *nulls = velo_rowstore_nulls(&c->rs, id);
        union velo_slot *vals = velo_rowstore_vals(&c->rs, id);
        memset(nulls, 1, c->nin);
        memset(vals, 0, c->nin * sizeof(*vals));
        if (velo_rowstore_set(&c->rs, id, c->nin, &kc, m) != VELO_OK ||
            velo_join_chain_add(&c->idx, id, j->miss_hash[m]) != VELO_OK) {
            return VELO_ERR;
        }
        c->time[id] = now;
    }
    c->matched[id] = j->found[m];
    lru_front(j, id);
    return VELO_OK;
}

static uint32_t miss_add(struct lookup_impl *j, size_t *nmiss,
                         struct velo_str key, uint64_t h)
{
    size_t pos = h & j->mmask;
    for (;;) {
        uint32_t s = j->mslots[pos];
        if (s == 0) {
            break;
        }
        struct velo_str k = j->miss_keys[s - 1];
        if (j->miss_hash[s - 1] == h && k.len == key.len &&
            (k.len == 0 || memcmp(k.ptr, key.ptr, k.len) == 0)) {
            return s - 1;
        }
        pos = (pos + 1) & j->mmask;
    }
    uint32_t m = (uint32_t)(*nmiss)++;
    j->miss_keys[m] = key;
    j->miss_hash[m] = h;
    j->mslots[pos] = m + 1;
    return m;
}

static int provider_probe(struct velo_op *op, struct lookup_impl *j,
                          struct velo_batch *in)
{
    size_t n = velo_batch_live(in);
    int64_t now = velo_join_scratch_begin(op, &j->k);
    velo_join_eval(j->lev, 1, &j->k.ctx, in, j->k.kcols);
    const struct velo_column *kc = j->k.kcols[0];
    int caching = j->prov.cache_entries > 0;
    size_t nmiss = 0;
    for (size_t i = 0; i < n; i++) {
        size_t r = in->sel != NULL ? in->sel[i] : i;
        j->src[i] = SRC_NONE;
        if (j->k.ctx.row_error[r] || velo_col_is_null(kc, r)) {
            continue;
        }
        struct velo_str key;
        if (velo_value_text(kc, r, j->k.arena, &key) != VELO_OK) {
            return VELO_ERR;
        }
        uint64_t h = velo_hash_bytes(key.ptr, key.len, VELO_JOIN_SEED);
        if (caching) {
            uint32_t id = cache_find(j, key, h);
            if (id != VELO_JOIN_NONE && j->prov.cache_ttl_us > 0 &&
                now - j->table.time[id] >= j->prov.cache_ttl_us) {
                cache_drop(j, id); /* too old: ask again */
                id = VELO_JOIN_NONE;
            }
            if (id != VELO_JOIN_NONE) {
                j->cache_hits++;
                lru_unlink(j, id);
                lru_front(j, id);
                if (j->table.matched[id]) {
                    j->src[i] = SRC_TABLE;
                    j->src_id[i] = id;
                }
                continue;
            }
        }
        j->cache_misses++;
        j->src[i] = SRC_MISS;
        j->src_id[i] = miss_add(j, &nmiss, key, h);
    }
    if (nmiss > 0) {
        memset(j->mslots, 0, (j->mmask + 1) * sizeof(*j->mslots));
        velo_batch_reset(j->pout);
        memset(j->found, 0, nmiss);
        j->err[0] = '\0';
        j->provider_calls++;
        if (j->prov.get(j->prov.arg, j->miss_keys, nmiss, j->pout, j->found,
                        j->err, sizeof(j->err)) != VELO_OK) {
            velo_log_error("%s lookup join: the lookup source failed: %s",
                           velo_join_type_name(j->type),
                           j->err[0] ? j->err : "no reason given");
            errno = EIO;
            return VELO_ERR;
        }
        j->pout->nrows = nmiss;
    }
    for (size_t i = 0; i < n; i++) {
        size_t r = in->sel != NULL ? in->sel[i] : i;
        if (j->k.ctx.row_error[r]) {
            continue;
        }
        struct velo_join_src right = {NULL, 0, NULL, NULL, NULL};
        int have = 0;
        if (j->src[i] == SRC_TABLE) {
            right.nulls = velo_rowstore_nulls(&j->table.rs, j->src_id[i]);
            right.vals = velo_rowstore_vals(&j->table.rs, j->src_id[i]);
            have = 1;
        } else if (j->src[i] == SRC_MISS && j->found[j->src_id[i]]) {
            right.b = j->pout;
            right.r = j->src_id[i];
            have = 1;
        }
        int rc = emit_probe_row(op, j, in, r, have ? &right : NULL);
        if (rc != VELO_OK) {
            return rc;
        }
    }
    velo_join_scratch_report(op, &j->k, in, n);
    int rc = velo_join_out_flush(op, &j->out);
    if (rc != VELO_OK) {
        return rc;
    }
    /* Only now may the cache change: the output borrowed from it. */
    for (size_t m = 0; caching && m < nmiss; m++) {
        if (cache_insert(j, m, now) != VELO_OK) {
            return VELO_ERR;
        }
    }
    rc = velo_join_side_compact(&j->table);
    lookup_stats(op);
    return rc;
}

/* ---- Operator ----------------------------------------------------------- */

static int lookup_push_port(struct velo_op *op, size_t port,
                            struct velo_batch *in)
{
    struct lookup_impl *j = op->impl;
    if (j->ext) {
        return provider_probe(op, j, in);
    }
    return port == 0 ? table_probe(op, j, in) : table_apply(op, j, in);
}

static void lookup_destroy(struct velo_op *op)
{
    struct lookup_impl *j = op->impl;
    if (j == NULL) {
        return;
    }
    for (size_t k = 0; k < j->nkeys; k++) {
        if (j->lev != NULL) {
            velo_evaluator_destroy(j->lev[k]);
        }
        if (j->rev != NULL) {
            velo_evaluator_destroy(j->rev[k]);
        }
        if (j->lkeys != NULL) {
            velo_expr_free(j->lkeys[k]);
        }
        if (j->rkeys != NULL) {
            velo_expr_free(j->rkeys[k]);
        }
    }
    free(j->lev);
    free(j->rev);
    free(j->lkeys);
    free(j->rkeys);
    velo_join_side_free(&j->table);
    velo_join_out_free(&j->out);
    velo_join_scratch_free(&j->k);
    velo_batch_destroy(j->pout);
    free(j->found);
    free(j->src);
    free(j->src_id);
    free(j->miss_keys);
    free(j->miss_hash);
    free(j->mslots);
    free(j->lru_prev);
    free(j->lru_next);
    free(j);
}

static void lookup_explain(const struct velo_op *op, char *buf, size_t len)
{
    const struct lookup_impl *j = op->impl;
    if (j->ext) {
        snprintf(buf, len,
                 "%s lookup join on 1 key against an external table; cache "
                 "%zu entries for %lld ms (%llu lookups, %llu hits, %llu "
                 "misses)%s",
                 velo_join_type_name(j->type), j->prov.cache_entries,
                 (long long)(j->prov.cache_ttl_us / 1000),
                 (unsigned long long)j->provider_calls,
                 (unsigned long long)j->cache_hits,
                 (unsigned long long)j->cache_misses,
                 j->out.residual != NULL ? "; residual predicate" : "");
        return;
    }
    snprintf(buf, len,
             "%s lookup join on %zu key%s; table of %zu rows (latest per "
             "key), the stream probes it as each row arrives%s",
             velo_join_type_name(j->type), j->nkeys, j->nkeys == 1 ? "" : "s",
             j->table.live,
             j->out.residual != NULL ? "; residual predicate" : "");
}

static int lookup_snapshot(const struct velo_op *op,
                           struct velo_state_writer *w)
{
    struct lookup_impl *j = op->impl;
    velo_sw_u32(w, JOIN_VERSION_LOOKUP);
    /* A provider's cache is not state: after a restore it is asked again. */
    size_t n = j->ext ? 0 : j->table.live;
    velo_sw_u64(w, n);
    for (uint32_t id = 0; n > 0 && id < j->table.rs.n; id++) {
        if (j->table.used[id]) {
            velo_join_side_save_row(&j->table, id, w);
        }
    }
    return w->oom ? VELO_ERR : VELO_OK;
}

static int lookup_restore(struct velo_op *op, struct velo_state_reader *r)
{
    struct lookup_impl *j = op->impl;
    if (velo_sr_u32(r) != JOIN_VERSION_LOOKUP) {
        velo_sr_fail(r);
        return VELO_ERR;
    }
    uint64_t n = velo_sr_u64(r);
    if (!velo_sr_ok(r, 0) || n > (r->len - r->off) / 8 || (j->ext && n)) {
        velo_sr_fail(r);
        return VELO_ERR;
    }
    for (uint64_t i = 0; i < n; i++) {
        if (velo_join_side_load_row(&j->table, r) == VELO_JOIN_NONE) {
            return VELO_ERR;
        }
    }
    lookup_stats(op);
    return velo_sr_ok(r, 1) ? VELO_OK : VELO_ERR;
}

static const struct velo_op_ops lookup_ops = {
    .name = "LookupJoin",
    .destroy = lookup_destroy,
    .explain = lookup_explain,
    .push_port = lookup_push_port,
    .snapshot = lookup_snapshot,
    .restore = lookup_restore,
};

static int compile_keys(struct velo_expr **keys, size_t n,
                        const struct velo_schema *in, size_t cap,
                        struct velo_evaluator **evs)
{
    for (size_t k = 0; k < n; k++) {
        evs[k] = velo_expr_compile(keys[k], in, cap);
        if (evs[k] == NULL) {
            return VELO_ERR;
        }
    }
    return VELO_OK;
}

static int provider_init(struct lookup_impl *j)
{
    size_t cap = j->k.cap;
    struct velo_datatype kt = velo_type_of(VELO_TYPE_STRING);
    if (velo_join_side_init(&j->table, j->prov.schema, &kt, 1) != VELO_OK) {
        return VELO_ERR;
    }
    size_t slots = 16;
    while (slots < cap * 2) {
        slots <<= 1;
    }
    j->mmask = slots - 1;
    j->pout = velo_batch_create(j->prov.schema, cap);
    j->found = calloc(cap, 1);
    j->src = calloc(cap, 1);
    j->src_id = calloc(cap, sizeof(*j->src_id));
    j->miss_keys = calloc(cap, sizeof(*j->miss_keys));
    j->miss_hash = calloc(cap, sizeof(*j->miss_hash));
    j->mslots = calloc(slots, sizeof(*j->mslots));
    j->lru_head = j->lru_tail = VELO_JOIN_NONE;
    if (j->pout == NULL || j->found == NULL || j->src == NULL ||
        j->src_id == NULL || j->miss_keys == NULL || j->miss_hash == NULL ||
        j->mslots == NULL) {
        errno = ENOMEM;
        return VELO_ERR;
    }
    return VELO_OK;
}

struct velo_op *velo_op_lookup_join(const struct velo_exec_env *env,
                                    const struct velo_schema *left,
                                    const struct velo_schema *right,
                                    struct velo_join_keys *keys,
                                    const struct velo_lookup_provider *ext)
{
    struct lookup_impl *j = NULL;
    struct velo_schema *out = NULL;
    struct velo_op *op = NULL;
    const struct velo_schema *rs = ext != NULL ? ext->schema : right;
    if (env == NULL || left == NULL || rs == NULL || keys == NULL ||
        keys->nkeys == 0 || keys->lkeys == NULL ||
        (keys->type != VELO_JOIN_INNER && keys->type != VELO_JOIN_LEFT)) {
        errno = EINVAL;
        goto fail;
    }
    if (ext != NULL) {
        /* One key, formatted as text; rkeys are not used. */
        if (keys->nkeys != 1 || ext->get == NULL || keys->lkeys[0] == NULL ||
            velo_phys(keys->lkeys[0]->type.id) == VELO_PHYS_NONE ||
            (right != NULL && right->n != ext->schema->n)) {
            errno = EINVAL;
            goto fail;
        }
    } else if (velo_join_keys_check(keys) != VELO_OK) {
        errno = EINVAL;
        goto fail;
    }
    j = calloc(1, sizeof(*j));
    out = velo_join_schema(left, rs, 0);
    if (j == NULL || out == NULL) {
        goto fail;
    }
    j->type = keys->type;
    j->nkeys = keys->nkeys;
    j->k.cap = env->batch_cap ? env->batch_cap : VELO_BATCH_ROWS;
    j->ext = ext != NULL;
    struct velo_expr *residual = keys->residual;
    keys->residual = NULL;
    if (velo_join_out_init(&j->out, env, out, 0, left->n, rs->n, residual) !=
        VELO_OK) {
        goto fail;
    }
    j->out.keep_failed_left = j->type == VELO_JOIN_LEFT;
    j->lkeys = calloc(j->nkeys, sizeof(*j->lkeys));
    j->rkeys = calloc(j->nkeys, sizeof(*j->rkeys));
    j->lev = calloc(j->nkeys, sizeof(*j->lev));
    j->rev = calloc(j->nkeys, sizeof(*j->rev));
    if (j->lkeys == NULL || j->rkeys == NULL || j->lev == NULL ||
        j->rev == NULL) {
        goto fail;
    }
    for (size_t k = 0; k < j->nkeys; k++) {
        j->lkeys[k] = keys->lkeys[k];
        keys->lkeys[k] = NULL;
        if (keys->rkeys != NULL) {
            j->rkeys[k] = keys->rkeys[k];
            keys->rkeys[k] = NULL;
        }
    }
    if (compile_keys(j->lkeys, j->nkeys, left, j->k.cap, j->lev) != VELO_OK) {
        goto fail;
    }
    if (ext != NULL) {
        j->prov = *ext;
        if (provider_init(j) != VELO_OK) {
            goto fail;
        }
    } else {
        struct velo_datatype kt[64];
        if (j->nkeys > 64) {
            errno = EINVAL;
            goto fail;
        }
        for (size_t k = 0; k < j->nkeys; k++) {
            kt[k] = j->rkeys[k]->type;
        }
        if (compile_keys(j->rkeys, j->nkeys, right, j->k.cap, j->rev) !=
                VELO_OK ||
            velo_join_side_init(&j->table, right, kt, j->nkeys) != VELO_OK) {
            goto fail;
        }
    }
    if (velo_join_scratch_init(&j->k, j->nkeys, j->k.cap) != VELO_OK) {
        goto fail;
    }
    op = velo_op_alloc(env, &lookup_ops, out, j);
    if (op == NULL) {
        goto fail;
    }
    static const uint8_t holds[2] = {1, 0}; /* the table holds no time */
    if (velo_op_ports_init(op, ext != NULL ? 1 : 2, holds) != VELO_OK) {
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
            lookup_destroy(&tmp);
        }
        velo_schema_destroy(out);
    }
    velo_join_keys_free(keys);
    errno = saved;
    return NULL;
}
