/*
 * Assertions: each one compares what the run produced (captured rows,
 * the generated inputs, the job's stats and metrics) with the spec and
 * records a result with the observed value, so a failure says what was
 * seen, not only that it differed.
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "testkit/testkit-internal.h"

#define SAMPLES_SHOWN 5

static char *vfmt(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) {
        return NULL;
    }
    return s;
}

static void set_text(char **dst, const char *fmt, ...) VELO_PRINTF(2, 3);
static void set_text(char **dst, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    free(*dst);
    *dst = vfmt(fmt, ap);
    va_end(ap);
}

static const char *ystr(const struct velo_tk_yaml *y)
{
    return y != NULL && y->kind == VELO_TK_YSCALAR ? y->str : NULL;
}

/* A YAML value as short text for reports ("[1, 5]", "0.8"). */
static void ytext(const struct velo_tk_yaml *y, char *buf, size_t len)
{
    if (y == NULL) {
        snprintf(buf, len, "-");
        return;
    }
    if (y->kind == VELO_TK_YSCALAR) {
        snprintf(buf, len, "%s", y->str);
        return;
    }
    size_t at = 0;
    at += (size_t)snprintf(buf, len, "[");
    for (size_t i = 0; i < y->n && at + 4 < len; i++) {
        at += (size_t)snprintf(buf + at, len - at, "%s%s", i ? ", " : "",
                               ystr(y->items[i]) ? y->items[i]->str : "?");
    }
    if (at + 2 < len) {
        snprintf(buf + at, len - at, "]");
    }
}

/* ---- Operators ---------------------------------------------------------- */

int velo_tk_compare(double observed, int op, const struct velo_tk_yaml *exp,
                    char *err, size_t errlen)
{
    double e, lo, hi;
    const double eps = 1e-9;
    switch (op) {
    case VELO_TK_EQ:
    case VELO_TK_NE:
    case VELO_TK_GT:
    case VELO_TK_LT:
        if (velo_tk_yaml_num(exp, &e) != 0) {
            snprintf(err, errlen, "expected must be a number");
            return -1;
        }
        if (op == VELO_TK_EQ) {
            return fabs(observed - e) <= eps * fmax(1, fabs(e));
        }
        if (op == VELO_TK_NE) {
            return fabs(observed - e) > eps * fmax(1, fabs(e));
        }
        return op == VELO_TK_GT ? observed > e : observed < e;
    case VELO_TK_BETWEEN:
        if (exp == NULL || exp->kind != VELO_TK_YSEQ || exp->n != 2 ||
            velo_tk_yaml_num(exp->items[0], &lo) != 0 ||
            velo_tk_yaml_num(exp->items[1], &hi) != 0) {
            snprintf(err, errlen, "between needs expected: [low, high]");
            return -1;
        }
        return observed >= lo && observed <= hi;
    case VELO_TK_IN:
        if (exp == NULL || exp->kind != VELO_TK_YSEQ) {
            snprintf(err, errlen, "in needs expected: [a, b, ...]");
            return -1;
        }
        for (size_t i = 0; i < exp->n; i++) {
            if (velo_tk_yaml_num(exp->items[i], &e) != 0) {
                snprintf(err, errlen, "in needs numbers in expected");
                return -1;
            }
            if (fabs(observed - e) <= eps * fmax(1, fabs(e))) {
                return 1;
            }
        }
        return 0;
    default:
        snprintf(err, errlen, "unknown operator");
        return -1;
    }
}

/* ---- Rows ---------------------------------------------------------------- */

/* A retraction in a changelog capture ("_op": "-", "-U", "-D", "D",
 * "UB", "delete"): not a row of the result. */
static int retracted(json_t *row)
{
    const char *op = json_string_value(json_object_get(row, "_op"));
    if (op == NULL) {
        return 0;
    }
    return op[0] == '-' || strcmp(op, "D") == 0 || strcmp(op, "UB") == 0 ||
           strcasecmp(op, "delete") == 0;
}

static size_t live_rows(const struct velo_tk_output *out)
{
    size_t n = 0, i;
    json_t *row;
    json_array_foreach(out->rows, i, row)
    {
        n += !retracted(row);
    }
    return n;
}

/* A cell as text (strings unquoted, null as "null"). malloc'd. */
char *velo_tk_cell_text(json_t *v)
{
    if (v == NULL || json_is_null(v)) {
        return strdup("null");
    }
    if (json_is_string(v)) {
        return strdup(json_string_value(v));
    }
    if (json_is_integer(v)) {
        char b[32];
        snprintf(b, sizeof(b), "%lld", (long long)json_integer_value(v));
        return strdup(b);
    }
    if (json_is_real(v)) {
        char b[40];
        snprintf(b, sizeof(b), "%.15g", json_real_value(v));
        return strdup(b);
    }
    return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
}

