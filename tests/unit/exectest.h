/*
 * Helpers for the executor tests: build bound expressions from a small
 * s-expression syntax, make batches, evaluate and render results as text
 * so the cases read as tables.
 *
 *   atoms: 12 (INTEGER), 12L (BIGINT), 1.50 (DECIMAL(3,2)), 1.5e0 (DOUBLE),
 *          'text' ('' escapes a quote), NULL, TRUE, FALSE, $3 (column 3),
 *          TS'2024-01-01T00:00:00Z', DATE'2024-01-01', IV'1 hour',
 *          J'{"a":1}' (JSON)
 *   lists: (AND a b ...) (OR ...) (NOT a) (ISNULL a) (ISNOTNULL a)
 *          (CASE w1 t1 ... [else]) (COALESCE a ...) (IN x a b ...)
 *          (NOTIN x a ...) (FIELD x 'k1' 'k2' ...) (CAST x TYPE)
 *          (TRYCAST x TYPE) and (NAME args...) for any function or
 *          operator, resolved through the registry like the binder does
 *          (implicit casts inserted, result type from ret_type).
 */
#ifndef VELO_TEST_EXECTEST_H
#define VELO_TEST_EXECTEST_H

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "exec/exec-internal.h"
#include "exec/expr.h"
#include "exec/func-internal.h"
#include "exec/operator.h"
#include "formats/format.h"

struct xp {
    const char *s;
    struct velo_funcs *funcs;
    const struct velo_schema *schema;
    char err[200];
};

static inline void xp_ws(struct xp *p)
{
    while (isspace((unsigned char)*p->s)) {
        p->s++;
    }
}

static inline struct velo_expr *xp_lit(struct velo_datatype t)
{
    struct velo_expr *e = velo_expr_new(VELO_EXPR_LITERAL, t, 0);
    return e;
}

/* Read a quoted string after the opening quote; malloc'd. */
static inline char *xp_quoted(struct xp *p, size_t *len)
{
    size_t cap = 64, n = 0;
    char *out = malloc(cap);
    for (;;) {
        char c = *p->s;
        if (c == '\0') {
            snprintf(p->err, sizeof(p->err), "unterminated string");
            free(out);
            return NULL;
        }
        p->s++;
        if (c == '\'') {
            if (*p->s == '\'') {
                p->s++;
            } else {
                break;
            }
        }
        if (n + 2 > cap) {
            cap *= 2;
            out = realloc(out, cap);
        }
        out[n++] = c;
    }
    out[n] = '\0';
    *len = n;
    return out;
}

static inline struct velo_expr *xp_expr(struct xp *p);

static inline struct velo_expr *xp_wrap_cast(struct velo_expr *e,
                                             struct velo_datatype t)
{
    struct velo_expr *c = velo_expr_new(VELO_EXPR_CAST, t, 1);
    c->args[0] = e;
    return c;
}

static inline struct velo_expr *xp_call(struct xp *p, const char *name,
                                        struct velo_expr **args, size_t n)
{
    struct velo_datatype at[16], cast[16];
    for (size_t i = 0; i < n; i++) {
        at[i] = args[i]->type;
    }
    int known = 0;
    const struct velo_func *fn =
        velo_funcs_resolve(p->funcs, name, at, n, cast, &known);
    if (fn == NULL) {
        snprintf(p->err, sizeof(p->err), "%s %s/%zu", known ? "no overload"
                 : "unknown function", name, n);
        for (size_t i = 0; i < n; i++) {
            velo_expr_free(args[i]);
        }
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (cast[i].id != 0) {
            args[i] = xp_wrap_cast(args[i], cast[i]);
            at[i] = cast[i];
        }
    }
    struct velo_datatype rt = fn->ret_type ? fn->ret_type(at, n) : fn->ret;
    struct velo_expr *e = velo_expr_new(VELO_EXPR_CALL, rt, n);
    e->u.call = fn;
    for (size_t i = 0; i < n; i++) {
        e->args[i] = args[i];
    }
    return e;
}

