/*
 * Joins, the shared part and the interval join.
 *
 * Every join keeps the rows it must remember in "sides" (join-internal.h):
 * a row store whose columns are the input's fields followed by the key
 * values, a chained index from key hash to row ids (several rows may share
 * a key; rows leave one at a time on expiry, DELETE or eviction), and
 * per-row event time and matched flags. Output rows are built into one
 * reused batch; a pair's values are copied as slots (strings stay views
 * into the side's arena or the input batch, both alive until the batch is
 * emitted), the residual predicate runs over the whole batch at once, and
 * only then are the pairs that passed marked as matched, which is what
 * decides the NULL-padded rows of outer joins.
 *
 * Interval join: each arriving row is stored, then probed against the
 * other side's rows of the same key within the time bounds. Both sides
 * expire through a min-heap on their expiry time, so a watermark touches
 * only the rows that leave; an outer row that never matched goes out
 * NULL-padded as it leaves (or at finish). A row is kept while the
 * watermark is <= its last possible partner time plus grace (operator.h
 * says <; see interval_expire for why the boundary is inclusive).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <velo/log.h>

#include "exec/join-internal.h"

#define JOIN_VERSION_INTERVAL UINT32_C(0x4a490001) /* "JI" v1 */

/* ---- Chained index ------------------------------------------------------ */

int velo_join_chain_init(struct velo_join_chain *c)
{
    memset(c, 0, sizeof(*c));
    c->heads = malloc(16 * sizeof(*c->heads));
    if (c->heads == NULL) {
        errno = ENOMEM;
        return VELO_ERR;
    }
    memset(c->heads, 0xff, 16 * sizeof(*c->heads));
    c->mask = 15;
    return VELO_OK;
}

void velo_join_chain_free(struct velo_join_chain *c)
{
    free(c->heads);
    free(c->next);
    free(c->prev);
    free(c->hash);
    free(c->linked);
    memset(c, 0, sizeof(*c));
}

static void chain_clear(struct velo_join_chain *c)
{
    if (c->count > 0) {
        memset(c->heads, 0xff, (c->mask + 1) * sizeof(*c->heads));
        memset(c->linked, 0, c->ids_cap);
    }
    c->count = 0;
}

int velo_join_chain_ids(struct velo_join_chain *c, size_t n)
{
    if (n <= c->ids_cap) {
        return VELO_OK;
    }
    size_t cap = c->ids_cap ? c->ids_cap : 64;
    while (cap < n) {
        cap *= 2;
    }
    uint32_t *next = realloc(c->next, cap * sizeof(*next));
    if (next != NULL) {
        c->next = next;
    }
    uint32_t *prev = realloc(c->prev, cap * sizeof(*prev));
    if (prev != NULL) {
        c->prev = prev;
    }
    uint64_t *hash = realloc(c->hash, cap * sizeof(*hash));
    if (hash != NULL) {
        c->hash = hash;
    }
    uint8_t *linked = realloc(c->linked, cap);
    if (linked != NULL) {
        c->linked = linked;
    }
    if (next == NULL || prev == NULL || hash == NULL || linked == NULL) {
        errno = ENOMEM;
        return VELO_ERR;
    }
    memset(c->linked + c->ids_cap, 0, cap - c->ids_cap);
    c->ids_cap = cap;
    return VELO_OK;
}

static void chain_link(uint32_t *heads, size_t mask, struct velo_join_chain *c,
                       uint32_t id)
{
    size_t b = c->hash[id] & mask;
    c->prev[id] = VELO_JOIN_NONE;
    c->next[id] = heads[b];
    if (heads[b] != VELO_JOIN_NONE) {
        c->prev[heads[b]] = id;
    }
    heads[b] = id;
}

int velo_join_chain_add(struct velo_join_chain *c, uint32_t id, uint64_t hash)
{
    if (c->count + 1 > c->mask + 1) {
        /* Load above one: double the buckets and relink every row. */
        size_t size = (c->mask + 1) * 2, mask = size - 1;
        uint32_t *heads = malloc(size * sizeof(*heads));
        if (heads == NULL) {
            errno = ENOMEM;
            return VELO_ERR;
        }
        memset(heads, 0xff, size * sizeof(*heads));
        for (size_t b = 0; b <= c->mask; b++) {
            uint32_t i = c->heads[b];
            while (i != VELO_JOIN_NONE) {
                uint32_t nx = c->next[i];
                chain_link(heads, mask, c, i);
                i = nx;
            }
        }
        free(c->heads);
        c->heads = heads;
        c->mask = mask;
    }
    c->hash[id] = hash;
    c->linked[id] = 1;
    chain_link(c->heads, c->mask, c, id);
    c->count++;
    return VELO_OK;
}

void velo_join_chain_del(struct velo_join_chain *c, uint32_t id)
{
    if (id >= c->ids_cap || !c->linked[id]) {
        return;
    }
    uint32_t nx = c->next[id], pv = c->prev[id];
    if (pv != VELO_JOIN_NONE) {
        c->next[pv] = nx;
    } else {
        c->heads[c->hash[id] & c->mask] = nx;
    }
    if (nx != VELO_JOIN_NONE) {
        c->prev[nx] = pv;
    }
    c->linked[id] = 0;
    c->count--;
}

/* ---- Sides -------------------------------------------------------------- */

