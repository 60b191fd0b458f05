/*
 * @metric / @alert annotations: checks with their codes and places,
 * metric updates from a real job's output rows, the label cap, and the
 * rules and dashboard generated from them.
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

static const char trades_csv[] = "symbol,price,qty\n"
                                 "AAPL,10.5,100\n"
                                 "MSFT,20,5\n"
                                 "AAPL,11,300\n"
                                 "GOOG,5,50\n";

static int suite_init(void)
{
    dir = tu_tmpdir();
    if (dir == NULL) {
        return 1;
    }
    snprintf(csv, sizeof(csv), "%s/t.csv", dir);
    return tu_write_file(csv, trades_csv, strlen(trades_csv));
}

static int suite_clean(void)
{
    tu_rmrf(dir);
    free(dir);
    return 0;
}

/* "-- annotations\n" + a CREATE STREAM over the CSV with a file sink. */
static char *query(const char *ann, const char *select_list)
{
    char *q = malloc(4096);
    snprintf(q, 4096,
             "%sCREATE STREAM o AS SELECT %s FROM 'file://%s'\n"
             "WITH ('o.type'='file_sink', 'o.path'='%s/o.jsonl', "
             "'o.format'='json');\n",
             ann, select_list, csv, dir);
    return q;
}

struct prepared {
    struct velo_job *job;
    struct velo_sql_diags diags;
    struct velo_obs_annotations *ann;
    char *sql;
};

static void prepare(struct prepared *p, const char *ann, const char *cols)
{
    memset(p, 0, sizeof(*p));
    p->sql = query(ann, cols);
    struct velo_job_opts opts = {.filename = "q.sql", .progress_fd = -1};
    p->job = velo_job_prepare(p->sql, strlen(p->sql), &opts, &p->diags);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p->job);
    p->ann = velo_obs_annotations_load(p->sql, strlen(p->sql),
                                       velo_job_plan(p->job), NULL,
                                       &p->diags);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p->ann);
}

static void release(struct prepared *p)
{
    velo_obs_annotations_free(p->ann);
    velo_job_destroy(p->job);
    velo_sql_diags_free(&p->diags);
    free(p->sql);
}

/* ---- Errors: a table of cases (Fluent Bit's sp_invalid_queries) ------- */

struct bad_case {
    const char *ann;
    const char *code;
    int line, col;
    const char *msg_part;
};

static const struct bad_case bad_cases[] = {
    {"-- @metrc: x\n", "V7003", 1, 4, "unknown annotation '@metrc'"},
    {"-- @metric_type: gauge\n", "V7004", 1, 4, "without a '@metric'"},
    {"-- @metric: 9x\n", "V7005", 1, 13, "not a valid Prometheus"},
    {"-- @metric: x\n-- @metric_type: meter\n", "V7006", 2, 18,
     "unknown metric type 'meter'"},
    {"-- @metric: x\n-- @metric_type: gauge\n", "V7007", 1, 4,
     "needs @metric_field"},
    {"-- @metric: x\n-- @metric_type: gauge\n-- @metric_field: nope\n",
     "V7007", 3, 19, "'nope' is not an output column"},
    {"-- @metric: x\n-- @metric_type: gauge\n-- @metric_field: symbol\n",
     "V7007", 3, 19, "not a number"},
    {"-- @metric: x\n-- @metric_labels: symbol, sym\n", "V7008", 2, 28,
     "label 'sym' is not an output column"},
    {"-- @metric: x\n-- @metric_labels: a b\n", "V7008", 2, 20,
     "not a valid Prometheus label"},
    {"-- @metric: x\n-- @metric_condition: qty >> 1\n", "V7009", 2, 28,
     "expected a column or a value"},
    {"-- @metric: x\n-- @metric_condition: qtty > 1\n", "V7009", 2, 23,
     "unknown column 'qtty'"},
    {"-- @metric: x\n-- @metric_condition: symbol > 1\n", "V7009", 2, 23,
     "cannot compare STRING with BIGINT"},
    {"-- @metric: x\n-- @metric_condition: qty\n", "V7009", 2, 23,
     "expected a BOOLEAN condition"},
    {"-- @metric: x\n-- @metric_condition: qty > 1 price < 2\n", "V7009", 2,
     31, "unexpected 'price'"},
    {"-- @metric: x\n-- @metric_type: histogram\n-- @metric_field: qty\n"
     "-- @metric_buckets: 5, 1\n",
     "V7010", 4, 21, "must increase"},
    {"-- @metric: x\n-- @metric_buckets: 1, 5\n", "V7010", 2, 4,
     "only applies to histograms"},
    {"-- @metric: x\n-- @metric_help: a\n-- @metric_help: b\n", "V7012", 3,
     4, "given twice"},
    {"-- @alert: up == 0\n-- @alert_for: soon\n", "V7013", 2, 16,
     "not a valid @alert_for"},
    {"-- @alert: up == 0\n-- @alert_name: has space\n", "V7013", 2, 17,
     "not a valid alert name"},
    {"-- @metric: x\n-- @metric_field:\n", "V7014", 2, 4, "needs a value"},
    {"-- @alert: rate(x[5m) > 1\n", "V7015", 1, 12, "unbalanced"},
};

