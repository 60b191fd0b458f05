/*
 * Diagnostics: collected while lexing, parsing and binding, shown like
 * PostgreSQL's ereport (code, message, detail, hint) with the source line
 * and a caret under the place.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "sql/ast.h"
#include "util/textbuf.h"

/* json_stringn, not json_string: a string of known length, and a symbol
 * no other module of the binary can shadow. */
/* Diagnostics quote the SQL line, which may hold credentials: a URI's
 * password (scheme://user:PASSWORD@host) and the values of properties whose
 * key names a secret ('x.password' = '...', 'x.kafka.sasl.password' = ...).
 * They are overwritten with '*' in place, so the caret still lines up. */
static int secret_key(const char *k, size_t n)
{
    static const char *const words[] = {"password", "secret", "token"};
    for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
        size_t wl = strlen(words[w]);
        for (size_t i = 0; i + wl <= n; i++) {
            if (strncasecmp(k + i, words[w], wl) == 0) {
                return 1;
            }
        }
    }
    return 0;
}

static void mask_secrets(char *line)
{
    /* scheme://user:password@host */
    for (char *p = strstr(line, "://"); p != NULL; p = strstr(p, "://")) {
        p += 3;
        size_t end = strcspn(p, "/?'\" \t");
        char *at = memchr(p, '@', end);
        if (at != NULL) {
            char *colon = memchr(p, ':', (size_t)(at - p));
            if (colon != NULL) {
                memset(colon + 1, '*', (size_t)(at - colon - 1));
            }
        }
    }
    /* 'key...password' = 'value' */
    for (char *q = strchr(line, '\''); q != NULL;) {
        char *qe = strchr(q + 1, '\'');
        if (qe == NULL) {
            break;
        }
        char *next = qe + 1;
        if (secret_key(q + 1, (size_t)(qe - q - 1))) {
            char *v = qe + 1;
            while (*v == ' ' || *v == '\t') {
                v++;
            }
            if (*v == '=') {
                v++;
                while (*v == ' ' || *v == '\t') {
                    v++;
                }
                if (*v == '\'') {
                    char *ve = strchr(v + 1, '\'');
                    if (ve == NULL) {
                        ve = v + 1 + strlen(v + 1);
                    }
                    memset(v + 1, '*', (size_t)(ve - v - 1));
                    next = *ve != '\0' ? ve + 1 : ve;
                }
            }
        }
        q = strchr(next, '\'');
    }
}

static json_t *jstr(const char *s)
{
    return json_stringn(s, strlen(s));
}

/* Source lines longer than this are shown as a window around the caret. */
#define DIAG_LINE_SHOW 160
#define DIAG_LINE_BEFORE 60


/* Room for one more; past the cap, one note and then counting only.
 * @return the slot, or NULL when the diagnostic is only counted. */
static struct velo_sql_diag *diag_slot(struct velo_sql_diags *ds,
                                       int severity)
{
    if (severity == SQL_ERROR) {
        ds->errors++;
    }
    size_t limit = SQL_MAX_DIAGS + 1;
    if (ds->n >= limit) {
        return NULL;
    }
    if (ds->n == ds->cap) {
        size_t cap = ds->cap ? ds->cap * 2 : 8;
        struct velo_sql_diag *n = realloc(ds->d, cap * sizeof(*n));
        if (n == NULL) {
            return NULL;
        }
        ds->d = n;
        ds->cap = cap;
    }
    struct velo_sql_diag *d = &ds->d[ds->n++];
    memset(d, 0, sizeof(*d));
    d->severity = severity;
    if (ds->n == limit) {
        /* The one past the cap says why the list ends here. */
        snprintf(d->code, sizeof(d->code), "V2099");
        d->severity = SQL_ERROR;
        d->len = 1;
        d->message = strdup("too many errors; the rest are not shown");
        d->hint = strdup("fix the errors above and run again");
        return NULL;
    }
    return d;
}

static void diag_fill(struct velo_sql_diag *d, const char *code,
                      const char *hint, const char *fmt, va_list ap)
{
    snprintf(d->code, sizeof(d->code), "%s", code);
    d->message = velo_vstrfmt(fmt, ap);
    d->hint = hint != NULL ? strdup(hint) : NULL;
    /* Messages quote names, and an anonymous source's name is its URI. */
    if (d->message != NULL) {
        mask_secrets(d->message);
    }
    if (d->hint != NULL) {
        mask_secrets(d->hint);
    }
}

