/*
 * `velo run --dashboard`'s data: /api/job as built from a real job run
 * over a CSV file. The last output rows per statement (oldest first,
 * values typed, long text cut, the ring keeping only the newest), the
 * operators with their statements, the @metric series, and the job's
 * counters; the page itself is checked in a browser by
 * tests/integration/test-dashboard.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "exec/job.h"
#include "obs/annotations.h"
#include "obs/jobmetrics.h"
#include "obs/metrics.h"
#include "testutil.h"

static char *dir;
static char csv[512];

static int suite_init(void)
{
    dir = tu_tmpdir();
    if (dir == NULL) {
        return 1;
    }
    /* 30 rows (more than the 20 kept), one with a 300-byte note. */
    char data[8192];
    size_t o = (size_t)snprintf(data, sizeof(data), "id,sym,px,note\n");
    for (int i = 1; i <= 30; i++) {
        char note[320];
        if (i == 25) {
            memset(note, 'x', 300);
            note[300] = '\0';
        } else {
            snprintf(note, sizeof(note), "n%d", i);
        }
        o += (size_t)snprintf(data + o, sizeof(data) - o, "%d,%s,%d.5,%s\n", i,
                              i % 3 == 0 ? "AAPL" : "MSFT", i, note);
    }
    snprintf(csv, sizeof(csv), "%s/t.csv", dir);
    return tu_write_file(csv, data, o);
}

static int suite_clean(void)
{
    tu_rmrf(dir);
    free(dir);
    return 0;
}

