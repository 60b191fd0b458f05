/*
 * The bound expression tree: construction, copies and the deterministic
 * text form used by explain, error messages and plan fingerprints.
 */
#include "exec/expr.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <velo/log.h>

#include "exec/func-internal.h"
#include "formats/format.h"

struct velo_expr *velo_expr_new(int kind, struct velo_datatype type,
                                size_t nargs)
{
    struct velo_expr *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        return NULL;
    }
    e->kind = kind;
    e->type = type;
    e->nargs = nargs;
    if (nargs > 0) {
        e->args = calloc(nargs, sizeof(*e->args));
        if (e->args == NULL) {
            free(e);
            errno = ENOMEM;
            return NULL;
        }
    }
    if (kind == VELO_EXPR_COLUMN) {
        e->u.column = -1;
    }
    return e;
}

void velo_expr_free(struct velo_expr *e)
{
    if (e == NULL) {
        return;
    }
    for (size_t i = 0; i < e->nargs; i++) {
        velo_expr_free(e->args[i]);
    }
    free(e->args);
    if (e->kind == VELO_EXPR_LITERAL) {
        free(e->u.literal.str);
    } else if (e->kind == VELO_EXPR_FIELD) {
        for (size_t i = 0; i < e->u.path.n; i++) {
            free(e->u.path.keys[i]);
        }
        free(e->u.path.keys);
    }
    free(e->text);
    free(e);
}

struct velo_expr *velo_expr_clone(const struct velo_expr *e)
{
    if (e == NULL) {
        errno = EINVAL;
        return NULL;
    }
    struct velo_expr *c = velo_expr_new(e->kind, e->type, e->nargs);
    if (c == NULL) {
        return NULL;
    }
    c->u = e->u;
    c->line = e->line;
    c->col = e->col;
    /* Pointers copied with the union must not be shared. */
    if (e->kind == VELO_EXPR_LITERAL) {
        c->u.literal.str = NULL;
    } else if (e->kind == VELO_EXPR_FIELD) {
        c->u.path.keys = NULL;
        c->u.path.n = 0;
    }
    if (e->text != NULL && (c->text = strdup(e->text)) == NULL) {
        goto fail;
    }
    if (e->kind == VELO_EXPR_LITERAL && e->u.literal.str != NULL) {
        c->u.literal.str = malloc(e->u.literal.len + 1);
        if (c->u.literal.str == NULL) {
            goto fail;
        }
        memcpy(c->u.literal.str, e->u.literal.str, e->u.literal.len);
        c->u.literal.str[e->u.literal.len] = '\0';
    }
    if (e->kind == VELO_EXPR_FIELD && e->u.path.n > 0) {
        c->u.path.keys = calloc(e->u.path.n, sizeof(char *));
        if (c->u.path.keys == NULL) {
            goto fail;
        }
        for (size_t i = 0; i < e->u.path.n; i++) {
            c->u.path.keys[i] = strdup(e->u.path.keys[i]);
            if (c->u.path.keys[i] == NULL) {
                c->u.path.n = i;
                goto fail;
            }
        }
        c->u.path.n = e->u.path.n;
    }
    for (size_t i = 0; i < e->nargs; i++) {
        c->args[i] = velo_expr_clone(e->args[i]);
        if (c->args[i] == NULL) {
            goto fail;
        }
    }
    return c;
fail:
    velo_expr_free(c);
    errno = ENOMEM;
    return NULL;
}

/* ---- Text form ---------------------------------------------------------- */

struct fmtbuf {
    char *buf;
    size_t len;
    size_t n; /* needed so far */
};

static void put(struct fmtbuf *f, const char *s, size_t n)
{
    if (f->len > 0 && f->n < f->len - 1) {
        size_t room = f->len - 1 - f->n;
        memcpy(f->buf + f->n, s, n < room ? n : room);
    }
    f->n += n;
}

static void puts_(struct fmtbuf *f, const char *s)
{
    put(f, s, strlen(s));
}

static void putf(struct fmtbuf *f, const char *fmt, ...) VELO_PRINTF(2, 3);
static void putf(struct fmtbuf *f, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0) {
        put(f, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
    }
}

