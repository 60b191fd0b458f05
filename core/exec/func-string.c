/*
 * String functions. Positions and lengths count characters (UTF-8 code
 * points), never bytes. Results that are a piece of the input (SUBSTRING,
 * TRIM, LEFT, SPLIT_PART, ...) are views without a copy; built strings go
 * to the batch's arena.
 *
 * Regular expressions are POSIX extended (ERE, regcomp with REG_EXTENDED):
 * alternation |, groups ( ), classes [a-z] and [[:digit:]], quantifiers
 * * + ? {m,n}, anchors ^ $. There are no Perl escapes (\d, \w, lazy
 * quantifiers): write [0-9] and [[:alnum:]_]. A constant pattern is
 * compiled once per query; a pattern column is compiled when its value
 * changes. In REGEXP_REPLACE replacements, \0 to \9 insert groups and \\
 * a backslash.
 *
 * Patterns compile and run under the C.UTF-8 character type (set for the
 * calling thread only, with uselocale), so '.' and [^x] match a whole
 * UTF-8 character.
 *
 * UPPER/LOWER map ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic
 * letters; other characters pass unchanged.
 */
#include <errno.h>
#include <locale.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <velo/log.h>

#include "exec/func-internal.h"

#define MAX_BUILT_STRING (16u * 1024 * 1024) /* LPAD/RPAD/REPLACE output */

/* ---- UTF-8 -------------------------------------------------------------- */

size_t velo_utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    }
    return n;
}

size_t velo_utf8_offset(const char *s, size_t len, size_t chars)
{
    size_t i = 0;
    while (chars > 0 && i < len) {
        i += velo_utf8_seqlen((unsigned char)s[i]);
        chars--;
    }
    return i < len ? i : len;
}

uint32_t velo_utf8_next(const char *s, size_t len, size_t *i)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t k = *i;
    unsigned char c = p[k];
    size_t sl = velo_utf8_seqlen(c);
    if (sl == 1 || k + sl > len) {
        *i = k + 1;
        return c;
    }
    uint32_t cp = sl == 2 ? (c & 0x1fu) : sl == 3 ? (c & 0x0fu) : (c & 0x07u);
    for (size_t j = 1; j < sl; j++) {
        if ((p[k + j] & 0xc0) != 0x80) {
            *i = k + 1; /* broken sequence: take the byte alone */
            return c;
        }
        cp = (cp << 6) | (p[k + j] & 0x3fu);
    }
    *i = k + sl;
    return cp;
}

static size_t utf8_put(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Case pairs that keep their UTF-8 length (all 1 or 2 bytes). */
static uint32_t cp_upper(uint32_t c)
{
    if (c >= 'a' && c <= 'z') {
        return c - 32;
    }
    if (c < 0xe0) {
        return c;
    }
    if (c <= 0xfe && c != 0xf7) {
        return c - 0x20;
    }
    if (c >= 0x100 && c <= 0x17f) {
        int odd_lower = (c <= 0x137) || (c >= 0x14a && c <= 0x177);
        if (odd_lower && (c & 1)) {
            return c - 1;
        }
        if (!odd_lower && ((c >= 0x139 && c <= 0x148) ||
                           (c >= 0x179 && c <= 0x17e)) &&
            !(c & 1)) {
            return c - 1;
        }
        return c;
    }
    if (c >= 0x3b1 && c <= 0x3cb && c != 0x3c2) {
        return c - 0x20; /* also ϊ ϋ */
    }
    switch (c) {
    case 0x3c2: /* final sigma */
        return 0x3a3;
    case 0x3ac:
        return 0x386;
    case 0x3ad:
    case 0x3ae:
    case 0x3af:
        return c - 0x25;
    case 0x3cc:
        return 0x38c;
    case 0x3cd:
    case 0x3ce:
        return c - 0x3f;
    default:
        break;
    }
    if (c >= 0x430 && c <= 0x44f) {
        return c - 0x20;
    }
    if (c >= 0x450 && c <= 0x45f) {
        return c - 0x50;
    }
    return c;
}

static uint32_t cp_lower(uint32_t c)
{
    if (c >= 'A' && c <= 'Z') {
        return c + 32;
    }
    if (c < 0xc0) {
        return c;
    }
    if (c <= 0xde && c != 0xd7) {
        return c + 0x20;
    }
    if (c >= 0x100 && c <= 0x17f) {
        int even_upper = (c <= 0x137) || (c >= 0x14a && c <= 0x177);
        if (even_upper && !(c & 1)) {
            return c + 1;
        }
        if (!even_upper && ((c >= 0x139 && c <= 0x148) ||
                            (c >= 0x179 && c <= 0x17e)) &&
            (c & 1)) {
            return c + 1;
        }
        return c;
    }
    if (c >= 0x391 && c <= 0x3ab && c != 0x3a2) {
        return c + 0x20; /* also Ϊ Ϋ */
    }
    switch (c) {
    case 0x386:
        return 0x3ac;
    case 0x388:
    case 0x389:
    case 0x38a:
        return c + 0x25;
    case 0x38c:
        return 0x3cc;
    case 0x38e:
    case 0x38f:
        return c + 0x3f;
    default:
        break;
    }
    if (c >= 0x410 && c <= 0x42f) {
        return c + 0x20;
    }
    if (c >= 0x400 && c <= 0x40f) {
        return c + 0x50;
    }
    return c;
}

static void oom(struct velo_eval_ctx *ctx, struct velo_column *out, size_t r)
{
    velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG, "out of memory");
}

