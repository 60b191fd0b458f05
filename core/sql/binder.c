/*
 * The binder for expressions: AST -> typed velo_expr trees.
 *
 * Names resolve case-insensitively against the input schema (qualified by
 * the source's name or alias when written a.b); functions and operators
 * resolve through the registry, which names the implicit casts to insert.
 *
 * Aggregate queries bind in two modes. GROUP BY keys and the arguments of
 * aggregate calls bind over the input rows (BIND_ROW); the SELECT list,
 * HAVING and ORDER BY bind over the aggregate's output (BIND_AGG), where a
 * subexpression equal to a GROUP BY key (compared by canonical text, so
 * "t.symbol" matches "symbol") becomes a reference to that key, an
 * aggregate call becomes a reference to its result, and any other column
 * is an error naming it.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "formats/format.h"
#include "sql/bind.h"

/* ---- Errors and small helpers ------------------------------------------ */

void bind_error(struct binder *b, struct sql_pos pos, const char *code,
                const char *hint, const char *fmt, ...)
{
    if (b->quiet) {
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sql_diag(b->diags, b->t, pos, SQL_ERROR, code, hint, "%s", msg);
}

static void bind_warning(struct binder *b, struct sql_pos pos,
                         const char *code, const char *hint, const char *msg)
{
    if (!b->quiet) {
        sql_diag(b->diags, b->t, pos, SQL_WARNING, code, hint, "%s", msg);
    }
}

const char *type_name(struct velo_datatype t, char *buf, size_t len)
{
    if (t.id == VELO_TYPE_NULL) {
        snprintf(buf, len, "NULL");
        return buf;
    }
    return velo_type_name(t, buf, len);
}

char *span_text(const struct sql_text *t, struct sql_pos pos)
{
    size_t n = pos.len;
    if (pos.off > t->len) {
        return strdup("");
    }
    if (pos.off + n > t->len) {
        n = t->len - pos.off;
    }
    struct sql_buf b = {0};
    int space = 0;
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        char c = t->text[pos.off + i];
        if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
            space = 1;
            continue;
        }
        if (space && b.len > 0) {
            sql_buf_add(&b, " ", 1);
        }
        space = 0;
        if (shown++ >= 200) {
            sql_buf_puts(&b, "...");
            break;
        }
        sql_buf_add(&b, &c, 1);
    }
    return sql_buf_take(&b);
}

void schema_names(const struct velo_schema *s, struct sql_buf *out,
                  int with_types)
{
    size_t shown = 0;
    for (size_t i = 0; s != NULL && i < s->n; i++) {
        if (s->fields[i].hidden) {
            continue;
        }
        if (shown++ > 0) {
            sql_buf_puts(out, ", ");
        }
        sql_buf_puts(out, s->fields[i].name);
        if (with_types) {
            char tb[40];
            sql_buf_printf(out, " %s",
                           type_name(s->fields[i].type, tb, sizeof(tb)));
        }
    }
}

static struct velo_expr *node(struct binder *b, int kind,
                              struct velo_datatype type, size_t nargs,
                              struct sql_pos pos)
{
    struct velo_expr *e = velo_expr_new(kind, type, nargs);
    if (e == NULL) {
        bind_error(b, pos, "V5098", NULL, "out of memory");
        return NULL;
    }
    sql_text_linecol(b->t, pos.off, &e->line, &e->col);
    return e;
}

static void set_text(struct binder *b, struct velo_expr *e,
                     struct sql_pos pos)
{
    if (e != NULL && e->text == NULL) {
        e->text = span_text(b->t, pos);
    }
}

static void free_exprs(struct velo_expr **a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        velo_expr_free(a[i]);
        a[i] = NULL;
    }
}

static struct velo_datatype T(int id)
{
    return velo_type_of(id);
}

static int is_null_type(struct velo_datatype t)
{
    return t.id == VELO_TYPE_NULL;
}

static struct velo_expr *lit_i64(struct binder *b, struct velo_datatype type,
                                 int64_t v, struct sql_pos pos)
{
    struct velo_expr *e = node(b, VELO_EXPR_LITERAL, type, 0, pos);
    if (e != NULL) {
        e->u.literal.i64 = v;
    }
    return e;
}

static struct velo_expr *lit_null(struct binder *b, struct velo_datatype type,
                                  struct sql_pos pos)
{
    struct velo_expr *e = node(b, VELO_EXPR_LITERAL, type, 0, pos);
    if (e != NULL) {
        e->u.literal.is_null = 1;
    }
    return e;
}

static struct velo_expr *lit_str(struct binder *b, const char *s,
                                 struct sql_pos pos)
{
    struct velo_expr *e = node(b, VELO_EXPR_LITERAL, T(VELO_TYPE_STRING), 0,
                               pos);
    if (e == NULL) {
        return NULL;
    }
    size_t n = strlen(s);
    e->u.literal.str = malloc(n + 1);
    if (e->u.literal.str == NULL) {
        velo_expr_free(e);
        bind_error(b, pos, "V5098", NULL, "out of memory");
        return NULL;
    }
    memcpy(e->u.literal.str, s, n + 1);
    e->u.literal.len = n;
    return e;
}

struct velo_expr *cast_to(struct velo_expr *e, struct velo_datatype type)
{
    if (e == NULL) {
        return NULL;
    }
    if (velo_type_equal(e->type, type)) {
        return e;
    }
    if (e->kind == VELO_EXPR_LITERAL && e->u.literal.is_null) {
        e->type = type;
        return e;
    }
    struct velo_expr *c = velo_expr_new(VELO_EXPR_CAST, type, 1);
    if (c == NULL) {
        velo_expr_free(e);
        return NULL;
    }
    c->args[0] = e;
    c->line = e->line;
    c->col = e->col;
    if (e->text != NULL) {
        c->text = strdup(e->text);
    }
    return c;
}

/* ---- Canonical text ----------------------------------------------------- */

static void canon_str(struct sql_buf *o, const char *s, size_t n)
{
    sql_buf_add(o, "'", 1);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\'') {
            sql_buf_add(o, "'", 1);
        }
        sql_buf_add(o, &s[i], 1);
    }
    sql_buf_add(o, "'", 1);
}

void canon_expr(const struct velo_expr *e, struct sql_buf *o)
{
    char tb[48];
    if (e == NULL) {
        sql_buf_puts(o, "?");
        return;
    }
    switch (e->kind) {
    case VELO_EXPR_COLUMN:
        sql_buf_printf(o, "$%d", e->u.column);
        return;
    case VELO_EXPR_LITERAL: {
        const struct velo_literal *l = &e->u.literal;
        sql_buf_printf(o, "%s:", type_name(e->type, tb, sizeof(tb)));
        if (l->is_null) {
            sql_buf_puts(o, "NULL");
        } else if (e->type.id == VELO_TYPE_DOUBLE) {
            sql_buf_printf(o, "%.17g", l->f64);
        } else if (l->str != NULL) {
            canon_str(o, l->str, l->len);
        } else {
            sql_buf_printf(o, "%" PRId64, l->i64);
        }
        return;
    }
    case VELO_EXPR_CALL:
        sql_buf_printf(o, "%s(",
                       e->u.call != NULL ? e->u.call->name : "?");
        break;
    case VELO_EXPR_CAST:
        sql_buf_printf(o, "%s<%s>(", e->u.cast.try_ ? "TRY_CAST" : "CAST",
                       type_name(e->type, tb, sizeof(tb)));
        break;
    case VELO_EXPR_AND: sql_buf_puts(o, "AND("); break;
    case VELO_EXPR_OR: sql_buf_puts(o, "OR("); break;
    case VELO_EXPR_NOT: sql_buf_puts(o, "NOT("); break;
    case VELO_EXPR_IS_NULL:
        sql_buf_puts(o, e->u.negated ? "IS_NOT_NULL(" : "IS_NULL(");
        break;
    case VELO_EXPR_CASE:
        sql_buf_printf(o, "CASE%s<%s>(", e->u.has_else ? "_ELSE" : "",
                       type_name(e->type, tb, sizeof(tb)));
        break;
    case VELO_EXPR_COALESCE:
        sql_buf_printf(o, "COALESCE<%s>(",
                       type_name(e->type, tb, sizeof(tb)));
        break;
    case VELO_EXPR_IN_LIST:
        sql_buf_puts(o, e->u.negated ? "NOT_IN(" : "IN(");
        break;
    case VELO_EXPR_FIELD:
        sql_buf_printf(o, "FIELD<%s>(", type_name(e->type, tb, sizeof(tb)));
        for (size_t i = 0; i < e->u.path.n; i++) {
            canon_str(o, e->u.path.keys[i], strlen(e->u.path.keys[i]));
            sql_buf_add(o, ",", 1);
        }
        break;
    default:
        sql_buf_printf(o, "K%d(", e->kind);
        break;
    }
    for (size_t i = 0; i < e->nargs; i++) {
        if (i > 0) {
            sql_buf_add(o, ",", 1);
        }
        canon_expr(e->args[i], o);
    }
    sql_buf_add(o, ")", 1);
}

char *canon_dup(const struct velo_expr *e)
{
    struct sql_buf b = {0};
    canon_expr(e, &b);
    return sql_buf_take(&b);
}

void agg_state_free(struct agg_state *a)
{
    for (size_t i = 0; i < a->nkeys; i++) {
        velo_expr_free(a->keys[i].expr);
        free(a->keys[i].canon);
        free(a->keys[i].name);
    }
    free(a->keys);
    for (size_t i = 0; i < a->naggs; i++) {
        free_exprs(a->aggs[i].args, a->aggs[i].nargs);
        velo_expr_free(a->aggs[i].filter);
        free(a->aggs[i].canon);
        free(a->aggs[i].name);
    }
    free(a->aggs);
    memset(a, 0, sizeof(*a));
}

/* ---- Types -------------------------------------------------------------- */

struct type_alias {
    const char *name;
    int id;
};

