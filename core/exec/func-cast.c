/*
 * Casts between every pair of types that has a meaning, and the text
 * forms of values shared with CONCAT, || and COLLECT_LIST.
 *
 * Rules (documented in docs/sql.md):
 *  - numbers to INTEGER/BIGINT round HALF_EVEN (DOUBLE with rint, DECIMAL
 *    exactly) and must fit the target: out of range is an overflow error;
 *  - numbers to DECIMAL(p,s) round HALF_EVEN to s digits and must fit p;
 *    a DOUBLE converts through its shortest round-trip text;
 *  - BIGINT <-> TIMESTAMP and BIGINT <-> INTERVAL count milliseconds (the
 *    usual epoch-millis of event data);
 *  - text to a type accepts surrounding blanks and nothing else: 'abc',
 *    '1.5' (to BIGINT) and '' fail with "cannot cast 'abc' to BIGINT";
 *  - BOOLEAN from text: true/false, t/f, yes/no, y/n, on/off, 1/0;
 *  - INTERVAL from text: '90 seconds', '1 hour 30 minutes', '1.5h',
 *    '5m', '01:30:00', or a plain number of seconds;
 *  - text to JSON checks the text is one valid JSON value; JSON to text
 *    is the JSON text itself; JSON to a scalar type reads a JSON number,
 *    string, or boolean.
 * TRY_CAST gives NULL where CAST gives an error.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <velo/log.h>

#include "exec/func-internal.h"
#include "formats/format.h"

/* ---- Text parsing ------------------------------------------------------- */

static int blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
           c == '\v';
}

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && blank(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && blank((*s)[*len - 1])) {
        (*len)--;
    }
}

int velo_parse_i64_text(const char *s, size_t len, int64_t *out)
{
    trim(&s, &len);
    size_t i = 0;
    int neg = 0;
    if (i < len && (s[i] == '+' || s[i] == '-')) {
        neg = s[i] == '-';
        i++;
    }
    if (i >= len) {
        return VELO_ERR;
    }
    uint64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return VELO_ERR;
        }
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_C(9223372036854775808) - d) / 10) {
            errno = ERANGE;
            return VELO_ERR;
        }
        v = v * 10 + d;
    }
    if (!neg && v > (uint64_t)INT64_MAX) {
        errno = ERANGE;
        return VELO_ERR;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return VELO_OK;
}

int velo_parse_f64_text(const char *s, size_t len, double *out)
{
    trim(&s, &len);
    char buf[128];
    if (len == 0 || len >= sizeof(buf)) {
        return VELO_ERR;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    /* strtod also takes hex floats and "infinity"; SQL text is decimal,
     * but NaN and Infinity are accepted as in PostgreSQL. */
    const char *p = buf + (buf[0] == '+' || buf[0] == '-');
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        return VELO_ERR;
    }
    char *end;
    errno = 0;
    double d = strtod(buf, &end);
    if (end != buf + len) {
        return VELO_ERR;
    }
    if (errno == ERANGE && isinf(d)) {
        return VELO_ERR;
    }
    *out = d;
    return VELO_OK;
}

int velo_parse_bool_text(const char *s, size_t len, int *out)
{
    static const struct {
        const char *t;
        int v;
    } words[] = {{"true", 1}, {"t", 1},  {"yes", 1},   {"y", 1},
                 {"on", 1},   {"1", 1},  {"false", 0}, {"f", 0},
                 {"no", 0},   {"n", 0},  {"off", 0},   {"0", 0}};
    trim(&s, &len);
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (strlen(words[i].t) == len && strncasecmp(s, words[i].t, len) == 0) {
            *out = words[i].v;
            return VELO_OK;
        }
    }
    return VELO_ERR;
}

static int64_t unit_us(const char *u, size_t n)
{
    return velo_interval_unit_us(u, n);
}

