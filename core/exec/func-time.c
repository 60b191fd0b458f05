/*
 * Time functions. Timestamps are microseconds since the epoch, UTC; the
 * calendar is proleptic Gregorian (Howard Hinnant's days/civil
 * conversions, valid for every int64 day count we produce).
 *
 * EXTRACT fields: YEAR, QUARTER, MONTH, WEEK (ISO), DAY, HOUR, MINUTE,
 * SECOND (0-59, whole), MILLISECOND (0-999, within the second),
 * MICROSECOND (0-999999, within the second), DOW (0 = Sunday), ISODOW
 * (1 = Monday), DOY (1-366), EPOCH (whole seconds since 1970). All BIGINT.
 * DATE_TRUNC units: MICROSECOND, MILLISECOND, SECOND, MINUTE, HOUR, DAY,
 * WEEK (Monday), MONTH, QUARTER, YEAR, DECADE. Units are
 * case-insensitive and may be plural.
 *
 * DATE_FORMAT(ts, pattern) takes strftime conversions: %Y %y %m %d %e %H
 * %I %p %M %S %j %a %A %b %B %u %w %F %T %D %R %s %z %Z %% plus %L
 * (milliseconds, 3 digits) and %f (microseconds, 6 digits); it never
 * depends on the locale or the time zone.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <velo/log.h>

#include "exec/func-internal.h"

int64_t velo_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void velo_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t yy = (int64_t)yoe + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yy + (*m <= 2);
}

/* Day number and time of day of a timestamp, without a multiplication
 * that could overflow at the ends of the int64 range. */
static void split_us(int64_t us, int64_t *days, int64_t *tod)
{
    int64_t rem = us % VELO_US_PER_DAY;
    *days = us / VELO_US_PER_DAY - (rem < 0);
    *tod = rem < 0 ? rem + VELO_US_PER_DAY : rem;
}

enum time_unit {
    U_BAD = 0,
    U_MICROSECOND,
    U_MILLISECOND,
    U_SECOND,
    U_MINUTE,
    U_HOUR,
    U_DAY,
    U_WEEK,
    U_MONTH,
    U_QUARTER,
    U_YEAR,
    U_DECADE,
    U_DOW,
    U_ISODOW,
    U_DOY,
    U_EPOCH
};

static const struct {
    const char *name;
    int unit;
} unit_names[] = {
    {"MICROSECOND", U_MICROSECOND}, {"MICROSECONDS", U_MICROSECOND},
    {"MILLISECOND", U_MILLISECOND}, {"MILLISECONDS", U_MILLISECOND},
    {"SECOND", U_SECOND},           {"SECONDS", U_SECOND},
    {"MINUTE", U_MINUTE},           {"MINUTES", U_MINUTE},
    {"HOUR", U_HOUR},               {"HOURS", U_HOUR},
    {"DAY", U_DAY},                 {"DAYS", U_DAY},
    {"WEEK", U_WEEK},               {"WEEKS", U_WEEK},
    {"MONTH", U_MONTH},             {"MONTHS", U_MONTH},
    {"QUARTER", U_QUARTER},         {"QUARTERS", U_QUARTER},
    {"YEAR", U_YEAR},               {"YEARS", U_YEAR},
    {"DECADE", U_DECADE},           {"DECADES", U_DECADE},
    {"DOW", U_DOW},                 {"DAYOFWEEK", U_DOW},
    {"ISODOW", U_ISODOW},           {"DOY", U_DOY},
    {"DAYOFYEAR", U_DOY},           {"EPOCH", U_EPOCH},
};

static int parse_unit(const char *s, size_t len)
{
    while (len > 0 && (*s == ' ' || *s == '\'')) {
        s++;
        len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\'')) {
        len--;
    }
    for (size_t i = 0; i < sizeof(unit_names) / sizeof(unit_names[0]); i++) {
        if (strlen(unit_names[i].name) == len &&
            strncasecmp(unit_names[i].name, s, len) == 0) {
            return unit_names[i].unit;
        }
    }
    return U_BAD;
}

static int extract_ok(int u)
{
    return u != U_BAD && u != U_DECADE;
}

