/*
 * @metric / @alert annotations: grouping, checks, and the condition
 * language.
 *
 * The sql module offers no public way to parse and bind an expression on
 * its own, so @metric_condition is a documented subset of SQL, parsed
 * here and bound with the executor's public expression API (so it
 * evaluates exactly like a WHERE clause would, vectorized, with the same
 * comparison overloads and implicit widenings):
 *
 *   cond    := and (OR and)*
 *   and     := unary (AND unary)*
 *   unary   := NOT unary | '(' cond ')' | operand [cmp operand]
 *            | operand IS [NOT] NULL
 *   cmp     := = | != | <> | < | <= | > | >=
 *   operand := column | "quoted column" | number | 'string' | TRUE
 *            | FALSE | NULL
 */
#include "obs/annotations.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "obs/metrics.h"
#include "util/textbuf.h"

/* ---- Diagnostics --------------------------------------------------------- */

struct ann_ctx {
    const char *sql;
    size_t len;
    struct velo_sql_diags *ds;
};

static size_t line_start(const struct ann_ctx *c, int line)
{
    size_t off = 0;
    for (int l = 1; l < line && off < c->len; off++) {
        if (c->sql[off] == '\n') {
            l++;
        }
    }
    return off;
}

/* Byte offset of 1-based character column col on the line at ls. */
static size_t col_offset(const struct ann_ctx *c, size_t ls, int col)
{
    size_t off = ls;
    for (int k = 1; k < col && off < c->len && c->sql[off] != '\n'; k++) {
        off++;
        while (off < c->len && ((unsigned char)c->sql[off] & 0xC0) == 0x80) {
            off++;
        }
    }
    return off;
}

static int char_col(const struct ann_ctx *c, size_t ls, size_t off)
{
    int col = 1;
    for (size_t i = ls; i < off && i < c->len; i++) {
        if (((unsigned char)c->sql[i] & 0xC0) != 0x80) {
            col++;
        }
    }
    return col;
}


/* A diagnostic at byte offset off (span len bytes), like the parser's. */
static void ann_diag(struct ann_ctx *c, size_t off, size_t len, int severity,
                     const char *code, const char *hint, const char *fmt, ...)
    VELO_PRINTF(7, 8);

static void ann_diag(struct ann_ctx *c, size_t off, size_t len, int severity,
                     const char *code, const char *hint, const char *fmt, ...)
{
    struct velo_sql_diags *ds = c->ds;
    if (severity == 0) {
        ds->errors++;
    }
    if (ds->n == ds->cap) {
        size_t cap = ds->cap ? ds->cap * 2 : 8;
        struct velo_sql_diag *n = realloc(ds->d, cap * sizeof(*n));
        if (n == NULL) {
            return;
        }
        ds->d = n;
        ds->cap = cap;
    }
    struct velo_sql_diag *d = &ds->d[ds->n++];
    memset(d, 0, sizeof(*d));
    snprintf(d->code, sizeof(d->code), "%s", code);
    d->severity = severity;
    va_list ap;
    va_start(ap, fmt);
    d->message = velo_vstrfmt(fmt, ap);
    va_end(ap);
    d->hint = hint != NULL ? strdup(hint) : NULL;
    if (off > c->len) {
        off = c->len;
    }
    size_t ls = off;
    while (ls > 0 && c->sql[ls - 1] != '\n') {
        ls--;
    }
    size_t le = off;
    while (le < c->len && c->sql[le] != '\n') {
        le++;
    }
    if (le > ls && c->sql[le - 1] == '\r') {
        le--;
    }
    int line = 1;
    for (size_t i = 0; i < ls; i++) {
        if (c->sql[i] == '\n') {
            line++;
        }
    }
    d->line = line;
    d->col = char_col(c, ls, off);
    d->source_line = strndup(c->sql + ls, le - ls);
    int n = 0;
    for (size_t i = off; i < off + len && i < le; i++) {
        if (((unsigned char)c->sql[i] & 0xC0) != 0x80) {
            n++;
        }
    }
    d->len = n > 0 ? n : 1;
}

/* By place, keeping equal places in order (insertion sort: few). */
static void sort_diags(struct velo_sql_diags *ds, size_t from)
{
    for (size_t i = from + 1; i < ds->n; i++) {
        struct velo_sql_diag d = ds->d[i];
        size_t j = i;
        while (j > from && (ds->d[j - 1].line > d.line ||
                            (ds->d[j - 1].line == d.line &&
                             ds->d[j - 1].col > d.col))) {
            ds->d[j] = ds->d[j - 1];
            j--;
        }
        ds->d[j] = d;
    }
}

/* Help and summary text may be quoted: "Trades seen". */
static char *unquoted(const char *v)
{
    size_t n = strlen(v);
    if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
        return strndup(v + 1, n - 2);
    }
    return strdup(v);
}

/* ---- Annotation places --------------------------------------------------- */

struct ann_place {
    size_t at;   /* byte offset of '@' */
    size_t val;  /* of the value */
    size_t vlen; /* value bytes */
};

static struct ann_place place_of(const struct ann_ctx *c,
                                 const struct velo_sql_annotation *a)
{
    struct ann_place p;
    p.at = col_offset(c, line_start(c, a->line), a->col);
    size_t o = p.at + 1 + strlen(a->key);
    while (o < c->len && (c->sql[o] == ' ' || c->sql[o] == '\t')) {
        o++;
    }
    if (o < c->len && c->sql[o] == ':') {
        o++;
    }
    while (o < c->len && (c->sql[o] == ' ' || c->sql[o] == '\t')) {
        o++;
    }
    p.val = o;
    p.vlen = strlen(a->value);
    return p;
}

/* ---- Names ---------------------------------------------------------------- */

int velo_obs_valid_metric_name(const char *s)
{
    if (s == NULL || *s == '\0') {
        return 0;
    }
    for (size_t i = 0; s[i] != '\0'; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!(isalpha(ch) || ch == '_' || ch == ':' ||
              (i > 0 && isdigit(ch)))) {
            return 0;
        }
    }
    return 1;
}

static int valid_label_name(const char *s)
{
    if (s == NULL || *s == '\0' || (s[0] == '_' && s[1] == '_') ||
        strcmp(s, "le") == 0) {
        return 0;
    }
    for (size_t i = 0; s[i] != '\0'; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!(isalpha(ch) || ch == '_' || (i > 0 && isdigit(ch)))) {
            return 0;
        }
    }
    return 1;
}