/* "[-]HH:MM[:SS[.frac]]" */
static int parse_clock(const char *s, size_t len, int64_t *us)
{
    size_t i = 0;
    int neg = 0;
    if (i < len && s[i] == '-') {
        neg = 1;
        i++;
    }
    int64_t parts[3] = {0, 0, 0};
    int np = 0;
    int64_t frac = 0;
    while (np < 3) {
        size_t st = i;
        int64_t v = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9' && i - st < 12) {
            v = v * 10 + (s[i++] - '0');
        }
        if (i == st) {
            return VELO_ERR;
        }
        parts[np++] = v;
        if (i < len && s[i] == ':') {
            i++;
            continue;
        }
        break;
    }
    if (np < 2) {
        return VELO_ERR;
    }
    if (i < len && s[i] == '.' && np == 3) {
        i++;
        int64_t scale = 100000;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            frac += (s[i++] - '0') * scale;
            scale /= 10;
        }
    }
    if (i != len || parts[1] > 59 || parts[2] > 59) {
        return VELO_ERR;
    }
    int64_t v = parts[0] * INT64_C(3600000000) + parts[1] * 60000000 +
                parts[2] * 1000000 + frac;
    *us = neg ? -v : v;
    return VELO_OK;
}

int velo_interval_parse(const char *s, size_t len, int64_t *us)
{
    trim(&s, &len);
    if (len == 0) {
        return VELO_ERR;
    }
    if (memchr(s, ':', len) != NULL) {
        return parse_clock(s, len, us);
    }
    size_t i = 0;
    double total = 0;
    int terms = 0;
    while (i < len) {
        while (i < len && blank(s[i])) {
            i++;
        }
        if (i >= len) {
            break;
        }
        size_t st = i;
        if (s[i] == '+' || s[i] == '-') {
            i++;
        }
        while (i < len && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.')) {
            i++;
        }
        double num;
        if (i == st || velo_parse_f64_text(s + st, i - st, &num) != VELO_OK) {
            return VELO_ERR;
        }
        while (i < len && blank(s[i])) {
            i++;
        }
        size_t us0 = i;
        while (i < len && ((s[i] >= 'a' && s[i] <= 'z') ||
                           (s[i] >= 'A' && s[i] <= 'Z'))) {
            i++;
        }
        int64_t unit = 1000000; /* a bare number is seconds */
        if (i > us0) {
            unit = unit_us(s + us0, i - us0);
            if (unit == 0) {
                return VELO_ERR;
            }
        } else if (terms > 0 || i < len) {
            return VELO_ERR;
        }
        total += num * (double)unit;
        terms++;
    }
    if (terms == 0 || !(total > -9.2e18 && total < 9.2e18)) {
        return VELO_ERR;
    }
    *us = (int64_t)llround(total);
    return VELO_OK;
}

size_t velo_interval_format(int64_t us, char *buf, size_t len)
{
    uint64_t u = us < 0 ? (uint64_t)0 - (uint64_t)us : (uint64_t)us;
    uint64_t days = u / UINT64_C(86400000000);
    uint64_t rest = u % UINT64_C(86400000000);
    unsigned h = (unsigned)(rest / UINT64_C(3600000000));
    unsigned m = (unsigned)(rest / 60000000 % 60);
    unsigned s = (unsigned)(rest / 1000000 % 60);
    unsigned frac = (unsigned)(rest % 1000000);
    char fbuf[16] = "";
    if (frac > 0) {
        snprintf(fbuf, sizeof(fbuf), ".%06u", frac);
        size_t fl = strlen(fbuf);
        while (fl > 0 && fbuf[fl - 1] == '0') {
            fbuf[--fl] = '\0';
        }
    }
    int n;
    if (days > 0) {
        n = snprintf(buf, len, "%s%llu day%s %02u:%02u:%02u%s",
                     us < 0 ? "-" : "", (unsigned long long)days,
                     days == 1 ? "" : "s", h, m, s, fbuf);
    } else {
        n = snprintf(buf, len, "%s%02u:%02u:%02u%s", us < 0 ? "-" : "", h, m,
                     s, fbuf);
    }
    if (n < 0) {
        return 0;
    }
    return (size_t)n < len ? (size_t)n : (len > 0 ? len - 1 : 0);
}

/* ---- Text of values ----------------------------------------------------- */