static int trunc_ok(int u)
{
    return u >= U_MICROSECOND && u <= U_DECADE;
}

/* ISO 8601 week number of a day. */
static int64_t iso_week(int64_t days)
{
    int64_t wd = ((days + 3) % 7 + 7) % 7; /* 0 = Monday */
    int64_t thursday = days - wd + 3;
    int64_t y;
    unsigned m, d;
    velo_civil_from_days(thursday, &y, &m, &d);
    int64_t jan1 = velo_days_from_civil(y, 1, 1);
    return (thursday - jan1) / 7 + 1;
}

static int64_t extract_ts(int u, int64_t us)
{
    int64_t days, tod;
    split_us(us, &days, &tod);
    int64_t y;
    unsigned m, d;
    switch (u) {
    case U_MICROSECOND:
        return tod % 1000000;
    case U_MILLISECOND:
        return tod % 1000000 / 1000;
    case U_SECOND:
        return tod / 1000000 % 60;
    case U_MINUTE:
        return tod / 60000000 % 60;
    case U_HOUR:
        return tod / INT64_C(3600000000);
    case U_DOW:
        return ((days + 4) % 7 + 7) % 7;
    case U_ISODOW: {
        int64_t w = ((days + 4) % 7 + 7) % 7;
        return w == 0 ? 7 : w;
    }
    case U_EPOCH:
        return velo_floor_div(us, 1000000);
    case U_WEEK:
        return iso_week(days);
    default:
        break;
    }
    velo_civil_from_days(days, &y, &m, &d);
    switch (u) {
    case U_DAY:
        return d;
    case U_MONTH:
        return m;
    case U_QUARTER:
        return (m - 1) / 3 + 1;
    case U_YEAR:
        return y;
    case U_DOY:
        return days - velo_days_from_civil(y, 1, 1) + 1;
    default:
        return 0;
    }
}

static int64_t extract_interval(int u, int64_t us)
{
    switch (u) {
    case U_EPOCH:
        return us / 1000000;
    case U_DAY:
        return us / VELO_US_PER_DAY;
    case U_HOUR:
        return us % VELO_US_PER_DAY / INT64_C(3600000000);
    case U_MINUTE:
        return us / 60000000 % 60;
    case U_SECOND:
        return us / 1000000 % 60;
    case U_MILLISECOND:
        return us % 1000000 / 1000;
    case U_MICROSECOND:
        return us % 1000000;
    default:
        return INT64_MIN;
    }
}

/* floor(us / unit) * unit; VELO_ERR past the int64 range. */
static int floor_to(int64_t us, int64_t unit, int64_t *out)
{
    return __builtin_mul_overflow(velo_floor_div(us, unit), unit, out)
               ? VELO_ERR
               : VELO_OK;
}

static int trunc_ts(int u, int64_t us, int64_t *out)
{
    int64_t days, tod;
    split_us(us, &days, &tod);
    int64_t y;
    unsigned m, d;
    switch (u) {
    case U_MICROSECOND:
        *out = us;
        return VELO_OK;
    case U_MILLISECOND:
        return floor_to(us, 1000, out);
    case U_SECOND:
        return floor_to(us, 1000000, out);
    case U_MINUTE:
        return floor_to(us, 60000000, out);
    case U_HOUR:
        return floor_to(us, INT64_C(3600000000), out);
    case U_DAY:
        return floor_to(us, VELO_US_PER_DAY, out);
    case U_WEEK: {
        int64_t wd = ((days + 3) % 7 + 7) % 7; /* 0 = Monday */
        return __builtin_mul_overflow(days - wd, VELO_US_PER_DAY, out)
                   ? VELO_ERR
                   : VELO_OK;
    }
    default:
        break;
    }
    velo_civil_from_days(days, &y, &m, &d);
    switch (u) {
    case U_MONTH:
        d = 1;
        break;
    case U_QUARTER:
        m = (m - 1) / 3 * 3 + 1;
        d = 1;
        break;
    case U_YEAR:
        m = 1;
        d = 1;
        break;
    case U_DECADE:
        y = velo_floor_div(y, 10) * 10;
        m = 1;
        d = 1;
        break;
    default:
        return VELO_ERR;
    }
    return __builtin_mul_overflow(velo_days_from_civil(y, m, d),
                                  VELO_US_PER_DAY, out)
               ? VELO_ERR
               : VELO_OK;
}

