/*
 * Join internals shared by op-join.c, op-join-lookup.c and
 * op-join-window.c: the row store every join keeps its rows in (a side),
 * the chained key index over it, and the output builder that turns pairs
 * of rows into batches, applies the residual predicate and marks which
 * rows found a partner. Not part of any contract.
 */
#ifndef VELO_EXEC_JOIN_INTERNAL_H
#define VELO_EXEC_JOIN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "exec/exec-internal.h"
#include "exec/state.h"

#define VELO_JOIN_NONE UINT32_MAX
#define VELO_JOIN_SEED UINT64_C(0x452821e638d01377)

/* ---- Chained index: key hash -> row ids, O(1) unlink -------------------
 * Rows of a join side come and go (expiry, DELETE, cache eviction), which
 * the open-addressing velo_hindex cannot do without tombstones; a bucket
 * array with doubly linked chains through per-id arrays can. Several rows
 * may share a key (interval and window joins keep them all). */
struct velo_join_chain {
    uint32_t *heads; /* mask + 1 buckets */
    size_t mask;
    uint32_t *next, *prev;
    uint64_t *hash;
    uint8_t *linked;
    size_t ids_cap;
    size_t count;
};

/* ---- A side: rows kept by a join ---------------------------------------
 * Columns: the input's fields, then the key values (so a stored row can be
 * probed against another stored row). Slots of removed rows are reused
 * through a free list; their strings become garbage of the row store's
 * arena, rebuilt when garbage dominates. */
struct velo_join_side {
    struct velo_rowstore rs;
    size_t nin, nkeys;
    struct velo_join_chain idx;
    int64_t *time;    /* event time per id */
    uint8_t *matched; /* found a partner (outer joins) */
    uint8_t *used;    /* id holds a row */
    size_t meta_cap;
    uint32_t *free_ids;
    size_t nfree, free_cap;
    size_t live;
};

int velo_join_side_init(struct velo_join_side *s, const struct velo_schema *in,
                        const struct velo_datatype *key_types, size_t nkeys);
void velo_join_side_free(struct velo_join_side *s);
void velo_join_side_clear(struct velo_join_side *s);
/** A slot for a new row. @return id or VELO_JOIN_NONE (ENOMEM). */
uint32_t velo_join_side_alloc(struct velo_join_side *s);
/** Store row r of in (all columns) and its keys (kcols) in slot id; index
 *  it under hash unless a key is NULL. @return VELO_OK/VELO_ERR. */
int velo_join_side_put(struct velo_join_side *s, uint32_t id,
                       const struct velo_batch *in, size_t r,
                       const struct velo_column *const *kcols, uint64_t hash,
                       int64_t time);
/** Remove a row: unindex, free its slot and strings. */
void velo_join_side_kill(struct velo_join_side *s, uint32_t id);
int velo_join_side_key_null(struct velo_join_side *s, uint32_t id);
/** Do stored rows a (in side sa) and b (in sb) have equal keys? */
int velo_join_side_keys_eq(struct velo_join_side *sa, uint32_t a,
                           struct velo_join_side *sb, uint32_t b);
size_t velo_join_side_bytes(const struct velo_join_side *s);
/** Rebuild the arena once removed rows' strings dominate. */
int velo_join_side_compact(struct velo_join_side *s);
/** Checkpoint one stored row (values, time, matched, origin). */
void velo_join_side_save_row(struct velo_join_side *s, uint32_t id,
                             struct velo_state_writer *w);
/** Read a row written by velo_join_side_save_row into a new slot and index it.
 *  @return its id, or VELO_JOIN_NONE (reader marked bad or ENOMEM). */
uint32_t velo_join_side_load_row(struct velo_join_side *s,
                                 struct velo_state_reader *r);

int velo_join_chain_init(struct velo_join_chain *c);
void velo_join_chain_free(struct velo_join_chain *c);
int velo_join_chain_ids(struct velo_join_chain *c, size_t n);
int velo_join_chain_add(struct velo_join_chain *c, uint32_t id, uint64_t hash);
void velo_join_chain_del(struct velo_join_chain *c, uint32_t id);
static inline uint32_t velo_join_chain_first(const struct velo_join_chain *c,
                                             uint64_t hash)
{
    return c->heads[hash & c->mask];
}