static void map_case(struct velo_eval_ctx *ctx,
                     const struct velo_column *const *args,
                     struct velo_column *out, const uint16_t *sel, size_t n,
                     int upper)
{
    const struct velo_str *a = args[0]->v.str;
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        struct velo_str s = a[r];
        char *p = velo_arena_alloc(ctx->arena, s.len + 1);
        if (p == NULL) {
            oom(ctx, out, r);
            continue;
        }
        size_t k = 0, j = 0;
        while (k < s.len) {
            unsigned char c = (unsigned char)s.ptr[k];
            if (c < 0x80) {
                p[j++] = upper ? (c >= 'a' && c <= 'z' ? (char)(c - 32)
                                                       : (char)c)
                               : (c >= 'A' && c <= 'Z' ? (char)(c + 32)
                                                       : (char)c);
                k++;
                continue;
            }
            size_t k0 = k;
            uint32_t cp = velo_utf8_next(s.ptr, s.len, &k);
            uint32_t m = upper ? cp_upper(cp) : cp_lower(cp);
            char enc[4];
            size_t el = utf8_put(m, enc);
            if (m == cp || el != k - k0) {
                memcpy(p + j, s.ptr + k0, k - k0); /* keep bytes as given */
                j += k - k0;
            } else {
                memcpy(p + j, enc, el);
                j += el;
            }
        }
        out->v.str[r].ptr = p;
        out->v.str[r].len = j;
    }
}

static VELO_KERNEL(k_upper)
{
    map_case(ctx, args, out, sel, n, 1);
}

static VELO_KERNEL(k_lower)
{
    map_case(ctx, args, out, sel, n, 0);
}

static VELO_KERNEL(k_length)
{
    const struct velo_str *a = args[0]->v.str;
    int64_t *o = out->v.i64;
    VELO_ROWS(sel, n, r, o[r] = (int64_t)velo_utf8_chars(a[r].ptr, a[r].len););
}

static VELO_KERNEL(k_octet_length)
{
    const struct velo_str *a = args[0]->v.str;
    int64_t *o = out->v.i64;
    VELO_ROWS(sel, n, r, o[r] = (int64_t)a[r].len;);
}

/* Characters [from, to) of s as a view; positions are 0-based and
 * clamped. */
static struct velo_str char_range(struct velo_str s, int64_t from, int64_t to)
{
    struct velo_str v = {s.ptr, 0};
    if (from < 0) {
        from = 0;
    }
    if (to <= from) {
        return v;
    }
    size_t b0 = velo_utf8_offset(s.ptr, s.len, (size_t)from);
    size_t b1 = b0 + velo_utf8_offset(s.ptr + b0, s.len - b0,
                                      (size_t)(to - from));
    v.ptr = s.ptr + b0;
    v.len = b1 - b0;
    return v;
}

static VELO_KERNEL(k_substring)
{
    const struct velo_str *a = args[0]->v.str;
    const int64_t *st = args[1]->v.i64;
    const int64_t *ln = nargs > 2 ? args[2]->v.i64 : NULL;
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        /* SQL: the characters at positions [start, start + len) that
         * exist; start may be 0 or negative. */
        int64_t start = st[r];
        int64_t end = INT64_MAX;
        if (ln != NULL) {
            if (ln[r] < 0) {
                velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                               "negative substring length not allowed");
                continue;
            }
            if (__builtin_add_overflow(start, ln[r], &end)) {
                end = INT64_MAX;
            }
        }
        int64_t from = start - 1, to = end == INT64_MAX ? INT64_MAX : end - 1;
        out->v.str[r] = char_range(a[r], from, to);
    }
}

