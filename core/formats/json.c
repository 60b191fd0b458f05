/*
 * The JSON Lines scanner: one object per line, no DOM.
 *
 * A line is found with memchr first, so every scan below is bounded by
 * its end and a broken line cannot swallow the next. Keys are matched to
 * the needed columns through a remembered key order (lines of one stream
 * almost always repeat it: one memcmp per key), falling back to a search
 * by name. Values of columns nobody needs are skipped (validated, not
 * converted); nested objects and arrays are kept as views of their JSON
 * text; strings are views unless they hold escapes, which are decoded
 * into the batch's arena.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <velo/log.h>

#include "formats/format-internal.h"

/* ---- tokens ------------------------------------------------------------- */

const char *fmt_json_string(const char *p, const char *end, const char **s,
                            size_t *n, int *escaped)
{
    const char *q = p + 1;
    *escaped = 0;
    for (;;) {
        const char *e = fmt_find2(q, end, '"', '\\');
        if (e == end) {
            return NULL;
        }
        if (*e == '\\') {
            *escaped = 1;
            if (e + 1 >= end) {
                return NULL;
            }
            q = e + 2;
            continue;
        }
        *s = p + 1;
        *n = (size_t)(e - (p + 1));
        return e + 1;
    }
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        unsigned d;
        if (c >= '0' && c <= '9') {
            d = (unsigned)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            d = (unsigned)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            d = (unsigned)(c - 'A' + 10);
        } else {
            return 0;
        }
        v = v * 16 + d;
    }
    *out = v;
    return 1;
}

