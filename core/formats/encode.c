/*
 * Encoders: batches to CSV, JSON Lines or an aligned table.
 *
 * Values are written straight into a growing buffer with hand-written
 * integer, decimal and timestamp formatting; strings are copied with one
 * vectorised check for the bytes that need quoting or escaping.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <velo/log.h>

#include "formats/format-internal.h"

#define TABLE_MAX_CHARS 60

/* ---- velo_buf ----------------------------------------------------------- */

/* The common case inline: there is room already. */
static inline int room(struct velo_buf *b, size_t n)
{
    return b->data != NULL && b->cap - b->len >= n ? VELO_OK
                                                   : velo_buf_reserve(b, n);
}

int velo_buf_reserve(struct velo_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra && b->data != NULL) {
        return VELO_OK;
    }
    size_t need = b->len + extra;
    if (need < b->len) {
        return VELO_ERR;
    }
    size_t cap = b->cap < 256 ? 256 : b->cap;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            return VELO_ERR;
        }
        cap *= 2;
    }
    char *d = realloc(b->data, cap);
    if (d == NULL) {
        return VELO_ERR;
    }
    b->data = d;
    b->cap = cap;
    return VELO_OK;
}

int velo_buf_append(struct velo_buf *b, const char *s, size_t n)
{
    if (velo_buf_reserve(b, n + 1) != VELO_OK) {
        return VELO_ERR;
    }
    if (n > 0) {
        memcpy(b->data + b->len, s, n);
    }
    b->len += n;
    b->data[b->len] = '\0'; /* handy for tests and messages */
    return VELO_OK;
}

