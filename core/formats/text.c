/*
 * Text <-> value conversions for the scanners, the encoders and casts:
 * integers, doubles, exact decimals, booleans, intervals, timestamps and
 * dates. The common cases are parsed by hand (strtod only for doubles the
 * fast exact path cannot do), because these run once per field.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <velo/log.h>

#include "formats/format-internal.h"

static inline int is_digit(char c)
{
    return (unsigned)(c - '0') < 10u;
}

/* ---- integers ----------------------------------------------------------- */

int fmt_parse_i64(const char *s, size_t n, int64_t *out)
{
    const char *p = s, *end = s + n;
    int neg = 0;
    if (p < end && (*p == '-' || *p == '+')) {
        neg = *p == '-';
        p++;
    }
    if (p == end) {
        return VELO_ERR;
    }
    uint64_t v = 0;
    /* INT64_MAX is 9223372036854775807; -INT64_MIN one more. */
    const uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    int overflow = 0;
    while (p < end && is_digit(*p)) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (limit - d) / 10) {
            overflow = 1;
        } else {
            v = v * 10 + d;
        }
        p++;
    }
    if (p != end) {
        return VELO_ERR;
    }
    if (overflow) {
        return VELO_AGAIN;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return VELO_OK;
}

const char fmt_digits2[201] = "00010203040506070809"
                              "10111213141516171819"
                              "20212223242526272829"
                              "30313233343536373839"
                              "40414243444546474849"
                              "50515253545556575859"
                              "60616263646566676869"
                              "70717273747576777879"
                              "80818283848586878889"
                              "90919293949596979899";

/* ---- doubles ------------------------------------------------------------ */

