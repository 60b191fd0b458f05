/*
 * `velo dashboard`: a Grafana dashboard (JSON model, schemaVersion 39)
 * for an annotated query.
 *
 * One panel per @metric by type: a counter as a per-second rate graph, a
 * gauge as a stat (no labels) or a time series (one line per label set),
 * a histogram as a heatmap of its buckets plus a time series of the p50,
 * p95 and p99 quantiles. Series are grouped by the @metric_labels. Then a
 * row of engine panels (records in/out, skipped and dead-lettered rows,
 * batch latency, watermark delay, source lag, checkpoints, operators).
 * The datasource is a dashboard variable, so the file imports anywhere.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "obs/annotations.h"
#include "obs/metrics.h"

#define PANEL_W 12
#define PANEL_H 8

struct dash {
    json_t *panels;
    int next_id;
    int x, y;
};

static json_t *js(const char *s)
{
    return json_stringn(s, strlen(s));
}

static json_t *datasource(void)
{
    return json_pack("{s:s, s:s}", "type", "prometheus", "uid",
                     "${datasource}");
}

/* "sum by (a, b) (" and the legend "{{a}} {{b}}". */
static void by_labels(const struct velo_obs_metric_spec *m, const char *extra,
                      char *by, size_t bylen, char *legend, size_t leglen)
{
    size_t o = 0, l = 0;
    by[0] = legend[0] = '\0';
    if (m->nlabels == 0 && extra == NULL) {
        return;
    }
    o += (size_t)snprintf(by + o, bylen - o, " by (");
    for (size_t i = 0; i < m->nlabels && o < bylen; i++) {
        o += (size_t)snprintf(by + o, bylen - o, "%s%s", i ? ", " : "",
                              m->labels[i]);
        if (l < leglen) {
            l += (size_t)snprintf(legend + l, leglen - l, "%s{{%s}}",
                                  i ? " " : "", m->labels[i]);
        }
    }
    if (extra != NULL && o < bylen) {
        o += (size_t)snprintf(by + o, bylen - o, "%s%s",
                              m->nlabels ? ", " : "", extra);
    }
    if (o < bylen) {
        snprintf(by + o, bylen - o, ")");
    }
}

static json_t *target(const char *expr, const char *legend, const char *ref,
                      int heatmap)
{
    json_t *t = json_pack("{s:o, s:o, s:o, s:o}", "datasource", datasource(),
                          "expr", js(expr), "legendFormat",
                          js(legend[0] ? legend : "__auto"), "refId",
                          js(ref));
    if (t != NULL && heatmap) {
        json_object_set_new(t, "format", js("heatmap"));
    }
    return t;
}

static void add_panel(struct dash *d, const char *type, const char *title,
                      const char *desc, json_t *targets, const char *unit)
{
    json_t *p = json_pack(
        "{s:i, s:s, s:o, s:o, s:o, s:{s:i, s:i, s:i, s:i}, s:o, "
        "s:{s:{s:s}, s:[]}}",
        "id", d->next_id++, "type", type, "title", js(title), "description",
        js(desc), "datasource", datasource(), "gridPos", "h", PANEL_H, "w",
        PANEL_W, "x", d->x, "y", d->y, "targets", targets, "fieldConfig",
        "defaults", "unit", unit, "overrides");
    if (p != NULL) {
        json_array_append_new(d->panels, p);
    }
    d->x += PANEL_W;
    if (d->x >= 24) {
        d->x = 0;
        d->y += PANEL_H;
    }
}

static void add_row(struct dash *d, const char *title)
{
    if (d->x != 0) {
        d->x = 0;
        d->y += PANEL_H;
    }
    json_t *p = json_pack("{s:i, s:s, s:o, s:b, s:{s:i, s:i, s:i, s:i}, "
                          "s:[]}",
                          "id", d->next_id++, "type", "row", "title",
                          js(title), "collapsed", 0, "gridPos", "h", 1, "w",
                          24, "x", 0, "y", d->y, "panels");
    if (p != NULL) {
        json_array_append_new(d->panels, p);
    }
    d->y += 1;
}