int velo_join_side_init(struct velo_join_side *s, const struct velo_schema *in,
                        const struct velo_datatype *key_types, size_t nkeys)
{
    memset(s, 0, sizeof(*s));
    size_t n = in->n + nkeys;
    struct velo_datatype *types = calloc(n ? n : 1, sizeof(*types));
    if (types == NULL) {
        errno = ENOMEM;
        return VELO_ERR;
    }
    for (size_t c = 0; c < in->n; c++) {
        types[c] = in->fields[c].type;
    }
    for (size_t k = 0; k < nkeys; k++) {
        types[in->n + k] = key_types[k];
    }
    s->nin = in->n;
    s->nkeys = nkeys;
    int rc = velo_rowstore_init(&s->rs, types, n);
    free(types);
    if (rc != VELO_OK || velo_join_chain_init(&s->idx) != VELO_OK) {
        velo_join_side_free(s);
        errno = ENOMEM;
        return VELO_ERR;
    }
    return VELO_OK;
}

void velo_join_side_free(struct velo_join_side *s)
{
    velo_rowstore_free(&s->rs);
    velo_join_chain_free(&s->idx);
    free(s->time);
    free(s->matched);
    free(s->used);
    free(s->free_ids);
    memset(s, 0, sizeof(*s));
}

void velo_join_side_clear(struct velo_join_side *s)
{
    velo_rowstore_clear(&s->rs);
    chain_clear(&s->idx);
    if (s->meta_cap > 0) {
        memset(s->used, 0, s->meta_cap);
    }
    s->nfree = 0;
    s->live = 0;
}

static int side_meta(struct velo_join_side *s, size_t n)
{
    if (velo_join_chain_ids(&s->idx, n) != VELO_OK) {
        return VELO_ERR;
    }
    if (n <= s->meta_cap) {
        return VELO_OK;
    }
    size_t cap = s->meta_cap ? s->meta_cap : 64;
    while (cap < n) {
        cap *= 2;
    }
    int64_t *t = realloc(s->time, cap * sizeof(*t));
    if (t != NULL) {
        s->time = t;
    }
    uint8_t *m = realloc(s->matched, cap);
    if (m != NULL) {
        s->matched = m;
    }
    uint8_t *u = realloc(s->used, cap);
    if (u != NULL) {
        s->used = u;
    }
    if (t == NULL || m == NULL || u == NULL) {
        errno = ENOMEM;
        return VELO_ERR;
    }
    memset(s->used + s->meta_cap, 0, cap - s->meta_cap);
    s->meta_cap = cap;
    return VELO_OK;
}

uint32_t velo_join_side_alloc(struct velo_join_side *s)
{
    uint32_t id;
    if (s->nfree > 0) {
        id = s->free_ids[--s->nfree];
    } else {
        if (s->rs.n >= VELO_JOIN_NONE - 1) {
            errno = ENOMEM;
            return VELO_JOIN_NONE;
        }
        long l = velo_rowstore_add(&s->rs);
        if (l < 0) {
            return VELO_JOIN_NONE;
        }
        id = (uint32_t)l;
    }
    if (side_meta(s, (size_t)id + 1) != VELO_OK) {
        return VELO_JOIN_NONE;
    }
    s->used[id] = 1;
    s->matched[id] = 0;
    s->time[id] = 0;
    s->live++;
    return id;
}

int velo_join_side_key_null(struct velo_join_side *s, uint32_t id)
{
    const uint8_t *nulls = velo_rowstore_nulls(&s->rs, id);
    for (size_t k = 0; k < s->nkeys; k++) {
        if (nulls[s->nin + k]) {
            return 1;
        }
    }
    return 0;
}

int velo_join_side_put(struct velo_join_side *s, uint32_t id,
                       const struct velo_batch *in, size_t r,
                       const struct velo_column *const *kcols, uint64_t hash,
                       int64_t time)
{
    for (size_t c = 0; c < s->nin; c++) {
        if (velo_rowstore_set(&s->rs, id, c, &in->cols[c], r) != VELO_OK) {
            return VELO_ERR;
        }
    }
    for (size_t k = 0; k < s->nkeys; k++) {
        if (velo_rowstore_set(&s->rs, id, s->nin + k, kcols[k], r) != VELO_OK) {
            return VELO_ERR;
        }
    }
    velo_rowstore_hdr(&s->rs, id)->origin = *velo_join_origin(in, r);
    s->time[id] = time;
    if (s->nkeys > 0 && !velo_join_side_key_null(s, id)) {
        return velo_join_chain_add(&s->idx, id, hash);
    }
    return VELO_OK;
}

void velo_join_side_kill(struct velo_join_side *s, uint32_t id)
{
    if (id >= s->meta_cap || !s->used[id]) {
        return;
    }
    velo_join_chain_del(&s->idx, id);
    velo_rowstore_release(&s->rs, id);
    s->used[id] = 0;
    s->live--;
    /* The free list never outgrows the row count, so this cannot fail
     * for want of memory once it has grown as far as the rows; if it
     * does, the slot is leaked until the next clear. */
    (void)velo_ids_push(&s->free_ids, &s->nfree, &s->free_cap, 64, id);
}

int velo_join_side_keys_eq(struct velo_join_side *sa, uint32_t a,
                           struct velo_join_side *sb, uint32_t b)
{
    const uint8_t *na = velo_rowstore_nulls(&sa->rs, a);
    const uint8_t *nb = velo_rowstore_nulls(&sb->rs, b);
    const union velo_slot *va = velo_rowstore_vals(&sa->rs, a);
    const union velo_slot *vb = velo_rowstore_vals(&sb->rs, b);
    for (size_t k = 0; k < sa->nkeys; k++) {
        size_t ca = sa->nin + k, cb = sb->nin + k;
        if (na[ca] || nb[cb]) {
            return 0;
        }
        if (!velo_slot_key_eq(velo_phys(sa->rs.types[ca].id), va[ca], vb[cb])) {
            return 0;
        }
    }
    return 1;
}

