/*
 * core/testkit: YAML trees, schema checking (a table of bad schemas with
 * the error each must give), the generator (determinism by seed, every
 * distribution and constraint checked statistically, references at the
 * requested match rate, event-time disorder), spec checking, every
 * assertion passing and failing, the reports, the failure analysis, and
 * the gen:// source read by a real job.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "exec/job.h"
#include "formats/format.h"
#include "testkit/testkit-internal.h"
#include "testutil.h"

static char *dir;

static int suite_init(void)
{
    dir = tu_tmpdir();
    return dir == NULL;
}

static int suite_clean(void)
{
    tu_rmrf(dir);
    free(dir);
    return 0;
}

static struct velo_tk_schema *schema_text(const char *text, char *err,
                                          size_t errlen)
{
    struct velo_tk_yaml *y =
        velo_tk_yaml_parse(text, strlen(text), "t.yaml", err, errlen);
    if (y == NULL) {
        return NULL;
    }
    struct velo_tk_schema *s = velo_tk_schema_parse(y, "t.yaml", err, errlen);
    velo_tk_yaml_free(y);
    if (s != NULL && s->name[0] == '\0') {
        free(s->name);
        s->name = strdup("t");
    }
    return s;
}

/* Generate n rows of a schema text as parsed JSON objects. */
static json_t *gen_rows(const char *text, int64_t n, uint64_t seed,
                        struct velo_tk_pools *pools)
{
    char err[512];
    struct velo_tk_schema *s = schema_text(text, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct velo_tk_gen *g = velo_tk_gen_create(s, seed, 1767225600000000LL,
                                               pools, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CU_ASSERT_EQUAL(velo_tk_gen_write(g, n, VELO_TK_JSONL, f, NULL), 0);
    fclose(f);
    json_t *rows = json_array();
    char *save = NULL;
    for (char *l = strtok_r(buf, "\n", &save); l != NULL;
         l = strtok_r(NULL, "\n", &save)) {
        json_t *o = json_loads(l, 0, NULL);
        CU_ASSERT_PTR_NOT_NULL(o);
        json_array_append_new(rows, o);
    }
    free(buf);
    velo_tk_gen_destroy(g);
    velo_tk_schema_free(s);
    CU_ASSERT_EQUAL(json_array_size(rows), (size_t)n);
    return rows;
}

static char *gen_bytes(const char *text, int64_t n, uint64_t seed, int fmt)
{
    char err[512];
    struct velo_tk_schema *s = schema_text(text, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct velo_tk_gen *g =
        velo_tk_gen_create(s, seed, 1767225600000000LL, NULL, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    velo_tk_gen_write(g, n, fmt, f, NULL);
    fclose(f);
    velo_tk_gen_destroy(g);
    velo_tk_schema_free(s);
    return buf;
}

/* ---- YAML and schema errors -------------------------------------------- */

static void test_yaml(void)
{
    char err[256];
    const char *t = "a: 1\nb: [x, \"2\"]\nc:\n  d: true\n";
    struct velo_tk_yaml *y =
        velo_tk_yaml_parse(t, strlen(t), "t", err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(y);
    double v;
    CU_ASSERT_EQUAL(velo_tk_yaml_num(velo_tk_yaml_get(y, "a"), &v), 0);
    CU_ASSERT_EQUAL(v, 1);
    const struct velo_tk_yaml *b = velo_tk_yaml_get(y, "b");
    CU_ASSERT_EQUAL(b->kind, VELO_TK_YSEQ);
    CU_ASSERT_EQUAL(b->n, 2);
    CU_ASSERT(b->items[1]->quoted);
    CU_ASSERT_EQUAL(velo_tk_yaml_get(y, "c")->line, 4);
    velo_tk_yaml_free(y);
    const char *bad = "a: [1, 2\nb: 3\n";
    CU_ASSERT_PTR_NULL(
        velo_tk_yaml_parse(bad, strlen(bad), "bad.yaml", err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "bad.yaml:"));
}

static const struct {
    const char *yaml;
    const char *error;
} bad_schemas[] = {
    {"fields:\n  - name: a\n    type: strng\n", "unknown type 'strng'"},
    {"fields:\n  - name: a\n    type: integer\n    constraints: "
     "{ distrbution: normal }\n",
     "unknown constraint 'distrbution'"},
    {"fields:\n  - name: a\n    type: string\n    constraints: { enum: [x, "
     "y, z], weights: [1, 2] }\n",
     "weights has 2 entries for 3 enum values"},
    {"fields:\n  - name: a\n    type: float\n    constraints: "
     "{ distribution: poisson }\n",
     "unknown distribution 'poisson'"},
    {"fields:\n  - name: a\n    type: string\n    constraints: "
     "{ pattern: \"(ab|cd)\" }\n",
     "groups and alternation"},
    {"fields:\n  - name: a\n    type: integer\n    derived: \"b + 1\"\n  - "
     "name: b\n    type: integer\n",
     "comes later"},
    {"fields:\n  - name: a\n    type: decimal\n    precision: 30\n",
     "precision <= 18"},
    {"fields:\n  - name: a\n    type: integer\n    references: nodot\n",
     "write source.field"},
    {"fields:\n  - name: a\n    type: integer\n    constraints: { min: 5, "
     "max: 1 }\n",
     "greater than max"},
    {"fields:\n  - name: a\n    type: integer\n    null_rate: 1.5\n",
     "between 0 and 1"},
    {"fields:\n  - name: a\n    type: integer\n  - name: a\n    type: "
     "string\n",
     "defined twice"},
    {"fields:\n  - name: a\n    type: float\n    constraints: "
     "{ distribution: zipf }\n",
     "zipf draws ranks"},
    {"schema:\n  name: x\n", "no fields"},
    {"fields:\n  - name: t\n    type: timestamp\n    constraints: { start: "
     "yesterday }\n",
     "start: use"},
    {"fields:\n  - name: a\n    type: integer\n    colour: red\n",
     "unknown key 'colour'"},
};

static void test_schema_errors(void)
{
    for (size_t i = 0; i < sizeof(bad_schemas) / sizeof(*bad_schemas); i++) {
        char err[1024] = "";
        struct velo_tk_schema *s =
            schema_text(bad_schemas[i].yaml, err, sizeof(err));
        CU_ASSERT_PTR_NULL(s);
        if (strstr(err, bad_schemas[i].error) == NULL) {
            fprintf(stderr, "case %zu: got '%s', want '%s'\n", i, err,
                    bad_schemas[i].error);
        }
        CU_ASSERT_PTR_NOT_NULL(strstr(err, bad_schemas[i].error));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.yaml"));
        velo_tk_schema_free(s);
    }
}

/* ---- Generation --------------------------------------------------------- */

static const char mixed[] =
    "schema:\n  name: trades\nfields:\n"
    "  - name: id\n    type: integer\n    constraints: { sequence: true, "
    "min: 100 }\n"
    "  - name: price\n    type: decimal\n    precision: 8\n    scale: 2\n"
    "    constraints: { min: 10, max: 20 }\n"
    "  - name: sym\n    type: string\n    constraints: { enum: [A, B] }\n"
    "  - name: total\n    type: float\n    derived: \"round(price * 2, "
    "1) + id\"\n";

static void test_determinism(void)
{
    char *a = gen_bytes(mixed, 500, 7, VELO_TK_JSONL);
    char *b = gen_bytes(mixed, 500, 7, VELO_TK_JSONL);
    char *c = gen_bytes(mixed, 500, 8, VELO_TK_JSONL);
    CU_ASSERT_STRING_EQUAL(a, b);
    CU_ASSERT(strcmp(a, c) != 0);
    /* A new field does not change the others' values. */
    char more[sizeof(mixed) + 100];
    snprintf(more, sizeof(more), "%s  - name: extra\n    type: boolean\n",
             mixed);
    json_t *r1 = gen_rows(mixed, 50, 7, NULL);
    json_t *r2 = gen_rows(more, 50, 7, NULL);
    for (size_t i = 0; i < 50; i++) {
        json_t *x = json_array_get(r1, i), *y = json_array_get(r2, i);
        CU_ASSERT(json_equal(json_object_get(x, "price"),
                             json_object_get(y, "price")));
        CU_ASSERT(
            json_equal(json_object_get(x, "sym"), json_object_get(y, "sym")));
    }
    /* Sequence, decimal scale, derived. */
    for (size_t i = 0; i < 50; i++) {
        json_t *x = json_array_get(r1, i);
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(x, "id")),
                        100 + (json_int_t)i);
        double p = json_number_value(json_object_get(x, "price"));
        CU_ASSERT(p >= 10 && p <= 20);
        CU_ASSERT(fabs(p * 100 - round(p * 100)) < 1e-6);
        double want = round(p * 2 * 10) / 10 + (double)(100 + i);
        CU_ASSERT(fabs(json_number_value(json_object_get(x, "total")) - want) <
                  1e-6);
    }
    json_decref(r1);
    json_decref(r2);
    /* CSV: a header and the same values. */
    char *csv = gen_bytes(mixed, 3, 7, VELO_TK_CSV);
    CU_ASSERT_EQUAL(strncmp(csv, "id,price,sym,total\n100,", 23), 0);
    free(csv);
    free(a);
    free(b);
    free(c);
}

static void mean_sd(json_t *rows, const char *f, int logged, double *m,
                    double *sd)
{
    double s = 0, s2 = 0;
    size_t n = json_array_size(rows), i;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        double v = json_number_value(json_object_get(r, f));
        if (logged) {
            v = log(v);
        }
        s += v;
        s2 += v * v;
    }
    *m = s / (double)n;
    *sd = sqrt(s2 / (double)n - *m * *m);
}

static void test_distributions(void)
{
    static const char text[] =
        "fields:\n"
        "  - name: n\n    type: float\n    constraints: { distribution: "
        "normal, mean: 50, stddev: 10 }\n"
        "  - name: ln\n    type: float\n    constraints: { distribution: "
        "log_normal, mean: 1, stddev: 0.5 }\n"
        "  - name: z\n    type: integer\n    constraints: { min: 1, max: "
        "1000, distribution: zipf, s: 1.5 }\n"
        "  - name: e\n    type: string\n    constraints: { enum: [a, b, c], "
        "weights: [0.6, 0.3, 0.1] }\n"
        "  - name: w\n    type: float\n    constraints: { min: 0, max: 100, "
        "distribution: random_walk, step: 1 }\n"
        "  - name: u\n    type: integer\n    constraints: { min: 10, max: 20 "
        "}\n"
        "  - name: p\n    type: string\n    constraints: { pattern: "
        "\"^[A-Z]{2}\\\\d{3}-[a-c]?x+$\" }\n"
        "  - name: maybe\n    type: integer\n    null_rate: 0.25\n";
    const size_t N = 100000;
    json_t *rows = gen_rows(text, (int64_t)N, 3, NULL);
    double m, sd;
    mean_sd(rows, "n", 0, &m, &sd);
    CU_ASSERT(fabs(m - 50) < 0.2);
    CU_ASSERT(fabs(sd - 10) < 0.2);
    mean_sd(rows, "ln", 1, &m, &sd);
    CU_ASSERT(fabs(m - 1) < 0.02);
    CU_ASSERT(fabs(sd - 0.5) < 0.02);
    size_t z1 = 0, z2 = 0, counts[3] = {0}, nulls = 0, i;
    size_t ucount[11] = {0};
    double prev = -1, maxstep = 0, wmin = 1e9, wmax = -1e9;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        json_int_t z = json_integer_value(json_object_get(r, "z"));
        z1 += z == 1;
        z2 += z == 2;
        CU_ASSERT(z >= 1 && z <= 1000);
        const char *e = json_string_value(json_object_get(r, "e"));
        counts[e[0] - 'a']++;
        double w = json_number_value(json_object_get(r, "w"));
        if (prev >= 0) {
            maxstep = fmax(maxstep, fabs(w - prev));
        }
        prev = w;
        wmin = fmin(wmin, w);
        wmax = fmax(wmax, w);
        json_int_t u = json_integer_value(json_object_get(r, "u"));
        CU_ASSERT(u >= 10 && u <= 20);
        if (u >= 10 && u <= 20) {
            ucount[u - 10]++;
        }
        const char *p = json_string_value(json_object_get(r, "p"));
        size_t pl = strlen(p);
        CU_ASSERT(pl >= 7 && p[0] >= 'A' && p[0] <= 'Z' && p[2] >= '0' &&
                  p[2] <= '9' && p[5] == '-' && p[pl - 1] == 'x');
        nulls += json_is_null(json_object_get(r, "maybe"));
    }
    double H = 0;
    for (int k = 1; k <= 1000; k++) {
        H += pow(k, -1.5);
    }
    CU_ASSERT(fabs((double)z1 / N - 1 / H) < 0.01);
    CU_ASSERT(fabs((double)z2 / N - pow(2, -1.5) / H) < 0.01);
    CU_ASSERT(z1 > 2 * z2); /* skewed toward rank 1 */
    CU_ASSERT(fabs((double)counts[0] / N - 0.6) < 0.01);
    CU_ASSERT(fabs((double)counts[1] / N - 0.3) < 0.01);
    CU_ASSERT(fabs((double)counts[2] / N - 0.1) < 0.01);
    CU_ASSERT(wmin >= 0 && wmax <= 100);
    CU_ASSERT(maxstep < 8);      /* normal steps of stddev 1 */
    CU_ASSERT(wmax - wmin > 20); /* it does wander */
    for (int k = 0; k <= 10; k++) {
        CU_ASSERT(fabs((double)ucount[k] / N - 1.0 / 11) < 0.01);
    }
    CU_ASSERT(fabs((double)nulls / N - 0.25) < 0.01);
    json_decref(rows);
}

static void test_event_time(void)
{
    static const char text[] =
        "fields:\n  - name: ts\n    type: timestamp\n    constraints: { "
        "start: \"2026-01-01T00:00:00Z\", rate: 100, out_of_order: 0.05, "
        "max_delay: 2s }\n"
        "  - name: t2\n    type: timestamp\n    constraints: { range: "
        "relative, start: \"-1h\", end: \"now\" }\n";
    const size_t N = 20000;
    json_t *rows = gen_rows(text, (int64_t)N, 11, NULL);
    int64_t maxseen = INT64_MIN, first = 0, last = 0;
    size_t ooo = 0, i;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        const char *s = json_string_value(json_object_get(r, "ts"));
        int64_t us;
        CU_ASSERT_EQUAL_FATAL(velo_parse_timestamp(s, strlen(s), &us), VELO_OK);
        if (i == 0) {
            first = us;
        }
        last = us > last ? us : last;
        ooo += us < maxseen;
        maxseen = us > maxseen ? us : maxseen;
        const char *s2 = json_string_value(json_object_get(r, "t2"));
        CU_ASSERT_EQUAL(velo_parse_timestamp(s2, strlen(s2), &us), VELO_OK);
        /* now is 2026-01-01T00:00:00Z in gen_rows */
        CU_ASSERT(us >= 1767225600000000LL - 3600000000LL &&
                  us <= 1767225600000000LL);
    }
    CU_ASSERT(first <= 1767225600000000LL);
    /* 100 per second: N records span N/100 seconds. */
    CU_ASSERT(llabs((last - 1767225600000000LL) - (int64_t)(N - 1) * 10000) <
              20000);
    CU_ASSERT(fabs((double)ooo / N - 0.05) < 0.01);
    json_decref(rows);
}