static void metric_panels(struct dash *d, const struct velo_obs_metric_spec *m)
{
    char by[1200], legend[1200], expr[2600], title[300], desc[600];
    by_labels(m, NULL, by, sizeof(by), legend, sizeof(legend));
    snprintf(desc, sizeof(desc), "%s (@metric %s, line %d)", m->help,
             m->name, m->line);
    if (m->type == VELO_METRIC_COUNTER) {
        snprintf(expr, sizeof(expr), "sum%s (rate(%s[$__rate_interval]))",
                 by, m->name);
        snprintf(title, sizeof(title), "%s (per second)", m->name);
        add_panel(d, "timeseries", title, desc,
                  json_pack("[o]", target(expr, legend, "A", 0)), "ops");
    } else if (m->type == VELO_METRIC_GAUGE) {
        if (m->nlabels == 0) {
            snprintf(expr, sizeof(expr), "%s", m->name);
            add_panel(d, "stat", m->name, desc,
                      json_pack("[o]", target(expr, legend, "A", 0)),
                      "none");
        } else {
            snprintf(expr, sizeof(expr), "max%s (%s)", by, m->name);
            add_panel(d, "timeseries", m->name, desc,
                      json_pack("[o]", target(expr, legend, "A", 0)),
                      "none");
        }
    } else {
        snprintf(expr, sizeof(expr),
                 "sum by (le) (rate(%s_bucket[$__rate_interval]))", m->name);
        snprintf(title, sizeof(title), "%s (distribution)", m->name);
        add_panel(d, "heatmap", title, desc,
                  json_pack("[o]", target(expr, "{{le}}", "A", 1)), "none");
        char qby[1300], qleg[1200];
        by_labels(m, "le", qby, sizeof(qby), qleg, sizeof(qleg));
        json_t *ts = json_array();
        static const char *const qs[] = {"0.5", "0.95", "0.99"};
        static const char *const refs[] = {"A", "B", "C"};
        for (size_t i = 0; i < 3; i++) {
            char leg[1300];
            snprintf(expr, sizeof(expr),
                     "histogram_quantile(%s, sum%s "
                     "(rate(%s_bucket[$__rate_interval])))",
                     qs[i], qby, m->name);
            snprintf(leg, sizeof(leg), "p%s%s%s",
                     i == 0 ? "50" : i == 1 ? "95" : "99",
                     legend[0] ? " " : "", legend);
            json_array_append_new(ts, target(expr, leg, refs[i], 0));
        }
        snprintf(title, sizeof(title), "%s (p50, p95, p99)", m->name);
        add_panel(d, "timeseries", title, desc, ts, "none");
    }
}