size_t velo_join_side_bytes(const struct velo_join_side *s)
{
    return velo_rowstore_bytes(&s->rs) + (s->idx.mask + 1) * sizeof(uint32_t) +
           s->idx.ids_cap * (2 * sizeof(uint32_t) + sizeof(uint64_t) + 1) +
           s->meta_cap * (sizeof(int64_t) + 2) + s->free_cap * sizeof(uint32_t);
}

int velo_join_side_compact(struct velo_join_side *s)
{
    return velo_rowstore_maybe_compact(&s->rs);
}

void velo_join_side_save_row(struct velo_join_side *s, uint32_t id,
                             struct velo_state_writer *w)
{
    const struct velo_rowhdr *h = velo_rowstore_hdr(&s->rs, id);
    velo_sw_i64(w, s->time[id]);
    velo_sw_u8(w, s->matched[id]);
    velo_sw_u32(w, (uint32_t)h->origin.source);
    velo_sw_i64(w, h->origin.position);
    velo_sw_i64(w, h->origin.line);
    velo_sw_row(w, s->rs.types, s->rs.ncols, velo_rowstore_nulls(&s->rs, id),
                velo_rowstore_vals(&s->rs, id));
}

uint32_t velo_join_side_load_row(struct velo_join_side *s,
                                 struct velo_state_reader *r)
{
    int64_t t = velo_sr_i64(r);
    uint8_t matched = velo_sr_u8(r);
    struct velo_row_origin o;
    o.source = (int32_t)velo_sr_u32(r);
    o.position = velo_sr_i64(r);
    o.line = velo_sr_i64(r);
    if (!velo_sr_ok(r, 0) || matched > 1) {
        velo_sr_fail(r);
        return VELO_JOIN_NONE;
    }
    uint32_t id = velo_join_side_alloc(s);
    if (id == VELO_JOIN_NONE) {
        velo_sr_fail(r);
        return VELO_JOIN_NONE;
    }
    uint8_t *nulls = velo_rowstore_nulls(&s->rs, id);
    union velo_slot *vals = velo_rowstore_vals(&s->rs, id);
    velo_sr_row(r, s->rs.types, s->rs.ncols, nulls, vals, s->rs.arena);
    if (!velo_sr_ok(r, 0)) {
        memset(nulls, 1, s->rs.ncols); /* nothing half-read is accounted */
        velo_join_side_kill(s, id);
        return VELO_JOIN_NONE;
    }
    for (size_t c = 0; c < s->rs.ncols; c++) {
        if (velo_phys(s->rs.types[c].id) == VELO_PHYS_STR && !nulls[c]) {
            s->rs.live_bytes += vals[c].s.len;
        }
    }
    velo_rowstore_hdr(&s->rs, id)->origin = o;
    s->time[id] = t;
    s->matched[id] = matched;
    if (s->nkeys > 0 && !velo_join_side_key_null(s, id)) {
        uint64_t h = VELO_JOIN_SEED;
        for (size_t k = 0; k < s->nkeys; k++) {
            size_t c = s->nin + k;
            h = velo_hash_slot(velo_phys(s->rs.types[c].id), vals[c], h);
        }
        if (velo_join_chain_add(&s->idx, id, h) != VELO_OK) {
            velo_sr_fail(r);
            return VELO_JOIN_NONE;
        }
    }
    return id;
}

/* ---- Output ------------------------------------------------------------- */

int velo_join_out_init(struct velo_join_out *o, const struct velo_exec_env *env,
                       const struct velo_schema *out_schema, size_t off,
                       size_t nl, size_t nr, struct velo_expr *residual)
{
    memset(o, 0, sizeof(*o));
    o->residual = residual;
    o->cap = env->batch_cap ? env->batch_cap : VELO_BATCH_ROWS;
    o->off = off;
    o->nl = nl;
    o->nr = nr;
    o->ts_col = velo_join_timestamp_col(out_schema);
    o->b = velo_batch_create(out_schema, o->cap);
    o->lid = calloc(o->cap, sizeof(*o->lid));
    o->rid = calloc(o->cap, sizeof(*o->rid));
    o->pair = calloc(o->cap, 1);
    o->pass = calloc(o->cap, 1);
    o->cand = calloc(o->cap, sizeof(*o->cand));
    o->sel = calloc(o->cap, sizeof(*o->sel));
    o->phys = calloc(out_schema->n ? out_schema->n : 1, 1);
    for (size_t c = 0; o->phys != NULL && c < out_schema->n; c++) {
        o->phys[c] = (uint8_t)velo_phys(out_schema->fields[c].type.id);
    }
    if (o->phys == NULL || o->b == NULL || o->lid == NULL || o->rid == NULL ||
        o->pair == NULL || o->pass == NULL || o->cand == NULL ||
        o->sel == NULL || velo_eval_ctx_init(&o->ctx, o->cap, 1) != VELO_OK) {
        errno = ENOMEM;
        return VELO_ERR;
    }
    if (residual != NULL) {
        o->res_ev = velo_expr_compile(residual, out_schema, o->cap);
        if (o->res_ev == NULL) {
            return VELO_ERR;
        }
    }
    return VELO_OK;
}

void velo_join_out_free(struct velo_join_out *o)
{
    velo_batch_destroy(o->b);
    free(o->lid);
    free(o->rid);
    free(o->pair);
    free(o->pass);
    free(o->cand);
    free(o->sel);
    free(o->phys);
    velo_eval_ctx_free(&o->ctx);
    velo_evaluator_destroy(o->res_ev);
    velo_expr_free(o->residual);
    memset(o, 0, sizeof(*o));
}

