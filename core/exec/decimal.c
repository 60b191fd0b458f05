/*
 * Exact decimals: a DECIMAL(p,s) value is an int64 holding value * 10^s.
 * Every operation works in 128-bit intermediates and checks the result
 * fits int64 (and, where the caller asks, p digits); an overflow is an
 * error, never a wrap. Rounding is HALF_EVEN (banker's rounding, as the
 * issue asks): 2.5 -> 2, 3.5 -> 4, -2.5 -> -2.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <velo/log.h>

#include "exec/expr.h"
#include "exec/func-internal.h"

#define DEC_MAX_DIGITS 38 /* what an __int128 holds */

static const int64_t pow10_i64[19] = {
    INT64_C(1),
    INT64_C(10),
    INT64_C(100),
    INT64_C(1000),
    INT64_C(10000),
    INT64_C(100000),
    INT64_C(1000000),
    INT64_C(10000000),
    INT64_C(100000000),
    INT64_C(1000000000),
    INT64_C(10000000000),
    INT64_C(100000000000),
    INT64_C(1000000000000),
    INT64_C(10000000000000),
    INT64_C(100000000000000),
    INT64_C(1000000000000000),
    INT64_C(10000000000000000),
    INT64_C(100000000000000000),
    INT64_C(1000000000000000000),
};

int64_t velo_dec_pow10(int k)
{
    return k >= 0 && k <= 18 ? pow10_i64[k] : 0;
}

__int128 velo_i128_pow10(int k)
{
    if (k <= 18) {
        return pow10_i64[k < 0 ? 0 : k];
    }
    __int128 v = pow10_i64[18];
    for (int i = 18; i < k; i++) {
        v *= 10;
    }
    return v;
}

int velo_i128_rescale(__int128 v, int from, int to, __int128 *out)
{
    if (to >= from) {
        int k = to - from;
        if (k == 0) {
            *out = v;
            return VELO_OK;
        }
        if (v == 0) {
            *out = 0;
            return VELO_OK;
        }
        if (k > DEC_MAX_DIGITS) {
            return VELO_ERR;
        }
        __int128 r;
        if (__builtin_mul_overflow(v, velo_i128_pow10(k), &r)) {
            return VELO_ERR;
        }
        *out = r;
        return VELO_OK;
    }
    int k = from - to;
    if (k > DEC_MAX_DIGITS) {
        /* |v| < 2^127 < 10^39 / 2: it rounds to zero. */
        *out = 0;
        return VELO_OK;
    }
    __int128 d = velo_i128_pow10(k);
    __int128 q = v / d;
    __int128 r = v % d;
    __int128 ar = r < 0 ? -r : r;
    __int128 rest = d - ar; /* compare 2*ar with d without overflowing */
    if (ar > rest || (ar == rest && (q & 1) != 0)) {
        q += v < 0 ? -1 : 1;
    }
    *out = q;
    return VELO_OK;
}

int velo_i128_to_i64(__int128 v, int64_t *out)
{
    if (v > INT64_MAX || v < INT64_MIN) {
        return VELO_ERR;
    }
    *out = (int64_t)v;
    return VELO_OK;
}

int velo_dec_fits(int64_t v, int precision)
{
    if (precision >= 19 || precision <= 0) {
        return 1;
    }
    int64_t lim = pow10_i64[precision];
    return v < lim && v > -lim;
}

int velo_dec_rescale(int64_t v, int from_scale, int to_scale, int64_t *out)
{
    __int128 r;
    if (velo_i128_rescale(v, from_scale, to_scale, &r) != VELO_OK ||
        velo_i128_to_i64(r, out) != VELO_OK) {
        errno = ERANGE;
        return VELO_ERR;
    }
    return VELO_OK;
}

int velo_dec_add(int64_t a, int sa, int64_t b, int sb, int rs, int64_t *out)
{
    int cs = sa > sb ? sa : sb;
    __int128 x, y, r;
    /* Scales are <= 18, so both operands fit an __int128 exactly. */
    if (velo_i128_rescale(a, sa, cs, &x) != VELO_OK ||
        velo_i128_rescale(b, sb, cs, &y) != VELO_OK ||
        velo_i128_rescale(x + y, cs, rs, &r) != VELO_OK ||
        velo_i128_to_i64(r, out) != VELO_OK) {
        errno = ERANGE;
        return VELO_ERR;
    }
    return VELO_OK;
}

int velo_dec_mul(int64_t a, int sa, int64_t b, int sb, int rs, int64_t *out)
{
    __int128 p = (__int128)a * b; /* < 2^126: cannot overflow */
    __int128 r;
    if (velo_i128_rescale(p, sa + sb, rs, &r) != VELO_OK ||
        velo_i128_to_i64(r, out) != VELO_OK) {
        errno = ERANGE;
        return VELO_ERR;
    }
    return VELO_OK;
}

int velo_i128_div_round(__int128 num, __int128 den, __int128 *out)
{
    if (den == 0) {
        return VELO_ERR;
    }
    __int128 q = num / den;
    __int128 r = num % den;
    __int128 ar = r < 0 ? -r : r;
    __int128 ad = den < 0 ? -den : den;
    __int128 rest = ad - ar;
    if (ar > rest || (ar == rest && (q & 1) != 0)) {
        q += ((num < 0) != (den < 0)) ? -1 : 1;
    }
    *out = q;
    return VELO_OK;
}

