/*
 * Operators: arithmetic (INTEGER, BIGINT, DOUBLE, DECIMAL, time),
 * comparisons, LIKE/ILIKE and NULLIF.
 *
 * Integer arithmetic checks every result (__builtin_*_overflow; INTEGER
 * results must fit 32 bits): an overflow is a per-row error, never a wrap.
 * Division by zero is an error for every type, DOUBLE included, as in
 * PostgreSQL. Integer division truncates toward zero.
 *
 * Comparisons: numbers compare by value across types (BIGINT vs DECIMAL
 * exactly, DECIMAL vs DOUBLE after the DECIMAL is widened to DOUBLE),
 * strings bytewise (UTF-8 code point order), doubles with IEEE rules.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <velo/log.h>

#include "exec/func-internal.h"

/* ---- Value comparison (sorting, IN, NULLIF, MIN/MAX) -------------------- */

static int str_cmp(struct velo_str a, struct velo_str b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n > 0 ? memcmp(a.ptr, b.ptr, n) : 0;
    if (c != 0) {
        return c < 0 ? -1 : 1;
    }
    return a.len < b.len ? -1 : a.len > b.len ? 1 : 0;
}

int velo_slot_cmp(int phys, union velo_slot a, union velo_slot b)
{
    switch (phys) {
    case VELO_PHYS_F64: {
        int an = a.d != a.d, bn = b.d != b.d;
        if (an || bn) {
            return an - bn; /* NaN sorts above every number */
        }
        return a.d < b.d ? -1 : a.d > b.d ? 1 : 0;
    }
    case VELO_PHYS_STR:
        return str_cmp(a.s, b.s);
    default:
        return a.i < b.i ? -1 : a.i > b.i ? 1 : 0;
    }
}

static int int_scale(struct velo_datatype t)
{
    return t.id == VELO_TYPE_DECIMAL ? t.scale : 0;
}

int velo_value_cmp(struct velo_datatype ta, union velo_slot a,
                   struct velo_datatype tb, union velo_slot b)
{
    if (velo_type_is_numeric(ta) && velo_type_is_numeric(tb) &&
        !velo_type_equal(ta, tb)) {
        if (ta.id == VELO_TYPE_DOUBLE || tb.id == VELO_TYPE_DOUBLE) {
            union velo_slot x, y;
            x.d = ta.id == VELO_TYPE_DOUBLE ? a.d
                                            : velo_dec_to_double(a.i,
                                                                 int_scale(ta));
            y.d = tb.id == VELO_TYPE_DOUBLE ? b.d
                                            : velo_dec_to_double(b.i,
                                                                 int_scale(tb));
            return velo_slot_cmp(VELO_PHYS_F64, x, y);
        }
        return velo_dec_cmp(a.i, int_scale(ta), b.i, int_scale(tb));
    }
    return velo_slot_cmp(velo_phys(ta.id), a, b);
}

/* ---- Integer arithmetic ------------------------------------------------- */

#define I64_OP(kname, builtin, sym)                                          \
    static VELO_KERNEL(kname)                                                \
    {                                                                        \
        const int64_t *a = args[0]->v.i64, *b = args[1]->v.i64;              \
        int64_t *o = out->v.i64;                                             \
        int ovf = 0;                                                         \
        VELO_ROWS(sel, n, r, ovf |= builtin(a[r], b[r], &o[r]););            \
        if (ovf) {                                                           \
            VELO_ROWS(sel, n, r, int64_t t_;                                 \
                      if (builtin(a[r], b[r], &t_)) {                        \
                          velo_eval_fail(ctx, out, r, VELO_EVAL_OVERFLOW,    \
                                         "BIGINT out of range: %lld " sym    \
                                         " %lld",                            \
                                         (long long)a[r], (long long)b[r]);  \
                      });                                                    \
        }                                                                    \
    }

#define I32_OP(kname, builtin, sym)                                          \
    static VELO_KERNEL(kname)                                                \
    {                                                                        \
        const int64_t *a = args[0]->v.i64, *b = args[1]->v.i64;              \
        int64_t *o = out->v.i64;                                             \
        int ovf = 0;                                                         \
        VELO_ROWS(sel, n, r, int64_t t_; ovf |= builtin(a[r], b[r], &t_);    \
                  o[r] = t_; ovf |= (t_ < INT32_MIN) | (t_ > INT32_MAX););   \
        if (ovf) {                                                           \
            VELO_ROWS(sel, n, r, int64_t t_;                                 \
                      if (builtin(a[r], b[r], &t_) || t_ < INT32_MIN ||      \
                          t_ > INT32_MAX) {                                  \
                          velo_eval_fail(ctx, out, r, VELO_EVAL_OVERFLOW,    \
                                         "INTEGER out of range: %lld " sym   \
                                         " %lld",                            \
                                         (long long)a[r], (long long)b[r]);  \
                      });                                                    \
        }                                                                    \
    }

I64_OP(k_add_i64, __builtin_add_overflow, "+")
I64_OP(k_sub_i64, __builtin_sub_overflow, "-")
I64_OP(k_mul_i64, __builtin_mul_overflow, "*")
I32_OP(k_add_i32, __builtin_add_overflow, "+")
I32_OP(k_sub_i32, __builtin_sub_overflow, "-")
I32_OP(k_mul_i32, __builtin_mul_overflow, "*")