static const struct type_alias type_aliases[] = {
    {"BOOLEAN", VELO_TYPE_BOOLEAN},  {"BOOL", VELO_TYPE_BOOLEAN},
    {"INTEGER", VELO_TYPE_INTEGER},  {"INT", VELO_TYPE_INTEGER},
    {"INT4", VELO_TYPE_INTEGER},     {"SMALLINT", VELO_TYPE_INTEGER},
    {"TINYINT", VELO_TYPE_INTEGER},  {"BIGINT", VELO_TYPE_BIGINT},
    {"INT8", VELO_TYPE_BIGINT},      {"LONG", VELO_TYPE_BIGINT},
    {"DOUBLE", VELO_TYPE_DOUBLE},    {"FLOAT", VELO_TYPE_DOUBLE},
    {"FLOAT8", VELO_TYPE_DOUBLE},    {"REAL", VELO_TYPE_DOUBLE},
    {"DECIMAL", VELO_TYPE_DECIMAL},  {"NUMERIC", VELO_TYPE_DECIMAL},
    {"DEC", VELO_TYPE_DECIMAL},      {"STRING", VELO_TYPE_STRING},
    {"VARCHAR", VELO_TYPE_STRING},   {"TEXT", VELO_TYPE_STRING},
    {"CHAR", VELO_TYPE_STRING},      {"CHARACTER", VELO_TYPE_STRING},
    {"TIMESTAMP", VELO_TYPE_TIMESTAMP},
    {"DATETIME", VELO_TYPE_TIMESTAMP},
    {"TIMESTAMPTZ", VELO_TYPE_TIMESTAMP},
    {"DATE", VELO_TYPE_DATE},        {"INTERVAL", VELO_TYPE_INTERVAL},
    {"BYTES", VELO_TYPE_BYTES},      {"VARBINARY", VELO_TYPE_BYTES},
    {"BINARY", VELO_TYPE_BYTES},     {"BLOB", VELO_TYPE_BYTES},
    {"BYTEA", VELO_TYPE_BYTES},      {"JSON", VELO_TYPE_JSON},
    {"JSONB", VELO_TYPE_JSON},
};

int resolve_type(struct binder *b, const struct ast_type *ty,
                 struct velo_datatype *out)
{
    size_t n = sizeof(type_aliases) / sizeof(*type_aliases);
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(type_aliases[i].name, ty->name) != 0) {
            continue;
        }
        int id = type_aliases[i].id;
        if (id != VELO_TYPE_DECIMAL) {
            *out = velo_type_of(id);
            return 0;
        }
        int64_t p = ty->nparams >= 1 ? ty->params[0] : 18;
        int64_t s = ty->nparams >= 2 ? ty->params[1] : 0;
        if (ty->nparams > 2 || p < 1 || p > VELO_DECIMAL_MAX_PRECISION ||
            s < 0 || s > p) {
            bind_error(b, ty->pos, "V4010",
                       "write DECIMAL(p,s) with 1 <= p <= 18 and 0 <= s <= "
                       "p, e.g. DECIMAL(12,2); for larger numbers use DOUBLE",
                       "invalid DECIMAL(%" PRId64 ",%" PRId64 "): precision "
                       "is 1 to 18 digits and scale 0 to the precision",
                       p, s);
            return -1;
        }
        *out = velo_type_decimal((int)p, (int)s);
        return 0;
    }
    const char *cands[] = {"BOOLEAN",   "INTEGER", "BIGINT",   "DOUBLE",
                           "DECIMAL",   "STRING",  "VARCHAR",  "TIMESTAMP",
                           "DATE",      "INTERVAL", "BYTES",   "JSON"};
    const char *sug =
        sql_suggest(ty->name, cands, sizeof(cands) / sizeof(*cands));
    char hint[160];
    if (sug != NULL) {
        snprintf(hint, sizeof(hint), "did you mean %s?", sug);
    } else {
        snprintf(hint, sizeof(hint),
                 "types are BOOLEAN, INTEGER, BIGINT, DOUBLE, DECIMAL(p,s), "
                 "STRING, TIMESTAMP, DATE, INTERVAL, BYTES, JSON");
    }
    bind_error(b, ty->pos, "V3006", hint, "unknown type '%s'", ty->name);
    return -1;
}

static int is_textual(int id)
{
    return id == VELO_TYPE_STRING || id == VELO_TYPE_JSON ||
           id == VELO_TYPE_BYTES;
}

int cast_allowed(struct velo_datatype from, struct velo_datatype to)
{
    int f = from.id, t = to.id;
    if (f == VELO_TYPE_NULL || f == t) {
        return 1;
    }
    if (t == VELO_TYPE_STRING || f == VELO_TYPE_STRING) {
        return 1; /* text form, or parsing (a bad value fails per row) */
    }
    int fnum = velo_type_is_numeric(from), tnum = velo_type_is_numeric(to);
    if (fnum && tnum) {
        return 1;
    }
    if ((f == VELO_TYPE_BOOLEAN && (t == VELO_TYPE_INTEGER ||
                                    t == VELO_TYPE_BIGINT)) ||
        (t == VELO_TYPE_BOOLEAN && (f == VELO_TYPE_INTEGER ||
                                    f == VELO_TYPE_BIGINT))) {
        return 1;
    }
    if ((f == VELO_TYPE_DATE && t == VELO_TYPE_TIMESTAMP) ||
        (f == VELO_TYPE_TIMESTAMP && t == VELO_TYPE_DATE)) {
        return 1;
    }
    if (is_textual(f) && is_textual(t)) {
        return 1;
    }
    return 0;
}

/* The type both a and b can be widened to, or id NULL with *ok = 0. */
static struct velo_datatype common_type(struct velo_datatype a,
                                        struct velo_datatype b, int *ok)
{
    *ok = 1;
    if (a.id == VELO_TYPE_NULL) {
        return b;
    }
    if (b.id == VELO_TYPE_NULL || velo_type_equal(a, b)) {
        return a;
    }
    if (a.id == VELO_TYPE_DECIMAL && b.id == VELO_TYPE_DECIMAL) {
        int s = a.scale > b.scale ? a.scale : b.scale;
        int ia = a.precision - a.scale, ib = b.precision - b.scale;
        int p = (ia > ib ? ia : ib) + s;
        if (p > VELO_DECIMAL_MAX_PRECISION) {
            p = VELO_DECIMAL_MAX_PRECISION;
        }
        return velo_type_decimal(p, s);
    }
    if (velo_type_is_numeric(a) && velo_type_is_numeric(b)) {
        if (a.id == VELO_TYPE_DOUBLE || b.id == VELO_TYPE_DOUBLE) {
            return T(VELO_TYPE_DOUBLE);
        }
        if (a.id == VELO_TYPE_DECIMAL || b.id == VELO_TYPE_DECIMAL) {
            struct velo_datatype d = a.id == VELO_TYPE_DECIMAL ? a : b;
            /* An integer needs up to 18 digits before the point. */
            return velo_type_decimal(VELO_DECIMAL_MAX_PRECISION, d.scale);
        }
        return T(VELO_TYPE_BIGINT); /* INTEGER with BIGINT */
    }
    if ((a.id == VELO_TYPE_DATE && b.id == VELO_TYPE_TIMESTAMP) ||
        (a.id == VELO_TYPE_TIMESTAMP && b.id == VELO_TYPE_DATE)) {
        return T(VELO_TYPE_TIMESTAMP);
    }
    if ((a.id == VELO_TYPE_JSON && b.id == VELO_TYPE_STRING) ||
        (a.id == VELO_TYPE_STRING && b.id == VELO_TYPE_JSON)) {
        return T(VELO_TYPE_STRING);
    }
    *ok = 0;
    return T(VELO_TYPE_NULL);
}

/* ---- Literals ----------------------------------------------------------- */

static struct velo_expr *bind_integer(struct binder *b, const char *text,
                                      int neg, struct sql_pos pos)
{
    uint64_t v = 0;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (const char *p = text; *p; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (limit - d) / 10) {
            bind_error(b, pos, "V4010",
                       "BIGINT holds -9223372036854775808 to "
                       "9223372036854775807; write a larger number as a "
                       "DOUBLE (1e19)",
                       "integer literal %s%s is out of range", neg ? "-" : "",
                       text);
            return NULL;
        }
        v = v * 10 + d;
    }
    int64_t s;
    if (neg) {
        s = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        s = (int64_t)v;
    }
    int id = s >= INT32_MIN && s <= INT32_MAX ? VELO_TYPE_INTEGER
                                              : VELO_TYPE_BIGINT;
    return lit_i64(b, T(id), s, pos);
}

static struct velo_expr *bind_decimal(struct binder *b, const char *text,
                                      int neg, struct sql_pos pos)
{
    int64_t v = 0;
    int digits = 0, scale = 0, after = 0;
    for (const char *p = text; *p; p++) {
        if (*p == '.') {
            after = 1;
            continue;
        }
        if (after) {
            scale++;
        }
        if (digits == 0 && *p == '0') {
            continue; /* leading zeros carry no precision */
        }
        if (++digits > VELO_DECIMAL_MAX_PRECISION) {
            bind_error(b, pos, "V4010",
                       "DECIMAL holds up to 18 digits; write it as a DOUBLE "
                       "(with an exponent: 1.5e0) or with fewer digits",
                       "decimal literal %s has more than 18 digits", text);
            return NULL;
        }
        v = v * 10 + (*p - '0');
    }
    int precision = digits > scale ? digits : scale;
    if (precision < 1) {
        precision = 1;
    }
    if (precision > VELO_DECIMAL_MAX_PRECISION) {
        bind_error(b, pos, "V4010",
                   "DECIMAL holds up to 18 digits; write it as a DOUBLE",
                   "decimal literal %s has more than 18 digits", text);
        return NULL;
    }
    return lit_i64(b, velo_type_decimal(precision, scale), neg ? -v : v, pos);
}

static struct velo_expr *bind_float(struct binder *b, const char *text,
                                    int neg, struct sql_pos pos)
{
    char *end;
    errno = 0;
    double d = strtod(text, &end);
    if (!isfinite(d) || errno == ERANGE) {
        bind_error(b, pos, "V4010", "a DOUBLE holds about 1.8e308 at most",
                   "number %s is out of range", text);
        return NULL;
    }
    struct velo_expr *e = node(b, VELO_EXPR_LITERAL, T(VELO_TYPE_DOUBLE), 0,
                               pos);
    if (e != NULL) {
        e->u.literal.f64 = neg ? -d : d;
    }
    return e;
}

/* @return unit length in microseconds, 0 unknown, -1 month/year. */
static int64_t unit_us(const char *s, size_t n)
{
    int64_t us = velo_interval_unit_us(s, n);
    if (us != 0) {
        return us;
    }
    if ((n >= 5 && strncasecmp(s, "month", 5) == 0) ||
        (n >= 4 && strncasecmp(s, "year", 4) == 0)) {
        return -1;
    }
    return 0;
}

/* One "<number><unit>" amount. @return VELO_OK, VELO_ERR, or -2 for a
 * calendar unit (month, year). */