/* ---- Unit-taking functions (EXTRACT, DATE_TRUNC) ------------------------ */

struct unit_state {
    int constant;
    int unit;
};

static void *unit_prepare(const struct velo_expr *call)
{
    struct unit_state *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return NULL;
    }
    const struct velo_literal *l = velo_call_const_arg(call, 0);
    if (l != NULL && !l->is_null) {
        st->constant = 1;
        st->unit = parse_unit(l->str != NULL ? l->str : "", l->len);
    }
    return st;
}

static void unit_release(void *p)
{
    free(p);
}

static int row_unit(struct velo_eval_ctx *ctx, const struct unit_state *st,
                    const struct velo_column *uc, size_t r,
                    struct velo_column *out, int (*ok)(int), const char *fn)
{
    int u = st->constant ? st->unit
                         : parse_unit(uc->v.str[r].ptr, uc->v.str[r].len);
    if (!ok(u)) {
        struct velo_str s = uc->v.str[r];
        velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                       "unknown unit '%.*s' for %s: use YEAR, QUARTER, MONTH, "
                       "WEEK, DAY, HOUR, MINUTE, SECOND, MILLISECOND%s",
                       (int)(s.len > 20 ? 20 : s.len), s.ptr, fn,
                       ok == extract_ok ? ", DOW, DOY or EPOCH" : "");
        return U_BAD;
    }
    return u;
}

static void extract_kernel(struct velo_eval_ctx *ctx, void *state,
                           const struct velo_column *const *args,
                           size_t nargs, struct velo_column *out,
                           const uint16_t *sel, size_t n)
{
    struct unit_state *st = state;
    const int64_t *t = args[1]->v.i64;
    int64_t *o = out->v.i64;
    int is_ivl = args[1]->type.id == VELO_TYPE_INTERVAL;
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        int u = row_unit(ctx, st, args[0], r, out, extract_ok, "EXTRACT");
        if (u == U_BAD) {
            continue;
        }
        if (is_ivl) {
            int64_t v = extract_interval(u, t[r]);
            if (v == INT64_MIN) {
                velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                               "EXTRACT from an INTERVAL takes EPOCH, DAY, "
                               "HOUR, MINUTE, SECOND, MILLISECOND or "
                               "MICROSECOND");
                continue;
            }
            o[r] = v;
        } else {
            o[r] = extract_ts(u, t[r]);
        }
    }
}

static void trunc_kernel(struct velo_eval_ctx *ctx, void *state,
                         const struct velo_column *const *args, size_t nargs,
                         struct velo_column *out, const uint16_t *sel,
                         size_t n)
{
    struct unit_state *st = state;
    const int64_t *t = args[1]->v.i64;
    int64_t *o = out->v.i64;
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        int u = row_unit(ctx, st, args[0], r, out, trunc_ok, "DATE_TRUNC");
        if (u != U_BAD && trunc_ts(u, t[r], &o[r]) != VELO_OK) {
            velo_eval_fail(ctx, out, r, VELO_EVAL_OVERFLOW,
                           "TIMESTAMP out of range");
        }
    }
}

static const struct velo_func_ext extract_ext = {
    VELO_FUNC_EXT_MAGIC, unit_prepare, unit_release, extract_kernel};
static const struct velo_func_ext trunc_ext = {
    VELO_FUNC_EXT_MAGIC, unit_prepare, unit_release, trunc_kernel};

#define FIELD_KERNEL(kname, unit)                                            \
    static VELO_KERNEL(kname)                                                \
    {                                                                        \
        const int64_t *t = args[0]->v.i64;                                   \
        int64_t *o = out->v.i64;                                             \
        VELO_ROWS(sel, n, r, o[r] = extract_ts(unit, t[r]););                \
    }