static int cell_number(json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        char *end;
        const char *s = json_string_value(v);
        *out = strtod(s, &end);
        return *end == '\0' && end != s ? 0 : -1;
    }
    return -1;
}

/* Names from `fields:` (list or one), or `field:`. */
static size_t field_list(const struct velo_tk_yaml *a, const char **names,
                         size_t max)
{
    const struct velo_tk_yaml *f = velo_tk_yaml_get(a, "fields");
    if (f == NULL) {
        f = velo_tk_yaml_get(a, "field");
    }
    if (f == NULL) {
        f = velo_tk_yaml_get(a, "key");
    }
    if (f == NULL) {
        return 0;
    }
    if (f->kind == VELO_TK_YSCALAR) {
        names[0] = f->str;
        return 1;
    }
    size_t n = 0;
    for (size_t i = 0; f->kind == VELO_TK_YSEQ && i < f->n && n < max; i++) {
        if (ystr(f->items[i]) != NULL) {
            names[n++] = f->items[i]->str;
        }
    }
    return n;
}

/* Every column name of an output, in first-seen order. */
static size_t output_columns(const struct velo_tk_output *out,
                             const char **names, size_t max)
{
    size_t n = 0, i;
    json_t *row;
    json_array_foreach(out->rows, i, row)
    {
        const char *k;
        json_t *v;
        json_object_foreach(row, k, v)
        {
            size_t j;
            for (j = 0; j < n && strcmp(names[j], k) != 0; j++) {
            }
            if (j == n && n < max && strcmp(k, "_op") != 0) {
                names[n++] = k;
            }
        }
        if (i > 16) {
            break;
        }
    }
    return n;
}

/* ---- Numeric assertions ------------------------------------------- */
/* Each has a default comparison and shorthands (max_ms, ...). */

static void numeric(struct velo_tk_result *r, const struct velo_tk_yaml *a,
                    double observed, const char *unit, int def_op,
                    const char *def_expected, const char *shorthand,
                    int shorthand_op)
{
    const struct velo_tk_yaml *opy = velo_tk_yaml_get(a, "operator");
    const struct velo_tk_yaml *exp = velo_tk_yaml_get(a, "expected");
    struct velo_tk_yaml tmp = {0};
    int op = def_op;
    if (opy != NULL) {
        op = velo_tk_op_parse(opy->str);
    } else if (shorthand != NULL &&
               (exp = velo_tk_yaml_get(a, shorthand)) != NULL) {
        op = shorthand_op;
    } else if ((exp = velo_tk_yaml_get(a, "expected")) != NULL) {
        op = exp->kind == VELO_TK_YSEQ ? VELO_TK_IN : VELO_TK_EQ;
    } else {
        tmp.kind = VELO_TK_YSCALAR;
        tmp.str = (char *)def_expected;
        exp = &tmp;
    }
    char et[200], err[200];
    ytext(exp, et, sizeof(et));
    int ok = velo_tk_compare(observed, op, exp, err, sizeof(err));
    char ot[64];
    if (observed == floor(observed) && fabs(observed) < 1e15) {
        snprintf(ot, sizeof(ot), "%.0f", observed);
    } else {
        snprintf(ot, sizeof(ot), "%.4g", observed);
    }
    set_text(&r->observed, "%s%s%s", ot, unit[0] ? " " : "", unit);
    set_text(&r->expected, "%s %s%s%s", velo_tk_op_name(op), et,
             unit[0] ? " " : "", unit);
    char *nm = NULL;
    if (asprintf(&nm, "%s %s %s", r->type, velo_tk_op_name(op), et) > 0) {
        free(r->name);
        r->name = nm;
    }
    if (ok < 0) {
        r->passed = 0;
        set_text(&r->message, "%s", err);
        return;
    }
    r->passed = ok;
    if (!ok) {
        set_text(&r->message, "observed %s, expected %s", r->observed,
                 r->expected);
    }
}

/* ---- Row assertions ----------------------------------------------------- */