/* Run the job with the dashboard attached and return /api/job parsed. */
static json_t *run_live(const char *sql)
{
    struct velo_sql_diags diags;
    memset(&diags, 0, sizeof(diags));
    struct velo_job_opts opts = {.filename = "live.sql", .progress_fd = -1};
    struct velo_job *job = velo_job_prepare(sql, strlen(sql), &opts, &diags);
    CU_ASSERT_PTR_NOT_NULL_FATAL(job);
    struct velo_obs_annotations *ann = velo_obs_annotations_load(
        sql, strlen(sql), velo_job_plan(job), NULL, &diags);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ann);
    CU_ASSERT_EQUAL(diags.errors, 0);
    struct velo_metrics *m = velo_metrics_create();
    struct velo_obs_job_metrics *jm =
        velo_obs_job_metrics_create(m, "live", job, ann, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(jm);
    struct velo_obs_metrics_http *h = velo_obs_metrics_http_start(m, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    struct velo_obs_live *live = velo_obs_live_create(jm, h);
    CU_ASSERT_PTR_NOT_NULL_FATAL(live);
    CU_ASSERT_EQUAL(velo_job_run(job, NULL), VELO_OK);
    char *text = velo_obs_live_json(live);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    json_error_t err;
    json_t *doc = json_loads(text, 0, &err);
    if (doc == NULL) {
        fprintf(stderr, "\nbad JSON (%s): %s\n", err.text, text);
    }
    CU_ASSERT_PTR_NOT_NULL(doc);
    free(text);
    /* Ours go before the job's operators. */
    velo_obs_live_destroy(live);
    velo_obs_metrics_http_stop(h);
    velo_obs_job_metrics_destroy(jm);
    velo_metrics_destroy(m);
    velo_obs_annotations_free(ann);
    velo_job_destroy(job);
    velo_sql_diags_free(&diags);
    return doc;
}

static json_int_t int_at(json_t *doc, const char *path)
{
    json_t *v = json_object_get(json_object_get(doc, "stats"), path);
    return json_is_integer(v) ? json_integer_value(v) : -1;
}

static void test_api_job(void)
{
    char sql[2048];
    snprintf(sql, sizeof(sql),
             "-- @metric: rows_by_sym_total\n"
             "-- @metric_labels: sym\n"
             "CREATE STREAM o AS SELECT id, sym, px, note FROM 'file://%s'\n"
             "WITH ('o.type'='file_sink', 'o.path'='%s/o.jsonl', "
             "'o.format'='json');\n"
             "SELECT id * 10 AS id10 FROM 'file://%s' WHERE sym = 'AAPL';\n",
             csv, dir, csv);
    json_t *doc = run_live(sql);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(doc, "query")),
                           "live");
    /* Counters: 30 rows read per statement's source, 30 + 10 out. */
    CU_ASSERT_EQUAL(int_at(doc, "records_out"), 40);
    CU_ASSERT(int_at(doc, "records_in") >= 30);
    CU_ASSERT(int_at(doc, "batches") >= 1);

    json_t *st = json_object_get(doc, "statements");
    CU_ASSERT_EQUAL_FATAL(json_array_size(st), 2);
    json_t *o = json_array_get(st, 0);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "name")), "o");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "rows_total")), 30);
    json_t *cols = json_object_get(o, "columns");
    CU_ASSERT_EQUAL(json_array_size(cols), 4); /* _timestamp hidden */
    CU_ASSERT_TRUE(json_is_true(
        json_object_get(json_array_get(cols, 2), "numeric"))); /* px */
    CU_ASSERT_TRUE(json_is_false(
        json_object_get(json_array_get(cols, 1), "numeric"))); /* sym */
    /* The ring keeps the newest 20: ids 11..30, oldest first. */
    json_t *rows = json_object_get(o, "rows");
    CU_ASSERT_EQUAL_FATAL(json_array_size(rows), 20);
    for (size_t i = 0; i < 20; i++) {
        json_t *v = json_object_get(json_array_get(rows, i), "values");
        CU_ASSERT_EQUAL(json_integer_value(json_array_get(v, 0)),
                        (json_int_t)(11 + i));
    }
    /* Typed values: a number stays a number, text a string. */
    json_t *r30 = json_object_get(json_array_get(rows, 19), "values");
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_array_get(r30, 2)), 30.5,
                           1e-9);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(r30, 1)), "AAPL");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(r30, 3)), "n30");
    /* Row 25's 300-byte note: cut to 200 bytes and an ellipsis. */
    json_t *r25 = json_object_get(json_array_get(rows, 14), "values");
    const char *note = json_string_value(json_array_get(r25, 3));
    CU_ASSERT_PTR_NOT_NULL_FATAL(note);
    CU_ASSERT_EQUAL(strlen(note), 200 + 3);
    CU_ASSERT_STRING_EQUAL(note + 200, "\xe2\x80\xa6");

    json_t *sel = json_array_get(st, 1);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(sel, "name")),
                           "select-1");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(sel, "rows_total")), 10);
    json_t *srows = json_object_get(sel, "rows");
    CU_ASSERT_EQUAL_FATAL(json_array_size(srows), 10);
    CU_ASSERT_EQUAL(
        json_integer_value(json_array_get(
            json_object_get(json_array_get(srows, 9), "values"), 0)),
        300);

    /* Operators: each names its statement; the Filter is select-1's. */
    json_t *ops = json_object_get(doc, "operators");
    CU_ASSERT(json_array_size(ops) >= 3);
    int filters = 0;
    for (size_t i = 0; i < json_array_size(ops); i++) {
        json_t *op = json_array_get(ops, i);
        const char *name = json_string_value(json_object_get(op, "name"));
        const char *stn = json_string_value(json_object_get(op, "statement"));
        CU_ASSERT_PTR_NOT_NULL_FATAL(stn);
        CU_ASSERT(strcmp(stn, "o") == 0 || strcmp(stn, "select-1") == 0 ||
                  strcmp(stn, "shared") == 0);
        if (strcmp(name, "Filter") == 0) {
            filters++;
            CU_ASSERT_STRING_EQUAL(stn, "select-1");
            CU_ASSERT_EQUAL(json_integer_value(json_object_get(op, "rows_in")),
                            30);
            CU_ASSERT_EQUAL(json_integer_value(json_object_get(op, "rows_out")),
                            10);
        }
    }
    CU_ASSERT_EQUAL(filters, 1);

    /* The @metric with its series by label. */
    json_t *ms = json_object_get(doc, "metrics");
    CU_ASSERT_EQUAL_FATAL(json_array_size(ms), 1);
    json_t *mt = json_array_get(ms, 0);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(mt, "type")),
                           "counter");
    json_t *series = json_object_get(mt, "series");
    CU_ASSERT_EQUAL_FATAL(json_array_size(series), 2);
    double aapl = -1, msft = -1;
    for (size_t i = 0; i < 2; i++) {
        json_t *s = json_array_get(series, i);
        const char *l =
            json_string_value(json_array_get(json_object_get(s, "labels"), 0));
        double v = json_number_value(json_object_get(s, "value"));
        if (strcmp(l, "AAPL") == 0) {
            aapl = v;
        } else {
            msft = v;
        }
    }
    CU_ASSERT_DOUBLE_EQUAL(aapl, 10, 0);
    CU_ASSERT_DOUBLE_EQUAL(msft, 20, 0);
    /* No event time, no checkpoint: null, not 0. */
    CU_ASSERT_TRUE(json_is_null(
        json_object_get(json_object_get(doc, "stats"), "watermark")));
    CU_ASSERT_TRUE(json_is_null(json_object_get(json_object_get(doc, "stats"),
                                                "last_checkpoint_age_s")));
    json_decref(doc);
}

/* A row wider than a ring slot is kept as null, not as broken JSON. */
static void test_wide_row(void)
{
    char sql[4096];
    size_t o = (size_t)snprintf(sql, sizeof(sql), "SELECT ");
    for (int i = 0; i < 20; i++) {
        o +=
            (size_t)snprintf(sql + o, sizeof(sql) - o,
                             "%snote || note || note AS c%d", i ? ", " : "", i);
    }
    snprintf(sql + o, sizeof(sql) - o, " FROM 'file://%s' WHERE id = 25;\n",
             csv);
    json_t *doc = run_live(sql);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    json_t *rows = json_object_get(
        json_array_get(json_object_get(doc, "statements"), 0), "rows");
    CU_ASSERT_EQUAL_FATAL(json_array_size(rows), 1);
    CU_ASSERT_TRUE(
        json_is_null(json_object_get(json_array_get(rows, 0), "values")));
    json_decref(doc);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 1;
    }
    CU_pSuite s = CU_add_suite("livedash", suite_init, suite_clean);
    CU_add_test(s, "api/job from a run", test_api_job);
    CU_add_test(s, "a row too wide to keep", test_wide_row);
    return tu_run_all();
}