static void int_divmod(struct velo_eval_ctx *ctx,
                       const struct velo_column *const *args,
                       struct velo_column *out, const uint16_t *sel, size_t n,
                       int is_mod, int is32)
{
    const int64_t *a = args[0]->v.i64, *b = args[1]->v.i64;
    int64_t *o = out->v.i64;
    int64_t minv = is32 ? INT32_MIN : INT64_MIN;
    VELO_ROWS(sel, n, r, int64_t x = a[r]; int64_t y = b[r];
              if (y == 0) {
                  velo_eval_fail(ctx, out, r, VELO_EVAL_DIV_ZERO,
                                 "division by zero");
              } else if (y == -1) {
                  /* INT_MIN / -1 does not fit; INT_MIN % -1 is 0 (and
                   * undefined behaviour in C, so never computed). */
                  if (is_mod) {
                      o[r] = 0;
                  } else if (x == minv) {
                      velo_eval_fail(ctx, out, r, VELO_EVAL_OVERFLOW,
                                     "%s out of range: %lld / -1",
                                     is32 ? "INTEGER" : "BIGINT",
                                     (long long)x);
                  } else {
                      o[r] = -x;
                  }
              } else {
                  o[r] = is_mod ? x % y : x / y;
              });
}

static VELO_KERNEL(k_div_i64)
{
    int_divmod(ctx, args, out, sel, n, 0, 0);
}

static VELO_KERNEL(k_mod_i64)
{
    int_divmod(ctx, args, out, sel, n, 1, 0);
}

static VELO_KERNEL(k_div_i32)
{
    int_divmod(ctx, args, out, sel, n, 0, 1);
}

static VELO_KERNEL(k_mod_i32)
{
    int_divmod(ctx, args, out, sel, n, 1, 1);
}

static VELO_KERNEL(k_neg_i64)
{
    const int64_t *a = args[0]->v.i64;
    int64_t *o = out->v.i64;
    int64_t minv = out->type.id == VELO_TYPE_INTEGER ? INT32_MIN : INT64_MIN;
    VELO_ROWS(sel, n, r,
              if (a[r] == minv) {
                  velo_eval_fail(ctx, out, r, VELO_EVAL_OVERFLOW,
                                 "value out of range: -(%lld)",
                                 (long long)a[r]);
              } else { o[r] = -a[r]; });
}

/* ---- DOUBLE ------------------------------------------------------------- */

#define F64_OP(kname, OP)                                                    \
    static VELO_KERNEL(kname)                                                \
    {                                                                        \
        const double *a = args[0]->v.f64, *b = args[1]->v.f64;               \
        double *o = out->v.f64;                                              \
        int inf = 0;                                                         \
        VELO_ROWS(sel, n, r, o[r] = a[r] OP b[r]; inf |= isinf(o[r]););      \
        if (inf) {                                                           \
            VELO_ROWS(sel, n, r,                                             \
                      if (isinf(o[r]) && !isinf(a[r]) && !isinf(b[r])) {     \
                          velo_eval_fail(ctx, out, r, VELO_EVAL_OVERFLOW,    \
                                         "DOUBLE out of range");             \
                      });                                                    \
        }                                                                    \
    }

F64_OP(k_add_f64, +)
F64_OP(k_sub_f64, -)
F64_OP(k_mul_f64, *)

static VELO_KERNEL(k_div_f64)
{
    const double *a = args[0]->v.f64, *b = args[1]->v.f64;
    double *o = out->v.f64;
    VELO_ROWS(sel, n, r,
              if (b[r] == 0.0) {
                  velo_eval_fail(ctx, out, r, VELO_EVAL_DIV_ZERO,
                                 "division by zero");
              } else {
                  o[r] = a[r] / b[r];
                  if (isinf(o[r]) && !isinf(a[r])) {
                      velo_eval_fail(ctx, out, r, VELO_EVAL_OVERFLOW,
                                     "DOUBLE out of range");
                  }
              });
}

static VELO_KERNEL(k_mod_f64)
{
    const double *a = args[0]->v.f64, *b = args[1]->v.f64;
    double *o = out->v.f64;
    VELO_ROWS(sel, n, r,
              if (b[r] == 0.0) {
                  velo_eval_fail(ctx, out, r, VELO_EVAL_DIV_ZERO,
                                 "division by zero");
              } else { o[r] = fmod(a[r], b[r]); });
}

static VELO_KERNEL(k_neg_f64)
{
    const double *a = args[0]->v.f64;
    double *o = out->v.f64;
    VELO_ROWS(sel, n, r, o[r] = -a[r];);
}

/* ---- DECIMAL ------------------------------------------------------------ */

static void dec_overflow(struct velo_eval_ctx *ctx, struct velo_column *out,
                         size_t r)
{
    char t[32];
    velo_eval_fail(ctx, out, r, VELO_EVAL_OVERFLOW,
                   "numeric overflow: the result does not fit %s",
                   velo_type_name(out->type, t, sizeof(t)));
}

static VELO_KERNEL(k_add_dec)
{
    const int64_t *a = args[0]->v.i64, *b = args[1]->v.i64;
    int64_t *o = out->v.i64;
    int sa = args[0]->type.scale, sb = args[1]->type.scale;
    int rs = out->type.scale, rp = out->type.precision;
    if (sa == rs && sb == rs) {
        VELO_ROWS(sel, n, r, int64_t t;
                  if (__builtin_add_overflow(a[r], b[r], &t) ||
                      !velo_dec_fits(t, rp)) {
                      dec_overflow(ctx, out, r);
                  } else { o[r] = t; });
        return;
    }
    VELO_ROWS(sel, n, r, int64_t t;
              if (velo_dec_add(a[r], sa, b[r], sb, rs, &t) != VELO_OK ||
                  !velo_dec_fits(t, rp)) {
                  dec_overflow(ctx, out, r);
              } else { o[r] = t; });
}