static int amount_us(const char *num, size_t nlen, int64_t unit, int64_t *out)
{
    char buf[64];
    if (nlen == 0 || nlen >= sizeof(buf)) {
        return VELO_ERR;
    }
    memcpy(buf, num, nlen);
    buf[nlen] = '\0';
    char *end;
    double v = strtod(buf, &end);
    if (*end != '\0' || !isfinite(v)) {
        return VELO_ERR;
    }
    double r = v * (double)unit;
    if (fabs(r) > 9.2e18) {
        return VELO_ERR;
    }
    *out = (int64_t)llround(r);
    return VELO_OK;
}

int interval_parse(const char *text, const char *unit, int64_t *us)
{
    if (unit != NULL) {
        int64_t u = unit_us(unit, strlen(unit));
        if (u < 0) {
            return -2;
        }
        if (u == 0) {
            return VELO_ERR;
        }
        const char *s = text;
        while (*s == ' ') {
            s++;
        }
        size_t n = strlen(s);
        while (n > 0 && s[n - 1] == ' ') {
            n--;
        }
        return amount_us(s, n, u, us);
    }
    /* '5 minutes', '1h30m', '2 days 3 hours', '-90s' */
    const char *p = text;
    int64_t total = 0;
    int parts = 0;
    for (;;) {
        while (*p == ' ') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        const char *ns = p;
        if (*p == '-' || *p == '+') {
            p++;
        }
        while (isdigit((unsigned char)*p) || *p == '.') {
            p++;
        }
        size_t nlen = (size_t)(p - ns);
        while (*p == ' ') {
            p++;
        }
        const char *us0 = p;
        while (isalpha((unsigned char)*p)) {
            p++;
        }
        size_t ulen = (size_t)(p - us0);
        if (nlen == 0 || ulen == 0) {
            return VELO_ERR;
        }
        int64_t u = unit_us(us0, ulen);
        if (u < 0) {
            return -2;
        }
        if (u == 0) {
            return VELO_ERR;
        }
        int64_t v;
        if (amount_us(ns, nlen, u, &v) != VELO_OK) {
            return VELO_ERR;
        }
        if ((v > 0 && total > INT64_MAX - v) ||
            (v < 0 && total < INT64_MIN - v)) {
            return VELO_ERR;
        }
        total += v;
        parts++;
    }
    if (parts == 0) {
        return VELO_ERR;
    }
    *us = total;
    return VELO_OK;
}

static struct velo_expr *bind_interval(struct binder *b,
                                       const struct ast_expr *e, int neg)
{
    int64_t us;
    int rc = interval_parse(e->text, e->kind == AX_INTERVAL ? e->name : NULL,
                            &us);
    if (rc == -2) {
        bind_error(b, e->pos, "V4006",
                   "months and years have no fixed length; write days: "
                   "INTERVAL '30' DAY",
                   "MONTH and YEAR intervals are not supported");
        return NULL;
    }
    if (rc != VELO_OK) {
        bind_error(b, e->pos, "V4006",
                   "write INTERVAL '5' MINUTE, INTERVAL '1 hour' or "
                   "INTERVAL '1h30m' (units: ms, second, minute, hour, day, "
                   "week)",
                   "invalid interval '%s'", e->text);
        return NULL;
    }
    return lit_i64(b, T(VELO_TYPE_INTERVAL), neg ? -us : us, e->pos);
}

static struct velo_expr *bind_typed(struct binder *b, const struct ast_expr *e)
{
    const char *s = e->text;
    if (strcmp(e->name, "DATE") == 0) {
        int64_t days;
        if (velo_parse_date(s, strlen(s), &days) != VELO_OK) {
            bind_error(b, e->pos, "V4006",
                       "write a date as DATE 'YYYY-MM-DD', e.g. DATE "
                       "'2026-01-31'",
                       "invalid DATE literal '%s'", s);
            return NULL;
        }
        return lit_i64(b, T(VELO_TYPE_DATE), days, e->pos);
    }
    int64_t us;
    if (velo_parse_timestamp(s, strlen(s), &us) != VELO_OK) {
        bind_error(b, e->pos, "V4006",
                   "write a timestamp in ISO 8601, e.g. TIMESTAMP "
                   "'2026-01-31T12:00:00Z' or '2026-01-31 12:00:00.250'",
                   "invalid TIMESTAMP literal '%s'", s);
        return NULL;
    }
    return lit_i64(b, T(VELO_TYPE_TIMESTAMP), us, e->pos);
}

/* ---- Names -------------------------------------------------------------- */

static int qualifier_matches(const struct binder *b, const char *q)
{
    return (b->in.name != NULL && strcasecmp(b->in.name, q) == 0) ||
           (b->in.alias != NULL && strcasecmp(b->in.alias, q) == 0);
}

static struct velo_expr *colref(struct binder *b, int idx,
                                struct velo_datatype type, struct sql_pos pos)
{
    struct velo_expr *e = node(b, VELO_EXPR_COLUMN, type, 0, pos);
    if (e != NULL) {
        e->u.column = idx;
    }
    return e;
}

static int agg_offset(const struct binder *b)
{
    return b->agg != NULL && b->agg->windowed ? 2 : 0;
}

static struct velo_expr *key_ref(struct binder *b, size_t k,
                                 struct sql_pos pos)
{
    return colref(b, agg_offset(b) + (int)k, b->agg->keys[k].expr->type, pos);
}

/* The key whose canonical text is canon, or -1. */
static int find_key(const struct binder *b, const char *canon)
{
    for (size_t k = 0; b->agg != NULL && k < b->agg->nkeys; k++) {
        if (strcmp(b->agg->keys[k].canon, canon) == 0) {
            return (int)k;
        }
    }
    return -1;
}

struct velo_expr *bind_column(struct binder *b, int idx, struct sql_pos pos)
{
    const struct velo_field *f = &b->in.schema->fields[idx];
    if (b->mode == BIND_ROW) {
        if (b->in.needed != NULL) {
            b->in.needed[idx] = 1;
        }
        return colref(b, idx, f->type, pos);
    }
    char canon[24];
    snprintf(canon, sizeof(canon), "$%d", idx);
    int k = find_key(b, canon);
    if (k >= 0) {
        return key_ref(b, (size_t)k, pos);
    }
    char hint[256];
    snprintf(hint, sizeof(hint),
             "add it to GROUP BY, or aggregate it, e.g. MAX(%s) or "
             "LAST_VALUE(%s)",
             f->name, f->name);
    bind_error(b, pos, "V5002", hint,
               "column '%s' must appear in GROUP BY or be used in an "
               "aggregate function",
               f->name);
    return NULL;
}

static void unknown_column(struct binder *b, const struct sql_ident *id,
                           const char *qualifier)
{
    const struct velo_schema *s = b->in.schema;
    const char **cands = calloc(s->n + 1, sizeof(*cands));
    size_t n = 0;
    for (size_t i = 0; cands != NULL && i < s->n; i++) {
        cands[n++] = s->fields[i].name;
    }
    const char *sug = cands ? sql_suggest(id->name, cands, n) : NULL;
    free(cands);
    struct sql_buf hint = {0};
    for (size_t i = 0; i < b->nitems && sug == NULL; i++) {
        const struct sql_ident *al = &b->items[i].alias;
        if (al->name != NULL && strcasecmp(al->name, id->name) == 0) {
            sql_buf_printf(&hint, "'%s' is an alias of the SELECT list, "
                                  "which cannot be used here; repeat its "
                                  "expression",
                           al->name);
            break;
        }
    }
    if (hint.len == 0) {
        if (sug != NULL) {
            sql_buf_printf(&hint, "did you mean '%s'?", sug);
        } else {
            sql_buf_puts(&hint, "the columns are: ");
            schema_names(s, &hint, 0);
        }
    }
    const char *src = b->in.alias ? b->in.alias : b->in.name;
    if (qualifier != NULL) {
        bind_error(b, id->pos, "V3001", hint.data,
                   "unknown column '%s.%s'", qualifier, id->name);
    } else if (src != NULL) {
        bind_error(b, id->pos, "V3001", hint.data,
                   "unknown column '%s' in '%s'", id->name, src);
    } else {
        bind_error(b, id->pos, "V3001", hint.data, "unknown column '%s'",
                   id->name);
    }
    if (!b->quiet && sug != NULL) {
        struct sql_buf d = {0};
        sql_buf_puts(&d, "the columns are: ");
        schema_names(s, &d, 0);
        if (d.data != NULL) {
            sql_diag_detail(b->diags, "%s", d.data);
        }
        sql_buf_free(&d);
    }
    sql_buf_free(&hint);
}

static struct velo_expr *make_field(struct binder *b, struct velo_expr *base,
                                    const char *const *keys, size_t nkeys,
                                    struct sql_pos pos, struct sql_pos kpos)
{
    if (base == NULL) {
        return NULL;
    }
    if (base->type.id != VELO_TYPE_JSON &&
        base->type.id != VELO_TYPE_STRING) {
        char tb[40];
        bind_error(b, kpos, "V4008",
                   "fields are read from JSON objects (or JSON text in a "
                   "STRING column): meta.device, meta['device']",
                   "cannot read field '%s' of a %s value", keys[0],
                   type_name(base->type, tb, sizeof(tb)));
        velo_expr_free(base);
        return NULL;
    }
    struct velo_expr *f = base;
    if (base->kind != VELO_EXPR_FIELD) {
        f = node(b, VELO_EXPR_FIELD, T(VELO_TYPE_STRING), 1, pos);
        if (f == NULL) {
            velo_expr_free(base);
            return NULL;
        }
        f->args[0] = base;
    }
    char **nk = realloc(f->u.path.keys,
                        (f->u.path.n + nkeys) * sizeof(*nk));
    if (nk == NULL) {
        velo_expr_free(f);
        bind_error(b, pos, "V5098", NULL, "out of memory");
        return NULL;
    }
    f->u.path.keys = nk;
    for (size_t i = 0; i < nkeys; i++) {
        nk[f->u.path.n] = strdup(keys[i]);
        if (nk[f->u.path.n] == NULL) {
            velo_expr_free(f);
            bind_error(b, pos, "V5098", NULL, "out of memory");
            return NULL;
        }
        f->u.path.n++;
    }
    free(f->text);
    f->text = span_text(b->t, pos);
    return f;
}

/* Column col named by parts[first] of a name chain, and the JSON fields
 * after it (a.b.c: field b.c of column a). */
static struct velo_expr *bind_column_path(struct binder *b,
                                          const struct ast_expr *e, int col,
                                          size_t first)
{
    const struct sql_ident *parts = e->parts;
    size_t n = e->nparts;
    struct velo_expr *ref = bind_column(b, col, parts[first].pos);
    if (ref == NULL || first + 1 >= n) {
        return ref;
    }
    const char *keys[64];
    size_t nk = 0;
    for (size_t i = first + 1; i < n && nk < 64; i++) {
        keys[nk++] = parts[i].name;
    }
    return make_field(b, ref, keys, nk, e->pos, parts[first + 1].pos);
}