static void test_references(void)
{
    struct velo_tk_pools *pools = velo_tk_pools_create();
    const char *keys[100];
    char buf[100][8];
    for (int i = 0; i < 100; i++) {
        snprintf(buf[i], sizeof(buf[i]), "%d", i + 1);
        keys[i] = buf[i];
    }
    CU_ASSERT_EQUAL(velo_tk_pools_put(pools, "customers", "id", keys, 100), 0);
    static const char text[] =
        "fields:\n  - name: cid\n    type: integer\n    references: { "
        "source: customers, field: id, match_rate: 0.7 }\n";
    const size_t N = 20000;
    json_t *rows = gen_rows(text, (int64_t)N, 5, pools);
    size_t hit = 0, i;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        json_int_t v = json_integer_value(json_object_get(r, "cid"));
        hit += v >= 1 && v <= 100;
    }
    CU_ASSERT(fabs((double)hit / N - 0.7) < 0.015);
    json_decref(rows);
    /* A reference to a pool that was not generated names it. */
    char err[512];
    struct velo_tk_schema *s =
        schema_text("fields:\n  - name: x\n    type: string\n    references: "
                    "other.key\n",
                    err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_PTR_NULL(velo_tk_gen_create(s, 1, 0, pools, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "other.key"));
    velo_tk_schema_free(s);
    velo_tk_pools_free(pools);
}

