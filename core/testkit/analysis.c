/*
 * Rule-based failure analysis. Each rule looks at a failed result, the
 * statement's SQL text, the generated inputs and the run's stats, and
 * attaches evidence a person can check:
 *
 *   join_no_matches      sample keys of both sides and their overlap;
 *   filter_removes_all   each WHERE predicate's selectivity over the
 *                        input, measured by running it in the engine;
 *   window_never_closes  the watermark against the last event times;
 *   nulls_origin         the SELECT expression that produced a NULL
 *                        column and which of its inputs held NULLs.
 *
 * The SQL is only scanned (keywords at parenthesis depth 0, outside
 * quotes and comments); the measurements come from the engine and the
 * data, never from guesses.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "formats/format.h"
#include "testkit/testkit-internal.h"

#define KEYS_SHOWN 5
#define MAX_PREDICATES 16

/* ---- Scanning SQL text -------------------------------------------------- */

/* Offsets of `kw` as a whole word at depth 0 outside quotes/comments,
 * from `from`. @return offset or -1. */
static long find_kw(const char *s, size_t from, const char *kw)
{
    size_t kl = strlen(kw);
    int depth = 0;
    for (size_t i = from; s[i] != '\0'; i++) {
        char c = s[i];
        if (c == '\'' || c == '"' || c == '`') {
            char q = c;
            for (i++; s[i] != '\0' && s[i] != q; i++) {
            }
            if (s[i] == '\0') {
                return -1;
            }
            continue;
        }
        if (c == '-' && s[i + 1] == '-') {
            while (s[i] != '\0' && s[i] != '\n') {
                i++;
            }
            if (s[i] == '\0') {
                return -1;
            }
            continue;
        }
        if (c == '(') {
            depth++;
        } else if (c == ')') {
            depth--;
        } else if (depth == 0 && strncasecmp(s + i, kw, kl) == 0 &&
                   (i == 0 ||
                    !(isalnum((unsigned char)s[i - 1]) || s[i - 1] == '_')) &&
                   !(isalnum((unsigned char)s[i + kl]) || s[i + kl] == '_')) {
            return (long)i;
        }
    }
    return -1;
}

static char *trimmed(const char *s, size_t n)
{
    while (n > 0 && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n > 0 && (isspace((unsigned char)s[n - 1]) || s[n - 1] == ';')) {
        n--;
    }
    return strndup(s, n);
}

/* The clause that starts after `kw` and ends at the next clause keyword. */
static char *clause(const char *sql, const char *kw)
{
    long at = find_kw(sql, 0, kw);
    if (at < 0) {
        return NULL;
    }
    size_t start = (size_t)at + strlen(kw);
    static const char *const ends[] = {"GROUP", "WINDOW", "EMIT",  "ORDER",
                                       "LIMIT", "HAVING", "UNION", "WITH",
                                       "INTO",  NULL};
    size_t end = strlen(sql);
    for (size_t i = 0; ends[i] != NULL; i++) {
        long e = find_kw(sql, start, ends[i]);
        if (e >= 0 && (size_t)e < end) {
            end = (size_t)e;
        }
    }
    const char *semi = strchr(sql + start, ';');
    if (semi != NULL && (size_t)(semi - sql) < end) {
        end = (size_t)(semi - sql);
    }
    return trimmed(sql + start, end - start);
}

/* Split at top-level separators (a keyword such as AND, or ","). */
static size_t split_top(const char *s, const char *sep, char **out, size_t max)
{
    size_t n = 0, start = 0;
    int word = isalpha((unsigned char)sep[0]);
    for (;;) {
        long at;
        if (word) {
            at = find_kw(s, start, sep);
        } else {
            /* commas: reuse the keyword scanner by scanning char by char */
            at = -1;
            int depth = 0;
            for (size_t i = start; s[i] != '\0'; i++) {
                if (s[i] == '\'') {
                    for (i++; s[i] != '\0' && s[i] != '\''; i++) {
                    }
                    if (s[i] == '\0') {
                        break;
                    }
                } else if (s[i] == '(') {
                    depth++;
                } else if (s[i] == ')') {
                    depth--;
                } else if (depth == 0 && s[i] == sep[0]) {
                    at = (long)i;
                    break;
                }
            }
        }
        size_t end = at < 0 ? strlen(s) : (size_t)at;
        if (n < max) {
            out[n++] = trimmed(s + start, end - start);
        }
        if (at < 0) {
            break;
        }
        start = (size_t)at + strlen(sep);
    }
    return n;
}