static inline struct velo_expr *xp_atom(struct xp *p)
{
    const char *s = p->s;
    char tag[8] = "";
    if ((s[0] == 'T' && s[1] == 'S' && s[2] == '\'') ||
        (s[0] == 'I' && s[1] == 'V' && s[2] == '\'')) {
        memcpy(tag, s, 2);
        p->s += 3;
    } else if (strncmp(s, "DATE'", 5) == 0) {
        strcpy(tag, "DATE");
        p->s += 5;
    } else if (s[0] == 'J' && s[1] == '\'') {
        strcpy(tag, "J");
        p->s += 2;
    } else if (s[0] == '\'') {
        p->s++;
        strcpy(tag, "S");
    }
    if (tag[0] != '\0') {
        size_t len;
        char *str = xp_quoted(p, &len);
        if (str == NULL) {
            return NULL;
        }
        struct velo_expr *e;
        int64_t v = 0;
        if (strcmp(tag, "S") == 0 || strcmp(tag, "J") == 0) {
            e = xp_lit(velo_type_of(tag[0] == 'J' ? VELO_TYPE_JSON
                                                  : VELO_TYPE_STRING));
            e->u.literal.str = str;
            e->u.literal.len = len;
            return e;
        }
        int rc, id;
        if (strcmp(tag, "TS") == 0) {
            rc = velo_parse_timestamp(str, len, &v);
            id = VELO_TYPE_TIMESTAMP;
        } else if (strcmp(tag, "DATE") == 0) {
            rc = velo_parse_date(str, len, &v);
            id = VELO_TYPE_DATE;
        } else {
            rc = velo_interval_parse(str, len, &v);
            id = VELO_TYPE_INTERVAL;
        }
        free(str);
        if (rc != VELO_OK) {
            snprintf(p->err, sizeof(p->err), "bad %s literal", tag);
            return NULL;
        }
        e = xp_lit(velo_type_of(id));
        e->u.literal.i64 = v;
        return e;
    }
    size_t n = 0;
    while (s[n] != '\0' && !isspace((unsigned char)s[n]) && s[n] != '(' &&
           s[n] != ')') {
        n++;
    }
    char tok[128];
    snprintf(tok, sizeof(tok), "%.*s", (int)n, s);
    p->s += n;
    if (strcmp(tok, "NULL") == 0) {
        return xp_lit(velo_type_of(VELO_TYPE_NULL));
    }
    if (strcmp(tok, "TRUE") == 0 || strcmp(tok, "FALSE") == 0) {
        struct velo_expr *e = xp_lit(velo_type_of(VELO_TYPE_BOOLEAN));
        e->u.literal.i64 = tok[0] == 'T';
        return e;
    }
    if (tok[0] == '$') {
        int col = atoi(tok + 1);
        if (p->schema == NULL || col < 0 || (size_t)col >= p->schema->n) {
            snprintf(p->err, sizeof(p->err), "no column %s", tok);
            return NULL;
        }
        struct velo_expr *e =
            velo_expr_new(VELO_EXPR_COLUMN, p->schema->fields[col].type, 0);
        e->u.column = col;
        return e;
    }
    if (isdigit((unsigned char)tok[0]) || tok[0] == '-') {
        if (strchr(tok, 'e') != NULL || strchr(tok, 'E') != NULL) {
            struct velo_expr *e = xp_lit(velo_type_of(VELO_TYPE_DOUBLE));
            e->u.literal.f64 = strtod(tok, NULL);
            return e;
        }
        const char *dot = strchr(tok, '.');
        if (dot != NULL) {
            int scale = (int)strlen(dot + 1);
            int digits = 0;
            for (const char *q = tok; *q; q++) {
                digits += isdigit((unsigned char)*q) != 0;
            }
            struct velo_datatype t = velo_type_decimal(digits, scale);
            struct velo_expr *e = xp_lit(t);
            if (velo_dec_parse(tok, strlen(tok), 18, scale,
                               &e->u.literal.i64) != VELO_OK) {
                snprintf(p->err, sizeof(p->err), "bad decimal %s", tok);
                velo_expr_free(e);
                return NULL;
            }
            return e;
        }
        int big = tok[n - 1] == 'L';
        long long v = strtoll(tok, NULL, 10);
        struct velo_expr *e = xp_lit(velo_type_of(
            big || v > INT32_MAX || v < INT32_MIN ? VELO_TYPE_BIGINT
                                                  : VELO_TYPE_INTEGER));
        e->u.literal.i64 = v;
        return e;
    }
    snprintf(p->err, sizeof(p->err), "bad token '%s'", tok);
    return NULL;
}

static inline struct velo_datatype xp_common(struct velo_expr **a, size_t n)
{
    struct velo_datatype t = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        if (a[i]->type.id == VELO_TYPE_NULL) {
            continue;
        }
        t = t.id == 0 ? a[i]->type : velo_type_common(t, a[i]->type);
    }
    return t;
}