static int is_ident(const char *s)
{
    if (s == NULL || *s == '\0' ||
        !(isalpha((unsigned char)*s) || *s == '_')) {
        return 0;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if (!isalnum((unsigned char)*p) && *p != '_') {
            return 0;
        }
    }
    return 1;
}

static void put_quoted(struct fmtbuf *f, const char *s, size_t n, char q)
{
    put(f, &q, 1);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == q) {
            put(f, &q, 1);
        }
        put(f, s + i, 1);
    }
    put(f, &q, 1);
}

static void put_ident(struct fmtbuf *f, const char *name)
{
    if (is_ident(name)) {
        puts_(f, name);
    } else {
        put_quoted(f, name, strlen(name), '"');
    }
}

static void put_literal(struct fmtbuf *f, const struct velo_expr *e)
{
    const struct velo_literal *l = &e->u.literal;
    char tmp[64];
    if (l->is_null || e->type.id == VELO_TYPE_NULL) {
        puts_(f, "NULL");
        return;
    }
    switch (e->type.id) {
    case VELO_TYPE_BOOLEAN:
        puts_(f, l->i64 ? "TRUE" : "FALSE");
        break;
    case VELO_TYPE_INTEGER:
    case VELO_TYPE_BIGINT:
        putf(f, "%lld", (long long)l->i64);
        break;
    case VELO_TYPE_DOUBLE:
        velo_format_double(l->f64, tmp, sizeof(tmp));
        puts_(f, tmp);
        if (strpbrk(tmp, ".eEn") == NULL) {
            puts_(f, "E0"); /* keep it a DOUBLE when read back */
        }
        break;
    case VELO_TYPE_DECIMAL:
        velo_dec_format(l->i64, e->type.scale, tmp, sizeof(tmp));
        puts_(f, tmp);
        break;
    case VELO_TYPE_TIMESTAMP:
        velo_format_timestamp(l->i64, tmp, sizeof(tmp));
        puts_(f, "TIMESTAMP ");
        put_quoted(f, tmp, strlen(tmp), '\'');
        break;
    case VELO_TYPE_DATE:
        velo_format_date(l->i64, tmp, sizeof(tmp));
        puts_(f, "DATE ");
        put_quoted(f, tmp, strlen(tmp), '\'');
        break;
    case VELO_TYPE_INTERVAL:
        velo_interval_format(l->i64, tmp, sizeof(tmp));
        puts_(f, "INTERVAL ");
        put_quoted(f, tmp, strlen(tmp), '\'');
        break;
    case VELO_TYPE_BYTES:
        puts_(f, "X'");
        for (size_t i = 0; i < l->len; i++) {
            putf(f, "%02x", (unsigned char)l->str[i]);
        }
        puts_(f, "'");
        break;
    case VELO_TYPE_JSON:
        puts_(f, "JSON ");
        put_quoted(f, l->str != NULL ? l->str : "", l->len, '\'');
        break;
    default:
        put_quoted(f, l->str != NULL ? l->str : "", l->len, '\'');
        break;
    }
}

static int is_operator_name(const char *name)
{
    return !isalpha((unsigned char)name[0]) || strcmp(name, "LIKE") == 0 ||
           strcmp(name, "ILIKE") == 0;
}