static VELO_KERNEL(k_left)
{
    const struct velo_str *a = args[0]->v.str;
    const int64_t *k = args[1]->v.i64;
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        int64_t cnt = k[r];
        if (cnt < 0) {
            int64_t total = (int64_t)velo_utf8_chars(a[r].ptr, a[r].len);
            cnt = total + cnt; /* all but the last |n| */
        }
        out->v.str[r] = char_range(a[r], 0, cnt);
    }
}

static VELO_KERNEL(k_right)
{
    const struct velo_str *a = args[0]->v.str;
    const int64_t *k = args[1]->v.i64;
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        int64_t total = (int64_t)velo_utf8_chars(a[r].ptr, a[r].len);
        int64_t cnt = k[r];
        int64_t from = cnt >= 0 ? total - cnt : -cnt; /* n < 0: skip |n| */
        out->v.str[r] = char_range(a[r], from, total);
    }
}

/* ---- TRIM --------------------------------------------------------------- */

static int in_set(uint32_t cp, const struct velo_str *set)
{
    size_t i = 0;
    while (i < set->len) {
        if (velo_utf8_next(set->ptr, set->len, &i) == cp) {
            return 1;
        }
    }
    return 0;
}

static struct velo_str do_trim(struct velo_str s, const struct velo_str *set,
                               int left, int right)
{
    size_t b = 0, e = s.len;
    if (left) {
        while (b < e) {
            size_t k = b;
            uint32_t cp = velo_utf8_next(s.ptr, e, &k);
            if (!in_set(cp, set)) {
                break;
            }
            b = k;
        }
    }
    if (right) {
        while (e > b) {
            size_t start = e - 1;
            while (start > b && ((unsigned char)s.ptr[start] & 0xc0) == 0x80) {
                start--;
            }
            size_t k = start;
            uint32_t cp = velo_utf8_next(s.ptr, e, &k);
            if (!in_set(cp, set)) {
                break;
            }
            e = start;
        }
    }
    struct velo_str v = {s.ptr + b, e - b};
    return v;
}

static void trim_kernel(const struct velo_column *const *args, size_t nargs,
                        struct velo_column *out, const uint16_t *sel,
                        size_t n, int left, int right)
{
    static const struct velo_str space = {" ", 1};
    const struct velo_str *a = args[0]->v.str;
    const struct velo_str *c = nargs > 1 ? args[1]->v.str : NULL;
    VELO_ROWS(sel, n, r,
              out->v.str[r] = do_trim(a[r], c != NULL ? &c[r] : &space, left,
                                      right););
}

static VELO_KERNEL(k_trim)
{
    trim_kernel(args, nargs, out, sel, n, 1, 1);
}

static VELO_KERNEL(k_ltrim)
{
    trim_kernel(args, nargs, out, sel, n, 1, 0);
}

static VELO_KERNEL(k_rtrim)
{
    trim_kernel(args, nargs, out, sel, n, 0, 1);
}

/* ---- LPAD / RPAD -------------------------------------------------------- */

static void pad_kernel(struct velo_eval_ctx *ctx,
                       const struct velo_column *const *args, size_t nargs,
                       struct velo_column *out, const uint16_t *sel, size_t n,
                       int left)
{
    static const struct velo_str space = {" ", 1};
    const struct velo_str *a = args[0]->v.str;
    const int64_t *w = args[1]->v.i64;
    const struct velo_str *f = nargs > 2 ? args[2]->v.str : NULL;
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        struct velo_str s = a[r];
        struct velo_str fill = f != NULL ? f[r] : space;
        int64_t width = w[r];
        if (width <= 0) {
            out->v.str[r].ptr = s.ptr;
            out->v.str[r].len = 0;
            continue;
        }
        if (width > (int64_t)MAX_BUILT_STRING) {
            velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                           "requested length %lld is too large",
                           (long long)width);
            continue;
        }
        size_t have = velo_utf8_chars(s.ptr, s.len);
        if (have >= (size_t)width || fill.len == 0) {
            out->v.str[r] = char_range(s, 0, width); /* PostgreSQL cuts */
            continue;
        }
        size_t need = (size_t)width - have; /* characters of fill */
        size_t fchars = velo_utf8_chars(fill.ptr, fill.len);
        size_t full = need / fchars, part = need % fchars;
        size_t partb = velo_utf8_offset(fill.ptr, fill.len, part);
        size_t total = s.len + full * fill.len + partb;
        if (total > MAX_BUILT_STRING) {
            velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                           "result would be too long");
            continue;
        }
        char *p = velo_arena_alloc(ctx->arena, total + 1);
        if (p == NULL) {
            oom(ctx, out, r);
            continue;
        }
        size_t j = 0;
        if (!left) {
            memcpy(p, s.ptr, s.len);
            j = s.len;
        }
        for (size_t k = 0; k < full; k++) {
            memcpy(p + j, fill.ptr, fill.len);
            j += fill.len;
        }
        memcpy(p + j, fill.ptr, partb);
        j += partb;
        if (left) {
            memcpy(p + j, s.ptr, s.len);
            j += s.len;
        }
        out->v.str[r].ptr = p;
        out->v.str[r].len = j;
    }
}

