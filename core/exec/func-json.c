/*
 * A JSON text walker for nested field access (payload.user.id,
 * payload['k'], JSON_VALUE, JSON_EXTRACT): it skips over values without
 * building anything and never allocates, except to unescape a string
 * result that contains escapes. jansson stays out of the record path.
 *
 * Paths for JSON_VALUE/JSON_EXTRACT: '$' then any of .name, ."quoted
 * name", ['name'], ["name"], [index]. JSON_VALUE returns a scalar as text
 * (NULL for objects, arrays and JSON null); JSON_EXTRACT returns the JSON
 * text of any value. A missing member or index is NULL; text that is not
 * JSON is a per-row error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <velo/log.h>

#include "exec/func-internal.h"

#define JSON_MAX_DEPTH 512
#define PATH_MAX_STEPS 64

static const char *ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
        p++;
    }
    return p;
}

/* p at the opening quote; returns past the closing quote or NULL. */
static const char *skip_string(const char *p, const char *end)
{
    p++;
    for (;;) {
        const char *q = memchr(p, '"', (size_t)(end - p));
        if (q == NULL) {
            return NULL;
        }
        /* Escaped when preceded by an odd run of backslashes. */
        const char *b = q;
        while (b > p && b[-1] == '\\') {
            b--;
        }
        if (((q - b) & 1) == 0) {
            return q + 1;
        }
        p = q + 1;
    }
}

static const char *skip_lit(const char *p, const char *end, const char *lit,
                            size_t n)
{
    if ((size_t)(end - p) < n || memcmp(p, lit, n) != 0) {
        return NULL;
    }
    return p + n;
}

static const char *skip_number(const char *p, const char *end)
{
    const char *s = p;
    while (p < end && ((*p >= '0' && *p <= '9') || *p == '-' || *p == '+' ||
                       *p == '.' || *p == 'e' || *p == 'E')) {
        p++;
    }
    return p > s ? p : NULL;
}

const char *velo_json_skip(const char *p, const char *end)
{
    p = ws(p, end);
    if (p >= end) {
        return NULL;
    }
    switch (*p) {
    case '"':
        return skip_string(p, end);
    case 't':
        return skip_lit(p, end, "true", 4);
    case 'f':
        return skip_lit(p, end, "false", 5);
    case 'n':
        return skip_lit(p, end, "null", 4);
    case '{':
    case '[': {
        /* Brackets balance outside strings; structure inside is checked
         * by whoever reads it (velo_json_valid checks everything). */
        int depth = 0;
        while (p < end) {
            char c = *p;
            if (c == '"') {
                p = skip_string(p, end);
                if (p == NULL) {
                    return NULL;
                }
                continue;
            }
            if (c == '{' || c == '[') {
                if (++depth > JSON_MAX_DEPTH) {
                    return NULL;
                }
            } else if (c == '}' || c == ']') {
                if (--depth == 0) {
                    return p + 1;
                }
            }
            p++;
        }
        return NULL;
    }
    default:
        return skip_number(p, end);
    }
}

/* ---- Validation (STRING -> JSON casts) ---------------------------------- */

static const char *valid_value(const char *p, const char *end, int depth);

static const char *valid_string(const char *p, const char *end)
{
    p++;
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            return p + 1;
        }
        if (c < 0x20) {
            return NULL;
        }
        if (c == '\\') {
            if (++p >= end) {
                return NULL;
            }
            switch (*p) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                break;
            case 'u':
                for (int i = 0; i < 4; i++) {
                    if (++p >= end || !((*p >= '0' && *p <= '9') ||
                                        (*p >= 'a' && *p <= 'f') ||
                                        (*p >= 'A' && *p <= 'F'))) {
                        return NULL;
                    }
                }
                break;
            default:
                return NULL;
            }
        }
        p++;
    }
    return NULL;
}

static const char *valid_number(const char *p, const char *end)
{
    if (p < end && *p == '-') {
        p++;
    }
    if (p >= end) {
        return NULL;
    }
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    } else {
        return NULL;
    }
    if (p < end && *p == '.') {
        p++;
        const char *d = p;
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
        if (p == d) {
            return NULL;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }
        const char *d = p;
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
        if (p == d) {
            return NULL;
        }
    }
    return p;
}

