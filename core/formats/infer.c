/*
 * Schema inference from the first bytes of a stream: column names from a
 * CSV header (or c1, c2, ...) or from JSON keys in first-seen order, and
 * types from the values seen (format.h lists the rules).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <velo/log.h>

#include "formats/format-internal.h"

/* What a column's values looked like, one bit per kind. */
enum seen_kind {
    SEEN_BOOL = 1 << 0,
    SEEN_INT = 1 << 1,
    SEEN_DOUBLE = 1 << 2,
    SEEN_TS = 1 << 3,
    SEEN_DATE = 1 << 4,
    SEEN_JSON = 1 << 5,
    SEEN_STRING = 1 << 6
};

struct icol {
    char *name;
    unsigned seen;
};

struct icols {
    struct icol *v;
    size_t n, cap;
};

static int icols_add(struct icols *c, const char *name, size_t len)
{
    if (c->n == c->cap) {
        size_t cap = c->cap == 0 ? 16 : c->cap * 2;
        struct icol *nv = realloc(c->v, cap * sizeof(*nv));
        if (nv == NULL) {
            return VELO_ERR;
        }
        c->v = nv;
        c->cap = cap;
    }
    char *nm = malloc(len + 1);
    if (nm == NULL) {
        return VELO_ERR;
    }
    memcpy(nm, name, len);
    nm[len] = '\0';
    c->v[c->n].name = nm;
    c->v[c->n].seen = 0;
    c->n++;
    return VELO_OK;
}

static void icols_free(struct icols *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->v[i].name);
    }
    free(c->v);
}

static int has_digit(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((unsigned)(s[i] - '0') < 10u) {
            return 1;
        }
    }
    return 0;
}

/* A scalar written as text (CSV fields, JSON strings when `numbers`
 * is 0: a quoted "12" in JSON is a string). */
static unsigned classify_text(const char *s, size_t n, int numbers)
{
    while (n > 0 && fmt_is_space(*s)) {
        s++;
        n--;
    }
    while (n > 0 && fmt_is_space(s[n - 1])) {
        n--;
    }
    if (n == 0) {
        return 0;
    }
    if (numbers) {
        if ((n == 4 && strncasecmp(s, "true", 4) == 0) ||
            (n == 5 && strncasecmp(s, "false", 5) == 0)) {
            return SEEN_BOOL;
        }
        int64_t i;
        int rc = fmt_parse_i64(s, n, &i);
        if (rc == VELO_OK) {
            return SEEN_INT;
        }
        double d;
        if ((rc == VELO_AGAIN || has_digit(s, n)) &&
            fmt_parse_double(s, n, &d) == VELO_OK) {
            return SEEN_DOUBLE;
        }
    }
    int64_t v;
    if (n == 10 && velo_parse_date(s, n, &v) == VELO_OK) {
        return SEEN_DATE;
    }
    if (n > 10 && velo_parse_timestamp(s, n, &v) == VELO_OK) {
        return SEEN_TS;
    }
    return SEEN_STRING;
}

static struct velo_datatype type_for(unsigned seen)
{
    struct velo_datatype t = {VELO_TYPE_STRING, 0, 0};
    if (seen == SEEN_BOOL) {
        t.id = VELO_TYPE_BOOLEAN;
    } else if (seen == SEEN_INT) {
        t.id = VELO_TYPE_BIGINT;
    } else if (seen != 0 && (seen & ~(unsigned)(SEEN_INT | SEEN_DOUBLE)) == 0) {
        t.id = VELO_TYPE_DOUBLE;
    } else if (seen == SEEN_DATE) {
        t.id = VELO_TYPE_DATE;
    } else if (seen != 0 && (seen & ~(unsigned)(SEEN_TS | SEEN_DATE)) == 0) {
        t.id = VELO_TYPE_TIMESTAMP;
    } else if (seen == SEEN_JSON) {
        t.id = VELO_TYPE_JSON;
    }
    return t;
}