static size_t fmt_i64(int64_t v, char *buf)
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    size_t k = 0;
    if (v < 0) {
        buf[k++] = '-';
    }
    while (n > 0) {
        buf[k++] = tmp[--n];
    }
    buf[k] = '\0';
    return k;
}

static int arena_text(struct velo_arena *a, const char *s, size_t n,
                      struct velo_str *out)
{
    char *p = velo_arena_strdup(a, s, n);
    if (p == NULL) {
        return VELO_ERR;
    }
    out->ptr = p;
    out->len = n;
    return VELO_OK;
}

int velo_value_text(const struct velo_column *c, size_t r,
                    struct velo_arena *arena, struct velo_str *out)
{
    char buf[64];
    size_t n;
    switch (c->type.id) {
    case VELO_TYPE_BOOLEAN:
        out->ptr = c->v.u8[r] ? "true" : "false";
        out->len = c->v.u8[r] ? 4 : 5;
        return VELO_OK;
    case VELO_TYPE_INTEGER:
    case VELO_TYPE_BIGINT:
        n = fmt_i64(c->v.i64[r], buf);
        break;
    case VELO_TYPE_DOUBLE:
        n = velo_format_double(c->v.f64[r], buf, sizeof(buf));
        break;
    case VELO_TYPE_DECIMAL:
        n = velo_dec_format(c->v.i64[r], c->type.scale, buf, sizeof(buf));
        break;
    case VELO_TYPE_TIMESTAMP:
        n = velo_format_timestamp(c->v.i64[r], buf, sizeof(buf));
        break;
    case VELO_TYPE_DATE:
        n = velo_format_date(c->v.i64[r], buf, sizeof(buf));
        break;
    case VELO_TYPE_INTERVAL:
        n = velo_interval_format(c->v.i64[r], buf, sizeof(buf));
        break;
    case VELO_TYPE_STRING:
    case VELO_TYPE_BYTES:
    case VELO_TYPE_JSON:
        *out = c->v.str[r];
        return VELO_OK;
    default:
        out->ptr = "";
        out->len = 0;
        return VELO_OK;
    }
    if (n >= sizeof(buf)) {
        n = sizeof(buf) - 1;
    }
    return arena_text(arena, buf, n, out);
}

int velo_sbuf_put(struct velo_sbuf *b, const char *s, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->len + n) {
            cap *= 2;
        }
        /* Grow inside the arena: the old copy stays behind, bounded by
         * the geometric growth to the size of the final text. */
        char *p = velo_arena_alloc(b->arena, cap);
        if (p == NULL) {
            return VELO_ERR;
        }
        if (b->len > 0) {
            memcpy(p, b->p, b->len);
        }
        b->p = p;
        b->cap = cap;
    }
    if (n > 0) {
        memcpy(b->p + b->len, s, n);
    }
    b->len += n;
    return VELO_OK;
}

int velo_json_quote(struct velo_sbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (velo_sbuf_put(b, "\"", 1) != VELO_OK) {
        return VELO_ERR;
    }
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[7];
        if (c == '"') {
            esc = "\\\"";
        } else if (c == '\\') {
            esc = "\\\\";
        } else if (c == '\n') {
            esc = "\\n";
        } else if (c == '\r') {
            esc = "\\r";
        } else if (c == '\t') {
            esc = "\\t";
        } else if (c == '\b') {
            esc = "\\b";
        } else if (c == '\f') {
            esc = "\\f";
        } else if (c < 0x20) {
            u[0] = '\\';
            u[1] = 'u';
            u[2] = '0';
            u[3] = '0';
            u[4] = hex[c >> 4];
            u[5] = hex[c & 15];
            u[6] = '\0';
            esc = u;
        }
        if (esc != NULL) {
            if (velo_sbuf_put(b, s + start, i - start) != VELO_OK ||
                velo_sbuf_put(b, esc, strlen(esc)) != VELO_OK) {
                return VELO_ERR;
            }
            start = i + 1;
        }
    }
    if (velo_sbuf_put(b, s + start, n - start) != VELO_OK) {
        return VELO_ERR;
    }
    return velo_sbuf_put(b, "\"", 1);
}

