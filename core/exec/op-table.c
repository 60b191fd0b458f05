/*
 * Table (CREATE TABLE ... AS): the latest row per key, materialized.
 * Each input row is passed on marked INSERT (a key not seen before) or
 * UPDATE (an existing key); an upstream DELETE removes the key and passes
 * on. Rows are kept in a row store (strings in its arena, compacted when
 * replaced versions pile up) under an open-addressing index on the key.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <velo/log.h>

#include "exec/exec-internal.h"
#include "exec/state.h"

#define TABLE_SEED UINT64_C(0x243f6a8885a308d3)

struct table_impl {
    int *key_cols;
    size_t nkeys;
    struct velo_rowstore rs;
    struct velo_hindex idx;
    const struct velo_column **keycols;
    uint64_t *hashes;
    uint8_t *ops;
    size_t live; /* rows not deleted */
    size_t cap;
};

static uint64_t row_hash(void *arg, uint32_t id)
{
    struct table_impl *t = arg;
    return velo_rowstore_hdr(&t->rs, id)->hash;
}

static int key_matches(struct table_impl *t, size_t id, size_t r)
{
    uint8_t *nulls = velo_rowstore_nulls(&t->rs, id);
    union velo_slot *vals = velo_rowstore_vals(&t->rs, id);
    for (size_t k = 0; k < t->nkeys; k++) {
        const struct velo_column *c = t->keycols[k];
        int col = t->key_cols[k];
        int isnull = c->has_nulls && c->nulls[r];
        if (isnull != nulls[col]) {
            return 0;
        }
        if (!isnull && !velo_slot_key_eq(velo_phys(c->type.id),
                                         velo_col_get(c, r), vals[col])) {
            return 0;
        }
    }
    return 1;
}

static int store_row(struct table_impl *t, size_t id,
                     const struct velo_batch *in, size_t r)
{
    for (size_t c = 0; c < in->ncols; c++) {
        if (velo_rowstore_set(&t->rs, id, c, &in->cols[c], r) != VELO_OK) {
            return VELO_ERR;
        }
    }
    struct velo_rowhdr *h = velo_rowstore_hdr(&t->rs, id);
    if (in->origin != NULL) {
        h->origin = in->origin[r];
    }
    return VELO_OK;
}

static int table_push(struct velo_op *op, struct velo_batch *in)
{
    struct table_impl *t = op->impl;
    size_t n = velo_batch_live(in);
    for (size_t k = 0; k < t->nkeys; k++) {
        t->keycols[k] = &in->cols[t->key_cols[k]];
    }
    velo_keys_hash(t->keycols, t->nkeys, in->sel, n, t->hashes, TABLE_SEED);
    for (size_t i = 0; i < n; i++) {
        size_t r = in->sel != NULL ? in->sel[i] : i;
        uint64_t h = t->hashes[i];
        int is_delete = in->op != NULL && in->op[r] == VELO_ROW_DELETE;
        if (velo_hindex_reserve(&t->idx, row_hash, t) != VELO_OK) {
            return VELO_ERR;
        }
        size_t pos = h & t->idx.mask;
        uint64_t tag = h & UINT64_C(0xffffffff00000000);
        long found = -1;
        for (;;) {
            uint64_t s = t->idx.slots[pos];
            if (s == 0) {
                break;
            }
            uint32_t id = (uint32_t)(s & 0xffffffffu) - 1;
            if ((s & UINT64_C(0xffffffff00000000)) == tag &&
                velo_rowstore_hdr(&t->rs, id)->hash == h &&
                key_matches(t, id, r)) {
                found = id;
                break;
            }
            pos = (pos + 1) & t->idx.mask;
        }
        if (found < 0) {
            if (is_delete) {
                t->ops[r] = VELO_ROW_DELETE; /* nothing to remove */
                continue;
            }
            long id = velo_rowstore_add(&t->rs);
            if (id < 0 || store_row(t, (size_t)id, in, r) != VELO_OK) {
                return VELO_ERR;
            }
            velo_rowstore_hdr(&t->rs, (size_t)id)->hash = h;
            velo_hindex_put(&t->idx, pos, h, (uint32_t)id);
            t->ops[r] = VELO_ROW_INSERT;
            t->live++;
            continue;
        }
        struct velo_rowhdr *hdr = velo_rowstore_hdr(&t->rs, (size_t)found);
        if (is_delete) {
            if (!hdr->deleted) {
                hdr->deleted = 1;
                t->live--;
            }
            t->ops[r] = VELO_ROW_DELETE;
            continue;
        }
        if (store_row(t, (size_t)found, in, r) != VELO_OK) {
            return VELO_ERR;
        }
        t->ops[r] = hdr->deleted ? VELO_ROW_INSERT : VELO_ROW_UPDATE;
        if (hdr->deleted) {
            hdr->deleted = 0;
            t->live++;
        }
    }
    if (velo_rowstore_maybe_compact(&t->rs) != VELO_OK) {
        return VELO_ERR;
    }
    op->stats.state_rows = t->live;
    op->stats.state_bytes =
        velo_rowstore_bytes(&t->rs) + velo_hindex_bytes(&t->idx);
    uint8_t *saved = in->op;
    in->op = t->ops;
    int rc = velo_op_emit(op, in);
    in->op = saved;
    return rc;
}