void velo_buf_free(struct velo_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

/* ---- the encoder -------------------------------------------------------- */

struct enc_col {
    size_t idx; /* in the schema and the batch */
    uint8_t type;
    int8_t scale;
    const char *name;
    char *key; /* JSON: "name": */
    size_t key_len;
    int right; /* table: right-aligned */
};

struct velo_encoder {
    struct velo_format_opts o;
    char *null_text;
    size_t null_len;
    size_t n;
    struct enc_col *cols;
    int with_op;
    /* table */
    size_t *widths; /* n + with_op */
    int header_wanted;
    int header_written;
    struct velo_buf cells; /* one batch's rendered cells */
    size_t *cell_off;      /* start of each cell in `cells`, + 1 end */
    size_t *cell_chars;
    size_t cell_cap;
    struct fmt_day_cache day; /* TIMESTAMP formatting */
};

static const char *const op_names[] = {"insert", "update", "delete"};

/* Length of a valid UTF-8 sequence at s, or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        return 1;
    }
    size_t len;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
        return 0;
    }
    return len;
}

/* Copy s as a JSON string. Plain 16-byte blocks are checked and copied
 * in one go; from the first block that holds a quote, a backslash, a
 * control byte or a byte >= 0x80, bytes are handled one at a time
 * (escaped, or checked to be UTF-8). */
static int put_json_string(struct velo_buf *b, const char *s, size_t n)
{
    if (room(b, n * 6 + 3) != VELO_OK) {
        return VELO_ERR;
    }
    char *o = b->data + b->len;
    *o++ = '"';
    size_t i = 0;
#if defined(__SSE2__)
    const __m128i lim = _mm_set1_epi8(0x20);
    const __m128i vq = _mm_set1_epi8('"');
    const __m128i vb = _mm_set1_epi8('\\');
    for (; i + 16 <= n; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        /* signed: bytes >= 0x80 are negative, so "< 0x20" catches them */
        __m128i m = _mm_or_si128(
            _mm_cmplt_epi8(x, lim),
            _mm_or_si128(_mm_cmpeq_epi8(x, vq), _mm_cmpeq_epi8(x, vb)));
        if (_mm_movemask_epi8(m) != 0) {
            break;
        }
        _mm_storeu_si128((__m128i *)(void *)o, x);
        o += 16;
    }
#endif
    static const char hex[] = "0123456789abcdef";
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *o++ = (char)c;
        } else if (c >= 0x80) {
            size_t l = utf8_len((const unsigned char *)s + i, n - i);
            if (l == 0) {
                memcpy(o, "\\ufffd", 6); /* not UTF-8: replaced */
                o += 6;
            } else {
                memcpy(o, s + i, l);
                o += l;
                i += l - 1;
            }
        } else if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else if (c == '\t') {
            *o++ = '\\';
            *o++ = 't';
        } else if (c == '\r') {
            *o++ = '\\';
            *o++ = 'r';
        } else if (c == '\b') {
            *o++ = '\\';
            *o++ = 'b';
        } else if (c == '\f') {
            *o++ = '\\';
            *o++ = 'f';
        } else {
            memcpy(o, "\\u00", 4);
            o[4] = hex[c >> 4];
            o[5] = hex[c & 15];
            o += 6;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    return VELO_OK;
}

/* Copy s as a CSV field: as is while no byte forces quotes (checked and
 * copied 16 bytes at a time), else quoted with inner quotes doubled. An
 * empty string is quoted so it reads back as empty, not NULL, and so is
 * text equal to csv.null. */
static int put_csv_string(struct velo_encoder *e, struct velo_buf *b,
                          const char *s, size_t n)
{
    if (room(b, n * 2 + 2) != VELO_OK) {
        return VELO_ERR;
    }
    char *start = b->data + b->len;
    const char dl = e->o.delimiter;
    const char q = e->o.quote != '\0' ? e->o.quote : '"';
    int quote = n == 0 ? e->null_len == 0
                       : e->null_len > 0 && n == e->null_len &&
                             memcmp(s, e->null_text, n) == 0;
    if (!quote) {
        char *o = start;
        size_t i = 0;
#if defined(__SSE2__)
        const __m128i vd = _mm_set1_epi8(dl), vq = _mm_set1_epi8(q);
        const __m128i vn = _mm_set1_epi8('\n'), vr = _mm_set1_epi8('\r');
        for (; i + 16 <= n; i += 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
            __m128i m = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(x, vd), _mm_cmpeq_epi8(x, vq)),
                _mm_or_si128(_mm_cmpeq_epi8(x, vn), _mm_cmpeq_epi8(x, vr)));
            if (_mm_movemask_epi8(m) != 0) {
                break;
            }
            _mm_storeu_si128((__m128i *)(void *)o, x);
            o += 16;
        }
#endif
        for (; i < n; i++) {
            char c = s[i];
            if (c == dl || c == q || c == '\n' || c == '\r') {
                break;
            }
            *o++ = c;
        }
        if (i == n) {
            b->len += n;
            return VELO_OK;
        }
    }
    char *o = start;
    *o++ = q;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == q) {
            *o++ = q;
        }
        *o++ = s[i];
    }
    *o++ = q;
    b->len = (size_t)(o - b->data);
    return VELO_OK;
}

/* A scalar's text (not strings, not NULL) into tmp (>= 64 bytes). */
static size_t scalar_text(struct velo_encoder *e, const struct enc_col *c,
                          const struct velo_column *col, size_t r, char *tmp)
{
    switch (c->type) {
    case VELO_TYPE_BOOLEAN:
        if (col->v.u8[r]) {
            memcpy(tmp, "true", 4);
            return 4;
        }
        memcpy(tmp, "false", 5);
        return 5;
    case VELO_TYPE_INTEGER:
    case VELO_TYPE_BIGINT:
        return fmt_format_i64(col->v.i64[r], tmp);
    case VELO_TYPE_DOUBLE:
        return velo_format_double(col->v.f64[r], tmp, 64);
    case VELO_TYPE_DECIMAL:
        return fmt_format_decimal(col->v.i64[r], c->scale, tmp);
    case VELO_TYPE_TIMESTAMP:
        return fmt_format_ts_cached(&e->day, col->v.i64[r], tmp);
    case VELO_TYPE_DATE:
        return velo_format_date(col->v.i64[r], tmp, 64);
    case VELO_TYPE_INTERVAL:
        return fmt_format_interval(col->v.i64[r], tmp, 64);
    }
    return 0;
}