int velo_value_json(const struct velo_column *c, size_t r,
                    struct velo_sbuf *b)
{
    char buf[64];
    size_t n;
    if (c->has_nulls && c->nulls[r]) {
        return velo_sbuf_put(b, "null", 4);
    }
    switch (c->type.id) {
    case VELO_TYPE_BOOLEAN:
        return c->v.u8[r] ? velo_sbuf_put(b, "true", 4)
                          : velo_sbuf_put(b, "false", 5);
    case VELO_TYPE_INTEGER:
    case VELO_TYPE_BIGINT:
        n = fmt_i64(c->v.i64[r], buf);
        return velo_sbuf_put(b, buf, n);
    case VELO_TYPE_DOUBLE:
        if (!isfinite(c->v.f64[r])) {
            return velo_sbuf_put(b, "null", 4); /* JSON has no NaN */
        }
        n = velo_format_double(c->v.f64[r], buf, sizeof(buf));
        return velo_sbuf_put(b, buf, n);
    case VELO_TYPE_JSON:
        return velo_sbuf_put(b, c->v.str[r].ptr, c->v.str[r].len);
    case VELO_TYPE_STRING:
    case VELO_TYPE_BYTES:
        return velo_json_quote(b, c->v.str[r].ptr, c->v.str[r].len);
    default: {
        /* DECIMAL (exact, as a string, like the JSON encoder), TIMESTAMP,
         * DATE, INTERVAL: their text, quoted. */
        struct velo_str t;
        if (velo_value_text(c, r, b->arena, &t) != VELO_OK) {
            return VELO_ERR;
        }
        return velo_json_quote(b, t.ptr, t.len);
    }
    }
}

/* ---- Cast kernels ------------------------------------------------------- */

static void cfail(struct velo_eval_ctx *ctx, struct velo_column *out,
                  size_t r, int try_, int code, const char *fmt, ...)
    VELO_PRINTF(6, 7);
static void cfail(struct velo_eval_ctx *ctx, struct velo_column *out,
                  size_t r, int try_, int code, const char *fmt, ...)
{
    if (try_) {
        velo_col_set_null(out, r);
        return;
    }
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    velo_eval_fail(ctx, out, r, code, "%s", msg);
}

static const char *tname(struct velo_datatype t, char *buf, size_t len)
{
    return velo_type_name(t, buf, len);
}

/* 'abc' for messages: at most 40 bytes of the value. */
static void fail_text(struct velo_eval_ctx *ctx, struct velo_column *out,
                      size_t r, int try_, struct velo_str s)
{
    char t[32];
    int n = s.len > 40 ? 40 : (int)s.len;
    cfail(ctx, out, r, try_, VELO_EVAL_CAST, "cannot cast '%.*s%s' to %s", n,
          s.ptr != NULL ? s.ptr : "", s.len > 40 ? "..." : "",
          tname(out->type, t, sizeof(t)));
}

static void fail_range(struct velo_eval_ctx *ctx, struct velo_column *out,
                       size_t r, int try_, const char *value)
{
    char t[32];
    cfail(ctx, out, r, try_, VELO_EVAL_OVERFLOW,
          "value %s is out of range for %s", value,
          tname(out->type, t, sizeof(t)));
}

static void cast_identity(struct velo_eval_ctx *ctx,
                          const struct velo_column *src,
                          struct velo_column *out, const uint16_t *sel,
                          size_t n, int try_)
{
    int phys = velo_phys(out->type.id);
    VELO_ROWS(sel, n, r, velo_col_put(out, r, velo_col_get(src, r)););
    (void)phys;
}

static void cast_null(struct velo_eval_ctx *ctx, const struct velo_column *src,
                      struct velo_column *out, const uint16_t *sel, size_t n,
                      int try_)
{
    VELO_ROWS(sel, n, r, velo_col_set_null(out, r););
}

/* Integer value v (scale 0) or DECIMAL unscaled v at scale `scale` into
 * the integer/decimal/double/boolean/text target of out. */