/* 1h, 5m, 1h30m, 250ms: Prometheus' duration syntax. */
static int valid_prom_duration(const char *s)
{
    if (s == NULL || *s == '\0') {
        return 0;
    }
    while (*s != '\0') {
        if (!isdigit((unsigned char)*s)) {
            return 0;
        }
        while (isdigit((unsigned char)*s)) {
            s++;
        }
        if (strncmp(s, "ms", 2) == 0) {
            s += 2;
        } else if (*s != '\0' && strchr("smhdwy", *s) != NULL) {
            s++;
        } else {
            return 0;
        }
    }
    return 1;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40) {
        return 99;
    }
    size_t d[41];
    for (size_t j = 0; j <= lb; j++) {
        d[j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        size_t prev = d[0];
        d[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t t = d[j];
            size_t cost = tolower((unsigned char)a[i - 1]) ==
                                  tolower((unsigned char)b[j - 1])
                              ? 0
                              : 1;
            size_t best = prev + cost;
            if (d[j] + 1 < best) {
                best = d[j] + 1;
            }
            if (d[j - 1] + 1 < best) {
                best = d[j - 1] + 1;
            }
            d[j] = best;
            prev = t;
        }
    }
    return d[lb];
}

static const char *const known_keys[] = {
    "metric",         "metric_type",      "metric_help",
    "metric_field",   "metric_labels",    "metric_condition",
    "metric_buckets", "alert",            "alert_name",
    "alert_severity", "alert_for",        "alert_summary",
    NULL};

static const char *closest_key(const char *key)
{
    const char *best = NULL;
    size_t bd = 3;
    for (size_t i = 0; known_keys[i] != NULL; i++) {
        size_t d = edit_distance(key, known_keys[i]);
        if (d < bd) {
            bd = d;
            best = known_keys[i];
        }
    }
    return best;
}

/* The schema's visible columns, for hints: "columns: a, b, c". */
static void columns_hint(const struct velo_schema *s, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "the output columns are: ");
    int first = 1;
    for (size_t i = 0; i < s->n && o < len; i++) {
        if (s->fields[i].hidden) {
            continue;
        }
        o += (size_t)snprintf(buf + o, len - o, "%s%s", first ? "" : ", ",
                              s->fields[i].name);
        first = 0;
    }
}

/* ---- The condition language ---------------------------------------------- */

enum cond_tok {
    CT_END = 0, CT_IDENT, CT_QIDENT, CT_STRING, CT_NUMBER, CT_OP, CT_LP,
    CT_RP, CT_ERR
};

struct cond_parser {
    const char *s;
    size_t n, i;
    int tok;
    size_t ts, tl;    /* token text */
    const struct velo_schema *schema; /* NULL: syntax only */
    const struct velo_funcs *funcs;
    char err[256];
    char hint[512];
    size_t err_off;   /* into s */
    size_t err_len;
    int depth;
};

static void cond_next(struct cond_parser *p)
{
    while (p->i < p->n && isspace((unsigned char)p->s[p->i])) {
        p->i++;
    }
    p->ts = p->i;
    if (p->i >= p->n) {
        p->tok = CT_END;
        p->tl = 0;
        return;
    }
    char ch = p->s[p->i];
    if (isalpha((unsigned char)ch) || ch == '_') {
        while (p->i < p->n && (isalnum((unsigned char)p->s[p->i]) ||
                               p->s[p->i] == '_')) {
            p->i++;
        }
        p->tok = CT_IDENT;
    } else if (ch == '"' || ch == '\'') {
        p->i++;
        while (p->i < p->n) {
            if (p->s[p->i] == ch) {
                if (p->i + 1 < p->n && p->s[p->i + 1] == ch) {
                    p->i += 2; /* doubled quote */
                    continue;
                }
                break;
            }
            p->i++;
        }
        if (p->i >= p->n) {
            p->tok = CT_ERR;
            p->tl = p->n - p->ts;
            snprintf(p->err, sizeof(p->err), "unterminated %s",
                     ch == '"' ? "quoted name" : "string");
            return;
        }
        p->i++;
        p->tok = ch == '"' ? CT_QIDENT : CT_STRING;
    } else if (isdigit((unsigned char)ch) || ch == '.' ||
               (ch == '-' && p->i + 1 < p->n &&
                (isdigit((unsigned char)p->s[p->i + 1]) ||
                 p->s[p->i + 1] == '.'))) {
        p->i++;
        while (p->i < p->n &&
               (isdigit((unsigned char)p->s[p->i]) || p->s[p->i] == '.' ||
                p->s[p->i] == 'e' || p->s[p->i] == 'E' ||
                ((p->s[p->i] == '-' || p->s[p->i] == '+') &&
                 (p->s[p->i - 1] == 'e' || p->s[p->i - 1] == 'E')))) {
            p->i++;
        }
        p->tok = CT_NUMBER;
    } else if (ch == '(' || ch == ')') {
        p->i++;
        p->tok = ch == '(' ? CT_LP : CT_RP;
    } else if (strchr("=<>!", ch) != NULL) {
        p->i++;
        if (p->i < p->n &&
            ((ch == '<' && (p->s[p->i] == '=' || p->s[p->i] == '>')) ||
             (ch == '>' && p->s[p->i] == '=') ||
             (ch == '!' && p->s[p->i] == '='))) {
            p->i++;
        } else if (ch == '!') {
            p->tok = CT_ERR;
            p->tl = 1;
            snprintf(p->err, sizeof(p->err), "unexpected '!'");
            return;
        }
        p->tok = CT_OP;
    } else {
        p->i++;
        p->tok = CT_ERR;
        p->tl = 1;
        snprintf(p->err, sizeof(p->err), "unexpected character '%c'", ch);
        return;
    }
    p->tl = p->i - p->ts;
}

static int tok_is_kw(const struct cond_parser *p, const char *kw)
{
    return p->tok == CT_IDENT && strlen(kw) == p->tl &&
           strncasecmp(p->s + p->ts, kw, p->tl) == 0;
}

static int is_reserved(const struct cond_parser *p)
{
    return tok_is_kw(p, "AND") || tok_is_kw(p, "OR") || tok_is_kw(p, "NOT") ||
           tok_is_kw(p, "IS");
}

static struct velo_expr *cond_fail(struct cond_parser *p, size_t off,
                                   size_t len, const char *fmt, ...)
    VELO_PRINTF(4, 5);

static struct velo_expr *cond_fail(struct cond_parser *p, size_t off,
                                   size_t len, const char *fmt, ...)
{
    if (p->err[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err, sizeof(p->err), fmt, ap);
        va_end(ap);
        p->err_off = off;
        p->err_len = len > 0 ? len : 1;
    }
    return NULL;
}

