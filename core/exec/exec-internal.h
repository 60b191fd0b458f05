/*
 * Executor internals shared by the files of core/exec: physical layouts,
 * hashing, the key and row stores behind Aggregate, Sort and Table, and
 * the evaluator entry points operators use. Not part of any contract.
 */
#ifndef VELO_EXEC_INTERNAL_H
#define VELO_EXEC_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "exec/batch.h"
#include "exec/expr.h"
#include "exec/operator.h"
#include "exec/types.h"

/* ---- Physical representation ------------------------------------------- */

enum velo_phys {
    VELO_PHYS_NONE = 0,
    VELO_PHYS_U8 = 1,
    VELO_PHYS_I64 = 2,
    VELO_PHYS_F64 = 3,
    VELO_PHYS_STR = 4
};

static inline int velo_phys(int id)
{
    switch (id) {
    case VELO_TYPE_BOOLEAN:
        return VELO_PHYS_U8;
    case VELO_TYPE_INTEGER:
    case VELO_TYPE_BIGINT:
    case VELO_TYPE_DECIMAL:
    case VELO_TYPE_TIMESTAMP:
    case VELO_TYPE_DATE:
    case VELO_TYPE_INTERVAL:
        return VELO_PHYS_I64;
    case VELO_TYPE_DOUBLE:
        return VELO_PHYS_F64;
    case VELO_TYPE_STRING:
    case VELO_TYPE_BYTES:
    case VELO_TYPE_JSON:
        return VELO_PHYS_STR;
    default:
        return VELO_PHYS_NONE;
    }
}

/* Bytes per value; a NULL-typed column still gets 8 so it can be read. */
static inline size_t velo_phys_width(int id)
{
    switch (velo_phys(id)) {
    case VELO_PHYS_U8:
        return 1;
    case VELO_PHYS_STR:
        return sizeof(struct velo_str);
    default:
        return 8;
    }
}

/* One stored value of any type (keys, buffered rows, MIN/MAX states). */
union velo_slot {
    int64_t i;
    double d;
    struct velo_str s;
};

static inline union velo_slot velo_col_get(const struct velo_column *c,
                                           size_t r)
{
    union velo_slot v;
    memset(&v, 0, sizeof(v));
    switch (velo_phys(c->type.id)) {
    case VELO_PHYS_U8:
        v.i = c->v.u8[r];
        break;
    case VELO_PHYS_I64:
        v.i = c->v.i64[r];
        break;
    case VELO_PHYS_F64:
        v.d = c->v.f64[r];
        break;
    case VELO_PHYS_STR:
        v.s = c->v.str[r];
        break;
    default:
        break;
    }
    return v;
}

static inline void velo_col_put(struct velo_column *c, size_t r,
                                union velo_slot v)
{
    switch (velo_phys(c->type.id)) {
    case VELO_PHYS_U8:
        c->v.u8[r] = (uint8_t)v.i;
        break;
    case VELO_PHYS_I64:
        c->v.i64[r] = v.i;
        break;
    case VELO_PHYS_F64:
        c->v.f64[r] = v.d;
        break;
    case VELO_PHYS_STR:
        c->v.str[r] = v.s;
        break;
    default:
        break;
    }
}

static inline void velo_col_set_null(struct velo_column *c, size_t r)
{
    c->nulls[r] = 1;
    c->has_nulls = 1;
}

static inline int velo_col_is_null(const struct velo_column *c, size_t r)
{
    return c->has_nulls && c->nulls[r];
}

/* Write n stored values (nulls[k], vals[k]) into row `row` of cols[0..n):
 * how Sort, Top-N, OVER and Aggregate emit a kept row or key. */
static inline void velo_slots_put_row(struct velo_column *cols, size_t row,
                                      const uint8_t *nulls,
                                      const union velo_slot *vals, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        struct velo_column *col = &cols[k];
        col->nulls[row] = nulls[k];
        if (nulls[k]) {
            col->has_nulls = 1;
        } else {
            velo_col_put(col, row, vals[k]);
        }
    }
}

/** Compare two non-NULL values of one physical type: <0, 0, >0. Doubles
 *  order NaN above everything (PostgreSQL); strings bytewise. */