static int is_stringish(uint8_t t)
{
    return t == VELO_TYPE_STRING || t == VELO_TYPE_BYTES || t == VELO_TYPE_JSON;
}

struct velo_encoder *velo_encoder_create(const struct velo_format_opts *o,
                                         const struct velo_schema *schema,
                                         int with_op)
{
    if (o == NULL || schema == NULL ||
        (o->kind != VELO_FORMAT_CSV && o->kind != VELO_FORMAT_JSON &&
         o->kind != VELO_FORMAT_RAW && o->kind != VELO_FORMAT_TABLE)) {
        errno = EINVAL;
        return NULL;
    }
    struct velo_encoder *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        return NULL;
    }
    e->o = *o;
    if (e->o.delimiter == '\0') {
        e->o.delimiter = ',';
    }
    const char *nt = o->null_text != NULL ? o->null_text : "";
    e->null_text = strdup(nt);
    e->null_len = strlen(nt);
    e->with_op = with_op != 0;
    e->cols = calloc(schema->n + 1, sizeof(*e->cols));
    e->widths = calloc(schema->n + 2, sizeof(*e->widths));
    if (e->null_text == NULL || e->cols == NULL || e->widths == NULL) {
        velo_encoder_destroy(e);
        errno = ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < schema->n; i++) {
        const struct velo_field *f = &schema->fields[i];
        if (f->hidden) {
            continue;
        }
        struct enc_col *c = &e->cols[e->n++];
        c->idx = i;
        c->type = f->type.id;
        c->scale = f->type.scale;
        c->name = f->name != NULL ? f->name : "";
        c->right = !is_stringish(c->type) && c->type != VELO_TYPE_BOOLEAN &&
                   c->type != VELO_TYPE_TIMESTAMP && c->type != VELO_TYPE_DATE;
        struct velo_buf kb = {0};
        if (put_json_string(&kb, c->name, strlen(c->name)) != VELO_OK ||
            velo_buf_append(&kb, ":", 1) != VELO_OK) {
            velo_buf_free(&kb);
            velo_encoder_destroy(e);
            errno = ENOMEM;
            return NULL;
        }
        c->key = kb.data;
        c->key_len = kb.len;
    }
    return e;
}

void velo_encoder_destroy(struct velo_encoder *e)
{
    if (e == NULL) {
        return;
    }
    for (size_t i = 0; e->cols != NULL && i < e->n; i++) {
        free(e->cols[i].key);
    }
    free(e->cols);
    free(e->widths);
    free(e->null_text);
    velo_buf_free(&e->cells);
    free(e->cell_off);
    free(e->cell_chars);
    free(e);
}

/* ---- CSV and JSON ------------------------------------------------------- */

static int csv_header(struct velo_encoder *e, struct velo_buf *out)
{
    if (e->with_op) {
        if (put_csv_string(e, out, "_op", 3) != VELO_OK ||
            (e->n > 0 && velo_buf_append(out, &e->o.delimiter, 1) != VELO_OK)) {
            return VELO_ERR;
        }
    }
    for (size_t i = 0; i < e->n; i++) {
        if ((i > 0 && velo_buf_append(out, &e->o.delimiter, 1) != VELO_OK) ||
            put_csv_string(e, out, e->cols[i].name, strlen(e->cols[i].name)) !=
                VELO_OK) {
            return VELO_ERR;
        }
    }
    return velo_buf_append(out, "\n", 1);
}

/* Unsigned decimal digits of u, right-aligned to end at tmp + 20 (tmp
 * holds at least 40 bytes so a fixed 20-byte copy from the first digit
 * stays inside it). @return the first digit. */
static inline char *u64_digits_back(uint64_t u, char *tmp)
{
    char *e = tmp + 20;
    while (u >= 100) {
        unsigned r = (unsigned)(u % 100);
        u /= 100;
        e -= 2;
        memcpy(e, fmt_digits2 + r * 2, 2);
    }
    if (u >= 10) {
        e -= 2;
        memcpy(e, fmt_digits2 + u * 2, 2);
    } else {
        *--e = (char)('0' + u);
    }
    return e;
}

