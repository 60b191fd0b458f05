/*
 * The function registry: every built-in scalar function, operator and
 * aggregate, plus the SQL functions of loaded App plugins.
 *
 * Resolution happens once, at bind time: an exact match on the argument
 * types first, then the overload needing the cheapest implicit widenings
 * (INTEGER -> BIGINT -> DECIMAL -> DOUBLE, DATE -> TIMESTAMP, NULL -> any,
 * JSON -> STRING, and a string literal to TIMESTAMP/DATE as the last
 * resort). Ties go to the overload registered first, which is why the
 * tables list the narrower overloads first.
 *
 * Operator names the binder looks up: "+", "-" (binary and unary), "*",
 * "/", "%", "=", "<>" (also "!="), "<", "<=", ">", ">=", "||", "LIKE",
 * "ILIKE" (2 or 3 arguments: the third is the ESCAPE character).
 * EXTRACT(field FROM ts) is EXTRACT('field', ts); POSITION(a IN b) is
 * POSITION(a, b); TRIM(BOTH|LEADING|TRAILING c FROM s) is TRIM/LTRIM/
 * RTRIM(s, c); DATE_TRUNC/EXTRACT units are case-insensitive strings.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <velo/app.h>
#include <velo/log.h>

#include "exec/expr.h"
#include "exec/func-internal.h"

struct velo_funcs {
    struct velo_func **funcs;
    size_t nfuncs, capfuncs;
    const struct velo_agg **aggs;
    size_t naggs, capaggs;
    char **owned_names; /* plugin function names, copied */
    size_t nowned;
};

/* ---- Widening ----------------------------------------------------------- */

int velo_widen_cost(struct velo_datatype from, struct velo_datatype to)
{
    if (to.id == VELO_TYPE_NULL) {
        return 1; /* ANY: fine, but a typed overload is preferred */
    }
    if (from.id == to.id) {
        return 0;
    }
    if (from.id == VELO_TYPE_NULL) {
        return 1;
    }
    switch (from.id) {
    case VELO_TYPE_INTEGER:
        return to.id == VELO_TYPE_BIGINT    ? 1
               : to.id == VELO_TYPE_DECIMAL ? 2
               : to.id == VELO_TYPE_DOUBLE  ? 3
                                            : -1;
    case VELO_TYPE_BIGINT:
        return to.id == VELO_TYPE_DECIMAL  ? 1
               : to.id == VELO_TYPE_DOUBLE ? 2
                                           : -1;
    case VELO_TYPE_DECIMAL:
        return to.id == VELO_TYPE_DOUBLE ? 1 : -1;
    case VELO_TYPE_DATE:
        return to.id == VELO_TYPE_TIMESTAMP ? 1 : -1;
    case VELO_TYPE_JSON:
        return to.id == VELO_TYPE_STRING ? 1 : -1;
    case VELO_TYPE_STRING:
        /* ts > '2024-01-01 10:00:00' reads naturally; a bad string is a
         * per-row cast error with the value in the message. */
        return to.id == VELO_TYPE_TIMESTAMP || to.id == VELO_TYPE_DATE ? 4
                                                                       : -1;
    default:
        return -1;
    }
}

struct velo_datatype velo_widen_target(struct velo_datatype from,
                                       struct velo_datatype to)
{
    if (to.id != VELO_TYPE_DECIMAL) {
        return to;
    }
    switch (from.id) {
    case VELO_TYPE_INTEGER:
        return velo_type_decimal(10, 0);
    case VELO_TYPE_BIGINT:
        return velo_type_decimal(18, 0);
    case VELO_TYPE_DECIMAL:
        return from;
    default:
        return velo_type_decimal(to.precision ? to.precision : 18, to.scale);
    }
}

static struct velo_datatype dec_union(struct velo_datatype a,
                                      struct velo_datatype b)
{
    int s = a.scale > b.scale ? a.scale : b.scale;
    int ia = a.precision - a.scale, ib = b.precision - b.scale;
    int p = (ia > ib ? ia : ib) + s;
    if (p > VELO_DECIMAL_MAX_PRECISION) {
        p = VELO_DECIMAL_MAX_PRECISION;
    }
    if (s > p) {
        s = p;
    }
    return velo_type_decimal(p, s);
}