static void fmt_expr(struct fmtbuf *f, const struct velo_expr *e,
                     const struct velo_schema *input)
{
    char tbuf[32];
    switch (e->kind) {
    case VELO_EXPR_COLUMN:
        if (input != NULL && e->u.column >= 0 &&
            (size_t)e->u.column < input->n &&
            input->fields[e->u.column].name != NULL) {
            put_ident(f, input->fields[e->u.column].name);
        } else {
            putf(f, "$%d", e->u.column);
        }
        break;
    case VELO_EXPR_LITERAL:
        put_literal(f, e);
        break;
    case VELO_EXPR_CALL: {
        const char *name = e->u.call != NULL ? e->u.call->name : "?";
        if (is_operator_name(name) && e->nargs == 2) {
            puts_(f, "(");
            fmt_expr(f, e->args[0], input);
            putf(f, " %s ", name);
            fmt_expr(f, e->args[1], input);
            puts_(f, ")");
        } else if (is_operator_name(name) && e->nargs == 3) {
            puts_(f, "(");
            fmt_expr(f, e->args[0], input);
            putf(f, " %s ", name);
            fmt_expr(f, e->args[1], input);
            puts_(f, " ESCAPE ");
            fmt_expr(f, e->args[2], input);
            puts_(f, ")");
        } else if (is_operator_name(name) && e->nargs == 1) {
            putf(f, "(%s", name);
            fmt_expr(f, e->args[0], input);
            puts_(f, ")");
        } else {
            puts_(f, name);
            puts_(f, "(");
            for (size_t i = 0; i < e->nargs; i++) {
                if (i > 0) {
                    puts_(f, ", ");
                }
                fmt_expr(f, e->args[i], input);
            }
            puts_(f, ")");
        }
        break;
    }
    case VELO_EXPR_CAST:
        puts_(f, e->u.cast.try_ ? "TRY_CAST(" : "CAST(");
        if (e->nargs > 0) {
            fmt_expr(f, e->args[0], input);
        }
        puts_(f, " AS ");
        puts_(f, velo_type_name(e->type, tbuf, sizeof(tbuf)));
        puts_(f, ")");
        break;
    case VELO_EXPR_AND:
    case VELO_EXPR_OR:
        puts_(f, "(");
        for (size_t i = 0; i < e->nargs; i++) {
            if (i > 0) {
                puts_(f, e->kind == VELO_EXPR_AND ? " AND " : " OR ");
            }
            fmt_expr(f, e->args[i], input);
        }
        puts_(f, ")");
        break;
    case VELO_EXPR_NOT:
        puts_(f, "(NOT ");
        if (e->nargs > 0) {
            fmt_expr(f, e->args[0], input);
        }
        puts_(f, ")");
        break;
    case VELO_EXPR_IS_NULL:
        puts_(f, "(");
        if (e->nargs > 0) {
            fmt_expr(f, e->args[0], input);
        }
        puts_(f, e->u.negated ? " IS NOT NULL)" : " IS NULL)");
        break;
    case VELO_EXPR_CASE: {
        size_t npairs = (e->nargs - (e->u.has_else ? 1 : 0)) / 2;
        puts_(f, "CASE");
        for (size_t p = 0; p < npairs; p++) {
            puts_(f, " WHEN ");
            fmt_expr(f, e->args[2 * p], input);
            puts_(f, " THEN ");
            fmt_expr(f, e->args[2 * p + 1], input);
        }
        if (e->u.has_else && e->nargs > 0) {
            puts_(f, " ELSE ");
            fmt_expr(f, e->args[e->nargs - 1], input);
        }
        puts_(f, " END");
        break;
    }
    case VELO_EXPR_COALESCE:
        puts_(f, "COALESCE(");
        for (size_t i = 0; i < e->nargs; i++) {
            if (i > 0) {
                puts_(f, ", ");
            }
            fmt_expr(f, e->args[i], input);
        }
        puts_(f, ")");
        break;
    case VELO_EXPR_IN_LIST:
        puts_(f, "(");
        if (e->nargs > 0) {
            fmt_expr(f, e->args[0], input);
        }
        puts_(f, e->u.negated ? " NOT IN (" : " IN (");
        for (size_t i = 1; i < e->nargs; i++) {
            if (i > 1) {
                puts_(f, ", ");
            }
            fmt_expr(f, e->args[i], input);
        }
        puts_(f, "))");
        break;
    case VELO_EXPR_FIELD:
        if (e->nargs > 0) {
            fmt_expr(f, e->args[0], input);
        }
        for (size_t i = 0; i < e->u.path.n; i++) {
            const char *k = e->u.path.keys[i];
            if (is_ident(k)) {
                puts_(f, ".");
                puts_(f, k);
            } else {
                puts_(f, "[");
                put_quoted(f, k, strlen(k), '\'');
                puts_(f, "]");
            }
        }
        break;
    default:
        putf(f, "<expr %d>", e->kind);
        break;
    }
}

size_t velo_expr_format(const struct velo_expr *e,
                        const struct velo_schema *input, char *buf,
                        size_t len)
{
    struct fmtbuf f = {buf, len, 0};
    if (e != NULL) {
        fmt_expr(&f, e, input);
    }
    if (len > 0) {
        buf[f.n < len ? f.n : len - 1] = '\0';
    }
    return f.n;
}