static const char *valid_value(const char *p, const char *end, int depth)
{
    p = ws(p, end);
    if (p >= end || depth > JSON_MAX_DEPTH) {
        return NULL;
    }
    switch (*p) {
    case '"':
        return valid_string(p, end);
    case 't':
        return skip_lit(p, end, "true", 4);
    case 'f':
        return skip_lit(p, end, "false", 5);
    case 'n':
        return skip_lit(p, end, "null", 4);
    case '[':
        p = ws(p + 1, end);
        if (p < end && *p == ']') {
            return p + 1;
        }
        for (;;) {
            p = valid_value(p, end, depth + 1);
            if (p == NULL) {
                return NULL;
            }
            p = ws(p, end);
            if (p < end && *p == ',') {
                p++;
                continue;
            }
            return p < end && *p == ']' ? p + 1 : NULL;
        }
    case '{':
        p = ws(p + 1, end);
        if (p < end && *p == '}') {
            return p + 1;
        }
        for (;;) {
            p = ws(p, end);
            if (p >= end || *p != '"' || (p = valid_string(p, end)) == NULL) {
                return NULL;
            }
            p = ws(p, end);
            if (p >= end || *p != ':') {
                return NULL;
            }
            p = valid_value(p + 1, end, depth + 1);
            if (p == NULL) {
                return NULL;
            }
            p = ws(p, end);
            if (p < end && *p == ',') {
                p++;
                continue;
            }
            return p < end && *p == '}' ? p + 1 : NULL;
        }
    default:
        return valid_number(p, end);
    }
}

int velo_json_valid(const char *p, size_t len)
{
    const char *end = p + len;
    const char *e = valid_value(p, end, 0);
    return e != NULL && ws(e, end) == end;
}

/* ---- Unescaping --------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static int read_u4(const char *p, const char *end, uint32_t *out)
{
    if (end - p < 4) {
        return -1;
    }
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) {
            return -1;
        }
        v = (v << 4) | (uint32_t)h;
    }
    *out = v;
    return 0;
}

static size_t put_cp(uint32_t cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Unescape the content of a JSON string (between the quotes) into o,
 * which has room for len bytes (unescaping never grows). @return length
 * or -1. */
static long unescape(const char *s, size_t len, char *o)
{
    const char *p = s, *end = s + len;
    size_t j = 0;
    while (p < end) {
        if (*p != '\\') {
            o[j++] = *p++;
            continue;
        }
        if (++p >= end) {
            return -1;
        }
        char c = *p++;
        switch (c) {
        case 'n':
            o[j++] = '\n';
            break;
        case 't':
            o[j++] = '\t';
            break;
        case 'r':
            o[j++] = '\r';
            break;
        case 'b':
            o[j++] = '\b';
            break;
        case 'f':
            o[j++] = '\f';
            break;
        case 'u': {
            uint32_t cp;
            if (read_u4(p, end, &cp) != 0) {
                return -1;
            }
            p += 4;
            if (cp >= 0xd800 && cp <= 0xdbff && end - p >= 6 && p[0] == '\\' &&
                p[1] == 'u') {
                uint32_t lo;
                if (read_u4(p + 2, end, &lo) == 0 && lo >= 0xdc00 &&
                    lo <= 0xdfff) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    p += 6;
                }
            }
            if (cp >= 0xd800 && cp <= 0xdfff) {
                cp = 0xfffd; /* a lone surrogate */
            }
            j += put_cp(cp, o + j);
            break;
        }
        default:
            o[j++] = c; /* \" \\ \/ */
            break;
        }
    }
    return (long)j;
}

int velo_json_to_text(const char *v, size_t vlen, struct velo_arena *arena,
                      struct velo_str *out)
{
    const char *end = v + vlen;
    v = ws(v, end);
    while (end > v && (end[-1] == ' ' || end[-1] == '\n' || end[-1] == '\t' ||
                       end[-1] == '\r')) {
        end--;
    }
    size_t len = (size_t)(end - v);
    if (len == 4 && memcmp(v, "null", 4) == 0) {
        return 0;
    }
    if (len == 0) {
        return -1;
    }
    if (v[0] != '"') {
        out->ptr = v;
        out->len = len;
        return 1;
    }
    if (len < 2 || v[len - 1] != '"') {
        return -1;
    }
    const char *s = v + 1;
    size_t sl = len - 2;
    if (memchr(s, '\\', sl) == NULL) {
        out->ptr = s;
        out->len = sl;
        return 1;
    }
    char *o = velo_arena_alloc(arena, sl + 1);
    if (o == NULL) {
        return -1;
    }
    long n = unescape(s, sl, o);
    if (n < 0) {
        return -1;
    }
    out->ptr = o;
    out->len = (size_t)n;
    return 1;
}

/* ---- Walking ------------------------------------------------------------ */