static const double pow10_exact[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static int double_fallback(const char *s, size_t n, double *out)
{
    char buf[512];
    if (n >= sizeof(buf)) {
        return VELO_ERR;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *endp = NULL;
    errno = 0;
    double v = strtod(buf, &endp);
    if (endp != buf + n || n == 0 || fmt_is_space(buf[0])) {
        return VELO_ERR;
    }
    if (errno == ERANGE && isinf(v)) {
        return VELO_AGAIN;
    }
    *out = v;
    return VELO_OK;
}

/*
 * Clinger's fast path: a mantissa of at most 2^53 times an exact power of
 * ten up to 1e22 is exactly one IEEE operation away, so the result is
 * correctly rounded. Everything else goes to strtod.
 */
int fmt_parse_double(const char *s, size_t n, double *out)
{
    const char *p = s, *end = s + n;
    int neg = 0;
    if (p < end && (*p == '-' || *p == '+')) {
        neg = *p == '-';
        p++;
    }
    uint64_t m = 0;
    int nd = 0, exp10 = 0, inexact = 0;
    while (p < end && is_digit(*p)) {
        if (m < UINT64_C(100000000000000000)) {
            m = m * 10 + (uint64_t)(*p - '0');
        } else {
            exp10++;
            inexact |= *p != '0';
        }
        nd++;
        p++;
    }
    if (p < end && *p == '.') {
        p++;
        while (p < end && is_digit(*p)) {
            if (m < UINT64_C(100000000000000000)) {
                m = m * 10 + (uint64_t)(*p - '0');
                exp10--;
            } else {
                inexact |= *p != '0';
            }
            nd++;
            p++;
        }
    }
    if (nd == 0) {
        return double_fallback(s, n, out); /* "inf", "NaN", ".e1"... */
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        int eneg = 0;
        if (p < end && (*p == '-' || *p == '+')) {
            eneg = *p == '-';
            p++;
        }
        if (p == end || !is_digit(*p)) {
            return VELO_ERR;
        }
        int e = 0;
        while (p < end && is_digit(*p)) {
            if (e < 100000) {
                e = e * 10 + (*p - '0');
            }
            p++;
        }
        exp10 += eneg ? -e : e;
    }
    if (p != end) {
        return double_fallback(s, n, out);
    }
    if (!inexact && m <= (UINT64_C(1) << 53) && exp10 >= -22 && exp10 <= 22) {
        double v = (double)m;
        v = exp10 >= 0 ? v * pow10_exact[exp10] : v / pow10_exact[-exp10];
        *out = neg ? -v : v;
        return VELO_OK;
    }
    return double_fallback(s, n, out);
}

/* The fast path of velo_format_double: d written with k <= 8 decimals,
 * found as the smallest k for which m = round(d * 10^k) divided by 10^k
 * is d again. Division is correctly rounded, so that equality is exactly
 * "strtod of the decimal m / 10^k gives d": the text reads back. Only for
 * 1e-4 <= |d| and |m| < 1e15 (at most 15 significant digits, where
 * "%.15g" would print the same fixed notation, since d lies within half
 * an ulp of that decimal). @return its length, or 0 when it does not
 * apply (the caller then uses printf). */
static size_t format_short_fixed(double d, char *out)
{
    static const double p10[] = {1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};
    static const uint64_t u10[] = {10,     100,     1000,     10000,
                                   100000, 1000000, 10000000, 100000000};
    double a = fabs(d);
    if (!(a >= 1e-4 && a < 1e15)) {
        return 0;
    }
    for (int k = 0; k < 8; k++) {
        double sc = d * p10[k];
        if (fabs(sc) >= 1e15) {
            return 0;
        }
        double r = nearbyint(sc);
        if (r / p10[k] != d) {
            continue;
        }
        int64_t m = (int64_t)r;
        uint64_t u = m < 0 ? (uint64_t)0 - (uint64_t)m : (uint64_t)m;
        uint64_t ip = u / u10[k], fp = u % u10[k];
        char *w = out;
        if (m < 0) {
            *w++ = '-';
        }
        w += fmt_format_i64((int64_t)ip, w);
        *w++ = '.';
        int digits = k + 1;
        while (fp % 10 == 0 && digits > 1) { /* 2.50 -> 2.5 */
            fp /= 10;
            digits--;
        }
        for (int i = digits - 1; i >= 0; i--) {
            w[i] = (char)('0' + fp % 10);
            fp /= 10;
        }
        w += digits;
        return (size_t)(w - out);
    }
    return 0;
}

size_t velo_format_double(double d, char *buf, size_t len)
{
    char tmp[40];
    int n;
    if (isnan(d)) {
        n = snprintf(tmp, sizeof(tmp), "NaN");
    } else if (isinf(d)) {
        n = snprintf(tmp, sizeof(tmp), "%s", d < 0 ? "-Infinity" : "Infinity");
    } else if (d == 0) {
        n = snprintf(tmp, sizeof(tmp), "%s", signbit(d) ? "-0" : "0");
    } else if (fabs(d) < 9007199254740992.0 && d == (double)(int64_t)d) {
        n = (int)fmt_format_i64((int64_t)d, tmp);
    } else if ((n = (int)format_short_fixed(d, tmp)) > 0) {
        /* a few decimals (prices, ratios): no printf, no strtod */
    } else {
        /* The shortest of 15, 16, 17 significant digits that reads back
         * to the same double; 17 always does. */
        n = 0;
        for (int prec = 15; prec <= 17; prec++) {
            n = snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
            if (prec == 17 || strtod(tmp, NULL) == d) {
                break;
            }
        }
    }
    if (n < 0 || (size_t)n >= len) {
        if (len > 0) {
            buf[0] = '\0';
        }
        return 0;
    }
    memcpy(buf, tmp, (size_t)n);
    buf[n] = '\0';
    return (size_t)n;
}

/* ---- decimals ----------------------------------------------------------- */

static const uint64_t pow10_u64[] = {1ULL,
                                     10ULL,
                                     100ULL,
                                     1000ULL,
                                     10000ULL,
                                     100000ULL,
                                     1000000ULL,
                                     10000000ULL,
                                     100000000ULL,
                                     1000000000ULL,
                                     10000000000ULL,
                                     100000000000ULL,
                                     1000000000000ULL,
                                     10000000000000ULL,
                                     100000000000000ULL,
                                     1000000000000000ULL,
                                     10000000000000000ULL,
                                     100000000000000000ULL,
                                     1000000000000000000ULL,
                                     10000000000000000000ULL};

/*
 * The digits (integer part then fraction) form D, and the value is
 * D * 10^(exp - nfrac). The unscaled result keeps the first
 * K = T + exp - nfrac + scale of the T digits (appending zeros when K > T)
 * and rounds HALF_EVEN on the dropped ones.
 */
int fmt_parse_decimal(const char *s, size_t n, int precision, int scale,
                      int64_t *out)
{
    if (precision < 1 || precision > 18 || scale < 0 || scale > precision) {
        return VELO_ERR;
    }
    const char *p = s, *end = s + n;
    int neg = 0;
    if (p < end && (*p == '-' || *p == '+')) {
        neg = *p == '-';
        p++;
    }
    const char *ip = p;
    while (p < end && is_digit(*p)) {
        p++;
    }
    size_t nint = (size_t)(p - ip);
    const char *fp = p;
    size_t nfrac = 0;
    if (p < end && *p == '.') {
        p++;
        fp = p;
        while (p < end && is_digit(*p)) {
            p++;
        }
        nfrac = (size_t)(p - fp);
    }
    if (nint + nfrac == 0) {
        return VELO_ERR;
    }
    int64_t e10 = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        int eneg = 0;
        if (p < end && (*p == '-' || *p == '+')) {
            eneg = *p == '-';
            p++;
        }
        if (p == end || !is_digit(*p)) {
            return VELO_ERR;
        }
        while (p < end && is_digit(*p)) {
            if (e10 < 100000) {
                e10 = e10 * 10 + (*p - '0');
            }
            p++;
        }
        if (eneg) {
            e10 = -e10;
        }
    }
    if (p != end) {
        return VELO_ERR;
    }
    int64_t total = (int64_t)(nint + nfrac);
    int64_t keep = total + e10 - (int64_t)nfrac + scale;
    uint64_t v = 0;
    int sig = 0;
    int64_t upto = keep < total ? keep : total;
    for (int64_t i = 0; i < upto; i++) {
        char c = i < (int64_t)nint ? ip[i] : fp[i - (int64_t)nint];
        unsigned d = (unsigned)(c - '0');
        if (v == 0 && d == 0) {
            continue;
        }
        if (++sig > precision) {
            return VELO_AGAIN;
        }
        v = v * 10 + d;
    }
    if (keep > total) {
        for (int64_t i = total; i < keep && v != 0; i++) {
            if (++sig > precision) {
                return VELO_AGAIN;
            }
            v *= 10;
        }
    } else if (keep < total) {
        /* Round on the first dropped digit; the rest only break ties. */
        unsigned r = 0;
        int sticky = 0;
        for (int64_t i = keep < 0 ? 0 : keep; i < total; i++) {
            char c = i < (int64_t)nint ? ip[i] : fp[i - (int64_t)nint];
            unsigned d = (unsigned)(c - '0');
            if (i == keep) {
                r = d;
            } else if (d != 0) {
                sticky = 1;
            }
        }
        if (r > 5 || (r == 5 && (sticky || (v & 1)))) {
            v++;
        }
    }
    if (v >= pow10_u64[precision]) {
        return VELO_AGAIN;
    }
    *out = neg ? -(int64_t)v : (int64_t)v;
    return VELO_OK;
}

size_t fmt_format_decimal(int64_t v, int scale, char *buf)
{
    if (scale <= 0) {
        return fmt_format_i64(v, buf);
    }
    char tmp[24];
    char *t = tmp + sizeof(tmp);
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--t = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    size_t nd = (size_t)(tmp + sizeof(tmp) - t);
    size_t len = 0;
    if (v < 0) {
        buf[len++] = '-';
    }
    if (nd <= (size_t)scale) {
        buf[len++] = '0';
        buf[len++] = '.';
        for (size_t i = nd; i < (size_t)scale; i++) {
            buf[len++] = '0';
        }
        memcpy(buf + len, t, nd);
        len += nd;
    } else {
        size_t ip = nd - (size_t)scale;
        memcpy(buf + len, t, ip);
        len += ip;
        buf[len++] = '.';
        memcpy(buf + len, t + ip, (size_t)scale);
        len += (size_t)scale;
    }
    return len;
}

size_t velo_format_decimal(int64_t v, int scale, char *buf)
{
    return fmt_format_decimal(v, scale, buf);
}

/* ---- booleans and intervals -------------------------------------------- */

static int word_is(const char *s, size_t n, const char *w)
{
    return strlen(w) == n && strncasecmp(s, w, n) == 0;
}

int fmt_parse_bool(const char *s, size_t n, int *out)
{
    if (word_is(s, n, "true") || word_is(s, n, "t") || word_is(s, n, "yes") ||
        word_is(s, n, "y") || word_is(s, n, "1")) {
        *out = 1;
        return VELO_OK;
    }
    if (word_is(s, n, "false") || word_is(s, n, "f") || word_is(s, n, "no") ||
        word_is(s, n, "n") || word_is(s, n, "0")) {
        *out = 0;
        return VELO_OK;
    }
    return VELO_ERR;
}

struct iv_unit {
    const char *name;
    int64_t us;
};

/* Longest names first so "ms" is not read as "m" then "s". */
static const struct iv_unit iv_units[] = {
    {"us", 1},
    {"ms", 1000},
    {"s", 1000000},
    {"m", 60000000},
    {"h", INT64_C(3600000000)},
    {"d", INT64_C(86400000000)},
};

int fmt_parse_interval(const char *s, size_t n, int64_t *us)
{
    const char *p = s, *end = s + n;
    int neg = 0;
    if (p < end && (*p == '-' || *p == '+')) {
        neg = *p == '-';
        p++;
    }
    if (p == end) {
        return VELO_ERR;
    }
    int64_t total = 0;
    int parts = 0;
    while (p < end) {
        if (!is_digit(*p)) {
            return VELO_ERR;
        }
        uint64_t v = 0;
        while (p < end && is_digit(*p)) {
            v = v * 10 + (uint64_t)(*p - '0');
            if (v > (uint64_t)INT64_MAX / 1000) {
                return VELO_AGAIN;
            }
            p++;
        }
        const char *u = p;
        while (p < end &&
               ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))) {
            p++;
        }
        size_t ulen = (size_t)(p - u);
        int64_t mult = 0;
        if (ulen == 0) {
            if (parts > 0 || p != end) {
                return VELO_ERR;
            }
            mult = 1000; /* a bare number is milliseconds */
        }
        for (size_t i = 0;
             ulen > 0 && i < sizeof(iv_units) / sizeof(iv_units[0]); i++) {
            if (word_is(u, ulen, iv_units[i].name)) {
                mult = iv_units[i].us;
            }
        }
        if (mult == 0) {
            return VELO_ERR;
        }
        if ((int64_t)v > INT64_MAX / mult ||
            total > INT64_MAX - (int64_t)v * mult) {
            return VELO_AGAIN;
        }
        total += (int64_t)v * mult;
        parts++;
    }
    *us = neg ? -total : total;
    return VELO_OK;
}