/* A placeholder for syntax-only parsing: any non-NULL pointer would do,
 * but a real node keeps ownership rules uniform. */
static struct velo_expr *placeholder(struct velo_datatype t)
{
    return velo_expr_new(VELO_EXPR_LITERAL, t, 0);
}

static struct velo_expr *cond_or(struct cond_parser *p);

static struct velo_expr *cond_operand(struct cond_parser *p)
{
    size_t off = p->ts, len = p->tl;
    if (p->tok == CT_ERR) {
        return cond_fail(p, off, len, "%s", p->err);
    }
    if (p->tok == CT_IDENT && !is_reserved(p) && !tok_is_kw(p, "TRUE") &&
        !tok_is_kw(p, "FALSE") && !tok_is_kw(p, "NULL")) {
        char name[VELO_NAME_MAX];
        snprintf(name, sizeof(name), "%.*s", (int)len, p->s + off);
        cond_next(p);
        if (p->schema == NULL) {
            return placeholder(velo_type_of(VELO_TYPE_NULL));
        }
        int c = velo_schema_find(p->schema, name);
        if (c < 0) {
            columns_hint(p->schema, p->hint, sizeof(p->hint));
            return cond_fail(p, off, len, "unknown column '%s' in "
                             "@metric_condition", name);
        }
        struct velo_expr *e = velo_expr_new(VELO_EXPR_COLUMN,
                                            p->schema->fields[c].type, 0);
        if (e != NULL) {
            e->u.column = c;
        }
        return e;
    }
    if (p->tok == CT_QIDENT) {
        char name[VELO_NAME_MAX];
        size_t o = 0;
        for (size_t i = off + 1; i + 1 < off + len && o + 1 < sizeof(name);
             i++) {
            name[o++] = p->s[i];
            if (p->s[i] == '"') {
                i++;
            }
        }
        name[o] = '\0';
        cond_next(p);
        if (p->schema == NULL) {
            return placeholder(velo_type_of(VELO_TYPE_NULL));
        }
        int c = velo_schema_find(p->schema, name);
        if (c < 0) {
            columns_hint(p->schema, p->hint, sizeof(p->hint));
            return cond_fail(p, off, len, "unknown column '%s' in "
                             "@metric_condition", name);
        }
        struct velo_expr *e = velo_expr_new(VELO_EXPR_COLUMN,
                                            p->schema->fields[c].type, 0);
        if (e != NULL) {
            e->u.column = c;
        }
        return e;
    }
    if (p->tok == CT_STRING) {
        struct velo_expr *e =
            velo_expr_new(VELO_EXPR_LITERAL, velo_type_of(VELO_TYPE_STRING),
                          0);
        if (e == NULL) {
            return NULL;
        }
        char *s = malloc(len);
        if (s == NULL) {
            velo_expr_free(e);
            return NULL;
        }
        size_t o = 0;
        for (size_t i = off + 1; i + 1 < off + len; i++) {
            s[o++] = p->s[i];
            if (p->s[i] == '\'') {
                i++;
            }
        }
        s[o] = '\0';
        e->u.literal.str = s;
        e->u.literal.len = o;
        cond_next(p);
        return e;
    }
    if (p->tok == CT_NUMBER) {
        char num[64];
        if (len >= sizeof(num)) {
            return cond_fail(p, off, len, "number too long");
        }
        memcpy(num, p->s + off, len);
        num[len] = '\0';
        char *end;
        struct velo_expr *e;
        if (strpbrk(num, ".eE") == NULL) {
            errno = 0;
            long long v = strtoll(num, &end, 10);
            if (*end != '\0' || errno != 0) {
                return cond_fail(p, off, len, "bad number '%s'", num);
            }
            e = velo_expr_new(VELO_EXPR_LITERAL,
                              velo_type_of(VELO_TYPE_BIGINT), 0);
            if (e != NULL) {
                e->u.literal.i64 = v;
            }
        } else {
            double v = strtod(num, &end);
            if (*end != '\0' || !isfinite(v)) {
                return cond_fail(p, off, len, "bad number '%s'", num);
            }
            e = velo_expr_new(VELO_EXPR_LITERAL,
                              velo_type_of(VELO_TYPE_DOUBLE), 0);
            if (e != NULL) {
                e->u.literal.f64 = v;
            }
        }
        cond_next(p);
        return e;
    }
    if (tok_is_kw(p, "TRUE") || tok_is_kw(p, "FALSE")) {
        struct velo_expr *e = velo_expr_new(
            VELO_EXPR_LITERAL, velo_type_of(VELO_TYPE_BOOLEAN), 0);
        if (e != NULL) {
            e->u.literal.i64 = tok_is_kw(p, "TRUE");
        }
        cond_next(p);
        return e;
    }
    if (tok_is_kw(p, "NULL")) {
        struct velo_expr *e =
            velo_expr_new(VELO_EXPR_LITERAL, velo_type_of(VELO_TYPE_NULL), 0);
        if (e != NULL) {
            e->u.literal.is_null = 1;
        }
        cond_next(p);
        return e;
    }
    if (p->tok == CT_END) {
        return cond_fail(p, off, 1, "the condition ends too early: "
                         "expected a column or a value");
    }
    return cond_fail(p, off, len, "expected a column or a value, found "
                     "'%.*s'", (int)len, p->s + off);
}

static struct velo_expr *with_cast(struct velo_expr *e, struct velo_datatype t)
{
    if (e == NULL || t.id == 0 || velo_type_equal(e->type, t)) {
        return e;
    }
    if (e->kind == VELO_EXPR_LITERAL && e->u.literal.is_null) {
        e->type = t;
        return e;
    }
    struct velo_expr *c = velo_expr_new(VELO_EXPR_CAST, t, 1);
    if (c == NULL) {
        velo_expr_free(e);
        return NULL;
    }
    c->args[0] = e;
    return c;
}

static const char *type_str(struct velo_datatype t, char *buf, size_t len)
{
    if (t.id == VELO_TYPE_NULL) {
        snprintf(buf, len, "NULL");
        return buf;
    }
    return velo_type_name(t, buf, len);
}