static void table_destroy(struct velo_op *op)
{
    struct table_impl *t = op->impl;
    if (t == NULL) {
        return;
    }
    free(t->key_cols);
    velo_rowstore_free(&t->rs);
    velo_hindex_free(&t->idx);
    free(t->keycols);
    free(t->hashes);
    free(t->ops);
    free(t);
}

static void table_explain(const struct velo_op *op, char *buf, size_t len)
{
    const struct table_impl *t = op->impl;
    size_t used = (size_t)snprintf(buf, len, "latest row per key (");
    for (size_t k = 0; k < t->nkeys && used < len; k++) {
        int w = snprintf(buf + used, len - used, "%s%s", k ? ", " : "",
                         op->out_schema->fields[t->key_cols[k]].name);
        if (w < 0) {
            return;
        }
        used += (size_t)w;
    }
    if (used < len) {
        snprintf(buf + used, len - used,
                 "); emits INSERT for new keys, UPDATE after");
    }
}

/* Checkpoints: the rows (deleted ones too: their slots are in the
 * index); the index is rebuilt from the stored key hashes. */
static int table_snapshot(const struct velo_op *op,
                          struct velo_state_writer *w)
{
    const struct table_impl *t = op->impl;
    velo_rowstore_snapshot(&t->rs, w);
    return w->oom ? VELO_ERR : VELO_OK;
}

static int table_restore(struct velo_op *op, struct velo_state_reader *r)
{
    struct table_impl *t = op->impl;
    velo_rowstore_clear(&t->rs);
    velo_hindex_clear(&t->idx);
    t->live = 0;
    if (velo_rowstore_restore(&t->rs, r) != VELO_OK || !velo_sr_ok(r, 1)) {
        return VELO_ERR;
    }
    for (size_t id = 0; id < t->rs.n; id++) {
        const struct velo_rowhdr *h = velo_rowstore_hdr(&t->rs, id);
        if (h->deleted > 1 || velo_hindex_reserve(&t->idx, row_hash, t) !=
                                  VELO_OK) {
            return VELO_ERR;
        }
        velo_hindex_insert(&t->idx, h->hash, (uint32_t)id);
        t->live += !h->deleted;
    }
    op->stats.state_rows = t->live;
    op->stats.state_bytes =
        velo_rowstore_bytes(&t->rs) + velo_hindex_bytes(&t->idx);
    return VELO_OK;
}

static const struct velo_op_ops table_ops = {
    .name = "Table",
    .push = table_push,
    .destroy = table_destroy,
    .explain = table_explain,
    .snapshot = table_snapshot,
    .restore = table_restore,
};

struct velo_op *velo_op_table(const struct velo_exec_env *env,
                              const struct velo_schema *in,
                              const int *key_cols, size_t nkeys)
{
    if (env == NULL || in == NULL || (nkeys > 0 && key_cols == NULL)) {
        errno = EINVAL;
        return NULL;
    }
    for (size_t k = 0; k < nkeys; k++) {
        if (key_cols[k] < 0 || (size_t)key_cols[k] >= in->n) {
            errno = EINVAL;
            return NULL;
        }
    }
    size_t cap = env->batch_cap ? env->batch_cap : VELO_BATCH_ROWS;
    struct table_impl *t = calloc(1, sizeof(*t));
    struct velo_schema *out = velo_schema_copy(in);
    struct velo_datatype *types = calloc(in->n ? in->n : 1, sizeof(*types));
    struct velo_op *op = NULL;
    if (t == NULL || out == NULL || types == NULL) {
        goto fail;
    }
    for (size_t c = 0; c < in->n; c++) {
        types[c] = in->fields[c].type;
    }
    t->nkeys = nkeys;
    t->cap = cap;
    t->key_cols = calloc(nkeys ? nkeys : 1, sizeof(int));
    t->keycols = calloc(nkeys ? nkeys : 1, sizeof(*t->keycols));
    t->hashes = calloc(cap, sizeof(uint64_t));
    t->ops = calloc(cap, 1);
    if (t->key_cols == NULL || t->keycols == NULL || t->hashes == NULL ||
        t->ops == NULL || velo_rowstore_init(&t->rs, types, in->n) != VELO_OK ||
        velo_hindex_init(&t->idx, 64) != VELO_OK) {
        goto fail;
    }
    if (nkeys > 0) {
        memcpy(t->key_cols, key_cols, nkeys * sizeof(int));
    }
    op = velo_op_alloc(env, &table_ops, out, t);
    if (op == NULL) {
        goto fail;
    }
    op->keeps_state = 1;
    free(types);
    return op;
fail:
    if (t != NULL) {
        struct velo_op tmp = {.impl = t};
        table_destroy(&tmp);
    }
    free(types);
    velo_schema_destroy(out);
    errno = ENOMEM;
    return NULL;
}