static void store_number(struct velo_eval_ctx *ctx, struct velo_column *out,
                         size_t r, int try_, int64_t v, int scale)
{
    char vb[48];
    int64_t t;
    switch (out->type.id) {
    case VELO_TYPE_BOOLEAN:
        out->v.u8[r] = v != 0;
        return;
    case VELO_TYPE_DOUBLE:
        out->v.f64[r] = velo_dec_to_double(v, scale);
        return;
    case VELO_TYPE_INTEGER:
    case VELO_TYPE_BIGINT:
        if (velo_dec_rescale(v, scale, 0, &t) != VELO_OK ||
            (out->type.id == VELO_TYPE_INTEGER &&
             (t < INT32_MIN || t > INT32_MAX))) {
            velo_dec_format(v, scale, vb, sizeof(vb));
            fail_range(ctx, out, r, try_, vb);
            return;
        }
        out->v.i64[r] = t;
        return;
    case VELO_TYPE_DECIMAL:
        if (velo_dec_rescale(v, scale, out->type.scale, &t) != VELO_OK ||
            !velo_dec_fits(t, out->type.precision)) {
            velo_dec_format(v, scale, vb, sizeof(vb));
            fail_range(ctx, out, r, try_, vb);
            return;
        }
        out->v.i64[r] = t;
        return;
    case VELO_TYPE_TIMESTAMP:
    case VELO_TYPE_INTERVAL:
        /* epoch / duration milliseconds */
        if (scale != 0 || __builtin_mul_overflow(v, 1000, &t)) {
            velo_dec_format(v, scale, vb, sizeof(vb));
            fail_range(ctx, out, r, try_, vb);
            return;
        }
        out->v.i64[r] = t;
        return;
    default:
        return;
    }
}

static void cast_int_num(struct velo_eval_ctx *ctx,
                         const struct velo_column *src,
                         struct velo_column *out, const uint16_t *sel,
                         size_t n, int try_)
{
    const int64_t *a = src->v.i64;
    if (out->type.id == VELO_TYPE_DOUBLE) {
        double *o = out->v.f64;
        VELO_ROWS(sel, n, r, o[r] = (double)a[r];);
        return;
    }
    if (out->type.id == VELO_TYPE_DECIMAL && out->type.scale == 0) {
        int p = out->type.precision;
        int64_t *o = out->v.i64;
        VELO_ROWS(sel, n, r,
                  if (velo_dec_fits(a[r], p)) { o[r] = a[r]; } else {
                      char vb[24];
                      fmt_i64(a[r], vb);
                      fail_range(ctx, out, r, try_, vb);
                  });
        return;
    }
    VELO_ROWS(sel, n, r, store_number(ctx, out, r, try_, a[r], 0););
}

static void cast_dec_num(struct velo_eval_ctx *ctx,
                         const struct velo_column *src,
                         struct velo_column *out, const uint16_t *sel,
                         size_t n, int try_)
{
    const int64_t *a = src->v.i64;
    int s = src->type.scale;
    VELO_ROWS(sel, n, r, store_number(ctx, out, r, try_, a[r], s););
}

static void cast_bool_num(struct velo_eval_ctx *ctx,
                          const struct velo_column *src,
                          struct velo_column *out, const uint16_t *sel,
                          size_t n, int try_)
{
    const uint8_t *a = src->v.u8;
    VELO_ROWS(sel, n, r, store_number(ctx, out, r, try_, a[r] ? 1 : 0, 0););
}