FIELD_KERNEL(k_year, U_YEAR)
FIELD_KERNEL(k_quarter, U_QUARTER)
FIELD_KERNEL(k_month, U_MONTH)
FIELD_KERNEL(k_day, U_DAY)
FIELD_KERNEL(k_hour, U_HOUR)
FIELD_KERNEL(k_minute, U_MINUTE)
FIELD_KERNEL(k_second, U_SECOND)

/* ---- DATE_FORMAT -------------------------------------------------------- */

static const char *const wday_long[] = {"Sunday",   "Monday", "Tuesday",
                                        "Wednesday", "Thursday", "Friday",
                                        "Saturday"};
static const char *const mon_long[] = {
    "January", "February", "March",     "April",   "May",      "June",
    "July",    "August",   "September", "October", "November", "December"};

static int put_num(struct velo_sbuf *b, int64_t v, int width, char pad)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "%0*lld", width, (long long)v);
    if (pad == ' ') {
        n = snprintf(tmp, sizeof(tmp), "%*lld", width, (long long)v);
    }
    return velo_sbuf_put(b, tmp, n > 0 ? (size_t)n : 0);
}

static int format_ts(struct velo_sbuf *b, int64_t us, const char *p,
                     size_t plen)
{
    int64_t days, tod;
    split_us(us, &days, &tod);
    int64_t y;
    unsigned mo, d;
    velo_civil_from_days(days, &y, &mo, &d);
    int64_t h = tod / INT64_C(3600000000), mi = tod / 60000000 % 60,
            s = tod / 1000000 % 60, frac = tod % 1000000;
    int wd = (int)(((days + 4) % 7 + 7) % 7);
    int rc = VELO_OK;
    for (size_t i = 0; i < plen && rc == VELO_OK; i++) {
        if (p[i] != '%' || i + 1 >= plen) {
            size_t j = i;
            while (j < plen && p[j] != '%') {
                j++;
            }
            if (j == i) {
                j = i + 1; /* a lone trailing % */
            }
            rc = velo_sbuf_put(b, p + i, j - i);
            i = j - 1;
            continue;
        }
        char c = p[++i];
        switch (c) {
        case 'Y':
            rc = put_num(b, y, 4, '0');
            break;
        case 'y':
            rc = put_num(b, ((y % 100) + 100) % 100, 2, '0');
            break;
        case 'm':
            rc = put_num(b, mo, 2, '0');
            break;
        case 'd':
            rc = put_num(b, d, 2, '0');
            break;
        case 'e':
            rc = put_num(b, d, 2, ' ');
            break;
        case 'H':
            rc = put_num(b, h, 2, '0');
            break;
        case 'I':
            rc = put_num(b, h % 12 == 0 ? 12 : h % 12, 2, '0');
            break;
        case 'p':
            rc = velo_sbuf_put(b, h < 12 ? "AM" : "PM", 2);
            break;
        case 'M':
            rc = put_num(b, mi, 2, '0');
            break;
        case 'S':
            rc = put_num(b, s, 2, '0');
            break;
        case 'L':
            rc = put_num(b, frac / 1000, 3, '0');
            break;
        case 'f':
            rc = put_num(b, frac, 6, '0');
            break;
        case 'j':
            rc = put_num(b, days - velo_days_from_civil(y, 1, 1) + 1, 3, '0');
            break;
        case 'a':
            rc = velo_sbuf_put(b, wday_long[wd], 3);
            break;
        case 'A':
            rc = velo_sbuf_put(b, wday_long[wd], strlen(wday_long[wd]));
            break;
        case 'b':
        case 'h':
            rc = velo_sbuf_put(b, mon_long[mo - 1], 3);
            break;
        case 'B':
            rc = velo_sbuf_put(b, mon_long[mo - 1], strlen(mon_long[mo - 1]));
            break;
        case 'u':
            rc = put_num(b, wd == 0 ? 7 : wd, 1, '0');
            break;
        case 'w':
            rc = put_num(b, wd, 1, '0');
            break;
        case 'F':
            rc = format_ts(b, us, "%Y-%m-%d", 8);
            break;
        case 'T':
            rc = format_ts(b, us, "%H:%M:%S", 8);
            break;
        case 'D':
            rc = format_ts(b, us, "%m/%d/%y", 8);
            break;
        case 'R':
            rc = format_ts(b, us, "%H:%M", 5);
            break;
        case 's':
            rc = put_num(b, velo_floor_div(us, 1000000), 1, '0');
            break;
        case 'z':
            rc = velo_sbuf_put(b, "+0000", 5);
            break;
        case 'Z':
            rc = velo_sbuf_put(b, "UTC", 3);
            break;
        case '%':
            rc = velo_sbuf_put(b, "%", 1);
            break;
        case 'n':
            rc = velo_sbuf_put(b, "\n", 1);
            break;
        case 't':
            rc = velo_sbuf_put(b, "\t", 1);
            break;
        default:
            rc = velo_sbuf_put(b, p + i - 1, 2); /* unknown: as written */
            break;
        }
    }
    return rc;
}

