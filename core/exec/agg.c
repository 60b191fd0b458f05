/*
 * Aggregate functions: fixed-size states inside the group table's slots,
 * variable data (strings, distinct sets, HyperLogLog registers) in the
 * group table's arena, vectorized updates over (group id, row) pairs.
 *
 * Result types:
 *   COUNT(*), COUNT(x), COUNT(DISTINCT x)      BIGINT
 *   SUM(INTEGER|BIGINT) BIGINT; SUM(DECIMAL(p,s)) DECIMAL(18,s) summed
 *     exactly in 128 bits; SUM(DOUBLE) DOUBLE; SUM(INTERVAL) INTERVAL.
 *     A total that does not fit is an error for that group's row (the
 *     row is dropped and reported), never a wrapped number.
 *   AVG(INTEGER|BIGINT) DOUBLE (exact 128-bit sum, one division);
 *     AVG(DECIMAL(p,s)) DECIMAL(18, max(s,6)) exact, HALF_EVEN;
 *     AVG(DOUBLE) DOUBLE.
 *   MIN, MAX, FIRST_VALUE, LAST_VALUE: the argument's type (every type;
 *     strings compare bytewise, NaN above all numbers). FIRST/LAST follow
 *     arrival order.
 *   STDDEV_SAMP/STDDEV, STDDEV_POP, VAR_SAMP/VARIANCE, VAR_POP: DOUBLE
 *     (Welford's online algorithm).
 *   APPROX_COUNT_DISTINCT: BIGINT, HyperLogLog with 2^14 registers
 *     (standard error 0.81%), exact below 256 distinct values per group.
 *   STRING_AGG(x, sep) STRING; COLLECT_LIST(x) JSON array text.
 * NULL arguments are skipped; an aggregate that saw no value is NULL
 * (COUNT is 0).
 *
 * merge(dst, src) leaves dst as if it had seen dst's rows and then src's:
 * order-dependent aggregates (FIRST_VALUE, LAST_VALUE, STRING_AGG,
 * COLLECT_LIST) put dst's rows first, which is what a SESSION window
 * wants when it merges an earlier session with a later one. save/load
 * write a state's contents in the checkpoint encoding (state.h); load
 * checks every count, flag and type tag it reads, so a corrupt section
 * is refused (VELO_ERR), never trusted.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <velo/log.h>

#include "exec/func-internal.h"
#include "exec/state.h"

#define STATE(states, stride, gid) ((states) + (size_t)(gid) * (stride))
#define ARG_NULL(c, r) ((c)->has_nulls && (c)->nulls[r])

typedef void (*agg_update_fn)(struct velo_agg_ctx *ctx, char *states,
                              size_t stride, const uint32_t *gid,
                              const struct velo_column *const *args,
                              const uint16_t *rows, size_t n);

static void *arena_dup(struct velo_arena *a, const char *s, size_t n)
{
    char *p = velo_arena_alloc(a, n > 0 ? n : 1);
    if (p != NULL && n > 0) {
        memcpy(p, s, n);
    }
    return p;
}

static int out_str(struct velo_arena *a, struct velo_column *out, size_t row,
                   const char *p, size_t n)
{
    char *c = arena_dup(a, p, n);
    if (c == NULL) {
        return VELO_ERR;
    }
    out->v.str[row].ptr = c;
    out->v.str[row].len = n;
    return VELO_OK;
}

/* ---- COUNT -------------------------------------------------------------- */

static void i64_init(void *s)
{
    memset(s, 0, sizeof(int64_t));
}

static void countstar_update(struct velo_agg_ctx *ctx, char *states,
                             size_t stride, const uint32_t *gid,
                             const struct velo_column *const *args,
                             const uint16_t *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        (*(int64_t *)STATE(states, stride, gid[i]))++;
    }
}