struct velo_datatype velo_type_common(struct velo_datatype a,
                                      struct velo_datatype b)
{
    struct velo_datatype none = {0, 0, 0};
    if (a.id == VELO_TYPE_NULL) {
        return b;
    }
    if (b.id == VELO_TYPE_NULL || velo_type_equal(a, b)) {
        return a;
    }
    if (a.id == VELO_TYPE_DECIMAL || b.id == VELO_TYPE_DECIMAL) {
        struct velo_datatype da = a, db = b;
        if (a.id != VELO_TYPE_DECIMAL) {
            if (velo_widen_cost(a, b) < 0) {
                return b.id == VELO_TYPE_DECIMAL && a.id == VELO_TYPE_DOUBLE
                           ? a
                           : none;
            }
            da = velo_widen_target(a, b);
        }
        if (b.id != VELO_TYPE_DECIMAL) {
            if (velo_widen_cost(b, a) < 0) {
                return a.id == VELO_TYPE_DECIMAL && b.id == VELO_TYPE_DOUBLE
                           ? b
                           : none;
            }
            db = velo_widen_target(b, a);
        }
        return dec_union(da, db);
    }
    int ab = velo_widen_cost(a, b), ba = velo_widen_cost(b, a);
    if (ab >= 0 && (ba < 0 || ab <= ba)) {
        return velo_widen_target(a, b);
    }
    if (ba >= 0) {
        return velo_widen_target(b, a);
    }
    return none;
}

/* ---- Return types ----------------------------------------------------------
 * DECIMAL results (PostgreSQL/SQL Server style, capped at 18 digits):
 *   a + b, a - b : scale max(s1, s2), precision max(p1-s1, p2-s2) + scale + 1
 *   a * b        : scale s1 + s2,     precision p1 + p2 (+1)
 *   a / b        : scale max(6, s1, s2), precision 18: at least six
 *                  fractional digits, the rest for the integer part
 *   a % b        : scale max(s1, s2)
 * Precisions are capped at 18; a scale that would exceed 18 is capped
 * too and the value rounded HALF_EVEN. Results that do not fit are a
 * per-row overflow error. */

static struct velo_datatype dec_arg(const struct velo_datatype *a, size_t i)
{
    if (a[i].id == VELO_TYPE_DECIMAL) {
        return a[i];
    }
    return velo_widen_target(a[i], velo_type_of(VELO_TYPE_DECIMAL));
}

struct velo_datatype velo_ret_arg0(const struct velo_datatype *a, size_t n)
{
    return n > 0 ? a[0] : velo_type_of(VELO_TYPE_NULL);
}

struct velo_datatype velo_ret_dec_addsub(const struct velo_datatype *a,
                                         size_t n)
{
    struct velo_datatype x = dec_arg(a, 0), y = dec_arg(a, n > 1 ? 1 : 0);
    int s = x.scale > y.scale ? x.scale : y.scale;
    int ix = x.precision - x.scale, iy = y.precision - y.scale;
    return velo_type_decimal((ix > iy ? ix : iy) + s + 1, s);
}

struct velo_datatype velo_ret_dec_mul(const struct velo_datatype *a,
                                      size_t n)
{
    struct velo_datatype x = dec_arg(a, 0), y = dec_arg(a, n > 1 ? 1 : 0);
    int s = x.scale + y.scale;
    if (s > VELO_DECIMAL_MAX_PRECISION) {
        s = VELO_DECIMAL_MAX_PRECISION;
    }
    return velo_type_decimal(x.precision + y.precision + 1, s);
}

struct velo_datatype velo_ret_dec_div(const struct velo_datatype *a,
                                      size_t n)
{
    struct velo_datatype x = dec_arg(a, 0), y = dec_arg(a, n > 1 ? 1 : 0);
    int s = 6;
    if (x.scale > s) {
        s = x.scale;
    }
    if (y.scale > s) {
        s = y.scale;
    }
    return velo_type_decimal(VELO_DECIMAL_MAX_PRECISION, s);
}

