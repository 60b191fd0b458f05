/*
 * Private to core/formats: the decoder's state, the text-to-value
 * conversions both scanners share, and small byte-scanning helpers.
 */
#ifndef VELO_FORMATS_INTERNAL_H
#define VELO_FORMATS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "formats/format.h"

#define DEC_MSG_MAX 512
#define DEC_PRED_KEYS 64    /* JSON keys whose order is remembered */
#define DEC_PRED_KEY_LEN 48 /* longest key remembered */
#define DEC_VALUE_SHOWN 64  /* bytes of a bad value quoted in a message */

/* The date part of the last timestamp parsed or written: consecutive
 * records almost always share it, so it is converted once per day. */
struct fmt_day_cache {
    /* parsing */
    int64_t day;
    char ymd[24];
    uint8_t len;
    uint8_t valid;
    uint8_t sec_valid;
    char sec_key[19]; /* "YYYY-MM-DDTHH:MM:SS" */
    int64_t sec_us;   /* its value before fraction and zone */
    /* writing */
    uint8_t out_valid;
    uint8_t out_len;
    int64_t out_sec;
    char out[40]; /* "YYYY-MM-DDTHH:MM:SS." */
};

/* One schema column as the scanners see it. */
struct dec_col {
    uint8_t type; /* enum velo_type */
    uint8_t precision;
    int8_t scale;
    uint8_t needed; /* parse it (hidden columns never are) */
    uint8_t hidden;
    const char *name; /* the schema's */
    size_t name_len;
};

/* A remembered JSON key position: the k-th key of the last object. */
struct dec_pred {
    uint8_t len; /* 0: nothing remembered */
    char key[DEC_PRED_KEY_LEN];
    int col; /* column it matched, -1 for none */
};

struct velo_decoder {
    struct velo_format_opts o;
    char *null_text; /* owned copy */
    size_t null_len;
    const struct velo_schema *schema; /* borrowed */
    size_t ncols;
    struct dec_col *cols;

    /* CSV: field index -> column (-1: not needed or unknown). */
    int *fmap;
    size_t nfmap;
    size_t nfields_needed; /* fields after the last needed one are skipped */
    int header_done;
    /* the header named a column twice or missed one: said once */
    int header_warned;

    /* Skipping the rest of an over-long record across calls. */
    int skipping;

    /* JSON: which needed columns the current object set. */
    uint32_t *seen;
    uint32_t gen;
    struct dec_pred pred[DEC_PRED_KEYS];

    struct fmt_day_cache day; /* TIMESTAMP parsing */

    char msg[DEC_MSG_MAX]; /* why the current record is bad */

    /* Message sources: hidden columns filled from each record's meta
     * (-1: absent or not needed), and which payload each row came from. */
    int meta_key, meta_part, meta_off, meta_hdr;
    int meta_ts; /* _timestamp: the record's time, NULL when it has none */
    uint32_t *row_payload;
    size_t row_payload_cap;
};

/* ---- conversions (decode.c) ---------------------------------------- */

/** Store text as column `ci`'s type into row `row` of `c`. `quoted`: the
 *  text came from a quoted CSV field or a JSON string (an empty one is an
 *  empty STRING, not NULL). Strings are stored as views of s; the caller
 *  has already copied them into the arena when they needed unescaping.
 *  @return VELO_OK, or VELO_ERR with d->msg set. */
int fmt_store_text(struct velo_decoder *d, size_t ci, struct velo_column *c,
                   size_t row, const char *s, size_t n, int quoted);
/** Set d->msg to "column <name>: \"<value>\" is not <what>". */
void fmt_bad_value(struct velo_decoder *d, size_t ci, const char *s, size_t n,
                   const char *what);
static inline void fmt_set_null(struct velo_column *c, size_t row)
{
    c->nulls[row] = 1;
    c->has_nulls = 1;
}

/* ---- number and time scanning (text.c) ------------------------------ */

/** Whole text as a signed 64-bit integer. @return VELO_OK, VELO_ERR for
 *  not a number, VELO_AGAIN for out of range. */
int fmt_parse_i64(const char *s, size_t n, int64_t *out);
/** Whole text as a double: a fast exact path, strtod for the rest. */
int fmt_parse_double(const char *s, size_t n, double *out);
/** Whole text as DECIMAL(precision, scale), HALF_EVEN past the scale.
 *  @return VELO_OK, VELO_ERR (not a number), VELO_AGAIN (too large). */
int fmt_parse_decimal(const char *s, size_t n, int precision, int scale,
                      int64_t *out);
/** "true"/"false"/"t"/"f"/"yes"/"no"/"y"/"n"/"1"/"0", any case. */
int fmt_parse_bool(const char *s, size_t n, int *out);
/** "90s", "1h30m", "250ms", "-5m", "1500us"; bare digits are ms. */
int fmt_parse_interval(const char *s, size_t n, int64_t *us);
/** Writes "1h30m" style text; @return length. */
size_t fmt_format_interval(int64_t us, char *buf, size_t len);
/** velo_parse_timestamp, reusing the cached date when it matches. */
int fmt_parse_ts_cached(struct fmt_day_cache *c, const char *s, size_t len,
                        int64_t *us);
/** ISO 8601 UTC with milliseconds into p (at least 40 bytes).
 *  @return length. */