static VELO_KERNEL(k_date_format)
{
    const int64_t *t = args[0]->v.i64;
    const struct velo_str *p = args[1]->v.str;
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        struct velo_sbuf b = {NULL, 0, 0, ctx->arena};
        if (p[r].len > 1024) {
            velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                           "DATE_FORMAT pattern longer than 1024 bytes");
            continue;
        }
        if (format_ts(&b, t[r], p[r].ptr, p[r].len) != VELO_OK) {
            velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG, "out of memory");
            continue;
        }
        out->v.str[r].ptr = b.p != NULL ? b.p : "";
        out->v.str[r].len = b.len;
    }
}

/* ---- PARSE_TIMESTAMP(text, pattern): strptime-style -------------------- */

static const char *const month_abbr[12] = {"jan", "feb", "mar", "apr",
                                           "may", "jun", "jul", "aug",
                                           "sep", "oct", "nov", "dec"};

/* Read up to max digits (at least min). @return VELO_OK/VELO_ERR. */
static int pt_num(const char **p, const char *end, int min, int max,
                  int64_t *out)
{
    int64_t v = 0;
    int k = 0;
    while (*p < end && k < max && **p >= '0' && **p <= '9') {
        v = v * 10 + (**p - '0');
        (*p)++;
        k++;
    }
    *out = v;
    return k >= min ? VELO_OK : VELO_ERR;
}

/* Parse s with pattern f (%Y %m %d %H %M %S %f %z %b %j %s %T %F %e %%
 * and literal characters; a space matches any run of spaces). Sets *us
 * or returns the offset of the first character that does not fit. */