static VELO_KERNEL(k_sub_dec)
{
    const int64_t *a = args[0]->v.i64, *b = args[1]->v.i64;
    int64_t *o = out->v.i64;
    int sa = args[0]->type.scale, sb = args[1]->type.scale;
    int rs = out->type.scale, rp = out->type.precision;
    VELO_ROWS(sel, n, r, int64_t t;
              /* -b cannot overflow: |b| < 10^18 for every DECIMAL. */
              if (velo_dec_add(a[r], sa, -b[r], sb, rs, &t) != VELO_OK ||
                  !velo_dec_fits(t, rp)) {
                  dec_overflow(ctx, out, r);
              } else { o[r] = t; });
}

static VELO_KERNEL(k_mul_dec)
{
    const int64_t *a = args[0]->v.i64, *b = args[1]->v.i64;
    int64_t *o = out->v.i64;
    int sa = args[0]->type.scale, sb = args[1]->type.scale;
    int rs = out->type.scale, rp = out->type.precision;
    if (sa + sb == rs) {
        /* No rounding: the product's scale is the result's. */
        VELO_ROWS(sel, n, r, __int128 p = (__int128)a[r] * b[r];
                  int64_t t = (int64_t)p;
                  if (p != (__int128)t || !velo_dec_fits(t, rp)) {
                      dec_overflow(ctx, out, r);
                  } else { o[r] = t; });
        return;
    }
    VELO_ROWS(sel, n, r, int64_t t;
              if (velo_dec_mul(a[r], sa, b[r], sb, rs, &t) != VELO_OK ||
                  !velo_dec_fits(t, rp)) {
                  dec_overflow(ctx, out, r);
              } else { o[r] = t; });
}

static VELO_KERNEL(k_div_dec)
{
    const int64_t *a = args[0]->v.i64, *b = args[1]->v.i64;
    int64_t *o = out->v.i64;
    int sa = args[0]->type.scale, sb = args[1]->type.scale;
    int rs = out->type.scale, rp = out->type.precision;
    VELO_ROWS(sel, n, r, int64_t t;
              if (b[r] == 0) {
                  velo_eval_fail(ctx, out, r, VELO_EVAL_DIV_ZERO,
                                 "division by zero");
              } else if (velo_dec_div(a[r], sa, b[r], sb, rs, &t) !=
                             VELO_OK ||
                         !velo_dec_fits(t, rp)) {
                  dec_overflow(ctx, out, r);
              } else { o[r] = t; });
}

static VELO_KERNEL(k_mod_dec)
{
    const int64_t *a = args[0]->v.i64, *b = args[1]->v.i64;
    int64_t *o = out->v.i64;
    int sa = args[0]->type.scale, sb = args[1]->type.scale;
    int rs = out->type.scale, rp = out->type.precision;
    int cs = sa > sb ? sa : sb;
    VELO_ROWS(sel, n, r, __int128 x, y, m; int64_t t;
              velo_i128_rescale(a[r], sa, cs, &x);
              velo_i128_rescale(b[r], sb, cs, &y);
              if (y == 0) {
                  velo_eval_fail(ctx, out, r, VELO_EVAL_DIV_ZERO,
                                 "division by zero");
              } else {
                  m = x % y;
                  if (velo_i128_rescale(m, cs, rs, &m) != VELO_OK ||
                      velo_i128_to_i64(m, &t) != VELO_OK ||
                      !velo_dec_fits(t, rp)) {
                      dec_overflow(ctx, out, r);
                  } else {
                      o[r] = t;
                  }
              });
}

static VELO_KERNEL(k_neg_dec)
{
    const int64_t *a = args[0]->v.i64;
    int64_t *o = out->v.i64;
    VELO_ROWS(sel, n, r, o[r] = -a[r];);
}

/* ---- Time arithmetic ---------------------------------------------------- */

static void time_overflow(struct velo_eval_ctx *ctx, struct velo_column *out,
                          size_t r)
{
    velo_eval_fail(ctx, out, r, VELO_EVAL_OVERFLOW,
                   "%s out of range",
                   out->type.id == VELO_TYPE_TIMESTAMP ? "TIMESTAMP"
                   : out->type.id == VELO_TYPE_DATE    ? "DATE"
                                                       : "INTERVAL");
}

/* Shared by TIMESTAMP +/- INTERVAL, INTERVAL +/- INTERVAL and
 * TIMESTAMP - TIMESTAMP: plain checked int64 microseconds. */
static VELO_KERNEL(k_add_us)
{
    const int64_t *a = args[0]->v.i64, *b = args[1]->v.i64;
    int64_t *o = out->v.i64;
    VELO_ROWS(sel, n, r,
              if (__builtin_add_overflow(a[r], b[r], &o[r])) {
                  time_overflow(ctx, out, r);
              });
}

static VELO_KERNEL(k_sub_us)
{
    const int64_t *a = args[0]->v.i64, *b = args[1]->v.i64;
    int64_t *o = out->v.i64;
    VELO_ROWS(sel, n, r,
              if (__builtin_sub_overflow(a[r], b[r], &o[r])) {
                  time_overflow(ctx, out, r);
              });
}

/* DATE +/- INTEGER days stays within a few million years: check anyway
 * so a wild value is an error, not a silent wrap. */
#define DATE_LIMIT INT64_C(100000000)