void sql_diag(struct velo_sql_diags *ds, const struct sql_text *t,
              struct sql_pos pos, int severity, const char *code,
              const char *hint, const char *fmt, ...)
{
    struct velo_sql_diag *d = diag_slot(ds, severity);
    if (d == NULL) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    diag_fill(d, code, hint, fmt, ap);
    va_end(ap);
    d->len = 1;
    if (t == NULL || t->nlines == 0) {
        return;
    }
    sql_text_linecol(t, pos.off, &d->line, &d->col);
    uint32_t ls = t->line_starts[d->line - 1];
    uint32_t le = ls;
    while (le < t->len && t->text[le] != '\n') {
        le++;
    }
    uint32_t shown_end = le;
    if (shown_end > ls && t->text[shown_end - 1] == '\r') {
        shown_end--;
    }
    d->source_line = malloc(shown_end - ls + 1);
    if (d->source_line != NULL) {
        memcpy(d->source_line, t->text + ls, shown_end - ls);
        d->source_line[shown_end - ls] = '\0';
        /* A NUL byte would cut the line short of the caret. */
        for (uint32_t i = 0; i < shown_end - ls; i++) {
            if (d->source_line[i] == '\0') {
                d->source_line[i] = ' ';
            }
        }
        mask_secrets(d->source_line);
    }
    /* The underline covers the span's characters on this line. */
    uint32_t end = pos.off + pos.len;
    if (end > shown_end) {
        end = shown_end;
    }
    int n = 0;
    for (uint32_t i = pos.off; i < end; i++) {
        if (((unsigned char)t->text[i] & 0xC0) != 0x80) {
            n++;
        }
    }
    d->len = n > 0 ? n : 1;
}

void sql_diag_noplace(struct velo_sql_diags *ds, int severity,
                      const char *code, const char *hint, const char *fmt,
                      ...)
{
    struct velo_sql_diag *d = diag_slot(ds, severity);
    if (d == NULL) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    diag_fill(d, code, hint, fmt, ap);
    va_end(ap);
    d->len = 1;
}

void sql_diag_detail(struct velo_sql_diags *ds, const char *fmt, ...)
{
    if (ds->n == 0) {
        return;
    }
    struct velo_sql_diag *d = &ds->d[ds->n - 1];
    if (strcmp(d->code, "V2099") == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    free(d->detail);
    d->detail = velo_vstrfmt(fmt, ap);
    va_end(ap);
}

void sql_diags_sort(struct velo_sql_diags *ds, size_t from)
{
    /* Stable insertion sort by place; the "too many errors" note stays
     * last. Lists are short (at most SQL_MAX_DIAGS + 1). */
    size_t end = ds->n;
    if (end > from && strcmp(ds->d[end - 1].code, "V2099") == 0) {
        end--;
    }
    for (size_t k = from + 1; k < end; k++) {
        struct velo_sql_diag d = ds->d[k];
        size_t j = k;
        while (j > from && (ds->d[j - 1].line > d.line ||
                            (ds->d[j - 1].line == d.line &&
                             ds->d[j - 1].col > d.col))) {
            ds->d[j] = ds->d[j - 1];
            j--;
        }
        ds->d[j] = d;
    }
}

void velo_sql_diags_free(struct velo_sql_diags *ds)
{
    if (ds == NULL) {
        return;
    }
    for (size_t i = 0; i < ds->n; i++) {
        free(ds->d[i].message);
        free(ds->d[i].detail);
        free(ds->d[i].hint);
        free(ds->d[i].source_line);
    }
    free(ds->d);
    ds->d = NULL;
    ds->n = ds->cap = ds->errors = 0;
}

/* ---- Text --------------------------------------------------------------- */

/* Byte offset of character `ch` (0-based) in s, or strlen when past. */
static size_t char_offset(const char *s, size_t ch)
{
    size_t i = 0, c = 0;
    while (s[i] != '\0') {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (c == ch) {
                return i;
            }
            c++;
        }
        i++;
    }
    return i;
}

static size_t char_count(const char *s, size_t bytes)
{
    size_t c = 0;
    for (size_t i = 0; i < bytes && s[i] != '\0'; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            c++;
        }
    }
    return c;
}