/* Column `name` among the visible columns of [first, first + n) of s, or
 * of the hidden system columns when none is visible. */
static int find_in_range(const struct velo_schema *s, size_t first, size_t n,
                         const char *name)
{
    int hidden = -1;
    for (size_t i = first; i < first + n && i < s->n; i++) {
        if (strcasecmp(s->fields[i].name, name) == 0) {
            if (!s->fields[i].hidden) {
                return (int)i;
            }
            if (hidden < 0) {
                hidden = (int)i;
            }
        }
    }
    return hidden;
}

static const struct bind_rel *rel_named(const struct binder *b,
                                        const char *q)
{
    for (size_t r = 0; r < b->in.nrels; r++) {
        const struct bind_rel *rel = &b->in.rels[r];
        if ((rel->alias != NULL && strcasecmp(rel->alias, q) == 0) ||
            (rel->alias == NULL && rel->name != NULL &&
             strcasecmp(rel->name, q) == 0)) {
            return rel;
        }
    }
    return NULL;
}

static void mark_needed(struct binder *b, int col)
{
    for (size_t r = 0; r < b->in.nrels; r++) {
        const struct bind_rel *rel = &b->in.rels[r];
        if ((size_t)col >= rel->first && (size_t)col < rel->first + rel->n &&
            rel->needed != NULL) {
            rel->needed[(size_t)col - rel->first] = 1;
        }
    }
}

/* Names over a join: t.col, or col when exactly one relation has it. */
static struct velo_expr *bind_join_name(struct binder *b,
                                        const struct ast_expr *e)
{
    const struct sql_ident *parts = e->parts;
    size_t n = e->nparts;
    const struct velo_schema *s = b->in.schema;
    const struct bind_rel *rel = n >= 2 ? rel_named(b, parts[0].name) : NULL;
    size_t first = rel != NULL ? 1 : 0;
    int col = -1;
    if (rel != NULL) {
        col = find_in_range(s, rel->first, rel->n, parts[1].name);
        if (col < 0) {
            unknown_column(b, &parts[1], parts[0].name);
            return NULL;
        }
    } else {
        const struct bind_rel *found = NULL;
        for (size_t r = 0; r < b->in.nrels; r++) {
            const struct bind_rel *x = &b->in.rels[r];
            int c = find_in_range(s, x->first, x->n, parts[0].name);
            if (c < 0) {
                continue;
            }
            if (col >= 0 && !s->fields[c].hidden &&
                !s->fields[col].hidden) {
                char hint[300];
                snprintf(hint, sizeof(hint),
                         "qualify it: %s.%s or %s.%s",
                         found->alias ? found->alias : found->name,
                         parts[0].name, x->alias ? x->alias : x->name,
                         parts[0].name);
                bind_error(b, parts[0].pos, "V3012", hint,
                           "column '%s' is ambiguous: both sides of the "
                           "join have it",
                           parts[0].name);
                return NULL;
            }
            if (col < 0 || (s->fields[col].hidden && !s->fields[c].hidden)) {
                col = c;
                found = x;
            }
        }
        if (col < 0) {
            /* Columns the join itself adds (a window join's
             * _window_start, _window_end) belong to no side. */
            for (size_t i = 0; i < s->n; i++) {
                int inside = 0;
                for (size_t r = 0; r < b->in.nrels; r++) {
                    inside |= i >= b->in.rels[r].first &&
                              i < b->in.rels[r].first + b->in.rels[r].n;
                }
                if (!inside && strcasecmp(s->fields[i].name,
                                          parts[0].name) == 0) {
                    col = (int)i;
                    break;
                }
            }
        }
        if (col < 0) {
            if (n >= 2) {
                const char *cands[32];
                size_t nc = 0;
                for (size_t r = 0; r < b->in.nrels && nc < 32; r++) {
                    const struct bind_rel *x = &b->in.rels[r];
                    cands[nc++] = x->alias ? x->alias : x->name;
                }
                const char *sug = sql_suggest(parts[0].name, cands, nc);
                char hint[300];
                snprintf(hint, sizeof(hint), "did you mean '%s'?",
                         sug != NULL ? sug : "");
                bind_error(b, parts[0].pos, "V3009",
                           sug != NULL ? hint : NULL,
                           "unknown source or alias '%s'", parts[0].name);
                return NULL;
            }
            unknown_column(b, &parts[0], NULL);
            return NULL;
        }
    }
    mark_needed(b, col);
    return bind_column_path(b, e, col, first);
}

static struct velo_expr *bind_name(struct binder *b, const struct ast_expr *e)
{
    if (b->in.nrels > 0) {
        return bind_join_name(b, e);
    }
    const struct sql_ident *parts = e->parts;
    size_t n = e->nparts;
    const struct velo_schema *s = b->in.schema;
    size_t first = 0;
    if (n >= 2 && qualifier_matches(b, parts[0].name) &&
        (velo_schema_find(s, parts[1].name) >= 0 ||
         velo_schema_find(s, parts[0].name) < 0)) {
        first = 1;
    }
    int col = velo_schema_find(s, parts[first].name);
    if (col < 0) {
        /* x.y where x is neither a column nor the source, but y is a
         * column: a misspelled qualifier. */
        if (first == 0 && n >= 2 && velo_schema_find(s, parts[1].name) >= 0) {
            const char *cands[2] = {b->in.name, b->in.alias};
            const char *sug = sql_suggest(parts[0].name, cands, 2);
            if (sug == NULL) {
                sug = b->in.alias != NULL ? b->in.alias : b->in.name;
            }
            char hint[300];
            snprintf(hint, sizeof(hint), "did you mean '%s'?",
                     sug != NULL ? sug : "");
            bind_error(b, parts[0].pos, "V3009", sug != NULL ? hint : NULL,
                       "unknown source or alias '%s'", parts[0].name);
            return NULL;
        }
        unknown_column(b, &parts[first], first ? parts[0].name : NULL);
        return NULL;
    }
    return bind_column_path(b, e, col, first);
}

/* HEADER('name'): the value of a message header, from the hidden
 * _headers JSON object of Kafka-like sources (NULL when absent). */
static struct velo_expr *bind_header(struct binder *b,
                                     const struct ast_expr *e)
{
    if (e->nargs != 1 || e->args[0]->kind != AX_STRING) {
        bind_error(b, e->pos, "V4003", "write HEADER('trace-id')",
                   "HEADER takes one header name as a string literal");
        return NULL;
    }
    int col = velo_schema_find(b->in.schema, VELO_COL_HEADERS);
    if (col < 0) {
        bind_error(b, e->pos, "V3001",
                   "headers come with message sources (Kafka, Redis "
                   "streams); files and stdin have none",
                   "this input has no message headers");
        return NULL;
    }
    if (b->mode == BIND_AGG) {
        bind_error(b, e->pos, "V5002",
                   "group by it (GROUP BY HEADER('x')) or aggregate it",
                   "HEADER(...) must appear in GROUP BY or be used in an "
                   "aggregate function");
        return NULL;
    }
    if (b->in.needed != NULL) {
        b->in.needed[col] = 1;
    }
    mark_needed(b, col);
    struct velo_expr *ref = colref(b, col, T(VELO_TYPE_JSON), e->pos);
    const char *keys[1] = {e->args[0]->text};
    return make_field(b, ref, keys, 1, e->pos, e->args[0]->pos);
}

/* a['k'], a[0], a['k'].b */
static struct velo_expr *bind_path(struct binder *b, const struct ast_expr *e)
{
    char key[64];
    const char *k;
    struct sql_pos kpos;
    if (e->kind == AX_FIELD) {
        k = e->name;
        kpos = e->name_pos;
    } else {
        const struct ast_expr *ke = e->args[1];
        kpos = ke->pos;
        if (ke->kind == AX_STRING) {
            k = ke->text;
        } else if (ke->kind == AX_INTEGER) {
            snprintf(key, sizeof(key), "%s", ke->text);
            k = key;
        } else {
            bind_error(b, ke->pos, "V4008",
                       "write the key as a literal: meta['device'] or "
                       "tags[0]",
                       "a field key must be a string or integer literal");
            return NULL;
        }
    }
    struct velo_expr *base = bind_expr(b, e->args[0]);
    if (base == NULL) {
        return NULL;
    }
    const char *keys[1] = {k};
    return make_field(b, base, keys, 1, e->pos, kpos);
}

/* ---- Calls and operators ------------------------------------------------ */

/* Resolve name(args) through the registry and build the call. On failure
 * returns NULL with args untouched and *known set. */
static struct velo_expr *resolve_call(struct binder *b, const char *name,
                                      struct velo_expr **args, size_t n,
                                      struct sql_pos pos, int *known)
{
    struct velo_datatype types[VELO_FUNC_MAX_ARGS + 8];
    struct velo_datatype casts[VELO_FUNC_MAX_ARGS + 8];
    if (n > sizeof(types) / sizeof(*types)) {
        *known = 1;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        types[i] = args[i]->type;
        memset(&casts[i], 0, sizeof(casts[i]));
    }
    *known = 0;
    const struct velo_func *f = velo_funcs_resolve(b->env->funcs, name, types,
                                                   n, casts, known);
    if (f == NULL) {
        return NULL;
    }
    struct velo_expr *c = node(b, VELO_EXPR_CALL, T(VELO_TYPE_NULL), n, pos);
    if (c == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        struct velo_expr *a = args[i];
        if (casts[i].id != VELO_TYPE_NULL) {
            a = cast_to(a, casts[i]);
            if (a == NULL) {
                /* Out of memory: everything is freed, args emptied. */
                args[i] = NULL;
                for (size_t j = i + 1; j < n; j++) {
                    velo_expr_free(args[j]);
                    args[j] = NULL;
                }
                velo_expr_free(c);
                *known = -1;
                bind_error(b, pos, "V5098", NULL, "out of memory");
                return NULL;
            }
        }
        args[i] = NULL;
        c->args[i] = a;
        types[i] = a->type;
    }
    c->u.call = f;
    c->type = f->ret_type != NULL ? f->ret_type(types, n) : f->ret;
    set_text(b, c, pos);
    return c;
}

static const char *op_name(int tok)
{
    switch (tok) {
    case TK_PLUS: return "+";
    case TK_MINUS: return "-";
    case TK_STAR: return "*";
    case TK_SLASH: return "/";
    case TK_PERCENT: return "%";
    case TK_CONCAT: return "||";
    case TK_EQ: return "=";
    case TK_NE: return "<>";
    case TK_LT: return "<";
    case TK_LE: return "<=";
    case TK_GT: return ">";
    case TK_GE: return ">=";
    default: return "?";
    }
}