/* Does the raw JSON key (between quotes, maybe escaped) equal want? */
static int key_equals(const char *k, size_t klen, const char *want,
                      size_t wlen)
{
    if (memchr(k, '\\', klen) == NULL) {
        return klen == wlen && memcmp(k, want, klen) == 0;
    }
    char buf[256];
    if (klen > sizeof(buf)) {
        return 0;
    }
    long n = unescape(k, klen, buf);
    return n >= 0 && (size_t)n == wlen && memcmp(buf, want, wlen) == 0;
}

int velo_json_walk(const char *text, size_t len,
                   const struct velo_json_step *steps, size_t nsteps,
                   const char **vp, size_t *vlen)
{
    const char *end = text + len;
    const char *p = ws(text, end);
    for (size_t i = 0; i < nsteps; i++) {
        const struct velo_json_step *st = &steps[i];
        if (p >= end) {
            return -1;
        }
        if (*p == '{') {
            if (st->key == NULL) {
                return 0;
            }
            p = ws(p + 1, end);
            if (p < end && *p == '}') {
                return 0;
            }
            const char *found = NULL;
            for (;;) {
                if (p >= end || *p != '"') {
                    return -1;
                }
                const char *ks = p + 1;
                const char *ke = skip_string(p, end);
                if (ke == NULL) {
                    return -1;
                }
                p = ws(ke, end);
                if (p >= end || *p != ':') {
                    return -1;
                }
                p = ws(p + 1, end);
                if (key_equals(ks, (size_t)(ke - 1 - ks), st->key,
                               st->keylen)) {
                    found = p;
                    break;
                }
                p = velo_json_skip(p, end);
                if (p == NULL) {
                    return -1;
                }
                p = ws(p, end);
                if (p < end && *p == ',') {
                    p = ws(p + 1, end);
                    continue;
                }
                if (p < end && *p == '}') {
                    return 0;
                }
                return -1;
            }
            p = found;
        } else if (*p == '[') {
            if (st->index < 0) {
                return 0;
            }
            p = ws(p + 1, end);
            if (p < end && *p == ']') {
                return 0;
            }
            for (long k = 0;; k++) {
                if (k == st->index) {
                    break;
                }
                p = velo_json_skip(p, end);
                if (p == NULL) {
                    return -1;
                }
                p = ws(p, end);
                if (p < end && *p == ',') {
                    p = ws(p + 1, end);
                    continue;
                }
                if (p < end && *p == ']') {
                    return 0;
                }
                return -1;
            }
        } else {
            /* A scalar has no members: absent, unless it is not JSON. */
            return velo_json_skip(p, end) != NULL ? 0 : -1;
        }
    }
    const char *e = velo_json_skip(p, end);
    if (e == NULL) {
        return -1;
    }
    *vp = p;
    *vlen = (size_t)(e - p);
    return 1;
}

int velo_json_path_parse(const char *path, size_t len,
                         struct velo_json_step *steps, size_t max)
{
    const char *p = path, *end = path + len;
    while (p < end && *p == ' ') {
        p++;
    }
    while (end > p && end[-1] == ' ') {
        end--;
    }
    if (p < end && *p == '$') {
        p++;
    }
    size_t n = 0;
    while (p < end) {
        if (n >= max) {
            return -1;
        }
        struct velo_json_step *st = &steps[n];
        st->key = NULL;
        st->keylen = 0;
        st->index = -1;
        if (*p == '.') {
            p++;
            if (p < end && *p == '"') {
                const char *q = memchr(p + 1, '"', (size_t)(end - p - 1));
                if (q == NULL) {
                    return -1;
                }
                st->key = p + 1;
                st->keylen = (size_t)(q - p - 1);
                p = q + 1;
            } else {
                const char *s = p;
                while (p < end && *p != '.' && *p != '[') {
                    p++;
                }
                if (p == s) {
                    return -1;
                }
                st->key = s;
                st->keylen = (size_t)(p - s);
            }
        } else if (*p == '[') {
            p++;
            while (p < end && *p == ' ') {
                p++;
            }
            if (p < end && (*p == '\'' || *p == '"')) {
                char q = *p;
                const char *e = memchr(p + 1, q, (size_t)(end - p - 1));
                if (e == NULL) {
                    return -1;
                }
                st->key = p + 1;
                st->keylen = (size_t)(e - p - 1);
                p = e + 1;
            } else {
                long v = 0;
                const char *s = p;
                while (p < end && *p >= '0' && *p <= '9' && v < 100000000) {
                    v = v * 10 + (*p++ - '0');
                }
                if (p == s) {
                    return -1;
                }
                st->index = v;
            }
            while (p < end && *p == ' ') {
                p++;
            }
            if (p >= end || *p != ']') {
                return -1;
            }
            p++;
        } else {
            return -1;
        }
        n++;
    }
    return (int)n;
}