/* fmt_format_i64 without counting digits first: the digits are written
 * backwards into a scratch and copied with one fixed-size move, so o
 * must have 21 bytes of room. @return past the text. */
static inline char *put_i64(int64_t v, char *o)
{
    char tmp[40];
    uint64_t u = (uint64_t)v;
    if (v < 0) {
        *o++ = '-';
        u = 0 - u;
    }
    char *d = u64_digits_back(u, tmp);
    memcpy(o, d, 20);
    return o + (tmp + 20 - d);
}

/* Whether any of the 8 bytes of v equals a byte of the broadcast k. */
static inline uint64_t has_byte(uint64_t v, uint64_t k)
{
    const uint64_t ones = UINT64_C(0x0101010101010101);
    uint64_t x = v ^ k;
    return (x - ones) & ~x & (ones << 7);
}

/* Whether s[0, n) holds no byte that forces a CSV field into quotes.
 * Only for n >= 8: two overlapping 8-byte words cover it. */
static inline int csv_plain_8_16(const char *s, size_t n, uint64_t kd,
                                 uint64_t kq)
{
    const uint64_t ones = UINT64_C(0x0101010101010101);
    uint64_t a, z;
    memcpy(&a, s, 8);
    memcpy(&z, s + n - 8, 8);
    return (has_byte(a, kd) | has_byte(a, kq) | has_byte(a, ones * '\n') |
            has_byte(a, ones * '\r') | has_byte(z, kd) | has_byte(z, kq) |
            has_byte(z, ones * '\n') | has_byte(z, ones * '\r')) == 0;
}

/* put_csv_string into o, which has room for n * 2 + 2 bytes and at
 * least 16. @return past the field. */
static inline char *csv_string_to(const struct velo_encoder *e, char *o,
                                  const char *s, size_t n)
{
    const char dl = e->o.delimiter;
    const char q = e->o.quote != '\0' ? e->o.quote : '"';
    if (n == 0) {
        if (e->null_len == 0) {
            o[0] = q;
            o[1] = q;
            return o + 2;
        }
        return o;
    }
    if (e->null_len > 0 && n == e->null_len &&
        memcmp(s, e->null_text, n) == 0) {
        /* text equal to csv.null: quoted below */
    } else if (n >= 16) {
#if defined(__SSE2__)
        const __m128i vd = _mm_set1_epi8(dl), vq = _mm_set1_epi8(q);
        const __m128i vn = _mm_set1_epi8('\n'), vr = _mm_set1_epi8('\r');
        size_t i = 0;
        int m = 0;
        /* Whole blocks, then the last 16 bytes (overlapping the one
         * before): no byte-at-a-time tail. */
        for (;;) {
            __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
            m = _mm_movemask_epi8(
                _mm_or_si128(
                    _mm_or_si128(_mm_cmpeq_epi8(x, vd), _mm_cmpeq_epi8(x, vq)),
                    _mm_or_si128(_mm_cmpeq_epi8(x, vn),
                                 _mm_cmpeq_epi8(x, vr))));
            if (m != 0) {
                break;
            }
            _mm_storeu_si128((__m128i *)(void *)(o + i), x);
            if (i + 16 == n) {
                return o + n;
            }
            i = i + 32 <= n ? i + 16 : n - 16;
        }
#else
        int plain = memchr(s, dl, n) == NULL && memchr(s, q, n) == NULL &&
                memchr(s, '\n', n) == NULL && memchr(s, '\r', n) == NULL;
        if (plain) {
            memcpy(o, s, n);
            return o + n;
        }
#endif
    } else if (n >= 8) {
        const uint64_t ones = UINT64_C(0x0101010101010101);
        if (csv_plain_8_16(s, n, ones * (unsigned char)dl,
                           ones * (unsigned char)q)) {
            uint64_t a, z;
            memcpy(&a, s, 8);
            memcpy(&z, s + n - 8, 8);
            memcpy(o, &a, 8);
            memcpy(o + n - 8, &z, 8);
            return o + n;
        }
    } else {
        size_t i = 0;
        while (i < n && s[i] != dl && s[i] != q && s[i] != '\n' &&
               s[i] != '\r') {
            o[i] = s[i];
            i++;
        }
        if (i == n) {
            return o + n;
        }
    }
    *o++ = q;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == q) {
            *o++ = q;
        }
        *o++ = s[i];
    }
    *o++ = q;
    return o;
}