static struct velo_expr *cond_compare(struct cond_parser *p,
                                      struct velo_expr *l, const char *op,
                                      size_t off, size_t len,
                                      struct velo_expr *r)
{
    if (p->schema == NULL) {
        velo_expr_free(r);
        return l;
    }
    struct velo_datatype args[2] = {l->type, r->type};
    struct velo_datatype casts[2];
    memset(casts, 0, sizeof(casts));
    int known = 0;
    const struct velo_func *fn =
        p->funcs != NULL ? velo_funcs_resolve(p->funcs, op, args, 2, casts,
                                              &known)
                         : NULL;
    if (fn == NULL) {
        char a[48], b[48];
        velo_expr_free(l);
        velo_expr_free(r);
        return cond_fail(p, off, len, "cannot compare %s with %s",
                         type_str(args[0], a, sizeof(a)),
                         type_str(args[1], b, sizeof(b)));
    }
    struct velo_datatype ret =
        fn->ret_type != NULL ? fn->ret_type(args, 2) : fn->ret;
    struct velo_expr *e = velo_expr_new(VELO_EXPR_CALL, ret, 2);
    if (e == NULL) {
        velo_expr_free(l);
        velo_expr_free(r);
        return NULL;
    }
    e->u.call = fn;
    e->args[0] = with_cast(l, casts[0]);
    e->args[1] = with_cast(r, casts[1]);
    if (e->args[0] == NULL || e->args[1] == NULL) {
        velo_expr_free(e);
        return NULL;
    }
    return e;
}

static int need_bool(struct cond_parser *p, const struct velo_expr *e,
                     size_t off, size_t len)
{
    if (p->schema == NULL || e->type.id == VELO_TYPE_BOOLEAN ||
        e->type.id == VELO_TYPE_NULL) {
        return 1;
    }
    char t[48];
    cond_fail(p, off, len, "expected a BOOLEAN condition, found %s",
              type_str(e->type, t, sizeof(t)));
    return 0;
}

static struct velo_expr *cond_unary(struct cond_parser *p)
{
    if (++p->depth > 64) {
        return cond_fail(p, p->ts, 1, "the condition is nested too deeply");
    }
    size_t off = p->ts;
    struct velo_expr *e = NULL;
    if (tok_is_kw(p, "NOT")) {
        cond_next(p);
        size_t a = p->ts;
        struct velo_expr *x = cond_unary(p);
        if (x == NULL) {
            p->depth--;
            return NULL;
        }
        if (!need_bool(p, x, a, p->ts - a)) {
            velo_expr_free(x);
            p->depth--;
            return NULL;
        }
        e = velo_expr_new(VELO_EXPR_NOT, velo_type_of(VELO_TYPE_BOOLEAN), 1);
        if (e == NULL) {
            velo_expr_free(x);
        } else {
            e->args[0] = x;
        }
        p->depth--;
        return e;
    }
    if (p->tok == CT_LP) {
        cond_next(p);
        e = cond_or(p);
        if (e != NULL && p->tok != CT_RP) {
            velo_expr_free(e);
            e = cond_fail(p, p->ts, p->tl, "expected ')'");
        } else if (e != NULL) {
            cond_next(p);
        }
        p->depth--;
        return e;
    }
    e = cond_operand(p);
    if (e == NULL) {
        p->depth--;
        return NULL;
    }
    if (p->tok == CT_OP) {
        char op[3];
        snprintf(op, sizeof(op), "%.*s", (int)p->tl, p->s + p->ts);
        cond_next(p);
        struct velo_expr *r = cond_operand(p);
        if (r == NULL) {
            velo_expr_free(e);
            p->depth--;
            return NULL;
        }
        e = cond_compare(p, e, op, off, p->ts - off, r);
    } else if (tok_is_kw(p, "IS")) {
        cond_next(p);
        int neg = 0;
        if (tok_is_kw(p, "NOT")) {
            neg = 1;
            cond_next(p);
        }
        if (!tok_is_kw(p, "NULL")) {
            velo_expr_free(e);
            p->depth--;
            return cond_fail(p, p->ts, p->tl, "expected NULL after IS%s",
                             neg ? " NOT" : "");
        }
        cond_next(p);
        struct velo_expr *n = velo_expr_new(
            VELO_EXPR_IS_NULL, velo_type_of(VELO_TYPE_BOOLEAN), 1);
        if (n == NULL) {
            velo_expr_free(e);
            p->depth--;
            return NULL;
        }
        n->args[0] = e;
        n->u.negated = neg;
        e = n;
    }
    p->depth--;
    return e;
}

static struct velo_expr *cond_chain(struct cond_parser *p, const char *kw,
                                    int kind)
{
    size_t off = p->ts;
    struct velo_expr *l = kind == VELO_EXPR_OR ? cond_chain(p, "AND",
                                                            VELO_EXPR_AND)
                                               : cond_unary(p);
    if (l == NULL) {
        return NULL;
    }
    while (tok_is_kw(p, kw)) {
        if (!need_bool(p, l, off, p->ts - off)) {
            velo_expr_free(l);
            return NULL;
        }
        cond_next(p);
        size_t ro = p->ts;
        struct velo_expr *r = kind == VELO_EXPR_OR
                                  ? cond_chain(p, "AND", VELO_EXPR_AND)
                                  : cond_unary(p);
        if (r == NULL) {
            velo_expr_free(l);
            return NULL;
        }
        if (!need_bool(p, r, ro, p->ts - ro)) {
            velo_expr_free(l);
            velo_expr_free(r);
            return NULL;
        }
        if (p->schema == NULL) {
            velo_expr_free(r);
            continue;
        }
        struct velo_expr *e =
            velo_expr_new(kind, velo_type_of(VELO_TYPE_BOOLEAN), 2);
        if (e == NULL) {
            velo_expr_free(l);
            velo_expr_free(r);
            return NULL;
        }
        e->args[0] = l;
        e->args[1] = r;
        l = e;
    }
    return l;
}

static struct velo_expr *cond_or(struct cond_parser *p)
{
    return cond_chain(p, "OR", VELO_EXPR_OR);
}

/* @return the bound condition (or a placeholder without a schema), NULL
 * with p->err set on an error (p->err empty: out of memory). */
static struct velo_expr *cond_parse(struct cond_parser *p)
{
    cond_next(p);
    if (p->tok == CT_END) {
        return cond_fail(p, 0, 1, "the condition is empty");
    }
    struct velo_expr *e = cond_or(p);
    if (e == NULL) {
        return NULL;
    }
    if (p->tok != CT_END) {
        velo_expr_free(e);
        if (p->tok == CT_ERR) {
            return cond_fail(p, p->ts, p->tl, "%s", p->err);
        }
        return cond_fail(p, p->ts, p->tl, "unexpected '%.*s' (combine "
                         "comparisons with AND or OR)",
                         (int)p->tl, p->s + p->ts);
    }
    if (!need_bool(p, e, 0, p->n)) {
        velo_expr_free(e);
        return NULL;
    }
    return e;
}