/* FROM/JOIN sources with their aliases: "orders o" -> {orders, o}. */
struct srcref {
    char name[128], alias[128];
};

static size_t sources_of(const char *sql, struct srcref *out, size_t max)
{
    size_t n = 0;
    static const char *const kws[] = {"FROM", "JOIN", NULL};
    for (size_t k = 0; kws[k] != NULL; k++) {
        long at = 0;
        while ((at = find_kw(sql, (size_t)at, kws[k])) >= 0 && n < max) {
            const char *p = sql + at + strlen(kws[k]);
            while (isspace((unsigned char)*p)) {
                p++;
            }
            struct srcref *r = &out[n];
            memset(r, 0, sizeof(*r));
            size_t i = 0;
            if (*p == '\'') {
                for (p++; *p != '\0' && *p != '\'' && i + 1 < sizeof(r->name);
                     p++) {
                    r->name[i++] = *p;
                }
                if (*p == '\'') {
                    p++;
                }
            } else {
                while ((isalnum((unsigned char)*p) || *p == '_') &&
                       i + 1 < sizeof(r->name)) {
                    r->name[i++] = *p++;
                }
            }
            while (isspace((unsigned char)*p)) {
                p++;
            }
            if (strncasecmp(p, "AS", 2) == 0 && isspace((unsigned char)p[2])) {
                p += 2;
                while (isspace((unsigned char)*p)) {
                    p++;
                }
            }
            static const char *const notalias[] = {
                "WHERE", "JOIN",  "LEFT",   "RIGHT", "INNER",  "FULL",
                "ON",    "GROUP", "WINDOW", "EMIT",  "ORDER",  "LIMIT",
                "CROSS", "UNION", "WITH",   "INTO",  "HAVING", NULL};
            size_t a = 0;
            const char *q = p;
            while ((isalnum((unsigned char)*q) || *q == '_') &&
                   a + 1 < sizeof(r->alias)) {
                r->alias[a++] = *q++;
            }
            for (size_t w = 0; notalias[w] != NULL; w++) {
                if (strcasecmp(r->alias, notalias[w]) == 0) {
                    r->alias[0] = '\0';
                }
            }
            if (r->name[0] != '\0') {
                n++;
            }
            at += (long)strlen(kws[k]);
        }
    }
    return n;
}

/* Remove "alias." qualifiers outside quotes so a predicate can run on
 * one source alone. malloc'd. */
static char *unqualify(const char *pred, const struct srcref *refs,
                       size_t nrefs)
{
    size_t len = strlen(pred);
    char *out = malloc(len + 1);
    if (out == NULL) {
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        if (pred[i] == '\'') {
            out[o++] = pred[i++];
            while (i < len && pred[i] != '\'') {
                out[o++] = pred[i++];
            }
            if (i < len) {
                out[o++] = pred[i++];
            }
            continue;
        }
        int skipped = 0;
        if (i == 0 ||
            !(isalnum((unsigned char)pred[i - 1]) || pred[i - 1] == '_')) {
            for (size_t r = 0; r < nrefs && !skipped; r++) {
                const char *names[2] = {refs[r].alias, refs[r].name};
                for (int k = 0; k < 2 && !skipped; k++) {
                    size_t nl = strlen(names[k]);
                    if (nl > 0 && strncasecmp(pred + i, names[k], nl) == 0 &&
                        pred[i + nl] == '.') {
                        i += nl + 1;
                        skipped = 1;
                    }
                }
            }
        }
        if (!skipped) {
            out[o++] = pred[i++];
        }
    }
    out[o] = '\0';
    return out;
}