size_t fmt_format_interval(int64_t us, char *buf, size_t len)
{
    char tmp[96];
    size_t n = 0;
    if (us == 0) {
        tmp[n++] = '0';
        tmp[n++] = 's';
    } else {
        uint64_t u = us < 0 ? 0 - (uint64_t)us : (uint64_t)us;
        if (us < 0) {
            tmp[n++] = '-';
        }
        for (size_t i = sizeof(iv_units) / sizeof(iv_units[0]); i-- > 0;) {
            uint64_t m = (uint64_t)iv_units[i].us;
            if (u >= m) {
                n += fmt_format_i64((int64_t)(u / m), tmp + n);
                size_t ul = strlen(iv_units[i].name);
                memcpy(tmp + n, iv_units[i].name, ul);
                n += ul;
                u %= m;
            }
        }
    }
    if (n >= len) {
        if (len > 0) {
            buf[0] = '\0';
        }
        return 0;
    }
    memcpy(buf, tmp, n);
    buf[n] = '\0';
    return n;
}

/* ---- dates and timestamps ---------------------------------------------- */

/* Howard Hinnant's days_from_civil / civil_from_days. */
int64_t fmt_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void fmt_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yy + (*m <= 2);
}

static int two(const char *p, unsigned *out)
{
    if (!is_digit(p[0]) || !is_digit(p[1])) {
        return 0;
    }
    *out = (unsigned)(p[0] - '0') * 10 + (unsigned)(p[1] - '0');
    return 1;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned dm[] = {31, 28, 31, 30, 31, 30,
                                  31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) {
        return 29;
    }
    return dm[m - 1];
}