struct velo_datatype velo_ret_dec_mod(const struct velo_datatype *a,
                                      size_t n)
{
    struct velo_datatype x = dec_arg(a, 0), y = dec_arg(a, n > 1 ? 1 : 0);
    int s = x.scale > y.scale ? x.scale : y.scale;
    int ix = x.precision - x.scale, iy = y.precision - y.scale;
    return velo_type_decimal((ix < iy ? ix : iy) + s, s);
}

/* ---- Registry ----------------------------------------------------------- */

static int same_decl(const struct velo_func *a, const struct velo_func *b)
{
    if (strcasecmp(a->name, b->name) != 0 || a->nargs != b->nargs ||
        (a->flags & VELO_FUNC_VARIADIC) != (b->flags & VELO_FUNC_VARIADIC)) {
        return 0;
    }
    for (int i = 0; i < a->nargs && i < VELO_FUNC_MAX_ARGS; i++) {
        if (a->args[i].id != b->args[i].id) {
            return 0;
        }
    }
    return 1;
}

int velo_funcs_add(struct velo_funcs *r, const struct velo_func *f)
{
    if (r == NULL || f == NULL || f->name == NULL || f->kernel == NULL ||
        f->nargs < 0 || f->nargs > VELO_FUNC_MAX_ARGS) {
        errno = EINVAL;
        return VELO_ERR;
    }
    for (size_t i = 0; i < r->nfuncs; i++) {
        if (same_decl(r->funcs[i], f)) {
            errno = EEXIST;
            return VELO_ERR;
        }
    }
    if (r->nfuncs == r->capfuncs) {
        size_t cap = r->capfuncs ? r->capfuncs * 2 : 256;
        struct velo_func **p = realloc(r->funcs, cap * sizeof(*p));
        if (p == NULL) {
            return VELO_ERR;
        }
        r->funcs = p;
        r->capfuncs = cap;
    }
    struct velo_func *copy = malloc(sizeof(*copy));
    if (copy == NULL) {
        return VELO_ERR;
    }
    *copy = *f;
    r->funcs[r->nfuncs++] = copy;
    return VELO_OK;
}

int velo_funcs_add_table(struct velo_funcs *r, const struct velo_func *t,
                         size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (velo_funcs_add(r, &t[i]) != VELO_OK) {
            return VELO_ERR;
        }
    }
    return VELO_OK;
}

int velo_funcs_add_agg(struct velo_funcs *r, const struct velo_agg *a)
{
    if (r->naggs == r->capaggs) {
        size_t cap = r->capaggs ? r->capaggs * 2 : 64;
        const struct velo_agg **p = realloc(r->aggs, cap * sizeof(*p));
        if (p == NULL) {
            return VELO_ERR;
        }
        r->aggs = p;
        r->capaggs = cap;
    }
    r->aggs[r->naggs++] = a;
    return VELO_OK;
}

struct velo_funcs *velo_funcs_create(void)
{
    struct velo_funcs *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    if (velo_funcs_register_ops(r) != VELO_OK ||
        velo_funcs_register_string(r) != VELO_OK ||
        velo_funcs_register_math(r) != VELO_OK ||
        velo_funcs_register_time(r) != VELO_OK ||
        velo_funcs_register_json(r) != VELO_OK ||
        velo_aggs_register(r) != VELO_OK) {
        int saved = errno;
        velo_funcs_destroy(r);
        errno = saved != 0 ? saved : ENOMEM;
        return NULL;
    }
    return r;
}

void velo_funcs_destroy(struct velo_funcs *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->nfuncs; i++) {
        free(r->funcs[i]);
    }
    free(r->funcs);
    free(r->aggs);
    for (size_t i = 0; i < r->nowned; i++) {
        free(r->owned_names[i]);
    }
    free(r->owned_names);
    free(r);
}

static struct velo_datatype decl_arg(const struct velo_datatype *decl,
                                     int ndecl, size_t i)
{
    if (ndecl <= 0) {
        struct velo_datatype any = {0, 0, 0};
        return any;
    }
    size_t k = i < (size_t)ndecl ? i : (size_t)ndecl - 1;
    return decl[k];
}