static void test_parse_time(void)
{
    int64_t us;
    int rel;
    CU_ASSERT_EQUAL(velo_tk_parse_time("-1h", &us, &rel), 0);
    CU_ASSERT(rel && us == -3600000000LL);
    CU_ASSERT_EQUAL(velo_tk_parse_time("now", &us, &rel), 0);
    CU_ASSERT(rel && us == 0);
    CU_ASSERT_EQUAL(velo_tk_parse_time("2026-01-01T00:00:00Z", &us, &rel), 0);
    CU_ASSERT(!rel && us == 1767225600000000LL);
    CU_ASSERT_EQUAL(velo_tk_parse_time("1000", &us, &rel), 0);
    CU_ASSERT(!rel && us == 1000000);
    CU_ASSERT_EQUAL(velo_tk_parse_time("soon", &us, &rel), -1);
    char path[256];
    int64_t rec = 0;
    uint64_t seed = 0;
    CU_ASSERT_EQUAL(velo_tk_gen_uri("gen:///a/b.yaml?records=5&seed=9", path,
                                    sizeof(path), &rec, &seed),
                    0);
    CU_ASSERT_STRING_EQUAL(path, "/a/b.yaml");
    CU_ASSERT(rec == 5 && seed == 9);
    CU_ASSERT_EQUAL(velo_tk_gen_uri("gen:///a.yaml?colour=1", path,
                                    sizeof(path), &rec, &seed),
                    -1);
}