static void count_update(struct velo_agg_ctx *ctx, char *states,
                         size_t stride, const uint32_t *gid,
                         const struct velo_column *const *args,
                         const uint16_t *rows, size_t n)
{
    const struct velo_column *c = args[0];
    if (!c->has_nulls) {
        countstar_update(ctx, states, stride, gid, args, rows, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        (*(int64_t *)STATE(states, stride, gid[i])) += !c->nulls[rows[i]];
    }
}

static void count_final(struct velo_agg_ctx *ctx, const void *state,
                        struct velo_column *out, size_t row,
                        struct velo_arena *out_arena)
{
    out->v.i64[row] = *(const int64_t *)state;
}

static void count_merge(struct velo_agg_ctx *ctx, void *dst, const void *src)
{
    *(int64_t *)dst += *(const int64_t *)src;
}

static int count_save(const void *state, struct velo_state_writer *w)
{
    velo_sw_i64(w, *(const int64_t *)state);
    return w->oom ? VELO_ERR : VELO_OK;
}

static int count_load(void *state, struct velo_state_reader *r,
                      struct velo_agg_ctx *ctx)
{
    int64_t n = velo_sr_i64(r);
    if (n < 0) {
        velo_sr_fail(r);
    }
    *(int64_t *)state = velo_sr_ok(r, 0) ? n : 0;
    return velo_sr_ok(r, 0) ? VELO_OK : VELO_ERR;
}

/* ---- SUM / AVG ---------------------------------------------------------- */

struct sum_i64 {
    int64_t sum;
    int64_t count;
    int64_t overflow;
};

static void sum_i64_init(void *s)
{
    memset(s, 0, sizeof(struct sum_i64));
}

static void sum_i64_update(struct velo_agg_ctx *ctx, char *states,
                           size_t stride, const uint32_t *gid,
                           const struct velo_column *const *args,
                           const uint16_t *rows, size_t n)
{
    const struct velo_column *c = args[0];
    const int64_t *v = c->v.i64;
    for (size_t i = 0; i < n; i++) {
        size_t r = rows[i];
        if (ARG_NULL(c, r)) {
            continue;
        }
        struct sum_i64 *s = (struct sum_i64 *)STATE(states, stride, gid[i]);
        s->overflow |= __builtin_add_overflow(s->sum, v[r], &s->sum);
        s->count++;
    }
}

static void sum_i64_final(struct velo_agg_ctx *ctx, const void *state,
                          struct velo_column *out, size_t row,
                          struct velo_arena *out_arena)
{
    const struct sum_i64 *s = state;
    if (s->count == 0) {
        velo_col_set_null(out, row);
    } else if (s->overflow) {
        velo_eval_fail(ctx->eval, out, row, VELO_EVAL_OVERFLOW,
                       "SUM overflow: the total does not fit %s",
                       out->type.id == VELO_TYPE_INTERVAL ? "INTERVAL"
                                                          : "BIGINT");
    } else {
        out->v.i64[row] = s->sum;
    }
}

/* Like update, an overflow is sticky: a running total of either part
 * that left the range (an error when that part was emitted) stays one,
 * even where the rows in another order would have stayed in range. */
static void sum_i64_merge(struct velo_agg_ctx *ctx, void *dst,
                          const void *src)
{
    struct sum_i64 *d = dst;
    const struct sum_i64 *s = src;
    d->overflow |= s->overflow;
    d->overflow |= __builtin_add_overflow(d->sum, s->sum, &d->sum);
    d->count += s->count;
}

static int sum_i64_save(const void *state, struct velo_state_writer *w)
{
    const struct sum_i64 *s = state;
    velo_sw_i64(w, s->sum);
    velo_sw_i64(w, s->count);
    velo_sw_u8(w, s->overflow != 0);
    return w->oom ? VELO_ERR : VELO_OK;
}

static int sum_i64_load(void *state, struct velo_state_reader *r,
                        struct velo_agg_ctx *ctx)
{
    struct sum_i64 *s = state;
    s->sum = velo_sr_i64(r);
    s->count = velo_sr_i64(r);
    uint8_t ov = velo_sr_u8(r);
    if (s->count < 0 || ov > 1) {
        velo_sr_fail(r);
    }
    s->overflow = ov;
    if (!velo_sr_ok(r, 0)) {
        sum_i64_init(s);
        return VELO_ERR;
    }
    return VELO_OK;
}

/* A 128-bit sum kept as two halves: states are only 8-byte aligned. */
struct sum_i128 {
    uint64_t lo;
    int64_t hi;
    int64_t count;
};

static inline __int128 s128_get(const struct sum_i128 *s)
{
    return (__int128)(((unsigned __int128)(uint64_t)s->hi << 64) | s->lo);
}

static inline void s128_set(struct sum_i128 *s, __int128 v)
{
    s->lo = (uint64_t)v;
    s->hi = (int64_t)(v >> 64);
}

static void sum_i128_init(void *s)
{
    memset(s, 0, sizeof(struct sum_i128));
}

static void sum_i128_update(struct velo_agg_ctx *ctx, char *states,
                            size_t stride, const uint32_t *gid,
                            const struct velo_column *const *args,
                            const uint16_t *rows, size_t n)
{
    const struct velo_column *c = args[0];
    const int64_t *v = c->v.i64;
    /* |value| < 2^63 and at most 2^63 values: a 128-bit sum cannot
     * overflow. */
    for (size_t i = 0; i < n; i++) {
        size_t r = rows[i];
        if (ARG_NULL(c, r)) {
            continue;
        }
        struct sum_i128 *s = (struct sum_i128 *)STATE(states, stride, gid[i]);
        s128_set(s, s128_get(s) + v[r]);
        s->count++;
    }
}

static void sum_i128_merge(struct velo_agg_ctx *ctx, void *dst,
                           const void *src)
{
    struct sum_i128 *d = dst;
    const struct sum_i128 *s = src;
    /* Unsigned: two sums of at most 2^63 values of |v| < 2^63 each stay
     * far inside 128 bits; wrapping arithmetic keeps UBSan quiet even on
     * corrupt restored states. */
    unsigned __int128 v =
        (unsigned __int128)s128_get(d) + (unsigned __int128)s128_get(s);
    s128_set(d, (__int128)v);
    d->count += s->count;
}

static void s128_write(const struct sum_i128 *s, struct velo_state_writer *w)
{
    velo_sw_u64(w, s->lo);
    velo_sw_i64(w, s->hi);
    velo_sw_i64(w, s->count);
}

static void s128_read(struct sum_i128 *s, struct velo_state_reader *r)
{
    s->lo = velo_sr_u64(r);
    s->hi = velo_sr_i64(r);
    s->count = velo_sr_i64(r);
    if (s->count < 0) {
        velo_sr_fail(r);
    }
}

static int sum_i128_save(const void *state, struct velo_state_writer *w)
{
    s128_write(state, w);
    return w->oom ? VELO_ERR : VELO_OK;
}

static int sum_i128_load(void *state, struct velo_state_reader *r,
                         struct velo_agg_ctx *ctx)
{
    s128_read(state, r);
    if (!velo_sr_ok(r, 0)) {
        sum_i128_init(state);
        return VELO_ERR;
    }
    return VELO_OK;
}

static void sum_dec_final(struct velo_agg_ctx *ctx, const void *state,
                          struct velo_column *out, size_t row,
                          struct velo_arena *out_arena)
{
    const struct sum_i128 *s = state;
    int64_t v;
    if (s->count == 0) {
        velo_col_set_null(out, row);
    } else if (velo_i128_to_i64(s128_get(s), &v) != VELO_OK ||
               !velo_dec_fits(v, out->type.precision)) {
        char t[32];
        velo_eval_fail(ctx->eval, out, row, VELO_EVAL_OVERFLOW,
                       "SUM overflow: the total does not fit %s",
                       velo_type_name(out->type, t, sizeof(t)));
    } else {
        out->v.i64[row] = v;
    }
}

static void avg_int_final(struct velo_agg_ctx *ctx, const void *state,
                          struct velo_column *out, size_t row,
                          struct velo_arena *out_arena)
{
    const struct sum_i128 *s = state;
    if (s->count == 0) {
        velo_col_set_null(out, row);
    } else {
        out->v.f64[row] = (double)s128_get(s) / (double)s->count;
    }
}

/* The agg context does not carry the input type, so AVG(DECIMAL) keeps
 * its input scale in the state. */
struct avg_dec {
    struct sum_i128 s;
    int64_t scale;
};

static void avg_dec_init(void *s)
{
    memset(s, 0, sizeof(struct avg_dec));
}

static void avg_dec_update(struct velo_agg_ctx *ctx, char *states,
                           size_t stride, const uint32_t *gid,
                           const struct velo_column *const *args,
                           const uint16_t *rows, size_t n)
{
    const struct velo_column *c = args[0];
    const int64_t *v = c->v.i64;
    for (size_t i = 0; i < n; i++) {
        size_t r = rows[i];
        if (ARG_NULL(c, r)) {
            continue;
        }
        struct avg_dec *s = (struct avg_dec *)STATE(states, stride, gid[i]);
        s128_set(&s->s, s128_get(&s->s) + v[r]);
        s->s.count++;
        s->scale = c->type.scale;
    }
}

static void avg_dec_merge(struct velo_agg_ctx *ctx, void *dst,
                          const void *src)
{
    struct avg_dec *d = dst;
    const struct avg_dec *s = src;
    if (d->s.count == 0) {
        d->scale = s->scale;
    }
    sum_i128_merge(ctx, &d->s, &s->s);
}

static int avg_dec_save(const void *state, struct velo_state_writer *w)
{
    const struct avg_dec *s = state;
    s128_write(&s->s, w);
    velo_sw_u8(w, (uint8_t)s->scale);
    return w->oom ? VELO_ERR : VELO_OK;
}

static int avg_dec_load(void *state, struct velo_state_reader *r,
                        struct velo_agg_ctx *ctx)
{
    struct avg_dec *s = state;
    s128_read(&s->s, r);
    s->scale = velo_sr_u8(r);
    if (s->scale > VELO_DECIMAL_MAX_PRECISION) {
        velo_sr_fail(r);
    }
    if (!velo_sr_ok(r, 0)) {
        avg_dec_init(s);
        return VELO_ERR;
    }
    return VELO_OK;
}

static void avg_dec_final(struct velo_agg_ctx *ctx, const void *state,
                          struct velo_column *out, size_t row,
                          struct velo_arena *out_arena)
{
    const struct avg_dec *s = state;
    __int128 num, q;
    int64_t v;
    if (s->s.count == 0) {
        velo_col_set_null(out, row);
    } else if (velo_i128_rescale(s128_get(&s->s), (int)s->scale,
                                 out->type.scale, &num) != VELO_OK ||
               velo_i128_div_round(num, s->s.count, &q) != VELO_OK ||
               velo_i128_to_i64(q, &v) != VELO_OK ||
               !velo_dec_fits(v, out->type.precision)) {
        velo_eval_fail(ctx->eval, out, row, VELO_EVAL_OVERFLOW,
                       "AVG overflow: the average does not fit DECIMAL");
    } else {
        out->v.i64[row] = v;
    }
}

struct sum_f64 {
    double sum;
    int64_t count;
};

static void sum_f64_init(void *s)
{
    memset(s, 0, sizeof(struct sum_f64));
}

static void sum_f64_update(struct velo_agg_ctx *ctx, char *states,
                           size_t stride, const uint32_t *gid,
                           const struct velo_column *const *args,
                           const uint16_t *rows, size_t n)
{
    const struct velo_column *c = args[0];
    const double *v = c->v.f64;
    for (size_t i = 0; i < n; i++) {
        size_t r = rows[i];
        if (ARG_NULL(c, r)) {
            continue;
        }
        struct sum_f64 *s = (struct sum_f64 *)STATE(states, stride, gid[i]);
        s->sum += v[r];
        s->count++;
    }
}

static void sum_f64_final(struct velo_agg_ctx *ctx, const void *state,
                          struct velo_column *out, size_t row,
                          struct velo_arena *out_arena)
{
    const struct sum_f64 *s = state;
    if (s->count == 0) {
        velo_col_set_null(out, row);
    } else {
        out->v.f64[row] = s->sum;
    }
}

static void sum_f64_merge(struct velo_agg_ctx *ctx, void *dst,
                          const void *src)
{
    struct sum_f64 *d = dst;
    const struct sum_f64 *s = src;
    d->sum += s->sum;
    d->count += s->count;
}

static int sum_f64_save(const void *state, struct velo_state_writer *w)
{
    const struct sum_f64 *s = state;
    velo_sw_f64(w, s->sum);
    velo_sw_i64(w, s->count);
    return w->oom ? VELO_ERR : VELO_OK;
}

static int sum_f64_load(void *state, struct velo_state_reader *r,
                        struct velo_agg_ctx *ctx)
{
    struct sum_f64 *s = state;
    s->sum = velo_sr_f64(r);
    s->count = velo_sr_i64(r);
    if (s->count < 0) {
        velo_sr_fail(r);
    }
    if (!velo_sr_ok(r, 0)) {
        sum_f64_init(s);
        return VELO_ERR;
    }
    return VELO_OK;
}

static void avg_f64_final(struct velo_agg_ctx *ctx, const void *state,
                          struct velo_column *out, size_t row,
                          struct velo_arena *out_arena)
{
    const struct sum_f64 *s = state;
    if (s->count == 0) {
        velo_col_set_null(out, row);
    } else {
        out->v.f64[row] = s->sum / (double)s->count;
    }
}

static struct velo_datatype ret_sum_dec(const struct velo_datatype *a,
                                        size_t n)
{
    (void)n;
    return velo_type_decimal(VELO_DECIMAL_MAX_PRECISION, a[0].scale);
}

static struct velo_datatype ret_avg_dec(const struct velo_datatype *a,
                                        size_t n)
{
    (void)n;
    return velo_type_decimal(VELO_DECIMAL_MAX_PRECISION,
                             a[0].scale > 6 ? a[0].scale : 6);
}

/* ---- MIN / MAX / FIRST_VALUE / LAST_VALUE ------------------------------- */

struct pick {
    union velo_slot v;
    uint64_t cap; /* bytes of the string buffer v.s.ptr points to */
    uint8_t has;
    uint8_t phys; /* of v once has: merge and save need the type */
    uint8_t pad[6];
};

static void pick_init(void *s)
{
    memset(s, 0, sizeof(struct pick));
}

/* Keep value v, copying strings into the group arena (reusing the
 * state's buffer when it is big enough). @return VELO_ERR when out of
 * memory (the old value stays). */
static int pick_put(struct velo_agg_ctx *ctx, struct pick *p,
                    union velo_slot v, int phys)
{
    if (phys == VELO_PHYS_STR) {
        if (v.s.len > p->cap || !p->has) {
            size_t cap = v.s.len < 16 ? 16 : v.s.len;
            if (p->has && cap < p->cap * 2) {
                cap = p->cap * 2;
            }
            char *buf = velo_arena_alloc(ctx->arena, cap);
            if (buf == NULL) {
                return VELO_ERR;
            }
            p->cap = cap;
            p->v.s.ptr = buf;
        }
        if (v.s.len > 0) {
            memcpy((char *)p->v.s.ptr, v.s.ptr, v.s.len);
        }
        p->v.s.len = v.s.len;
    } else {
        p->v = v;
    }
    p->has = 1;
    p->phys = (uint8_t)phys;
    return VELO_OK;
}

static void pick_store(struct velo_agg_ctx *ctx, struct pick *p,
                       const struct velo_column *c, size_t r, int phys)
{
    pick_put(ctx, p, velo_col_get(c, r), phys);
}

static void minmax_update(struct velo_agg_ctx *ctx, char *states,
                          size_t stride, const uint32_t *gid,
                          const struct velo_column *c, const uint16_t *rows,
                          size_t n, int want_max)
{
    int phys = velo_phys(c->type.id);
    if (phys == VELO_PHYS_I64 && !c->has_nulls) {
        const int64_t *v = c->v.i64;
        for (size_t i = 0; i < n; i++) {
            struct pick *p = (struct pick *)STATE(states, stride, gid[i]);
            int64_t x = v[rows[i]];
            if (!p->has || (want_max ? x > p->v.i : x < p->v.i)) {
                p->v.i = x;
                p->has = 1;
                p->phys = VELO_PHYS_I64;
            }
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        size_t r = rows[i];
        if (ARG_NULL(c, r)) {
            continue;
        }
        struct pick *p = (struct pick *)STATE(states, stride, gid[i]);
        if (p->has) {
            int cmp = velo_slot_cmp(phys, velo_col_get(c, r), p->v);
            if (want_max ? cmp <= 0 : cmp >= 0) {
                continue;
            }
        }
        pick_store(ctx, p, c, r, phys);
    }
}

static void min_update(struct velo_agg_ctx *ctx, char *states, size_t stride,
                       const uint32_t *gid,
                       const struct velo_column *const *args,
                       const uint16_t *rows, size_t n)
{
    minmax_update(ctx, states, stride, gid, args[0], rows, n, 0);
}

static void max_update(struct velo_agg_ctx *ctx, char *states, size_t stride,
                       const uint32_t *gid,
                       const struct velo_column *const *args,
                       const uint16_t *rows, size_t n)
{
    minmax_update(ctx, states, stride, gid, args[0], rows, n, 1);
}

static void firstlast_update(struct velo_agg_ctx *ctx, char *states,
                             size_t stride, const uint32_t *gid,
                             const struct velo_column *c,
                             const uint16_t *rows, size_t n, int last)
{
    int phys = velo_phys(c->type.id);
    for (size_t i = 0; i < n; i++) {
        size_t r = rows[i];
        if (ARG_NULL(c, r)) {
            continue;
        }
        struct pick *p = (struct pick *)STATE(states, stride, gid[i]);
        if (!p->has || last) {
            pick_store(ctx, p, c, r, phys);
        }
    }
}

static void first_update(struct velo_agg_ctx *ctx, char *states,
                         size_t stride, const uint32_t *gid,
                         const struct velo_column *const *args,
                         const uint16_t *rows, size_t n)
{
    firstlast_update(ctx, states, stride, gid, args[0], rows, n, 0);
}

static void last_update(struct velo_agg_ctx *ctx, char *states,
                        size_t stride, const uint32_t *gid,
                        const struct velo_column *const *args,
                        const uint16_t *rows, size_t n)
{
    firstlast_update(ctx, states, stride, gid, args[0], rows, n, 1);
}

static void pick_final(struct velo_agg_ctx *ctx, const void *state,
                       struct velo_column *out, size_t row,
                       struct velo_arena *out_arena)
{
    const struct pick *p = state;
    if (!p->has) {
        velo_col_set_null(out, row);
        return;
    }
    if (velo_phys(out->type.id) == VELO_PHYS_STR) {
        /* The state's buffer is rewritten by later rows; the output row
         * must keep this value. */
        if (out_str(out_arena, out, row, p->v.s.ptr, p->v.s.len) != VELO_OK) {
            velo_eval_fail(ctx->eval, out, row, VELO_EVAL_BAD_ARG,
                           "out of memory");
        }
        return;
    }
    velo_col_put(out, row, p->v);
}

/* MIN/MAX keep dst's value on a tie (it came first); FIRST_VALUE keeps
 * dst's when it has one, LAST_VALUE takes src's when it has one. */
static void pick_merge(struct velo_agg_ctx *ctx, struct pick *d,
                       const struct pick *s, int how)
{
    if (!s->has) {
        return;
    }
    int take;
    switch (how) {
    case 0: /* MIN */
        take = !d->has || velo_slot_cmp(s->phys, s->v, d->v) < 0;
        break;
    case 1: /* MAX */
        take = !d->has || velo_slot_cmp(s->phys, s->v, d->v) > 0;
        break;
    case 2: /* FIRST_VALUE */
        take = !d->has;
        break;
    default: /* LAST_VALUE */
        take = 1;
        break;
    }
    if (take) {
        pick_put(ctx, d, s->v, s->phys);
    }
}

#define PICK_MERGE(fname, how)                                               \
    static void fname(struct velo_agg_ctx *ctx, void *dst, const void *src)  \
    {                                                                        \
        pick_merge(ctx, dst, src, how);                                      \
    }

PICK_MERGE(min_merge, 0)
PICK_MERGE(max_merge, 1)
PICK_MERGE(first_merge, 2)
PICK_MERGE(last_merge, 3)

static int pick_save(const void *state, struct velo_state_writer *w)
{
    const struct pick *p = state;
    velo_sw_u8(w, p->has);
    if (p->has) {
        velo_sw_u8(w, p->phys);
        velo_sw_value(w, p->phys, &p->v);
    }
    return w->oom ? VELO_ERR : VELO_OK;
}

static int phys_valid(unsigned phys)
{
    return phys >= VELO_PHYS_U8 && phys <= VELO_PHYS_STR;
}

static int pick_load(void *state, struct velo_state_reader *r,
                     struct velo_agg_ctx *ctx)
{
    struct pick *p = state;
    uint8_t has = velo_sr_u8(r);
    if (has > 1) {
        velo_sr_fail(r);
    } else if (has) {
        uint8_t phys = velo_sr_u8(r);
        if (!phys_valid(phys)) {
            velo_sr_fail(r);
        } else {
            union velo_slot v;
            velo_sr_value(r, phys, &v, NULL); /* a view: pick_put copies */
            if (velo_sr_ok(r, 0) && pick_put(ctx, p, v, phys) != VELO_OK) {
                velo_sr_fail(r);
            }
        }
    }
    if (!velo_sr_ok(r, 0)) {
        pick_init(p);
        return VELO_ERR;
    }
    return VELO_OK;
}

/* ---- Variance family (Welford) ------------------------------------------ */

struct welford {
    double mean;
    double m2;
    int64_t n;
};

static void welford_init(void *s)
{
    memset(s, 0, sizeof(struct welford));
}

static void welford_update(struct velo_agg_ctx *ctx, char *states,
                           size_t stride, const uint32_t *gid,
                           const struct velo_column *const *args,
                           const uint16_t *rows, size_t n)
{
    const struct velo_column *c = args[0];
    for (size_t i = 0; i < n; i++) {
        size_t r = rows[i];
        if (ARG_NULL(c, r)) {
            continue;
        }
        struct welford *w = (struct welford *)STATE(states, stride, gid[i]);
        double x = c->v.f64[r];
        w->n++;
        double d = x - w->mean;
        w->mean += d / (double)w->n;
        w->m2 += d * (x - w->mean);
    }
}

/* Chan et al.'s parallel combination of two Welford states. */
static void welford_merge(struct velo_agg_ctx *ctx, void *dst,
                          const void *src)
{
    struct welford *d = dst;
    const struct welford *s = src;
    if (s->n == 0) {
        return;
    }
    if (d->n == 0) {
        *d = *s;
        return;
    }
    double na = (double)d->n, nb = (double)s->n, n = na + nb;
    double delta = s->mean - d->mean;
    d->mean += delta * nb / n;
    d->m2 += s->m2 + delta * delta * na * nb / n;
    d->n += s->n;
}

static int welford_save(const void *state, struct velo_state_writer *w)
{
    const struct welford *s = state;
    velo_sw_f64(w, s->mean);
    velo_sw_f64(w, s->m2);
    velo_sw_i64(w, s->n);
    return w->oom ? VELO_ERR : VELO_OK;
}

static int welford_load(void *state, struct velo_state_reader *r,
                        struct velo_agg_ctx *ctx)
{
    struct welford *s = state;
    s->mean = velo_sr_f64(r);
    s->m2 = velo_sr_f64(r);
    s->n = velo_sr_i64(r);
    if (s->n < 0) {
        velo_sr_fail(r);
    }
    if (!velo_sr_ok(r, 0)) {
        welford_init(s);
        return VELO_ERR;
    }
    return VELO_OK;
}

static void variance_final(const struct welford *w, struct velo_column *out,
                           size_t row, int sample, int root)
{
    int64_t den = sample ? w->n - 1 : w->n;
    if (den <= 0) {
        velo_col_set_null(out, row);
        return;
    }
    double v = w->m2 / (double)den;
    if (v < 0) {
        v = 0; /* rounding can leave a tiny negative */
    }
    out->v.f64[row] = root ? sqrt(v) : v;
}

#define VARIANCE_FINAL(fname, sample, root)                                  \
    static void fname(struct velo_agg_ctx *ctx, const void *state,           \
                      struct velo_column *out, size_t row,                   \
                      struct velo_arena *out_arena)                          \
    {                                                                        \
        variance_final(state, out, row, sample, root);                       \
    }

VARIANCE_FINAL(var_samp_final, 1, 0)
VARIANCE_FINAL(var_pop_final, 0, 0)
VARIANCE_FINAL(stddev_samp_final, 1, 1)
VARIANCE_FINAL(stddev_pop_final, 0, 1)

/* ---- STRING_AGG / COLLECT_LIST ------------------------------------------ */

struct textacc {
    char *p;
    uint64_t len;
    uint64_t cap;
    uint64_t has;
};

static void textacc_init(void *s)
{
    memset(s, 0, sizeof(struct textacc));
}

static int textacc_put(struct velo_agg_ctx *ctx, struct textacc *t,
                       const char *s, size_t n)
{
    struct velo_sbuf b = {t->p, t->len, t->cap, ctx->arena};
    if (velo_sbuf_put(&b, s, n) != VELO_OK) {
        return VELO_ERR;
    }
    t->p = b.p;
    t->len = b.len;
    t->cap = b.cap;
    return VELO_OK;
}

/* The text so far as one byte string, for merge and save. */
static int textacc_save(const struct textacc *t, struct velo_state_writer *w)
{
    velo_sw_u8(w, t->has != 0);
    if (t->has) {
        velo_sw_bytes(w, t->p, t->len);
    }
    return w->oom ? VELO_ERR : VELO_OK;
}

/* @return has (0/1), with the text appended to the empty t; -1 when
 * corrupt or out of memory. */
static int textacc_load(struct textacc *t, struct velo_state_reader *r,
                        struct velo_agg_ctx *ctx)
{
    uint8_t has = velo_sr_u8(r);
    if (has > 1) {
        velo_sr_fail(r);
        return -1;
    }
    if (has) {
        struct velo_str b = velo_sr_bytes(r);
        if (b.ptr == NULL || textacc_put(ctx, t, b.ptr, b.len) != VELO_OK) {
            velo_sr_fail(r);
            return -1;
        }
        t->has = 1;
    }
    return velo_sr_ok(r, 0) ? has : -1;
}

/* STRING_AGG separates values by each later row's own separator, so a
 * merge needs the separator that came with src's first value: it is
 * kept (once per group) next to the text. */
struct stragg {
    struct textacc t;
    const char *sep0;
    uint64_t sep0_len;
    uint64_t sep0_set; /* the first value's separator was not NULL */
};

static void stragg_init(void *s)
{
    memset(s, 0, sizeof(struct stragg));
}

static void string_agg_update(struct velo_agg_ctx *ctx, char *states,
                              size_t stride, const uint32_t *gid,
                              const struct velo_column *const *args,
                              const uint16_t *rows, size_t n)
{
    const struct velo_column *c = args[0], *sep = args[1];
    for (size_t i = 0; i < n; i++) {
        size_t r = rows[i];
        if (ARG_NULL(c, r)) {
            continue;
        }
        struct stragg *g = (struct stragg *)STATE(states, stride, gid[i]);
        struct textacc *t = &g->t;
        if (!ARG_NULL(sep, r)) {
            if (t->has) {
                textacc_put(ctx, t, sep->v.str[r].ptr, sep->v.str[r].len);
            } else {
                g->sep0 = arena_dup(ctx->arena, sep->v.str[r].ptr,
                                    sep->v.str[r].len);
                g->sep0_len = sep->v.str[r].len;
                g->sep0_set = g->sep0 != NULL;
            }
        }
        textacc_put(ctx, t, c->v.str[r].ptr, c->v.str[r].len);
        t->has = 1;
    }
}

static void string_agg_merge(struct velo_agg_ctx *ctx, void *dst,
                             const void *src)
{
    struct stragg *d = dst;
    const struct stragg *s = src;
    if (!s->t.has) {
        return;
    }
    if (!d->t.has) {
        d->sep0_set = 0;
        if (s->sep0_set) {
            d->sep0 = arena_dup(ctx->arena, s->sep0, s->sep0_len);
            d->sep0_len = s->sep0_len;
            d->sep0_set = d->sep0 != NULL;
        }
    } else if (s->sep0_set) {
        textacc_put(ctx, &d->t, s->sep0, s->sep0_len);
    }
    textacc_put(ctx, &d->t, s->t.p, s->t.len);
    d->t.has = 1;
}

static int string_agg_save(const void *state, struct velo_state_writer *w)
{
    const struct stragg *g = state;
    textacc_save(&g->t, w);
    if (g->t.has) {
        velo_sw_u8(w, g->sep0_set != 0);
        if (g->sep0_set) {
            velo_sw_bytes(w, g->sep0, g->sep0_len);
        }
    }
    return w->oom ? VELO_ERR : VELO_OK;
}

static int string_agg_load(void *state, struct velo_state_reader *r,
                           struct velo_agg_ctx *ctx)
{
    struct stragg *g = state;
    int has = textacc_load(&g->t, r, ctx);
    if (has == 1) {
        uint8_t set = velo_sr_u8(r);
        if (set > 1) {
            velo_sr_fail(r);
        } else if (set) {
            struct velo_str b = velo_sr_bytes(r);
            g->sep0 = b.ptr != NULL ? arena_dup(ctx->arena, b.ptr, b.len)
                                    : NULL;
            g->sep0_len = b.len;
            g->sep0_set = 1;
            if (g->sep0 == NULL) {
                velo_sr_fail(r);
            }
        }
    }
    if (has < 0 || !velo_sr_ok(r, 0)) {
        stragg_init(g);
        return VELO_ERR;
    }
    return VELO_OK;
}

static void string_agg_final(struct velo_agg_ctx *ctx, const void *state,
                             struct velo_column *out, size_t row,
                             struct velo_arena *out_arena)
{
    const struct textacc *t = state;
    if (!t->has) {
        velo_col_set_null(out, row);
        return;
    }
    /* Append-only: bytes already written never change, so a view stays
     * valid while the group lives. */
    out->v.str[row].ptr = t->p != NULL ? t->p : "";
    out->v.str[row].len = t->len;
}

static void collect_update(struct velo_agg_ctx *ctx, char *states,
                           size_t stride, const uint32_t *gid,
                           const struct velo_column *const *args,
                           const uint16_t *rows, size_t n)
{
    const struct velo_column *c = args[0];
    for (size_t i = 0; i < n; i++) {
        size_t r = rows[i];
        if (ARG_NULL(c, r)) {
            continue;
        }
        struct textacc *t = (struct textacc *)STATE(states, stride, gid[i]);
        textacc_put(ctx, t, t->has ? "," : "[", 1);
        struct velo_sbuf b = {t->p, t->len, t->cap, ctx->arena};
        if (velo_value_json(c, r, &b) == VELO_OK) {
            t->p = b.p;
            t->len = b.len;
            t->cap = b.cap;
        }
        t->has = 1;
    }
}

static void collect_merge(struct velo_agg_ctx *ctx, void *dst,
                          const void *src)
{
    struct textacc *d = dst;
    const struct textacc *s = src;
    if (!s->has) {
        return;
    }
    /* src's text is "[v1,v2": drop its bracket after dst's values. */
    if (d->has) {
        textacc_put(ctx, d, ",", 1);
        textacc_put(ctx, d, s->p + 1, s->len - 1);
    } else {
        textacc_put(ctx, d, s->p, s->len);
    }
    d->has = 1;
}

static int collect_save(const void *state, struct velo_state_writer *w)
{
    return textacc_save(state, w);
}

static int collect_load(void *state, struct velo_state_reader *r,
                        struct velo_agg_ctx *ctx)
{
    struct textacc *t = state;
    int has = textacc_load(t, r, ctx);
    if (has == 1 && (t->len < 2 || t->p[0] != '[')) {
        velo_sr_fail(r); /* not the opening of a JSON array */
    }
    if (has < 0 || !velo_sr_ok(r, 0)) {
        textacc_init(t);
        return VELO_ERR;
    }
    return VELO_OK;
}

static void collect_final(struct velo_agg_ctx *ctx, const void *state,
                          struct velo_column *out, size_t row,
                          struct velo_arena *out_arena)
{
    const struct textacc *t = state;
    if (!t->has) {
        velo_col_set_null(out, row);
        return;
    }
    char *p = velo_arena_alloc(out_arena, t->len + 1);
    if (p == NULL) {
        velo_eval_fail(ctx->eval, out, row, VELO_EVAL_BAD_ARG,
                       "out of memory");
        return;
    }
    memcpy(p, t->p, t->len);
    p[t->len] = ']';
    out->v.str[row].ptr = p;
    out->v.str[row].len = t->len + 1;
}

/* ---- COUNT(DISTINCT x) -------------------------------------------------- */

struct cd_entry {
    uint64_t hash; /* 0: empty */
    union velo_slot v;
};

struct count_distinct {
    struct cd_entry *tab;
    uint32_t cap;
    uint32_t count;
    uint32_t phys; /* of the values, once there is one */
    uint32_t pad;
};

#define CD_SEED UINT64_C(0x5bd1e9955bd1e995)

static void cd_init(void *s)
{
    memset(s, 0, sizeof(struct count_distinct));
}

static int cd_grow(struct velo_agg_ctx *ctx, struct count_distinct *cd,
                   int phys)
{
    uint32_t cap = cd->cap ? cd->cap * 2 : 8;
    struct cd_entry *tab = velo_arena_alloc(ctx->arena, cap * sizeof(*tab));
    if (tab == NULL) {
        return VELO_ERR;
    }
    memset(tab, 0, cap * sizeof(*tab));
    for (uint32_t i = 0; i < cd->cap; i++) {
        if (cd->tab[i].hash == 0) {
            continue;
        }
        uint32_t pos = (uint32_t)cd->tab[i].hash & (cap - 1);
        while (tab[pos].hash != 0) {
            pos = (pos + 1) & (cap - 1);
        }
        tab[pos] = cd->tab[i];
    }
    /* The old table stays in the arena: geometric growth bounds the
     * waste by the final table's size. */
    cd->tab = tab;
    cd->cap = cap;
    (void)phys;
    return VELO_OK;
}

/* Add v (hash h) to the set. @return 1 when new, 0 when present, -1
 * when out of memory. */
static int cd_insert(struct velo_agg_ctx *ctx, struct count_distinct *cd,
                     int phys, union velo_slot v, uint64_t h)
{
    if ((cd->count + 1) * 2 > cd->cap && cd_grow(ctx, cd, phys) != VELO_OK) {
        return -1;
    }
    cd->phys = (uint32_t)phys;
    uint32_t pos = (uint32_t)h & (cd->cap - 1);
    for (;;) {
        struct cd_entry *e = &cd->tab[pos];
        if (e->hash == 0) {
            if (phys == VELO_PHYS_STR && v.s.len > 0) {
                char *copy = arena_dup(ctx->arena, v.s.ptr, v.s.len);
                if (copy == NULL) {
                    return -1;
                }
                v.s.ptr = copy;
            }
            e->hash = h;
            e->v = v;
            cd->count++;
            return 1;
        }
        if (e->hash == h && velo_slot_key_eq(phys, e->v, v)) {
            return 0;
        }
        pos = (pos + 1) & (cd->cap - 1);
    }
}

static void cd_update(struct velo_agg_ctx *ctx, char *states, size_t stride,
                      const uint32_t *gid,
                      const struct velo_column *const *args,
                      const uint16_t *rows, size_t n)
{
    const struct velo_column *c = args[0];
    int phys = velo_phys(c->type.id);
    for (size_t i = 0; i < n; i++) {
        size_t r = rows[i];
        if (ARG_NULL(c, r)) {
            continue;
        }
        struct count_distinct *cd =
            (struct count_distinct *)STATE(states, stride, gid[i]);
        union velo_slot v = velo_col_get(c, r);
        cd_insert(ctx, cd, phys, v, velo_hash_slot(phys, v, CD_SEED) | 1);
    }
}

static void cd_merge(struct velo_agg_ctx *ctx, void *dst, const void *src)
{
    struct count_distinct *d = dst;
    const struct count_distinct *s = src;
    for (uint32_t i = 0; i < s->cap; i++) {
        if (s->tab[i].hash != 0) {
            cd_insert(ctx, d, (int)s->phys, s->tab[i].v, s->tab[i].hash);
        }
    }
}

static int cd_save(const void *state, struct velo_state_writer *w)
{
    const struct count_distinct *cd = state;
    velo_sw_u32(w, cd->count);
    if (cd->count > 0) {
        velo_sw_u8(w, (uint8_t)cd->phys);
        for (uint32_t i = 0; i < cd->cap; i++) {
            if (cd->tab[i].hash != 0) {
                velo_sw_value(w, (int)cd->phys, &cd->tab[i].v);
            }
        }
    }
    return w->oom ? VELO_ERR : VELO_OK;
}

static int cd_load(void *state, struct velo_state_reader *r,
                   struct velo_agg_ctx *ctx)
{
    struct count_distinct *cd = state;
    uint32_t n = velo_sr_u32(r);
    uint8_t phys = n > 0 ? velo_sr_u8(r) : 0;
    if (n > 0 && !phys_valid(phys)) {
        velo_sr_fail(r);
    }
    /* A corrupt count ends at the first short read, never a long loop. */
    for (uint32_t i = 0; i < n && velo_sr_ok(r, 0); i++) {
        union velo_slot v;
        velo_sr_value(r, phys, &v, NULL);
        uint64_t h = velo_hash_slot(phys, v, CD_SEED) | 1;
        if (velo_sr_ok(r, 0) && cd_insert(ctx, cd, phys, v, h) != 1) {
            velo_sr_fail(r); /* a repeated value, or out of memory */
        }
    }
    if (!velo_sr_ok(r, 0)) {
        cd_init(cd);
        return VELO_ERR;
    }
    return VELO_OK;
}

static void cd_final(struct velo_agg_ctx *ctx, const void *state,
                     struct velo_column *out, size_t row,
                     struct velo_arena *out_arena)
{
    out->v.i64[row] = ((const struct count_distinct *)state)->count;
}

/* ---- APPROX_COUNT_DISTINCT: HyperLogLog ------------------------------------
 * Small groups keep the exact set of 64-bit hashes (sparse); past
 * HLL_SPARSE_MAX they switch to 2^14 one-byte registers in the arena. */

#define HLL_P 14
#define HLL_M (1u << HLL_P)
#define HLL_SPARSE_MAX 256u
#define HLL_SEED UINT64_C(0x2545f4914f6cdd1d)

struct hll {
    uint8_t *regs;
    uint64_t *sparse; /* open addressing, 0 = empty */
    uint32_t nsparse;
    uint32_t capsparse;
};

static void hll_init(void *s)
{
    memset(s, 0, sizeof(struct hll));
}

static inline void hll_reg(uint8_t *regs, uint64_t h)
{
    uint32_t idx = (uint32_t)(h >> (64 - HLL_P));
    uint64_t w = (h << HLL_P) | (UINT64_C(1) << (HLL_P - 1));
    uint8_t rho = (uint8_t)(__builtin_clzll(w) + 1);
    if (rho > regs[idx]) {
        regs[idx] = rho;
    }
}

/* Switch to registers, folding in the exact hashes kept so far. */
static int hll_densify(struct velo_agg_ctx *ctx, struct hll *s)
{
    uint8_t *regs = velo_arena_alloc(ctx->arena, HLL_M);
    if (regs == NULL) {
        return VELO_ERR;
    }
    memset(regs, 0, HLL_M);
    for (uint32_t i = 0; i < s->capsparse; i++) {
        if (s->sparse[i] != 0) {
            hll_reg(regs, s->sparse[i]);
        }
    }
    s->regs = regs;
    s->sparse = NULL;
    return VELO_OK;
}

static int hll_sparse_add(struct velo_agg_ctx *ctx, struct hll *s, uint64_t h)
{
    if ((s->nsparse + 1) * 2 > s->capsparse) {
        if (s->nsparse + 1 > HLL_SPARSE_MAX) {
            if (hll_densify(ctx, s) != VELO_OK) {
                return VELO_ERR;
            }
            hll_reg(s->regs, h);
            return VELO_OK;
        }
        uint32_t cap = s->capsparse ? s->capsparse * 2 : 16;
        uint64_t *tab = velo_arena_alloc(ctx->arena, cap * sizeof(*tab));
        if (tab == NULL) {
            return VELO_ERR;
        }
        memset(tab, 0, cap * sizeof(*tab));
        for (uint32_t i = 0; i < s->capsparse; i++) {
            uint64_t e = s->sparse[i];
            if (e != 0) {
                uint32_t pos = (uint32_t)e & (cap - 1);
                while (tab[pos] != 0) {
                    pos = (pos + 1) & (cap - 1);
                }
                tab[pos] = e;
            }
        }
        s->sparse = tab;
        s->capsparse = cap;
    }
    uint32_t pos = (uint32_t)h & (s->capsparse - 1);
    while (s->sparse[pos] != 0) {
        if (s->sparse[pos] == h) {
            return VELO_OK;
        }
        pos = (pos + 1) & (s->capsparse - 1);
    }
    s->sparse[pos] = h;
    s->nsparse++;
    return VELO_OK;
}

static void hll_update(struct velo_agg_ctx *ctx, char *states, size_t stride,
                       const uint32_t *gid,
                       const struct velo_column *const *args,
                       const uint16_t *rows, size_t n)
{
    const struct velo_column *c = args[0];
    int phys = velo_phys(c->type.id);
    for (size_t i = 0; i < n; i++) {
        size_t r = rows[i];
        if (ARG_NULL(c, r)) {
            continue;
        }
        struct hll *s = (struct hll *)STATE(states, stride, gid[i]);
        uint64_t h = velo_hash_slot(phys, velo_col_get(c, r), HLL_SEED);
        h = velo_hmix(h ^ VELO_H_S2, VELO_H_S3) | 1; /* 0 marks empty */
        if (s->regs != NULL) {
            hll_reg(s->regs, h);
        } else {
            hll_sparse_add(ctx, s, h);
        }
    }
}

static int hll_add(struct velo_agg_ctx *ctx, struct hll *s, uint64_t h)
{
    if (s->regs != NULL) {
        hll_reg(s->regs, h);
        return VELO_OK;
    }
    return hll_sparse_add(ctx, s, h);
}

/* The union: register-wise max, or the exact hashes while both are
 * small (the same state the rows of both would have built). */
static void hll_merge(struct velo_agg_ctx *ctx, void *dst, const void *src)
{
    struct hll *d = dst;
    const struct hll *s = src;
    if (s->regs != NULL) {
        if (d->regs == NULL && hll_densify(ctx, d) != VELO_OK) {
            return;
        }
        for (unsigned j = 0; j < HLL_M; j++) {
            if (s->regs[j] > d->regs[j]) {
                d->regs[j] = s->regs[j];
            }
        }
        return;
    }
    for (uint32_t i = 0; i < s->capsparse; i++) {
        if (s->sparse[i] != 0) {
            hll_add(ctx, d, s->sparse[i]);
        }
    }
}

#define HLL_MAX_RHO (64 - HLL_P + 1)

static int hll_save(const void *state, struct velo_state_writer *w)
{
    const struct hll *s = state;
    velo_sw_u8(w, s->regs != NULL);
    if (s->regs != NULL) {
        velo_sw_raw(w, s->regs, HLL_M);
    } else {
        velo_sw_u32(w, s->nsparse);
        for (uint32_t i = 0; i < s->capsparse; i++) {
            if (s->sparse[i] != 0) {
                velo_sw_u64(w, s->sparse[i]);
            }
        }
    }
    return w->oom ? VELO_ERR : VELO_OK;
}

static int hll_load(void *state, struct velo_state_reader *r,
                    struct velo_agg_ctx *ctx)
{
    struct hll *s = state;
    uint8_t dense = velo_sr_u8(r);
    if (dense > 1) {
        velo_sr_fail(r);
    } else if (dense) {
        s->regs = velo_arena_alloc(ctx->arena, HLL_M);
        if (s->regs == NULL) {
            velo_sr_fail(r);
        } else {
            velo_sr_raw(r, s->regs, HLL_M);
            for (unsigned j = 0; j < HLL_M; j++) {
                if (s->regs[j] > HLL_MAX_RHO) {
                    velo_sr_fail(r);
                    break;
                }
            }
        }
    } else {
        uint32_t n = velo_sr_u32(r);
        if (n > HLL_SPARSE_MAX) {
            velo_sr_fail(r);
        }
        for (uint32_t i = 0; i < n && velo_sr_ok(r, 0); i++) {
            uint64_t h = velo_sr_u64(r);
            /* Hashes are odd (0 marks an empty slot) and distinct. */
            if ((h & 1) == 0 || hll_sparse_add(ctx, s, h) != VELO_OK ||
                s->nsparse != i + 1) {
                velo_sr_fail(r);
            }
        }
    }
    if (!velo_sr_ok(r, 0)) {
        hll_init(s);
        return VELO_ERR;
    }
    return VELO_OK;
}

static void hll_final(struct velo_agg_ctx *ctx, const void *state,
                      struct velo_column *out, size_t row,
                      struct velo_arena *out_arena)
{
    const struct hll *s = state;
    if (s->regs == NULL) {
        out->v.i64[row] = s->nsparse;
        return;
    }
    double sum = 0;
    unsigned zeros = 0;
    for (unsigned j = 0; j < HLL_M; j++) {
        sum += ldexp(1.0, -(int)s->regs[j]);
        zeros += s->regs[j] == 0;
    }
    double m = HLL_M;
    double alpha = 0.7213 / (1.0 + 1.079 / m);
    double e = alpha * m * m / sum;
    if (e <= 2.5 * m && zeros > 0) {
        e = m * log(m / (double)zeros); /* linear counting */
    }
    out->v.i64[row] = (int64_t)llround(e);
}

/* ---- Table -------------------------------------------------------------- */

#define A0 {0, 0, 0}
/* pfx names the state's merge/save/load: pfx##_merge, pfx##_save,
 * pfx##_load. */
#define AGG(name, nargs, a0, a1, ret, rett, dok, st, init, upd, fin, mrg,    \
            pfx)                                                             \
    {name, nargs, {a0, a1}, ret, rett, dok, st, init, upd, fin, NULL,       \
     mrg, pfx##_save, pfx##_load}

static const struct velo_agg agg_table[] = {
    AGG("COUNT", 0, A0, A0, VT_BIG, NULL, 1, sizeof(int64_t), i64_init,
        countstar_update, count_final, count_merge,
        count),
    AGG("COUNT", 1, VT_ANY, A0, VT_BIG, NULL, 1, sizeof(int64_t), i64_init,
        count_update, count_final, count_merge,
        count),
    AGG("SUM", 1, VT_BIG, A0, VT_BIG, NULL, 0, sizeof(struct sum_i64),
        sum_i64_init, sum_i64_update, sum_i64_final, sum_i64_merge,
        sum_i64),
    AGG("SUM", 1, VT_DEC, A0, VT_DEC, ret_sum_dec, 0, sizeof(struct sum_i128),
        sum_i128_init, sum_i128_update, sum_dec_final, sum_i128_merge,
        sum_i128),
    AGG("SUM", 1, VT_DBL, A0, VT_DBL, NULL, 0, sizeof(struct sum_f64),
        sum_f64_init, sum_f64_update, sum_f64_final, sum_f64_merge,
        sum_f64),
    AGG("SUM", 1, VT_IVL, A0, VT_IVL, NULL, 0, sizeof(struct sum_i64),
        sum_i64_init, sum_i64_update, sum_i64_final, sum_i64_merge,
        sum_i64),
    AGG("AVG", 1, VT_BIG, A0, VT_DBL, NULL, 0, sizeof(struct sum_i128),
        sum_i128_init, sum_i128_update, avg_int_final, sum_i128_merge,
        sum_i128),
    AGG("AVG", 1, VT_DEC, A0, VT_DEC, ret_avg_dec, 0, sizeof(struct avg_dec),
        avg_dec_init, avg_dec_update, avg_dec_final, avg_dec_merge,
        avg_dec),
    AGG("AVG", 1, VT_DBL, A0, VT_DBL, NULL, 0, sizeof(struct sum_f64),
        sum_f64_init, sum_f64_update, avg_f64_final, sum_f64_merge,
        sum_f64),
    AGG("MIN", 1, VT_ANY, A0, VT_ANY, velo_ret_arg0, 1, sizeof(struct pick),
        pick_init, min_update, pick_final, min_merge,
        pick),
    AGG("MAX", 1, VT_ANY, A0, VT_ANY, velo_ret_arg0, 1, sizeof(struct pick),
        pick_init, max_update, pick_final, max_merge,
        pick),
    AGG("FIRST_VALUE", 1, VT_ANY, A0, VT_ANY, velo_ret_arg0, 0,
        sizeof(struct pick), pick_init, first_update, pick_final, first_merge,
        pick),
    AGG("LAST_VALUE", 1, VT_ANY, A0, VT_ANY, velo_ret_arg0, 0,
        sizeof(struct pick), pick_init, last_update, pick_final, last_merge,
        pick),
    AGG("STDDEV_SAMP", 1, VT_DBL, A0, VT_DBL, NULL, 0, sizeof(struct welford),
        welford_init, welford_update, stddev_samp_final, welford_merge,
        welford),
    AGG("STDDEV", 1, VT_DBL, A0, VT_DBL, NULL, 0, sizeof(struct welford),
        welford_init, welford_update, stddev_samp_final, welford_merge,
        welford),
    AGG("STDDEV_POP", 1, VT_DBL, A0, VT_DBL, NULL, 0, sizeof(struct welford),
        welford_init, welford_update, stddev_pop_final, welford_merge,
        welford),
    AGG("VAR_SAMP", 1, VT_DBL, A0, VT_DBL, NULL, 0, sizeof(struct welford),
        welford_init, welford_update, var_samp_final, welford_merge,
        welford),
    AGG("VARIANCE", 1, VT_DBL, A0, VT_DBL, NULL, 0, sizeof(struct welford),
        welford_init, welford_update, var_samp_final, welford_merge,
        welford),
    AGG("VAR_POP", 1, VT_DBL, A0, VT_DBL, NULL, 0, sizeof(struct welford),
        welford_init, welford_update, var_pop_final, welford_merge,
        welford),
    AGG("APPROX_COUNT_DISTINCT", 1, VT_ANY, A0, VT_BIG, NULL, 0,
        sizeof(struct hll), hll_init, hll_update, hll_final, hll_merge,
        hll),
    AGG("STRING_AGG", 2, VT_STR, VT_STR, VT_STR, NULL, 0,
        sizeof(struct stragg), stragg_init, string_agg_update,
        string_agg_final, string_agg_merge,
        string_agg),
    AGG("LISTAGG", 2, VT_STR, VT_STR, VT_STR, NULL, 0, sizeof(struct stragg),
        stragg_init, string_agg_update, string_agg_final, string_agg_merge,
        string_agg),
    AGG("COLLECT_LIST", 1, VT_ANY, A0, VT_JSON, NULL, 0,
        sizeof(struct textacc), textacc_init, collect_update, collect_final,
        collect_merge, collect),
    AGG("ARRAY_AGG", 1, VT_ANY, A0, VT_JSON, NULL, 0, sizeof(struct textacc),
        textacc_init, collect_update, collect_final, collect_merge,
        collect),
};

static const struct velo_agg count_distinct_agg =
    AGG("COUNT", 1, VT_ANY, A0, VT_BIG, NULL, 1,
        sizeof(struct count_distinct), cd_init, cd_update, cd_final, cd_merge,
        cd);

const struct velo_agg *velo_agg_count_distinct(void)
{
    return &count_distinct_agg;
}

int velo_aggs_register(struct velo_funcs *r)
{
    for (size_t i = 0; i < sizeof(agg_table) / sizeof(agg_table[0]); i++) {
        if (velo_funcs_add_agg(r, &agg_table[i]) != VELO_OK) {
            return VELO_ERR;
        }
    }
    return VELO_OK;
}