/* Cost of calling with these args, or -1. */
static int call_cost(const struct velo_datatype *decl, int ndecl,
                     int variadic, const struct velo_datatype *args,
                     size_t nargs)
{
    if (variadic ? nargs < (size_t)ndecl : nargs != (size_t)ndecl) {
        return -1;
    }
    int cost = 0;
    for (size_t i = 0; i < nargs; i++) {
        int c = velo_widen_cost(args[i], decl_arg(decl, ndecl, i));
        if (c < 0) {
            return -1;
        }
        cost += c;
    }
    return cost;
}

static void fill_casts(const struct velo_datatype *decl, int ndecl,
                       const struct velo_datatype *args, size_t nargs,
                       struct velo_datatype *cast_to)
{
    if (cast_to == NULL) {
        return;
    }
    for (size_t i = 0; i < nargs; i++) {
        struct velo_datatype d = decl_arg(decl, ndecl, i);
        struct velo_datatype none = {0, 0, 0};
        if (d.id == VELO_TYPE_NULL || args[i].id == d.id) {
            cast_to[i] = none; /* ANY, or same type (any DECIMAL) */
        } else {
            cast_to[i] = velo_widen_target(args[i], d);
        }
    }
}

const struct velo_func *velo_funcs_resolve(
    const struct velo_funcs *r, const char *name,
    const struct velo_datatype *args, size_t nargs,
    struct velo_datatype *cast_to, int *name_known)
{
    const struct velo_func *best = NULL;
    int best_cost = INT_MAX, known = 0;
    if (r != NULL && name != NULL) {
        for (size_t i = 0; i < r->nfuncs; i++) {
            const struct velo_func *f = r->funcs[i];
            if (strcasecmp(f->name, name) != 0) {
                continue;
            }
            known = 1;
            int c = call_cost(f->args, f->nargs,
                              (f->flags & VELO_FUNC_VARIADIC) != 0, args,
                              nargs);
            if (c >= 0 && c < best_cost) {
                best = f;
                best_cost = c;
            }
        }
    }
    if (name_known != NULL) {
        *name_known = known;
    }
    if (best != NULL) {
        fill_casts(best->args, best->nargs, args, nargs, cast_to);
    }
    return best;
}

size_t velo_funcs_names(const struct velo_funcs *r, const char **out,
                        size_t max)
{
    size_t n = 0;
    for (size_t i = 0; r != NULL && i < r->nfuncs + r->naggs; i++) {
        const char *name = i < r->nfuncs ? r->funcs[i]->name
                                         : r->aggs[i - r->nfuncs]->name;
        if (!((name[0] >= 'A' && name[0] <= 'Z') || name[0] == '_')) {
            continue; /* operators are not names to suggest */
        }
        int dup = 0;
        for (size_t j = 0; j < n && j < max; j++) {
            if (strcasecmp(out[j], name) == 0) {
                dup = 1;
                break;
            }
        }
        if (dup) {
            continue;
        }
        if (n < max) {
            out[n] = name;
        }
        n++;
        if (n >= max) {
            /* Without the list we cannot dedupe further: stop here. */
            break;
        }
    }
    return n;
}

size_t velo_funcs_overloads(const struct velo_funcs *r, const char *name,
                            const struct velo_func **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; r != NULL && i < r->nfuncs; i++) {
        if (strcasecmp(r->funcs[i]->name, name) == 0) {
            if (n < max) {
                out[n] = r->funcs[i];
            }
            n++;
        }
    }
    return n;
}

const struct velo_agg *velo_funcs_resolve_agg(
    const struct velo_funcs *r, const char *name,
    const struct velo_datatype *args, size_t nargs,
    struct velo_datatype *cast_to, int *name_known)
{
    const struct velo_agg *best = NULL;
    int best_cost = INT_MAX, known = 0;
    for (size_t i = 0; r != NULL && name != NULL && i < r->naggs; i++) {
        const struct velo_agg *a = r->aggs[i];
        if (strcasecmp(a->name, name) != 0) {
            continue;
        }
        known = 1;
        int c = call_cost(a->args, a->nargs, 0, args, nargs);
        if (c >= 0 && c < best_cost) {
            best = a;
            best_cost = c;
        }
    }
    if (name_known != NULL) {
        *name_known = known;
    }
    if (best != NULL) {
        fill_casts(best->args, best->nargs, args, nargs, cast_to);
    }
    return best;
}