/* ---- Operators and assertions -------------------------------------------- */

static struct velo_tk_yaml *ydoc(const char *t)
{
    char err[256];
    struct velo_tk_yaml *y =
        velo_tk_yaml_parse(t, strlen(t), "a", err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(y);
    return y;
}

static void test_operators(void)
{
    struct velo_tk_yaml *y = ydoc("n: 5\nr: [1, 10]\nl: [2, 3]\n");
    const struct velo_tk_yaml *n = velo_tk_yaml_get(y, "n");
    const struct velo_tk_yaml *rg = velo_tk_yaml_get(y, "r");
    const struct velo_tk_yaml *l = velo_tk_yaml_get(y, "l");
    char err[128];
    CU_ASSERT_EQUAL(velo_tk_compare(5, VELO_TK_EQ, n, err, 128), 1);
    CU_ASSERT_EQUAL(velo_tk_compare(4, VELO_TK_EQ, n, err, 128), 0);
    CU_ASSERT_EQUAL(velo_tk_compare(4, VELO_TK_NE, n, err, 128), 1);
    CU_ASSERT_EQUAL(velo_tk_compare(5, VELO_TK_NE, n, err, 128), 0);
    CU_ASSERT_EQUAL(velo_tk_compare(6, VELO_TK_GT, n, err, 128), 1);
    CU_ASSERT_EQUAL(velo_tk_compare(5, VELO_TK_GT, n, err, 128), 0);
    CU_ASSERT_EQUAL(velo_tk_compare(4, VELO_TK_LT, n, err, 128), 1);
    CU_ASSERT_EQUAL(velo_tk_compare(5, VELO_TK_LT, n, err, 128), 0);
    CU_ASSERT_EQUAL(velo_tk_compare(10, VELO_TK_BETWEEN, rg, err, 128), 1);
    CU_ASSERT_EQUAL(velo_tk_compare(11, VELO_TK_BETWEEN, rg, err, 128), 0);
    CU_ASSERT_EQUAL(velo_tk_compare(3, VELO_TK_IN, l, err, 128), 1);
    CU_ASSERT_EQUAL(velo_tk_compare(4, VELO_TK_IN, l, err, 128), 0);
    CU_ASSERT_EQUAL(velo_tk_compare(4, VELO_TK_BETWEEN, n, err, 128), -1);
    for (int op = 0; op < 6; op++) {
        CU_ASSERT_EQUAL(velo_tk_op_parse(velo_tk_op_name(op)), op);
    }
    CU_ASSERT_EQUAL(velo_tk_op_parse("greater"), -1);
    velo_tk_yaml_free(y);
}

/* One assertion from YAML text against ctx/out: @return passed. */
static int run_assert(struct velo_tk_ctx *c, struct velo_tk_report *rep,
                      const struct velo_tk_output *out, const char *yaml)
{
    struct velo_tk_yaml *y = ydoc(yaml);
    struct velo_tk_assertion a = {(char *)velo_tk_yaml_get(y, "type")->str, y,
                                  1};
    velo_tk_check(c, rep, out, &a);
    velo_tk_yaml_free(y);
    return rep->r[rep->n - 1].passed;
}

static void test_assertions(void)
{
    json_t *rows = json_loads(
        "[{\"k\":1,\"s\":\"a\",\"v\":1.5},{\"k\":2,\"s\":\"b\",\"v\":2.5},"
        "{\"k\":3,\"s\":\"a\",\"v\":null}]",
        0, NULL);
    struct velo_tk_output out = {"o", rows, NULL, NULL, -1};
    json_t *lrows =
        json_loads("[{\"id\":1},{\"id\":2},{\"id\":3},{\"id\":4}]", 0, NULL);
    json_t *rrows = json_loads("[{\"id\":1},{\"id\":2},{\"id\":3}]", 0, NULL);
    struct velo_tk_source_data srcs[2] = {{"l", "l.jsonl", lrows, NULL},
                                          {"r", "r.jsonl", rrows, NULL}};
    struct velo_tk_ctx c = {0};
    c.outputs = &out;
    c.noutputs = 1;
    c.sources = srcs;
    c.nsources = 2;
    c.stats.elapsed_s = 2.0;
    c.stats.records_in = 1000;
    c.stats.peak_rss = 100 * 1024 * 1024;
    c.stats.dead_lettered = 2;
    c.stats.late_rows = 0;
    c.stats.metrics_text = "# HELP x\nvelo_x_total{query=\"q\",side=\"a\"} "
                           "3\nvelo_x_total{query=\"q\",side=\"b\"} 4\n";
    c.spec_dir = dir;
    char golden[512];
    snprintf(golden, sizeof(golden), "%s/golden.jsonl", dir);
    const char *g = "{\"k\":2,\"s\":\"b\",\"v\":2.5000001}\n"
                    "{\"k\":1,\"s\":\"a\",\"v\":1.5}\n"
                    "{\"k\":3,\"s\":\"a\",\"v\":null}\n";
    tu_write_file(golden, g, strlen(g));
    struct velo_tk_report rep = {0};
    static const struct {
        const char *yaml;
        int pass;
    } cases[] = {
        {"type: record_count\noperator: equals\nexpected: 3\n", 1},
        {"type: record_count\noperator: greater_than\nexpected: 3\n", 0},
        {"type: record_count\noperator: between\nexpected: [1, 3]\n", 1},
        {"type: record_count\noperator: in\nexpected: [4, 5]\n", 0},
        {"type: record_count\noperator: not_equals\nexpected: 3\n", 0},
        {"type: record_count\noperator: less_than\nexpected: 4\n", 1},
        {"type: schema_contains\nfields: [k, s]\n", 1},
        {"type: schema_contains\nfields: [k, missing]\n", 0},
        {"type: no_nulls\nfields: [k, s]\n", 1},
        {"type: no_nulls\nfields: [v]\n", 0},
        {"type: field_in_set\nfield: s\nvalues: [a, b]\n", 1},
        {"type: field_in_set\nfield: s\nvalues: [a]\n", 0},
        {"type: field_range\nfield: v\nmin: 1\nmax: 3\n", 1},
        {"type: field_range\nfield: v\nmin: 2\n", 0},
        {"type: no_duplicates\nkey: k\n", 1},
        {"type: no_duplicates\nkey: s\n", 0},
        {"type: join_coverage\nleft_source: l\nright_source: r\njoin_key: "
         "id\nmin_match_rate: 0.75\n",
         1},
        {"type: join_coverage\nleft_source: l\nright_source: r\njoin_key: "
         "id\nmin_match_rate: 0.8\n",
         0},
        {"type: execution_time\nmax_ms: 2500\n", 1},
        {"type: execution_time\nmax_ms: 1000\n", 0},
        {"type: throughput\nmin_records_per_second: 400\n", 1},
        {"type: throughput\noperator: greater_than\nexpected: 600\n", 0},
        {"type: memory\nmax_mb: 200\n", 1},
        {"type: memory\nmax_mb: 50\n", 0},
        {"type: dlq_count\noperator: equals\nexpected: 2\n", 1},
        {"type: dlq_count\n", 0},
        {"type: late_count\n", 1},
        {"type: late_count\noperator: greater_than\nexpected: 0\n", 0},
        {"type: file_matches\nfile: golden.jsonl\nignore_order: "
         "true\ntolerance: 0.001\n",
         1},
        {"type: file_matches\nfile: golden.jsonl\n", 0},
        {"type: metric\nname: velo_x_total\noperator: equals\nexpected: 7\n",
         1},
        {"type: metric\nname: velo_x_total\nlabels: { side: b }\noperator: "
         "equals\nexpected: 3\n",
         0},
        {"type: metric\nname: velo_missing\n", 0},
        {"type: aggregate_check\nexpression: SUM(v)\n", 0}, /* no engine */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        int got = run_assert(&c, &rep, &out, cases[i].yaml);
        if (got != cases[i].pass) {
            fprintf(stderr, "case %zu (%s): got %d; observed %s, message %s\n",
                    i, cases[i].yaml, got, rep.r[rep.n - 1].observed,
                    rep.r[rep.n - 1].message ? rep.r[rep.n - 1].message : "");
        }
        CU_ASSERT_EQUAL(got, cases[i].pass);
        CU_ASSERT_PTR_NOT_NULL(rep.r[rep.n - 1].observed);
    }
    /* Observed values are in the results. */
    CU_ASSERT_STRING_EQUAL(rep.r[0].observed, "3 rows");
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.r[17].observed, "0.750"));
    /* Defaults: not empty, no NULL keys, time bound. */
    struct velo_tk_report d = {0};
    const char *keys[] = {"v"};
    velo_tk_check_defaults(&c, &d, &out, keys, 1, 30);
    CU_ASSERT_EQUAL(d.n, 3);
    CU_ASSERT(d.r[0].passed && !d.r[1].passed && d.r[2].passed);
    velo_tk_report_free(&d);

    /* Reports. */
    rep.query = strdup("q.sql");
    char *x = velo_tk_report_junit(&rep);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    char want[128];
    snprintf(want, sizeof(want), "tests=\"%zu\" failures=\"%zu\"", rep.n,
             velo_tk_report_failed(&rep));
    CU_ASSERT_PTR_NOT_NULL(strstr(x, want));
    CU_ASSERT_PTR_NOT_NULL(strstr(x, "<failure type=\"record_count\""));
    free(x);
    char *js = velo_tk_report_json(&rep);
    json_t *o = json_loads(js, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "failed")),
                    (json_int_t)velo_tk_report_failed(&rep));
    json_decref(o);
    free(js);
    char *txt = velo_tk_report_text(&rep);
    CU_ASSERT_PTR_NOT_NULL(strstr(txt, "FAIL  record_count greater_than 3"));
    CU_ASSERT_PTR_NOT_NULL(strstr(txt, "Result: FAILED"));
    free(txt);
    velo_tk_report_free(&rep);
    json_decref(rows);
    json_decref(lrows);
    json_decref(rrows);
}