static int is_comparison(const char *op)
{
    return strcmp(op, "=") == 0 || strcmp(op, "<>") == 0 ||
           strcmp(op, "<") == 0 || strcmp(op, "<=") == 0 ||
           strcmp(op, ">") == 0 || strcmp(op, ">=") == 0;
}

/* "cannot compare STRING with BIGINT" and friends. */
static void operator_error(struct binder *b, const char *op,
                           struct velo_expr *l, struct velo_expr *r,
                           struct sql_pos pos, struct sql_pos lpos,
                           struct sql_pos rpos)
{
    char lt[40], rt[40];
    type_name(l->type, lt, sizeof(lt));
    type_name(r != NULL ? r->type : T(VELO_TYPE_NULL), rt, sizeof(rt));
    char hint[400];
    if (r == NULL) {
        snprintf(hint, sizeof(hint), "'%s' negates numbers and intervals",
                 op);
        bind_error(b, pos, "V4002", hint,
                   "operator '%s' cannot be applied to %s", op, lt);
        return;
    }
    if (is_comparison(op)) {
        /* Suggest casting the text side to the other side's type. */
        char *txt = NULL;
        const char *to = NULL;
        if (l->type.id == VELO_TYPE_STRING && r->type.id != VELO_TYPE_STRING) {
            txt = span_text(b->t, lpos);
            to = rt;
        } else if (r->type.id == VELO_TYPE_STRING) {
            txt = span_text(b->t, rpos);
            to = lt;
        }
        if (txt != NULL) {
            snprintf(hint, sizeof(hint),
                     "compare values of one type, e.g. CAST(%s AS %s)", txt,
                     to);
        } else {
            snprintf(hint, sizeof(hint),
                     "compare values of one type: CAST(x AS type) converts "
                     "one side");
        }
        free(txt);
        bind_error(b, pos, "V4001", hint, "cannot compare %s with %s", lt,
                   rt);
        return;
    }
    if (strcmp(op, "+") == 0 && (l->type.id == VELO_TYPE_STRING ||
                                 r->type.id == VELO_TYPE_STRING)) {
        snprintf(hint, sizeof(hint),
                 "join strings with ||, e.g. a || b; convert text to a "
                 "number with CAST(x AS BIGINT)");
    } else {
        snprintf(hint, sizeof(hint),
                 "arithmetic works on numbers (and on TIMESTAMP with "
                 "INTERVAL); CAST(x AS type) converts a value");
    }
    bind_error(b, pos, "V4002", hint,
               "operator '%s' cannot be applied to %s and %s", op, lt, rt);
}

static struct velo_expr *binary_op(struct binder *b, const char *op,
                                   struct velo_expr *l, struct velo_expr *r,
                                   struct sql_pos pos, struct sql_pos lpos,
                                   struct sql_pos rpos)
{
    if (l == NULL || r == NULL) {
        velo_expr_free(l);
        velo_expr_free(r);
        return NULL;
    }
    struct velo_expr *args[2] = {l, r};
    int known;
    struct velo_expr *c = resolve_call(b, op, args, 2, pos, &known);
    if (c == NULL) {
        if (args[0] != NULL && args[1] != NULL) {
            operator_error(b, op, args[0], args[1], pos, lpos, rpos);
        }
        free_exprs(args, 2);
    }
    return c;
}

static struct velo_expr *bind_binary(struct binder *b,
                                     const struct ast_expr *e)
{
    struct velo_expr *l = bind_expr(b, e->args[0]);
    struct velo_expr *r = l != NULL ? bind_expr(b, e->args[1]) : NULL;
    return binary_op(b, op_name(e->op), l, r, e->pos, e->args[0]->pos,
                     e->args[1]->pos);
}

static struct velo_expr *bind_neg(struct binder *b, const struct ast_expr *e)
{
    const struct ast_expr *x = e->args[0];
    /* -5, -1.5, -1e3, -INTERVAL '5' MINUTE are literals. */
    switch (x->kind) {
    case AX_INTEGER:
        return bind_integer(b, x->text, 1, e->pos);
    case AX_DECIMAL:
        return bind_decimal(b, x->text, 1, e->pos);
    case AX_FLOAT:
        return bind_float(b, x->text, 1, e->pos);
    case AX_INTERVAL:
    case AX_DURATION:
        return bind_interval(b, x, 1);
    default:
        break;
    }
    struct velo_expr *v = bind_expr(b, x);
    if (v == NULL) {
        return NULL;
    }
    struct velo_expr *args[1] = {v};
    int known;
    struct velo_expr *c = resolve_call(b, "-", args, 1, e->pos, &known);
    if (c == NULL) {
        if (args[0] != NULL) {
            operator_error(b, "-", args[0], NULL, e->pos, x->pos, x->pos);
        }
        velo_expr_free(args[0]);
    }
    return c;
}

static struct velo_expr *require_bool(struct binder *b, struct velo_expr *v,
                                      const char *what, struct sql_pos pos)
{
    if (v == NULL) {
        return NULL;
    }
    if (v->type.id == VELO_TYPE_BOOLEAN) {
        return v;
    }
    if (is_null_type(v->type)) {
        return cast_to(v, T(VELO_TYPE_BOOLEAN));
    }
    char tb[40];
    char *txt = span_text(b->t, pos);
    char hint[400];
    snprintf(hint, sizeof(hint),
             "write a condition, e.g. %s <> 0, %s IS NOT NULL",
             txt ? txt : "x", txt ? txt : "x");
    free(txt);
    bind_error(b, pos, "V4004", hint, "%s must be BOOLEAN, not %s", what,
               type_name(v->type, tb, sizeof(tb)));
    velo_expr_free(v);
    return NULL;
}

struct velo_expr *bind_predicate(struct binder *b, const struct ast_expr *e,
                                 const char *clause)
{
    char what[64];
    snprintf(what, sizeof(what), "the condition of %s", clause);
    return require_bool(b, bind_expr(b, e), what, e->pos);
}

static struct velo_expr *bind_logic(struct binder *b,
                                    const struct ast_expr *e)
{
    int kind = e->kind == AX_AND ? VELO_EXPR_AND
               : e->kind == AX_OR ? VELO_EXPR_OR
                                  : VELO_EXPR_NOT;
    const char *what = e->kind == AX_AND ? "an operand of AND"
                       : e->kind == AX_OR ? "an operand of OR"
                                          : "the operand of NOT";
    struct velo_expr *r = node(b, kind, T(VELO_TYPE_BOOLEAN), e->nargs,
                               e->pos);
    if (r == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < e->nargs; i++) {
        r->args[i] = require_bool(b, bind_expr(b, e->args[i]), what,
                                  e->args[i]->pos);
        if (r->args[i] == NULL) {
            velo_expr_free(r);
            return NULL;
        }
    }
    return r;
}

static struct velo_expr *negate(struct binder *b, struct velo_expr *x,
                                struct sql_pos pos)
{
    if (x == NULL) {
        return NULL;
    }
    struct velo_expr *n = node(b, VELO_EXPR_NOT, T(VELO_TYPE_BOOLEAN), 1, pos);
    if (n == NULL) {
        velo_expr_free(x);
        return NULL;
    }
    n->args[0] = x;
    return n;
}

static struct velo_expr *bind_in(struct binder *b, const struct ast_expr *e)
{
    struct velo_expr *r = node(b, VELO_EXPR_IN_LIST, T(VELO_TYPE_BOOLEAN),
                               e->nargs, e->pos);
    if (r == NULL) {
        return NULL;
    }
    r->u.negated = e->negated;
    struct velo_datatype common = T(VELO_TYPE_NULL);
    for (size_t i = 0; i < e->nargs; i++) {
        r->args[i] = bind_expr(b, e->args[i]);
        if (r->args[i] == NULL) {
            velo_expr_free(r);
            return NULL;
        }
        int ok;
        struct velo_datatype c = common_type(common, r->args[i]->type, &ok);
        if (!ok) {
            char t1[40], t2[40];
            type_name(r->args[0]->type, t1, sizeof(t1));
            type_name(r->args[i]->type, t2, sizeof(t2));
            bind_error(b, e->args[i]->pos, "V4007",
                       "every value of an IN list must compare with the "
                       "left side: quote text ('a'), or CAST(x AS type)",
                       "IN list: cannot compare %s with %s", t1, t2);
            velo_expr_free(r);
            return NULL;
        }
        common = c;
    }
    if (is_null_type(common)) {
        common = T(VELO_TYPE_BOOLEAN);
    }
    for (size_t i = 0; i < e->nargs; i++) {
        r->args[i] = cast_to(r->args[i], common);
        if (r->args[i] == NULL) {
            velo_expr_free(r);
            bind_error(b, e->pos, "V5098", NULL, "out of memory");
            return NULL;
        }
    }
    return r;
}

static struct velo_expr *bind_between(struct binder *b,
                                      const struct ast_expr *e)
{
    struct velo_expr *x = bind_expr(b, e->args[0]);
    if (x == NULL) {
        return NULL;
    }
    struct velo_expr *x2 = velo_expr_clone(x);
    struct velo_expr *lo = bind_expr(b, e->args[1]);
    struct velo_expr *hi = lo != NULL ? bind_expr(b, e->args[2]) : NULL;
    if (x2 == NULL || lo == NULL || hi == NULL) {
        velo_expr_free(x);
        velo_expr_free(x2);
        velo_expr_free(lo);
        velo_expr_free(hi);
        return NULL;
    }
    struct velo_expr *ge = binary_op(b, ">=", x, lo, e->pos, e->args[0]->pos,
                                     e->args[1]->pos);
    if (ge == NULL) {
        velo_expr_free(x2);
        velo_expr_free(hi);
        return NULL;
    }
    struct velo_expr *le = binary_op(b, "<=", x2, hi, e->pos,
                                     e->args[0]->pos, e->args[2]->pos);
    if (le == NULL) {
        velo_expr_free(ge);
        return NULL;
    }
    struct velo_expr *a = node(b, VELO_EXPR_AND, T(VELO_TYPE_BOOLEAN), 2,
                               e->pos);
    if (a == NULL) {
        velo_expr_free(ge);
        velo_expr_free(le);
        return NULL;
    }
    a->args[0] = ge;
    a->args[1] = le;
    return e->negated ? negate(b, a, e->pos) : a;
}