int velo_slot_cmp(int phys, union velo_slot a, union velo_slot b);
/** Compare two values of possibly different numeric types exactly
 *  (DECIMAL scales, BIGINT vs DECIMAL vs DOUBLE). Same-type non-numerics
 *  use velo_slot_cmp. */
int velo_value_cmp(struct velo_datatype ta, union velo_slot a,
                   struct velo_datatype tb, union velo_slot b);

/* ---- Batch internals ---------------------------------------------------- */

/** A batch whose column structs are filled by its producer with borrowed
 *  buffers (Project passes input columns through without copying). */
struct velo_batch *velo_batch_create_shell(const struct velo_schema *schema,
                                           size_t cap);
uint16_t *velo_batch_sel_buf(struct velo_batch *b);
uint8_t *velo_batch_op_buf(struct velo_batch *b);
struct velo_row_origin *velo_batch_origin_buf(struct velo_batch *b);

/* ---- Hashing (wyhash-style 128-bit multiply mixing) --------------------- */

#define VELO_H_S0 UINT64_C(0xa0761d6478bd642f)
#define VELO_H_S1 UINT64_C(0xe7037ed1a0b428db)
#define VELO_H_S2 UINT64_C(0x8ebc6af09c88c6e3)
#define VELO_H_S3 UINT64_C(0x589965cc75374cc3)