/* ---- Analysis ----------------------------------------------------------- */

static void test_analysis(void)
{
    char err[512];
    struct velo_tk_schema *ls = schema_text(
        "fields:\n  - name: cid\n    type: integer\n  - name: disc\n    "
        "type: float\n    null_rate: 0.5\n",
        err, sizeof(err));
    struct velo_tk_schema *ts = schema_text(
        "fields:\n  - name: ts\n    type: timestamp\n", err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(ls);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ts);
    json_t *lrows = json_loads(
        "[{\"cid\":1,\"disc\":null},{\"cid\":2,\"disc\":0.1}]", 0, NULL);
    json_t *rrows = json_loads("[{\"cid\":7},{\"cid\":8}]", 0, NULL);
    json_t *trows = json_loads("[{\"ts\":\"2026-01-01T00:00:09Z\"}]", 0, NULL);
    struct velo_tk_source_data srcs[3] = {{"orders", "o", lrows, ls},
                                          {"customers", "c", rrows, NULL},
                                          {"ticks", "t", trows, ts}};
    json_t *empty = json_array();
    json_t *nulls = json_loads("[{\"cid\":1,\"saving\":null}]", 0, NULL);
    struct velo_tk_output outs[3] = {
        {"joined", empty, NULL,
         "CREATE STREAM joined AS SELECT o.cid FROM orders o JOIN customers "
         "c ON o.cid = c.cid;",
         -1},
        {"withnull", nulls, NULL,
         "CREATE STREAM withnull AS SELECT cid, 10 * disc AS saving FROM "
         "orders;",
         -1},
        {"win", empty, NULL,
         "SELECT COUNT(*) AS n FROM ticks WINDOW TUMBLING(INTERVAL '1' "
         "HOUR) GROUP BY x;",
         0}};
    struct velo_tk_ctx c = {0};
    c.outputs = outs;
    c.noutputs = 3;
    c.sources = srcs;
    c.nsources = 3;
    c.stats.watermark_us = 1767225605000000LL;
    c.stats.max_event_time_us = 1767225609000000LL;
    struct velo_tk_report rep = {0};
    run_assert(&c, &rep, &outs[0], "type: record_count\n");
    run_assert(&c, &rep, &outs[1], "type: no_nulls\nfields: [saving]\n");
    run_assert(&c, &rep, &outs[2], "type: record_count\n");
    velo_tk_analyse(&c, &rep);
    char *s = json_dumps(rep.r[0].evidence, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "join_no_matches"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "share 0 of 2"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "sample customers.cid: 7, 8"));
    free(s);
    s = json_dumps(rep.r[1].evidence, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "nulls_origin"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "produced by: 10 * disc"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "orders.disc is NULL in 1 of 2"));
    free(s);
    s = json_dumps(rep.r[2].evidence, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "window_never_closes"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "2026-01-01T00:00:05"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "ticks.ts: 2026-01-01T00:00:09"));
    free(s);
    velo_tk_report_free(&rep);
    json_decref(lrows);
    json_decref(rrows);
    json_decref(trows);
    json_decref(empty);
    json_decref(nulls);
    velo_tk_schema_free(ls);
    velo_tk_schema_free(ts);
}