/* ---- Output ------------------------------------------------------------- */

/* Where one side of an output row comes from: a batch row, a stored row,
 * or nothing (NULL-padded). */
struct velo_join_src {
    const struct velo_batch *b;
    size_t r;
    const uint8_t *nulls;
    const union velo_slot *vals;
    const struct velo_row_origin *origin;
};

struct velo_join_out {
    struct velo_batch *b;
    size_t cap;
    size_t off;    /* 2 for a window join (_window_start, _window_end) */
    size_t nl, nr; /* left and right field counts */
    int ts_col;    /* first hidden _timestamp of the output, or -1 */
    /* Per output row: the stored ids of its two rows (VELO_JOIN_NONE for the
     * missing side of an outer row or a row not in a side). */
    uint32_t *lid, *rid;
    uint8_t *pair; /* the row is a candidate pair the residual decides */
    uint8_t *pass;
    uint16_t *cand, *sel;
    uint8_t *phys; /* enum velo_phys of each output column */
    /* Residual over the output schema. */
    struct velo_expr *residual;
    struct velo_evaluator *res_ev;
    struct velo_eval_ctx ctx;
    /* Lookup LEFT JOIN: a pair failing the residual is kept, right NULL. */
    int keep_failed_left;
    /* Sides whose matched flags a passing pair sets (NULL: none). */
    struct velo_join_side *mark_l, *mark_r;
};

int velo_join_out_init(struct velo_join_out *o, const struct velo_exec_env *env,
                       const struct velo_schema *out_schema, size_t off,
                       size_t nl, size_t nr, struct velo_expr *residual);
void velo_join_out_free(struct velo_join_out *o);
/** Append one output row; flushes first when the batch is full. ts: the
 *  output event time written to ts_col (INT64_MIN: leave as copied).
 *  @return VELO_OK, or the children's error. */
int velo_join_out_row(struct velo_op *op, struct velo_join_out *o,
                      const struct velo_join_src *l,
                      const struct velo_join_src *r, uint32_t lid, uint32_t rid,
                      int pair, int64_t ts, int64_t wstart, int64_t wend);
/** Decide the residual for the buffered rows, mark partners, emit. */
int velo_join_out_flush(struct velo_op *op, struct velo_join_out *o);

/* ---- Key scratch --------------------------------------------------------
 * What every join needs per input batch: the evaluated key columns, their
 * hashes, and the context and arena the evaluation fails and allocates in
 * (reset per batch, so nothing is allocated per row). */
struct velo_join_scratch {
    struct velo_eval_ctx ctx;
    struct velo_arena *arena;
    const struct velo_column **kcols; /* nkeys */
    uint64_t *hashes;                 /* cap */
    size_t cap;
};

/** @return VELO_OK/VELO_ERR (ENOMEM); velo_join_scratch_free cleans up
 *  either way. */
int velo_join_scratch_init(struct velo_join_scratch *s, size_t nkeys,
                           size_t cap);
void velo_join_scratch_free(struct velo_join_scratch *s);
/** Start a batch: reset the arena and context time. @return now (us). */
int64_t velo_join_scratch_begin(struct velo_op *op,
                                struct velo_join_scratch *s);
/** Start a batch and evaluate and hash its n keys (evs) into kcols and
 *  hashes. */
void velo_join_scratch_keys(struct velo_op *op, struct velo_join_scratch *s,
                            struct velo_evaluator **evs, size_t nkeys,
                            const struct velo_batch *in);
/** Is one of the nkeys keys of batch row r NULL (it can never match)? */
static inline int velo_join_keys_null(const struct velo_join_scratch *s,
                                      size_t nkeys, size_t r)
{
    int keynull = 0;
    for (size_t k = 0; k < nkeys; k++) {
        keynull |= velo_col_is_null(s->kcols[k], r);
    }
    return keynull;
}
/** Report the batch's rows that failed evaluation (n: its live rows). */
void velo_join_scratch_report(struct velo_op *op, struct velo_join_scratch *s,
                              const struct velo_batch *in, size_t n);