static void check_schema_contains(struct velo_tk_result *r,
                                  const struct velo_tk_output *out,
                                  const struct velo_tk_yaml *a)
{
    const char *want[256], *have[512];
    size_t nw = field_list(a, want, 256);
    size_t nh = output_columns(out, have, 512);
    struct velo_textbuf missing = {0}, seen = {0};
    for (size_t i = 0; i < nh; i++) {
        velo_textbuf_add(&seen, "%s%s", i ? ", " : "", have[i]);
    }
    size_t nmiss = 0;
    for (size_t i = 0; i < nw; i++) {
        size_t j;
        for (j = 0; j < nh && strcasecmp(have[j], want[i]) != 0; j++) {
        }
        if (j == nh) {
            velo_textbuf_add(&missing, "%s%s", nmiss++ ? ", " : "", want[i]);
        }
    }
    set_text(&r->name, "schema_contains %zu field(s)", nw);
    set_text(&r->observed, "columns: %s", seen.p != NULL ? seen.p : "(none)");
    r->passed = nmiss == 0 && nh > 0;
    if (!r->passed) {
        set_text(&r->message,
                 nh == 0 ? "the output has no rows, so no "
                           "columns to check"
                         : "missing: %s",
                 missing.p != NULL ? missing.p : "");
    }
    velo_textbuf_free(&missing);
    velo_textbuf_free(&seen);
}

static void check_no_nulls(struct velo_tk_result *r,
                           const struct velo_tk_output *out,
                           const struct velo_tk_yaml *a, const char **given,
                           size_t ngiven)
{
    const char *names[512];
    size_t n = given != NULL ? ngiven : field_list(a, names, 512);
    if (given != NULL) {
        memcpy(names, given, n * sizeof(*names));
    } else if (n == 0) {
        n = output_columns(out, names, 512);
    }
    size_t nulls = 0, i;
    const char *first = NULL;
    json_t *row;
    struct velo_textbuf which = {0};
    size_t *per = calloc(n + 1, sizeof(*per));
    json_array_foreach(out->rows, i, row)
    {
        if (retracted(row)) {
            continue;
        }
        for (size_t k = 0; k < n; k++) {
            json_t *v = json_object_get(row, names[k]);
            if (v == NULL || json_is_null(v)) {
                nulls++;
                if (per != NULL) {
                    per[k]++;
                }
                if (first == NULL) {
                    first = names[k];
                }
            }
        }
    }
    size_t shown = 0;
    for (size_t k = 0; per != NULL && k < n; k++) {
        if (per[k] > 0) {
            velo_textbuf_add(&which, "%s%s: %zu", shown++ ? ", " : "", names[k],
                             per[k]);
        }
    }
    struct velo_textbuf nm = {0};
    for (size_t k = 0; k < n && k < 6; k++) {
        velo_textbuf_add(&nm, "%s%s", k ? ", " : "", names[k]);
    }
    set_text(&r->name, "no_nulls %s%s", nm.p != NULL ? nm.p : "(no columns)",
             n > 6 ? ", ..." : "");
    set_text(&r->observed, "%zu null(s)%s%s%s", nulls, nulls ? " (" : "",
             nulls && which.p ? which.p : "", nulls ? ")" : "");
    set_text(&r->expected, "0 nulls");
    r->passed = nulls == 0;
    if (!r->passed) {
        set_text(&r->message, "NULL in %s", which.p != NULL ? which.p : "?");
    }
    free(per);
    velo_textbuf_free(&which);
    velo_textbuf_free(&nm);
}

static void check_in_set(struct velo_tk_result *r,
                         const struct velo_tk_output *out,
                         const struct velo_tk_yaml *a)
{
    const char *field = ystr(velo_tk_yaml_get(a, "field"));
    const struct velo_tk_yaml *vals = velo_tk_yaml_get(a, "values");
    size_t bad = 0, i;
    json_t *row;
    struct velo_textbuf samples = {0};
    json_array_foreach(out->rows, i, row)
    {
        if (retracted(row)) {
            continue;
        }
        char *t = velo_tk_cell_text(json_object_get(row, field));
        int ok = 0;
        for (size_t k = 0; vals != NULL && k < vals->n && t != NULL; k++) {
            if (ystr(vals->items[k]) != NULL &&
                strcmp(vals->items[k]->str, t) == 0) {
                ok = 1;
            }
        }
        if (!ok) {
            if (bad < SAMPLES_SHOWN) {
                velo_textbuf_add(&samples, "%s%s", bad ? ", " : "",
                                 t != NULL ? t : "?");
            }
            bad++;
        }
        free(t);
    }
    char vt[300];
    ytext(vals, vt, sizeof(vt));
    set_text(&r->name, "field_in_set %s", field ? field : "?");
    set_text(&r->expected, "in %s", vt);
    set_text(&r->observed, "%zu value(s) outside%s%s", bad, bad ? ": " : "",
             bad ? samples.p : "");
    r->passed = bad == 0 && field != NULL;
    if (!r->passed) {
        set_text(&r->message, "%zu row(s) of %s not in %s", bad,
                 field ? field : "?", vt);
    }
    velo_textbuf_free(&samples);
}