static void format_caret(struct sql_buf *b, const struct velo_sql_diag *d)
{
    const char *line = d->source_line;
    size_t nchars = char_count(line, strlen(line));
    size_t col0 = d->col > 0 ? (size_t)d->col - 1 : 0;
    size_t from = 0, to = nchars;
    if (nchars > DIAG_LINE_SHOW) {
        from = col0 > DIAG_LINE_BEFORE ? col0 - DIAG_LINE_BEFORE : 0;
        to = from + DIAG_LINE_SHOW < nchars ? from + DIAG_LINE_SHOW : nchars;
    }
    size_t bfrom = char_offset(line, from);
    size_t bto = char_offset(line, to);
    sql_buf_puts(b, "  ");
    size_t lead = 0;
    if (from > 0) {
        sql_buf_puts(b, "...");
        lead = 3;
    }
    /* Tabs become one space each, so the caret lines up in any terminal. */
    for (size_t i = bfrom; i < bto; i++) {
        char c = line[i];
        sql_buf_add(b, c == '\t' ? " " : &line[i], 1);
    }
    if (to < nchars) {
        sql_buf_puts(b, "...");
    }
    sql_buf_puts(b, "\n  ");
    size_t pad = lead + (col0 >= from ? col0 - from : 0);
    for (size_t i = 0; i < pad; i++) {
        sql_buf_add(b, " ", 1);
    }
    sql_buf_add(b, "^", 1);
    size_t len = d->len > 0 ? (size_t)d->len : 1;
    if (col0 + len > to) {
        len = to > col0 ? to - col0 : 1;
    }
    for (size_t i = 1; i < len; i++) {
        sql_buf_add(b, "~", 1);
    }
    sql_buf_add(b, "\n", 1);
}

char *velo_sql_diags_format(const struct velo_sql_diags *ds,
                            const char *filename)
{
    struct sql_buf b = {0};
    const char *fn = filename != NULL ? filename : "<sql>";
    for (size_t i = 0; ds != NULL && i < ds->n; i++) {
        const struct velo_sql_diag *d = &ds->d[i];
        const char *sev = d->severity == SQL_WARNING ? "warning" : "error";
        if (d->line > 0) {
            sql_buf_printf(&b, "%s:%d:%d: %s %s: %s\n", fn, d->line, d->col,
                           sev, d->code, d->message ? d->message : "");
        } else {
            sql_buf_printf(&b, "%s: %s %s: %s\n", fn, sev, d->code,
                           d->message ? d->message : "");
        }
        if (d->line > 0 && d->source_line != NULL) {
            format_caret(&b, d);
        }
        if (d->detail != NULL) {
            sql_buf_printf(&b, "  detail: %s\n", d->detail);
        }
        if (d->hint != NULL) {
            sql_buf_printf(&b, "  hint: %s\n", d->hint);
        }
    }
    return sql_buf_take(&b);
}

static json_t *str_or_null(const char *s)
{
    return s != NULL ? jstr(s) : json_null();
}

char *velo_sql_diags_json(const struct velo_sql_diags *ds,
                          const char *filename)
{
    json_t *arr = json_array();
    if (arr == NULL) {
        return NULL;
    }
    for (size_t i = 0; ds != NULL && i < ds->n; i++) {
        const struct velo_sql_diag *d = &ds->d[i];
        json_t *o = json_object();
        if (o == NULL) {
            json_decref(arr);
            return NULL;
        }
        if (filename != NULL) {
            json_object_set_new(o, "file", jstr(filename));
        }
        json_object_set_new(o, "code", jstr(d->code));
        json_object_set_new(o, "severity",
                            jstr(d->severity == SQL_WARNING
                                            ? "warning"
                                            : "error"));
        json_object_set_new(o, "line", json_integer(d->line));
        json_object_set_new(o, "column", json_integer(d->col));
        json_object_set_new(o, "length", json_integer(d->len));
        json_object_set_new(o, "message", str_or_null(d->message));
        json_object_set_new(o, "detail", str_or_null(d->detail));
        json_object_set_new(o, "hint", str_or_null(d->hint));
        json_object_set_new(o, "source_line", str_or_null(d->source_line));
        json_array_append_new(arr, o);
    }
    char *s = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(arr);
    if (s == NULL) {
        return NULL;
    }
    /* json_dumps' memory comes from jansson's allocator (malloc by
     * default); hand back a plain malloc'd copy with a final newline. */
    size_t n = strlen(s);
    char *r = malloc(n + 2);
    if (r != NULL) {
        memcpy(r, s, n);
        r[n] = '\n';
        r[n + 1] = '\0';
    }
    free(s);
    return r;
}