/* Copy one side into output row `row`, columns c0..c0+n. The physical
 * type of every output column is looked up once (o->phys): this runs for
 * every column of every output row. */
static void put_src(const struct velo_join_out *o, struct velo_batch *b,
                    size_t row, size_t c0, size_t n,
                    const struct velo_join_src *s)
{
    int padded = s == NULL || (s->b == NULL && s->vals == NULL);
    for (size_t c = 0; c < n; c++) {
        struct velo_column *dst = &b->cols[c0 + c];
        union velo_slot v;
        if (padded) {
            velo_col_set_null(dst, row);
            continue;
        }
        int phys = o->phys[c0 + c];
        if (s->b != NULL) {
            const struct velo_column *src = &s->b->cols[c];
            if (velo_col_is_null(src, s->r)) {
                velo_col_set_null(dst, row);
                continue;
            }
            switch (phys) {
            case VELO_PHYS_U8:
                v.i = src->v.u8[s->r];
                break;
            case VELO_PHYS_STR:
                v.s = src->v.str[s->r];
                break;
            case VELO_PHYS_F64:
                v.d = src->v.f64[s->r];
                break;
            default:
                v.i = src->v.i64[s->r];
                break;
            }
        } else {
            if (s->nulls[c]) {
                velo_col_set_null(dst, row);
                continue;
            }
            v = s->vals[c];
        }
        dst->nulls[row] = 0;
        switch (phys) {
        case VELO_PHYS_U8:
            dst->v.u8[row] = (uint8_t)v.i;
            break;
        case VELO_PHYS_STR:
            dst->v.str[row] = v.s;
            break;
        case VELO_PHYS_F64:
            dst->v.f64[row] = v.d;
            break;
        case VELO_PHYS_I64:
            dst->v.i64[row] = v.i;
            break;
        default:
            break; /* a NULL-typed column holds nothing */
        }
    }
}

int velo_join_out_row(struct velo_op *op, struct velo_join_out *o,
                      const struct velo_join_src *l,
                      const struct velo_join_src *r, uint32_t lid, uint32_t rid,
                      int pair, int64_t ts, int64_t wstart, int64_t wend)
{
    struct velo_batch *b = o->b;
    if (b->nrows == o->cap) {
        int rc = velo_join_out_flush(op, o);
        if (rc != VELO_OK) {
            return rc;
        }
    }
    size_t row = b->nrows++;
    if (o->off == 2) {
        b->cols[0].nulls[row] = 0;
        b->cols[0].v.i64[row] = wstart;
        b->cols[1].nulls[row] = 0;
        b->cols[1].v.i64[row] = wend;
    }
    put_src(o, b, row, o->off, o->nl, l);
    put_src(o, b, row, o->off + o->nl, o->nr, r);
    if (ts != INT64_MIN && o->ts_col >= 0) {
        b->cols[o->ts_col].nulls[row] = 0;
        b->cols[o->ts_col].v.i64[row] = ts;
    }
    static const struct velo_row_origin unknown = {-1, 0, 0};
    const struct velo_row_origin *org =
        l != NULL && l->origin != NULL   ? l->origin
        : r != NULL && r->origin != NULL ? r->origin
                                         : &unknown;
    b->origin[row] = *org;
    o->lid[row] = lid;
    o->rid[row] = rid;
    o->pair[row] = (uint8_t)pair;
    return VELO_OK;
}

int velo_join_out_flush(struct velo_op *op, struct velo_join_out *o)
{
    struct velo_batch *b = o->b;
    size_t n = b->nrows;
    if (n == 0) {
        return VELO_OK;
    }
    size_t ncand = 0;
    for (size_t i = 0; i < n; i++) {
        o->pass[i] = !o->pair[i];
        if (o->pair[i]) {
            o->cand[ncand++] = (uint16_t)i;
        }
    }
    if (ncand > 0 && o->res_ev == NULL) {
        for (size_t i = 0; i < ncand; i++) {
            o->pass[o->cand[i]] = 1;
        }
    } else if (ncand > 0) {
        memcpy(o->sel, o->cand, ncand * sizeof(*o->sel));
        b->sel = o->sel;
        b->nsel = ncand;
        o->ctx.arena = b->arena;
        o->ctx.now_us = velo_op_now(op->env);
        velo_filter(o->res_ev, &o->ctx, b);
        for (size_t i = 0; i < b->nsel; i++) {
            o->pass[b->sel[i]] = 1;
        }
        b->sel = NULL;
        b->nsel = 0;
        if (o->ctx.n_errors > 0) {
            velo_op_report_errors(op, &o->ctx, b, o->cand, ncand);
            velo_eval_ctx_clear(&o->ctx, o->cap);
        }
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (o->pair[i] && o->pass[i]) {
            if (o->mark_l != NULL && o->lid[i] != VELO_JOIN_NONE) {
                o->mark_l->matched[o->lid[i]] = 1;
            }
            if (o->mark_r != NULL && o->rid[i] != VELO_JOIN_NONE) {
                o->mark_r->matched[o->rid[i]] = 1;
            }
        } else if (o->pair[i] && o->keep_failed_left) {
            put_src(o, b, i, o->off + o->nl, o->nr, NULL);
            o->pass[i] = 1;
        }
        o->sel[m] = (uint16_t)i;
        m += o->pass[i];
    }
    if (m < n) {
        b->sel = o->sel;
        b->nsel = m;
    }
    int rc = velo_op_emit(op, b);
    velo_batch_reset(b);
    return rc;
}

/* ---- Shared construction ------------------------------------------------ */