static VELO_KERNEL(k_lpad)
{
    pad_kernel(ctx, args, nargs, out, sel, n, 1);
}

static VELO_KERNEL(k_rpad)
{
    pad_kernel(ctx, args, nargs, out, sel, n, 0);
}

/* ---- REPLACE, CONCAT, ||, SPLIT_PART, POSITION -------------------------- */

static VELO_KERNEL(k_replace)
{
    const struct velo_str *a = args[0]->v.str, *f = args[1]->v.str,
                          *t = args[2]->v.str;
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        struct velo_str s = a[r], from = f[r], to = t[r];
        if (from.len == 0 || s.len < from.len) {
            out->v.str[r] = s;
            continue;
        }
        size_t count = 0;
        const char *p = s.ptr, *end = s.ptr + s.len;
        while ((p = memmem(p, (size_t)(end - p), from.ptr, from.len)) != NULL) {
            count++;
            p += from.len;
        }
        if (count == 0) {
            out->v.str[r] = s;
            continue;
        }
        size_t total = s.len - count * from.len + count * to.len;
        if (total > MAX_BUILT_STRING) {
            velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                           "result would be too long");
            continue;
        }
        char *o = velo_arena_alloc(ctx->arena, total + 1);
        if (o == NULL) {
            oom(ctx, out, r);
            continue;
        }
        size_t j = 0;
        p = s.ptr;
        const char *hit;
        while ((hit = memmem(p, (size_t)(end - p), from.ptr, from.len)) !=
               NULL) {
            memcpy(o + j, p, (size_t)(hit - p));
            j += (size_t)(hit - p);
            memcpy(o + j, to.ptr, to.len);
            j += to.len;
            p = hit + from.len;
        }
        memcpy(o + j, p, (size_t)(end - p));
        j += (size_t)(end - p);
        out->v.str[r].ptr = o;
        out->v.str[r].len = j;
    }
}

#define CONCAT_MAX_ARGS 64

/* Concatenate the text of every non-NULL argument of row r. */
static int concat_row(struct velo_eval_ctx *ctx,
                      const struct velo_column *const *args, size_t nargs,
                      size_t r, struct velo_str *res)
{
    struct velo_str parts[CONCAT_MAX_ARGS];
    size_t total = 0, np = 0, last = 0;
    for (size_t k = 0; k < nargs && k < CONCAT_MAX_ARGS; k++) {
        if (velo_col_is_null(args[k], r)) {
            parts[k].ptr = NULL;
            parts[k].len = 0;
            continue;
        }
        if (velo_value_text(args[k], r, ctx->arena, &parts[k]) != VELO_OK) {
            return VELO_ERR;
        }
        total += parts[k].len;
        if (parts[k].len > 0) {
            np++;
            last = k;
        }
    }
    if (np <= 1) {
        /* Nothing to join: a view of the only non-empty part. */
        if (np == 1) {
            *res = parts[last];
        } else {
            res->ptr = "";
            res->len = 0;
        }
        return VELO_OK;
    }
    char *p = velo_arena_alloc(ctx->arena, total + 1);
    if (p == NULL) {
        return VELO_ERR;
    }
    size_t j = 0;
    for (size_t k = 0; k < nargs && k < CONCAT_MAX_ARGS; k++) {
        if (parts[k].ptr != NULL && parts[k].len > 0) {
            memcpy(p + j, parts[k].ptr, parts[k].len);
            j += parts[k].len;
        }
    }
    res->ptr = p;
    res->len = j;
    return VELO_OK;
}

/* CONCAT skips NULLs (PostgreSQL); || propagates them (the executor
 * handles that through the NULL_PROPAGATES flag). */