/* ---- Loading --------------------------------------------------------------- */

struct loader {
    struct ann_ctx c;
    struct velo_obs_annotations *out;
    size_t cap_m, cap_a;
    /* per spec: which keys were given (for duplicates) and their places */
    uint32_t *mkeys;
    struct ann_place *cond_at;  /* per metric */
    struct ann_place *field_at;
    struct ann_place *labels_at;
    struct ann_place *bucket_at;
    uint32_t *akeys;
    int oom;
};

static char *dup_value(struct loader *l, const char *v)
{
    char *s = strdup(v);
    if (s == NULL) {
        l->oom = 1;
    }
    return s;
}

static int grow(struct loader *l, void **arr, size_t *cap, size_t n,
                size_t elem)
{
    if (n < *cap) {
        return VELO_OK;
    }
    size_t nc = *cap ? *cap * 2 : 4;
    void *na = realloc(*arr, nc * elem);
    if (na == NULL) {
        l->oom = 1;
        return VELO_ERR;
    }
    memset((char *)na + *cap * elem, 0, (nc - *cap) * elem);
    *arr = na;
    *cap = nc;
    return VELO_OK;
}

static int parse_buckets(const char *v, double *out, size_t *n, char *err,
                         size_t errlen)
{
    *n = 0;
    const char *p = v;
    for (;;) {
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        char *end;
        double d = strtod(p, &end);
        if (end == p || !isfinite(d)) {
            snprintf(err, errlen, "expected a number at '%.20s'", p);
            return VELO_ERR;
        }
        if (*n == VELO_OBS_MAX_BUCKETS) {
            snprintf(err, errlen, "more than %d buckets",
                     VELO_OBS_MAX_BUCKETS);
            return VELO_ERR;
        }
        if (*n > 0 && d <= out[*n - 1]) {
            snprintf(err, errlen, "bucket bounds must increase (%g after "
                     "%g)", d, out[*n - 1]);
            return VELO_ERR;
        }
        out[(*n)++] = d;
        p = end;
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == '\0') {
            return VELO_OK;
        }
        if (*p != ',') {
            snprintf(err, errlen, "expected ',' between bounds, found "
                     "'%c'", *p);
            return VELO_ERR;
        }
        p++;
    }
}

/* Split "a, b,c" into labels. @return VELO_OK or VELO_ERR (err set). */
static int parse_labels(struct loader *l, struct velo_obs_metric_spec *m,
                        const char *v, char *err, size_t errlen)
{
    const char *p = v;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        size_t len = strcspn(p, ",");
        size_t t = len;
        while (t > 0 && (p[t - 1] == ' ' || p[t - 1] == '\t')) {
            t--;
        }
        if (t == 0) {
            snprintf(err, errlen, "empty label name in '%s'", v);
            return VELO_ERR;
        }
        if (m->nlabels == VELO_OBS_MAX_LABELS) {
            snprintf(err, errlen, "more than %d labels",
                     VELO_OBS_MAX_LABELS);
            return VELO_ERR;
        }
        char *name = strndup(p, t);
        if (name == NULL) {
            l->oom = 1;
            return VELO_ERR;
        }
        for (size_t i = 0; i < m->nlabels; i++) {
            if (strcmp(m->labels[i], name) == 0) {
                snprintf(err, errlen, "label '%s' is listed twice", name);
                free(name);
                return VELO_ERR;
            }
        }
        if (!valid_label_name(name)) {
            snprintf(err, errlen, "'%s' is not a valid Prometheus label "
                     "name (letters, digits and '_', not starting with a "
                     "digit or '__'; not 'le')", name);
            free(name);
            return VELO_ERR;
        }
        m->labels[m->nlabels++] = name;
        p += len;
        if (*p == ',') {
            p++;
            if (*p == '\0') {
                snprintf(err, errlen, "empty label name after the last "
                         "','");
                return VELO_ERR;
            }
        }
    }
    return VELO_OK;
}

enum {
    MK_TYPE = 1, MK_HELP = 2, MK_FIELD = 4, MK_LABELS = 8, MK_COND = 16,
    MK_BUCKETS = 32
};
enum { AK_NAME = 1, AK_SEVERITY = 2, AK_FOR = 4, AK_SUMMARY = 8 };

static void metric_key(struct loader *l, const struct velo_sql_annotation *a,
                       const struct ann_place *pl)
{
    struct velo_obs_annotations *o = l->out;
    struct velo_obs_metric_spec *m =
        o->nmetrics > 0 ? &o->metrics[o->nmetrics - 1] : NULL;
    if (m == NULL || m->statement != a->statement) {
        ann_diag(&l->c, pl->at, strlen(a->key) + 1, 0, "V7004",
                 "start with '-- @metric: name' on the lines just before "
                 "the statement, then its @metric_* keys",
                 "'@%s' without a '@metric' before it for this statement",
                 a->key);
        return;
    }
    size_t mi = o->nmetrics - 1;
    const char *k = a->key + strlen("metric_");
    uint32_t bit = strcmp(k, "type") == 0      ? MK_TYPE
                   : strcmp(k, "help") == 0    ? MK_HELP
                   : strcmp(k, "field") == 0   ? MK_FIELD
                   : strcmp(k, "labels") == 0  ? MK_LABELS
                   : strcmp(k, "condition") == 0 ? MK_COND
                                                 : MK_BUCKETS;
    if (l->mkeys[mi] & bit) {
        ann_diag(&l->c, pl->at, strlen(a->key) + 1, 0, "V7012",
                 "keep one of them", "'@%s' is given twice for metric '%s'",
                 a->key, m->name);
        return;
    }
    l->mkeys[mi] |= bit;
    if (a->value[0] == '\0') {
        ann_diag(&l->c, pl->at, strlen(a->key) + 1, 0, "V7014", NULL,
                 "'@%s' needs a value", a->key);
        return;
    }
    char err[300];
    switch (bit) {
    case MK_TYPE:
        if (strcasecmp(a->value, "counter") == 0) {
            m->type = VELO_METRIC_COUNTER;
        } else if (strcasecmp(a->value, "gauge") == 0) {
            m->type = VELO_METRIC_GAUGE;
        } else if (strcasecmp(a->value, "histogram") == 0) {
            m->type = VELO_METRIC_HISTOGRAM;
        } else {
            ann_diag(&l->c, pl->val, pl->vlen, 0, "V7006",
                     "use counter, gauge or histogram",
                     "unknown metric type '%s'", a->value);
        }
        break;
    case MK_HELP:
        free(m->help);
        m->help = unquoted(a->value);
        if (m->help == NULL) {
            l->oom = 1;
        }
        break;
    case MK_FIELD:
        m->field = dup_value(l, a->value);
        l->field_at[mi] = *pl;
        break;
    case MK_LABELS:
        l->labels_at[mi] = *pl;
        if (parse_labels(l, m, a->value, err, sizeof(err)) != VELO_OK &&
            !l->oom) {
            ann_diag(&l->c, pl->val, pl->vlen, 0, "V7008",
                     "list output columns separated by commas, for "
                     "example '-- @metric_labels: symbol, exchange'",
                     "bad @metric_labels: %s", err);
        }
        break;
    case MK_COND:
        m->condition = dup_value(l, a->value);
        l->cond_at[mi] = *pl;
        break;
    default:
        l->bucket_at[mi] = *pl;
        if (parse_buckets(a->value, m->buckets, &m->nbuckets, err,
                          sizeof(err)) != VELO_OK) {
            m->nbuckets = 0;
            ann_diag(&l->c, pl->val, pl->vlen, 0, "V7010",
                     "list increasing upper bounds, for example "
                     "'-- @metric_buckets: 0.1, 0.5, 1, 5'",
                     "bad @metric_buckets: %s", err);
        }
        break;
    }
}