int velo_join_timestamp_col(const struct velo_schema *s)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->fields[i].hidden && s->fields[i].name != NULL &&
            strcasecmp(s->fields[i].name, "_timestamp") == 0) {
            return (int)i;
        }
    }
    return -1;
}

struct velo_schema *velo_join_schema(const struct velo_schema *l,
                                     const struct velo_schema *r, int windowed)
{
    size_t off = windowed ? 2 : 0;
    struct velo_schema *s = velo_schema_create(off + l->n + r->n);
    if (s == NULL) {
        return NULL;
    }
    struct velo_datatype ts = velo_type_of(VELO_TYPE_TIMESTAMP);
    if (windowed &&
        (velo_schema_set(s, 0, "_window_start", ts, 0, 1) != VELO_OK ||
         velo_schema_set(s, 1, "_window_end", ts, 0, 1) != VELO_OK)) {
        goto fail;
    }
    for (size_t i = 0; i < l->n; i++) {
        const struct velo_field *f = &l->fields[i];
        if (velo_schema_set(s, off + i, f->name, f->type, f->nullable,
                            f->hidden) != VELO_OK) {
            goto fail;
        }
    }
    for (size_t i = 0; i < r->n; i++) {
        const struct velo_field *f = &r->fields[i];
        /* Outer joins pad the right side with NULLs (and the left too for
         * RIGHT/FULL), so every copied field may be NULL. */
        if (velo_schema_set(s, off + l->n + i, f->name, f->type, 1,
                            f->hidden) != VELO_OK) {
            goto fail;
        }
    }
    for (size_t i = 0; i < l->n; i++) {
        s->fields[off + i].nullable = 1;
    }
    return s;
fail:
    velo_schema_destroy(s);
    return NULL;
}

int velo_join_keys_check(const struct velo_join_keys *k)
{
    if (k == NULL || k->type < VELO_JOIN_INNER || k->type > VELO_JOIN_FULL) {
        return VELO_ERR;
    }
    for (size_t i = 0; i < k->nkeys; i++) {
        if (k->lkeys == NULL || k->rkeys == NULL || k->lkeys[i] == NULL ||
            k->rkeys[i] == NULL) {
            return VELO_ERR;
        }
        struct velo_datatype a = k->lkeys[i]->type, b = k->rkeys[i]->type;
        if (velo_phys(a.id) != velo_phys(b.id) ||
            velo_phys(a.id) == VELO_PHYS_NONE) {
            return VELO_ERR;
        }
        if ((a.id == VELO_TYPE_DECIMAL || b.id == VELO_TYPE_DECIMAL) &&
            (a.id != b.id || a.scale != b.scale)) {
            return VELO_ERR; /* the planner casts to a common type first */
        }
    }
    return VELO_OK;
}

void velo_join_keys_free(struct velo_join_keys *k)
{
    if (k == NULL) {
        return;
    }
    for (size_t i = 0; i < k->nkeys; i++) {
        if (k->lkeys != NULL) {
            velo_expr_free(k->lkeys[i]);
            k->lkeys[i] = NULL;
        }
        if (k->rkeys != NULL) {
            velo_expr_free(k->rkeys[i]);
            k->rkeys[i] = NULL;
        }
    }
    velo_expr_free(k->residual);
    k->residual = NULL;
}

void velo_join_eval(struct velo_evaluator **evs, size_t n,
                    struct velo_eval_ctx *ctx, const struct velo_batch *in,
                    const struct velo_column **cols)
{
    for (size_t k = 0; k < n; k++) {
        cols[k] = velo_evaluate(evs[k], ctx, in);
    }
}

void velo_join_report_late(struct velo_op *op, const struct velo_batch *in,
                           size_t r, int64_t t, int64_t wm)
{
    op->stats.rows_late++;
    if (op->env != NULL && op->env->on_late_row != NULL) {
        op->env->on_late_row(op->env->cb_arg, op, velo_join_origin(in, r), t,
                             wm);
    }
}

const char *velo_join_type_name(int type)
{
    switch (type) {
    case VELO_JOIN_LEFT:
        return "LEFT";
    case VELO_JOIN_RIGHT:
        return "RIGHT";
    case VELO_JOIN_FULL:
        return "FULL";
    default:
        return "INNER";
    }
}

/* ---- Key scratch -------------------------------------------------------- */

int velo_join_scratch_init(struct velo_join_scratch *s, size_t nkeys,
                           size_t cap)
{
    s->cap = cap;
    s->arena = velo_arena_create(16 * 1024);
    s->kcols = calloc(nkeys, sizeof(*s->kcols));
    s->hashes = calloc(cap, sizeof(*s->hashes));
    if (s->arena == NULL || s->kcols == NULL || s->hashes == NULL ||
        velo_eval_ctx_init(&s->ctx, cap, 1) != VELO_OK) {
        return VELO_ERR;
    }
    return VELO_OK;
}

void velo_join_scratch_free(struct velo_join_scratch *s)
{
    velo_eval_ctx_free(&s->ctx);
    velo_arena_destroy(s->arena);
    free(s->kcols);
    free(s->hashes);
}

int64_t velo_join_scratch_begin(struct velo_op *op,
                                struct velo_join_scratch *s)
{
    velo_arena_reset(s->arena);
    s->ctx.arena = s->arena;
    s->ctx.now_us = velo_op_now(op->env);
    return s->ctx.now_us;
}

void velo_join_scratch_keys(struct velo_op *op, struct velo_join_scratch *s,
                            struct velo_evaluator **evs, size_t nkeys,
                            const struct velo_batch *in)
{
    velo_join_scratch_begin(op, s);
    velo_join_eval(evs, nkeys, &s->ctx, in, s->kcols);
    velo_keys_hash(s->kcols, nkeys, in->sel, velo_batch_live(in), s->hashes,
                   VELO_JOIN_SEED);
}