static int parse_ts(const char *s, size_t n, const char *f, size_t fn,
                    int64_t *us, const char **why)
{
    const char *p = s, *end = s + n, *fe = f + fn;
    int64_t y = 1970, mo = 1, d = 1, H = 0, M = 0, S = 0, frac = 0;
    int64_t tz = 0, yday = -1, epoch = INT64_MIN;
    *why = "text does not match the pattern";
    while (f < fe) {
        if (*f == ' ') {
            while (p < end && *p == ' ') {
                p++;
            }
            f++;
            continue;
        }
        if (*f != '%' || f + 1 >= fe) {
            if (p >= end || *p != *f) {
                return VELO_ERR;
            }
            p++;
            f++;
            continue;
        }
        char c = f[1];
        f += 2;
        int64_t v;
        switch (c) {
        case 'Y': {
            int neg = p < end && *p == '-';
            p += neg;
            if (pt_num(&p, end, 4, 4, &v) != VELO_OK) {
                return VELO_ERR;
            }
            y = neg ? -v : v;
            break;
        }
        case 'm':
            if (pt_num(&p, end, 1, 2, &mo) != VELO_OK || mo < 1 || mo > 12) {
                *why = "month out of range";
                return VELO_ERR;
            }
            break;
        case 'd':
        case 'e':
            while (c == 'e' && p < end && *p == ' ') {
                p++;
            }
            if (pt_num(&p, end, 1, 2, &d) != VELO_OK || d < 1 || d > 31) {
                *why = "day out of range";
                return VELO_ERR;
            }
            break;
        case 'H':
            if (pt_num(&p, end, 1, 2, &H) != VELO_OK || H > 23) {
                *why = "hour out of range";
                return VELO_ERR;
            }
            break;
        case 'M':
            if (pt_num(&p, end, 1, 2, &M) != VELO_OK || M > 59) {
                *why = "minute out of range";
                return VELO_ERR;
            }
            break;
        case 'S':
            if (pt_num(&p, end, 1, 2, &S) != VELO_OK || S > 60) {
                *why = "second out of range";
                return VELO_ERR;
            }
            break;
        case 'f': { /* 1 to 9 digits of a second's fraction */
            const char *st = p;
            if (pt_num(&p, end, 1, 9, &v) != VELO_OK) {
                return VELO_ERR;
            }
            for (ptrdiff_t k = p - st; k < 6; k++) {
                v *= 10;
            }
            for (ptrdiff_t k = p - st; k > 6; k--) {
                v /= 10;
            }
            frac = v;
            break;
        }
        case 'j':
            if (pt_num(&p, end, 1, 3, &yday) != VELO_OK || yday < 1 ||
                yday > 366) {
                *why = "day of year out of range";
                return VELO_ERR;
            }
            break;
        case 's': {
            int neg = p < end && *p == '-';
            p += neg;
            if (pt_num(&p, end, 1, 18, &v) != VELO_OK) {
                return VELO_ERR;
            }
            epoch = neg ? -v : v;
            break;
        }
        case 'b':
        case 'h': {
            int found = -1;
            for (int k = 0; k < 12 && found < 0; k++) {
                if (end - p >= 3 && strncasecmp(p, month_abbr[k], 3) == 0) {
                    found = k;
                }
            }
            if (found < 0) {
                *why = "not a month name (Jan ... Dec)";
                return VELO_ERR;
            }
            mo = found + 1;
            p += 3;
            break;
        }
        case 'z': /* Z, +hh, +hhmm, +hh:mm */
            if (p < end && (*p == 'Z' || *p == 'z')) {
                p++;
                tz = 0;
                break;
            }
            if (p >= end || (*p != '+' && *p != '-')) {
                *why = "expected a zone offset (Z, +02:00)";
                return VELO_ERR;
            } else {
                int neg = *p == '-';
                int64_t hh, mm = 0;
                p++;
                if (pt_num(&p, end, 2, 2, &hh) != VELO_OK) {
                    return VELO_ERR;
                }
                if (p < end && *p == ':') {
                    p++;
                }
                if (p < end && *p >= '0' && *p <= '9' &&
                    pt_num(&p, end, 2, 2, &mm) != VELO_OK) {
                    return VELO_ERR;
                }
                tz = (hh * 3600 + mm * 60) * (neg ? -1 : 1);
            }
            break;
        case 'T': /* %H:%M:%S */
            if (pt_num(&p, end, 1, 2, &H) != VELO_OK || p >= end ||
                *p++ != ':' || pt_num(&p, end, 1, 2, &M) != VELO_OK ||
                p >= end || *p++ != ':' ||
                pt_num(&p, end, 1, 2, &S) != VELO_OK || H > 23 || M > 59 ||
                S > 60) {
                return VELO_ERR;
            }
            break;
        case 'F': {
            int neg = p < end && *p == '-';
            p += neg;
            if (pt_num(&p, end, 4, 4, &y) != VELO_OK || p >= end ||
                *p++ != '-' || pt_num(&p, end, 1, 2, &mo) != VELO_OK ||
                p >= end || *p++ != '-' ||
                pt_num(&p, end, 1, 2, &d) != VELO_OK || mo < 1 || mo > 12 ||
                d < 1 || d > 31) {
                return VELO_ERR;
            }
            y = neg ? -y : y;
            break;
        }
        case '%':
            if (p >= end || *p != '%') {
                return VELO_ERR;
            }
            p++;
            break;
        default:
            *why = "unsupported % directive in the pattern";
            return VELO_ERR;
        }
    }
    if (p != end) {
        *why = "text left over after the pattern";
        return VELO_ERR;
    }
    int64_t secs;
    if (epoch != INT64_MIN) {
        secs = epoch;
    } else {
        int64_t days = yday > 0 ? velo_days_from_civil(y, 1, 1) + yday - 1
                                : velo_days_from_civil(y, (unsigned)mo,
                                                       (unsigned)d);
        /* Reject 31 February and the like. */
        int64_t cy;
        unsigned cm, cd;
        velo_civil_from_days(days, &cy, &cm, &cd);
        if (yday <= 0 && ((int64_t)cm != mo || (int64_t)cd != d)) {
            *why = "no such day";
            return VELO_ERR;
        }
        secs = days * 86400 + H * 3600 + M * 60 + S - tz;
    }
    if (__builtin_mul_overflow(secs, VELO_US_PER_SEC, us) ||
        __builtin_add_overflow(*us, frac, us)) {
        *why = "TIMESTAMP out of range";
        return VELO_ERR;
    }
    return VELO_OK;
}