static VELO_KERNEL(k_concat)
{
    if (nargs > CONCAT_MAX_ARGS) {
        VELO_ROWS(sel, n, r,
                  velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                                 "CONCAT takes at most %d arguments",
                                 CONCAT_MAX_ARGS););
        return;
    }
    VELO_ROWS(sel, n, r,
              if (concat_row(ctx, args, nargs, r, &out->v.str[r]) !=
                  VELO_OK) { oom(ctx, out, r); });
}

static VELO_KERNEL(k_split_part)
{
    const struct velo_str *a = args[0]->v.str, *d = args[1]->v.str;
    const int64_t *k = args[2]->v.i64;
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        struct velo_str s = a[r], delim = d[r];
        int64_t field = k[r];
        struct velo_str empty = {s.ptr, 0};
        if (field == 0) {
            velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                           "field position must not be zero");
            continue;
        }
        if (delim.len == 0) {
            out->v.str[r] = (field == 1 || field == -1) ? s : empty;
            continue;
        }
        /* Count fields, then pick: negative positions count from the
         * end (PostgreSQL 14). */
        int64_t nfields = 1;
        const char *p = s.ptr, *end = s.ptr + s.len;
        while ((p = memmem(p, (size_t)(end - p), delim.ptr, delim.len)) !=
               NULL) {
            nfields++;
            p += delim.len;
        }
        int64_t want = field > 0 ? field : nfields + field + 1;
        if (want < 1 || want > nfields) {
            out->v.str[r] = empty;
            continue;
        }
        const char *fs = s.ptr;
        for (int64_t f = 1; f < want; f++) {
            fs = (const char *)memmem(fs, (size_t)(end - fs), delim.ptr,
                                      delim.len) +
                 delim.len;
        }
        const char *fe = memmem(fs, (size_t)(end - fs), delim.ptr, delim.len);
        if (fe == NULL) {
            fe = end;
        }
        out->v.str[r].ptr = fs;
        out->v.str[r].len = (size_t)(fe - fs);
    }
}

static int64_t position_of(struct velo_str sub, struct velo_str s)
{
    if (sub.len == 0) {
        return 1;
    }
    if (sub.len > s.len) {
        return 0;
    }
    const char *hit = memmem(s.ptr, s.len, sub.ptr, sub.len);
    if (hit == NULL) {
        return 0;
    }
    return (int64_t)velo_utf8_chars(s.ptr, (size_t)(hit - s.ptr)) + 1;
}

static VELO_KERNEL(k_position)
{
    const struct velo_str *sub = args[0]->v.str, *s = args[1]->v.str;
    int64_t *o = out->v.i64;
    VELO_ROWS(sel, n, r, o[r] = position_of(sub[r], s[r]););
}

static VELO_KERNEL(k_strpos)
{
    const struct velo_str *s = args[0]->v.str, *sub = args[1]->v.str;
    int64_t *o = out->v.i64;
    VELO_ROWS(sel, n, r, o[r] = position_of(sub[r], s[r]););
}

/* ---- Regular expressions ------------------------------------------------ */

#define RE_MAX_GROUPS 10

static locale_t re_loc;
static pthread_once_t re_loc_once = PTHREAD_ONCE_INIT;

static void re_loc_init(void)
{
    /* Process-wide and never freed: one small object, made once. */
    re_loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    if (re_loc == (locale_t)0) {
        re_loc = newlocale(LC_CTYPE_MASK, "C.utf8", (locale_t)0);
    }
}

/* Switch this thread to UTF-8 character semantics; returns what to give
 * back to re_loc_leave. Without a UTF-8 locale, regexes work on bytes. */
static locale_t re_loc_enter(void)
{
    pthread_once(&re_loc_once, re_loc_init);
    return re_loc != (locale_t)0 ? uselocale(re_loc) : (locale_t)0;
}

static void re_loc_leave(locale_t old)
{
    if (old != (locale_t)0) {
        uselocale(old);
    }
}

struct re_state {
    int constant;
    int compiled; /* re holds a compiled pattern */
    int bad;
    char badmsg[200];
    regex_t re;
    char *cpat; /* pattern of the cached compile (non-constant) */
    size_t cpatlen;
    int cvalid;
};