static void alert_key(struct loader *l, const struct velo_sql_annotation *a,
                      const struct ann_place *pl)
{
    struct velo_obs_annotations *o = l->out;
    struct velo_obs_alert_spec *al =
        o->nalerts > 0 ? &o->alerts[o->nalerts - 1] : NULL;
    if (al == NULL || al->statement != a->statement) {
        ann_diag(&l->c, pl->at, strlen(a->key) + 1, 0, "V7004",
                 "start with '-- @alert: <condition>' on the lines just "
                 "before the statement, then its @alert_* keys",
                 "'@%s' without an '@alert' before it for this statement",
                 a->key);
        return;
    }
    size_t ai = o->nalerts - 1;
    const char *k = a->key + strlen("alert_");
    uint32_t bit = strcmp(k, "name") == 0       ? AK_NAME
                   : strcmp(k, "severity") == 0 ? AK_SEVERITY
                   : strcmp(k, "for") == 0      ? AK_FOR
                                                : AK_SUMMARY;
    if (l->akeys[ai] & bit) {
        ann_diag(&l->c, pl->at, strlen(a->key) + 1, 0, "V7012",
                 "keep one of them", "'@%s' is given twice for one alert",
                 a->key);
        return;
    }
    l->akeys[ai] |= bit;
    if (a->value[0] == '\0') {
        ann_diag(&l->c, pl->at, strlen(a->key) + 1, 0, "V7014", NULL,
                 "'@%s' needs a value", a->key);
        return;
    }
    switch (bit) {
    case AK_NAME:
        if (!valid_label_name(a->value)) {
            ann_diag(&l->c, pl->val, pl->vlen, 0, "V7013",
                     "use letters, digits and '_', for example "
                     "HighTradeVolume",
                     "'%s' is not a valid alert name", a->value);
            break;
        }
        al->name = dup_value(l, a->value);
        break;
    case AK_SEVERITY:
        for (const char *s = a->value; *s != '\0'; s++) {
            if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-') {
                ann_diag(&l->c, pl->val, pl->vlen, 0, "V7013",
                         "use one word, such as critical, warning or info",
                         "'%s' is not a valid alert severity", a->value);
                return;
            }
        }
        al->severity = dup_value(l, a->value);
        break;
    case AK_FOR:
        if (!valid_prom_duration(a->value)) {
            ann_diag(&l->c, pl->val, pl->vlen, 0, "V7013",
                     "write a Prometheus duration, for example 30s, 5m or "
                     "1h30m",
                     "'%s' is not a valid @alert_for duration", a->value);
            break;
        }
        al->for_ = dup_value(l, a->value);
        break;
    default:
        al->summary = unquoted(a->value);
        if (al->summary == NULL) {
            l->oom = 1;
        }
        break;
    }
}

/* The PromQL text is checked by Prometheus itself (promtool check rules);
 * here only what would break the rules file: balance and quotes. */
static int check_promql(const char *s, char *err, size_t errlen)
{
    char stack[64];
    size_t depth = 0;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\'' || *p == '`') {
            char q = *p++;
            while (*p != '\0' && *p != q) {
                if (*p == '\\' && q != '`' && p[1] != '\0') {
                    p++;
                }
                p++;
            }
            if (*p == '\0') {
                snprintf(err, errlen, "unterminated string");
                return VELO_ERR;
            }
        } else if (*p == '(' || *p == '[' || *p == '{') {
            if (depth == sizeof(stack)) {
                snprintf(err, errlen, "nested too deeply");
                return VELO_ERR;
            }
            stack[depth++] = *p == '(' ? ')' : *p == '[' ? ']' : '}';
        } else if (*p == ')' || *p == ']' || *p == '}') {
            if (depth == 0 || stack[depth - 1] != *p) {
                snprintf(err, errlen, "unbalanced '%c'", *p);
                return VELO_ERR;
            }
            depth--;
        }
    }
    if (depth > 0) {
        snprintf(err, errlen, "missing '%c'", stack[depth - 1]);
        return VELO_ERR;
    }
    return VELO_OK;
}

static const struct velo_plan_sink *sink_of(const struct velo_plan *plan,
                                            size_t statement)
{
    for (size_t i = 0; i < plan->nsinks; i++) {
        if (plan->sinks[i].statement == statement &&
            plan->sinks[i].upstream != NULL) {
            return &plan->sinks[i];
        }
    }
    return NULL;
}