static void test_errors(void)
{
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        struct prepared p;
        prepare(&p, c->ann, "symbol, price, qty");
        int found = 0;
        for (size_t k = 0; k < p.diags.n; k++) {
            const struct velo_sql_diag *d = &p.diags.d[k];
            if (strcmp(d->code, c->code) == 0 && d->line == c->line &&
                d->col == c->col && d->severity == 0 &&
                strstr(d->message, c->msg_part) != NULL &&
                d->source_line != NULL) {
                found = 1;
            }
        }
        if (!found) {
            fprintf(stderr, "\ncase %zu (%s): wanted %s at %d:%d '%s'; got:\n",
                    i, c->ann, c->code, c->line, c->col, c->msg_part);
            for (size_t k = 0; k < p.diags.n; k++) {
                fprintf(stderr, "  %s %d:%d %s\n", p.diags.d[k].code,
                        p.diags.d[k].line, p.diags.d[k].col,
                        p.diags.d[k].message);
            }
        }
        CU_ASSERT(found);
        CU_ASSERT(p.diags.errors > 0);
        release(&p);
    }
}

static void test_did_you_mean(void)
{
    struct prepared p;
    prepare(&p, "-- @metric: x\n-- @metric_lables: symbol\n",
            "symbol, qty");
    CU_ASSERT_EQUAL(p.diags.errors, 1);
    CU_ASSERT_STRING_EQUAL(p.diags.d[0].code, "V7003");
    CU_ASSERT_PTR_NOT_NULL(strstr(p.diags.d[0].hint, "@metric_labels"));
    release(&p);
}

static void test_valid_specs(void)
{
    struct prepared p;
    prepare(&p,
            "-- @metric: trades_total\n"
            "-- @metric_help: \"Trades seen\"\n"
            "-- @metric_labels: symbol\n"
            "-- @metric_condition: (qty >= 50 AND NOT symbol = 'GOOG') OR "
            "price IS NULL\n"
            "-- @alert: sum(rate(trades_total[5m])) > 100\n"
            "-- @alert_for: 1h30m\n",
            "symbol, price, qty");
    CU_ASSERT_EQUAL(p.diags.errors, 0);
    CU_ASSERT_EQUAL_FATAL(p.ann->nmetrics, 1);
    const struct velo_obs_metric_spec *m = &p.ann->metrics[0];
    CU_ASSERT_STRING_EQUAL(m->help, "Trades seen");
    CU_ASSERT_EQUAL(m->type, VELO_METRIC_COUNTER);
    CU_ASSERT_EQUAL(m->nlabels, 1);
    CU_ASSERT_EQUAL(m->label_cols[0], 0);
    CU_ASSERT_PTR_NOT_NULL(m->cond);
    CU_ASSERT_PTR_NOT_NULL(m->sink);
    CU_ASSERT_EQUAL_FATAL(p.ann->nalerts, 1);
    CU_ASSERT_STRING_EQUAL(p.ann->alerts[0].name, "trades_total_alert");
    CU_ASSERT_STRING_EQUAL(p.ann->alerts[0].for_, "1h30m");
    release(&p);
}

/* ---- Metric updates from a real run -------------------------------------- */

