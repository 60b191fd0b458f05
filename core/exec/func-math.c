/*
 * Math functions.
 *
 * Rounding: ROUND on DECIMAL and integer values is HALF_EVEN like every
 * decimal operation here (ROUND(2.5) = 2, ROUND(3.5) = 4); ROUND on DOUBLE
 * rounds half away from zero (C round(): ROUND(2.5E0) = 3), which is what
 * people expect of floating point and what Flink does. The digits
 * argument may be negative (ROUND(1234, -2) = 1200). ROUND(DECIMAL(p,s), d)
 * keeps the type DECIMAL(p+1,s) (one more digit for the carry); the value
 * has d fractional digits.
 *
 * Domain errors (SQRT of a negative, LN of zero, 0 to a negative power)
 * and overflows are per-row errors, as in PostgreSQL.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <velo/log.h>

#include "exec/func-internal.h"

/* ---- ABS ---------------------------------------------------------------- */

static VELO_KERNEL(k_abs_i64)
{
    const int64_t *a = args[0]->v.i64;
    int64_t *o = out->v.i64;
    int64_t minv = out->type.id == VELO_TYPE_INTEGER ? INT32_MIN : INT64_MIN;
    VELO_ROWS(sel, n, r,
              if (a[r] == minv) {
                  velo_eval_fail(ctx, out, r, VELO_EVAL_OVERFLOW,
                                 "value out of range: ABS(%lld)",
                                 (long long)a[r]);
              } else { o[r] = a[r] < 0 ? -a[r] : a[r]; });
}

static VELO_KERNEL(k_abs_f64)
{
    const double *a = args[0]->v.f64;
    double *o = out->v.f64;
    VELO_ROWS(sel, n, r, o[r] = fabs(a[r]););
}

/* ---- ROUND / FLOOR / CEIL ----------------------------------------------- */

static struct velo_datatype ret_dec_scale0(const struct velo_datatype *a,
                                           size_t n)
{
    (void)n;
    return velo_type_decimal(a[0].precision - a[0].scale + 1, 0);
}

static struct velo_datatype ret_dec_round_d(const struct velo_datatype *a,
                                            size_t n)
{
    (void)n;
    return velo_type_decimal(a[0].precision + 1, a[0].scale);
}

static double round_digits(double x, int64_t d, int half_away)
{
    if (!isfinite(x)) {
        return x;
    }
    if (d > 15) {
        return x;
    }
    if (d < -308) {
        return 0.0;
    }
    double s = pow(10.0, (double)(d >= 0 ? d : -d));
    if (d >= 0) {
        double y = x * s;
        if (!isfinite(y)) {
            return x;
        }
        return (half_away ? round(y) : nearbyint(y)) / s;
    }
    return (half_away ? round(x / s) : nearbyint(x / s)) * s;
}

static VELO_KERNEL(k_round_f64)
{
    const double *a = args[0]->v.f64;
    const int64_t *d = nargs > 1 ? args[1]->v.i64 : NULL;
    double *o = out->v.f64;
    if (d == NULL) {
        VELO_ROWS(sel, n, r, o[r] = round(a[r]););
        return;
    }
    VELO_ROWS(sel, n, r, o[r] = round_digits(a[r], d[r], 1););
}

/* Round an integer of scale `scale` to `digits` fractional digits
 * (HALF_EVEN) and express it at scale `out_scale`. */
static int dec_round(int64_t v, int scale, int64_t digits, int out_scale,
                     int64_t *res)
{
    if (digits >= scale) {
        return velo_dec_rescale(v, scale, out_scale, res);
    }
    if (digits < -18) {
        digits = -19; /* everything rounds to 0 */
    }
    __int128 t;
    int keep = (int)digits; /* may be negative */
    /* Drop (scale - keep) digits, rounding, then scale back up. */
    if (velo_i128_rescale(v, scale - keep, 0, &t) != VELO_OK ||
        velo_i128_rescale(t, 0, out_scale - keep, &t) != VELO_OK) {
        return VELO_ERR;
    }
    return velo_i128_to_i64(t, res);
}