static void resolve_metric(struct loader *l, size_t mi,
                           const struct velo_plan *plan,
                           const struct velo_funcs *funcs)
{
    struct velo_obs_metric_spec *m = &l->out->metrics[mi];
    size_t at = col_offset(&l->c, line_start(&l->c, m->line), m->col);
    m->field_col = -1;
    const struct velo_plan_sink *k = sink_of(plan, m->statement);
    if (k == NULL) {
        ann_diag(&l->c, at, strlen("@metric"), 0, "V7011",
                 "give the statement a sink (WITH ('name.type'='...')), or "
                 "put the metric on a SELECT",
                 "metric '%s': the statement's rows go to no output the "
                 "metric can watch", m->name);
        return;
    }
    m->sink = k;
    if (funcs == NULL) {
        funcs = k->upstream->env->funcs;
    }
    const struct velo_schema *s = k->upstream->out_schema;
    char hint[512];
    if (m->field != NULL) {
        const struct ann_place *fp = &l->field_at[mi];
        int c = velo_schema_find(s, m->field);
        if (c < 0) {
            columns_hint(s, hint, sizeof(hint));
            ann_diag(&l->c, fp->val, fp->vlen, 0, "V7007", hint,
                     "@metric_field '%s' is not an output column of the "
                     "statement", m->field);
        } else if (!velo_type_is_numeric(s->fields[c].type) &&
                   s->fields[c].type.id != VELO_TYPE_BOOLEAN) {
            char t[48];
            ann_diag(&l->c, fp->val, fp->vlen, 0, "V7007",
                     "a metric value is a number: use a numeric column, or "
                     "CAST it in the SELECT list",
                     "@metric_field '%s' is %s, not a number", m->field,
                     velo_type_name(s->fields[c].type, t, sizeof(t)));
        } else {
            m->field_col = c;
        }
    }
    for (size_t i = 0; i < m->nlabels; i++) {
        const struct ann_place *lp = &l->labels_at[mi];
        int c = velo_schema_find(s, m->labels[i]);
        m->label_cols[i] = c;
        if (c < 0) {
            /* Point at the label inside the list. */
            const char *v = l->c.sql + lp->val;
            size_t off = lp->val, ll = strlen(m->labels[i]);
            for (size_t j = 0; j + ll <= lp->vlen; j++) {
                int starts = j == 0 || v[j - 1] == ',' || v[j - 1] == ' ' ||
                             v[j - 1] == '\t';
                int ends = j + ll == lp->vlen || v[j + ll] == ',' ||
                           v[j + ll] == ' ' || v[j + ll] == '\t';
                if (starts && ends && strncmp(v + j, m->labels[i], ll) == 0) {
                    off = lp->val + j;
                    break;
                }
            }
            columns_hint(s, hint, sizeof(hint));
            ann_diag(&l->c, off, ll, 0, "V7008", hint,
                     "label '%s' is not an output column of the statement",
                     m->labels[i]);
        }
    }
    if (m->condition != NULL) {
        const struct ann_place *cp = &l->cond_at[mi];
        struct cond_parser p;
        memset(&p, 0, sizeof(p));
        p.s = m->condition;
        p.n = strlen(m->condition);
        p.schema = s;
        p.funcs = funcs;
        m->cond = cond_parse(&p);
        if (m->cond == NULL && p.err[0] != '\0') {
            ann_diag(&l->c, cp->val + p.err_off, p.err_len, 0, "V7009",
                     p.hint[0] != '\0' ? p.hint : NULL,
                     "bad @metric_condition: %s", p.err);
        } else if (m->cond == NULL) {
            l->oom = 1;
        }
    }
}

static void check_metric(struct loader *l, size_t mi)
{
    struct velo_obs_metric_spec *m = &l->out->metrics[mi];
    size_t at = col_offset(&l->c, line_start(&l->c, m->line), m->col);
    if (m->help == NULL) {
        char h[300];
        snprintf(h, sizeof(h), "%s (from the statement on line %d)",
                 m->name, m->line);
        m->help = dup_value(l, h);
    }
    if (m->type != VELO_METRIC_COUNTER && m->field == NULL) {
        ann_diag(&l->c, at, strlen("@metric"), 0, "V7007",
                 "name the value: '-- @metric_field: column'",
                 "metric '%s' is a %s and needs @metric_field", m->name,
                 m->type == VELO_METRIC_GAUGE ? "gauge" : "histogram");
    }
    if (m->nbuckets > 0 && m->type != VELO_METRIC_HISTOGRAM) {
        const struct ann_place *bp = &l->bucket_at[mi];
        ann_diag(&l->c, bp->at, strlen("@metric_buckets"), 0, "V7010",
                 "set '-- @metric_type: histogram', or remove the buckets",
                 "@metric_buckets only applies to histograms");
    }
    if (m->condition != NULL) {
        /* Syntax now, even without a plan; binding comes with one. */
        const struct ann_place *cp = &l->cond_at[mi];
        struct cond_parser p;
        memset(&p, 0, sizeof(p));
        p.s = m->condition;
        p.n = strlen(m->condition);
        struct velo_expr *e = cond_parse(&p);
        if (e == NULL && p.err[0] != '\0') {
            ann_diag(&l->c, cp->val + p.err_off, p.err_len, 0, "V7009",
                     "write comparisons of output columns with values, "
                     "joined by AND/OR, for example \"side = 'BUY' AND "
                     "qty > 100\"",
                     "bad @metric_condition: %s", p.err);
            free(m->condition);
            m->condition = NULL;
        }
        velo_expr_free(e);
    }
}