/* Room for one CSV cell after the delimiter: a scalar's text is at most
 * 64 bytes (scalar_text's scratch); strings may double. */
#define CSV_SCALAR_ROOM 72

static int csv_row(struct velo_encoder *e, const struct velo_batch *b, size_t r,
                   struct velo_buf *out)
{
    const char delim = e->o.delimiter;
    if (room(out, 8) != VELO_OK) {
        return VELO_ERR;
    }
    char *o = out->data + out->len;
    char *lim = out->data + out->cap;
    if (e->with_op) {
        unsigned op = b->op != NULL ? b->op[r] : VELO_ROW_INSERT;
        const char *name = op_names[op < 3 ? op : 0];
        size_t l = strlen(name);
        memcpy(o, name, l);
        o += l;
        if (e->n > 0) {
            *o++ = delim;
        }
    }
    for (size_t i = 0; i < e->n; i++) {
        const struct enc_col *c = &e->cols[i];
        const struct velo_column *col = &b->cols[c->idx];
        int null = col->has_nulls && col->nulls[r];
        int str = is_stringish(c->type);
        size_t need = 1 + (null    ? e->null_len
                           : str   ? col->v.str[r].len * 2 + 16
                                   : CSV_SCALAR_ROOM);
        if ((size_t)(lim - o) < need) {
            out->len = (size_t)(o - out->data);
            if (velo_buf_reserve(out, need) != VELO_OK) {
                return VELO_ERR;
            }
            o = out->data + out->len;
            lim = out->data + out->cap;
        }
        if (i > 0) {
            *o++ = delim;
        }
        if (null) {
            if (e->null_len > 0) {
                memcpy(o, e->null_text, e->null_len);
                o += e->null_len;
            }
            continue;
        }
        switch (c->type) {
        case VELO_TYPE_STRING:
        case VELO_TYPE_BYTES:
        case VELO_TYPE_JSON:
            o = csv_string_to(e, o, col->v.str[r].ptr, col->v.str[r].len);
            break;
        case VELO_TYPE_INTEGER:
        case VELO_TYPE_BIGINT:
            o = put_i64(col->v.i64[r], o);
            break;
        case VELO_TYPE_TIMESTAMP:
            o += fmt_format_ts_cached(&e->day, col->v.i64[r], o);
            break;
        default:
            o += scalar_text(e, c, col, r, o);
            break;
        }
    }
    if (o == lim) {
        out->len = (size_t)(o - out->data);
        if (velo_buf_reserve(out, 1) != VELO_OK) {
            return VELO_ERR;
        }
        o = out->data + out->len;
    }
    *o++ = '\n';
    out->len = (size_t)(o - out->data);
    return VELO_OK;
}