int velo_funcs_is_agg(const struct velo_funcs *r, const char *name)
{
    for (size_t i = 0; r != NULL && name != NULL && i < r->naggs; i++) {
        if (strcasecmp(r->aggs[i]->name, name) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ---- Plugin functions ------------------------------------------------------
 * An App plugin's function is row-at-a-time over velo_value; the adapter
 * kernel converts each row's arguments, calls it, and converts the result
 * to the declared return type. NULL arguments reach the plugin as
 * VELO_TYPE_NULL values; a DECIMAL result is DECIMAL(18,6). */

#define PLUGIN_DEC_SCALE 6
#define PLUGIN_MAX_ARGS 64

static void value_of(const struct velo_column *c, size_t r,
                     struct velo_value *v)
{
    memset(v, 0, sizeof(*v));
    if (c->has_nulls && c->nulls[r]) {
        v->type = VELO_TYPE_NULL;
        return;
    }
    v->type = c->type.id;
    switch (c->type.id) {
    case VELO_TYPE_BOOLEAN:
        v->v.b = c->v.u8[r];
        break;
    case VELO_TYPE_DOUBLE:
        v->v.f64 = c->v.f64[r];
        break;
    case VELO_TYPE_DECIMAL:
        v->v.dec.unscaled = c->v.i64[r];
        v->v.dec.precision = c->type.precision;
        v->v.dec.scale = c->type.scale;
        break;
    case VELO_TYPE_STRING:
    case VELO_TYPE_BYTES:
    case VELO_TYPE_JSON:
        v->v.str = c->v.str[r];
        break;
    case VELO_TYPE_NULL:
        break;
    default:
        v->v.i64 = c->v.i64[r];
        break;
    }
}

static int store_value(struct velo_eval_ctx *ctx, struct velo_column *out,
                       size_t r, const struct velo_value *v)
{
    int want = out->type.id;
    if (v->type == VELO_TYPE_NULL) {
        velo_col_set_null(out, r);
        return VELO_OK;
    }
    switch (want) {
    case VELO_TYPE_BOOLEAN:
        if (v->type != VELO_TYPE_BOOLEAN) {
            return VELO_ERR;
        }
        out->v.u8[r] = v->v.b != 0;
        return VELO_OK;
    case VELO_TYPE_DOUBLE:
        if (v->type == VELO_TYPE_DOUBLE) {
            out->v.f64[r] = v->v.f64;
        } else if (v->type == VELO_TYPE_INTEGER ||
                   v->type == VELO_TYPE_BIGINT) {
            out->v.f64[r] = (double)v->v.i64;
        } else {
            return VELO_ERR;
        }
        return VELO_OK;
    case VELO_TYPE_DECIMAL:
        if (v->type == VELO_TYPE_DECIMAL) {
            return velo_dec_rescale(v->v.dec.unscaled, v->v.dec.scale,
                                    out->type.scale, &out->v.i64[r]);
        }
        if (v->type == VELO_TYPE_INTEGER || v->type == VELO_TYPE_BIGINT) {
            return velo_dec_rescale(v->v.i64, 0, out->type.scale,
                                    &out->v.i64[r]);
        }
        return VELO_ERR;
    case VELO_TYPE_STRING:
    case VELO_TYPE_BYTES:
    case VELO_TYPE_JSON: {
        if (v->type != VELO_TYPE_STRING && v->type != VELO_TYPE_BYTES &&
            v->type != VELO_TYPE_JSON) {
            return VELO_ERR;
        }
        /* The plugin's buffer is only valid during the call. */
        char *p = velo_arena_strdup(ctx->arena, v->v.str.ptr, v->v.str.len);
        if (p == NULL) {
            return VELO_ERR;
        }
        out->v.str[r].ptr = p;
        out->v.str[r].len = v->v.str.len;
        return VELO_OK;
    }
    case VELO_TYPE_INTEGER:
        if ((v->type != VELO_TYPE_INTEGER && v->type != VELO_TYPE_BIGINT) ||
            v->v.i64 < INT32_MIN || v->v.i64 > INT32_MAX) {
            return VELO_ERR;
        }
        out->v.i64[r] = v->v.i64;
        return VELO_OK;
    default:
        if (v->type != want &&
            !(want == VELO_TYPE_BIGINT && v->type == VELO_TYPE_INTEGER)) {
            return VELO_ERR;
        }
        out->v.i64[r] = v->v.i64;
        return VELO_OK;
    }
}

static void k_plugin(struct velo_eval_ctx *ctx, const struct velo_func *fn,
                     const struct velo_column *const *args, size_t nargs,
                     struct velo_column *out, const uint16_t *sel, size_t n)
{
    const struct velo_app_sql_function *pf = fn->data;
    struct velo_value vals[PLUGIN_MAX_ARGS];
    if (nargs > PLUGIN_MAX_ARGS) {
        for (size_t i = 0; i < n; i++) {
            velo_eval_fail(ctx, out, sel != NULL ? sel[i] : i,
                           VELO_EVAL_BAD_ARG,
                           "%s takes at most %d arguments here", fn->name,
                           PLUGIN_MAX_ARGS);
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        for (size_t k = 0; k < nargs; k++) {
            value_of(args[k], r, &vals[k]);
        }
        struct velo_value res;
        memset(&res, 0, sizeof(res));
        if (pf->call(vals, nargs, &res) != VELO_OK) {
            velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                           "function %s failed", fn->name);
        } else if (store_value(ctx, out, r, &res) != VELO_OK) {
            velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                           "function %s returned a value that is not its "
                           "declared type",
                           fn->name);
        }
    }
}

int velo_funcs_add_plugin(struct velo_funcs *r, const void *app_sql_function)
{
    const struct velo_app_sql_function *pf = app_sql_function;
    if (r == NULL || pf == NULL || pf->name == NULL || pf->call == NULL ||
        pf->min_args < 0 || pf->min_args > VELO_FUNC_MAX_ARGS ||
        (pf->max_args >= 0 && pf->max_args < pf->min_args)) {
        errno = EINVAL;
        return VELO_ERR;
    }
    char **owned = realloc(r->owned_names,
                           (r->nowned + 1) * sizeof(*r->owned_names));
    if (owned == NULL) {
        return VELO_ERR;
    }
    r->owned_names = owned;
    char *name = strdup(pf->name);
    if (name == NULL) {
        return VELO_ERR;
    }
    for (char *p = name; *p != '\0'; p++) {
        if (*p >= 'a' && *p <= 'z') {
            *p = (char)(*p - 'a' + 'A');
        }
    }
    r->owned_names[r->nowned++] = name;
    struct velo_func f;
    memset(&f, 0, sizeof(f));
    f.name = name;
    f.ret = pf->return_type == VELO_TYPE_DECIMAL
                ? velo_type_decimal(18, PLUGIN_DEC_SCALE)
                : velo_type_of(pf->return_type);
    f.kernel = k_plugin;
    f.data = pf;
    /* Arguments of any type; one overload per arity, a variadic tail
     * when max_args is open (< 0) or beyond what a node holds. */
    int max = pf->max_args;
    if (max < 0 || max > VELO_FUNC_MAX_ARGS) {
        f.nargs = pf->min_args > 0 ? pf->min_args : 1;
        f.flags = VELO_FUNC_VARIADIC;
        if (pf->min_args == 0) {
            struct velo_func f0 = f;
            f0.nargs = 0;
            f0.flags = 0;
            if (velo_funcs_add(r, &f0) != VELO_OK) {
                return VELO_ERR;
            }
        }
        return velo_funcs_add(r, &f);
    }
    for (int n = pf->min_args; n <= max; n++) {
        f.nargs = n;
        if (velo_funcs_add(r, &f) != VELO_OK) {
            return VELO_ERR;
        }
    }
    return VELO_OK;
}