static struct velo_expr *bind_like(struct binder *b, const struct ast_expr *e)
{
    struct velo_expr *args[3] = {NULL, NULL, NULL};
    for (size_t i = 0; i < e->nargs && i < 3; i++) {
        args[i] = bind_expr(b, e->args[i]);
        if (args[i] == NULL) {
            free_exprs(args, 3);
            return NULL;
        }
    }
    const char *name = e->ilike ? "ILIKE" : "LIKE";
    int known;
    struct velo_expr *c = resolve_call(b, name, args, e->nargs, e->pos,
                                       &known);
    if (c == NULL) {
        if (args[0] != NULL && args[1] != NULL) {
            char t1[40], t2[40];
            bind_error(b, e->pos, "V4002",
                       "LIKE matches text against a pattern: s LIKE 'AB%'; "
                       "CAST(x AS STRING) converts other values",
                       "%s cannot be applied to %s and %s", name,
                       type_name(args[0]->type, t1, sizeof(t1)),
                       type_name(args[1]->type, t2, sizeof(t2)));
        }
        free_exprs(args, 3);
        return NULL;
    }
    return e->negated ? negate(b, c, e->pos) : c;
}

/* Unify the results of CASE or COALESCE: cast every one to the common
 * type. results[i] may be NULL (skipped). */
static int unify(struct binder *b, struct velo_expr **results,
                 const struct ast_expr *const *asts, size_t n,
                 const char *what, struct velo_datatype *out)
{
    struct velo_datatype common = T(VELO_TYPE_NULL);
    for (size_t i = 0; i < n; i++) {
        int ok;
        struct velo_datatype c = common_type(common, results[i]->type, &ok);
        if (!ok) {
            char t1[40], t2[40];
            char hint[200];
            snprintf(hint, sizeof(hint),
                     "every %s must have one type: CAST(x AS %s) converts "
                     "a value",
                     what, type_name(common, t1, sizeof(t1)));
            bind_error(b, asts[i]->pos, "V4007", hint,
                       "%s has incompatible types %s and %s", what,
                       type_name(common, t1, sizeof(t1)),
                       type_name(results[i]->type, t2, sizeof(t2)));
            return VELO_ERR;
        }
        common = c;
    }
    for (size_t i = 0; i < n; i++) {
        results[i] = cast_to(results[i], common);
        if (results[i] == NULL) {
            bind_error(b, asts[i]->pos, "V5098", NULL, "out of memory");
            return VELO_ERR;
        }
    }
    *out = common;
    return VELO_OK;
}

static struct velo_expr *bind_case(struct binder *b, const struct ast_expr *e)
{
    size_t first = e->has_operand ? 1 : 0;
    size_t npairs = (e->nargs - first - (e->has_else ? 1 : 0)) / 2;
    size_t nout = npairs * 2 + (e->has_else ? 1 : 0);
    struct velo_expr *r = node(b, VELO_EXPR_CASE, T(VELO_TYPE_NULL), nout,
                               e->pos);
    if (r == NULL) {
        return NULL;
    }
    r->u.has_else = e->has_else;
    struct velo_expr *operand = NULL;
    if (e->has_operand) {
        operand = bind_expr(b, e->args[0]);
        if (operand == NULL) {
            velo_expr_free(r);
            return NULL;
        }
    }
    size_t nres = npairs + (e->has_else ? 1 : 0);
    struct velo_expr **res = calloc(nres, sizeof(*res));
    const struct ast_expr **rast = calloc(nres, sizeof(*rast));
    if (res == NULL || rast == NULL) {
        goto fail;
    }
    for (size_t k = 0; k < npairs; k++) {
        const struct ast_expr *w = e->args[first + 2 * k];
        const struct ast_expr *th = e->args[first + 2 * k + 1];
        struct velo_expr *cond;
        if (operand != NULL) {
            struct velo_expr *ov = velo_expr_clone(operand);
            struct velo_expr *wv = bind_expr(b, w);
            if (ov == NULL || wv == NULL) {
                velo_expr_free(ov);
                velo_expr_free(wv);
                goto fail;
            }
            cond = binary_op(b, "=", ov, wv, w->pos, e->args[0]->pos, w->pos);
        } else {
            cond = require_bool(b, bind_expr(b, w), "a WHEN condition",
                                w->pos);
        }
        if (cond == NULL) {
            goto fail;
        }
        r->args[2 * k] = cond;
        res[k] = bind_expr(b, th);
        rast[k] = th;
        if (res[k] == NULL) {
            goto fail;
        }
    }
    if (e->has_else) {
        const struct ast_expr *el = e->args[e->nargs - 1];
        res[npairs] = bind_expr(b, el);
        rast[npairs] = el;
        if (res[npairs] == NULL) {
            goto fail;
        }
    }
    if (unify(b, res, rast, nres, "CASE result", &r->type) != VELO_OK) {
        goto fail;
    }
    for (size_t k = 0; k < npairs; k++) {
        r->args[2 * k + 1] = res[k];
        res[k] = NULL;
    }
    if (e->has_else) {
        r->args[nout - 1] = res[npairs];
        res[npairs] = NULL;
    }
    free(res);
    free(rast);
    velo_expr_free(operand);
    return r;
fail:
    if (res != NULL) {
        free_exprs(res, nres);
    }
    free(res);
    free(rast);
    velo_expr_free(operand);
    velo_expr_free(r);
    return NULL;
}

static struct velo_expr *bind_coalesce(struct binder *b,
                                       const struct ast_expr *e)
{
    if (e->nargs == 0) {
        bind_error(b, e->pos, "V4003", "write COALESCE(x, default)",
                   "COALESCE needs at least one argument");
        return NULL;
    }
    struct velo_expr *r = node(b, VELO_EXPR_COALESCE, T(VELO_TYPE_NULL),
                               e->nargs, e->pos);
    if (r == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < e->nargs; i++) {
        r->args[i] = bind_expr(b, e->args[i]);
        if (r->args[i] == NULL) {
            velo_expr_free(r);
            return NULL;
        }
    }
    if (unify(b, r->args, (const struct ast_expr *const *)e->args, e->nargs,
              "COALESCE argument", &r->type) != VELO_OK) {
        velo_expr_free(r);
        return NULL;
    }
    return r;
}

/* NULLIF(a, b) is CASE WHEN a = b THEN NULL ELSE a END. */
static struct velo_expr *bind_nullif(struct binder *b,
                                     const struct ast_expr *e)
{
    if (e->nargs != 2) {
        bind_error(b, e->pos, "V4003", "write NULLIF(x, value)",
                   "NULLIF takes 2 arguments, not %zu", e->nargs);
        return NULL;
    }
    struct velo_expr *a = bind_expr(b, e->args[0]);
    struct velo_expr *v = a != NULL ? bind_expr(b, e->args[1]) : NULL;
    struct velo_expr *a2 = v != NULL ? velo_expr_clone(a) : NULL;
    if (a2 == NULL) {
        velo_expr_free(a);
        velo_expr_free(v);
        return NULL;
    }
    struct velo_datatype type = a->type;
    struct velo_expr *cond = binary_op(b, "=", a, v, e->pos, e->args[0]->pos,
                                       e->args[1]->pos);
    if (cond == NULL) {
        velo_expr_free(a2);
        return NULL;
    }
    struct velo_expr *r = node(b, VELO_EXPR_CASE, type, 3, e->pos);
    struct velo_expr *nul = lit_null(b, type, e->pos);
    if (r == NULL || nul == NULL) {
        velo_expr_free(r);
        velo_expr_free(nul);
        velo_expr_free(cond);
        velo_expr_free(a2);
        return NULL;
    }
    r->u.has_else = 1;
    r->args[0] = cond;
    r->args[1] = nul;
    r->args[2] = a2;
    return r;
}

static struct velo_expr *bind_cast(struct binder *b, const struct ast_expr *e)
{
    struct velo_datatype to;
    if (resolve_type(b, &e->type, &to) != 0) {
        return NULL;
    }
    struct velo_expr *x = bind_expr(b, e->args[0]);
    if (x == NULL) {
        return NULL;
    }
    if (!cast_allowed(x->type, to)) {
        char t1[40], t2[40];
        type_name(x->type, t1, sizeof(t1));
        type_name(to, t2, sizeof(t2));
        const char *hint =
            x->type.id == VELO_TYPE_TIMESTAMP || to.id == VELO_TYPE_TIMESTAMP
                ? "UNIX_TIMESTAMP(ts) and FROM_UNIXTIME(n) convert between "
                  "timestamps and epoch seconds"
                : "go through text: CAST(CAST(x AS STRING) AS type)";
        bind_error(b, e->pos, "V4005", hint, "cannot cast %s to %s", t1, t2);
        velo_expr_free(x);
        return NULL;
    }
    if (x->kind == VELO_EXPR_LITERAL && x->u.literal.is_null) {
        x->type = to;
        return x;
    }
    if (velo_type_equal(x->type, to)) {
        return x;
    }
    struct velo_expr *c = node(b, VELO_EXPR_CAST, to, 1, e->pos);
    if (c == NULL) {
        velo_expr_free(x);
        return NULL;
    }
    c->args[0] = x;
    c->u.cast.try_ = e->try_cast;
    set_text(b, c, e->pos);
    return c;
}

int ast_has_agg(const struct binder *b, const struct ast_expr *e)
{
    if (e == NULL) {
        return 0;
    }
    if (e->kind == AX_CALL && e->over != NULL) {
        return 0; /* a window function: computed per row, not per group */
    }
    if (e->kind == AX_CALL && e->special == SP_NONE &&
        velo_funcs_is_agg(b->env->funcs, e->name)) {
        return 1;
    }
    for (size_t i = 0; i < e->nargs; i++) {
        if (ast_has_agg(b, e->args[i])) {
            return 1;
        }
    }
    return ast_has_agg(b, e->filter);
}

static void agg_hint_args(const struct velo_datatype *types, size_t n,
                          char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && o < len; i++) {
        char tb[40];
        int w = snprintf(buf + o, len - o, "%s%s", i ? ", " : "",
                         type_name(types[i], tb, sizeof(tb)));
        if (w < 0) {
            break;
        }
        o += (size_t)w;
    }
}