/* ---- Timed inputs (interval and window joins) ----------------------------
 * Both evaluate, per batch of either input, its key expressions, its event
 * time (an expression or the input's _timestamp) and the key hashes. */
struct velo_join_timed {
    size_t nkeys;
    struct velo_expr **keys[2];
    struct velo_evaluator **kev[2];
    struct velo_expr *time[2]; /* owned; NULL: the input's _timestamp */
    struct velo_evaluator *tev[2];
    int ts_in[2]; /* the input's _timestamp when time[i] is NULL */
    struct velo_datatype ktypes[2][64]; /* each side's key types */
    struct velo_join_scratch k;
};

/** Take the key expressions of keys (1..64 pairs) and compile them and
 *  t->time[] (set by the caller, owned from then on) over l and r.
 *  EINVAL: an event time that is not a TIMESTAMP, or no _timestamp.
 *  @return VELO_OK/VELO_ERR; velo_join_timed_free cleans up either way. */
int velo_join_timed_init(struct velo_join_timed *t,
                         const struct velo_exec_env *env,
                         struct velo_join_keys *keys,
                         const struct velo_schema *l,
                         const struct velo_schema *r);
void velo_join_timed_free(struct velo_join_timed *t);
/** Evaluate keys (t->k.kcols), hashes (t->k.hashes) and event time of a
 *  batch of input `side`. @return the event time column. */
const struct velo_column *velo_join_timed_eval(struct velo_op *op,
                                               struct velo_join_timed *t,
                                               int side,
                                               const struct velo_batch *in);
/* Is input side (0 left, 1 right) preserved by a join of this type? */
static inline int velo_join_side_outer(int type, int side)
{
    return type == VELO_JOIN_FULL ||
           (side == 0 ? type == VELO_JOIN_LEFT : type == VELO_JOIN_RIGHT);
}

/* A stored row as the source of one side of an output row. */
static inline void velo_join_stored_src(struct velo_join_side *s, uint32_t id,
                                        struct velo_join_src *src)
{
    memset(src, 0, sizeof(*src));
    src->nulls = velo_rowstore_nulls(&s->rs, id);
    src->vals = velo_rowstore_vals(&s->rs, id);
    src->origin = &velo_rowstore_hdr(&s->rs, id)->origin;
}

/** Emit stored row id of input side that leaves without a partner (outer
 *  joins), the other side NULL; ws/we: window bounds (0 without). */
int velo_join_emit_unmatched(struct velo_op *op, struct velo_join_out *o,
                             struct velo_join_side *s, int side, uint32_t id,
                             int64_t ws, int64_t we);

/* ---- Shared construction ------------------------------------------------ */

/** Output schema: [_window_start, _window_end,] left fields, right
 *  fields. */
struct velo_schema *velo_join_schema(const struct velo_schema *l,
                                     const struct velo_schema *r, int windowed);
/** Check the key expressions pair up (same physical type; decimals of
 *  one scale) so equal values hash equal. @return VELO_OK/VELO_ERR. */
int velo_join_keys_check(const struct velo_join_keys *k);
/** Free every expression a join_keys owns (constructor failure paths). */
void velo_join_keys_free(struct velo_join_keys *k);
/** Evaluate exprs over in; cols[i] are the results. Rows that fail are
 *  flagged in ctx. */
void velo_join_eval(struct velo_evaluator **evs, size_t n,
                    struct velo_eval_ctx *ctx, const struct velo_batch *in,
                    const struct velo_column **cols);
int velo_join_timestamp_col(const struct velo_schema *s);
void velo_join_report_late(struct velo_op *op, const struct velo_batch *in,
                           size_t r, int64_t t, int64_t wm);
static inline const struct velo_row_origin *
velo_join_origin(const struct velo_batch *b, size_t r)
{
    static const struct velo_row_origin unknown = {-1, 0, 0};
    return b != NULL && b->origin != NULL ? &b->origin[r] : &unknown;
}
static inline int64_t velo_join_sat_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) {
        return b > 0 ? INT64_MAX : INT64_MIN;
    }
    return r;
}
const char *velo_join_type_name(int type);

#endif /* VELO_EXEC_JOIN_INTERNAL_H */