static void check_range(struct velo_tk_result *r,
                        const struct velo_tk_output *out,
                        const struct velo_tk_yaml *a)
{
    const char *field = ystr(velo_tk_yaml_get(a, "field"));
    double lo = -INFINITY, hi = INFINITY, mn = INFINITY, mx = -INFINITY;
    velo_tk_yaml_num(velo_tk_yaml_get(a, "min"), &lo);
    velo_tk_yaml_num(velo_tk_yaml_get(a, "max"), &hi);
    size_t bad = 0, seen = 0, i;
    json_t *row;
    json_array_foreach(out->rows, i, row)
    {
        double v;
        json_t *c = json_object_get(row, field);
        if (retracted(row) || c == NULL || json_is_null(c)) {
            continue;
        }
        if (cell_number(c, &v) != 0) {
            bad++;
            continue;
        }
        seen++;
        mn = fmin(mn, v);
        mx = fmax(mx, v);
        bad += v < lo || v > hi;
    }
    set_text(&r->name, "field_range %s", field ? field : "?");
    set_text(&r->expected, "[%g, %g]", lo, hi);
    if (seen > 0) {
        set_text(&r->observed, "min %g, max %g, %zu outside", mn, mx, bad);
    } else {
        set_text(&r->observed, "no numeric values");
    }
    r->passed = bad == 0 && seen > 0;
    if (!r->passed) {
        set_text(&r->message, "%zu value(s) of %s outside", bad,
                 field ? field : "?");
        if (seen == 0) {
            set_text(&r->message, "no numeric values of %s",
                     field ? field : "?");
        }
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void check_no_duplicates(struct velo_tk_result *r,
                                const struct velo_tk_output *out,
                                const struct velo_tk_yaml *a)
{
    const char *names[64];
    size_t n = field_list(a, names, 64);
    if (n == 0) {
        n = output_columns(out, names, 64);
    }
    size_t rows = json_array_size(out->rows), nk = 0, i;
    char **keys = calloc(rows + 1, sizeof(*keys));
    json_t *row;
    json_array_foreach(out->rows, i, row)
    {
        if (keys == NULL || retracted(row)) {
            continue;
        }
        struct velo_textbuf k = {0};
        for (size_t c = 0; c < n; c++) {
            char *t = velo_tk_cell_text(json_object_get(row, names[c]));
            velo_textbuf_add(&k, "%s%s", c ? "|" : "", t ? t : "");
            free(t);
        }
        keys[nk++] = k.p != NULL ? k.p : strdup("");
    }
    qsort(keys, nk, sizeof(*keys), cmp_str);
    size_t dups = 0;
    const char *sample = NULL;
    for (size_t k = 1; k < nk; k++) {
        if (keys[k] != NULL && keys[k - 1] != NULL &&
            strcmp(keys[k], keys[k - 1]) == 0) {
            dups++;
            if (sample == NULL) {
                sample = keys[k];
            }
        }
    }
    struct velo_textbuf nm = {0};
    for (size_t k = 0; k < n; k++) {
        velo_textbuf_add(&nm, "%s%s", k ? ", " : "", names[k]);
    }
    set_text(&r->name, "no_duplicates by %s", nm.p ? nm.p : "(all)");
    set_text(&r->observed, "%zu duplicate(s)%s%s", dups,
             sample ? ", e.g. " : "", sample ? sample : "");
    set_text(&r->expected, "0 duplicates");
    r->passed = dups == 0;
    if (!r->passed) {
        set_text(&r->message, "%zu row(s) repeat a key (%s)", dups,
                 sample ? sample : "");
    }
    for (size_t k = 0; k < nk; k++) {
        free(keys[k]);
    }
    free(keys);
    velo_textbuf_free(&nm);
}

/* ---- join_coverage ------------------------------------------------------ */

int velo_tk_key_set_has(char **sorted, size_t n, const char *k)
{
    return bsearch(&k, sorted, n, sizeof(*sorted), cmp_str) != NULL;
}

/* Sorted text of one column of rows (NULLs left out). */
char **velo_tk_column_keys(json_t *rows, const char *field, size_t *n)
{
    size_t cap = json_array_size(rows), i;
    char **k = calloc(cap + 1, sizeof(*k));
    json_t *row;
    *n = 0;
    json_array_foreach(rows, i, row)
    {
        json_t *v = json_object_get(row, field);
        if (k == NULL || v == NULL || json_is_null(v) || retracted(row)) {
            continue;
        }
        k[(*n)++] = velo_tk_cell_text(v);
    }
    if (k != NULL) {
        qsort(k, *n, sizeof(*k), cmp_str);
    }
    return k;
}

void velo_tk_keys_free(char **k, size_t n)
{
    for (size_t i = 0; k != NULL && i < n; i++) {
        free(k[i]);
    }
    free(k);
}

static void check_join(struct velo_tk_ctx *c, struct velo_tk_result *r,
                       const struct velo_tk_output *out,
                       const struct velo_tk_yaml *a)
{
    const char *ls = ystr(velo_tk_yaml_get(a, "left_source"));
    const char *rs = ystr(velo_tk_yaml_get(a, "right_source"));
    const char *jk = ystr(velo_tk_yaml_get(a, "join_key"));
    const char *lk = ystr(velo_tk_yaml_get(a, "left_key"));
    const char *rk = ystr(velo_tk_yaml_get(a, "right_key"));
    lk = lk != NULL ? lk : jk;
    rk = rk != NULL ? rk : jk;
    double min_rate = 0;
    int has_min =
        velo_tk_yaml_num(velo_tk_yaml_get(a, "min_match_rate"), &min_rate) == 0;
    set_text(&r->name, "join_coverage %s -> %s on %s", ls ? ls : "?",
             rs ? rs : "?", lk ? lk : "?");
    const struct velo_tk_source_data *L = velo_tk_ctx_source(c, ls);
    const struct velo_tk_source_data *R = velo_tk_ctx_source(c, rs);
    if (L == NULL || R == NULL || lk == NULL || rk == NULL) {
        r->passed = 0;
        set_text(&r->message, "%s",
                 lk == NULL || rk == NULL ? "join_coverage needs join_key (or "
                                            "left_key and right_key)"
                                          : "left_source and right_source must "
                                            "name generated inputs");
        set_text(&r->observed, "n/a");
        return;
    }
    size_t nr = 0, no = 0;
    char **rkeys = velo_tk_column_keys(R->rows, rk, &nr);
    /* When the output carries the key, a left row counts only if its key
     * reached the output (an inner join drops the others). */
    char **okeys = NULL;
    const char *ocol = NULL;
    if (json_array_size(out->rows) > 0 &&
        json_object_get(json_array_get(out->rows, 0), lk) != NULL) {
        ocol = lk;
    } else if (json_array_size(out->rows) > 0 &&
               json_object_get(json_array_get(out->rows, 0), rk) != NULL) {
        ocol = rk;
    }
    if (ocol != NULL) {
        okeys = velo_tk_column_keys(out->rows, ocol, &no);
    }
    size_t left = 0, matched = 0, i;
    json_t *row;
    json_array_foreach(L->rows, i, row)
    {
        left++;
        json_t *v = json_object_get(row, lk);
        if (v == NULL || json_is_null(v)) {
            continue;
        }
        char *t = velo_tk_cell_text(v);
        if (t != NULL && velo_tk_key_set_has(rkeys, nr, t) &&
            (okeys == NULL || velo_tk_key_set_has(okeys, no, t))) {
            matched++;
        }
        free(t);
    }
    if (okeys == NULL && json_array_size(out->rows) == 0) {
        matched = 0; /* nothing came out, so nothing matched */
    }
    double rate = left ? (double)matched / (double)left : 0;
    set_text(&r->observed, "%.3f (%zu of %zu left rows matched)", rate, matched,
             left);
    if (has_min) {
        set_text(&r->expected, ">= %g", min_rate);
        r->passed = rate >= min_rate;
    } else {
        set_text(&r->expected, "> 0");
        r->passed = rate > 0;
    }
    if (!r->passed) {
        set_text(&r->message, "match rate %.3f, expected %s", rate,
                 r->expected);
    }
    velo_tk_keys_free(rkeys, nr);
    velo_tk_keys_free(okeys, no);
}

/* ---- file_matches ------------------------------------------------------- */

static json_t *load_expected(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open %s", path);
        return NULL;
    }
    json_t *rows = json_array();
    int csv =
        strlen(path) > 4 && strcasecmp(path + strlen(path) - 4, ".csv") == 0;
    char *line = NULL, *hdr = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
            line[--n] = '\0';
        }
        if (n == 0) {
            continue;
        }
        if (!csv) {
            json_t *o = json_loads(line, 0, NULL);
            if (!json_is_object(o)) {
                json_decref(o);
                snprintf(err, errlen, "%s: a line is not a JSON object", path);
                json_decref(rows);
                rows = NULL;
                break;
            }
            json_array_append_new(rows, o);
            continue;
        }
        if (hdr == NULL) {
            hdr = strdup(line);
            continue;
        }
        json_t *o = json_object();
        char *hs = NULL, *vs = NULL;
        char *hcopy = strdup(hdr);
        char *h = strtok_r(hcopy, ",", &hs);
        char *v = strtok_r(line, ",", &vs);
        while (h != NULL) {
            char *end;
            double d = v != NULL ? strtod(v, &end) : 0;
            if (v == NULL || v[0] == '\0') {
                json_object_set_new(o, h, json_null());
            } else if (*end == '\0') {
                json_object_set_new(o, h, json_real(d));
            } else {
                json_object_set_new(o, h, json_string(v));
            }
            h = strtok_r(NULL, ",", &hs);
            v = strtok_r(NULL, ",", &vs);
        }
        free(hcopy);
        json_array_append_new(rows, o);
    }
    free(line);
    free(hdr);
    fclose(f);
    return rows;
}