static VELO_KERNEL(k_add_days)
{
    int swap = args[0]->type.id != VELO_TYPE_DATE;
    const int64_t *d = args[swap]->v.i64, *k = args[!swap]->v.i64;
    int64_t *o = out->v.i64;
    VELO_ROWS(sel, n, r, int64_t t;
              if (__builtin_add_overflow(d[r], k[r], &t) || t > DATE_LIMIT ||
                  t < -DATE_LIMIT) {
                  time_overflow(ctx, out, r);
              } else { o[r] = t; });
}

static VELO_KERNEL(k_sub_days)
{
    const int64_t *d = args[0]->v.i64, *k = args[1]->v.i64;
    int64_t *o = out->v.i64;
    VELO_ROWS(sel, n, r, int64_t t;
              if (__builtin_sub_overflow(d[r], k[r], &t) || t > DATE_LIMIT ||
                  t < -DATE_LIMIT) {
                  time_overflow(ctx, out, r);
              } else { o[r] = t; });
}

static VELO_KERNEL(k_date_diff)
{
    const int64_t *a = args[0]->v.i64, *b = args[1]->v.i64;
    int64_t *o = out->v.i64;
    VELO_ROWS(sel, n, r, int64_t t;
              if (__builtin_sub_overflow(a[r], b[r], &t) || t > INT32_MAX ||
                  t < INT32_MIN) {
                  velo_eval_fail(ctx, out, r, VELO_EVAL_OVERFLOW,
                                 "INTEGER out of range");
              } else { o[r] = t; });
}

static VELO_KERNEL(k_ivl_mul_i64)
{
    int swap = args[0]->type.id != VELO_TYPE_INTERVAL;
    const int64_t *a = args[swap]->v.i64, *b = args[!swap]->v.i64;
    int64_t *o = out->v.i64;
    VELO_ROWS(sel, n, r,
              if (__builtin_mul_overflow(a[r], b[r], &o[r])) {
                  time_overflow(ctx, out, r);
              });
}

static VELO_KERNEL(k_ivl_mul_f64)
{
    int swap = args[0]->type.id != VELO_TYPE_INTERVAL;
    const int64_t *a = args[swap]->v.i64;
    const double *b = args[!swap]->v.f64;
    int64_t *o = out->v.i64;
    VELO_ROWS(sel, n, r, double t = nearbyint((double)a[r] * b[r]);
              if (!(t >= -9.2e18 && t <= 9.2e18)) {
                  time_overflow(ctx, out, r);
              } else { o[r] = (int64_t)t; });
}

static VELO_KERNEL(k_ivl_div_i64)
{
    const int64_t *a = args[0]->v.i64, *b = args[1]->v.i64;
    int64_t *o = out->v.i64;
    VELO_ROWS(sel, n, r,
              if (b[r] == 0) {
                  velo_eval_fail(ctx, out, r, VELO_EVAL_DIV_ZERO,
                                 "division by zero");
              } else if (b[r] == -1 && a[r] == INT64_MIN) {
                  time_overflow(ctx, out, r);
              } else { o[r] = a[r] / b[r]; });
}

static VELO_KERNEL(k_ivl_div_f64)
{
    const int64_t *a = args[0]->v.i64;
    const double *b = args[1]->v.f64;
    int64_t *o = out->v.i64;
    VELO_ROWS(sel, n, r,
              if (b[r] == 0.0) {
                  velo_eval_fail(ctx, out, r, VELO_EVAL_DIV_ZERO,
                                 "division by zero");
              } else {
                  double t = nearbyint((double)a[r] / b[r]);
                  if (!(t >= -9.2e18 && t <= 9.2e18)) {
                      time_overflow(ctx, out, r);
                  } else {
                      o[r] = (int64_t)t;
                  }
              });
}

/* ---- Comparisons -------------------------------------------------------- */