static inline struct velo_expr *xp_list(struct xp *p)
{
    p->s++; /* ( */
    xp_ws(p);
    size_t n = 0;
    int depth = 0; /* FIELD:DECIMAL(10,2) keeps its parentheses */
    while (p->s[n] != '\0' && !isspace((unsigned char)p->s[n]) &&
           (p->s[n] != ')' || depth > 0)) {
        depth += p->s[n] == '(';
        depth -= p->s[n] == ')';
        n++;
    }
    char op[64];
    snprintf(op, sizeof(op), "%.*s", (int)n, p->s);
    p->s += n;
    struct velo_expr *args[32];
    size_t na = 0;
    struct velo_datatype cast_type = {0, 0, 0};
    int is_cast = strcmp(op, "CAST") == 0 || strcmp(op, "TRYCAST") == 0;
    for (;;) {
        xp_ws(p);
        if (*p->s == ')') {
            p->s++;
            break;
        }
        if (*p->s == '\0' || na >= 32) {
            snprintf(p->err, sizeof(p->err), "unbalanced (%s", op);
            goto fail;
        }
        if (is_cast && na == 1) {
            size_t k = 0;
            int tdepth = 0;
            while (p->s[k] != '\0' && (p->s[k] != ')' || tdepth > 0)) {
                tdepth += p->s[k] == '(';
                tdepth -= p->s[k] == ')';
                k++;
            }
            char tname[64];
            snprintf(tname, sizeof(tname), "%.*s", (int)k, p->s);
            p->s += k;
            if (velo_type_parse(tname, &cast_type) != VELO_OK) {
                snprintf(p->err, sizeof(p->err), "bad type %s", tname);
                goto fail;
            }
            continue;
        }
        struct velo_expr *a = xp_expr(p);
        if (a == NULL) {
            goto fail;
        }
        args[na++] = a;
    }
    struct velo_datatype boolt = velo_type_of(VELO_TYPE_BOOLEAN);
    struct velo_expr *e = NULL;
    if (strcmp(op, "AND") == 0 || strcmp(op, "OR") == 0 ||
        strcmp(op, "NOT") == 0) {
        e = velo_expr_new(op[0] == 'A'   ? VELO_EXPR_AND
                          : op[0] == 'O' ? VELO_EXPR_OR
                                         : VELO_EXPR_NOT,
                          boolt, na);
    } else if (strcmp(op, "ISNULL") == 0 || strcmp(op, "ISNOTNULL") == 0) {
        e = velo_expr_new(VELO_EXPR_IS_NULL, boolt, na);
        e->u.negated = strcmp(op, "ISNOTNULL") == 0;
    } else if (strcmp(op, "CASE") == 0) {
        struct velo_expr *br[32];
        size_t nb = 0;
        for (size_t i = 1; i < na; i += 2) {
            br[nb++] = args[i];
        }
        if (na % 2 == 1) {
            br[nb++] = args[na - 1];
        }
        e = velo_expr_new(VELO_EXPR_CASE, xp_common(br, nb), na);
        e->u.has_else = na % 2 == 1;
    } else if (strcmp(op, "COALESCE") == 0) {
        e = velo_expr_new(VELO_EXPR_COALESCE, xp_common(args, na), na);
    } else if (strcmp(op, "IN") == 0 || strcmp(op, "NOTIN") == 0) {
        e = velo_expr_new(VELO_EXPR_IN_LIST, boolt, na);
        e->u.negated = op[0] == 'N';
    } else if (strcmp(op, "FIELD") == 0 || strncmp(op, "FIELD:", 6) == 0) {
        /* FIELD:TYPE gives the node a type (default JSON). */
        struct velo_datatype ft = velo_type_of(VELO_TYPE_JSON);
        if (op[5] == ':') {
            velo_type_parse(op + 6, &ft);
        }
        e = velo_expr_new(VELO_EXPR_FIELD, ft, 1);
        e->args[0] = args[0];
        e->u.path.n = na - 1;
        e->u.path.keys = calloc(na, sizeof(char *));
        for (size_t i = 1; i < na; i++) {
            e->u.path.keys[i - 1] = strdup(args[i]->u.literal.str);
            velo_expr_free(args[i]);
        }
        return e;
    } else if (is_cast) {
        e = velo_expr_new(VELO_EXPR_CAST, cast_type, na);
        e->u.cast.try_ = op[0] == 'T';
    } else {
        return xp_call(p, op, args, na);
    }
    for (size_t i = 0; i < na; i++) {
        e->args[i] = args[i];
    }
    return e;
fail:
    for (size_t i = 0; i < na; i++) {
        velo_expr_free(args[i]);
    }
    return NULL;
}