static int cells_equal(json_t *a, json_t *b, double tol)
{
    double x, y;
    if (json_is_number(a) && json_is_number(b)) {
        x = json_number_value(a);
        y = json_number_value(b);
        return fabs(x - y) <= tol + 1e-12 * fmax(fabs(x), fabs(y));
    }
    if (json_is_number(a) != json_is_number(b) && cell_number(a, &x) == 0 &&
        cell_number(b, &y) == 0) {
        return fabs(x - y) <= tol + 1e-12 * fmax(fabs(x), fabs(y));
    }
    return json_equal(a, b);
}

static int rows_equal(json_t *got, json_t *want, double tol)
{
    const char *k;
    json_t *v;
    json_object_foreach(want, k, v)
    {
        json_t *g = json_object_get(got, k);
        if (g == NULL || !cells_equal(g, v, tol)) {
            return 0;
        }
    }
    size_t ng = json_object_size(got) - (json_object_get(got, "_op") != NULL &&
                                         json_object_get(want, "_op") == NULL);
    return ng == json_object_size(want);
}

static int row_cmp(const void *a, const void *b)
{
    char *x = json_dumps(*(json_t *const *)a, JSON_SORT_KEYS | JSON_COMPACT);
    char *y = json_dumps(*(json_t *const *)b, JSON_SORT_KEYS | JSON_COMPACT);
    int r = strcmp(x ? x : "", y ? y : "");
    free(x);
    free(y);
    return r;
}