void velo_join_scratch_report(struct velo_op *op, struct velo_join_scratch *s,
                              const struct velo_batch *in, size_t n)
{
    if (s->ctx.n_errors > 0) {
        velo_op_report_errors(op, &s->ctx, in, in->sel, n);
        velo_eval_ctx_clear(&s->ctx, s->cap);
    }
}

/* ---- Timed inputs ------------------------------------------------------- */

/* Compile one side's keys (taken from keys) and time (t->time[side]). */
static int timed_side_init(struct velo_join_timed *t, int side,
                           const struct velo_schema *in,
                           struct velo_expr **keys, size_t cap)
{
    t->keys[side] = calloc(t->nkeys, sizeof(*t->keys[side]));
    t->kev[side] = calloc(t->nkeys, sizeof(*t->kev[side]));
    if (t->keys[side] == NULL || t->kev[side] == NULL) {
        return VELO_ERR;
    }
    for (size_t k = 0; k < t->nkeys; k++) {
        t->keys[side][k] = keys[k];
        keys[k] = NULL;
        t->ktypes[side][k] = t->keys[side][k]->type;
        t->kev[side][k] = velo_expr_compile(t->keys[side][k], in, cap);
        if (t->kev[side][k] == NULL) {
            return VELO_ERR;
        }
    }
    struct velo_expr *time = t->time[side];
    if (time != NULL) {
        if (time->type.id != VELO_TYPE_TIMESTAMP) {
            errno = EINVAL;
            return VELO_ERR;
        }
        t->tev[side] = velo_expr_compile(time, in, cap);
        return t->tev[side] != NULL ? VELO_OK : VELO_ERR;
    }
    t->ts_in[side] = velo_join_timestamp_col(in);
    if (t->ts_in[side] < 0 ||
        in->fields[t->ts_in[side]].type.id != VELO_TYPE_TIMESTAMP) {
        errno = EINVAL; /* no event time to join on */
        return VELO_ERR;
    }
    return VELO_OK;
}

int velo_join_timed_init(struct velo_join_timed *t,
                         const struct velo_exec_env *env,
                         struct velo_join_keys *keys,
                         const struct velo_schema *l,
                         const struct velo_schema *r)
{
    t->nkeys = keys->nkeys;
    size_t cap = env->batch_cap ? env->batch_cap : VELO_BATCH_ROWS;
    if (timed_side_init(t, 0, l, keys->lkeys, cap) != VELO_OK ||
        timed_side_init(t, 1, r, keys->rkeys, cap) != VELO_OK) {
        return VELO_ERR;
    }
    return velo_join_scratch_init(&t->k, t->nkeys, cap);
}

void velo_join_timed_free(struct velo_join_timed *t)
{
    for (int s = 0; s < 2; s++) {
        for (size_t k = 0; k < t->nkeys; k++) {
            if (t->kev[s] != NULL) {
                velo_evaluator_destroy(t->kev[s][k]);
            }
            if (t->keys[s] != NULL) {
                velo_expr_free(t->keys[s][k]);
            }
        }
        free(t->kev[s]);
        free(t->keys[s]);
        velo_evaluator_destroy(t->tev[s]);
        velo_expr_free(t->time[s]);
    }
    velo_join_scratch_free(&t->k);
}

const struct velo_column *velo_join_timed_eval(struct velo_op *op,
                                               struct velo_join_timed *t,
                                               int side,
                                               const struct velo_batch *in)
{
    velo_join_scratch_keys(op, &t->k, t->kev[side], t->nkeys, in);
    return t->tev[side] != NULL
               ? velo_evaluate(t->tev[side], &t->k.ctx, in)
               : &in->cols[t->ts_in[side]];
}

int velo_join_emit_unmatched(struct velo_op *op, struct velo_join_out *o,
                             struct velo_join_side *s, int side, uint32_t id,
                             int64_t ws, int64_t we)
{
    struct velo_join_src src;
    velo_join_stored_src(s, id, &src);
    if (side == 0) {
        return velo_join_out_row(op, o, &src, NULL, id, VELO_JOIN_NONE, 0,
                                 s->time[id], ws, we);
    }
    return velo_join_out_row(op, o, NULL, &src, VELO_JOIN_NONE, id, 0,
                             s->time[id], ws, we);
}

/* ---- Interval join ------------------------------------------------------ */

struct heap_ent {
    int64_t expire;
    uint32_t id;
};

struct exp_heap {
    struct heap_ent *e;
    size_t n, cap;
};

static int heap_push(struct exp_heap *h, int64_t expire, uint32_t id)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 256;
        struct heap_ent *e = realloc(h->e, cap * sizeof(*e));
        if (e == NULL) {
            errno = ENOMEM;
            return VELO_ERR;
        }
        h->e = e;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h->e[p].expire <= expire) {
            break;
        }
        h->e[i] = h->e[p];
        i = p;
    }
    h->e[i].expire = expire;
    h->e[i].id = id;
    return VELO_OK;
}

static struct heap_ent heap_pop(struct exp_heap *h)
{
    struct heap_ent top = h->e[0];
    struct heap_ent last = h->e[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) {
            break;
        }
        if (c + 1 < h->n && h->e[c + 1].expire < h->e[c].expire) {
            c++;
        }
        if (last.expire <= h->e[c].expire) {
            break;
        }
        h->e[i] = h->e[c];
        i = c;
    }
    if (h->n > 0) {
        h->e[i] = last;
    }
    return top;
}