static int json_row(struct velo_encoder *e, const struct velo_batch *b,
                    size_t r, struct velo_buf *out)
{
    if (room(out, 24) != VELO_OK) {
        return VELO_ERR;
    }
    out->data[out->len++] = '{';
    if (e->with_op) {
        unsigned op = b->op != NULL ? b->op[r] : VELO_ROW_INSERT;
        int n = snprintf(out->data + out->len, 24, "\"_op\":\"%s\"",
                         op_names[op < 3 ? op : 0]);
        out->len += (size_t)n;
    }
    for (size_t i = 0; i < e->n; i++) {
        const struct enc_col *c = &e->cols[i];
        const struct velo_column *col = &b->cols[c->idx];
        if (room(out, c->key_len + 80) != VELO_OK) {
            return VELO_ERR;
        }
        char *o = out->data + out->len;
        if (i > 0 || e->with_op) {
            *o++ = ',';
        }
        memcpy(o, c->key, c->key_len);
        o += c->key_len;
        out->len = (size_t)(o - out->data);
        if (col->has_nulls && col->nulls[r]) {
            memcpy(o, "null", 4);
            out->len += 4;
            continue;
        }
        switch (c->type) {
        case VELO_TYPE_STRING:
        case VELO_TYPE_BYTES:
            if (put_json_string(out, col->v.str[r].ptr, col->v.str[r].len) !=
                VELO_OK) {
                return VELO_ERR;
            }
            break;
        case VELO_TYPE_JSON:
            if (col->v.str[r].len == 0) {
                memcpy(o, "null", 4);
                out->len += 4;
            } else if (velo_buf_append(out, col->v.str[r].ptr,
                                       col->v.str[r].len) != VELO_OK) {
                return VELO_ERR;
            }
            break;
        case VELO_TYPE_DOUBLE:
            if (!isfinite(col->v.f64[r])) {
                memcpy(o, "null", 4); /* JSON has no NaN or Infinity */
                out->len += 4;
            } else {
                out->len += velo_format_double(col->v.f64[r], o, 64);
            }
            break;
        case VELO_TYPE_DECIMAL:
        case VELO_TYPE_TIMESTAMP:
        case VELO_TYPE_DATE:
        case VELO_TYPE_INTERVAL:
            /* Exact and unambiguous as strings: "12.30", ISO 8601. */
            *o++ = '"';
            o += scalar_text(e, c, col, r, o);
            *o++ = '"';
            out->len = (size_t)(o - out->data);
            break;
        default:
            out->len += scalar_text(e, c, col, r, o);
            break;
        }
    }
    if (room(out, 2) != VELO_OK) {
        return VELO_ERR;
    }
    out->data[out->len++] = '}';
    out->data[out->len++] = '\n';
    return VELO_OK;
}

/* ---- the table ---------------------------------------------------------- */

/* Characters (code points) in UTF-8 text. */
static size_t utf8_chars(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        k += ((unsigned char)s[i] & 0xC0) != 0x80;
    }
    return k;
}

/* Append a cell's display text to e->cells: control characters become
 * spaces and text longer than TABLE_MAX_CHARS ends in an ellipsis.
 * @return its width in characters, or (size_t)-1 when out of memory. */
static size_t table_text(struct velo_encoder *e, const char *s, size_t n)
{
    struct velo_buf *b = &e->cells;
    if (velo_buf_reserve(b, n + 8) != VELO_OK) {
        return (size_t)-1;
    }
    size_t chars = 0;
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t l = c < 0x80 ? 1 : utf8_len((const unsigned char *)s + i, n - i);
        if (chars == TABLE_MAX_CHARS - 1 && utf8_chars(s + i, n - i) > 1) {
            memcpy(b->data + b->len, "\xE2\x80\xA6", 3); /* … */
            b->len += 3;
            return TABLE_MAX_CHARS;
        }
        if (l == 0) {
            b->data[b->len++] = '?';
            i++;
        } else if (c < 0x20 || c == 0x7F) {
            b->data[b->len++] = ' ';
            i++;
        } else {
            memcpy(b->data + b->len, s + i, l);
            b->len += l;
            i += l;
        }
        chars++;
    }
    return chars;
}

static int pad(struct velo_buf *out, size_t n)
{
    if (velo_buf_reserve(out, n) != VELO_OK) {
        return VELO_ERR;
    }
    memset(out->data + out->len, ' ', n);
    out->len += n;
    return VELO_OK;
}

/* One line of cells: texts[i] with widths[i], aligned. */
static int table_line(struct velo_encoder *e, struct velo_buf *out,
                      const char *const *texts, const size_t *lens,
                      const size_t *chars, const int *right)
{
    size_t ncols = e->n + (size_t)e->with_op;
    size_t line_start = out->len;
    for (size_t i = 0; i < ncols; i++) {
        if (i > 0 && velo_buf_append(out, " | ", 3) != VELO_OK) {
            return VELO_ERR;
        }
        size_t fill = e->widths[i] > chars[i] ? e->widths[i] - chars[i] : 0;
        if (right[i] && pad(out, fill) != VELO_OK) {
            return VELO_ERR;
        }
        if (velo_buf_append(out, texts[i], lens[i]) != VELO_OK) {
            return VELO_ERR;
        }
        if (!right[i] && i + 1 < ncols && pad(out, fill) != VELO_OK) {
            return VELO_ERR;
        }
    }
    while (out->len > line_start && out->data[out->len - 1] == ' ') {
        out->len--;
    }
    return velo_buf_append(out, "\n", 1);
}