/* Rows in a canonical order: numbers rounded so tolerance survives the
 * sort is not attempted; ordering is by exact text, then each pair is
 * compared with the tolerance. */
static json_t **sorted_rows(json_t *rows, size_t *n, int sort)
{
    *n = json_array_size(rows);
    json_t **v = calloc(*n + 1, sizeof(*v));
    for (size_t i = 0; v != NULL && i < *n; i++) {
        v[i] = json_array_get(rows, i);
        if (json_object_get(v[i], "_op") != NULL) {
            v[i] = json_deep_copy(v[i]);
            json_object_del(v[i], "_op");
        } else {
            json_incref(v[i]);
        }
    }
    if (v != NULL && sort) {
        qsort(v, *n, sizeof(*v), row_cmp);
    }
    return v;
}

static void check_file(struct velo_tk_ctx *c, struct velo_tk_result *r,
                       const struct velo_tk_output *out,
                       const struct velo_tk_yaml *a)
{
    const char *file = ystr(velo_tk_yaml_get(a, "file"));
    const struct velo_tk_yaml *io = velo_tk_yaml_get(a, "ignore_order");
    int ignore = io != NULL && ystr(io) != NULL &&
                 (strcmp(io->str, "true") == 0 || strcmp(io->str, "yes") == 0);
    double tol = 0;
    velo_tk_yaml_num(velo_tk_yaml_get(a, "tolerance"), &tol);
    char *path = velo_tk_path_join(c->spec_dir, file ? file : "");
    char err[300];
    set_text(&r->name, "file_matches %s%s", file ? file : "?",
             ignore ? " (any order)" : "");
    json_t *want = path != NULL ? load_expected(path, err, sizeof(err)) : NULL;
    free(path);
    if (want == NULL) {
        r->passed = 0;
        set_text(&r->observed, "n/a");
        set_text(&r->message, "%s", err);
        return;
    }
    size_t ng, nw;
    json_t *live = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(out->rows, i, row)
    {
        if (!retracted(row)) {
            json_array_append(live, row);
        }
    }
    json_t **g = sorted_rows(live, &ng, ignore);
    json_t **w = sorted_rows(want, &nw, ignore);
    size_t bad = (size_t)-1;
    for (size_t k = 0; g != NULL && w != NULL && k < ng && k < nw; k++) {
        if (!rows_equal(g[k], w[k], tol)) {
            bad = k;
            break;
        }
    }
    set_text(&r->expected, "%zu row(s)%s", nw,
             tol > 0 ? " within tolerance" : "");
    r->passed = ng == nw && bad == (size_t)-1;
    if (r->passed) {
        set_text(&r->observed, "%zu row(s) match", ng);
    } else if (bad != (size_t)-1) {
        char *gs = json_dumps(g[bad], JSON_SORT_KEYS | JSON_COMPACT);
        char *ws = json_dumps(w[bad], JSON_SORT_KEYS | JSON_COMPACT);
        set_text(&r->observed, "row %zu differs", bad + 1);
        set_text(&r->message, "row %zu: got %s, expected %s", bad + 1,
                 gs ? gs : "?", ws ? ws : "?");
        free(gs);
        free(ws);
    } else {
        set_text(&r->observed, "%zu row(s)", ng);
        set_text(&r->message, "got %zu row(s), expected %zu", ng, nw);
    }
    for (size_t k = 0; g != NULL && k < ng; k++) {
        json_decref(g[k]);
    }
    for (size_t k = 0; w != NULL && k < nw; k++) {
        json_decref(w[k]);
    }
    free(g);
    free(w);
    json_decref(live);
    json_decref(want);
}