static void re_set(struct re_state *st, const char *p, size_t len)
{
    if (st->compiled) {
        regfree(&st->re);
        st->compiled = 0;
    }
    st->bad = 0;
    char stackbuf[256];
    char *z = len < sizeof(stackbuf) ? stackbuf : malloc(len + 1);
    if (z == NULL) {
        st->bad = 1;
        snprintf(st->badmsg, sizeof(st->badmsg), "out of memory");
        return;
    }
    memcpy(z, p, len);
    z[len] = '\0';
    if (memchr(p, '\0', len) != NULL) {
        st->bad = 1;
        snprintf(st->badmsg, sizeof(st->badmsg),
                 "invalid regular expression: it contains a NUL byte");
    } else {
        locale_t old = re_loc_enter();
        int rc = regcomp(&st->re, z, REG_EXTENDED);
        re_loc_leave(old);
        if (rc != 0) {
            char err[100];
            regerror(rc, &st->re, err, sizeof(err));
            st->bad = 1;
            snprintf(st->badmsg, sizeof(st->badmsg),
                     "invalid regular expression '%.40s': %s", z, err);
        } else {
            st->compiled = 1;
        }
    }
    if (z != stackbuf) {
        free(z);
    }
}

static void *re_prepare(const struct velo_expr *call)
{
    struct re_state *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return NULL;
    }
    const struct velo_literal *pat = velo_call_const_arg(call, 1);
    if (pat != NULL && !pat->is_null) {
        re_set(st, pat->str != NULL ? pat->str : "", pat->len);
        st->constant = 1;
    }
    return st;
}

static void re_release(void *p)
{
    struct re_state *st = p;
    if (st->compiled) {
        regfree(&st->re);
    }
    free(st->cpat);
    free(st);
}

/* Make st match row r's pattern. @return 0 usable, -1 failed (flagged). */
static int re_for_row(struct velo_eval_ctx *ctx, struct re_state *st,
                      const struct velo_column *pc, size_t r,
                      struct velo_column *out)
{
    if (!st->constant) {
        struct velo_str p = pc->v.str[r];
        if (!st->cvalid || st->cpatlen != p.len ||
            (p.len > 0 && memcmp(st->cpat, p.ptr, p.len) != 0)) {
            char *np = realloc(st->cpat, p.len + 1);
            if (np == NULL) {
                oom(ctx, out, r);
                return -1;
            }
            st->cpat = np;
            if (p.len > 0) {
                memcpy(st->cpat, p.ptr, p.len);
            }
            st->cpatlen = p.len;
            st->cvalid = 1;
            re_set(st, st->cpat, p.len);
        }
    }
    if (st->bad) {
        velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG, "%s", st->badmsg);
        return -1;
    }
    return 0;
}

/* regexec over a view (REG_STARTEND: no NUL terminator needed). */
static int re_exec(regex_t *re, struct velo_str s, size_t from,
                   regmatch_t *m, size_t nm)
{
    regmatch_t one[1];
    regmatch_t *pm = nm > 0 ? m : one;
    pm[0].rm_so = (regoff_t)from;
    pm[0].rm_eo = (regoff_t)s.len;
    int flags = REG_STARTEND | (from > 0 ? REG_NOTBOL : 0);
    locale_t old = re_loc_enter();
    int rc = regexec(re, s.ptr != NULL ? s.ptr : "", nm > 0 ? nm : 1, pm,
                     flags);
    re_loc_leave(old);
    return rc;
}

static void re_like_kernel(struct velo_eval_ctx *ctx, void *state,
                           const struct velo_column *const *args,
                           size_t nargs, struct velo_column *out,
                           const uint16_t *sel, size_t n)
{
    struct re_state *st = state;
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        if (re_for_row(ctx, st, args[1], r, out) != 0) {
            continue;
        }
        regmatch_t m[1];
        out->v.u8[r] = re_exec(&st->re, args[0]->v.str[r], 0, m, 1) == 0;
    }
}

static void re_extract_kernel(struct velo_eval_ctx *ctx, void *state,
                              const struct velo_column *const *args,
                              size_t nargs, struct velo_column *out,
                              const uint16_t *sel, size_t n)
{
    struct re_state *st = state;
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        if (re_for_row(ctx, st, args[1], r, out) != 0) {
            continue;
        }
        int64_t g = nargs > 2 ? args[2]->v.i64[r] : 0;
        if (g < 0 || g >= RE_MAX_GROUPS || (size_t)g > st->re.re_nsub) {
            velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                           "group %lld is out of range: the pattern has %zu "
                           "group%s",
                           (long long)g, st->re.re_nsub,
                           st->re.re_nsub == 1 ? "" : "s");
            continue;
        }
        struct velo_str s = args[0]->v.str[r];
        regmatch_t m[RE_MAX_GROUPS];
        if (re_exec(&st->re, s, 0, m, (size_t)g + 1) != 0 ||
            m[g].rm_so < 0) {
            velo_col_set_null(out, r); /* no match, or group unused */
            continue;
        }
        out->v.str[r].ptr = s.ptr + m[g].rm_so;
        out->v.str[r].len = (size_t)(m[g].rm_eo - m[g].rm_so);
    }
}