#define CMP_FAMILY(suffix, T, field)                                         \
    static VELO_KERNEL(k_eq_##suffix)                                        \
    {                                                                        \
        const T *a = args[0]->v.field, *b = args[1]->v.field;                \
        uint8_t *o = out->v.u8;                                              \
        VELO_ROWS(sel, n, r, o[r] = a[r] == b[r];);                          \
    }                                                                        \
    static VELO_KERNEL(k_ne_##suffix)                                        \
    {                                                                        \
        const T *a = args[0]->v.field, *b = args[1]->v.field;                \
        uint8_t *o = out->v.u8;                                              \
        VELO_ROWS(sel, n, r, o[r] = a[r] != b[r];);                          \
    }                                                                        \
    static VELO_KERNEL(k_lt_##suffix)                                        \
    {                                                                        \
        const T *a = args[0]->v.field, *b = args[1]->v.field;                \
        uint8_t *o = out->v.u8;                                              \
        VELO_ROWS(sel, n, r, o[r] = a[r] < b[r];);                           \
    }                                                                        \
    static VELO_KERNEL(k_le_##suffix)                                        \
    {                                                                        \
        const T *a = args[0]->v.field, *b = args[1]->v.field;                \
        uint8_t *o = out->v.u8;                                              \
        VELO_ROWS(sel, n, r, o[r] = a[r] <= b[r];);                          \
    }                                                                        \
    static VELO_KERNEL(k_gt_##suffix)                                        \
    {                                                                        \
        const T *a = args[0]->v.field, *b = args[1]->v.field;                \
        uint8_t *o = out->v.u8;                                              \
        VELO_ROWS(sel, n, r, o[r] = a[r] > b[r];);                           \
    }                                                                        \
    static VELO_KERNEL(k_ge_##suffix)                                        \
    {                                                                        \
        const T *a = args[0]->v.field, *b = args[1]->v.field;                \
        uint8_t *o = out->v.u8;                                              \
        VELO_ROWS(sel, n, r, o[r] = a[r] >= b[r];);                          \
    }

CMP_FAMILY(i64, int64_t, i64)
CMP_FAMILY(f64, double, f64)
CMP_FAMILY(u8, uint8_t, u8)

/* Strings, and decimals of (possibly) different scales, through one
 * three-way compare per row; `want` says which outcomes are TRUE. */
enum { CMP_LT = 1, CMP_EQ = 2, CMP_GT = 4 };

static inline uint8_t cmp_bit(int c)
{
    return c < 0 ? CMP_LT : c > 0 ? CMP_GT : CMP_EQ;
}

static void cmp_str(const struct velo_column *const *args,
                    struct velo_column *out, const uint16_t *sel, size_t n,
                    uint8_t want)
{
    const struct velo_str *a = args[0]->v.str, *b = args[1]->v.str;
    uint8_t *o = out->v.u8;
    if (want == CMP_EQ || want == (CMP_LT | CMP_GT)) {
        uint8_t eqv = want == CMP_EQ;
        VELO_ROWS(sel, n, r,
                  int eq = a[r].len == b[r].len &&
                           (a[r].len == 0 ||
                            memcmp(a[r].ptr, b[r].ptr, a[r].len) == 0);
                  o[r] = eq ? eqv : !eqv;);
        return;
    }
    VELO_ROWS(sel, n, r, o[r] = (cmp_bit(str_cmp(a[r], b[r])) & want) != 0;);
}

static void cmp_dec(const struct velo_column *const *args,
                    struct velo_column *out, const uint16_t *sel, size_t n,
                    uint8_t want)
{
    const int64_t *a = args[0]->v.i64, *b = args[1]->v.i64;
    int sa = int_scale(args[0]->type), sb = int_scale(args[1]->type);
    uint8_t *o = out->v.u8;
    if (sa == sb) {
        VELO_ROWS(sel, n, r,
                  o[r] = (cmp_bit(a[r] < b[r] ? -1 : a[r] > b[r]) & want) !=
                         0;);
        return;
    }
    VELO_ROWS(sel, n, r,
              o[r] = (cmp_bit(velo_dec_cmp(a[r], sa, b[r], sb)) & want) !=
                     0;);
}

#define CMP_VIA(fam, op, want)                                               \
    static VELO_KERNEL(k_##op##_##fam)                                       \
    {                                                                        \
        cmp_##fam(args, out, sel, n, want);                                  \
    }
#define CMP_VIA_ALL(fam)                                                     \
    CMP_VIA(fam, eq, CMP_EQ)                                                 \
    CMP_VIA(fam, ne, CMP_LT | CMP_GT)                                        \
    CMP_VIA(fam, lt, CMP_LT)                                                 \
    CMP_VIA(fam, le, CMP_LT | CMP_EQ)                                        \
    CMP_VIA(fam, gt, CMP_GT)                                                 \
    CMP_VIA(fam, ge, CMP_GT | CMP_EQ)

CMP_VIA_ALL(str)
CMP_VIA_ALL(dec)

/* ---- NULLIF ------------------------------------------------------------- */

static VELO_KERNEL(k_nullif)
{
    const struct velo_column *a = args[0], *b = args[1];
    int phys = velo_phys(out->type.id);
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        if (velo_col_is_null(a, r)) {
            velo_col_set_null(out, r);
            continue;
        }
        union velo_slot va = velo_col_get(a, r);
        if (!velo_col_is_null(b, r) &&
            velo_value_cmp(a->type, va, b->type, velo_col_get(b, r)) == 0) {
            velo_col_set_null(out, r);
            continue;
        }
        (void)phys;
        velo_col_put(out, r, va);
    }
}

/* ---- LIKE / ILIKE ----------------------------------------------------------
 * A pattern compiles once (per constant pattern, or per distinct value
 * of a pattern column, cached) into tokens; the common shapes 'abc',
 * 'abc%', '%abc' and '%abc%' run as compare/prefix/suffix/memmem. The
 * escape character defaults to backslash as in PostgreSQL; ESCAPE ''
 * disables it. '_' matches one UTF-8 character. ILIKE folds ASCII. */

enum { TK_LIT, TK_ONE, TK_ANY };
enum { SH_EXACT, SH_PREFIX, SH_SUFFIX, SH_CONTAINS, SH_GENERAL };

struct like_tok {
    uint8_t kind;
    char c;
};

struct like_state {
    int ci;
    int constant; /* compiled at prepare; skip the per-row check */
    int bad;      /* the (constant) pattern is invalid */
    char badmsg[96];
    struct like_tok *tok;
    size_t ntok, captok;
    int shape;
    char *lit; /* the literal part for the fast shapes */
    size_t litlen;
    /* cache for non-constant patterns */
    char *cpat;
    size_t cpatlen, cpatcap;
    int cesc;
    int cvalid;
};

static inline char fold(char c, int ci)
{
    return ci && c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static int like_compile(struct like_state *st, const char *p, size_t len,
                        int esc)
{
    if (len + 1 > st->captok) {
        size_t cap = len + 16;
        struct like_tok *t = realloc(st->tok, cap * sizeof(*t));
        char *l = realloc(st->lit, cap);
        if (t != NULL) {
            st->tok = t;
        }
        if (l != NULL) {
            st->lit = l;
        }
        if (t == NULL || l == NULL) {
            return VELO_ERR;
        }
        st->captok = cap;
    }
    st->ntok = 0;
    st->bad = 0;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        struct like_tok t = {TK_LIT, 0};
        if (esc >= 0 && c == (char)esc) {
            if (i + 1 >= len) {
                st->bad = 1;
                snprintf(st->badmsg, sizeof(st->badmsg),
                         "LIKE pattern must not end with the escape "
                         "character");
                return VELO_OK;
            }
            t.c = fold(p[++i], st->ci);
        } else if (c == '%') {
            if (st->ntok > 0 && st->tok[st->ntok - 1].kind == TK_ANY) {
                continue; /* %% is % */
            }
            t.kind = TK_ANY;
        } else if (c == '_') {
            t.kind = TK_ONE;
        } else {
            t.c = fold(c, st->ci);
        }
        st->tok[st->ntok++] = t;
    }
    /* Shape: literals with at most a leading and a trailing %. */
    size_t first = 0, last = st->ntok;
    int lead = st->ntok > 0 && st->tok[0].kind == TK_ANY;
    int trail = st->ntok > (size_t)lead &&
                st->tok[st->ntok - 1].kind == TK_ANY;
    first += (size_t)lead;
    last -= (size_t)trail;
    int literal_only = 1;
    st->litlen = 0;
    for (size_t i = first; i < last; i++) {
        if (st->tok[i].kind != TK_LIT) {
            literal_only = 0;
            break;
        }
        st->lit[st->litlen++] = st->tok[i].c;
    }
    if (!literal_only) {
        st->shape = SH_GENERAL;
    } else if (lead && trail) {
        st->shape = SH_CONTAINS;
    } else if (lead) {
        st->shape = SH_SUFFIX;
    } else if (trail) {
        st->shape = SH_PREFIX;
    } else {
        st->shape = SH_EXACT;
    }
    if (st->ntok == 1 && st->tok[0].kind == TK_ANY) {
        st->shape = SH_CONTAINS; /* '%': everything */
        st->litlen = 0;
    }
    return VELO_OK;
}

static int eq_fold(const char *a, const char *b, size_t n, int ci)
{
    if (!ci) {
        return n == 0 || memcmp(a, b, n) == 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (fold(a[i], 1) != b[i]) {
            return 0;
        }
    }
    return 1;
}

static int like_general(const struct like_state *st, const char *s, size_t n)
{
    const struct like_tok *t = st->tok;
    size_t nt = st->ntok, ti = 0, si = 0, star_t = (size_t)-1, star_s = 0;
    int ci = st->ci;
    while (si < n) {
        if (ti < nt && t[ti].kind == TK_ANY) {
            star_t = ti++;
            star_s = si;
            continue;
        }
        if (ti < nt && t[ti].kind == TK_ONE) {
            si += velo_utf8_seqlen((unsigned char)s[si]);
            if (si > n) {
                si = n;
            }
            ti++;
            continue;
        }
        if (ti < nt && t[ti].kind == TK_LIT && t[ti].c == fold(s[si], ci)) {
            si++;
            ti++;
            continue;
        }
        if (star_t != (size_t)-1) {
            ti = star_t + 1;
            star_s += velo_utf8_seqlen((unsigned char)s[star_s]);
            if (star_s > n) {
                star_s = n;
            }
            si = star_s;
            continue;
        }
        return 0;
    }
    while (ti < nt && t[ti].kind == TK_ANY) {
        ti++;
    }
    return ti == nt;
}

static int like_match(const struct like_state *st, const char *s, size_t n)
{
    const char *l = st->lit;
    size_t ll = st->litlen;
    switch (st->shape) {
    case SH_EXACT:
        return n == ll && eq_fold(s, l, n, st->ci);
    case SH_PREFIX:
        return n >= ll && eq_fold(s, l, ll, st->ci);
    case SH_SUFFIX:
        return n >= ll && eq_fold(s + n - ll, l, ll, st->ci);
    case SH_CONTAINS:
        if (ll == 0) {
            return 1;
        }
        if (!st->ci) {
            return n >= ll && memmem(s, n, l, ll) != NULL;
        }
        for (size_t i = 0; i + ll <= n; i++) {
            if (eq_fold(s + i, l, ll, 1)) {
                return 1;
            }
        }
        return 0;
    default:
        return like_general(st, s, n);
    }
}

/* ESCAPE argument: one character, or '' for none. */
static int like_escape(const struct velo_str *e, int *esc)
{
    if (e->len == 0) {
        *esc = -1;
        return VELO_OK;
    }
    if (e->len != 1) {
        return VELO_ERR;
    }
    *esc = (unsigned char)e->ptr[0];
    return VELO_OK;
}

static void *like_prepare_ci(const struct velo_expr *call, int ci)
{
    struct like_state *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return NULL;
    }
    st->ci = ci;
    const struct velo_literal *pat = velo_call_const_arg(call, 1);
    const struct velo_literal *esc =
        call != NULL && call->nargs > 2 ? velo_call_const_arg(call, 2) : NULL;
    int esc_const = call != NULL && (call->nargs < 3 || esc != NULL);
    if (pat != NULL && !pat->is_null && esc_const &&
        (esc == NULL || !esc->is_null)) {
        int e = '\\';
        if (esc != NULL) {
            struct velo_str es = {esc->str != NULL ? esc->str : "", esc->len};
            if (like_escape(&es, &e) != VELO_OK) {
                st->constant = 1;
                st->bad = 1;
                snprintf(st->badmsg, sizeof(st->badmsg),
                         "invalid escape string: it must be one character");
                return st;
            }
        }
        if (like_compile(st, pat->str != NULL ? pat->str : "", pat->len, e) !=
            VELO_OK) {
            free(st->tok);
            free(st->lit);
            free(st);
            return NULL;
        }
        st->constant = 1;
    }
    return st;
}

static void *like_prepare(const struct velo_expr *call)
{
    return like_prepare_ci(call, 0);
}

static void *ilike_prepare(const struct velo_expr *call)
{
    return like_prepare_ci(call, 1);
}

static void like_release(void *p)
{
    struct like_state *st = p;
    free(st->tok);
    free(st->lit);
    free(st->cpat);
    free(st);
}

static void like_kernel(struct velo_eval_ctx *ctx, void *state,
                        const struct velo_column *const *args, size_t nargs,
                        struct velo_column *out, const uint16_t *sel,
                        size_t n)
{
    struct like_state *st = state;
    const struct velo_str *s = args[0]->v.str;
    uint8_t *o = out->v.u8;
    if (st->constant) {
        if (st->bad) {
            VELO_ROWS(sel, n, r,
                      velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG, "%s",
                                     st->badmsg););
            return;
        }
        VELO_ROWS(sel, n, r, o[r] = (uint8_t)like_match(st, s[r].ptr,
                                                        s[r].len););
        return;
    }
    const struct velo_str *p = args[1]->v.str;
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        int esc = '\\';
        if (nargs > 2 && like_escape(&args[2]->v.str[r], &esc) != VELO_OK) {
            velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                           "invalid escape string: it must be one "
                           "character");
            continue;
        }
        if (!st->cvalid || st->cesc != esc || st->cpatlen != p[r].len ||
            (p[r].len > 0 && memcmp(st->cpat, p[r].ptr, p[r].len) != 0)) {
            if (p[r].len + 1 > st->cpatcap) {
                char *np = realloc(st->cpat, p[r].len + 1);
                if (np == NULL) {
                    velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                                   "out of memory");
                    continue;
                }
                st->cpat = np;
                st->cpatcap = p[r].len + 1;
            }
            if (p[r].len > 0) {
                memcpy(st->cpat, p[r].ptr, p[r].len);
            }
            st->cpatlen = p[r].len;
            st->cesc = esc;
            st->cvalid = like_compile(st, st->cpat, st->cpatlen, esc) ==
                         VELO_OK;
            if (!st->cvalid) {
                velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                               "out of memory");
                continue;
            }
        }
        if (st->bad) {
            velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG, "%s", st->badmsg);
            continue;
        }
        o[r] = (uint8_t)like_match(st, s[r].ptr, s[r].len);
    }
}