static inline uint64_t velo_hmix(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t velo_hash_u64(uint64_t v, uint64_t seed)
{
    return velo_hmix(v ^ VELO_H_S0, seed ^ VELO_H_S1);
}

static inline uint64_t velo_hr8(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t velo_hr4(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t velo_hash_bytes(const void *data, size_t len,
                                       uint64_t seed)
{
    const uint8_t *p = data;
    uint64_t a, b;
    seed ^= velo_hmix(seed ^ VELO_H_S0, VELO_H_S1);
    if (len <= 16) {
        if (len >= 4) {
            a = (velo_hr4(p) << 32) | velo_hr4(p + ((len >> 3) << 2));
            b = (velo_hr4(p + len - 4) << 32) |
                velo_hr4(p + len - 4 - ((len >> 3) << 2));
        } else if (len > 0) {
            a = ((uint64_t)p[0] << 16) | ((uint64_t)p[len >> 1] << 8) |
                p[len - 1];
            b = 0;
        } else {
            a = b = 0;
        }
    } else {
        size_t i = len;
        if (i > 48) {
            uint64_t s1 = seed, s2 = seed;
            do {
                seed = velo_hmix(velo_hr8(p) ^ VELO_H_S1,
                                 velo_hr8(p + 8) ^ seed);
                s1 = velo_hmix(velo_hr8(p + 16) ^ VELO_H_S2,
                               velo_hr8(p + 24) ^ s1);
                s2 = velo_hmix(velo_hr8(p + 32) ^ VELO_H_S3,
                               velo_hr8(p + 40) ^ s2);
                p += 48;
                i -= 48;
            } while (i > 48);
            seed ^= s1 ^ s2;
        }
        while (i > 16) {
            seed = velo_hmix(velo_hr8(p) ^ VELO_H_S1, velo_hr8(p + 8) ^ seed);
            i -= 16;
            p += 16;
        }
        a = velo_hr8(p + i - 16);
        b = velo_hr8(p + i - 8);
    }
    a ^= VELO_H_S1;
    b ^= seed;
    __uint128_t r = (__uint128_t)a * b;
    a = (uint64_t)r;
    b = (uint64_t)(r >> 64);
    return velo_hmix(a ^ VELO_H_S0 ^ len, b ^ VELO_H_S1);
}

/** Hash of one typed value, as used by keys, DISTINCT and HLL. Doubles
 *  hash -0.0 as 0.0 and every NaN alike, so equal keys hash equal. */
static inline uint64_t velo_hash_slot(int phys, union velo_slot v,
                                      uint64_t seed)
{
    if (phys == VELO_PHYS_STR) {
        return velo_hash_bytes(v.s.ptr, v.s.len, seed);
    }
    if (phys == VELO_PHYS_F64) {
        double d = v.d;
        if (d == 0.0) {
            d = 0.0;
        } else if (d != d) {
            d = __builtin_nan("");
        }
        uint64_t bits;
        memcpy(&bits, &d, 8);
        return velo_hash_u64(bits, seed);
    }
    return velo_hash_u64((uint64_t)v.i, seed);
}

/* Equality of key values (doubles by normalized bits: NaN = NaN). */
static inline int velo_slot_key_eq(int phys, union velo_slot a,
                                   union velo_slot b)
{
    switch (phys) {
    case VELO_PHYS_STR:
        return a.s.len == b.s.len &&
               (a.s.len == 0 || memcmp(a.s.ptr, b.s.ptr, a.s.len) == 0);
    case VELO_PHYS_F64:
        if (a.d != a.d || b.d != b.d) {
            return a.d != a.d && b.d != b.d;
        }
        return a.d == b.d;
    default:
        return a.i == b.i;
    }
}

/* ---- Open-addressing index ---------------------------------------------
 * Slots hold (hash >> 32) << 32 | (id + 1); 0 is empty. The caller keeps
 * full hashes with its entries so the index can grow without rehashing
 * the keys. Linear probing, power-of-two sizes, load <= 1/2. */
struct velo_hindex {
    uint64_t *slots;
    size_t mask;
    size_t count;
};

int velo_hindex_init(struct velo_hindex *h, size_t min_entries);
void velo_hindex_free(struct velo_hindex *h);
void velo_hindex_clear(struct velo_hindex *h);
/** Grow when the next insert would pass the load limit. hash_of returns
 *  the full hash of entry id. @return VELO_OK/VELO_ERR. */
int velo_hindex_reserve(struct velo_hindex *h,
                        uint64_t (*hash_of)(void *arg, uint32_t id),
                        void *arg);
static inline void velo_hindex_put(struct velo_hindex *h, size_t pos,
                                   uint64_t hash, uint32_t id)
{
    h->slots[pos] = (hash & UINT64_C(0xffffffff00000000)) | (id + 1u);
    h->count++;
}
/** Insert entry id (not in the index yet) at the first free slot of its
 *  probe sequence; room must have been reserved. For rebuilds and restores,
 *  which know no equal key is present. */
static inline void velo_hindex_insert(struct velo_hindex *h, uint64_t hash,
                                      uint32_t id)
{
    size_t pos = hash & h->mask;
    while (h->slots[pos] != 0) {
        pos = (pos + 1) & h->mask;
    }
    velo_hindex_put(h, pos, hash, id);
}
size_t velo_hindex_bytes(const struct velo_hindex *h);

/* ---- Key columns -------------------------------------------------------- */

/** hashes[i] = hash of the key values of row rows[i] (row i when rows is
 *  NULL) over ncols columns, starting from seed. */
void velo_keys_hash(const struct velo_column *const *cols, size_t ncols,
                    const uint16_t *rows, size_t n, uint64_t *hashes,
                    uint64_t seed);
/** Does row r of cols equal the stored key (nulls[k], vals[k])? NULL
 *  equals NULL for grouping. */
static inline int velo_keys_eq(const struct velo_column *const *cols,
                               size_t ncols, size_t r, const uint8_t *nulls,
                               const union velo_slot *vals)
{
    for (size_t k = 0; k < ncols; k++) {
        const struct velo_column *c = cols[k];
        int isnull = c->has_nulls && c->nulls[r];
        if (isnull != nulls[k]) {
            return 0;
        }
        if (!isnull && !velo_slot_key_eq(velo_phys(c->type.id),
                                         velo_col_get(c, r), vals[k])) {
            return 0;
        }
    }
    return 1;
}
/** Store row r's key values; strings are copied into arena.
 *  @return VELO_OK/VELO_ERR (ENOMEM). */
int velo_keys_store(const struct velo_column *const *cols, size_t ncols,
                    size_t r, uint8_t *nulls, union velo_slot *vals,
                    struct velo_arena *arena);

/* ---- Row store (Sort, Table) -------------------------------------------
 * Rows of a fixed column list kept across batches: values in slots,
 * strings in an arena. Replacing a row leaves its old strings behind as
 * garbage; velo_rowstore_compact rebuilds the arena when garbage dominates
 * so memory stays proportional to the live rows. */
struct velo_rowstore {
    size_t ncols;
    struct velo_datatype *types; /* ncols, owned */
    size_t stride;
    char *rows;
    size_t n, cap;
    struct velo_arena *arena;
    size_t live_bytes; /* string bytes of live rows */
    size_t garbage;    /* string bytes no row refers to */
};

struct velo_rowhdr {
    struct velo_row_origin origin;
    uint64_t seq;  /* arrival order (stable sorting) */
    uint64_t hash; /* Table: key hash */
    uint8_t op;    /* enum velo_row_op (Table), or a deleted mark */
    uint8_t deleted;
    uint8_t pad[6];
};

int velo_rowstore_init(struct velo_rowstore *rs,
                       const struct velo_datatype *types, size_t ncols);
void velo_rowstore_free(struct velo_rowstore *rs);
static inline struct velo_rowhdr *velo_rowstore_hdr(struct velo_rowstore *rs,
                                                    size_t i)
{
    return (struct velo_rowhdr *)(rs->rows + i * rs->stride);
}
static inline uint8_t *velo_rowstore_nulls(struct velo_rowstore *rs, size_t i)
{
    return (uint8_t *)(rs->rows + i * rs->stride + sizeof(struct velo_rowhdr));
}
union velo_slot *velo_rowstore_vals(struct velo_rowstore *rs, size_t i);
/** Append an empty row. @return its index or -1 (ENOMEM). */
long velo_rowstore_add(struct velo_rowstore *rs);
/** Set column c of row i from row r of col (copies strings). */
int velo_rowstore_set(struct velo_rowstore *rs, size_t i, size_t c,
                      const struct velo_column *col, size_t r);
/** Free row i's values: its strings become garbage, every column NULL.
 *  The slot stays; stores that reuse slots keep a free list. */
void velo_rowstore_release(struct velo_rowstore *rs, size_t i);
/** Rebuild the arena when garbage exceeds the live bytes (and 1 MiB). */
int velo_rowstore_maybe_compact(struct velo_rowstore *rs);
/** The same, copying only the rows i with live[i] != 0: for stores whose
 *  freed rows are not cleared (their strings are counted as garbage). */
int velo_rowstore_maybe_compact_live(struct velo_rowstore *rs,
                                     const uint8_t *live);
size_t velo_rowstore_bytes(const struct velo_rowstore *rs);
void velo_rowstore_clear(struct velo_rowstore *rs);
/** Order of stored rows a and b (< 0: a comes first) by the sort values
 *  kept in columns [first, first + nkeys) (phys[k]: their physical
 *  types), then by arrival (seq). Sort and Top-N; inline because it is
 *  their heaps' and lists' comparator. */
static inline int velo_rowstore_cmp(struct velo_rowstore *rs, size_t a,
                                    size_t b, size_t first,
                                    const struct velo_sort_key *keys,
                                    const int *phys, size_t nkeys)
{
    uint8_t *na = velo_rowstore_nulls(rs, a);
    uint8_t *nb = velo_rowstore_nulls(rs, b);
    union velo_slot *va = velo_rowstore_vals(rs, a);
    union velo_slot *vb = velo_rowstore_vals(rs, b);
    for (size_t k = 0; k < nkeys; k++) {
        size_t c = first + k;
        const struct velo_sort_key *key = &keys[k];
        if (na[c] || nb[c]) {
            if (na[c] && nb[c]) {
                continue;
            }
            int a_first = na[c] ? key->nulls_first : !key->nulls_first;
            return a_first ? -1 : 1;
        }
        int r = velo_slot_cmp(phys[k], va[c], vb[c]);
        if (r != 0) {
            return key->desc ? -r : r;
        }
    }
    uint64_t sa = velo_rowstore_hdr(rs, a)->seq;
    uint64_t sb = velo_rowstore_hdr(rs, b)->seq;
    return sa < sb ? -1 : sa > sb ? 1 : 0;
}

/** Would row r of the sort value columns cols come before stored row id
 *  (layout as velo_rowstore_cmp)? Equal values: no, the stored row
 *  arrived first. Lets a row that cannot make a top-k cut be dropped
 *  without copying it. */
static inline int velo_rowstore_before(struct velo_rowstore *rs, size_t id,
                                       const struct velo_column *const *cols,
                                       size_t r, size_t first,
                                       const struct velo_sort_key *keys,
                                       const int *phys, size_t nkeys)
{
    uint8_t *nb = velo_rowstore_nulls(rs, id);
    union velo_slot *vb = velo_rowstore_vals(rs, id);
    for (size_t k = 0; k < nkeys; k++) {
        size_t c = first + k;
        const struct velo_sort_key *key = &keys[k];
        int anull = velo_col_is_null(cols[k], r);
        if (anull || nb[c]) {
            if (anull && nb[c]) {
                continue;
            }
            return anull ? key->nulls_first : !key->nulls_first;
        }
        int cmp = velo_slot_cmp(phys[k], velo_col_get(cols[k], r), vb[c]);
        if (cmp != 0) {
            return key->desc ? cmp > 0 : cmp < 0;
        }
    }
    return 0;
}

/** Checkpoints: rows [0, n) with their headers (velo_sw_* encoding). */
void velo_rowstore_snapshot(const struct velo_rowstore *rs,
                            struct velo_state_writer *w);
/** Append the rows a snapshot wrote (strings copied into the arena).
 *  @return VELO_OK, or VELO_ERR when the section is corrupt (r->bad). */
int velo_rowstore_restore(struct velo_rowstore *rs,
                          struct velo_state_reader *r);

/* ---- Evaluation internals ---------------------------------------------- */

/** velo_evaluate over an explicit selection (rows of `in`). */
const struct velo_column *velo_evaluate_sel(struct velo_evaluator *ev,
                                            struct velo_eval_ctx *ctx,
                                            const struct velo_batch *in,
                                            const uint16_t *sel, size_t n);
/** Flag row `row` failed and make its output NULL. */
void velo_eval_fail(struct velo_eval_ctx *ctx, struct velo_column *out,
                    size_t row, int code, const char *fmt, ...)
    VELO_PRINTF(5, 6);
int velo_evaluator_is_column(const struct velo_evaluator *ev);

/* ---- Operator helpers --------------------------------------------------- */

/** Append id to a growable id list (the free lists of row and partition
 *  slots), doubling it from first_cap when full.
 *  @return VELO_OK, or VELO_ERR (ENOMEM) with the list unchanged. */
int velo_ids_push(uint32_t **ids, size_t *n, size_t *cap, size_t first_cap,
                  uint32_t id);

/** Allocate an operator with its impl and out_schema (owned). */
struct velo_op *velo_op_alloc(const struct velo_exec_env *env,
                              const struct velo_op_ops *ops,
                              struct velo_schema *out_schema, void *impl);
/** Report every row flagged in ctx among the live rows (sel/n) of b, count
 *  them, and clear the flags. @return rows reported. */
size_t velo_op_report_errors(struct velo_op *op, struct velo_eval_ctx *ctx,
                             const struct velo_batch *b, const uint16_t *sel,
                             size_t n);
/** Keep only rows not flagged in ctx: writes the survivors into out_sel.
 *  @return their count. */
size_t velo_sel_drop_failed(const struct velo_eval_ctx *ctx,
                            const uint16_t *sel, size_t n, uint16_t *out_sel);
int64_t velo_op_now(const struct velo_exec_env *env);
/** Append printf output to buf (len bytes, *used filled) for explain text;
 *  once the text is cut short, later appends are dropped. */
static inline VELO_PRINTF(4, 5) void velo_buf_appendf(char *buf, size_t len,
                                                      size_t *used,
                                                      const char *fmt, ...)
{
    if (*used < len) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(buf + *used, len - *used, fmt, ap);
        va_end(ap);
        if (w > 0) {
            *used += (size_t)w;
        }
    }
}

#endif /* VELO_EXEC_INTERNAL_H */