static int append_repl(struct velo_sbuf *b, struct velo_str s,
                       struct velo_str repl, const regmatch_t *m, size_t nm)
{
    size_t start = 0;
    for (size_t i = 0; i < repl.len; i++) {
        if (repl.ptr[i] != '\\' || i + 1 >= repl.len) {
            continue;
        }
        char c = repl.ptr[i + 1];
        if (c != '\\' && !(c >= '0' && c <= '9')) {
            continue;
        }
        if (velo_sbuf_put(b, repl.ptr + start, i - start) != VELO_OK) {
            return VELO_ERR;
        }
        if (c == '\\') {
            if (velo_sbuf_put(b, "\\", 1) != VELO_OK) {
                return VELO_ERR;
            }
        } else {
            size_t g = (size_t)(c - '0');
            if (g < nm && m[g].rm_so >= 0 &&
                velo_sbuf_put(b, s.ptr + m[g].rm_so,
                              (size_t)(m[g].rm_eo - m[g].rm_so)) != VELO_OK) {
                return VELO_ERR;
            }
        }
        i++;
        start = i + 1;
    }
    return velo_sbuf_put(b, repl.ptr + start, repl.len - start);
}

static void re_replace_kernel(struct velo_eval_ctx *ctx, void *state,
                              const struct velo_column *const *args,
                              size_t nargs, struct velo_column *out,
                              const uint16_t *sel, size_t n)
{
    struct re_state *st = state;
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        if (re_for_row(ctx, st, args[1], r, out) != 0) {
            continue;
        }
        struct velo_str s = args[0]->v.str[r], repl = args[2]->v.str[r];
        struct velo_sbuf b = {NULL, 0, 0, ctx->arena};
        size_t pos = 0, nm = st->re.re_nsub + 1;
        if (nm > RE_MAX_GROUPS) {
            nm = RE_MAX_GROUPS;
        }
        regmatch_t m[RE_MAX_GROUPS];
        int failed = 0, any = 0;
        while (pos <= s.len && re_exec(&st->re, s, pos, m, nm) == 0) {
            size_t so = (size_t)m[0].rm_so, eo = (size_t)m[0].rm_eo;
            any = 1;
            if (velo_sbuf_put(&b, s.ptr + pos, so - pos) != VELO_OK ||
                append_repl(&b, s, repl, m, nm) != VELO_OK) {
                failed = 1;
                break;
            }
            if (eo == so) {
                /* An empty match: copy one character and move past it. */
                if (so >= s.len) {
                    pos = s.len + 1;
                    break;
                }
                size_t cl = velo_utf8_seqlen((unsigned char)s.ptr[so]);
                if (so + cl > s.len) {
                    cl = s.len - so;
                }
                if (velo_sbuf_put(&b, s.ptr + so, cl) != VELO_OK) {
                    failed = 1;
                    break;
                }
                pos = so + cl;
            } else {
                pos = eo;
            }
            if (b.len > MAX_BUILT_STRING) {
                failed = 1;
                break;
            }
        }
        if (failed) {
            velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                           "REGEXP_REPLACE result too long or out of memory");
            continue;
        }
        if (!any) {
            out->v.str[r] = s;
            continue;
        }
        if (pos < s.len &&
            velo_sbuf_put(&b, s.ptr + pos, s.len - pos) != VELO_OK) {
            oom(ctx, out, r);
            continue;
        }
        out->v.str[r].ptr = b.p != NULL ? b.p : "";
        out->v.str[r].len = b.len;
    }
}

static const struct velo_func_ext re_like_ext = {
    VELO_FUNC_EXT_MAGIC, re_prepare, re_release, re_like_kernel};
static const struct velo_func_ext re_extract_ext = {
    VELO_FUNC_EXT_MAGIC, re_prepare, re_release, re_extract_kernel};
static const struct velo_func_ext re_replace_ext = {
    VELO_FUNC_EXT_MAGIC, re_prepare, re_release, re_replace_kernel};

/* ---- Registration ------------------------------------------------------- */

#define NP VELO_FUNC_NULL_PROPAGATES
#define EXT velo_ext_kernel