/* "YYYY-MM-DD" at p (10 bytes available). */
static int parse_ymd(const char *p, int64_t *days)
{
    unsigned y1, y2, m, d;
    if (!two(p, &y1) || !two(p + 2, &y2) || p[4] != '-' || !two(p + 5, &m) ||
        p[7] != '-' || !two(p + 8, &d)) {
        return VELO_ERR;
    }
    int64_t y = (int64_t)(y1 * 100 + y2);
    if (m < 1 || m > 12 || d < 1 || d > days_in_month(y, m)) {
        return VELO_ERR;
    }
    *days = fmt_days_from_civil(y, m, d);
    return VELO_OK;
}

int velo_parse_date(const char *s, size_t len, int64_t *days)
{
    if (len != 10) {
        return VELO_ERR;
    }
    return parse_ymd(s, days);
}

/* After the seconds: an optional fraction, then an optional zone. t is
 * the time so far in the zone of the text. */
static int ts_tail(const char *p, const char *end, int64_t t, int64_t *us)
{
    if (p < end && (*p == '.' || *p == ',')) {
        p++;
        int nd = 0;
        int64_t frac = 0;
        while (p < end && is_digit(*p)) {
            if (nd < 6) {
                frac = frac * 10 + (*p - '0');
            }
            nd++;
            p++;
        }
        if (nd == 0) {
            return VELO_ERR;
        }
        for (int i = nd; i < 6; i++) {
            frac *= 10;
        }
        t += frac;
    }
    if (p < end && (*p == 'Z' || *p == 'z')) {
        p++;
    } else if (p < end && (*p == '+' || *p == '-')) {
        int neg = *p == '-';
        unsigned oh, om = 0;
        if (end - p < 3 || !two(p + 1, &oh)) {
            return VELO_ERR;
        }
        p += 3;
        if (p < end && *p == ':') {
            p++;
        }
        if (end - p >= 2 && two(p, &om)) {
            p += 2;
        }
        if (oh > 23 || om > 59) {
            return VELO_ERR;
        }
        int64_t off = ((int64_t)oh * 3600 + om * 60) * 1000000;
        t += neg ? off : -off;
    }
    if (p != end) {
        return VELO_ERR;
    }
    *us = t;
    return VELO_OK;
}