static const struct velo_func_ext like_ext = {VELO_FUNC_EXT_MAGIC,
                                              like_prepare, like_release,
                                              like_kernel};
static const struct velo_func_ext ilike_ext = {VELO_FUNC_EXT_MAGIC,
                                               ilike_prepare, like_release,
                                               like_kernel};

/* ---- Registration ------------------------------------------------------- */

#define NP VELO_FUNC_NULL_PROPAGATES
#define BOOLT VT_BOOL

#define ARITH(op, kint, kbig, kdec, kdbl)                                    \
    {op, 2, {VT_INT, VT_INT}, VT_INT, NULL, NP, kint, NULL},                 \
        {op, 2, {VT_BIG, VT_BIG}, VT_BIG, NULL, NP, kbig, NULL},             \
        {op, 2, {VT_DEC, VT_DEC}, VT_DEC, NULL, NP, kdec, NULL},             \
        {op, 2, {VT_DBL, VT_DBL}, VT_DBL, NULL, NP, kdbl, NULL}

#define CMP(op, s)                                                           \
    {op, 2, {VT_BOOL, VT_BOOL}, BOOLT, NULL, NP, k_##s##_u8, NULL},          \
        {op, 2, {VT_INT, VT_INT}, BOOLT, NULL, NP, k_##s##_i64, NULL},       \
        {op, 2, {VT_BIG, VT_BIG}, BOOLT, NULL, NP, k_##s##_i64, NULL},       \
        {op, 2, {VT_BIG, VT_DEC}, BOOLT, NULL, NP, k_##s##_dec, NULL},       \
        {op, 2, {VT_DEC, VT_BIG}, BOOLT, NULL, NP, k_##s##_dec, NULL},       \
        {op, 2, {VT_DEC, VT_DEC}, BOOLT, NULL, NP, k_##s##_dec, NULL},       \
        {op, 2, {VT_DBL, VT_DBL}, BOOLT, NULL, NP, k_##s##_f64, NULL},       \
        {op, 2, {VT_STR, VT_STR}, BOOLT, NULL, NP, k_##s##_str, NULL},       \
        {op, 2, {VT_TS, VT_TS}, BOOLT, NULL, NP, k_##s##_i64, NULL},         \
        {op, 2, {VT_DATE, VT_DATE}, BOOLT, NULL, NP, k_##s##_i64, NULL},     \
        {op, 2, {VT_IVL, VT_IVL}, BOOLT, NULL, NP, k_##s##_i64, NULL},       \
        {op, 2, {VT_BYTES, VT_BYTES}, BOOLT, NULL, NP, k_##s##_str, NULL}

#define NULLIF(t) {"NULLIF", 2, {t, t}, t, velo_ret_arg0, 0, k_nullif, NULL}

static const struct velo_func op_table[] = {
    ARITH("+", k_add_i32, k_add_i64, k_add_dec, k_add_f64),
    ARITH("-", k_sub_i32, k_sub_i64, k_sub_dec, k_sub_f64),
    ARITH("*", k_mul_i32, k_mul_i64, k_mul_dec, k_mul_f64),
    ARITH("/", k_div_i32, k_div_i64, k_div_dec, k_div_f64),
    ARITH("%", k_mod_i32, k_mod_i64, k_mod_dec, k_mod_f64),
    ARITH("MOD", k_mod_i32, k_mod_i64, k_mod_dec, k_mod_f64),
    {"-", 1, {VT_INT}, VT_INT, NULL, NP, k_neg_i64, NULL},
    {"-", 1, {VT_BIG}, VT_BIG, NULL, NP, k_neg_i64, NULL},
    {"-", 1, {VT_DEC}, VT_DEC, velo_ret_arg0, NP, k_neg_dec, NULL},
    {"-", 1, {VT_DBL}, VT_DBL, NULL, NP, k_neg_f64, NULL},
    {"-", 1, {VT_IVL}, VT_IVL, NULL, NP, k_neg_i64, NULL},
    /* time */
    {"+", 2, {VT_TS, VT_IVL}, VT_TS, NULL, NP, k_add_us, NULL},
    {"+", 2, {VT_IVL, VT_TS}, VT_TS, NULL, NP, k_add_us, NULL},
    {"-", 2, {VT_TS, VT_IVL}, VT_TS, NULL, NP, k_sub_us, NULL},
    {"-", 2, {VT_TS, VT_TS}, VT_IVL, NULL, NP, k_sub_us, NULL},
    {"+", 2, {VT_IVL, VT_IVL}, VT_IVL, NULL, NP, k_add_us, NULL},
    {"-", 2, {VT_IVL, VT_IVL}, VT_IVL, NULL, NP, k_sub_us, NULL},
    {"+", 2, {VT_DATE, VT_INT}, VT_DATE, NULL, NP, k_add_days, NULL},
    {"+", 2, {VT_INT, VT_DATE}, VT_DATE, NULL, NP, k_add_days, NULL},
    {"+", 2, {VT_DATE, VT_BIG}, VT_DATE, NULL, NP, k_add_days, NULL},
    {"-", 2, {VT_DATE, VT_INT}, VT_DATE, NULL, NP, k_sub_days, NULL},
    {"-", 2, {VT_DATE, VT_BIG}, VT_DATE, NULL, NP, k_sub_days, NULL},
    {"-", 2, {VT_DATE, VT_DATE}, VT_INT, NULL, NP, k_date_diff, NULL},
    {"*", 2, {VT_IVL, VT_BIG}, VT_IVL, NULL, NP, k_ivl_mul_i64, NULL},
    {"*", 2, {VT_BIG, VT_IVL}, VT_IVL, NULL, NP, k_ivl_mul_i64, NULL},
    {"*", 2, {VT_IVL, VT_DBL}, VT_IVL, NULL, NP, k_ivl_mul_f64, NULL},
    {"*", 2, {VT_DBL, VT_IVL}, VT_IVL, NULL, NP, k_ivl_mul_f64, NULL},
    {"/", 2, {VT_IVL, VT_BIG}, VT_IVL, NULL, NP, k_ivl_div_i64, NULL},
    {"/", 2, {VT_IVL, VT_DBL}, VT_IVL, NULL, NP, k_ivl_div_f64, NULL},
    /* comparisons */
    CMP("=", eq),
    CMP("<>", ne),
    CMP("!=", ne),
    CMP("<", lt),
    CMP("<=", le),
    CMP(">", gt),
    CMP(">=", ge),
    /* pattern matching */
    {"LIKE", 2, {VT_STR, VT_STR}, BOOLT, NULL, NP, velo_ext_kernel,
     &like_ext},
    {"LIKE", 3, {VT_STR, VT_STR, VT_STR}, BOOLT, NULL, NP, velo_ext_kernel,
     &like_ext},
    {"ILIKE", 2, {VT_STR, VT_STR}, BOOLT, NULL, NP, velo_ext_kernel,
     &ilike_ext},
    {"ILIKE", 3, {VT_STR, VT_STR, VT_STR}, BOOLT, NULL, NP, velo_ext_kernel,
     &ilike_ext},
    NULLIF(VT_BOOL),
    NULLIF(VT_INT),
    NULLIF(VT_BIG),
    NULLIF(VT_DEC),
    NULLIF(VT_DBL),
    NULLIF(VT_STR),
    NULLIF(VT_TS),
    NULLIF(VT_DATE),
    NULLIF(VT_IVL),
};

/* DECIMAL arithmetic computes its result type from the operands. */
static void fix_decimal_rets(struct velo_func *f)
{
    if (f->args[0].id != VELO_TYPE_DECIMAL || f->nargs != 2 ||
        f->ret.id != VELO_TYPE_DECIMAL) {
        return;
    }
    if (strcmp(f->name, "MOD") == 0) {
        f->ret_type = velo_ret_dec_mod;
        return;
    }
    switch (f->name[0]) {
    case '+':
    case '-':
        f->ret_type = velo_ret_dec_addsub;
        break;
    case '*':
        f->ret_type = velo_ret_dec_mul;
        break;
    case '/':
        f->ret_type = velo_ret_dec_div;
        break;
    case '%':
        f->ret_type = velo_ret_dec_mod;
        break;
    default:
        break;
    }
}

int velo_funcs_register_ops(struct velo_funcs *r)
{
    for (size_t i = 0; i < sizeof(op_table) / sizeof(op_table[0]); i++) {
        struct velo_func f = op_table[i];
        fix_decimal_rets(&f);
        if (velo_funcs_add(r, &f) != VELO_OK) {
            return VELO_ERR;
        }
    }
    return VELO_OK;
}