static inline struct velo_expr *xp_expr(struct xp *p)
{
    xp_ws(p);
    if (*p->s == '(') {
        return xp_list(p);
    }
    return xp_atom(p);
}

/* Build an expression; NULL with a message on stderr when it fails. */
static inline struct velo_expr *xparse(struct velo_funcs *funcs,
                                       const struct velo_schema *schema,
                                       const char *text)
{
    struct xp p = {text, funcs, schema, ""};
    struct velo_expr *e = xp_expr(&p);
    if (e == NULL) {
        fprintf(stderr, "cannot build '%s': %s\n", text, p.err);
        return NULL;
    }
    xp_ws(&p);
    if (*p.s != '\0') {
        fprintf(stderr, "trailing text in '%s'\n", text);
        velo_expr_free(e);
        return NULL;
    }
    e->text = strdup(text);
    return e;
}

/* Render row r of c: NULL, or the value's text. */
static inline void xrender(const struct velo_column *c, size_t r, char *buf,
                           size_t len)
{
    if (c->has_nulls && c->nulls[r]) {
        snprintf(buf, len, "NULL");
        return;
    }
    struct velo_arena *a = velo_arena_create(256);
    struct velo_str s;
    velo_value_text(c, r, a, &s);
    snprintf(buf, len, "%.*s", (int)s.len, s.ptr);
    velo_arena_destroy(a);
}

/* Evaluate `text` over row `row` of batch b (or a 1-row empty batch when b
 * is NULL) and render "value" or "ERR<code>: message". */
static inline void xeval_row(struct velo_funcs *funcs, struct velo_batch *b,
                             size_t row, const char *text, char *out,
                             size_t outlen)
{
    struct velo_schema empty = {0, NULL};
    struct velo_batch *own = NULL;
    if (b == NULL) {
        own = velo_batch_create(&empty, 4);
        own->nrows = 1;
        b = own;
    }
    struct velo_expr *e = xparse(funcs, b->schema, text);
    if (e == NULL) {
        snprintf(out, outlen, "BUILD-FAILED");
        velo_batch_destroy(own);
        return;
    }
    struct velo_evaluator *ev = velo_expr_compile(e, b->schema, b->cap);
    if (ev == NULL) {
        snprintf(out, outlen, "COMPILE-FAILED");
        velo_expr_free(e);
        velo_batch_destroy(own);
        return;
    }
    struct velo_eval_ctx ctx;
    velo_eval_ctx_init(&ctx, b->cap, 1);
    struct velo_arena *arena = velo_arena_create(1024);
    ctx.arena = arena;
    ctx.now_us = INT64_C(1700000000123456);
    const struct velo_column *c = velo_evaluate(ev, &ctx, b);
    if (ctx.row_error[row]) {
        snprintf(out, outlen, "ERR%d: %s", ctx.row_error[row],
                 velo_eval_row_msg(&ctx, row));
    } else {
        xrender(c, row, out, outlen);
    }
    velo_eval_ctx_free(&ctx);
    velo_arena_destroy(arena);
    velo_evaluator_destroy(ev);
    velo_expr_free(e);
    velo_batch_destroy(own);
}

struct xcase {
    const char *expr;
    const char *want; /* exact text, or "ERR<code>" prefix, or "~prefix" */
};

/* Run a table of constant cases; returns failures. */
static inline int xrun_cases(struct velo_funcs *funcs,
                             const struct xcase *cases, size_t n)
{
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        char got[512];
        xeval_row(funcs, NULL, 0, cases[i].expr, got, sizeof(got));
        const char *want = cases[i].want;
        int ok;
        if (strncmp(want, "ERR", 3) == 0 || want[0] == '~') {
            const char *pre = want[0] == '~' ? want + 1 : want;
            ok = strncmp(got, pre, strlen(pre)) == 0;
        } else {
            ok = strcmp(got, want) == 0;
        }
        if (!ok) {
            fprintf(stderr, "  case %s: got [%s] want [%s]\n", cases[i].expr,
                    got, want);
            failed++;
        }
        CU_ASSERT(ok);
    }
    return failed;
}