static struct velo_expr *bind_agg_call(struct binder *b,
                                       const struct ast_expr *e)
{
    if (b->in_agg_arg) {
        bind_error(b, e->pos, "V5004",
                   "aggregate in two steps: CREATE STREAM s AS SELECT ... "
                   "GROUP BY ...; then aggregate s",
                   "aggregate function %s cannot be nested inside another "
                   "aggregate",
                   e->name);
        return NULL;
    }
    if (b->no_agg != NULL || b->agg == NULL) {
        char hint[200];
        if (b->no_agg != NULL && strcmp(b->no_agg, "WHERE") == 0) {
            snprintf(hint, sizeof(hint),
                     "WHERE filters rows before aggregation; filter "
                     "groups with HAVING %s(...) > ...",
                     e->name);
        } else {
            snprintf(hint, sizeof(hint),
                     "aggregates belong in the SELECT list, HAVING or "
                     "ORDER BY");
        }
        bind_error(b, e->pos, "V5003", hint,
                   "aggregate function %s is not allowed in %s", e->name,
                   b->no_agg != NULL ? b->no_agg : "this place");
        return NULL;
    }
    if (e->nargs > 2) {
        bind_error(b, e->pos, "V4003", NULL,
                   "aggregate %s takes at most 2 arguments, not %zu",
                   e->name, e->nargs);
        return NULL;
    }
    if (e->star && strcmp(e->name, "COUNT") != 0) {
        char hint[160];
        snprintf(hint, sizeof(hint), "'*' is only for COUNT(*); write %s(x)",
                 e->name);
        bind_error(b, e->pos, "V4003", hint, "%s(*) is not a function",
                   e->name);
        return NULL;
    }
    int saved_mode = b->mode;
    b->mode = BIND_ROW;
    b->in_agg_arg = 1;
    struct agg_rec rec;
    memset(&rec, 0, sizeof(rec));
    rec.nargs = e->star ? 0 : e->nargs;
    int ok = 1;
    for (size_t i = 0; i < rec.nargs; i++) {
        rec.args[i] = bind_expr(b, e->args[i]);
        if (rec.args[i] == NULL) {
            ok = 0;
            break;
        }
    }
    if (ok && e->filter != NULL) {
        rec.filter = bind_predicate(b, e->filter, "FILTER");
        ok = rec.filter != NULL;
    }
    b->mode = saved_mode;
    b->in_agg_arg = 0;
    if (!ok) {
        free_exprs(rec.args, 2);
        velo_expr_free(rec.filter);
        return NULL;
    }
    struct velo_datatype types[2], casts[2];
    memset(casts, 0, sizeof(casts));
    for (size_t i = 0; i < rec.nargs; i++) {
        types[i] = rec.args[i]->type;
    }
    int known = 0;
    rec.agg = velo_funcs_resolve_agg(b->env->funcs, e->name, types,
                                     rec.nargs, casts, &known);
    if (rec.agg == NULL) {
        char args[160];
        agg_hint_args(types, rec.nargs, args, sizeof(args));
        bind_error(b, e->pos, "V4003",
                   "see the aggregate functions and their argument types "
                   "in docs/sql.md",
                   "no aggregate %s(%s)", e->name, args);
        free_exprs(rec.args, 2);
        velo_expr_free(rec.filter);
        return NULL;
    }
    for (size_t i = 0; i < rec.nargs; i++) {
        if (casts[i].id != VELO_TYPE_NULL) {
            rec.args[i] = cast_to(rec.args[i], casts[i]);
            if (rec.args[i] == NULL) {
                free_exprs(rec.args, 2);
                velo_expr_free(rec.filter);
                return NULL;
            }
        }
        types[i] = rec.args[i]->type;
    }
    if (e->distinct && !rec.agg->distinct_ok) {
        bind_error(b, e->pos, "V5007",
                   "DISTINCT works with COUNT(DISTINCT x); "
                   "APPROX_COUNT_DISTINCT(x) estimates large counts",
                   "DISTINCT is not supported in %s", e->name);
        free_exprs(rec.args, 2);
        velo_expr_free(rec.filter);
        return NULL;
    }
    rec.distinct = e->distinct;
    rec.type = rec.agg->ret_type != NULL
                   ? rec.agg->ret_type(types, rec.nargs)
                   : rec.agg->ret;
    struct sql_buf cb = {0};
    sql_buf_printf(&cb, "%s%s(", rec.agg->name, rec.distinct ? "_D" : "");
    for (size_t i = 0; i < rec.nargs; i++) {
        if (i) {
            sql_buf_add(&cb, ",", 1);
        }
        canon_expr(rec.args[i], &cb);
    }
    sql_buf_add(&cb, ")", 1);
    if (rec.filter != NULL) {
        sql_buf_puts(&cb, "|");
        canon_expr(rec.filter, &cb);
    }
    rec.canon = sql_buf_take(&cb);
    struct agg_state *a = b->agg;
    size_t idx = a->naggs;
    for (size_t i = 0; rec.canon != NULL && i < a->naggs; i++) {
        if (strcmp(a->aggs[i].canon, rec.canon) == 0) {
            idx = i;
            break;
        }
    }
    if (idx < a->naggs) {
        free_exprs(rec.args, 2);
        velo_expr_free(rec.filter);
        free(rec.canon);
    } else {
        if (a->naggs == a->cap_aggs) {
            size_t cap = a->cap_aggs ? a->cap_aggs * 2 : 8;
            struct agg_rec *na = realloc(a->aggs, cap * sizeof(*na));
            if (na == NULL) {
                free_exprs(rec.args, 2);
                velo_expr_free(rec.filter);
                free(rec.canon);
                bind_error(b, e->pos, "V5098", NULL, "out of memory");
                return NULL;
            }
            a->aggs = na;
            a->cap_aggs = cap;
        }
        rec.name = span_text(b->t, e->pos);
        a->aggs[a->naggs++] = rec;
    }
    return colref(b, agg_offset(b) + (int)a->nkeys + (int)idx,
                  a->aggs[idx].type, e->pos);
}

/* EXTRACT fields the time functions understand. */
static const char *const extract_fields[] = {
    "YEAR",        "QUARTER",     "MONTH",     "WEEK",      "DAY",
    "DOW",         "ISODOW",      "DOY",       "HOUR",      "MINUTE",
    "SECOND",      "MILLISECOND", "MICROSECOND", "EPOCH",   "DAYOFWEEK",
    "DAYOFYEAR",   "DAYOFMONTH",  "DECADE"};

static int extract_field_ok(const char *field)
{
    size_t nf = sizeof(extract_fields) / sizeof(*extract_fields);
    size_t n = strlen(field);
    for (size_t i = 0; i < nf; i++) {
        size_t l = strlen(extract_fields[i]);
        /* Plurals too: HOURS, DAYS. */
        if (strcasecmp(extract_fields[i], field) == 0 ||
            (n == l + 1 && strncasecmp(extract_fields[i], field, l) == 0 &&
             (field[l] == 's' || field[l] == 'S'))) {
            return 1;
        }
    }
    return 0;
}