/* ---- Evidence ----------------------------------------------------------- */

static json_t *evidence(struct velo_tk_result *r, const char *rule,
                        const char *summary)
{
    if (r->evidence == NULL) {
        r->evidence = json_array();
    }
    json_t *e = json_object();
    json_object_set_new(e, "rule", json_string(rule));
    json_object_set_new(e, "summary", json_string(summary));
    json_t *d = json_array();
    json_object_set_new(e, "details", d);
    json_array_append_new(r->evidence, e);
    return d;
}

static void detail(json_t *d, const char *fmt, ...) VELO_PRINTF(2, 3);
static void detail(json_t *d, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    json_array_append_new(d, json_string(buf));
}

/* Distinct sorted keys (in place; frees duplicates). @return count. */
static size_t distinct(char **k, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (o > 0 && strcmp(k[o - 1], k[i]) == 0) {
            free(k[i]);
            continue;
        }
        k[o++] = k[i];
    }
    return o;
}

static void sample_line(struct velo_textbuf *tb, char **k, size_t n)
{
    for (size_t i = 0; i < n && i < KEYS_SHOWN; i++) {
        velo_textbuf_add(tb, "%s%s", i ? ", " : "", k[i]);
    }
    if (n > KEYS_SHOWN) {
        velo_textbuf_add(tb, ", ... (%zu distinct)", n);
    }
    if (n == 0) {
        velo_textbuf_add(tb, "(none)");
    }
}

static void join_evidence(struct velo_tk_result *r,
                          const struct velo_tk_source_data *L, const char *lk,
                          const struct velo_tk_source_data *R, const char *rk)
{
    size_t nl, nr;
    char **lkeys = velo_tk_column_keys(L->rows, lk, &nl);
    char **rkeys = velo_tk_column_keys(R->rows, rk, &nr);
    nl = distinct(lkeys, nl);
    nr = distinct(rkeys, nr);
    size_t overlap = 0;
    struct velo_textbuf common = {0};
    for (size_t i = 0; i < nl; i++) {
        if (velo_tk_key_set_has(rkeys, nr, lkeys[i])) {
            if (overlap < KEYS_SHOWN) {
                velo_textbuf_add(&common, "%s%s", overlap ? ", " : "",
                                 lkeys[i]);
            }
            overlap++;
        }
    }
    char sum[512];
    snprintf(sum, sizeof(sum),
             "%s.%s and %s.%s share %zu of %zu distinct left keys%s", L->name,
             lk, R->name, rk, overlap, nl,
             overlap == 0 ? ": the join cannot match anything" : "");
    json_t *d = evidence(r, "join_no_matches", sum);
    struct velo_textbuf a = {0}, b = {0};
    sample_line(&a, lkeys, nl);
    sample_line(&b, rkeys, nr);
    detail(d, "sample %s.%s: %s", L->name, lk, a.p ? a.p : "");
    detail(d, "sample %s.%s: %s", R->name, rk, b.p ? b.p : "");
    detail(d, "overlap: %zu key(s)%s%s", overlap, overlap ? ": " : "",
           common.p ? common.p : "");
    if (overlap == 0) {
        detail(d,
               "give %s.%s 'references: { source: %s, field: %s, "
               "match_rate: 0.9 }' in its schema so generated keys "
               "exist on both sides, or check the ON condition",
               L->name, lk, R->name, rk);
    }
    velo_textbuf_free(&a);
    velo_textbuf_free(&b);
    velo_textbuf_free(&common);
    velo_tk_keys_free(lkeys, nl);
    velo_tk_keys_free(rkeys, nr);
}