static void store_double(struct velo_eval_ctx *ctx, struct velo_column *out,
                         size_t r, int try_, double d)
{
    char vb[48];
    switch (out->type.id) {
    case VELO_TYPE_BOOLEAN:
        out->v.u8[r] = d != 0.0;
        return;
    case VELO_TYPE_INTEGER:
    case VELO_TYPE_BIGINT: {
        double t = nearbyint(d); /* HALF_EVEN in the default mode */
        double lo = out->type.id == VELO_TYPE_INTEGER ? -2147483648.0
                                                      : -9223372036854775808.0;
        double hi = out->type.id == VELO_TYPE_INTEGER ? 2147483647.0
                                                      : 9223372036854775807.0;
        /* 2^63 itself is not representable as int64: strict bound. */
        if (!(t >= lo && (out->type.id == VELO_TYPE_INTEGER ? t <= hi
                                                             : t < hi))) {
            velo_format_double(d, vb, sizeof(vb));
            fail_range(ctx, out, r, try_, vb);
            return;
        }
        out->v.i64[r] = (int64_t)t;
        return;
    }
    case VELO_TYPE_DECIMAL:
        if (velo_dec_from_double(d, out->type.precision, out->type.scale,
                                 &out->v.i64[r]) != VELO_OK) {
            velo_format_double(d, vb, sizeof(vb));
            fail_range(ctx, out, r, try_, vb);
        }
        return;
    default:
        return;
    }
}

static void cast_dbl_num(struct velo_eval_ctx *ctx,
                         const struct velo_column *src,
                         struct velo_column *out, const uint16_t *sel,
                         size_t n, int try_)
{
    const double *a = src->v.f64;
    VELO_ROWS(sel, n, r, store_double(ctx, out, r, try_, a[r]););
}

static void cast_to_text(struct velo_eval_ctx *ctx,
                         const struct velo_column *src,
                         struct velo_column *out, const uint16_t *sel,
                         size_t n, int try_)
{
    VELO_ROWS(sel, n, r,
              if (velo_value_text(src, r, ctx->arena, &out->v.str[r]) !=
                  VELO_OK) {
                  cfail(ctx, out, r, 0, VELO_EVAL_BAD_ARG, "out of memory");
              });
}

static void cast_to_json(struct velo_eval_ctx *ctx,
                         const struct velo_column *src,
                         struct velo_column *out, const uint16_t *sel,
                         size_t n, int try_)
{
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        if (src->type.id == VELO_TYPE_DOUBLE && !isfinite(src->v.f64[r])) {
            char t[32];
            cfail(ctx, out, r, try_, VELO_EVAL_CAST,
                  "cannot cast %s to JSON",
                  velo_format_double(src->v.f64[r], t, sizeof(t)) > 0 ? t
                                                                        : "");
            continue;
        }
        if (src->type.id == VELO_TYPE_DECIMAL) {
            /* CAST(... AS JSON) of a DECIMAL is the exact JSON number. */
            char buf[48];
            size_t len = velo_dec_format(src->v.i64[r], src->type.scale, buf,
                                         sizeof(buf));
            if (arena_text(ctx->arena, buf, len, &out->v.str[r]) != VELO_OK) {
                cfail(ctx, out, r, 0, VELO_EVAL_BAD_ARG, "out of memory");
            }
            continue;
        }
        struct velo_sbuf b = {NULL, 0, 0, ctx->arena};
        if (velo_value_json(src, r, &b) != VELO_OK) {
            cfail(ctx, out, r, 0, VELO_EVAL_BAD_ARG, "out of memory");
            continue;
        }
        out->v.str[r].ptr = b.p;
        out->v.str[r].len = b.len;
    }
}