/* ---- JSON_VALUE / JSON_EXTRACT ------------------------------------------ */

struct jpath_state {
    int constant;
    int bad;
    struct velo_json_step steps[PATH_MAX_STEPS];
    size_t nsteps;
    char *text; /* owned copy of a constant path, keys point into it */
};

static void *jpath_prepare(const struct velo_expr *call)
{
    struct jpath_state *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return NULL;
    }
    const struct velo_literal *l = velo_call_const_arg(call, 1);
    if (l != NULL && !l->is_null) {
        st->text = malloc(l->len + 1);
        if (st->text == NULL) {
            free(st);
            return NULL;
        }
        memcpy(st->text, l->str != NULL ? l->str : "", l->len);
        st->text[l->len] = '\0';
        int n = velo_json_path_parse(st->text, l->len, st->steps,
                                     PATH_MAX_STEPS);
        st->bad = n < 0;
        st->nsteps = n < 0 ? 0 : (size_t)n;
        st->constant = 1;
    }
    return st;
}

static void jpath_release(void *p)
{
    struct jpath_state *st = p;
    free(st->text);
    free(st);
}

static void json_path_kernel(struct velo_eval_ctx *ctx, void *state,
                             const struct velo_column *const *args,
                             struct velo_column *out, const uint16_t *sel,
                             size_t n, int extract)
{
    struct jpath_state *st = state;
    struct velo_json_step local[PATH_MAX_STEPS];
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        const struct velo_json_step *steps = st->steps;
        size_t nsteps = st->nsteps;
        int bad = st->bad;
        struct velo_str path = args[1]->v.str[r];
        if (!st->constant) {
            int k = velo_json_path_parse(path.ptr, path.len, local,
                                         PATH_MAX_STEPS);
            bad = k < 0;
            steps = local;
            nsteps = k < 0 ? 0 : (size_t)k;
        }
        if (bad) {
            velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                           "bad JSON path '%.*s': use $.a.b[0] or $['k']",
                           (int)(path.len > 40 ? 40 : path.len), path.ptr);
            continue;
        }
        struct velo_str s = args[0]->v.str[r];
        const char *vp;
        size_t vlen;
        int rc = velo_json_walk(s.ptr, s.len, steps, nsteps, &vp, &vlen);
        if (rc < 0) {
            velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                           "value is not valid JSON");
            continue;
        }
        if (rc == 0 || (vlen == 4 && memcmp(vp, "null", 4) == 0)) {
            velo_col_set_null(out, r);
            continue;
        }
        if (extract) {
            out->v.str[r].ptr = vp;
            out->v.str[r].len = vlen;
            continue;
        }
        if (vp[0] == '{' || vp[0] == '[') {
            velo_col_set_null(out, r); /* JSON_VALUE is for scalars */
            continue;
        }
        if (velo_json_to_text(vp, vlen, ctx->arena, &out->v.str[r]) < 0) {
            velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                           "value is not valid JSON");
        }
    }
}

static void json_value_kernel(struct velo_eval_ctx *ctx, void *state,
                              const struct velo_column *const *args,
                              size_t nargs, struct velo_column *out,
                              const uint16_t *sel, size_t n)
{
    json_path_kernel(ctx, state, args, out, sel, n, 0);
}

static void json_extract_kernel(struct velo_eval_ctx *ctx, void *state,
                                const struct velo_column *const *args,
                                size_t nargs, struct velo_column *out,
                                const uint16_t *sel, size_t n)
{
    json_path_kernel(ctx, state, args, out, sel, n, 1);
}

static const struct velo_func_ext json_value_ext = {
    VELO_FUNC_EXT_MAGIC, jpath_prepare, jpath_release, json_value_kernel};
static const struct velo_func_ext json_extract_ext = {
    VELO_FUNC_EXT_MAGIC, jpath_prepare, jpath_release, json_extract_kernel};

/* ---- JSON_OBJECT(name, value, ...) -------------------------------------- */

#define JOBJ_MAX_ARGS 64

/* Bytes s takes inside a JSON string (quotes excluded). */
static size_t json_escaped_len(struct velo_str s)
{
    size_t n = 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        n += c == '"' || c == '\\' ? 2 : c < 0x20 ? 6 : 1;
    }
    return n;
}