static struct velo_expr *bind_call(struct binder *b, const struct ast_expr *e)
{
    const char *name = e->name;
    if (e->special == SP_NONE) {
        if (strcmp(name, "COALESCE") == 0 && !e->star && !e->distinct) {
            return bind_coalesce(b, e);
        }
        if (strcmp(name, "NULLIF") == 0 && !e->star && !e->distinct) {
            return bind_nullif(b, e);
        }
        if (strcmp(name, "JSON_OBJECT") == 0 &&
            (e->nargs == 0 || e->nargs % 2 != 0)) {
            bind_error(b, e->pos, "V4003",
                       "write JSON_OBJECT('name', value, 'name2', value2)",
                       "JSON_OBJECT takes name, value pairs, not %zu "
                       "argument(s)",
                       e->nargs);
            return NULL;
        }
        if (velo_funcs_is_agg(b->env->funcs, name)) {
            return bind_agg_call(b, e);
        }
    }
    if (e->distinct) {
        bind_error(b, e->pos, "V5007",
                   "DISTINCT inside parentheses works with aggregates: "
                   "COUNT(DISTINCT x)",
                   "DISTINCT is not allowed in %s, which is not an "
                   "aggregate function",
                   name);
        return NULL;
    }
    if (e->filter != NULL) {
        bind_error(b, e->filter->pos, "V5008",
                   "FILTER (WHERE ...) applies to aggregates; for a scalar "
                   "use CASE WHEN ... THEN ... END",
                   "FILTER is not allowed on %s, which is not an aggregate "
                   "function",
                   name);
        return NULL;
    }
    if (e->star) {
        bind_error(b, e->pos, "V4003", "'*' is only for COUNT(*)",
                   "%s(*) is not a function call", name);
        return NULL;
    }
    const char *fname = name;
    if (e->nargs == 0 && (strcmp(name, "TUMBLE_START") == 0 ||
                          strcmp(name, "TUMBLE_END") == 0)) {
        bind_error(b, e->name_pos, "V5026",
                   "add WINDOW TUMBLING(...) with GROUP BY or an aggregate; "
                   "the window's bounds are also the columns _window_start "
                   "and _window_end",
                   "%s() is only available in a windowed aggregation", name);
        return NULL;
    }
    if (e->special == SP_TRIM) {
        fname = e->trim_side == TRIM_LEADING    ? "LTRIM"
                : e->trim_side == TRIM_TRAILING ? "RTRIM"
                                                : "TRIM";
    } else if (e->special == SP_EXTRACT) {
        const char *field = e->args[0]->text;
        size_t nf = sizeof(extract_fields) / sizeof(*extract_fields);
        if (!extract_field_ok(field)) {
            const char *sug = sql_suggest(field, extract_fields, nf);
            char hint[300];
            if (sug != NULL) {
                snprintf(hint, sizeof(hint), "did you mean %s?", sug);
            } else {
                snprintf(hint, sizeof(hint),
                         "fields are YEAR, QUARTER, MONTH, WEEK, DAY, DOW, "
                         "ISODOW, DOY, HOUR, MINUTE, SECOND, MILLISECOND, "
                         "MICROSECOND, EPOCH");
            }
            bind_error(b, e->args[0]->pos, "V4006", hint,
                       "unknown EXTRACT field '%s'", field);
            return NULL;
        }
    }
    size_t n = e->nargs;
    struct velo_expr **args = calloc(n ? n : 1, sizeof(*args));
    if (args == NULL) {
        bind_error(b, e->pos, "V5098", NULL, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        args[i] = bind_expr(b, e->args[i]);
        if (args[i] == NULL) {
            free_exprs(args, n);
            free(args);
            return NULL;
        }
    }
    int known = 0;
    struct velo_expr *c = resolve_call(b, fname, args, n, e->pos, &known);
    if (c != NULL) {
        free(args);
        return c;
    }
    if (known < 0) {
        free(args);
        return NULL;
    }
    if (!known) {
        const char *names[512];
        size_t nn = velo_funcs_names(b->env->funcs, names, 512);
        const char *sug = sql_suggest(name, names, nn);
        char hint[200];
        if (sug != NULL) {
            snprintf(hint, sizeof(hint), "did you mean %s?", sug);
        } else {
            snprintf(hint, sizeof(hint),
                     "the functions are listed in docs/sql.md");
        }
        bind_error(b, e->name_pos, "V3003", hint, "unknown function %s",
                   name);
    } else {
        struct sql_buf hint = {0};
        const struct velo_func *ov[16];
        size_t no = velo_funcs_overloads(b->env->funcs, fname, ov, 16);
        sql_buf_printf(&hint, "%s takes ", fname);
        for (size_t i = 0; i < no && i < 8; i++) {
            sql_buf_puts(&hint, i ? ", (" : "(");
            for (int j = 0; j < ov[i]->nargs; j++) {
                char tb[40];
                const char *tn = ov[i]->args[j].id == VELO_TYPE_NULL
                                     ? "ANY"
                                     : type_name(ov[i]->args[j], tb,
                                                 sizeof(tb));
                if (ov[i]->args[j].id == VELO_TYPE_DECIMAL) {
                    tn = "DECIMAL";
                }
                sql_buf_printf(&hint, "%s%s", j ? ", " : "", tn);
            }
            if (ov[i]->flags & VELO_FUNC_VARIADIC) {
                sql_buf_puts(&hint, ", ...");
            }
            sql_buf_puts(&hint, ")");
        }
        if (no > 8) {
            sql_buf_puts(&hint, ", ...");
        }
        char argt[200];
        struct velo_datatype types[VELO_FUNC_MAX_ARGS + 8];
        memset(types, 0, sizeof(types));
        size_t nt = n < VELO_FUNC_MAX_ARGS + 8 ? n : VELO_FUNC_MAX_ARGS + 8;
        for (size_t i = 0; i < nt; i++) {
            types[i] = args[i]->type;
        }
        agg_hint_args(types, nt, argt, sizeof(argt));
        bind_error(b, e->pos, "V4003", no > 0 ? hint.data : NULL,
                   "no function %s(%s)", fname, argt);
        sql_buf_free(&hint);
    }
    free_exprs(args, n);
    free(args);
    return NULL;
}

/* ---- Aggregate-output mode ---------------------------------------------- */

/* In BIND_AGG mode: a group key, a window bound or an aggregate.
 * @return 1 when handled (*out may be NULL after an error). */
static int bind_agg_level(struct binder *b, const struct ast_expr *e,
                          struct velo_expr **out)
{
    struct agg_state *a = b->agg;
    *out = NULL;
    if (a->windowed) {
        int which = -1;
        if (e->kind == AX_CALL && e->special == SP_NONE &&
            (strcmp(e->name, "TUMBLE_START") == 0 ||
             strcmp(e->name, "TUMBLE_END") == 0)) {
            which = strcmp(e->name, "TUMBLE_START") == 0 ? 0 : 1;
        } else if (e->kind == AX_NAME && e->nparts == 1 &&
                   (strcasecmp(e->parts[0].name, VELO_COL_WINDOW_START) ==
                        0 ||
                    strcasecmp(e->parts[0].name, VELO_COL_WINDOW_END) == 0)) {
            which = strcasecmp(e->parts[0].name, VELO_COL_WINDOW_START) == 0
                        ? 0
                        : 1;
        }
        if (which >= 0) {
            *out = colref(b, which, T(VELO_TYPE_TIMESTAMP), e->pos);
            return 1;
        }
    }
    if (e->kind == AX_CALL && e->special == SP_NONE &&
        velo_funcs_is_agg(b->env->funcs, e->name)) {
        *out = bind_agg_call(b, e);
        return 1;
    }
    switch (e->kind) {
    case AX_INTEGER: case AX_DECIMAL: case AX_FLOAT: case AX_STRING:
    case AX_BOOL: case AX_NULL: case AX_TYPED: case AX_INTERVAL:
    case AX_DURATION: case AX_STAR:
        return 0;
    default:
        break;
    }
    if (a->nkeys == 0 || ast_has_agg(b, e)) {
        return 0;
    }
    /* Is it one of the keys? Bind it over the rows quietly and compare. */
    int saved_mode = b->mode, saved_quiet = b->quiet;
    b->mode = BIND_ROW;
    b->quiet = 1;
    struct velo_expr *x = bind_expr(b, e);
    /* Keys are folded: fold alike, or "qty >= 100" never matches. */
    x = fold_constants(b, x, e->pos);
    b->mode = saved_mode;
    b->quiet = saved_quiet;
    if (x == NULL) {
        return 0;
    }
    char *canon = canon_dup(x);
    velo_expr_free(x);
    int k = canon != NULL ? find_key(b, canon) : -1;
    free(canon);
    if (k < 0) {
        return 0;
    }
    *out = key_ref(b, (size_t)k, e->pos);
    return 1;
}

/* ---- Dispatch ----------------------------------------------------------- */

struct velo_expr *bind_expr(struct binder *b, const struct ast_expr *e)
{
    if (e == NULL) {
        return NULL;
    }
    if (e->kind == AX_CALL && e->over != NULL) {
        for (size_t i = 0; i < b->nover; i++) {
            if (b->over[i].call != e) {
                continue;
            }
            if (b->over[i].col < 0) {
                return lit_i64(b, T(VELO_TYPE_BIGINT), 1, e->pos);
            }
            const struct velo_field *f =
                &b->in.schema->fields[b->over[i].col];
            return colref(b, b->over[i].col, f->type, e->pos);
        }
        if (b->over_failed) {
            return NULL;
        }
        bind_error(b, e->pos, "V5034",
                   "window functions belong in the SELECT list of a query "
                   "without GROUP BY; filter on them from an outer query: "
                   "SELECT * FROM (SELECT ..., ROW_NUMBER() OVER (...) AS rn "
                   "FROM s) WHERE rn <= 3",
                   "a window function (OVER) is not allowed here");
        return NULL;
    }
    if (e->kind == AX_IN_QUERY) {
        bind_error(b, e->pos, "V5034",
                   "use it as a condition of WHERE, joined with AND: WHERE "
                   "x IN (SELECT k FROM t) AND ...",
                   "IN (SELECT ...) is only supported as a WHERE condition");
        return NULL;
    }
    if (b->mode == BIND_AGG && !b->in_agg_arg && b->agg != NULL) {
        struct velo_expr *r;
        if (bind_agg_level(b, e, &r)) {
            return r;
        }
    }
    if (e->kind == AX_CALL && e->over == NULL && e->special == SP_NONE &&
        strcmp(e->name, "HEADER") == 0) {
        return bind_header(b, e);
    }
    switch (e->kind) {
    case AX_INTEGER:
        return bind_integer(b, e->text, 0, e->pos);
    case AX_DECIMAL:
        return bind_decimal(b, e->text, 0, e->pos);
    case AX_FLOAT:
        return bind_float(b, e->text, 0, e->pos);
    case AX_STRING:
        return lit_str(b, e->text, e->pos);
    case AX_BOOL:
        return lit_i64(b, T(VELO_TYPE_BOOLEAN), e->ival, e->pos);
    case AX_NULL:
        return lit_null(b, T(VELO_TYPE_NULL), e->pos);
    case AX_TYPED:
        return bind_typed(b, e);
    case AX_INTERVAL:
    case AX_DURATION:
        return bind_interval(b, e, 0);
    case AX_NAME:
        return bind_name(b, e);
    case AX_STAR:
        bind_error(b, e->pos, "V2001",
                   "'*' stands for every column only in the SELECT list "
                   "and in COUNT(*)",
                   "'*' is not allowed here");
        return NULL;
    case AX_SUBSCRIPT:
    case AX_FIELD:
        return bind_path(b, e);
    case AX_NEG:
        return bind_neg(b, e);
    case AX_BINARY:
        return bind_binary(b, e);
    case AX_AND:
    case AX_OR:
    case AX_NOT:
        return bind_logic(b, e);
    case AX_IS_NULL: {
        struct velo_expr *x = bind_expr(b, e->args[0]);
        if (x == NULL) {
            return NULL;
        }
        struct velo_expr *r = node(b, VELO_EXPR_IS_NULL, T(VELO_TYPE_BOOLEAN),
                                   1, e->pos);
        if (r == NULL) {
            velo_expr_free(x);
            return NULL;
        }
        r->args[0] = x;
        r->u.negated = e->negated;
        return r;
    }
    case AX_IN:
        return bind_in(b, e);
    case AX_BETWEEN:
        return bind_between(b, e);
    case AX_LIKE:
        return bind_like(b, e);
    case AX_CASE:
        return bind_case(b, e);
    case AX_CAST:
        return bind_cast(b, e);
    case AX_CALL:
        return bind_call(b, e);
    default:
        bind_error(b, e->pos, "V5099", NULL,
                   "internal error: unknown expression kind %d", e->kind);
        return NULL;
    }
}

/* ---- Constant folding --------------------------------------------------- */

static int is_constant(const struct velo_expr *e)
{
    if (e->kind == VELO_EXPR_LITERAL) {
        return 1;
    }
    if (e->kind == VELO_EXPR_COLUMN) {
        return 0;
    }
    if (e->kind == VELO_EXPR_CALL &&
        (e->u.call == NULL || (e->u.call->flags & VELO_FUNC_VOLATILE))) {
        return 0;
    }
    for (size_t i = 0; i < e->nargs; i++) {
        if (!is_constant(e->args[i])) {
            return 0;
        }
    }
    return 1;
}

struct velo_expr *fold_constants(struct binder *b, struct velo_expr *e,
                                 struct sql_pos pos)
{
    if (e == NULL || e->kind == VELO_EXPR_LITERAL ||
        e->kind == VELO_EXPR_COLUMN) {
        return e;
    }
    if (is_constant(e)) {
        struct velo_literal lit;
        char msg[256] = "";
        memset(&lit, 0, sizeof(lit));
        int rc = velo_expr_fold(e, &lit, msg, sizeof(msg));
        if (rc == VELO_OK) {
            struct velo_expr *l = velo_expr_new(VELO_EXPR_LITERAL, e->type, 0);
            if (l == NULL) {
                free(lit.str);
                return e;
            }
            l->u.literal = lit;
            l->line = e->line;
            l->col = e->col;
            l->text = e->text;
            e->text = NULL;
            velo_expr_free(e);
            return l;
        }
        if (rc == VELO_ERR) {
            char m[400];
            snprintf(m, sizeof(m),
                     "this expression fails on every row: %s", msg);
            bind_warning(b, pos, "V4009",
                         "rows where it is evaluated are skipped and "
                         "reported; check the constants",
                         m);
            return e;
        }
    }
    for (size_t i = 0; i < e->nargs; i++) {
        e->args[i] = fold_constants(b, e->args[i], pos);
    }
    return e;
}