static VELO_KERNEL(k_parse_timestamp)
{
    const struct velo_str *a = args[0]->v.str, *p = args[1]->v.str;
    int64_t *o = out->v.i64;
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        const char *why;
        if (parse_ts(a[r].ptr, a[r].len, p[r].ptr, p[r].len, &o[r], &why) !=
            VELO_OK) {
            velo_eval_fail(ctx, out, r, VELO_EVAL_CAST,
                           "cannot read '%.*s' as a TIMESTAMP with pattern "
                           "'%.*s': %s",
                           (int)(a[r].len > 64 ? 64 : a[r].len), a[r].ptr,
                           (int)(p[r].len > 64 ? 64 : p[r].len), p[r].ptr,
                           why);
        }
    }
}

/* ---- Epoch conversions, NOW, tumbling windows --------------------------- */

static VELO_KERNEL(k_from_unixtime_i64)
{
    const int64_t *a = args[0]->v.i64;
    int64_t *o = out->v.i64;
    VELO_ROWS(sel, n, r,
              if (__builtin_mul_overflow(a[r], VELO_US_PER_SEC, &o[r])) {
                  velo_eval_fail(ctx, out, r, VELO_EVAL_OVERFLOW,
                                 "TIMESTAMP out of range: %lld seconds",
                                 (long long)a[r]);
              });
}

static VELO_KERNEL(k_from_unixtime_f64)
{
    const double *a = args[0]->v.f64;
    int64_t *o = out->v.i64;
    VELO_ROWS(sel, n, r, double us = nearbyint(a[r] * 1e6);
              if (!(us > -9.2e18 && us < 9.2e18)) {
                  velo_eval_fail(ctx, out, r, VELO_EVAL_OVERFLOW,
                                 "TIMESTAMP out of range");
              } else { o[r] = (int64_t)us; });
}

static VELO_KERNEL(k_unix_timestamp)
{
    const int64_t *a = args[0]->v.i64;
    int64_t *o = out->v.i64;
    VELO_ROWS(sel, n, r, o[r] = velo_floor_div(a[r], VELO_US_PER_SEC););
}

static VELO_KERNEL(k_unix_timestamp_now)
{
    int64_t *o = out->v.i64;
    int64_t v = velo_floor_div(ctx->now_us, VELO_US_PER_SEC);
    VELO_ROWS(sel, n, r, o[r] = v;);
}

static VELO_KERNEL(k_now)
{
    int64_t *o = out->v.i64;
    int64_t v = ctx->now_us;
    VELO_ROWS(sel, n, r, o[r] = v;);
}

static VELO_KERNEL(k_current_date)
{
    int64_t *o = out->v.i64;
    int64_t v = velo_floor_div(ctx->now_us, VELO_US_PER_DAY);
    VELO_ROWS(sel, n, r, o[r] = v;);
}

static void tumble(struct velo_eval_ctx *ctx,
                   const struct velo_column *const *args,
                   struct velo_column *out, const uint16_t *sel, size_t n,
                   int end)
{
    const int64_t *t = args[0]->v.i64, *sz = args[1]->v.i64;
    int64_t *o = out->v.i64;
    VELO_ROWS(sel, n, r,
              if (sz[r] <= 0) {
                  velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                                 "the window size must be positive");
              } else {
                  int64_t st;
                  if (__builtin_mul_overflow(velo_floor_div(t[r], sz[r]),
                                             sz[r], &st) ||
                      (end && __builtin_add_overflow(st, sz[r], &st))) {
                      velo_eval_fail(ctx, out, r, VELO_EVAL_OVERFLOW,
                                     "TIMESTAMP out of range");
                  } else {
                      o[r] = st;
                  }
              });
}