static void engine_panels(struct dash *d)
{
    add_row(d, "Engine");
    json_t *t = json_array();
    json_array_append_new(
        t, target("sum by (query) (rate(velo_job_records_in_total"
                  "[$__rate_interval]))",
                  "{{query}} in", "A", 0));
    json_array_append_new(
        t, target("sum by (query) (rate(velo_job_records_out_total"
                  "[$__rate_interval]))",
                  "{{query}} out", "B", 0));
    add_panel(d, "timeseries", "Records in and out (per second)",
              "Records decoded from the sources and rows written to the "
              "sinks.",
              t, "ops");
    t = json_array();
    json_array_append_new(
        t, target("sum by (query) (rate(velo_job_bad_records_total"
                  "[$__rate_interval]))",
                  "{{query}} bad records", "A", 0));
    json_array_append_new(
        t, target("sum by (query) (rate(velo_job_failed_rows_total"
                  "[$__rate_interval]))",
                  "{{query}} failed rows", "B", 0));
    json_array_append_new(
        t, target("sum by (query) (rate(velo_job_late_rows_total"
                  "[$__rate_interval]))",
                  "{{query}} late rows", "C", 0));
    json_array_append_new(
        t, target("sum by (query) (rate(velo_job_dead_lettered_total"
                  "[$__rate_interval]))",
                  "{{query}} dead-lettered", "D", 0));
    add_panel(d, "timeseries", "Skipped records and rows (per second)",
              "Undecodable records, rows that failed evaluation, rows "
              "for windows already closed, and what went to the "
              "dead-letter file.",
              t, "ops");
    t = json_array();
    static const char *const qs[] = {"0.5", "0.99"};
    static const char *const refs[] = {"A", "B"};
    for (size_t i = 0; i < 2; i++) {
        char expr[300], leg[64];
        snprintf(expr, sizeof(expr),
                 "histogram_quantile(%s, sum by (query, le) "
                 "(rate(velo_job_batch_latency_seconds_bucket"
                 "[$__rate_interval])))",
                 qs[i]);
        snprintf(leg, sizeof(leg), "{{query}} p%s", i == 0 ? "50" : "99");
        json_array_append_new(t, target(expr, leg, refs[i], 0));
    }
    add_panel(d, "timeseries", "Batch latency (p50, p99)",
              "Time from decoding a source batch to the end of its push "
              "through the operators.",
              t, "s");
    t = json_array();
    json_array_append_new(
        t, target("max by (query) (velo_job_watermark_delay_seconds)",
                  "{{query}} watermark delay", "A", 0));
    json_array_append_new(t, target("max by (query, source) "
                                    "(velo_source_watermark_delay_seconds)",
                                    "{{source}} watermark delay", "B", 0));
    add_panel(d, "timeseries", "Watermark delay",
              "Wall clock minus the event-time watermark: how far behind "
              "real time the results are.",
              t, "s");
    add_panel(d, "timeseries", "Source lag",
              "Input not yet read: records (Kafka) or bytes (files).",
              json_pack("[o]", target("max by (query, source) "
                                      "(velo_source_lag)",
                                      "{{source}}", "A", 0)),
              "short");
    t = json_array();
    json_array_append_new(
        t, target("max by (query) (velo_job_last_checkpoint_age_seconds)",
                  "{{query}} age", "A", 0));
    json_array_append_new(t, target("max by (query) "
                                    "(velo_job_checkpoint_duration_seconds)",
                                    "{{query}} duration", "B", 0));
    add_panel(d, "timeseries", "Checkpoints (age, last duration)",
              "Seconds since the last completed checkpoint and how long it "
              "took.",
              t, "s");
    add_panel(
        d, "timeseries", "Operator rows out (per second)",
        "Rows each operator emits, by statement.",
        json_pack("[o]",
                  target("sum by (query, statement, op_id, operator) "
                         "(rate(velo_operator_rows_out_total"
                         "[$__rate_interval]))",
                         "{{statement}}: {{operator}} #{{op_id}}", "A", 0)),
        "ops");
    add_panel(
        d, "timeseries", "Operator state",
        "Memory each stateful operator holds (groups, windows, "
        "buffered rows).",
        json_pack("[o]",
                  target("sum by (query, statement, op_id, operator) "
                         "(velo_operator_state_bytes)",
                         "{{statement}}: {{operator}} #{{op_id}}", "A", 0)),
        "bytes");
}

char *velo_obs_dashboard_json(const struct velo_obs_annotations *a,
                              const char *title)
{
    struct dash d = {json_array(), 1, 0, 0};
    if (d.panels == NULL) {
        return NULL;
    }
    if (a->nmetrics > 0) {
        add_row(&d, "Query metrics");
    }
    for (size_t i = 0; i < a->nmetrics; i++) {
        metric_panels(&d, &a->metrics[i]);
    }
    engine_panels(&d);
    char uid[41];
    size_t u = 0;
    for (const char *p = title; *p != '\0' && u < 30; p++) {
        char ch = *p;
        uid[u++] = ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9'))
                       ? ch
                       : '-';
    }
    uid[u] = '\0';
    char full_uid[48];
    snprintf(full_uid, sizeof(full_uid), "velo-%s", uid);
    json_t *doc = json_pack(
        "{s:o, s:o, s:[s, s], s:i, s:s, s:b, s:{s:s, s:s}, s:s, "
        "s:{s:[{s:s, s:s, s:s, s:s, s:[], s:i}]}, s:o, s:i}",
        "title", js(title), "uid", js(full_uid), "tags", "velostream",
        "generated", "schemaVersion", 39, "refresh", "10s", "editable", 1,
        "time", "from", "now-1h", "to", "now", "timezone", "browser",
        "templating", "list", "name", "datasource", "type", "datasource",
        "label", "Prometheus", "query", "prometheus", "options", "hide", 0,
        "panels", d.panels, "version", 1);
    if (doc == NULL) {
        return NULL;
    }
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(doc);
    return text;
}