struct interval_impl {
    int type;
    struct velo_join_timed in;
    int64_t lower, upper, grace;
    struct velo_join_side side[2];
    struct exp_heap heap[2];
    struct velo_join_out out;
    int64_t wm;
};

static int64_t interval_expire(const struct interval_impl *j, int side,
                               int64_t t)
{
    /* The last watermark at which the row may still find a partner: left
     * t + upper + grace, right t - lower + grace. Inclusive, because a
     * watermark w promises no rows before w, so a partner exactly at w
     * (the interval's closed end) may still come; the row leaves once the
     * watermark passes it, and a row arriving already past it is late. */
    int64_t d;
    if (side == 0) {
        d = j->upper;
    } else {
        d = j->lower == INT64_MIN ? INT64_MAX : -j->lower;
    }
    return velo_join_sat_add(velo_join_sat_add(t, d), j->grace);
}




static void interval_stats(struct velo_op *op)
{
    struct interval_impl *j = op->impl;
    op->stats.state_rows = j->side[0].live + j->side[1].live;
    op->stats.state_bytes =
        velo_join_side_bytes(&j->side[0]) + velo_join_side_bytes(&j->side[1]) +
        (j->heap[0].cap + j->heap[1].cap) * sizeof(struct heap_ent);
}

static int interval_probe(struct velo_op *op, struct interval_impl *j, int side,
                          uint32_t id)
{
    struct velo_join_side *me = &j->side[side], *other = &j->side[1 - side];
    if (velo_join_side_key_null(me, id)) {
        return VELO_OK;
    }
    int64_t t = me->time[id];
    struct velo_join_src msrc, osrc;
    velo_join_stored_src(me, id, &msrc);
    uint64_t h = me->idx.hash[id];
    for (uint32_t o = velo_join_chain_first(&other->idx, h);
         o != VELO_JOIN_NONE; o = other->idx.next[o]) {
        if (other->idx.hash[o] != h ||
            !velo_join_side_keys_eq(me, id, other, o)) {
            continue;
        }
        int64_t lt = side == 0 ? t : other->time[o];
        int64_t rt = side == 0 ? other->time[o] : t;
        if (rt < velo_join_sat_add(lt, j->lower) ||
            rt > velo_join_sat_add(lt, j->upper)) {
            continue;
        }
        velo_join_stored_src(other, o, &osrc);
        int64_t ts = lt > rt ? lt : rt;
        int rc = side == 0 ? velo_join_out_row(op, &j->out, &msrc, &osrc, id, o,
                                               1, ts, 0, 0)
                           : velo_join_out_row(op, &j->out, &osrc, &msrc, o, id,
                                               1, ts, 0, 0);
        if (rc != VELO_OK) {
            return rc;
        }
    }
    return VELO_OK;
}

static int interval_push_port(struct velo_op *op, size_t port,
                              struct velo_batch *in)
{
    struct interval_impl *j = op->impl;
    int side = port == 0 ? 0 : 1;
    struct velo_join_side *s = &j->side[side];
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
                            "the event time is NULL: the row cannot be "
                            "joined on an interval");
            continue;
        }
        int64_t t = tc->v.i64[r];
        int64_t expire = interval_expire(j, side, t);
        if (expire < j->wm) {
            velo_join_report_late(op, in, r, t, j->wm);
            continue;
        }
        if (!outer && velo_join_keys_null(&ti->k, ti->nkeys, r)) {
            continue; /* can never match and is never emitted */
        }
        uint32_t id = velo_join_side_alloc(s);
        if (id == VELO_JOIN_NONE ||
            velo_join_side_put(s, id, in, r, ti->k.kcols, ti->k.hashes[i], t) !=
                VELO_OK ||
            heap_push(&j->heap[side], expire, id) != VELO_OK) {
            return VELO_ERR;
        }
        int rc = interval_probe(op, j, side, id);
        if (rc != VELO_OK) {
            return rc;
        }
    }
    velo_join_scratch_report(op, &ti->k, in, n);
    int rc = velo_join_out_flush(op, &j->out);
    interval_stats(op);
    return rc;
}

static int interval_expire_to(struct velo_op *op, int64_t wm, int all)
{
    struct interval_impl *j = op->impl;
    for (int side = 0; side < 2; side++) {
        struct exp_heap *h = &j->heap[side];
        struct velo_join_side *s = &j->side[side];
        int outer = velo_join_side_outer(j->type, side);
        while (h->n > 0 && (all || h->e[0].expire < wm)) {
            uint32_t id = h->e[0].id;
            if (outer && !s->matched[id]) {
                /* Leave it in place until its row has been emitted: the
                 * output borrows its strings. */
                int rc = velo_join_emit_unmatched(op, &j->out, s, side, id,
                                                  0, 0);
                if (rc != VELO_OK) {
                    return rc;
                }
            }
            heap_pop(h);
            velo_join_side_kill(s, id);
        }
    }
    int rc = velo_join_out_flush(op, &j->out);
    if (rc == VELO_OK && (velo_join_side_compact(&j->side[0]) != VELO_OK ||
                          velo_join_side_compact(&j->side[1]) != VELO_OK)) {
        rc = VELO_ERR;
    }
    interval_stats(op);
    return rc;
}

static int interval_watermark(struct velo_op *op, int64_t wm_us)
{
    struct interval_impl *j = op->impl;
    if (wm_us <= j->wm) {
        return VELO_OK;
    }
    j->wm = wm_us;
    return interval_expire_to(op, wm_us, 0);
}

static int interval_finish(struct velo_op *op)
{
    return interval_expire_to(op, INT64_MAX, 1);
}