/* ---- metric ------------------------------------------------------------- */

/* The sum of the series of `name` in a Prometheus exposition whose labels
 * include every label given. @return series matched. */
size_t velo_tk_metric_value(const char *text, const char *name,
                            const struct velo_tk_yaml *labels, double *sum)
{
    size_t nl = strlen(name), found = 0;
    *sum = 0;
    for (const char *p = text; p != NULL && *p != '\0';) {
        const char *eol = strchr(p, '\n');
        size_t len = eol != NULL ? (size_t)(eol - p) : strlen(p);
        if (p[0] != '#' && len > nl && strncmp(p, name, nl) == 0 &&
            (p[nl] == ' ' || p[nl] == '{')) {
            char *line = strndup(p, len);
            int ok = line != NULL;
            for (size_t i = 0; ok && labels != NULL &&
                               labels->kind == VELO_TK_YMAP && i < labels->n;
                 i++) {
                char want[512];
                snprintf(want, sizeof(want), "%s=\"%s\"", labels->keys[i],
                         ystr(labels->items[i]) ? labels->items[i]->str : "");
                const char *close = strchr(line, '}');
                const char *hit = strstr(line, want);
                ok = hit != NULL && close != NULL && hit < close;
            }
            if (ok) {
                const char *sp = strrchr(line, ' ');
                if (sp != NULL) {
                    *sum += strtod(sp + 1, NULL);
                    found++;
                }
            }
            free(line);
        }
        p = eol != NULL ? eol + 1 : NULL;
    }
    return found;
}

/* ---- Dispatch ----------------------------------------------------------- */