static VELO_KERNEL(k_round_dec)
{
    const int64_t *a = args[0]->v.i64;
    const int64_t *d = nargs > 1 ? args[1]->v.i64 : NULL;
    int s = args[0]->type.scale, os = out->type.scale;
    int op = out->type.precision;
    int64_t *o = out->v.i64;
    char t[32];
    VELO_ROWS(sel, n, r, int64_t v;
              if (dec_round(a[r], s, d != NULL ? d[r] : 0, os, &v) !=
                      VELO_OK ||
                  !velo_dec_fits(v, op)) {
                  velo_eval_fail(ctx, out, r, VELO_EVAL_OVERFLOW,
                                 "numeric overflow: the result does not fit "
                                 "%s",
                                 velo_type_name(out->type, t, sizeof(t)));
              } else { o[r] = v; });
}

static VELO_KERNEL(k_round_i64)
{
    const int64_t *a = args[0]->v.i64;
    const int64_t *d = nargs > 1 ? args[1]->v.i64 : NULL;
    int64_t *o = out->v.i64;
    VELO_ROWS(sel, n, r, int64_t v;
              if (d == NULL || d[r] >= 0) {
                  o[r] = a[r];
              } else if (dec_round(a[r], 0, d[r], 0, &v) != VELO_OK ||
                         (out->type.id == VELO_TYPE_INTEGER &&
                          (v < INT32_MIN || v > INT32_MAX))) {
                  velo_eval_fail(ctx, out, r, VELO_EVAL_OVERFLOW,
                                 "value out of range: ROUND(%lld, %lld)",
                                 (long long)a[r], (long long)d[r]);
              } else { o[r] = v; });
}

static VELO_KERNEL(k_identity_i64)
{
    const int64_t *a = args[0]->v.i64;
    int64_t *o = out->v.i64;
    VELO_ROWS(sel, n, r, o[r] = a[r];);
}

static VELO_KERNEL(k_floor_f64)
{
    const double *a = args[0]->v.f64;
    double *o = out->v.f64;
    VELO_ROWS(sel, n, r, o[r] = floor(a[r]););
}

static VELO_KERNEL(k_ceil_f64)
{
    const double *a = args[0]->v.f64;
    double *o = out->v.f64;
    VELO_ROWS(sel, n, r, o[r] = ceil(a[r]););
}

static void floorceil_dec(const struct velo_column *const *args,
                          struct velo_column *out, const uint16_t *sel,
                          size_t n, int ceiling)
{
    const int64_t *a = args[0]->v.i64;
    int64_t *o = out->v.i64;
    int64_t p = velo_dec_pow10(args[0]->type.scale);
    VELO_ROWS(sel, n, r, int64_t q = velo_floor_div(a[r], p);
              if (ceiling && q * p != a[r]) { q++; } o[r] = q;);
}

static VELO_KERNEL(k_floor_dec)
{
    floorceil_dec(args, out, sel, n, 0);
}

static VELO_KERNEL(k_ceil_dec)
{
    floorceil_dec(args, out, sel, n, 1);
}

/* ---- Transcendental ----------------------------------------------------- */

static VELO_KERNEL(k_sqrt)
{
    const double *a = args[0]->v.f64;
    double *o = out->v.f64;
    VELO_ROWS(sel, n, r,
              if (a[r] < 0) {
                  velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                                 "cannot take the square root of a negative "
                                 "number");
              } else { o[r] = sqrt(a[r]); });
}

static void log_kernel(struct velo_eval_ctx *ctx,
                       const struct velo_column *const *args,
                       struct velo_column *out, const uint16_t *sel, size_t n,
                       double (*f)(double))
{
    const double *a = args[0]->v.f64;
    double *o = out->v.f64;
    VELO_ROWS(sel, n, r,
              if (a[r] == 0) {
                  velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                                 "cannot take the logarithm of zero");
              } else if (a[r] < 0) {
                  velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                                 "cannot take the logarithm of a negative "
                                 "number");
              } else { o[r] = f(a[r]); });
}

static VELO_KERNEL(k_ln)
{
    log_kernel(ctx, args, out, sel, n, log);
}

static VELO_KERNEL(k_log10)
{
    log_kernel(ctx, args, out, sel, n, log10);
}

static VELO_KERNEL(k_exp)
{
    const double *a = args[0]->v.f64;
    double *o = out->v.f64;
    VELO_ROWS(sel, n, r, o[r] = exp(a[r]);
              if (isinf(o[r]) && !isinf(a[r])) {
                  velo_eval_fail(ctx, out, r, VELO_EVAL_OVERFLOW,
                                 "value out of range: EXP overflow");
              });
}