/* ON a.x = b.y of the statement, resolved to generated sources. */
static int join_from_sql(const struct velo_tk_ctx *c, const char *sql,
                         const struct velo_tk_source_data **L, char *lk,
                         const struct velo_tk_source_data **R, char *rk)
{
    char *on = clause(sql, "ON");
    if (on == NULL) {
        return -1;
    }
    struct srcref refs[8];
    size_t nrefs = sources_of(sql, refs, 8);
    char a1[128], f1[128], a2[128], f2[128];
    int ok = sscanf(on,
                    "%127[A-Za-z0-9_] . %127[A-Za-z0-9_] = "
                    "%127[A-Za-z0-9_] . %127[A-Za-z0-9_]",
                    a1, f1, a2, f2) == 4;
    if (!ok) {
        ok = sscanf(on,
                    "%127[A-Za-z0-9_].%127[A-Za-z0-9_] = "
                    "%127[A-Za-z0-9_].%127[A-Za-z0-9_]",
                    a1, f1, a2, f2) == 4;
    }
    free(on);
    if (!ok) {
        return -1;
    }
    *L = *R = NULL;
    for (size_t i = 0; i < nrefs; i++) {
        const struct velo_tk_source_data *s =
            velo_tk_ctx_source(c, refs[i].name);
        if (strcasecmp(refs[i].alias, a1) == 0 ||
            strcasecmp(refs[i].name, a1) == 0) {
            *L = s;
        }
        if (strcasecmp(refs[i].alias, a2) == 0 ||
            strcasecmp(refs[i].name, a2) == 0) {
            *R = s;
        }
    }
    snprintf(lk, 128, "%s", f1);
    snprintf(rk, 128, "%s", f2);
    return *L != NULL && *R != NULL ? 0 : -1;
}

static void rule_filter(struct velo_tk_ctx *c, struct velo_tk_result *r,
                        const struct velo_tk_output *out)
{
    char *where = clause(out->sql, "WHERE");
    if (where == NULL) {
        return;
    }
    struct srcref refs[8];
    size_t nrefs = sources_of(out->sql, refs, 8);
    const struct velo_tk_source_data *src =
        nrefs > 0 ? velo_tk_ctx_source(c, refs[0].name) : NULL;
    char *preds[MAX_PREDICATES];
    size_t np = split_top(where, "AND", preds, MAX_PREDICATES);
    size_t total = src != NULL ? json_array_size(src->rows) : 0;
    char sum[512];
    snprintf(sum, sizeof(sum),
             "the WHERE clause keeps no row of %s; "
             "selectivity of each predicate over the "
             "%zu generated rows:",
             src != NULL ? src->name : "the input", total);
    json_t *d = evidence(r, "filter_removes_all", sum);
    for (size_t i = 0; i < np; i++) {
        char *p = unqualify(preds[i], refs, nrefs);
        char sql[2048], err[256] = "";
        double n = 0;
        int rc = -1;
        if (src != NULL && c->scalar_sql != NULL && p != NULL) {
            snprintf(sql, sizeof(sql),
                     "SELECT COUNT(*) AS v FROM 'file://%s' WHERE %s",
                     src->path, p);
            rc = c->scalar_sql(c->scalar_arg, sql, &n, err, sizeof(err));
            if (rc == 1) {
                /* COUNT(*) over nothing emits no row: none passed */
                n = 0;
                rc = 0;
            }
        } else {
            snprintf(err, sizeof(err), "its input is not a generated source");
        }
        if (rc == 0) {
            detail(d, "%s: %.0f of %zu rows pass (%.1f%%)%s", preds[i], n,
                   total, total ? 100.0 * n / (double)total : 0.0,
                   n == 0 ? " <- removes every row" : "");
        } else {
            detail(d, "%s: could not be measured alone (%s)", preds[i], err);
        }
        free(p);
        free(preds[i]);
    }
    free(where);
}

static int64_t last_event_time(const struct velo_tk_source_data *s,
                               const char **field)
{
    int64_t best = INT64_MIN;
    for (size_t f = 0; s->schema != NULL && f < s->schema->n; f++) {
        if (s->schema->fields[f].type != VELO_TK_TIMESTAMP) {
            continue;
        }
        size_t i;
        json_t *row;
        json_array_foreach(s->rows, i, row)
        {
            const char *t = json_string_value(
                json_object_get(row, s->schema->fields[f].name));
            int64_t us;
            if (t != NULL &&
                velo_parse_timestamp(t, strlen(t), &us) == VELO_OK &&
                us > best) {
                best = us;
                *field = s->schema->fields[f].name;
            }
        }
    }
    return best;
}