static char *json_escape_to(char *p, struct velo_str s)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
        } else if (c < 0x20) {
            memcpy(p, "\\u00", 4);
            p[4] = hex[c >> 4];
            p[5] = hex[c & 15];
            p += 6;
        } else {
            *p++ = (char)c;
        }
    }
    return p;
}

/* A value written bare (numbers, booleans, JSON) or as a JSON string. */
static int json_bare(const struct velo_column *c)
{
    switch (c->type.id) {
    case VELO_TYPE_BOOLEAN:
    case VELO_TYPE_INTEGER:
    case VELO_TYPE_BIGINT:
    case VELO_TYPE_DOUBLE:
    case VELO_TYPE_DECIMAL:
    case VELO_TYPE_JSON:
        return 1;
    default:
        return 0;
    }
}

/* One row: {"name": value, ...} in the arena. Names must be non-NULL
 * text; a NULL value is null (PostgreSQL's json_build_object). */
static int json_object_row(struct velo_eval_ctx *ctx,
                           const struct velo_column *const *args,
                           size_t nargs, size_t r, struct velo_str *res)
{
    struct velo_str parts[JOBJ_MAX_ARGS];
    size_t total = 2;
    for (size_t k = 0; k < nargs; k++) {
        if (velo_col_is_null(args[k], r)) {
            if (k % 2 == 0) {
                return VELO_DECLINED; /* a NULL name */
            }
            parts[k].ptr = NULL;
            parts[k].len = 0;
            total += 4 + 1; /* null, */
            continue;
        }
        if (velo_value_text(args[k], r, ctx->arena, &parts[k]) != VELO_OK) {
            return VELO_ERR;
        }
        int bare = k % 2 == 1 && json_bare(args[k]);
        total += (bare ? parts[k].len : json_escaped_len(parts[k]) + 2) + 1;
    }
    char *p = velo_arena_alloc(ctx->arena, total);
    if (p == NULL) {
        return VELO_ERR;
    }
    char *w = p;
    *w++ = '{';
    for (size_t k = 0; k < nargs; k++) {
        if (k > 0) {
            *w++ = k % 2 == 1 ? ':' : ',';
        }
        if (k % 2 == 1 && parts[k].ptr == NULL) {
            memcpy(w, "null", 4);
            w += 4;
        } else if (k % 2 == 1 && json_bare(args[k])) {
            memcpy(w, parts[k].ptr, parts[k].len);
            w += parts[k].len;
        } else {
            *w++ = '"';
            w = json_escape_to(w, parts[k]);
            *w++ = '"';
        }
    }
    *w++ = '}';
    res->ptr = p;
    res->len = (size_t)(w - p);
    return VELO_OK;
}

static VELO_KERNEL(k_json_object)
{
    (void)fn;
    if (nargs % 2 != 0 || nargs > JOBJ_MAX_ARGS) {
        VELO_ROWS(sel, n, r,
                  velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                                 "JSON_OBJECT takes name, value pairs (at "
                                 "most %d arguments), not %zu arguments",
                                 JOBJ_MAX_ARGS, nargs););
        return;
    }
    VELO_ROWS(sel, n, r, {
        int rc = json_object_row(ctx, args, nargs, r, &out->v.str[r]);
        if (rc == VELO_DECLINED) {
            velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                           "JSON_OBJECT: a name is NULL; every name must "
                           "be text");
        } else if (rc != VELO_OK) {
            velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                           "out of memory building a JSON object");
        }
    });
}

#define NP VELO_FUNC_NULL_PROPAGATES

static const struct velo_func json_table[] = {
    {"JSON_VALUE", 2, {VT_STR, VT_STR}, VT_STR, NULL, NP, velo_ext_kernel,
     &json_value_ext},
    {"JSON_EXTRACT", 2, {VT_STR, VT_STR}, VT_JSON, NULL, NP, velo_ext_kernel,
     &json_extract_ext},
    {"JSON_QUERY", 2, {VT_STR, VT_STR}, VT_JSON, NULL, NP, velo_ext_kernel,
     &json_extract_ext},
    {"JSON_OBJECT", 1, {VT_ANY}, VT_JSON, NULL, VELO_FUNC_VARIADIC,
     k_json_object, NULL},
};

int velo_funcs_register_json(struct velo_funcs *r)
{
    return velo_funcs_add_table(r, json_table,
                                sizeof(json_table) / sizeof(json_table[0]));
}