static VELO_KERNEL(k_power)
{
    const double *a = args[0]->v.f64, *b = args[1]->v.f64;
    double *o = out->v.f64;
    VELO_ROWS(sel, n, r,
              if (a[r] == 0 && b[r] < 0) {
                  velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                                 "zero raised to a negative power is "
                                 "undefined");
              } else if (a[r] < 0 && floor(b[r]) != b[r]) {
                  velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                                 "a negative number raised to a non-integer "
                                 "power yields a complex result");
              } else {
                  o[r] = pow(a[r], b[r]);
                  if (isinf(o[r]) && isfinite(a[r]) && isfinite(b[r])) {
                      velo_eval_fail(ctx, out, r, VELO_EVAL_OVERFLOW,
                                     "value out of range: POWER overflow");
                  }
              });
}

static VELO_KERNEL(k_sign_f64)
{
    const double *a = args[0]->v.f64;
    double *o = out->v.f64;
    VELO_ROWS(sel, n, r, o[r] = a[r] > 0 ? 1.0 : a[r] < 0 ? -1.0 : 0.0;);
}

/* ---- GREATEST / LEAST ------------------------------------------------------
 * NULL arguments are ignored (PostgreSQL); the result is NULL only when
 * every argument is. */

static struct velo_datatype ret_common(const struct velo_datatype *a,
                                       size_t n)
{
    struct velo_datatype t = a[0];
    for (size_t i = 1; i < n; i++) {
        struct velo_datatype c = velo_type_common(t, a[i]);
        if (c.id != VELO_TYPE_NULL) {
            t = c;
        }
    }
    return t;
}

static void extreme(struct velo_eval_ctx *ctx,
                    const struct velo_column *const *args, size_t nargs,
                    struct velo_column *out, const uint16_t *sel, size_t n,
                    int want_max)
{
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        int best = -1;
        for (size_t k = 0; k < nargs; k++) {
            if (velo_col_is_null(args[k], r)) {
                continue;
            }
            if (best < 0) {
                best = (int)k;
                continue;
            }
            int c = velo_value_cmp(args[k]->type, velo_col_get(args[k], r),
                                   args[best]->type,
                                   velo_col_get(args[best], r));
            if (want_max ? c > 0 : c < 0) {
                best = (int)k;
            }
        }
        if (best < 0) {
            velo_col_set_null(out, r);
            continue;
        }
        const struct velo_column *b = args[best];
        if (out->type.id == VELO_TYPE_DECIMAL &&
            b->type.scale != out->type.scale) {
            int64_t v;
            if (velo_dec_rescale(b->v.i64[r], b->type.scale, out->type.scale,
                                 &v) != VELO_OK ||
                !velo_dec_fits(v, out->type.precision)) {
                velo_eval_fail(ctx, out, r, VELO_EVAL_OVERFLOW,
                               "numeric overflow");
                continue;
            }
            out->v.i64[r] = v;
        } else {
            velo_col_put(out, r, velo_col_get(b, r));
        }
    }
}

static VELO_KERNEL(k_greatest)
{
    extreme(ctx, args, nargs, out, sel, n, 1);
}

static VELO_KERNEL(k_least)
{
    extreme(ctx, args, nargs, out, sel, n, 0);
}

/* ---- Registration ------------------------------------------------------- */

#define NP VELO_FUNC_NULL_PROPAGATES
#define VAR VELO_FUNC_VARIADIC

#define EXTREMES(name, k)                                                    \
    {name, 1, {VT_INT}, VT_INT, NULL, VAR, k, NULL},                         \
        {name, 1, {VT_BIG}, VT_BIG, NULL, VAR, k, NULL},                     \
        {name, 1, {VT_DEC}, VT_DEC, ret_common, VAR, k, NULL},               \
        {name, 1, {VT_DBL}, VT_DBL, NULL, VAR, k, NULL},                     \
        {name, 1, {VT_STR}, VT_STR, NULL, VAR, k, NULL},                     \
        {name, 1, {VT_TS}, VT_TS, NULL, VAR, k, NULL},                       \
        {name, 1, {VT_DATE}, VT_DATE, NULL, VAR, k, NULL},                   \
        {name, 1, {VT_IVL}, VT_IVL, NULL, VAR, k, NULL},                     \
        {name, 1, {VT_BOOL}, VT_BOOL, NULL, VAR, k, NULL}