static int table_header(struct velo_encoder *e, struct velo_buf *out)
{
    size_t ncols = e->n + (size_t)e->with_op;
    const char **texts = calloc(ncols + 1, sizeof(*texts));
    size_t *lens = calloc(ncols + 1, sizeof(*lens));
    size_t *chars = calloc(ncols + 1, sizeof(*chars));
    int *right = calloc(ncols + 1, sizeof(*right));
    int rc = VELO_ERR;
    if (texts == NULL || lens == NULL || chars == NULL || right == NULL) {
        goto done;
    }
    for (size_t i = 0; i < ncols; i++) {
        const char *name =
            e->with_op && i == 0 ? "_op" : e->cols[i - (size_t)e->with_op].name;
        texts[i] = name;
        lens[i] = strlen(name);
        chars[i] = utf8_chars(name, lens[i]);
        right[i] =
            !(e->with_op && i == 0) && e->cols[i - (size_t)e->with_op].right;
    }
    if (table_line(e, out, texts, lens, chars, right) != VELO_OK) {
        goto done;
    }
    for (size_t i = 0; i < ncols; i++) {
        if (i > 0 && velo_buf_append(out, "-+-", 3) != VELO_OK) {
            goto done;
        }
        if (velo_buf_reserve(out, e->widths[i]) != VELO_OK) {
            goto done;
        }
        memset(out->data + out->len, '-', e->widths[i]);
        out->len += e->widths[i];
    }
    rc = velo_buf_append(out, "\n", 1);
done:
    free(texts);
    free(lens);
    free(chars);
    free(right);
    e->header_written = rc == VELO_OK;
    return rc;
}

static int table_batch(struct velo_encoder *e, const struct velo_batch *b,
                       struct velo_buf *out)
{
    size_t ncols = e->n + (size_t)e->with_op;
    size_t live = (b->sel != NULL ? b->nsel : b->nrows);
    size_t ncells = live * ncols;
    if (ncells + 1 > e->cell_cap) {
        size_t cap = ncells + 1;
        size_t *no = realloc(e->cell_off, cap * sizeof(*no));
        if (no == NULL) {
            return VELO_ERR;
        }
        e->cell_off = no;
        size_t *nc = realloc(e->cell_chars, cap * sizeof(*nc));
        if (nc == NULL) {
            return VELO_ERR;
        }
        e->cell_chars = nc;
        e->cell_cap = cap;
    }
    e->cells.len = 0;
    int grew = !e->header_written;
    /* Widths start from the names. */
    for (size_t i = 0; i < ncols && !e->header_written; i++) {
        const char *name =
            e->with_op && i == 0 ? "_op" : e->cols[i - (size_t)e->with_op].name;
        size_t w = utf8_chars(name, strlen(name));
        if (w > e->widths[i]) {
            e->widths[i] = w;
        }
    }
    size_t k = 0;
    for (size_t li = 0; li < live; li++) {
        size_t r = b->sel != NULL ? b->sel[li] : li;
        for (size_t i = 0; i < ncols; i++, k++) {
            e->cell_off[k] = e->cells.len;
            size_t w;
            if (e->with_op && i == 0) {
                unsigned op = b->op != NULL ? b->op[r] : VELO_ROW_INSERT;
                const char *name = op_names[op < 3 ? op : 0];
                w = table_text(e, name, strlen(name));
            } else {
                const struct enc_col *c = &e->cols[i - (size_t)e->with_op];
                const struct velo_column *col = &b->cols[c->idx];
                if (col->has_nulls && col->nulls[r]) {
                    w = table_text(e, "NULL", 4);
                } else if (is_stringish(c->type)) {
                    w = table_text(e, col->v.str[r].ptr, col->v.str[r].len);
                } else {
                    char tmp[72];
                    size_t n = scalar_text(e, c, col, r, tmp);
                    w = table_text(e, tmp, n);
                }
            }
            if (w == (size_t)-1) {
                return VELO_ERR;
            }
            e->cell_chars[k] = w;
            if (w > e->widths[i]) {
                e->widths[i] = w;
                grew = 1;
            }
        }
    }
    e->cell_off[k] = e->cells.len;
    if (grew && table_header(e, out) != VELO_OK) {
        return VELO_ERR;
    }
    const char **texts = calloc(ncols + 1, sizeof(*texts));
    size_t *lens = calloc(ncols + 1, sizeof(*lens));
    int *right = calloc(ncols + 1, sizeof(*right));
    int rc =
        texts != NULL && lens != NULL && right != NULL ? VELO_OK : VELO_ERR;
    for (size_t i = 0; rc == VELO_OK && i < ncols; i++) {
        right[i] =
            !(e->with_op && i == 0) && e->cols[i - (size_t)e->with_op].right;
    }
    for (size_t li = 0; rc == VELO_OK && li < live; li++) {
        for (size_t i = 0; i < ncols; i++) {
            size_t c = li * ncols + i;
            texts[i] = e->cells.data + e->cell_off[c];
            lens[i] = e->cell_off[c + 1] - e->cell_off[c];
        }
        rc = table_line(e, out, texts, lens, e->cell_chars + li * ncols, right);
    }
    free(texts);
    free(lens);
    free(right);
    return rc;
}