struct velo_obs_annotations *
velo_obs_annotations_load(const char *sql, size_t len,
                          const struct velo_plan *plan,
                          const struct velo_funcs *funcs,
                          struct velo_sql_diags *diags)
{
    struct loader l;
    memset(&l, 0, sizeof(l));
    l.c.sql = sql;
    l.c.len = len;
    l.c.ds = diags;
    l.out = calloc(1, sizeof(*l.out));
    if (l.out == NULL) {
        return NULL;
    }
    /* The caller reported the program's own diagnostics already. */
    struct velo_sql_diags scratch;
    memset(&scratch, 0, sizeof(scratch));
    struct velo_sql_program *prog = velo_sql_parse(sql, len, &scratch);
    velo_sql_diags_free(&scratch);
    if (prog == NULL) {
        free(l.out);
        return NULL;
    }
    const struct velo_sql_annotation *ann;
    size_t nann = velo_sql_annotations(prog, &ann);
    size_t first = diags->n;
    struct velo_obs_annotations *o = l.out;
    for (size_t i = 0; i < nann && !l.oom; i++) {
        const struct velo_sql_annotation *a = &ann[i];
        struct ann_place pl = place_of(&l.c, a);
        if (strcmp(a->key, "metric") == 0) {
            if (grow(&l, (void **)&o->metrics, &l.cap_m, o->nmetrics,
                     sizeof(*o->metrics)) != VELO_OK) {
                break;
            }
            /* Side arrays stay as long as the metrics array. */
            void *nk = realloc(l.mkeys, l.cap_m * sizeof(*l.mkeys));
            if (nk == NULL) {
                l.oom = 1;
                break;
            }
            l.mkeys = nk;
            struct ann_place **arrs[] = {&l.cond_at, &l.field_at,
                                         &l.labels_at, &l.bucket_at};
            for (size_t k = 0; k < 4; k++) {
                void *na = realloc(*arrs[k], l.cap_m * sizeof(**arrs[k]));
                if (na == NULL) {
                    l.oom = 1;
                    break;
                }
                *arrs[k] = na;
                memset(&(*arrs[k])[o->nmetrics], 0, sizeof(**arrs[k]));
            }
            if (l.oom) {
                break;
            }
            l.mkeys[o->nmetrics] = 0;
            struct velo_obs_metric_spec *m = &o->metrics[o->nmetrics++];
            memset(m, 0, sizeof(*m));
            m->statement = a->statement;
            m->line = a->line;
            m->col = a->col;
            m->type = VELO_METRIC_COUNTER;
            m->field_col = -1;
            m->name = dup_value(&l, a->value);
            if (!velo_obs_valid_metric_name(a->value)) {
                ann_diag(&l.c, a->value[0] ? pl.val : pl.at,
                         a->value[0] ? pl.vlen : strlen("@metric"), 0,
                         "V7005",
                         "a metric name has letters, digits, '_' and ':', "
                         "and does not start with a digit, for example "
                         "trade_volume_total",
                         "'%s' is not a valid Prometheus metric name",
                         a->value);
            }
            for (size_t j = 0; j + 1 < o->nmetrics; j++) {
                if (strcmp(o->metrics[j].name, a->value) == 0) {
                    char h[120];
                    snprintf(h, sizeof(h), "it is first defined on line %d",
                             o->metrics[j].line);
                    ann_diag(&l.c, pl.val, pl.vlen, 0, "V7012", h,
                             "metric '%s' is defined twice", a->value);
                    break;
                }
            }
        } else if (strcmp(a->key, "alert") == 0) {
            if (grow(&l, (void **)&o->alerts, &l.cap_a, o->nalerts,
                     sizeof(*o->alerts)) != VELO_OK) {
                break;
            }
            size_t ca = l.cap_a;
            void *na = realloc(l.akeys, ca * sizeof(*l.akeys));
            if (na == NULL) {
                l.oom = 1;
                break;
            }
            l.akeys = na;
            l.akeys[o->nalerts] = 0;
            struct velo_obs_alert_spec *al = &o->alerts[o->nalerts++];
            memset(al, 0, sizeof(*al));
            al->statement = a->statement;
            al->line = a->line;
            al->col = a->col;
            al->expr = dup_value(&l, a->value);
            char err[120];
            if (a->value[0] == '\0') {
                ann_diag(&l.c, pl.at, strlen("@alert"), 0, "V7014",
                         "write the condition in PromQL, for example "
                         "'-- @alert: rate(trades_total[5m]) > 100'",
                         "'@alert' needs a condition");
            } else if (check_promql(a->value, err, sizeof(err)) != VELO_OK) {
                ann_diag(&l.c, pl.val, pl.vlen, 0, "V7015", NULL,
                         "bad @alert expression: %s", err);
            }
        } else if (strncmp(a->key, "metric_", 7) == 0 &&
                   closest_key(a->key) != NULL &&
                   strcmp(closest_key(a->key), a->key) == 0) {
            metric_key(&l, a, &pl);
        } else if (strncmp(a->key, "alert_", 6) == 0 &&
                   closest_key(a->key) != NULL &&
                   strcmp(closest_key(a->key), a->key) == 0) {
            alert_key(&l, a, &pl);
        } else {
            const char *sug = closest_key(a->key);
            char hint[200];
            if (sug != NULL) {
                snprintf(hint, sizeof(hint), "did you mean '@%s'?", sug);
            } else {
                snprintf(hint, sizeof(hint),
                         "annotations are @metric, @metric_type, "
                         "@metric_help, @metric_field, @metric_labels, "
                         "@metric_condition, @metric_buckets, @alert, "
                         "@alert_name, @alert_severity, @alert_for and "
                         "@alert_summary");
            }
            ann_diag(&l.c, pl.at, strlen(a->key) + 1, 0, "V7003", hint,
                     "unknown annotation '@%s'", a->key);
        }
    }
    for (size_t i = 0; i < o->nmetrics && !l.oom; i++) {
        check_metric(&l, i);
    }
    if (plan != NULL) {
        for (size_t i = 0; i < o->nmetrics && !l.oom; i++) {
            resolve_metric(&l, i, plan, funcs);
        }
    }
    for (size_t i = 0; i < o->nalerts && !l.oom; i++) {
        struct velo_obs_alert_spec *al = &o->alerts[i];
        if (al->name == NULL) {
            char n[200];
            const char *metric = NULL;
            for (size_t j = 0; j < o->nmetrics; j++) {
                if (o->metrics[j].statement == al->statement &&
                    velo_obs_valid_metric_name(o->metrics[j].name) &&
                    strchr(o->metrics[j].name, ':') == NULL) {
                    metric = o->metrics[j].name;
                    break;
                }
            }
            if (metric != NULL) {
                snprintf(n, sizeof(n), "%s_alert", metric);
            } else {
                snprintf(n, sizeof(n), "velo_alert_line_%d", al->line);
            }
            al->name = dup_value(&l, n);
        }
    }
    sort_diags(diags, first);
    velo_sql_program_free(prog);
    free(l.mkeys);
    free(l.akeys);
    free(l.cond_at);
    free(l.field_at);
    free(l.labels_at);
    free(l.bucket_at);
    if (l.oom) {
        velo_obs_annotations_free(o);
        errno = ENOMEM;
        return NULL;
    }
    return o;
}

void velo_obs_annotations_free(struct velo_obs_annotations *a)
{
    if (a == NULL) {
        return;
    }
    for (size_t i = 0; i < a->nmetrics; i++) {
        struct velo_obs_metric_spec *m = &a->metrics[i];
        free(m->name);
        free(m->help);
        free(m->field);
        for (size_t j = 0; j < m->nlabels; j++) {
            free(m->labels[j]);
        }
        free(m->condition);
        velo_expr_free(m->cond);
    }
    for (size_t i = 0; i < a->nalerts; i++) {
        struct velo_obs_alert_spec *al = &a->alerts[i];
        free(al->expr);
        free(al->name);
        free(al->severity);
        free(al->for_);
        free(al->summary);
    }
    free(a->metrics);
    free(a->alerts);
    free(a);
}