static const struct velo_func math_table[] = {
    {"ABS", 1, {VT_INT}, VT_INT, NULL, NP, k_abs_i64, NULL},
    {"ABS", 1, {VT_BIG}, VT_BIG, NULL, NP, k_abs_i64, NULL},
    {"ABS", 1, {VT_DEC}, VT_DEC, velo_ret_arg0, NP, k_abs_i64, NULL},
    {"ABS", 1, {VT_DBL}, VT_DBL, NULL, NP, k_abs_f64, NULL},
    {"ROUND", 1, {VT_INT}, VT_INT, NULL, NP, k_round_i64, NULL},
    {"ROUND", 1, {VT_BIG}, VT_BIG, NULL, NP, k_round_i64, NULL},
    {"ROUND", 1, {VT_DEC}, VT_DEC, ret_dec_scale0, NP, k_round_dec, NULL},
    {"ROUND", 1, {VT_DBL}, VT_DBL, NULL, NP, k_round_f64, NULL},
    {"ROUND", 2, {VT_INT, VT_BIG}, VT_INT, NULL, NP, k_round_i64, NULL},
    {"ROUND", 2, {VT_BIG, VT_BIG}, VT_BIG, NULL, NP, k_round_i64, NULL},
    {"ROUND", 2, {VT_DEC, VT_BIG}, VT_DEC, ret_dec_round_d, NP, k_round_dec,
     NULL},
    {"ROUND", 2, {VT_DBL, VT_BIG}, VT_DBL, NULL, NP, k_round_f64, NULL},
    {"FLOOR", 1, {VT_INT}, VT_INT, NULL, NP, k_identity_i64, NULL},
    {"FLOOR", 1, {VT_BIG}, VT_BIG, NULL, NP, k_identity_i64, NULL},
    {"FLOOR", 1, {VT_DEC}, VT_DEC, ret_dec_scale0, NP, k_floor_dec, NULL},
    {"FLOOR", 1, {VT_DBL}, VT_DBL, NULL, NP, k_floor_f64, NULL},
    {"CEIL", 1, {VT_INT}, VT_INT, NULL, NP, k_identity_i64, NULL},
    {"CEIL", 1, {VT_BIG}, VT_BIG, NULL, NP, k_identity_i64, NULL},
    {"CEIL", 1, {VT_DEC}, VT_DEC, ret_dec_scale0, NP, k_ceil_dec, NULL},
    {"CEIL", 1, {VT_DBL}, VT_DBL, NULL, NP, k_ceil_f64, NULL},
    {"CEILING", 1, {VT_INT}, VT_INT, NULL, NP, k_identity_i64, NULL},
    {"CEILING", 1, {VT_BIG}, VT_BIG, NULL, NP, k_identity_i64, NULL},
    {"CEILING", 1, {VT_DEC}, VT_DEC, ret_dec_scale0, NP, k_ceil_dec, NULL},
    {"CEILING", 1, {VT_DBL}, VT_DBL, NULL, NP, k_ceil_f64, NULL},
    {"SQRT", 1, {VT_DBL}, VT_DBL, NULL, NP, k_sqrt, NULL},
    {"LN", 1, {VT_DBL}, VT_DBL, NULL, NP, k_ln, NULL},
    {"LOG10", 1, {VT_DBL}, VT_DBL, NULL, NP, k_log10, NULL},
    {"EXP", 1, {VT_DBL}, VT_DBL, NULL, NP, k_exp, NULL},
    {"POWER", 2, {VT_DBL, VT_DBL}, VT_DBL, NULL, NP, k_power, NULL},
    {"POW", 2, {VT_DBL, VT_DBL}, VT_DBL, NULL, NP, k_power, NULL},
    {"SIGN", 1, {VT_DBL}, VT_DBL, NULL, NP, k_sign_f64, NULL},
    EXTREMES("GREATEST", k_greatest),
    EXTREMES("LEAST", k_least),
};

int velo_funcs_register_math(struct velo_funcs *r)
{
    return velo_funcs_add_table(r, math_table,
                                sizeof(math_table) / sizeof(math_table[0]));
}