/* The part after "YYYY-MM-DD" (days already parsed). *whole_secs is set
 * when the text had seconds (so its first 19 bytes name one second). */
static int ts_rest(const char *s, size_t len, int64_t days, int64_t *us,
                   int64_t *sec_us)
{
    int64_t t = days * INT64_C(86400000000);
    if (len == 10) {
        *us = t;
        return VELO_OK;
    }
    const char *p = s + 10, *end = s + len;
    unsigned hh, mm, ss = 0;
    if ((*p != 'T' && *p != 't' && *p != ' ') || end - p < 6 ||
        !two(p + 1, &hh) || p[3] != ':' || !two(p + 4, &mm)) {
        return VELO_ERR;
    }
    p += 6;
    int secs = 0;
    if (p < end && *p == ':') {
        if (end - p < 3 || !two(p + 1, &ss)) {
            return VELO_ERR;
        }
        p += 3;
        secs = 1;
    }
    if (hh > 23 || mm > 59 || ss > 59) {
        return VELO_ERR;
    }
    t += ((int64_t)hh * 3600 + mm * 60 + ss) * 1000000;
    if (secs && sec_us != NULL) {
        *sec_us = t;
    }
    return ts_tail(p, end, t, us);
}

int velo_parse_timestamp(const char *s, size_t len, int64_t *us)
{
    int64_t days;
    if (len < 10 || parse_ymd(s, &days) != VELO_OK) {
        return VELO_ERR;
    }
    return ts_rest(s, len, days, us, NULL);
}