static void test_spec_errors(void)
{
    static const struct {
        const char *yaml;
        const char *error;
    } cases[] = {
        {"queries:\n  - name: a\n    assertions:\n      - type: recordcount\n",
         "unknown assertion type 'recordcount'"},
        {"queries:\n  - name: a\n    assertions:\n      - type: "
         "record_count\n        operator: bigger\n        expected: 1\n",
         "unknown operator 'bigger'"},
        {"queries:\n  - name: a\n    assertions:\n      - type: "
         "record_count\n        operator: between\n        expected: 1\n",
         "a list [low, high]"},
        {"queries:\n  - name: a\n    assertions:\n      - type: "
         "field_in_set\n        field: x\n",
         "needs 'values:'"},
        {"queries:\n  - assertions: []\n", "needs 'name:'"},
        {"nothing: here\n", "under 'queries:'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        char path[512], err[512] = "";
        snprintf(path, sizeof(path), "%s/spec%zu.yaml", dir, i);
        tu_write_file(path, cases[i].yaml, strlen(cases[i].yaml));
        struct velo_tk_spec *s = velo_tk_spec_load(path, err, sizeof(err));
        CU_ASSERT_PTR_NULL(s);
        if (strstr(err, cases[i].error) == NULL) {
            fprintf(stderr, "spec case %zu: '%s'\n", i, err);
        }
        CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].error));
        velo_tk_spec_free(s);
    }
}