static const struct velo_func string_table[] = {
    {"UPPER", 1, {VT_STR}, VT_STR, NULL, NP, k_upper, NULL},
    {"LOWER", 1, {VT_STR}, VT_STR, NULL, NP, k_lower, NULL},
    {"LENGTH", 1, {VT_STR}, VT_BIG, NULL, NP, k_length, NULL},
    {"CHAR_LENGTH", 1, {VT_STR}, VT_BIG, NULL, NP, k_length, NULL},
    {"CHARACTER_LENGTH", 1, {VT_STR}, VT_BIG, NULL, NP, k_length, NULL},
    {"OCTET_LENGTH", 1, {VT_STR}, VT_BIG, NULL, NP, k_octet_length, NULL},
    {"LENGTH", 1, {VT_BYTES}, VT_BIG, NULL, NP, k_octet_length, NULL},
    {"SUBSTRING", 2, {VT_STR, VT_BIG}, VT_STR, NULL, NP, k_substring, NULL},
    {"SUBSTRING", 3, {VT_STR, VT_BIG, VT_BIG}, VT_STR, NULL, NP, k_substring,
     NULL},
    {"SUBSTR", 2, {VT_STR, VT_BIG}, VT_STR, NULL, NP, k_substring, NULL},
    {"SUBSTR", 3, {VT_STR, VT_BIG, VT_BIG}, VT_STR, NULL, NP, k_substring,
     NULL},
    {"TRIM", 1, {VT_STR}, VT_STR, NULL, NP, k_trim, NULL},
    {"TRIM", 2, {VT_STR, VT_STR}, VT_STR, NULL, NP, k_trim, NULL},
    {"LTRIM", 1, {VT_STR}, VT_STR, NULL, NP, k_ltrim, NULL},
    {"LTRIM", 2, {VT_STR, VT_STR}, VT_STR, NULL, NP, k_ltrim, NULL},
    {"RTRIM", 1, {VT_STR}, VT_STR, NULL, NP, k_rtrim, NULL},
    {"RTRIM", 2, {VT_STR, VT_STR}, VT_STR, NULL, NP, k_rtrim, NULL},
    {"LPAD", 2, {VT_STR, VT_BIG}, VT_STR, NULL, NP, k_lpad, NULL},
    {"LPAD", 3, {VT_STR, VT_BIG, VT_STR}, VT_STR, NULL, NP, k_lpad, NULL},
    {"RPAD", 2, {VT_STR, VT_BIG}, VT_STR, NULL, NP, k_rpad, NULL},
    {"RPAD", 3, {VT_STR, VT_BIG, VT_STR}, VT_STR, NULL, NP, k_rpad, NULL},
    {"REPLACE", 3, {VT_STR, VT_STR, VT_STR}, VT_STR, NULL, NP, k_replace,
     NULL},
    {"CONCAT", 1, {VT_ANY}, VT_STR, NULL, VELO_FUNC_VARIADIC, k_concat, NULL},
    {"||", 2, {VT_STR, VT_STR}, VT_STR, NULL, NP, k_concat, NULL},
    {"||", 2, {VT_ANY, VT_ANY}, VT_STR, NULL, NP, k_concat, NULL},
    {"SPLIT_PART", 3, {VT_STR, VT_STR, VT_BIG}, VT_STR, NULL, NP,
     k_split_part, NULL},
    {"POSITION", 2, {VT_STR, VT_STR}, VT_BIG, NULL, NP, k_position, NULL},
    {"STRPOS", 2, {VT_STR, VT_STR}, VT_BIG, NULL, NP, k_strpos, NULL},
    {"LEFT", 2, {VT_STR, VT_BIG}, VT_STR, NULL, NP, k_left, NULL},
    {"RIGHT", 2, {VT_STR, VT_BIG}, VT_STR, NULL, NP, k_right, NULL},
    {"REGEXP_LIKE", 2, {VT_STR, VT_STR}, VT_BOOL, NULL, NP, EXT,
     &re_like_ext},
    {"REGEXP_EXTRACT", 2, {VT_STR, VT_STR}, VT_STR, NULL, NP, EXT,
     &re_extract_ext},
    {"REGEXP_EXTRACT", 3, {VT_STR, VT_STR, VT_BIG}, VT_STR, NULL, NP, EXT,
     &re_extract_ext},
    {"REGEXP_REPLACE", 3, {VT_STR, VT_STR, VT_STR}, VT_STR, NULL, NP, EXT,
     &re_replace_ext},
};

int velo_funcs_register_string(struct velo_funcs *r)
{
    return velo_funcs_add_table(r, string_table,
                                sizeof(string_table) / sizeof(string_table[0]));
}