int fmt_parse_ts_cached(struct fmt_day_cache *c, const char *s, size_t len,
                        int64_t *us)
{
    if (len < 10) {
        return VELO_ERR;
    }
    /* The same second as the last one: only the fraction and zone. */
    if (c->sec_valid && len >= 19 && memcmp(s, c->sec_key, 19) == 0) {
        return ts_tail(s + 19, s + len, c->sec_us, us);
    }
    if (!c->valid || memcmp(s, c->ymd, 10) != 0) {
        int64_t days;
        if (parse_ymd(s, &days) != VELO_OK) {
            return VELO_ERR;
        }
        memcpy(c->ymd, s, 10);
        c->len = 10;
        c->day = days;
        c->valid = 1;
    }
    int64_t sec_us = INT64_MIN;
    int rc = ts_rest(s, len, c->day, us, &sec_us);
    if (rc == VELO_OK && sec_us != INT64_MIN && len >= 19) {
        memcpy(c->sec_key, s, 19);
        c->sec_us = sec_us;
        c->sec_valid = 1;
    }
    return rc;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static void put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

static size_t format_ymd(int64_t days, char *p)
{
    int64_t y;
    unsigned m, d;
    fmt_civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999) {
        char tmp[32];
        int n =
            snprintf(tmp, sizeof(tmp), "%+05lld-%02u-%02u", (long long)y, m, d);
        memcpy(p, tmp, (size_t)n);
        return (size_t)n;
    }
    put2(p, (unsigned)(y / 100));
    put2(p + 2, (unsigned)(y % 100));
    p[4] = '-';
    put2(p + 5, m);
    p[7] = '-';
    put2(p + 8, d);
    return 10;
}

size_t velo_format_timestamp(int64_t us, char *buf, size_t len)
{
    char tmp[48];
    int64_t ms = floor_div(us, 1000);
    int64_t days = floor_div(ms, 86400000);
    int64_t rem = ms - days * 86400000;
    size_t n = format_ymd(days, tmp);
    unsigned secs = (unsigned)(rem / 1000);
    tmp[n] = 'T';
    put2(tmp + n + 1, secs / 3600);
    tmp[n + 3] = ':';
    put2(tmp + n + 4, secs / 60 % 60);
    tmp[n + 6] = ':';
    put2(tmp + n + 7, secs % 60);
    tmp[n + 9] = '.';
    unsigned msec = (unsigned)(rem % 1000);
    tmp[n + 10] = (char)('0' + msec / 100);
    put2(tmp + n + 11, msec % 100);
    tmp[n + 13] = 'Z';
    n += 14;
    if (n >= len) {
        if (len > 0) {
            buf[0] = '\0';
        }
        return 0;
    }
    memcpy(buf, tmp, n);
    buf[n] = '\0';
    return n;
}

size_t fmt_format_ts_cached(struct fmt_day_cache *c, int64_t us, char *p)
{
    int64_t ms, sec;
    if (us >= 0) {
        /* The common case: unsigned division needs no rounding fix. */
        ms = (int64_t)((uint64_t)us / 1000);
        sec = (int64_t)((uint64_t)ms / 1000);
    } else {
        ms = floor_div(us, 1000);
        sec = floor_div(ms, 1000);
    }
    unsigned msec = (unsigned)(ms - sec * 1000);
    if (!c->out_valid || c->out_sec != sec) {
        /* "YYYY-MM-DDTHH:MM:SS." once per second. */
        int64_t days = floor_div(sec, 86400);
        unsigned secs = (unsigned)(sec - days * 86400);
        size_t n = format_ymd(days, c->out);
        c->out[n] = 'T';
        put2(c->out + n + 1, secs / 3600);
        c->out[n + 3] = ':';
        put2(c->out + n + 4, secs / 60 % 60);
        c->out[n + 6] = ':';
        put2(c->out + n + 7, secs % 60);
        c->out[n + 9] = '.';
        c->out_len = (uint8_t)(n + 10);
        c->out_sec = sec;
        c->out_valid = 1;
    }
    size_t n = c->out_len;
    /* A fixed-size copy (c->out and p both hold 40 bytes) is one or two
     * moves; what it copies past n is overwritten or left unused. */
    if (n <= 24) {
        memcpy(p, c->out, 24);
    } else {
        memcpy(p, c->out, n);
    }
    p[n] = (char)('0' + msec / 100);
    memcpy(p + n + 1, fmt_digits2 + (msec % 100) * 2, 2);
    p[n + 3] = 'Z';
    return n + 4;
}

size_t velo_format_date(int64_t days, char *buf, size_t len)
{
    char tmp[32];
    size_t n = format_ymd(days, tmp);
    if (n >= len) {
        if (len > 0) {
            buf[0] = '\0';
        }
        return 0;
    }
    memcpy(buf, tmp, n);
    buf[n] = '\0';
    return n;
}