/* One row of text (or a JSON scalar's text) to any target type. */
static void text_to(struct velo_eval_ctx *ctx, struct velo_column *out,
                    size_t r, int try_, struct velo_str s)
{
    int64_t v;
    double d;
    int b;
    switch (out->type.id) {
    case VELO_TYPE_BOOLEAN:
        if (velo_parse_bool_text(s.ptr, s.len, &b) != VELO_OK) {
            fail_text(ctx, out, r, try_, s);
        } else {
            out->v.u8[r] = (uint8_t)b;
        }
        return;
    case VELO_TYPE_INTEGER:
    case VELO_TYPE_BIGINT:
        errno = 0;
        if (velo_parse_i64_text(s.ptr, s.len, &v) != VELO_OK) {
            if (errno == ERANGE) {
                char vb[48];
                snprintf(vb, sizeof(vb), "%.*s", (int)(s.len > 40 ? 40 : s.len),
                         s.ptr);
                fail_range(ctx, out, r, try_, vb);
            } else {
                fail_text(ctx, out, r, try_, s);
            }
        } else if (out->type.id == VELO_TYPE_INTEGER &&
                   (v < INT32_MIN || v > INT32_MAX)) {
            char vb[24];
            fmt_i64(v, vb);
            fail_range(ctx, out, r, try_, vb);
        } else {
            out->v.i64[r] = v;
        }
        return;
    case VELO_TYPE_DOUBLE:
        if (velo_parse_f64_text(s.ptr, s.len, &d) != VELO_OK) {
            fail_text(ctx, out, r, try_, s);
        } else {
            out->v.f64[r] = d;
        }
        return;
    case VELO_TYPE_DECIMAL:
        errno = 0;
        if (velo_dec_parse(s.ptr, s.len, out->type.precision, out->type.scale,
                           &v) != VELO_OK) {
            if (errno == ERANGE) {
                char vb[48];
                snprintf(vb, sizeof(vb), "%.*s", (int)(s.len > 40 ? 40 : s.len),
                         s.ptr);
                fail_range(ctx, out, r, try_, vb);
            } else {
                fail_text(ctx, out, r, try_, s);
            }
        } else {
            out->v.i64[r] = v;
        }
        return;
    case VELO_TYPE_TIMESTAMP: {
        const char *p = s.ptr;
        size_t len = s.len;
        trim(&p, &len);
        if (velo_parse_timestamp(p, len, &v) != VELO_OK) {
            fail_text(ctx, out, r, try_, s);
        } else {
            out->v.i64[r] = v;
        }
        return;
    }
    case VELO_TYPE_DATE: {
        const char *p = s.ptr;
        size_t len = s.len;
        trim(&p, &len);
        if (velo_parse_date(p, len, &v) != VELO_OK) {
            /* A timestamp text gives its day. */
            if (velo_parse_timestamp(p, len, &v) != VELO_OK) {
                fail_text(ctx, out, r, try_, s);
                return;
            }
            v = velo_floor_div(v, VELO_US_PER_DAY);
        }
        out->v.i64[r] = v;
        return;
    }
    case VELO_TYPE_INTERVAL:
        if (velo_interval_parse(s.ptr, s.len, &v) != VELO_OK) {
            fail_text(ctx, out, r, try_, s);
        } else {
            out->v.i64[r] = v;
        }
        return;
    case VELO_TYPE_JSON:
        if (!velo_json_valid(s.ptr, s.len)) {
            fail_text(ctx, out, r, try_, s);
        } else {
            out->v.str[r] = s;
        }
        return;
    default:
        out->v.str[r] = s;
        return;
    }
}

static void cast_from_text(struct velo_eval_ctx *ctx,
                           const struct velo_column *src,
                           struct velo_column *out, const uint16_t *sel,
                           size_t n, int try_)
{
    const struct velo_str *a = src->v.str;
    VELO_ROWS(sel, n, r, text_to(ctx, out, r, try_, a[r]););
}

static void cast_from_json(struct velo_eval_ctx *ctx,
                           const struct velo_column *src,
                           struct velo_column *out, const uint16_t *sel,
                           size_t n, int try_)
{
    const struct velo_str *a = src->v.str;
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        struct velo_str t;
        int rc = velo_json_to_text(a[r].ptr, a[r].len, ctx->arena, &t);
        if (rc == 0) {
            velo_col_set_null(out, r); /* JSON null */
        } else if (rc < 0 || (t.len > 0 && (a[r].ptr[0] == '{' ||
                                            a[r].ptr[0] == '['))) {
            fail_text(ctx, out, r, try_, a[r]);
        } else {
            text_to(ctx, out, r, try_, t);
        }
    }
}

static void cast_ts_date(struct velo_eval_ctx *ctx,
                         const struct velo_column *src,
                         struct velo_column *out, const uint16_t *sel,
                         size_t n, int try_)
{
    const int64_t *a = src->v.i64;
    int64_t *o = out->v.i64;
    VELO_ROWS(sel, n, r, o[r] = velo_floor_div(a[r], VELO_US_PER_DAY););
}