/* ---- gen:// in a real job ----------------------------------------------- */

static void test_gen_source(void)
{
    char schema[512], cap[512], sql[1400];
    snprintf(schema, sizeof(schema), "%s/g.schema.yaml", dir);
    const char *y = "fields:\n  - name: id\n    type: integer\n    "
                    "constraints: { sequence: true, min: 1 }\n  - name: s\n"
                    "    type: string\n    constraints: { enum: [x, y] }\n";
    tu_write_file(schema, y, strlen(y));
    snprintf(cap, sizeof(cap), "%s/cap", dir);
    snprintf(sql, sizeof(sql),
             "SELECT COUNT(*) AS n, SUM(id) AS total FROM "
             "'gen://%s?records=2500&seed=4';",
             schema);
    struct velo_job_opts o = {0};
    o.filename = "t";
    o.stdout_format = VELO_FORMAT_JSON;
    o.stdout_fd = 1;
    o.progress_fd = -1;
    o.capture_dir = cap;
    tu_rmrf(cap);
    CU_ASSERT_EQUAL_FATAL(mkdir(cap, 0755), 0);
    struct velo_sql_diags d = {0};
    struct velo_job *j = velo_job_prepare(sql, strlen(sql), &o, &d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_EQUAL(velo_job_run(j, NULL), VELO_OK);
    struct velo_job_stats st;
    velo_job_get_stats(j, &st);
    CU_ASSERT_EQUAL(st.records_in, 2500);
    velo_job_destroy(j);
    velo_sql_diags_free(&d);
    char out[600];
    snprintf(out, sizeof(out), "%s/select-1.jsonl", cap);
    char *text = tu_read_file(out, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    char *lastl = text;
    for (char *p = text; *p != '\0'; p++) {
        if (*p == '\n' && p[1] != '\0') {
            lastl = p + 1;
        }
    }
    json_t *o2 = json_loads(lastl, JSON_DISABLE_EOF_CHECK, NULL);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(o2, "n")), 2500);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(o2, "total")),
                    2500 * 2501 / 2);
    json_decref(o2);
    free(text);
    /* A bad URI is refused with the form to use. */
    snprintf(sql, sizeof(sql), "SELECT * FROM 'gen://%s?rows=5';", schema);
    struct velo_sql_diags d2 = {0};
    j = velo_job_prepare(sql, strlen(sql), &o, &d2);
    CU_ASSERT_PTR_NULL(j);
    velo_job_destroy(j);
    velo_sql_diags_free(&d2);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 1;
    }
    CU_pSuite s = CU_add_suite("testkit", suite_init, suite_clean);
    CU_add_test(s, "yaml trees", test_yaml);
    CU_add_test(s, "schema errors", test_schema_errors);
    CU_add_test(s, "determinism by seed", test_determinism);
    CU_add_test(s, "distributions", test_distributions);
    CU_add_test(s, "event time", test_event_time);
    CU_add_test(s, "references at a match rate", test_references);
    CU_add_test(s, "times and gen URIs", test_parse_time);
    CU_add_test(s, "operators", test_operators);
    CU_add_test(s, "assertions and reports", test_assertions);
    CU_add_test(s, "failure analysis", test_analysis);
    CU_add_test(s, "spec errors", test_spec_errors);
    CU_add_test(s, "gen:// source", test_gen_source);
    return tu_run_all();
}