static size_t put_utf8(char *dst, unsigned cp)
{
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (char)(0xC0 | (cp >> 6));
        dst[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (char)(0xE0 | (cp >> 12));
        dst[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        dst[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    dst[0] = (char)(0xF0 | (cp >> 18));
    dst[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    dst[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    dst[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t fmt_json_unescape(const char *s, size_t n, char *dst)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c != '\\') {
            dst[o++] = c;
            continue;
        }
        if (++i >= n) {
            return (size_t)-1;
        }
        switch (s[i]) {
        case '"':
        case '\\':
        case '/':
            dst[o++] = s[i];
            break;
        case 'b':
            dst[o++] = '\b';
            break;
        case 'f':
            dst[o++] = '\f';
            break;
        case 'n':
            dst[o++] = '\n';
            break;
        case 'r':
            dst[o++] = '\r';
            break;
        case 't':
            dst[o++] = '\t';
            break;
        case 'u': {
            unsigned cp;
            if (i + 4 >= n || !hex4(s + i + 1, &cp)) {
                return (size_t)-1;
            }
            i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (i + 6 < n && s[i + 1] == '\\' && s[i + 2] == 'u' &&
                    hex4(s + i + 3, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                } else {
                    cp = 0xFFFD; /* a lone high surrogate */
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                cp = 0xFFFD; /* a lone low surrogate */
            }
            o += put_utf8(dst + o, cp);
            break;
        }
        default:
            return (size_t)-1;
        }
    }
    return o;
}

const char *fmt_json_number(const char *p, const char *end, int *is_int)
{
    const char *q = p;
    *is_int = 1;
    if (q < end && *q == '-') {
        q++;
    }
    if (q == end || (unsigned)(*q - '0') >= 10u) {
        return NULL;
    }
    if (*q == '0') {
        q++;
    } else {
        while (q < end && (unsigned)(*q - '0') < 10u) {
            q++;
        }
    }
    if (q < end && *q == '.') {
        *is_int = 0;
        q++;
        if (q == end || (unsigned)(*q - '0') >= 10u) {
            return NULL;
        }
        while (q < end && (unsigned)(*q - '0') < 10u) {
            q++;
        }
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        *is_int = 0;
        q++;
        if (q < end && (*q == '+' || *q == '-')) {
            q++;
        }
        if (q == end || (unsigned)(*q - '0') >= 10u) {
            return NULL;
        }
        while (q < end && (unsigned)(*q - '0') < 10u) {
            q++;
        }
    }
    return q;
}

static const char *literal(const char *p, const char *end, const char *w,
                           size_t n)
{
    return (size_t)(end - p) >= n && memcmp(p, w, n) == 0 ? p + n : NULL;
}

const char *fmt_json_skip(const char *p, const char *end, int depth,
                          const char **msg)
{
    p = fmt_json_ws(p, end);
    if (p >= end) {
        *msg = "a value is missing";
        return NULL;
    }
    const char *s;
    size_t n;
    int esc, is_int;
    switch (*p) {
    case '"': {
        const char *q = fmt_json_string(p, end, &s, &n, &esc);
        if (q == NULL) {
            *msg = "a string is not closed";
        }
        return q;
    }
    case '{':
    case '[': {
        char close = *p == '{' ? '}' : ']';
        if (depth >= JSON_MAX_DEPTH) {
            *msg = "nested deeper than 256 levels";
            return NULL;
        }
        p = fmt_json_ws(p + 1, end);
        if (p < end && *p == close) {
            return p + 1;
        }
        for (;;) {
            if (close == '}') {
                if (p >= end || *p != '"') {
                    *msg = "expected a key in double quotes";
                    return NULL;
                }
                p = fmt_json_string(p, end, &s, &n, &esc);
                if (p == NULL) {
                    *msg = "a key is not closed";
                    return NULL;
                }
                p = fmt_json_ws(p, end);
                if (p >= end || *p != ':') {
                    *msg = "expected ':' after a key";
                    return NULL;
                }
                p++;
            }
            p = fmt_json_skip(p, end, depth + 1, msg);
            if (p == NULL) {
                return NULL;
            }
            p = fmt_json_ws(p, end);
            if (p < end && *p == ',') {
                p = fmt_json_ws(p + 1, end);
                continue;
            }
            if (p < end && *p == close) {
                return p + 1;
            }
            *msg = close == '}' ? "expected ',' or '}' in an object"
                                : "expected ',' or ']' in an array";
            return NULL;
        }
    }
    case 't':
        s = literal(p, end, "true", 4);
        break;
    case 'f':
        s = literal(p, end, "false", 5);
        break;
    case 'n':
        s = literal(p, end, "null", 4);
        break;
    default:
        s = fmt_json_number(p, end, &is_int);
        break;
    }
    if (s == NULL) {
        *msg = "not a JSON value (strings need double quotes; true, false "
               "and null are lower case)";
    }
    return s;
}

/* ---- rows --------------------------------------------------------------- */

enum row_status { ROW_OK, ROW_BAD, ROW_PARTIAL, ROW_BLANK };

static int match_key(struct velo_decoder *d, size_t k, const char *key,
                     size_t klen, int cacheable)
{
    if (cacheable && k < DEC_PRED_KEYS) {
        const struct dec_pred *pr = &d->pred[k];
        if (pr->len == klen && klen > 0) {
            /* Keys are short: a byte loop beats a call to memcmp. */
            size_t i = 0;
            while (i < klen && pr->key[i] == key[i]) {
                i++;
            }
            if (i == klen) {
                return pr->col;
            }
        }
    }
    int col = -1;
    for (size_t c = 0; c < d->ncols; c++) {
        const struct dec_col *dc = &d->cols[c];
        if (!dc->hidden && dc->name_len == klen &&
            strncasecmp(dc->name, key, klen) == 0) {
            col = dc->needed ? (int)c : -1;
            break;
        }
    }
    if (cacheable && k < DEC_PRED_KEYS && klen > 0 &&
        klen <= DEC_PRED_KEY_LEN) {
        struct dec_pred *pr = &d->pred[k];
        memcpy(pr->key, key, klen);
        pr->len = (uint8_t)klen;
        pr->col = col;
    }
    return col;
}

static void syntax(struct velo_decoder *d, const char *line, const char *at,
                   const char *what)
{
    snprintf(d->msg, sizeof(d->msg), "invalid JSON at column %zu: %s",
             (size_t)(at - line) + 1, what);
}

static int is_int_type(uint8_t t)
{
    return t == VELO_TYPE_BIGINT || t == VELO_TYPE_INTEGER;
}

/* Store the value at p in column ci. @return past it, or NULL (d->msg). */
static const char *json_value(struct velo_decoder *d, size_t ci,
                              const char *line, const char *p, const char *end,
                              struct velo_batch *out, size_t row)
{
    struct velo_column *c = &out->cols[ci];
    const uint8_t t = d->cols[ci].type;
    const char *q, *msg = NULL;
    switch (*p) {
    case '"': {
        const char *s;
        size_t n;
        int esc;
        q = fmt_json_string(p, end, &s, &n, &esc);
        if (q == NULL) {
            syntax(d, line, p, "a string is not closed");
            return NULL;
        }
        if (t == VELO_TYPE_JSON) {
            c->v.str[row].ptr = p;
            c->v.str[row].len = (size_t)(q - p);
            c->nulls[row] = 0;
            return q;
        }
        if (esc) {
            char *copy = velo_arena_alloc(out->arena, n > 0 ? n : 1);
            if (copy == NULL) {
                snprintf(d->msg, sizeof(d->msg),
                         "out of memory copying column %s", d->cols[ci].name);
                return NULL;
            }
            size_t m = fmt_json_unescape(s, n, copy);
            if (m == (size_t)-1) {
                syntax(d, line, p, "a string holds an invalid escape");
                return NULL;
            }
            s = copy;
            n = m;
        }
        if (t == VELO_TYPE_STRING || t == VELO_TYPE_BYTES) {
            c->v.str[row].ptr = s;
            c->v.str[row].len = n;
            c->nulls[row] = 0;
            return q;
        }
        return fmt_store_text(d, ci, c, row, s, n, 1) == VELO_OK ? q : NULL;
    }
    case '{':
    case '[':
        q = fmt_json_skip(p, end, 0, &msg);
        if (q == NULL) {
            syntax(d, line, p, msg);
            return NULL;
        }
        if (t != VELO_TYPE_JSON && t != VELO_TYPE_STRING) {
            fmt_bad_value(d, ci, p, (size_t)(q - p),
                          *p == '{' ? "a scalar (it is an object)"
                                    : "a scalar (it is an array)");
            return NULL;
        }
        c->v.str[row].ptr = p;
        c->v.str[row].len = (size_t)(q - p);
        c->nulls[row] = 0;
        return q;
    case 'n':
        q = literal(p, end, "null", 4);
        if (q == NULL) {
            break;
        }
        fmt_set_null(c, row);
        return q;
    case 't':
    case 'f': {
        int v = *p == 't';
        q = v ? literal(p, end, "true", 4) : literal(p, end, "false", 5);
        if (q == NULL) {
            break;
        }
        if (t == VELO_TYPE_BOOLEAN) {
            c->v.u8[row] = (uint8_t)v;
            c->nulls[row] = 0;
            return q;
        }
        if (t == VELO_TYPE_STRING || t == VELO_TYPE_JSON) {
            c->v.str[row].ptr = p;
            c->v.str[row].len = (size_t)(q - p);
            c->nulls[row] = 0;
            return q;
        }
        fmt_bad_value(d, ci, p, (size_t)(q - p), NULL);
        return NULL;
    }
    default: {
        if (is_int_type(t)) {
            /* The common case, parsed in one pass. */
            const char *r = p;
            int neg = 0;
            if (*r == '-') {
                neg = 1;
                r++;
            }
            const char *ds = r;
            uint64_t v = 0;
            const char *lim = end - r > 18 ? r + 18 : end;
            while (r < lim && (unsigned)(*r - '0') < 10u) {
                v = v * 10 + (uint64_t)(*r - '0');
                r++;
            }
            if (r > ds && (r == end || (*r != '.' && *r != 'e' && *r != 'E' &&
                                        (unsigned)(*r - '0') >= 10u))) {
                int64_t iv = neg ? -(int64_t)v : (int64_t)v;
                if (t == VELO_TYPE_BIGINT ||
                    (iv >= INT32_MIN && iv <= INT32_MAX)) {
                    c->v.i64[row] = iv;
                    c->nulls[row] = 0;
                    return r;
                }
            }
        }
        int is_int;
        q = fmt_json_number(p, end, &is_int);
        if (q == NULL) {
            break;
        }
        size_t n = (size_t)(q - p);
        if (t == VELO_TYPE_STRING || t == VELO_TYPE_JSON) {
            c->v.str[row].ptr = p;
            c->v.str[row].len = n;
            c->nulls[row] = 0;
            return q;
        }
        if (is_int_type(t) && !is_int) {
            /* 1.0 or 1e3 is a whole number written another way. */
            double dv;
            if (fmt_parse_double(p, n, &dv) == VELO_OK &&
                dv >= -9223372036854775808.0 && dv < 9223372036854775808.0 &&
                dv == (double)(int64_t)dv) {
                int64_t iv = (int64_t)dv;
                if (t == VELO_TYPE_BIGINT ||
                    (iv >= INT32_MIN && iv <= INT32_MAX)) {
                    c->v.i64[row] = iv;
                    c->nulls[row] = 0;
                    return q;
                }
            }
            fmt_bad_value(d, ci, p, n, NULL);
            return NULL;
        }
        return fmt_store_text(d, ci, c, row, p, n, 0) == VELO_OK ? q : NULL;
    }
    }
    syntax(d, line, p,
           "not a JSON value (strings need double quotes; true, false and "
           "null are lower case)");
    return NULL;
}

/* Parse one line [s, e) into row. */
static int json_row(struct velo_decoder *d, const char *s, const char *e,
                    struct velo_batch *out, size_t row)
{
    const char *p = fmt_json_ws(s, e);
    if (p == e) {
        return ROW_BLANK;
    }
    if (*p != '{') {
        syntax(d, s, p,
               "a JSON Lines record is one object per line ({\"key\": "
               "value, ...})");
        return ROW_BAD;
    }
    if (++d->gen == 0) {
        memset(d->seen, 0, d->ncols * sizeof(*d->seen));
        d->gen = 1;
    }
    const uint32_t gen = d->gen;
    p = fmt_json_ws(p + 1, e);
    size_t k = 0;
    if (p < e && *p == '}') {
        p++;
    } else {
        for (;;) {
            if (p >= e || *p != '"') {
                syntax(d, s, p, "expected a key in double quotes");
                return ROW_BAD;
            }
            const char *key = p + 1;
            const char *kq = fmt_find2(key, e, '"', '\\');
            size_t klen;
            int col;
            if (kq < e && *kq == '"') {
                klen = (size_t)(kq - key);
                col = match_key(d, k, key, klen, 1);
                p = kq + 1;
            } else {
                const char *ks;
                int esc;
                p = fmt_json_string(p, e, &ks, &klen, &esc);
                if (p == NULL) {
                    syntax(d, s, key - 1, "a key is not closed");
                    return ROW_BAD;
                }
                char kb[256];
                size_t m = klen <= sizeof(kb) ? fmt_json_unescape(ks, klen, kb)
                                              : (size_t)-1;
                col = m != (size_t)-1 ? match_key(d, k, kb, m, 0) : -1;
            }
            k++;
            p = fmt_json_ws(p, e);
            if (p >= e || *p != ':') {
                syntax(d, s, p, "expected ':' after a key");
                return ROW_BAD;
            }
            p = fmt_json_ws(p + 1, e);
            if (p >= e) {
                syntax(d, s, p, "a value is missing");
                return ROW_BAD;
            }
            if (col < 0) {
                const char *msg = NULL;
                const char *q = fmt_json_skip(p, e, 0, &msg);
                if (q == NULL) {
                    syntax(d, s, p, msg);
                    return ROW_BAD;
                }
                p = q;
            } else {
                p = json_value(d, (size_t)col, s, p, e, out, row);
                if (p == NULL) {
                    return ROW_BAD;
                }
                d->seen[col] = gen;
            }
            p = fmt_json_ws(p, e);
            if (p < e && *p == ',') {
                p = fmt_json_ws(p + 1, e);
                continue;
            }
            if (p < e && *p == '}') {
                p++;
                break;
            }
            syntax(d, s, p, "expected ',' or '}' after a value");
            return ROW_BAD;
        }
    }
    p = fmt_json_ws(p, e);
    if (p != e) {
        syntax(d, s, p,
               "unexpected text after the object (one object per "
               "line)");
        return ROW_BAD;
    }
    /* Keys the object did not have are NULL. */
    for (size_t c = 0; c < d->ncols; c++) {
        if (d->cols[c].needed && d->seen[c] != gen) {
            fmt_set_null(&out->cols[c], row);
        }
    }
    return ROW_OK;
}

static void report(struct velo_decode_report *rep, int64_t pos, int64_t line,
                   const char *rec, size_t len, const char *msg)
{
    if (rep == NULL) {
        return;
    }
    rep->bad++;
    while (len > 0 && (rec[len - 1] == '\n' || rec[len - 1] == '\r')) {
        len--;
    }
    if (rep->bad_record != NULL) {
        rep->bad_record(rep->arg, pos, line, rec, len, msg);
    }
}

size_t fmt_json_decode(struct velo_decoder *d, const char *buf, size_t len,
                       int eof, struct velo_batch *out, int32_t src,
                       int64_t pos0, int64_t line0,
                       struct velo_decode_report *rep);
size_t fmt_json_decode(struct velo_decoder *d, const char *buf, size_t len,
                       int eof, struct velo_batch *out, int32_t src,
                       int64_t pos0, int64_t line0,
                       struct velo_decode_report *rep)
{
    const char *p = buf, *end = buf + len;
    int64_t line = line0;
    const size_t max = d->o.max_record_bytes;
    if (d->skipping) {
        const char *nl = memchr(p, '\n', len);
        if (nl == NULL) {
            d->skipping = !eof;
            return len;
        }
        d->skipping = 0;
        p = nl + 1;
        line++;
    }
    size_t row = out->nrows;
    while (p < end && row < out->cap) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl != NULL ? nl : end;
        if (nl == NULL && !eof) {
            if ((size_t)(end - p) > max) {
                size_t shown =
                    (size_t)(end - p) < 200 ? (size_t)(end - p) : 200;
                report(rep, pos0 + (p - buf), line, p, shown,
                       "the record is longer than record.max_bytes");
                d->skipping = 1;
                p = end;
            }
            break;
        }
        size_t rlen = (size_t)(le - p);
        if (rlen > max) {
            snprintf(d->msg, sizeof(d->msg),
                     "the record is %zu bytes, longer than record.max_bytes "
                     "(%zu)",
                     rlen, max);
            report(rep, pos0 + (p - buf), line, p, rlen, d->msg);
        } else {
            int st = json_row(d, p, le, out, row);
            if (st == ROW_OK) {
                if (out->origin != NULL) {
                    out->origin[row].source = src;
                    out->origin[row].position = pos0 + (p - buf);
                    out->origin[row].line = line;
                }
                row++;
            } else if (st == ROW_BAD) {
                report(rep, pos0 + (p - buf), line, p, rlen, d->msg);
            }
        }
        p = nl != NULL ? nl + 1 : end;
        line += nl != NULL;
    }
    out->nrows = row;
    return (size_t)(p - buf);
}

int fmt_json_decode_one(struct velo_decoder *d, const char *s, size_t n,
                        struct velo_batch *out, size_t row);
int fmt_json_decode_one(struct velo_decoder *d, const char *s, size_t n,
                        struct velo_batch *out, size_t row)
{
    if (n > d->o.max_record_bytes) {
        snprintf(d->msg, sizeof(d->msg),
                 "the record is %zu bytes, longer than record.max_bytes "
                 "(%zu)",
                 n, d->o.max_record_bytes);
        return ROW_BAD;
    }
    return json_row(d, s, s + n, out, row);
}