static void cast_date_ts(struct velo_eval_ctx *ctx,
                         const struct velo_column *src,
                         struct velo_column *out, const uint16_t *sel,
                         size_t n, int try_)
{
    const int64_t *a = src->v.i64;
    int64_t *o = out->v.i64;
    VELO_ROWS(sel, n, r,
              if (__builtin_mul_overflow(a[r], VELO_US_PER_DAY, &o[r])) {
                  cfail(ctx, out, r, try_, VELO_EVAL_OVERFLOW,
                        "DATE out of range for TIMESTAMP");
              });
}

/* TIMESTAMP/INTERVAL to BIGINT: milliseconds, floored. */
static void cast_us_ms(struct velo_eval_ctx *ctx,
                       const struct velo_column *src, struct velo_column *out,
                       const uint16_t *sel, size_t n, int try_)
{
    const int64_t *a = src->v.i64;
    int64_t *o = out->v.i64;
    VELO_ROWS(sel, n, r, o[r] = velo_floor_div(a[r], 1000););
}

static int is_int(int id)
{
    return id == VELO_TYPE_INTEGER || id == VELO_TYPE_BIGINT;
}

static int is_num_target(int id)
{
    return id == VELO_TYPE_BOOLEAN || is_int(id) || id == VELO_TYPE_DOUBLE ||
           id == VELO_TYPE_DECIMAL;
}

static int is_text(int id)
{
    return id == VELO_TYPE_STRING || id == VELO_TYPE_BYTES;
}

velo_cast_fn velo_cast_lookup(struct velo_datatype from,
                              struct velo_datatype to, int *passthrough)
{
    int f = from.id, t = to.id;
    *passthrough = 0;
    if (f == VELO_TYPE_NULL) {
        return cast_null;
    }
    if (t == VELO_TYPE_NULL) {
        return NULL;
    }
    if ((f == t && f != VELO_TYPE_DECIMAL) ||
        (f == VELO_TYPE_INTEGER && t == VELO_TYPE_BIGINT) ||
        (f == VELO_TYPE_JSON && is_text(t)) || (is_text(f) && is_text(t)) ||
        (f == VELO_TYPE_DECIMAL && velo_type_equal(from, to))) {
        *passthrough = 1;
        return cast_identity;
    }
    if (t == VELO_TYPE_STRING) {
        return cast_to_text; /* every type has a text form */
    }
    if (t == VELO_TYPE_JSON) {
        return is_text(f) ? cast_from_text : cast_to_json;
    }
    switch (f) {
    case VELO_TYPE_BOOLEAN:
        return is_num_target(t) ? cast_bool_num : NULL;
    case VELO_TYPE_INTEGER:
    case VELO_TYPE_BIGINT:
        if (is_num_target(t) || t == VELO_TYPE_TIMESTAMP ||
            t == VELO_TYPE_INTERVAL) {
            return cast_int_num;
        }
        return NULL;
    case VELO_TYPE_DECIMAL:
        return is_num_target(t) ? cast_dec_num : NULL;
    case VELO_TYPE_DOUBLE:
        return is_num_target(t) ? cast_dbl_num : NULL;
    case VELO_TYPE_STRING:
        return t != VELO_TYPE_BYTES ? cast_from_text : NULL;
    case VELO_TYPE_BYTES:
        return NULL;
    case VELO_TYPE_JSON:
        return t != VELO_TYPE_BYTES && t != VELO_TYPE_INTERVAL
                   ? cast_from_json
                   : NULL;
    case VELO_TYPE_TIMESTAMP:
        return t == VELO_TYPE_DATE     ? cast_ts_date
               : t == VELO_TYPE_BIGINT ? cast_us_ms
                                       : NULL;
    case VELO_TYPE_DATE:
        return t == VELO_TYPE_TIMESTAMP ? cast_date_ts : NULL;
    case VELO_TYPE_INTERVAL:
        return t == VELO_TYPE_BIGINT ? cast_us_ms : NULL;
    default:
        return NULL;
    }
}

int velo_cast_supported(struct velo_datatype from, struct velo_datatype to)
{
    int pass;
    return velo_cast_lookup(from, to, &pass) != NULL;
}