size_t fmt_format_ts_cached(struct fmt_day_cache *c, int64_t us, char *p);
/** Days since 1970-01-01 for a proleptic Gregorian date, and back. */
int64_t fmt_days_from_civil(int64_t y, unsigned m, unsigned d);
void fmt_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);
/** Decimal text of an unscaled value: "-12.30". @return length. */
size_t fmt_format_decimal(int64_t v, int scale, char *buf);
extern const char fmt_digits2[201]; /* "00" "01" ... "99" */

static inline size_t fmt_u64_digits(uint64_t u)
{
    size_t n = 1;
    while (u >= 10000) {
        u /= 10000;
        n += 4;
    }
    return n + (u >= 10) + (u >= 100) + (u >= 1000);
}

/** Decimal digits of v straight into buf (at most 20 bytes).
 *  @return length. */
static inline size_t fmt_format_i64(int64_t v, char *buf)
{
    char *p = buf;
    uint64_t u = (uint64_t)v;
    if (v < 0) {
        *p++ = '-';
        u = 0 - u;
    }
    size_t n = fmt_u64_digits(u);
    char *e = p + n;
    while (u >= 100) {
        unsigned r = (unsigned)(u % 100);
        u /= 100;
        e -= 2;
        memcpy(e, fmt_digits2 + r * 2, 2);
    }
    if (u >= 10) {
        memcpy(e - 2, fmt_digits2 + u * 2, 2);
    } else {
        e[-1] = (char)('0' + u);
    }
    return (size_t)(p - buf) + n;
}

/* ---- byte scanning ------------------------------------------------- */

static inline int fmt_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* First byte in [p, end) equal to a or b, or end. */
static inline const char *fmt_find2(const char *p, const char *end, char a,
                                    char b)
{
#if defined(__SSE2__)
    const __m128i va = _mm_set1_epi8(a);
    const __m128i vb = _mm_set1_epi8(b);
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        int m = _mm_movemask_epi8(
            _mm_or_si128(_mm_cmpeq_epi8(x, va), _mm_cmpeq_epi8(x, vb)));
        if (m != 0) {
            return p + __builtin_ctz((unsigned)m);
        }
        p += 16;
    }
#endif
    while (p < end && *p != a && *p != b) {
        p++;
    }
    return p;
}

/* First byte in [p, end) equal to a, b or c, or end. */
static inline const char *fmt_find3(const char *p, const char *end, char a,
                                    char b, char c)
{
#if defined(__SSE2__)
    const __m128i va = _mm_set1_epi8(a);
    const __m128i vb = _mm_set1_epi8(b);
    const __m128i vc = _mm_set1_epi8(c);
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        int m = _mm_movemask_epi8(_mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(x, va), _mm_cmpeq_epi8(x, vb)),
            _mm_cmpeq_epi8(x, vc)));
        if (m != 0) {
            return p + __builtin_ctz((unsigned)m);
        }
        p += 16;
    }
#endif
    while (p < end && *p != a && *p != b && *p != c) {
        p++;
    }
    return p;
}

static inline int64_t fmt_count_newlines(const char *p, const char *end)
{
    int64_t n = 0;
    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        n++;
        p++;
    }
    return n;
}

/* ---- CSV tokenizing, shared by the decoder, the header and inference -- */

enum csv_tok {
    CSV_FIELD = 0,   /* a field, more follow in this record */
    CSV_LAST = 1,    /* the record's last field */
    CSV_PARTIAL = 2, /* the buffer ends inside the record (not eof) */
    CSV_BAD = 3      /* broken quoting; *next is past the bad record */
};

struct csv_field {
    const char *s; /* content (inside the quotes when quoted) */
    size_t n;
    int quoted;
    int escaped;      /* quoted and holds doubled quotes */
    int64_t newlines; /* inside the field, and its terminator */
};

/** One field at p. On CSV_BAD, *next is the start of the next record
 *  and msg says what was wrong. */
int fmt_csv_field(const char *p, const char *end, int eof, char delim,
                  char quote, struct csv_field *f, const char **next,
                  const char **msg);
/** Copy a doubled-quote field without the doubling into dst (at least
 *  f->n bytes). @return the new length. */
size_t fmt_csv_unescape(const struct csv_field *f, char quote, char *dst);

/* ---- JSON tokenizing, shared by the decoder and inference ----------- */

#define JSON_MAX_DEPTH 256

/** Skip ASCII white space. */
static inline const char *fmt_json_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
        p++;
    }
    return p;
}

/** A string at p (p[0] == '"'): *s,*n the raw content between the quotes,
 *  *escaped when it holds backslashes. @return past the closing quote, or
 *  NULL when unterminated. */
const char *fmt_json_string(const char *p, const char *end, const char **s,
                            size_t *n, int *escaped);
/** Unescape a JSON string's content into dst (at least n bytes).
 *  @return the length, or (size_t)-1 for a bad escape. */
size_t fmt_json_unescape(const char *s, size_t n, char *dst);
/** Validate and skip one value. @return past it, or NULL with *msg. */
const char *fmt_json_skip(const char *p, const char *end, int depth,
                          const char **msg);
/** A number token at p: @return past it, or NULL when not JSON syntax.
 *  *is_int when it has neither fraction nor exponent. */
const char *fmt_json_number(const char *p, const char *end, int *is_int);

#endif /* VELO_FORMATS_INTERNAL_H */