/* ---- entry points ------------------------------------------------------- */

int velo_encode_header(struct velo_encoder *e, struct velo_buf *out)
{
    switch (e->o.kind) {
    case VELO_FORMAT_CSV:
        return e->o.header ? csv_header(e, out) : VELO_OK;
    case VELO_FORMAT_TABLE:
        /* Widths come from the rows: the header goes out with the first
         * batch (and again when a later batch widens a column). */
        e->header_wanted = 1;
        return VELO_OK;
    }
    return VELO_OK;
}

static int raw_row(struct velo_encoder *e, const struct velo_batch *b, size_t r,
                   struct velo_buf *out)
{
    for (size_t i = 0; i < e->n; i++) {
        const struct enc_col *c = &e->cols[i];
        const struct velo_column *col = &b->cols[c->idx];
        if (i > 0 && velo_buf_append(out, " ", 1) != VELO_OK) {
            return VELO_ERR;
        }
        if (col->has_nulls && col->nulls[r]) {
            continue;
        }
        if (is_stringish(c->type)) {
            if (velo_buf_append(out, col->v.str[r].ptr, col->v.str[r].len) !=
                VELO_OK) {
                return VELO_ERR;
            }
        } else {
            char tmp[72];
            size_t n = scalar_text(e, c, col, r, tmp);
            if (velo_buf_append(out, tmp, n) != VELO_OK) {
                return VELO_ERR;
            }
        }
    }
    return velo_buf_append(out, "\n", 1);
}

int velo_encode(struct velo_encoder *e, const struct velo_batch *b,
                struct velo_buf *out)
{
    size_t live = (b->sel != NULL ? b->nsel : b->nrows);
    if (live == 0) {
        return VELO_OK;
    }
    if (e->o.kind == VELO_FORMAT_TABLE) {
        return table_batch(e, b, out);
    }
    int (*row)(struct velo_encoder *, const struct velo_batch *, size_t,
               struct velo_buf *) = e->o.kind == VELO_FORMAT_CSV    ? csv_row
                                    : e->o.kind == VELO_FORMAT_JSON ? json_row
                                                                    : raw_row;
    for (size_t i = 0; i < live; i++) {
        size_t r = b->sel != NULL ? b->sel[i] : i;
        if (row(e, b, r, out) != VELO_OK) {
            return VELO_ERR;
        }
    }
    /* Keep the buffer a C string for callers that print it. */
    if (room(out, 1) != VELO_OK) {
        return VELO_ERR;
    }
    out->data[out->len] = '\0';
    return VELO_OK;
}