static void rule_window(struct velo_tk_ctx *c, struct velo_tk_result *r,
                        const struct velo_tk_output *out)
{
    long w = find_kw(out->sql, 0, "WINDOW");
    if (w < 0) {
        return;
    }
    char win[200];
    const char *p = out->sql + w;
    size_t n = strcspn(p, ")");
    snprintf(win, sizeof(win), "%.*s)", (int)(n < 190 ? n : 190), p);
    char wm[64] = "none", mx[64] = "none";
    if (c->stats.watermark_us != INT64_MIN) {
        velo_format_timestamp(c->stats.watermark_us, wm, sizeof(wm));
    }
    if (c->stats.max_event_time_us != INT64_MIN) {
        velo_format_timestamp(c->stats.max_event_time_us, mx, sizeof(mx));
    }
    char sum[512];
    snprintf(sum, sizeof(sum),
             "no window of %s closed: the watermark reached %s; the newest "
             "event time the job saw was %s",
             win, wm, mx);
    json_t *d = evidence(r, "window_never_closes", sum);
    for (size_t i = 0; i < c->nsources; i++) {
        const char *field = NULL;
        int64_t t = last_event_time(&c->sources[i], &field);
        if (t != INT64_MIN) {
            char ts[64];
            velo_format_timestamp(t, ts, sizeof(ts));
            detail(d, "last event time in %s.%s: %s", c->sources[i].name, field,
                   ts);
        }
    }
    if (c->stats.watermark_us == INT64_MIN) {
        detail(d, "no watermark was ever produced: check the event-time "
                  "column property ('<source>.event.time.field') and that "
                  "its values parse as timestamps");
    } else {
        detail(d, "a window closes when the watermark passes its end; "
                  "generate a longer time span (event time 'rate' and "
                  "more records) or a smaller window");
    }
}

/* The SELECT item that names `col`: "expr AS col" or a bare column. */
static char *select_expr(const char *sql, const char *col)
{
    long s = find_kw(sql, 0, "SELECT");
    long f = s >= 0 ? find_kw(sql, (size_t)s, "FROM") : -1;
    if (s < 0 || f < 0) {
        return NULL;
    }
    char *list = strndup(sql + s + 6, (size_t)(f - s - 6));
    char *items[128];
    size_t n = list != NULL ? split_top(list, ",", items, 128) : 0;
    char *found = NULL;
    for (size_t i = 0; i < n; i++) {
        long as = find_kw(items[i], 0, "AS");
        const char *name;
        size_t elen;
        if (as >= 0) {
            name = items[i] + as + 2;
            while (isspace((unsigned char)*name)) {
                name++;
            }
            elen = (size_t)as;
        } else {
            name = strrchr(items[i], '.');
            name = name != NULL ? name + 1 : items[i];
            elen = strlen(items[i]);
        }
        if (found == NULL && strcasecmp(name, col) == 0) {
            found = trimmed(items[i], elen);
        }
        free(items[i]);
    }
    free(list);
    return found;
}