static char *run_and_render(const char *ann, size_t cap)
{
    struct prepared p;
    prepare(&p, ann, "symbol, price, qty");
    CU_ASSERT_EQUAL(p.diags.errors, 0);
    struct velo_metrics *m = velo_metrics_create();
    struct velo_obs_job_metrics *jm =
        velo_obs_job_metrics_create(m, "q", p.job, p.ann, cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(jm);
    CU_ASSERT_EQUAL(velo_job_run(p.job, NULL), VELO_OK);
    char *text = velo_metrics_render(m, NULL);
    velo_obs_job_metrics_destroy(jm);
    velo_metrics_destroy(m);
    release(&p);
    return text;
}

#define HAS(t, s)                                                          \
    do {                                                                   \
        int has_ = strstr((t), (s)) != NULL;                               \
        if (!has_) {                                                       \
            fprintf(stderr, "\nmissing: %s\n", (s));                       \
        }                                                                  \
        CU_ASSERT(has_);                                                   \
    } while (0)

static void test_updates(void)
{
    char *t = run_and_render(
        "-- @metric: trades_total\n"
        "-- @metric_labels: symbol\n"
        "-- @metric: qty_total\n"
        "-- @metric_field: qty\n"
        "-- @metric_condition: symbol = 'AAPL'\n"
        "-- @metric: last_price\n"
        "-- @metric_type: gauge\n"
        "-- @metric_field: price\n"
        "-- @metric_labels: symbol\n"
        "-- @metric: qty_hist\n"
        "-- @metric_type: histogram\n"
        "-- @metric_field: qty\n"
        "-- @metric_buckets: 10, 100, 1000\n"
        "-- @metric_condition: qty >= 50 AND symbol <> 'GOOG'\n",
        0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    HAS(t, "# TYPE trades_total counter\n");
    HAS(t, "trades_total{symbol=\"AAPL\"} 2\n");
    HAS(t, "trades_total{symbol=\"MSFT\"} 1\n");
    HAS(t, "trades_total{symbol=\"GOOG\"} 1\n");
    HAS(t, "qty_total 400\n"); /* AAPL: 100 + 300 */
    HAS(t, "last_price{symbol=\"AAPL\"} 11\n");
    HAS(t, "last_price{symbol=\"MSFT\"} 20\n");
    HAS(t, "qty_hist_bucket{le=\"10\"} 0\n");
    HAS(t, "qty_hist_bucket{le=\"100\"} 1\n");
    HAS(t, "qty_hist_bucket{le=\"1000\"} 2\n");
    HAS(t, "qty_hist_sum 400\n");
    HAS(t, "qty_hist_count 2\n");
    /* Engine metrics of the same run. */
    HAS(t, "velo_job_records_in_total{query=\"q\"} 4\n");
    HAS(t, "velo_source_records_total{query=\"q\",source=");
    HAS(t, "velo_operator_rows_out_total{query=\"q\",statement=\"o\","
           "op_id=\"0\"");
    HAS(t, "# TYPE velo_job_batch_latency_seconds histogram\n");
    HAS(t, "velo_job_dead_lettered_total{query=\"q\"} 0\n");
    free(t);
}

static void test_cardinality_cap(void)
{
    /* Two label sets allowed: GOOG (the third) is dropped and counted. */
    char *t = run_and_render("-- @metric: trades_total\n"
                             "-- @metric_labels: symbol\n",
                             2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    HAS(t, "trades_total{symbol=\"AAPL\"} 2\n");
    HAS(t, "trades_total{symbol=\"MSFT\"} 1\n");
    CU_ASSERT_PTR_NULL(strstr(t, "symbol=\"GOOG\""));
    HAS(t, "velo_metrics_dropped_series_total{family=\"trades_total\"} 1\n");
    free(t);
}

/* ---- Rules and dashboard --------------------------------------------------- */

static const char annotated_text[] =
    "-- @metric: trades_total\n"
    "-- @metric_labels: symbol\n"
    "-- @metric: price_now\n"
    "-- @metric_type: gauge\n"
    "-- @metric_field: price\n"
    "-- @metric: qty_hist\n"
    "-- @metric_type: histogram\n"
    "-- @metric_field: qty\n"
    "-- @metric_labels: symbol\n"
    "-- @alert: sum(rate(trades_total[5m])) > 100\n"
    "-- @alert_name: HighTradeRate\n"
    "-- @alert_severity: critical\n"
    "-- @alert_summary: \"Rate is {{ $value }}\"\n"
    "SELECT symbol, price, qty FROM stdin;\n";

static void test_rules(void)
{
    struct velo_sql_diags d;
    memset(&d, 0, sizeof(d));
    struct velo_obs_annotations *a = velo_obs_annotations_load(
        annotated_text, strlen(annotated_text), NULL, NULL, &d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL(d.errors, 0);
    char *y = velo_obs_rules_yaml(a, "velostream_q");
    CU_ASSERT_PTR_NOT_NULL_FATAL(y);
    HAS(y, "  - name: \"velostream_q\"\n");
    HAS(y, "      - alert: \"HighTradeRate\"\n");
    HAS(y, "        expr: \"sum(rate(trades_total[5m])) > 100\"\n");
    HAS(y, "          severity: \"critical\"\n");
    HAS(y, "          summary: \"Rate is {{ $value }}\"\n");
    free(y);
    velo_obs_annotations_free(a);
    velo_sql_diags_free(&d);
}

static json_t *panel_titled(json_t *panels, const char *title)
{
    size_t i;
    json_t *p;
    json_array_foreach(panels, i, p) {
        const char *t = json_string_value(json_object_get(p, "title"));
        if (t != NULL && strcmp(t, title) == 0) {
            return p;
        }
    }
    return NULL;
}

static const char *first_expr(json_t *p)
{
    json_t *t = json_array_get(json_object_get(p, "targets"), 0);
    return json_string_value(json_object_get(t, "expr"));
}

static void test_dashboard(void)
{
    struct velo_sql_diags d;
    memset(&d, 0, sizeof(d));
    struct velo_obs_annotations *a = velo_obs_annotations_load(
        annotated_text, strlen(annotated_text), NULL, NULL, &d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    char *text = velo_obs_dashboard_json(a, "Velostream: q");
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    json_error_t err;
    json_t *doc = json_loads(text, 0, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    json_t *panels = json_object_get(doc, "panels");
    CU_ASSERT(json_is_array(panels));

    json_t *p = panel_titled(panels, "trades_total (per second)");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(p, "type")),
                           "timeseries");
    CU_ASSERT_STRING_EQUAL(first_expr(p), "sum by (symbol) "
                                          "(rate(trades_total"
                                          "[$__rate_interval]))");
    p = panel_titled(panels, "price_now");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(p, "type")),
                           "stat");
    CU_ASSERT_STRING_EQUAL(first_expr(p), "price_now");
    p = panel_titled(panels, "qty_hist (distribution)");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(p, "type")),
                           "heatmap");
    CU_ASSERT_STRING_EQUAL(first_expr(p), "sum by (le) (rate(qty_hist_bucket"
                                          "[$__rate_interval]))");
    p = panel_titled(panels, "qty_hist (p50, p95, p99)");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(p, "targets")), 3);
    CU_ASSERT_STRING_EQUAL(first_expr(p),
                           "histogram_quantile(0.5, sum by (symbol, le) "
                           "(rate(qty_hist_bucket[$__rate_interval])))");
    CU_ASSERT_PTR_NOT_NULL(
        panel_titled(panels, "Records in and out (per second)"));
    CU_ASSERT_PTR_NOT_NULL(panel_titled(panels, "Operator state"));
    json_decref(doc);
    free(text);
    velo_obs_annotations_free(a);
    velo_sql_diags_free(&d);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 1;
    }
    CU_pSuite s = CU_add_suite("annotations", suite_init, suite_clean);
    CU_add_test(s, "errors with codes and places", test_errors);
    CU_add_test(s, "did you mean", test_did_you_mean);
    CU_add_test(s, "valid specs", test_valid_specs);
    CU_add_test(s, "metric updates from a run", test_updates);
    CU_add_test(s, "label cardinality cap", test_cardinality_cap);
    CU_add_test(s, "alerting rules", test_rules);
    CU_add_test(s, "Grafana dashboard", test_dashboard);
    return tu_run_all();
}