int velo_dec_div(int64_t a, int sa, int64_t b, int sb, int rs, int64_t *out)
{
    if (b == 0) {
        errno = EDOM;
        return VELO_ERR;
    }
    /* result = a / 10^sa / (b / 10^sb) * 10^rs = a * 10^(rs-sa+sb) / b */
    int k = rs - sa + sb;
    __int128 num = a, den = b, q;
    if (k >= 0) {
        /* If a * 10^k overflows 128 bits, the quotient (|b| < 2^63) is
         * beyond int64 anyway. */
        if (velo_i128_rescale(num, 0, k, &num) != VELO_OK) {
            errno = ERANGE;
            return VELO_ERR;
        }
    } else {
        den *= velo_i128_pow10(-k); /* |b| * 10^18 < 2^127 */
    }
    if (velo_i128_div_round(num, den, &q) != VELO_OK ||
        velo_i128_to_i64(q, out) != VELO_OK) {
        errno = ERANGE;
        return VELO_ERR;
    }
    return VELO_OK;
}

int velo_dec_cmp(int64_t a, int sa, int64_t b, int sb)
{
    __int128 x = a, y = b;
    if (sa < sb) {
        x *= velo_i128_pow10(sb - sa);
    } else if (sb < sa) {
        y *= velo_i128_pow10(sa - sb);
    }
    return x < y ? -1 : x > y ? 1 : 0;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
           c == '\v';
}

int velo_dec_parse(const char *s, size_t len, int precision, int scale,
                   int64_t *out)
{
    size_t i = 0;
    while (i < len && is_space(s[i])) {
        i++;
    }
    while (len > i && is_space(s[len - 1])) {
        len--;
    }
    int neg = 0;
    if (i < len && (s[i] == '+' || s[i] == '-')) {
        neg = s[i] == '-';
        i++;
    }
    __int128 mant = 0;
    int sig = 0;      /* significant digits kept in mant */
    int frac = 0;     /* digits after the point */
    int ndigits = 0;  /* digits seen at all */
    int point = 0;
    for (; i < len; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') {
            ndigits++;
            if (point) {
                frac++;
            }
            if (mant == 0 && c == '0') {
                continue; /* leading zeros are not significant */
            }
            if (++sig > DEC_MAX_DIGITS) {
                errno = ERANGE;
                return VELO_ERR;
            }
            mant = mant * 10 + (c - '0');
        } else if (c == '.' && !point) {
            point = 1;
        } else {
            break;
        }
    }
    if (ndigits == 0) {
        errno = EINVAL;
        return VELO_ERR;
    }
    long exp10 = 0;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        int eneg = 0;
        if (i < len && (s[i] == '+' || s[i] == '-')) {
            eneg = s[i] == '-';
            i++;
        }
        int edigits = 0;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            if (exp10 < 10000) {
                exp10 = exp10 * 10 + (s[i] - '0');
            }
            edigits++;
        }
        if (edigits == 0) {
            errno = EINVAL;
            return VELO_ERR;
        }
        if (eneg) {
            exp10 = -exp10;
        }
    }
    if (i != len) {
        errno = EINVAL;
        return VELO_ERR;
    }
    if (neg) {
        mant = -mant;
    }
    /* value = mant * 10^(exp10 - frac); unscaled = value * 10^scale */
    long k = exp10 - frac + scale;
    __int128 r;
    if (mant == 0) {
        r = 0;
    } else if (k >= 0) {
        if (k > DEC_MAX_DIGITS || velo_i128_rescale(mant, 0, (int)k, &r)) {
            errno = ERANGE;
            return VELO_ERR;
        }
    } else {
        if (-k > 2 * DEC_MAX_DIGITS) {
            r = 0;
        } else if (-k > DEC_MAX_DIGITS) {
            r = 0; /* |mant| < 10^38: rounds to zero */
        } else {
            velo_i128_rescale(mant, (int)-k, 0, &r);
        }
    }
    int64_t v;
    if (velo_i128_to_i64(r, &v) != VELO_OK || !velo_dec_fits(v, precision)) {
        errno = ERANGE;
        return VELO_ERR;
    }
    *out = v;
    return VELO_OK;
}

size_t velo_dec_format(int64_t v, int scale, char *buf, size_t len)
{
    char tmp[48];
    char digits[24];
    size_t nd = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        digits[nd++] = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    size_t n = 0;
    if (v < 0) {
        tmp[n++] = '-';
    }
    if (scale <= 0) {
        while (nd > 0) {
            tmp[n++] = digits[--nd];
        }
    } else {
        size_t sc = (size_t)scale;
        if (nd <= sc) {
            tmp[n++] = '0';
            tmp[n++] = '.';
            for (size_t z = nd; z < sc; z++) {
                tmp[n++] = '0';
            }
            while (nd > 0) {
                tmp[n++] = digits[--nd];
            }
        } else {
            while (nd > sc) {
                tmp[n++] = digits[--nd];
            }
            tmp[n++] = '.';
            while (nd > 0) {
                tmp[n++] = digits[--nd];
            }
        }
    }
    if (len == 0) {
        return 0;
    }
    if (n >= len) {
        n = len - 1;
    }
    memcpy(buf, tmp, n);
    buf[n] = '\0';
    return n;
}

double velo_dec_to_double(int64_t v, int scale)
{
    if (scale <= 0) {
        return (double)v;
    }
    /* Powers of ten up to 1e22 are exact doubles, so this is one
     * correctly rounded division of the (rounded) unscaled value. */
    return (double)v / (double)pow10_i64[scale > 18 ? 18 : scale];
}

int velo_dec_from_double(double d, int precision, int scale, int64_t *out)
{
    if (!isfinite(d)) {
        errno = ERANGE;
        return VELO_ERR;
    }
    /* Round the shortest decimal text that reads back as d, so 2.675
     * (stored as 2.67499999...) rounds the way the user wrote it. */
    char buf[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, sizeof(buf), "%.*g", digits, d);
        if (digits == 17 || strtod(buf, NULL) == d) {
            break;
        }
    }
    return velo_dec_parse(buf, strlen(buf), precision, scale, out);
}