static void rule_nulls(struct velo_tk_ctx *c, struct velo_tk_result *r,
                       const struct velo_tk_output *out)
{
    /* The null columns are listed in the message: "NULL in a: 3, b: 1". */
    const char *m = r->message != NULL ? strstr(r->message, "NULL in ") : NULL;
    if (m == NULL) {
        return;
    }
    char *cols = strdup(m + 8);
    char *save = NULL;
    for (char *tok = strtok_r(cols, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok)) {
            tok++;
        }
        char *colon = strchr(tok, ':');
        if (colon != NULL) {
            *colon = '\0';
        }
        char *expr = select_expr(out->sql, tok);
        char sum[512];
        if (expr == NULL) {
            snprintf(sum, sizeof(sum),
                     "column '%s' is NULL in some rows; "
                     "it is not a named SELECT item "
                     "(SELECT * passes input NULLs on)",
                     tok);
        } else {
            snprintf(sum, sizeof(sum), "column '%s' is produced by: %s", tok,
                     expr);
        }
        json_t *d = evidence(r, "nulls_origin", sum);
        int any = 0;
        /* Inputs named in the expression (or the column itself) that had
         * NULLs in the generated data. */
        const char *scan = expr != NULL ? expr : tok;
        for (size_t s = 0; s < c->nsources; s++) {
            const struct velo_tk_source_data *src = &c->sources[s];
            for (size_t f = 0; src->schema != NULL && f < src->schema->n; f++) {
                const struct velo_tk_field *fl = &src->schema->fields[f];
                const char *hit = strcasestr(scan, fl->name);
                size_t nl = strlen(fl->name);
                if (hit == NULL ||
                    (hit > scan &&
                     (isalnum((unsigned char)hit[-1]) || hit[-1] == '_')) ||
                    isalnum((unsigned char)hit[nl]) || hit[nl] == '_') {
                    continue;
                }
                size_t nulls = 0, i;
                json_t *row;
                json_array_foreach(src->rows, i, row)
                {
                    json_t *v = json_object_get(row, fl->name);
                    nulls += v == NULL || json_is_null(v);
                }
                if (nulls > 0) {
                    any = 1;
                    detail(d,
                           "input %s.%s is NULL in %zu of %zu generated "
                           "rows (null_rate %g)",
                           src->name, fl->name, nulls,
                           json_array_size(src->rows), fl->null_rate);
                }
            }
        }
        if (!any) {
            detail(d, "no input it reads held NULLs: the expression itself "
                      "yields NULL (an outer join without a match, a CASE "
                      "without ELSE, TRY_CAST, division by zero or a NULL "
                      "function result)");
        } else {
            detail(d, "wrap it in COALESCE(..., default) or filter the "
                      "NULL inputs, or set null_rate: 0 if the input never "
                      "has them");
        }
        free(expr);
    }
    free(cols);
}

void velo_tk_analyse(struct velo_tk_ctx *c, struct velo_tk_report *rep)
{
    for (size_t i = 0; i < rep->n; i++) {
        struct velo_tk_result *r = &rep->r[i];
        if (r->passed) {
            continue;
        }
        const struct velo_tk_output *out = velo_tk_ctx_output(c, r->output);
        if (strcmp(r->type, "join_coverage") == 0) {
            /* name: "join_coverage L -> R on key" */
            char ls[128], rs[128], key[128];
            if (sscanf(r->name, "join_coverage %127s -> %127s on %127s", ls, rs,
                       key) == 3) {
                const struct velo_tk_source_data *L = velo_tk_ctx_source(c, ls);
                const struct velo_tk_source_data *R = velo_tk_ctx_source(c, rs);
                char lk[128], rk[128];
                const struct velo_tk_source_data *L2, *R2;
                if (out != NULL && out->sql != NULL &&
                    join_from_sql(c, out->sql, &L2, lk, &R2, rk) == 0 &&
                    L2 == L) {
                    join_evidence(r, L, lk, R, rk);
                } else if (L != NULL && R != NULL) {
                    join_evidence(r, L, key, R, key);
                }
            }
            continue;
        }
        if (out == NULL || out->sql == NULL) {
            continue;
        }
        if (strcmp(r->type, "no_nulls") == 0) {
            rule_nulls(c, r, out);
            continue;
        }
        if (strcmp(r->type, "record_count") != 0 ||
            json_array_size(out->rows) != 0) {
            continue;
        }
        /* Nothing came out: try each explanation that applies. */
        const struct velo_tk_source_data *L, *R;
        char lk[128], rk[128];
        if (find_kw(out->sql, 0, "JOIN") >= 0 &&
            join_from_sql(c, out->sql, &L, lk, &R, rk) == 0) {
            join_evidence(r, L, lk, R, rk);
        }
        rule_filter(c, r, out);
        rule_window(c, r, out);
    }
}