static VELO_KERNEL(k_tumble_start)
{
    tumble(ctx, args, out, sel, n, 0);
}

static VELO_KERNEL(k_tumble_end)
{
    tumble(ctx, args, out, sel, n, 1);
}

/* ---- Registration ------------------------------------------------------- */

#define NP VELO_FUNC_NULL_PROPAGATES
#define VOL VELO_FUNC_VOLATILE
#define EXT velo_ext_kernel

static const struct velo_func time_table[] = {
    {"NOW", 0, {VT_ANY}, VT_TS, NULL, VOL, k_now, NULL},
    {"CURRENT_TIMESTAMP", 0, {VT_ANY}, VT_TS, NULL, VOL, k_now, NULL},
    {"LOCALTIMESTAMP", 0, {VT_ANY}, VT_TS, NULL, VOL, k_now, NULL},
    {"CURRENT_DATE", 0, {VT_ANY}, VT_DATE, NULL, VOL, k_current_date, NULL},
    {"EXTRACT", 2, {VT_STR, VT_TS}, VT_BIG, NULL, NP, EXT, &extract_ext},
    {"EXTRACT", 2, {VT_STR, VT_IVL}, VT_BIG, NULL, NP, EXT, &extract_ext},
    {"DATE_PART", 2, {VT_STR, VT_TS}, VT_BIG, NULL, NP, EXT, &extract_ext},
    {"DATE_TRUNC", 2, {VT_STR, VT_TS}, VT_TS, NULL, NP, EXT, &trunc_ext},
    {"DATE_FORMAT", 2, {VT_TS, VT_STR}, VT_STR, NULL, NP, k_date_format,
     NULL},
    {"PARSE_TIMESTAMP", 2, {VT_STR, VT_STR}, VT_TS, NULL, NP,
     k_parse_timestamp, NULL},
    {"FROM_UNIXTIME", 1, {VT_BIG}, VT_TS, NULL, NP, k_from_unixtime_i64,
     NULL},
    {"FROM_UNIXTIME", 1, {VT_DBL}, VT_TS, NULL, NP, k_from_unixtime_f64,
     NULL},
    {"UNIX_TIMESTAMP", 1, {VT_TS}, VT_BIG, NULL, NP, k_unix_timestamp, NULL},
    {"UNIX_TIMESTAMP", 0, {VT_ANY}, VT_BIG, NULL, VOL, k_unix_timestamp_now,
     NULL},
    {"TUMBLE_START", 2, {VT_TS, VT_IVL}, VT_TS, NULL, NP, k_tumble_start,
     NULL},
    {"TUMBLE_END", 2, {VT_TS, VT_IVL}, VT_TS, NULL, NP, k_tumble_end, NULL},
    {"YEAR", 1, {VT_TS}, VT_BIG, NULL, NP, k_year, NULL},
    {"QUARTER", 1, {VT_TS}, VT_BIG, NULL, NP, k_quarter, NULL},
    {"MONTH", 1, {VT_TS}, VT_BIG, NULL, NP, k_month, NULL},
    {"DAY", 1, {VT_TS}, VT_BIG, NULL, NP, k_day, NULL},
    {"DAYOFMONTH", 1, {VT_TS}, VT_BIG, NULL, NP, k_day, NULL},
    {"HOUR", 1, {VT_TS}, VT_BIG, NULL, NP, k_hour, NULL},
    {"MINUTE", 1, {VT_TS}, VT_BIG, NULL, NP, k_minute, NULL},
    {"SECOND", 1, {VT_TS}, VT_BIG, NULL, NP, k_second, NULL},
};

int velo_funcs_register_time(struct velo_funcs *r)
{
    return velo_funcs_add_table(r, time_table,
                                sizeof(time_table) / sizeof(time_table[0]));
}