void velo_tk_check(struct velo_tk_ctx *c, struct velo_tk_report *rep,
                   const struct velo_tk_output *out,
                   const struct velo_tk_assertion *as)
{
    const struct velo_tk_yaml *a = as->y;
    struct velo_tk_result *r = velo_tk_report_add(rep, out->name, as->type);
    if (r == NULL) {
        return;
    }
    const char *t = as->type;
    const struct velo_tk_run_stats *st = &c->stats;
    if (strcmp(t, "record_count") == 0) {
        numeric(r, a, (double)live_rows(out), "rows", VELO_TK_GT, "0", NULL, 0);
    } else if (strcmp(t, "schema_contains") == 0) {
        check_schema_contains(r, out, a);
    } else if (strcmp(t, "no_nulls") == 0) {
        check_no_nulls(r, out, a, NULL, 0);
    } else if (strcmp(t, "field_in_set") == 0) {
        check_in_set(r, out, a);
    } else if (strcmp(t, "field_range") == 0) {
        check_range(r, out, a);
    } else if (strcmp(t, "no_duplicates") == 0) {
        check_no_duplicates(r, out, a);
    } else if (strcmp(t, "aggregate_check") == 0) {
        const char *expr = ystr(velo_tk_yaml_get(a, "expression"));
        char sql[2048], err[512] = "";
        double v = 0;
        snprintf(sql, sizeof(sql), "SELECT %s AS v FROM 'file://%s'",
                 expr ? expr : "NULL", out->path ? out->path : "");
        int rc = -1;
        if (live_rows(out) == 0) {
            snprintf(err, sizeof(err),
                     "the output is empty; there is "
                     "nothing to aggregate");
        } else if (c->scalar_sql != NULL) {
            rc = c->scalar_sql(c->scalar_arg, sql, &v, err, sizeof(err));
        }
        if (rc != 0) {
            set_text(&r->name, "aggregate_check %s", expr ? expr : "?");
            set_text(&r->observed, "n/a");
            set_text(&r->message, "cannot evaluate %s: %s", expr ? expr : "?",
                     err);
            r->passed = 0;
        } else {
            numeric(r, a, v, "", VELO_TK_GT, "0", NULL, 0);
            set_text(&r->name, "aggregate_check %s %s", expr,
                     r->expected ? r->expected : "");
        }
    } else if (strcmp(t, "join_coverage") == 0) {
        check_join(c, r, out, a);
    } else if (strcmp(t, "execution_time") == 0) {
        numeric(r, a, st->elapsed_s * 1000, "ms", VELO_TK_LT, "30000", "max_ms",
                VELO_TK_LT);
    } else if (strcmp(t, "throughput") == 0) {
        double rps = st->elapsed_s > 0 ? (double)st->records_in / st->elapsed_s
                                       : (double)st->records_in * 1e6;
        numeric(r, a, rps, "records/s", VELO_TK_GT, "0",
                "min_records_per_second", VELO_TK_GT);
    } else if (strcmp(t, "memory") == 0) {
        numeric(r, a, (double)st->peak_rss / (1024.0 * 1024.0), "MiB",
                VELO_TK_LT, "1024", "max_mb", VELO_TK_LT);
    } else if (strcmp(t, "dlq_count") == 0) {
        numeric(r, a, (double)st->dead_lettered, "", VELO_TK_EQ, "0", NULL, 0);
    } else if (strcmp(t, "late_count") == 0) {
        numeric(r, a, (double)st->late_rows, "", VELO_TK_EQ, "0", NULL, 0);
    } else if (strcmp(t, "file_matches") == 0) {
        check_file(c, r, out, a);
    } else if (strcmp(t, "metric") == 0) {
        const char *name = ystr(velo_tk_yaml_get(a, "name"));
        double v = 0;
        size_t found =
            st->metrics_text != NULL && name != NULL
                ? velo_tk_metric_value(st->metrics_text, name,
                                       velo_tk_yaml_get(a, "labels"), &v)
                : 0;
        if (found == 0) {
            set_text(&r->name, "metric %s", name ? name : "?");
            set_text(&r->observed, "no such series");
            set_text(&r->message,
                     "metric '%s' has no series after the run "
                     "(is it a -- @metric: annotation of this "
                     "query, and did a row update it?)",
                     name ? name : "?");
            r->passed = 0;
        } else {
            numeric(r, a, v, "", VELO_TK_GT, "0", NULL, 0);
            set_text(&r->name, "metric %s %s", name,
                     r->expected ? r->expected : "");
        }
    }
}

void velo_tk_check_defaults(struct velo_tk_ctx *c, struct velo_tk_report *rep,
                            const struct velo_tk_output *out,
                            const char *const *keys, size_t nkeys, double max_s)
{
    struct velo_tk_result *r =
        velo_tk_report_add(rep, out->name, "record_count");
    if (r != NULL) {
        static const struct velo_tk_yaml none = {0};
        numeric(r, &none, (double)live_rows(out), "rows", VELO_TK_GT, "0", NULL,
                0);
    }
    const char *cols[1];
    if (nkeys == 0 && json_array_size(out->rows) > 0 &&
        output_columns(out, cols, 1) == 1) {
        keys = cols;
        nkeys = 1;
    }
    if (nkeys > 0 && (r = velo_tk_report_add(rep, out->name, "no_nulls"))) {
        check_no_nulls(r, out, NULL, (const char **)keys, nkeys);
    }
    if ((r = velo_tk_report_add(rep, out->name, "execution_time")) != NULL) {
        struct velo_tk_yaml lim = {0};
        char buf[32];
        snprintf(buf, sizeof(buf), "%.0f", max_s * 1000);
        lim.kind = VELO_TK_YSCALAR;
        lim.str = buf;
        struct velo_tk_yaml map = {0};
        char *k[1] = {"max_ms"};
        struct velo_tk_yaml *it[1] = {&lim};
        map.kind = VELO_TK_YMAP;
        map.n = 1;
        map.keys = k;
        map.items = it;
        numeric(r, &map, c->stats.elapsed_s * 1000, "ms", VELO_TK_LT, "0",
                "max_ms", VELO_TK_LT);
    }
}

const struct velo_tk_output *velo_tk_ctx_output(const struct velo_tk_ctx *c,
                                                const char *name)
{
    for (size_t i = 0; name != NULL && i < c->noutputs; i++) {
        if (strcasecmp(c->outputs[i].name, name) == 0) {
            return &c->outputs[i];
        }
    }
    return NULL;
}

const struct velo_tk_source_data *
velo_tk_ctx_source(const struct velo_tk_ctx *c, const char *name)
{
    for (size_t i = 0; name != NULL && i < c->nsources; i++) {
        if (strcasecmp(c->sources[i].name, name) == 0) {
            return &c->sources[i];
        }
    }
    return NULL;
}