/* ---- Batches ------------------------------------------------------------ */

/* Schema from "name:TYPE;name:TYPE" (types as velo_type_parse reads;
 * names starting with _ are hidden). */
static inline struct velo_schema *xschema(const char *spec)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", spec);
    size_t n = 1;
    for (const char *q = buf; *q; q++) {
        n += *q == ';';
    }
    struct velo_schema *s = velo_schema_create(n);
    char *save = NULL;
    size_t i = 0;
    for (char *f = strtok_r(buf, ";", &save); f != NULL;
         f = strtok_r(NULL, ";", &save)) {
        char *colon = strchr(f, ':');
        *colon = '\0';
        struct velo_datatype t;
        velo_type_parse(colon + 1, &t);
        velo_schema_set(s, i++, f, t, 1, f[0] == '_');
    }
    return s;
}

static inline void xset_i64(struct velo_batch *b, size_t c, size_t r,
                            int64_t v)
{
    b->cols[c].v.i64[r] = v;
    b->cols[c].nulls[r] = 0;
}

static inline void xset_f64(struct velo_batch *b, size_t c, size_t r,
                            double v)
{
    b->cols[c].v.f64[r] = v;
    b->cols[c].nulls[r] = 0;
}

static inline void xset_str(struct velo_batch *b, size_t c, size_t r,
                            const char *s)
{
    b->cols[c].v.str[r].ptr = velo_arena_strdup(b->arena, s, strlen(s));
    b->cols[c].v.str[r].len = strlen(s);
    b->cols[c].nulls[r] = 0;
}

static inline void xset_null(struct velo_batch *b, size_t c, size_t r)
{
    b->cols[c].nulls[r] = 1;
    b->cols[c].has_nulls = 1;
}

/* An environment that records what operators report. */
struct xenv {
    struct velo_exec_env env;
    int errors, late;
    int last_code;
    char last_msg[256];
    struct velo_row_origin last_origin;
    int64_t last_late_t, last_late_wm;
};

static inline void xenv_on_error(void *arg, const struct velo_op *op,
                                 const struct velo_row_origin *o, int code,
                                 const char *msg)
{
    struct xenv *x = arg;
    x->errors++;
    x->last_code = code;
    x->last_origin = *o;
    snprintf(x->last_msg, sizeof(x->last_msg), "%s", msg);
}

static inline void xenv_on_late(void *arg, const struct velo_op *op,
                                const struct velo_row_origin *o, int64_t t,
                                int64_t wm)
{
    struct xenv *x = arg;
    x->late++;
    x->last_late_t = t;
    x->last_late_wm = wm;
    x->last_origin = *o;
}

static inline int64_t xenv_now(void)
{
    return INT64_C(1700000000000000);
}

static inline void xenv_init(struct xenv *x, struct velo_funcs *funcs,
                             size_t cap)
{
    memset(x, 0, sizeof(*x));
    x->env.funcs = funcs;
    x->env.batch_cap = cap;
    x->env.on_row_error = xenv_on_error;
    x->env.on_late_row = xenv_on_late;
    x->env.cb_arg = x;
    x->env.now_us = xenv_now;
}

/* A sink that renders every row it receives as one line of text:
 * "v1|v2|...[ op]" (hidden columns included, op marks when present).
 * With ts_unit set, TIMESTAMP values are written as whole multiples of it
 * (e.g. seconds) instead of ISO text. */
struct xsink {
    char *text;
    size_t len, cap;
    size_t rows;
    int finished;
    int64_t ts_unit;
};

/* Render row r of b as "v1|v2|..." into line (len bytes); with ts_unit > 0
 * TIMESTAMP values as whole multiples of it. @return the length. */
static inline size_t xrender_row(const struct velo_batch *b, size_t r,
                                 int64_t ts_unit, char *line, size_t len)
{
    size_t used = 0;
    line[0] = '\0';
    for (size_t c = 0; c < b->ncols && used < len; c++) {
        char v[256];
        const struct velo_column *col = &b->cols[c];
        if (ts_unit > 0 && col->type.id == VELO_TYPE_TIMESTAMP &&
            !(col->has_nulls && col->nulls[r])) {
            snprintf(v, sizeof(v), "%lld",
                     (long long)(col->v.i64[r] / ts_unit));
        } else {
            xrender(col, r, v, sizeof(v));
        }
        used += (size_t)snprintf(line + used, len - used, "%s%s",
                                 c ? "|" : "", v);
    }
    return used;
}