static struct velo_schema *build(struct icols *c, char *err, size_t errlen)
{
    for (size_t i = 0; i < c->n; i++) {
        if (strlen(c->v[i].name) >= VELO_NAME_MAX) {
            snprintf(err, errlen,
                     "column %zu's name is longer than %d "
                     "bytes; shorten it",
                     i + 1, VELO_NAME_MAX - 1);
            return NULL;
        }
        if (strcasecmp(c->v[i].name, "_timestamp") == 0) {
            snprintf(err, errlen,
                     "a column may not be named _timestamp "
                     "(the system column of every source); "
                     "rename it in the input");
            return NULL;
        }
        for (size_t k = 0; k < i; k++) {
            if (strcasecmp(c->v[k].name, c->v[i].name) == 0) {
                snprintf(err, errlen,
                         "columns %zu and %zu are both named "
                         "'%s'; names must be unique (rename "
                         "one)",
                         k + 1, i + 1, c->v[i].name);
                return NULL;
            }
        }
    }
    struct velo_schema *s = velo_schema_create(c->n + 1);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < c->n; i++) {
        if (velo_schema_set(s, i, c->v[i].name, type_for(c->v[i].seen), 1, 0) !=
            VELO_OK) {
            velo_schema_destroy(s);
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
    }
    struct velo_datatype ts = {VELO_TYPE_TIMESTAMP, 0, 0};
    if (velo_schema_set(s, c->n, "_timestamp", ts, 1, 1) != VELO_OK) {
        velo_schema_destroy(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    return s;
}

/* ---- CSV ---------------------------------------------------------------- */

/* One record's fields; calls fn for each. @return CSV_LAST (record done),
 * CSV_PARTIAL, or CSV_BAD; *next past the record. */
typedef int (*field_fn)(void *arg, size_t idx, const struct csv_field *f,
                        const char *text, size_t len);

static int csv_record(const struct velo_format_opts *o, const char *p,
                      const char *end, int eof, const char **next, field_fn fn,
                      void *arg, char *tmp)
{
    size_t idx = 0;
    for (;;) {
        struct csv_field f;
        const char *nx = end, *msg = NULL;
        int st =
            fmt_csv_field(p, end, eof, o->delimiter, o->quote, &f, &nx, &msg);
        if (st == CSV_PARTIAL) {
            return CSV_PARTIAL;
        }
        if (st == CSV_BAD) {
            *next = nx;
            return CSV_BAD;
        }
        const char *text = f.s;
        size_t len = f.n;
        if (f.escaped) {
            len = fmt_csv_unescape(&f, o->quote, tmp);
            text = tmp;
        }
        if (fn(arg, idx++, &f, text, len) != VELO_OK) {
            return CSV_BAD;
        }
        p = nx;
        if (st == CSV_LAST) {
            *next = p;
            return CSV_LAST;
        }
    }
}

struct csv_infer {
    struct icols cols;
    const struct velo_format_opts *o;
    int oom;
};

static int header_field(void *arg, size_t idx, const struct csv_field *f,
                        const char *text, size_t len)
{
    struct csv_infer *ci = arg;
    (void)f;
    while (len > 0 && fmt_is_space(*text)) {
        text++;
        len--;
    }
    while (len > 0 && fmt_is_space(text[len - 1])) {
        len--;
    }
    char gen[32];
    if (len == 0) {
        int n = snprintf(gen, sizeof(gen), "c%zu", idx + 1);
        text = gen;
        len = (size_t)n;
    }
    if (icols_add(&ci->cols, text, len) != VELO_OK) {
        ci->oom = 1;
        return VELO_ERR;
    }
    return VELO_OK;
}

static int value_field(void *arg, size_t idx, const struct csv_field *f,
                       const char *text, size_t len)
{
    struct csv_infer *ci = arg;
    if (idx >= ci->cols.n) {
        if (ci->o->header) {
            return VELO_OK; /* more fields than the header names */
        }
        while (ci->cols.n <= idx) {
            char gen[32];
            int n = snprintf(gen, sizeof(gen), "c%zu", ci->cols.n + 1);
            if (icols_add(&ci->cols, gen, (size_t)n) != VELO_OK) {
                ci->oom = 1;
                return VELO_ERR;
            }
        }
    }
    if (!f->quoted) {
        const char *nt = ci->o->null_text != NULL ? ci->o->null_text : "";
        if (len == 0 || (nt[0] != '\0' && strlen(nt) == len &&
                         memcmp(nt, text, len) == 0)) {
            return VELO_OK;
        }
    }
    ci->cols.v[idx].seen |= classify_text(text, len, 1);
    return VELO_OK;
}

static struct velo_schema *infer_csv(const struct velo_format_opts *o,
                                     const char *sample, size_t len, char *err,
                                     size_t errlen)
{
    struct csv_infer ci = {{0}, o, 0};
    const char *p = sample, *end = sample + len;
    char *tmp = malloc(len + 1);
    if (tmp == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) {
        p += 3;
    }
    while (p < end && (*p == '\n' || *p == '\r')) {
        p++;
    }
    if (p == end) {
        free(tmp);
        snprintf(err, errlen,
                 "the input is empty, so its columns cannot be "
                 "inferred; declare them, or read a file that "
                 "has data");
        return NULL;
    }
    /* A sample that stops inside its last line: that line is cut short
     * unless it is the only one. */
    int whole = end[-1] == '\n';
    if (o->header) {
        const char *next = end;
        int st = csv_record(o, p, end, 1, &next, header_field, &ci, tmp);
        if (st != CSV_LAST) {
            free(tmp);
            icols_free(&ci.cols);
            snprintf(err, errlen,
                     ci.oom ? "out of memory"
                            : "the CSV header line is not "
                              "valid CSV (check its quotes)");
            return NULL;
        }
        p = next;
    }
    size_t rows = 0;
    while (p < end && !ci.oom) {
        if (*p == '\n' || *p == '\r') {
            p++;
            continue;
        }
        const char *next = end;
        int st = csv_record(o, p, end, whole || rows == 0, &next, value_field,
                            &ci, tmp);
        if (st == CSV_PARTIAL) {
            break;
        }
        rows++;
        p = next;
    }
    free(tmp);
    if (ci.oom) {
        icols_free(&ci.cols);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    struct velo_schema *s = build(&ci.cols, err, errlen);
    icols_free(&ci.cols);
    return s;
}

/* ---- JSON --------------------------------------------------------------- */

static int json_col(struct icols *c, const char *key, size_t klen)
{
    for (size_t i = 0; i < c->n; i++) {
        if (strlen(c->v[i].name) == klen &&
            memcmp(c->v[i].name, key, klen) == 0) {
            return (int)i;
        }
    }
    return icols_add(c, key, klen) == VELO_OK ? (int)c->n - 1 : -1;
}

/* The top-level keys of one line. @return VELO_OK, VELO_DECLINED (not an
 * object: skipped), VELO_ERR (out of memory). */
static int json_line(struct icols *c, const char *p, const char *e)
{
    /* Validate first, so a broken line adds no keys. */
    const char *msg = NULL;
    const char *s = fmt_json_ws(p, e);
    if (s == e || *s != '{') {
        return VELO_DECLINED;
    }
    const char *after = fmt_json_skip(s, e, 0, &msg);
    if (after == NULL || fmt_json_ws(after, e) != e) {
        return VELO_DECLINED;
    }
    p = fmt_json_ws(s + 1, e);
    if (*p == '}') {
        return VELO_OK;
    }
    for (;;) {
        const char *ks;
        size_t kn;
        int esc;
        p = fmt_json_string(p, e, &ks, &kn, &esc);
        char kb[VELO_NAME_MAX * 2];
        if (esc) {
            size_t m =
                kn <= sizeof(kb) ? fmt_json_unescape(ks, kn, kb) : (size_t)-1;
            if (m == (size_t)-1) {
                return VELO_DECLINED;
            }
            ks = kb;
            kn = m;
        }
        int col = json_col(c, ks, kn);
        if (col < 0) {
            return VELO_ERR;
        }
        p = fmt_json_ws(p, e);
        p = fmt_json_ws(p + 1, e); /* ':' */
        const char *v = p;
        p = fmt_json_skip(p, e, 0, &msg);
        unsigned seen = 0;
        switch (*v) {
        case '"': {
            const char *ss;
            size_t sn;
            fmt_json_string(v, e, &ss, &sn, &esc);
            seen = esc ? SEEN_STRING : classify_text(ss, sn, 0);
            if (seen == 0) {
                seen = SEEN_STRING; /* "" */
            }
            break;
        }
        case '{':
        case '[':
            seen = SEEN_JSON;
            break;
        case 't':
        case 'f':
            seen = SEEN_BOOL;
            break;
        case 'n':
            break;
        default: {
            int is_int;
            fmt_json_number(v, e, &is_int);
            int64_t i;
            seen = is_int && fmt_parse_i64(v, (size_t)(p - v), &i) == VELO_OK
                       ? SEEN_INT
                       : SEEN_DOUBLE;
            break;
        }
        }
        c->v[col].seen |= seen;
        p = fmt_json_ws(p, e);
        if (*p == '}') {
            return VELO_OK;
        }
        p = fmt_json_ws(p + 1, e); /* ',' */
    }
}

static struct velo_schema *infer_json(const char *sample, size_t len, char *err,
                                      size_t errlen)
{
    struct icols c = {0};
    const char *p = sample, *end = sample + len;
    size_t objects = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl != NULL ? nl : end;
        int rc = json_line(&c, p, le);
        if (rc == VELO_ERR) {
            icols_free(&c);
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        objects += rc == VELO_OK;
        p = nl != NULL ? nl + 1 : end;
    }
    if (objects == 0) {
        icols_free(&c);
        snprintf(err, errlen,
                 len == 0 ? "the input is empty, so its columns cannot be "
                            "inferred; declare them, or read a file that "
                            "has data"
                          : "no JSON object found in the first %zu bytes (a "
                            "JSON Lines input has one object per line); "
                            "check the format property",
                 len);
        return NULL;
    }
    struct velo_schema *s = build(&c, err, errlen);
    icols_free(&c);
    return s;
}

struct velo_schema *velo_infer_schema(const struct velo_format_opts *o,
                                      const char *sample, size_t len, char *err,
                                      size_t errlen)
{
    if (o == NULL) {
        snprintf(err, errlen, "no format");
        errno = EINVAL;
        return NULL;
    }
    if (sample == NULL) {
        sample = "";
        len = 0;
    }
    switch (o->kind) {
    case VELO_FORMAT_CSV:
        return infer_csv(o, sample, len, err, errlen);
    case VELO_FORMAT_JSON:
        return infer_json(sample, len, err, errlen);
    case VELO_FORMAT_RAW: {
        struct icols c = {0};
        if (icols_add(&c, "data", 4) != VELO_OK) {
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        c.v[0].seen = SEEN_STRING;
        struct velo_schema *s = build(&c, err, errlen);
        icols_free(&c);
        return s;
    }
    }
    snprintf(err, errlen,
             "format 'table' is for output only; read csv, "
             "json or raw");
    errno = EINVAL;
    return NULL;
}