static void interval_destroy(struct velo_op *op)
{
    struct interval_impl *j = op->impl;
    if (j == NULL) {
        return;
    }
    for (int s = 0; s < 2; s++) {
        velo_join_side_free(&j->side[s]);
        free(j->heap[s].e);
    }
    velo_join_timed_free(&j->in);
    velo_join_out_free(&j->out);
    free(j);
}

static void interval_explain(const struct velo_op *op, char *buf, size_t len)
{
    const struct interval_impl *j = op->impl;
    snprintf(buf, len,
             "%s interval join on %zu key%s; right time within left time "
             "%+lld..%+lld us; rows kept until the watermark passes the "
             "interval (grace %lld us)%s",
             velo_join_type_name(j->type), j->in.nkeys,
             j->in.nkeys == 1 ? "" : "s",
             (long long)j->lower, (long long)j->upper, (long long)j->grace,
             j->out.residual != NULL ? "; residual predicate" : "");
}

static int interval_snapshot(const struct velo_op *op,
                             struct velo_state_writer *w)
{
    struct interval_impl *j = op->impl;
    velo_sw_u32(w, JOIN_VERSION_INTERVAL);
    velo_sw_i64(w, j->wm);
    for (int side = 0; side < 2; side++) {
        struct exp_heap *h = &j->heap[side];
        velo_sw_u64(w, h->n);
        for (size_t i = 0; i < h->n; i++) {
            velo_join_side_save_row(&j->side[side], h->e[i].id, w);
        }
    }
    return w->oom ? VELO_ERR : VELO_OK;
}

static int interval_restore(struct velo_op *op, struct velo_state_reader *r)
{
    struct interval_impl *j = op->impl;
    if (velo_sr_u32(r) != JOIN_VERSION_INTERVAL) {
        velo_sr_fail(r);
        return VELO_ERR;
    }
    j->wm = velo_sr_i64(r);
    for (int side = 0; side < 2; side++) {
        uint64_t n = velo_sr_u64(r);
        /* Every row takes more than 8 bytes: a larger count is corrupt. */
        if (!velo_sr_ok(r, 0) || n > (r->len - r->off) / 8) {
            velo_sr_fail(r);
            return VELO_ERR;
        }
        for (uint64_t i = 0; i < n; i++) {
            uint32_t id = velo_join_side_load_row(&j->side[side], r);
            if (id == VELO_JOIN_NONE) {
                return VELO_ERR;
            }
            int64_t expire = interval_expire(j, side, j->side[side].time[id]);
            if (heap_push(&j->heap[side], expire, id) != VELO_OK) {
                return VELO_ERR;
            }
        }
    }
    interval_stats(op);
    return velo_sr_ok(r, 1) ? VELO_OK : VELO_ERR;
}

static const struct velo_op_ops interval_ops = {
    .name = "IntervalJoin",
    .watermark = interval_watermark,
    .finish = interval_finish,
    .destroy = interval_destroy,
    .explain = interval_explain,
    .push_port = interval_push_port,
    .snapshot = interval_snapshot,
    .restore = interval_restore,
};

struct velo_op *velo_op_interval_join(const struct velo_exec_env *env,
                                      const struct velo_schema *left,
                                      const struct velo_schema *right,
                                      struct velo_join_keys *keys,
                                      struct velo_expr *ltime,
                                      struct velo_expr *rtime, int64_t lower_us,
                                      int64_t upper_us, int64_t grace_us)
{
    struct interval_impl *j = NULL;
    struct velo_schema *out = NULL;
    struct velo_op *op = NULL;
    if (env == NULL || left == NULL || right == NULL ||
        velo_join_keys_check(keys) != VELO_OK || keys->nkeys == 0 ||
        keys->nkeys > 64 || lower_us > upper_us || grace_us < 0) {
        errno = EINVAL;
        goto fail;
    }
    j = calloc(1, sizeof(*j));
    out = velo_join_schema(left, right, 0);
    if (j == NULL || out == NULL) {
        goto fail;
    }
    j->type = keys->type;
    j->lower = lower_us;
    j->upper = upper_us;
    j->grace = grace_us;
    j->wm = INT64_MIN;
    struct velo_expr *residual = keys->residual;
    keys->residual = NULL;
    if (velo_join_out_init(&j->out, env, out, 0, left->n, right->n, residual) !=
        VELO_OK) {
        goto fail;
    }
    j->out.mark_l = &j->side[0];
    j->out.mark_r = &j->side[1];
    j->in.time[0] = ltime;
    j->in.time[1] = rtime;
    ltime = rtime = NULL;
    if (velo_join_timed_init(&j->in, env, keys, left, right) != VELO_OK ||
        velo_join_side_init(&j->side[0], left, j->in.ktypes[0],
                            j->in.nkeys) != VELO_OK ||
        velo_join_side_init(&j->side[1], right, j->in.ktypes[1],
                            j->in.nkeys) != VELO_OK) {
        goto fail;
    }
    op = velo_op_alloc(env, &interval_ops, out, j);
    if (op == NULL || velo_op_ports_init(op, 2, NULL) != VELO_OK) {
        goto fail;
    }
    op->keeps_state = 1;
    return op;
fail:;
    int saved = errno != 0 ? errno : ENOMEM;
    if (op != NULL) {
        velo_op_destroy(op); /* frees j and out */
    } else {
        if (j != NULL) {
            struct velo_op tmp = {.impl = j};
            interval_destroy(&tmp);
        }
        velo_schema_destroy(out);
    }
    velo_join_keys_free(keys);
    velo_expr_free(ltime);
    velo_expr_free(rtime);
    errno = saved;
    return NULL;
}