static inline int xsink_fn(void *arg, struct velo_batch *b)
{
    struct xsink *s = arg;
    size_t n = velo_batch_live(b);
    for (size_t i = 0; i < n; i++) {
        size_t r = b->sel != NULL ? b->sel[i] : i;
        char line[1024];
        size_t used = xrender_row(b, r, s->ts_unit, line, sizeof(line));
        if (b->op != NULL) {
            used += (size_t)snprintf(line + used, sizeof(line) - used, " %s",
                                     b->op[r] == VELO_ROW_INSERT   ? "+I"
                                     : b->op[r] == VELO_ROW_UPDATE ? "+U"
                                                                   : "-D");
        }
        used += (size_t)snprintf(line + used, sizeof(line) - used, "\n");
        if (s->len + used + 1 > s->cap) {
            s->cap = (s->len + used + 1) * 2;
            s->text = realloc(s->text, s->cap);
        }
        memcpy(s->text + s->len, line, used + 1);
        s->len += used;
        s->rows++;
    }
    return VELO_OK;
}

static inline int xsink_finish(void *arg)
{
    ((struct xsink *)arg)->finished++;
    return VELO_OK;
}

static inline const char *xsink_text(struct xsink *s)
{
    return s->text != NULL ? s->text : "";
}

static inline void xsink_reset(struct xsink *s)
{
    s->len = 0;
    s->rows = 0;
    if (s->text != NULL) {
        s->text[0] = '\0';
    }
}

/* ---- Operators under test ------------------------------------------------ */

/* An aggregate call as the binder builds it: arguments parsed over s and
 * cast as the resolved aggregate asks; NULL arg/arg2/filter: none. */
static inline struct velo_agg_call xagg(struct velo_funcs *funcs,
                                        const struct velo_schema *s,
                                        const char *name, const char *arg,
                                        const char *arg2, const char *filter,
                                        int distinct, const char *out)
{
    struct velo_agg_call c;
    memset(&c, 0, sizeof(c));
    struct velo_datatype at[2] = {{0, 0, 0}, {0, 0, 0}}, cast[2];
    if (arg != NULL) {
        c.args[c.nargs++] = xparse(funcs, s, arg);
    }
    if (arg2 != NULL) {
        c.args[c.nargs++] = xparse(funcs, s, arg2);
    }
    for (size_t i = 0; i < c.nargs; i++) {
        at[i] = c.args[i]->type;
    }
    int known;
    c.agg = velo_funcs_resolve_agg(funcs, name, at, c.nargs, cast, &known);
    if (c.agg == NULL) {
        fprintf(stderr, "no aggregate %s/%zu\n", name, c.nargs);
    }
    for (size_t i = 0; c.agg != NULL && i < c.nargs; i++) {
        if (cast[i].id != 0) {
            c.args[i] = xp_wrap_cast(c.args[i], cast[i]);
        }
    }
    if (filter != NULL) {
        c.filter = xparse(funcs, s, filter);
    }
    c.distinct = distinct;
    c.name = out;
    return c;
}

/* One operator fed batches of `in` (b) whose output an xsink renders. */
struct xrig {
    struct xenv x;
    struct velo_schema *in;
    struct velo_op *op;
    struct velo_op *sink;
    struct xsink out;
    struct velo_batch *b;
};

/* Once r->op is built: attach the sink, create the input batch. */
static inline void xrig_attach(struct xrig *r)
{
    memset(&r->out, 0, sizeof(r->out));
    r->sink = velo_op_callback(&r->x.env, r->op->out_schema, xsink_fn,
                               xsink_finish, &r->out, "test");
    velo_op_connect(r->op, r->sink);
    r->b = velo_batch_create(r->in, r->x.env.batch_cap);
}

static inline void xrig_free(struct xrig *r)
{
    velo_op_destroy(r->op);
    velo_op_destroy(r->sink);
    velo_batch_destroy(r->b);
    velo_schema_destroy(r->in);
    free(r->out.text);
}

/* Push the rig's batch and empty it for the next rows. */
static inline void xrig_push(struct xrig *r)
{
    CU_ASSERT_EQUAL(velo_op_push(r->op, r->b), VELO_OK);
    velo_batch_reset(r->b);
}

#endif /* VELO_TEST_EXECTEST_H */
