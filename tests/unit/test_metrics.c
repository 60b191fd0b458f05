/*
 * Metrics registry: families, series, lock-free updates from many threads,
 * the series cap, collectors, process metrics, and the exact exposition
 * text, checked by Prometheus' own promtool.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <velo/log.h>

#include "obs/metrics.h"
#include "plugin/host.h"
#include "testutil.h"

static char *render(struct velo_metrics *m)
{
    size_t len = 0;
    char *t = velo_metrics_render(m, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(strlen(t), len);
    return t;
}

/* Does the text contain this exact line? */
static int has_line(const char *text, const char *line)
{
    size_t l = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
        if ((p == text || p[-1] == '\n') && (p[l] == '\n' || p[l] == '\0')) {
            return 1;
        }
    }
    return 0;
}

/* The value on the line starting with `prefix` followed by a space. */
static double value_of(const char *text, const char *prefix)
{
    size_t l = strlen(prefix);
    for (const char *p = text; (p = strstr(p, prefix)) != NULL; p++) {
        if ((p == text || p[-1] == '\n') && p[l] == ' ') {
            return strtod(p + l + 1, NULL);
        }
    }
    return NAN;
}

static void test_counter_gauge(void)
{
    struct velo_metrics *m = velo_metrics_create();
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    struct velo_metric_family *c =
        velo_metrics_family(m, "velo_test_requests_total", "Requests.",
                            VELO_METRIC_COUNTER, "route,status", NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    const char *v1[] = {"/api", "200"};
    const char *v2[] = {"/api", "500"};
    struct velo_metric *s1 = velo_metric_series(c, v1, 2);
    struct velo_metric *s2 = velo_metric_series(c, v2, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s2);
    CU_ASSERT_PTR_NOT_EQUAL(s1, s2);
    CU_ASSERT_PTR_EQUAL(velo_metric_series(c, v1, 2), s1);
    velo_metric_inc(s1, 1);
    velo_metric_inc(s1, 2.5);
    velo_metric_inc(s1, -7); /* counters never go down */
    velo_metric_inc(s1, NAN);
    CU_ASSERT_DOUBLE_EQUAL(velo_metric_value(s1), 3.5, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(velo_metric_value(s2), 0, 1e-12);
    /* wrong number of label values */
    CU_ASSERT_PTR_NULL(velo_metric_series(c, v1, 1));
    CU_ASSERT_PTR_NULL(velo_metric_series(c, NULL, 0));

    struct velo_metric_family *g = velo_metrics_family(
        m, "velo_test_queue_depth", "Depth.", VELO_METRIC_GAUGE, NULL, NULL, 0);
    struct velo_metric *gs = velo_metric_series(g, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(gs);
    velo_metric_set(gs, 10);
    velo_metric_inc(gs, -3);
    CU_ASSERT_DOUBLE_EQUAL(velo_metric_value(gs), 7, 1e-12);

    /* Unlabelled families show 0 before any update. */
    velo_metrics_family(m, "velo_test_idle_total", "Never touched.",
                        VELO_METRIC_COUNTER, NULL, NULL, 0);

    char *t = render(m);
    CU_ASSERT_TRUE(has_line(t, "# HELP velo_test_requests_total Requests."));
    CU_ASSERT_TRUE(has_line(t, "# TYPE velo_test_requests_total counter"));
    CU_ASSERT_TRUE(
        has_line(t, "velo_test_requests_total{route=\"/api\",status=\"200\"} "
                    "3.5"));
    CU_ASSERT_TRUE(
        has_line(t, "velo_test_requests_total{route=\"/api\",status=\"500\"} "
                    "0"));
    CU_ASSERT_TRUE(has_line(t, "# TYPE velo_test_queue_depth gauge"));
    CU_ASSERT_TRUE(has_line(t, "velo_test_queue_depth 7"));
    CU_ASSERT_TRUE(has_line(t, "velo_test_idle_total 0"));
    /* series keep creation order within their family */
    CU_ASSERT_TRUE(strstr(t, "status=\"200\"") < strstr(t, "status=\"500\""));
    free(t);
    velo_metrics_destroy(m);
}

static void test_family_rules(void)
{
    struct velo_metrics *m = velo_metrics_create();
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    struct velo_metric_family *a = velo_metrics_family(
        m, "velo_x_total", "X.", VELO_METRIC_COUNTER, "a, b", NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    /* same name, type and labels: the same family */
    CU_ASSERT_PTR_EQUAL(velo_metrics_family(m, "velo_x_total", "other help",
                                            VELO_METRIC_COUNTER, "a,b", NULL,
                                            0),
                        a);
    /* same name, another type or other labels: refused */
    CU_ASSERT_PTR_NULL(velo_metrics_family(m, "velo_x_total", "X.",
                                           VELO_METRIC_GAUGE, "a,b", NULL, 0));
    CU_ASSERT_PTR_NULL(velo_metrics_family(m, "velo_x_total", "X.",
                                           VELO_METRIC_COUNTER, "a", NULL, 0));
    /* bad names */
    const char *bad_names[] = {"", "9lives", "has-dash", "sp ace", "é"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        errno = 0;
        CU_ASSERT_PTR_NULL(velo_metrics_family(
            m, bad_names[i], "h", VELO_METRIC_GAUGE, NULL, NULL, 0));
        CU_ASSERT_EQUAL(errno, EINVAL);
    }
    CU_ASSERT_PTR_NULL(
        velo_metrics_family(m, NULL, "h", VELO_METRIC_GAUGE, NULL, NULL, 0));
    CU_ASSERT_PTR_NOT_NULL(velo_metrics_family(
        m, "ns:sub_metric", "h", VELO_METRIC_GAUGE, NULL, NULL, 0));
    /* bad label names: reserved, repeated, malformed, "le" on histograms */
    const char *bad_labels[] = {"__x", "a,a", "a,,b", "1a", "a-b", "a b"};
    for (size_t i = 0; i < sizeof(bad_labels) / sizeof(bad_labels[0]); i++) {
        CU_ASSERT_PTR_NULL(velo_metrics_family(
            m, "velo_lbl", "h", VELO_METRIC_GAUGE, bad_labels[i], NULL, 0));
    }
    CU_ASSERT_PTR_NULL(velo_metrics_family(
        m, "velo_h_seconds", "h", VELO_METRIC_HISTOGRAM, "le", NULL, 0));
    CU_ASSERT_PTR_NOT_NULL(velo_metrics_family(
        m, "velo_g_le", "h", VELO_METRIC_GAUGE, "le", NULL, 0));
    /* buckets must ascend */
    double desc[] = {1, 0.5};
    CU_ASSERT_PTR_NULL(velo_metrics_family(
        m, "velo_h2_seconds", "h", VELO_METRIC_HISTOGRAM, NULL, desc, 2));
    CU_ASSERT_PTR_NULL(
        velo_metrics_family(m, "velo_bad_type", "h", 7, NULL, NULL, 0));
    velo_metrics_destroy(m);
}

static void test_histogram(void)
{
    struct velo_metrics *m = velo_metrics_create();
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    double b[] = {0.1, 1, 5};
    struct velo_metric_family *h =
        velo_metrics_family(m, "velo_test_duration_seconds", "Duration.",
                            VELO_METRIC_HISTOGRAM, "op", b, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    const char *op[] = {"read"};
    struct velo_metric *s = velo_metric_series(h, op, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    double obs[] = {0.05, 0.1, 0.5, 1, 2, 7, 100};
    for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++) {
        velo_metric_observe(s, obs[i]);
    }
    velo_metric_observe(s, NAN); /* ignored */
    velo_metric_inc(s, 5);       /* not for histograms */
    velo_metric_set(s, 5);
    char *t = render(m);
    const char *want[] = {
        "# HELP velo_test_duration_seconds Duration.",
        "# TYPE velo_test_duration_seconds histogram",
        "velo_test_duration_seconds_bucket{op=\"read\",le=\"0.1\"} 2",
        "velo_test_duration_seconds_bucket{op=\"read\",le=\"1\"} 4",
        "velo_test_duration_seconds_bucket{op=\"read\",le=\"5\"} 5",
        "velo_test_duration_seconds_bucket{op=\"read\",le=\"+Inf\"} 7",
        "velo_test_duration_seconds_sum{op=\"read\"} 110.65",
        "velo_test_duration_seconds_count{op=\"read\"} 7",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (!has_line(t, want[i])) {
            fprintf(stderr, "missing line: %s\nin:\n%s", want[i], t);
        }
        CU_ASSERT_TRUE(has_line(t, want[i]));
    }
    free(t);

    /* default buckets, unlabelled */
    struct velo_metric_family *d =
        velo_metrics_family(m, "velo_test_default_seconds", "Default buckets.",
                            VELO_METRIC_HISTOGRAM, NULL, NULL, 0);
    velo_metric_observe(velo_metric_series(d, NULL, 0), 0.003);
    t = render(m);
    CU_ASSERT_TRUE(
        has_line(t, "velo_test_default_seconds_bucket{le=\"0.0005\"} 0"));
    CU_ASSERT_TRUE(
        has_line(t, "velo_test_default_seconds_bucket{le=\"0.005\"} 1"));
    CU_ASSERT_TRUE(
        has_line(t, "velo_test_default_seconds_bucket{le=\"10\"} 1"));
    CU_ASSERT_TRUE(has_line(t, "velo_test_default_seconds_count 1"));
    free(t);
    velo_metrics_destroy(m);
}

static void test_escaping_and_values(void)
{
    struct velo_metrics *m = velo_metrics_create();
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    struct velo_metric_family *g = velo_metrics_family(
        m, "velo_test_value", "Help with \\ backslash\nand newline \"q\".",
        VELO_METRIC_GAUGE, "k", NULL, 0);
    const char *cases[][2] = {
        {"a\"b", "velo_test_value{k=\"a\\\"b\"}"},
        {"c\\d", "velo_test_value{k=\"c\\\\d\"}"},
        {"e\nf", "velo_test_value{k=\"e\\nf\"}"},
    };
    for (size_t i = 0; i < 3; i++) {
        const char *v[] = {cases[i][0]};
        velo_metric_set(velo_metric_series(g, v, 1), 1);
    }
    struct {
        const char *label;
        double v;
        const char *text;
    } vals[] = {
        {"int", 42, "42"},         {"big", 123456789012345, "123456789012345"},
        {"frac", 0.1, "0.1"},      {"third", 1.0 / 3, "0.3333333333333333"},
        {"huge", 1e20, "1e+20"},   {"tiny", 2.5e-7, "2.5e-07"},
        {"neg", -17, "-17"},       {"negzero", -0.0, "0"},
        {"inf", INFINITY, "+Inf"}, {"ninf", -INFINITY, "-Inf"},
        {"nan", NAN, "NaN"},
    };
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        const char *v[] = {vals[i].label};
        velo_metric_set(velo_metric_series(g, v, 1), vals[i].v);
    }
    char *t = render(m);
    CU_ASSERT_TRUE(has_line(t, "# HELP velo_test_value Help with \\\\ "
                               "backslash\\nand newline \"q\"."));
    for (size_t i = 0; i < 3; i++) {
        char line[128];
        snprintf(line, sizeof(line), "%s 1", cases[i][1]);
        CU_ASSERT_TRUE(has_line(t, line));
    }
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        char line[128];
        snprintf(line, sizeof(line), "velo_test_value{k=\"%s\"} %s",
                 vals[i].label, vals[i].text);
        if (!has_line(t, line)) {
            fprintf(stderr, "missing line: %s\n", line);
        }
        CU_ASSERT_TRUE(has_line(t, line));
    }
    free(t);
    velo_metrics_destroy(m);
}

static void test_series_cap(void)
{
    struct velo_metrics *m = velo_metrics_create();
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    struct velo_metric_family *c =
        velo_metrics_family(m, "velo_test_users_total", "Per user.",
                            VELO_METRIC_COUNTER, "user", NULL, 0);
    char buf[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(buf, sizeof(buf), "u%d", i);
        const char *v[] = {buf};
        struct velo_metric *s = velo_metric_series(c, v, 1);
        if (s == NULL) {
            CU_FAIL("series refused below the cap");
            break;
        }
        velo_metric_inc(s, 1);
    }
    const char *over[] = {"one-too-many"};
    errno = 0;
    CU_ASSERT_PTR_NULL(velo_metric_series(c, over, 1));
    CU_ASSERT_EQUAL(errno, ENOSPC);
    CU_ASSERT_PTR_NULL(velo_metric_series(c, over, 1));
    velo_metric_inc(NULL, 1); /* an update to no series is a no-op */
    /* existing series still resolve */
    const char *old[] = {"u9999"};
    CU_ASSERT_PTR_NOT_NULL(velo_metric_series(c, old, 1));
    char *t = render(m);
    CU_ASSERT_TRUE(has_line(t, "velo_metrics_dropped_series_total{family="
                               "\"velo_test_users_total\"} 2"));
    CU_ASSERT_TRUE(has_line(t, "velo_test_users_total{user=\"u9999\"} 1"));
    CU_ASSERT_FALSE(
        has_line(t, "velo_test_users_total{user=\"one-too-many\"} 0"));
    free(t);
    velo_metrics_destroy(m);
}

/* Workers update without the lock; the totals must still be exact. */
struct hammer {
    struct velo_metric *counter;
    struct velo_metric *gauge;
    struct velo_metric *hist;
    struct velo_metric_family *family;
    int n;
};

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    char name[32];
    snprintf(name, sizeof(name), "t%lu", (unsigned long)pthread_self() % 7);
    for (int i = 0; i < h->n; i++) {
        velo_metric_inc(h->counter, 1);
        velo_metric_inc(h->gauge, 0.5);
        velo_metric_observe(h->hist, (i % 10) * 0.1);
        if (i % 1000 == 0) {
            const char *v[] = {name};
            velo_metric_inc(velo_metric_series(h->family, v, 1), 1);
        }
    }
    return NULL;
}

static void test_concurrent_updates(void)
{
    struct velo_metrics *m = velo_metrics_create();
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    struct hammer h;
    h.counter = velo_metric_series(
        velo_metrics_family(m, "velo_test_ops_total", "Ops.",
                            VELO_METRIC_COUNTER, NULL, NULL, 0),
        NULL, 0);
    h.gauge = velo_metric_series(
        velo_metrics_family(m, "velo_test_level", "Level.", VELO_METRIC_GAUGE,
                            NULL, NULL, 0),
        NULL, 0);
    h.hist = velo_metric_series(
        velo_metrics_family(m, "velo_test_lat_seconds", "Lat.",
                            VELO_METRIC_HISTOGRAM, NULL, NULL, 0),
        NULL, 0);
    h.family = velo_metrics_family(m, "velo_test_by_thread_total", "T.",
                                   VELO_METRIC_COUNTER, "thread", NULL, 0);
    h.n = 50000;
    enum { T = 4 };
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        pthread_create(&th[i], NULL, hammer_main, &h);
    }
    /* Render while they run: must not crash or tear the text. */
    for (int i = 0; i < 20; i++) {
        free(render(m));
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
    }
    CU_ASSERT_DOUBLE_EQUAL(velo_metric_value(h.counter), T * h.n, 0);
    CU_ASSERT_DOUBLE_EQUAL(velo_metric_value(h.gauge), T * h.n * 0.5, 0);
    char *t = render(m);
    CU_ASSERT_DOUBLE_EQUAL(value_of(t, "velo_test_lat_seconds_count"), T * h.n,
                           0);
    CU_ASSERT_DOUBLE_EQUAL(
        value_of(t, "velo_test_lat_seconds_bucket{le=\"+Inf\"}"), T * h.n, 0);
    free(t);
    velo_metrics_destroy(m);
}

struct collect_state {
    int calls;
    struct velo_metric *g;
};

static void collect(struct velo_metrics *m, void *arg)
{
    struct collect_state *cs = arg;
    cs->calls++;
    /* a collector may create families and series (takes the lock) */
    cs->g = velo_metric_series(
        velo_metrics_family(m, "velo_test_scrapes", "Scrapes.",
                            VELO_METRIC_GAUGE, NULL, NULL, 0),
        NULL, 0);
    velo_metric_set(cs->g, cs->calls);
}

static void test_collectors(void)
{
    struct velo_metrics *m = velo_metrics_create();
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    struct collect_state cs = {0, NULL};
    CU_ASSERT_EQUAL(velo_metrics_add_collector(m, collect, &cs), VELO_OK);
    CU_ASSERT_EQUAL(velo_metrics_add_collector(m, NULL, NULL), VELO_ERR);
    char *t = render(m);
    CU_ASSERT_TRUE(has_line(t, "velo_test_scrapes 1"));
    free(t);
    t = render(m);
    CU_ASSERT_TRUE(has_line(t, "velo_test_scrapes 2"));
    free(t);
    CU_ASSERT_EQUAL(cs.calls, 2);
    velo_metrics_destroy(m);
}

static void test_process_metrics(void)
{
    struct velo_metrics *m = velo_metrics_create();
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(velo_metrics_register_process(m, "1.2.3", "abc123"),
                    VELO_OK);
    /* burn a little CPU so the counter moves */
    volatile double x = 0;
    for (long i = 0; i < 30000000; i++) {
        x += (double)i * 0.5;
    }
    char *t = render(m);
    CU_ASSERT_TRUE(
        has_line(t, "velo_build_info{version=\"1.2.3\",commit=\"abc123\"} 1"));
    CU_ASSERT_TRUE(has_line(t, "# TYPE process_cpu_seconds_total counter"));
    CU_ASSERT_TRUE(value_of(t, "process_cpu_seconds_total") > 0);
    CU_ASSERT_TRUE(value_of(t, "process_resident_memory_bytes") > 1e5);
    CU_ASSERT_TRUE(value_of(t, "process_virtual_memory_bytes") >=
                   value_of(t, "process_resident_memory_bytes"));
    double fds = value_of(t, "process_open_fds");
    CU_ASSERT_TRUE(fds >= 3);
    CU_ASSERT_TRUE(value_of(t, "process_max_fds") >= fds);
    double start = value_of(t, "process_start_time_seconds");
    double now = (double)time(NULL);
    CU_ASSERT_TRUE(start > now - 3600 && start <= now + 1);
    free(t);

    /* opening a file shows up in the next scrape */
    FILE *f = fopen("/dev/null", "r");
    t = render(m);
    CU_ASSERT_DOUBLE_EQUAL(value_of(t, "process_open_fds"), fds + 1, 0);
    free(t);
    fclose(f);
    velo_metrics_destroy(m);
}

/* Run promtool on text; @return its exit status, output in *out. */
static int promtool(const char *text, char **out)
{
    char *dir = tu_tmpdir();
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    char path[512], cmd[1024];
    snprintf(path, sizeof(path), "%s/metrics.txt", dir);
    CU_ASSERT_EQUAL(tu_write_file(path, text, strlen(text)), 0);
    snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s' 2>&1", path);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    struct tu_proc p;
    int rc = tu_run(&p, argv, NULL, 60000);
    *out = tu_proc_stdout(&p);
    unlink(p.out_path);
    unlink(p.err_path);
    tu_rmrf(dir);
    free(dir);
    return rc;
}

/*
 * The whole exposition passes `promtool check metrics` with exit 0: the
 * format parses AND the linter has nothing to say (it exits 3 on lint
 * problems such as a counter without _total). Our own names follow the
 * conventions, so we hold the renderer and our names to both.
 */
/* Plugins name a connector family's series by source, sink or lookup:
 * one job with a Kafka source and a Kafka sink registers both. */
static void test_connector_families(void)
{
    struct velo_metrics *m = velo_metrics_create();
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    velo_host_bind(NULL, m, NULL);
    const struct velo_host_api *h = velo_host_api();
    struct velo_metric *src = h->metric_counter(
        "velo_connector_errors_total", "errors", "connector=kafka,source=in");
    struct velo_metric *snk = h->metric_counter(
        "velo_connector_errors_total", "errors", "connector=kafka,sink=out");
    struct velo_metric *lk = h->metric_counter(
        "velo_connector_errors_total", "errors", "lookup=c,connector=redis");
    CU_ASSERT_PTR_NOT_NULL_FATAL(src);
    CU_ASSERT_PTR_NOT_NULL_FATAL(snk);
    CU_ASSERT_PTR_NOT_NULL_FATAL(lk);
    h->metric_add(src, 1);
    h->metric_add(snk, 2);
    h->metric_add(lk, 3);
    /* The same labels again are the same series. */
    CU_ASSERT_PTR_EQUAL(h->metric_counter("velo_connector_errors_total",
                                          "errors",
                                          "connector=kafka,sink=out"),
                        snk);
    char *t = render(m);
    CU_ASSERT_TRUE(has_line(
        t, "velo_connector_errors_total{connector=\"kafka\",source=\"in\"} 1"));
    CU_ASSERT_TRUE(has_line(
        t, "velo_connector_errors_total{connector=\"kafka\",sink=\"out\"} 2"));
    CU_ASSERT_TRUE(has_line(
        t, "velo_connector_errors_total{connector=\"redis\",lookup=\"c\"} 3"));
    free(t);
    /* Other families keep their own label sets. */
    CU_ASSERT_PTR_NOT_NULL(h->metric_gauge("velo_kafka_x", "x", "a=1"));
    CU_ASSERT_PTR_NULL(h->metric_gauge("velo_kafka_x", "x", "b=1"));
    velo_host_bind(NULL, NULL, NULL);
    velo_metrics_destroy(m);
}

static void test_promtool_accepts(void)
{
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        CU_FAIL("promtool is not installed (apt-get install prometheus)");
        return;
    }
    struct velo_metrics *m = velo_metrics_create();
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(velo_metrics_register_process(m, "0.1.0", "deadbeef"),
                    VELO_OK);
    struct velo_metric_family *c = velo_metrics_family(
        m, "velo_http_requests_total", "HTTP requests by \"route\"\\status\n.",
        VELO_METRIC_COUNTER, "route,method,status", NULL, 0);
    const char *v1[] = {"/api/\"quoted\"", "GET", "200"};
    const char *v2[] = {"C:\\path\\x", "POST", "500"};
    const char *v3[] = {"line1\nline2", "PUT", ""};
    velo_metric_inc(velo_metric_series(c, v1, 3), 12);
    velo_metric_inc(velo_metric_series(c, v2, 3), 0.5);
    velo_metric_inc(velo_metric_series(c, v3, 3), 1e21);
    struct velo_metric_family *g =
        velo_metrics_family(m, "velo_test_temperature_celsius", "Odd values.",
                            VELO_METRIC_GAUGE, "kind", NULL, 0);
    const char *k[] = {"nan", "inf", "ninf", "neg", "small"};
    double kv[] = {NAN, INFINITY, -INFINITY, -3.25, 1e-9};
    for (size_t i = 0; i < 5; i++) {
        const char *v[] = {k[i]};
        velo_metric_set(velo_metric_series(g, v, 1), kv[i]);
    }
    struct velo_metric_family *h =
        velo_metrics_family(m, "velo_http_request_duration_seconds", "Latency.",
                            VELO_METRIC_HISTOGRAM, "route", NULL, 0);
    struct velo_metric *hs = velo_metric_series(h, v1, 1);
    velo_metric_observe(hs, 0.002);
    velo_metric_observe(hs, 42);
    velo_metrics_family(m, "velo_test_empty_total", "No series yet.",
                        VELO_METRIC_COUNTER, "x", NULL, 0);
    /* a capped family, so the dropped counter has a series */
    struct velo_metric_family *capped =
        velo_metrics_family(m, "velo_test_capped_total", "Capped.",
                            VELO_METRIC_COUNTER, "i", NULL, 0);
    char buf[16];
    for (int i = 0; i <= 10000; i++) {
        snprintf(buf, sizeof(buf), "%d", i % 10001);
        const char *v[] = {buf};
        velo_metric_inc(velo_metric_series(capped, v, 1), 1);
    }

    char *t = render(m);
    char *out = NULL;
    int rc = promtool(t, &out);
    if (rc != 0) {
        fprintf(stderr, "promtool exit %d:\n%s\n--- text ---\n%.4000s\n", rc,
                out != NULL ? out : "", t);
    }
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_TRUE(out != NULL && out[0] == '\0');
    free(out);
    free(t);
    velo_metrics_destroy(m);

    /* The check has teeth: broken text and a lint problem both fail. */
    rc = promtool("velo_broken{route=\"x} 1\n", &out);
    CU_ASSERT_EQUAL(rc, 1);
    free(out);
    rc = promtool("# HELP velo_bad Bad.\n# TYPE velo_bad counter\nvelo_bad 1\n",
                  &out);
    CU_ASSERT_EQUAL(rc, 3);
    CU_ASSERT_PTR_NOT_NULL(out != NULL ? strstr(out, "_total") : NULL);
    free(out);
}

/* A histogram kept elsewhere (the job's batch latency) mirrored exactly:
 * cumulative counts in, per-bucket storage, cumulative exposition out. */
static void test_histogram_set(void)
{
    struct velo_metrics *m = velo_metrics_create();
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    static const double b[] = {0.01, 0.1, 1};
    struct velo_metric *h = velo_metric_series(
        velo_metrics_family(m, "velo_test_mirror_seconds", "Mirror.",
                            VELO_METRIC_HISTOGRAM, NULL, b, 3),
        NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    /* 7 observations: 2 <= 0.01, 5 <= 0.1, 6 <= 1, one above. */
    const uint64_t cum[] = {2, 5, 6};
    CU_ASSERT_EQUAL(velo_metric_histogram_set(h, cum, 3, 7, 3.25), VELO_OK);
    char *t = render(m);
    CU_ASSERT_TRUE(
        has_line(t, "velo_test_mirror_seconds_bucket{le=\"0.01\"} 2"));
    CU_ASSERT_TRUE(
        has_line(t, "velo_test_mirror_seconds_bucket{le=\"0.1\"} 5"));
    CU_ASSERT_TRUE(has_line(t, "velo_test_mirror_seconds_bucket{le=\"1\"} 6"));
    CU_ASSERT_TRUE(
        has_line(t, "velo_test_mirror_seconds_bucket{le=\"+Inf\"} 7"));
    CU_ASSERT_TRUE(has_line(t, "velo_test_mirror_seconds_sum 3.25"));
    CU_ASSERT_TRUE(has_line(t, "velo_test_mirror_seconds_count 7"));
    free(t);
    /* Set again (not added): the newer totals replace the older. A count
     * read mid-update that runs behind a bound is clamped, never
     * negative. */
    const uint64_t cum2[] = {3, 2, 9};
    CU_ASSERT_EQUAL(velo_metric_histogram_set(h, cum2, 3, 8, 4), VELO_OK);
    t = render(m);
    CU_ASSERT_TRUE(
        has_line(t, "velo_test_mirror_seconds_bucket{le=\"0.1\"} 3"));
    CU_ASSERT_TRUE(has_line(t, "velo_test_mirror_seconds_bucket{le=\"1\"} 9"));
    CU_ASSERT_TRUE(
        has_line(t, "velo_test_mirror_seconds_bucket{le=\"+Inf\"} 9"));
    CU_ASSERT_TRUE(has_line(t, "velo_test_mirror_seconds_count 9"));
    free(t);
    /* Wrong shape or wrong type: refused, nothing changes. */
    CU_ASSERT_EQUAL(velo_metric_histogram_set(h, cum, 2, 7, 1), VELO_ERR);
    struct velo_metric *g = velo_metric_series(
        velo_metrics_family(m, "velo_test_g", "G.", VELO_METRIC_GAUGE, NULL,
                            NULL, 0),
        NULL, 0);
    CU_ASSERT_EQUAL(velo_metric_histogram_set(g, cum, 3, 7, 1), VELO_ERR);
    CU_ASSERT_EQUAL(velo_metric_histogram_set(NULL, cum, 3, 7, 1), VELO_ERR);
    velo_metrics_destroy(m);
}

struct visited {
    int n;
    char seen[4][64];
    double values[4];
    uint64_t counts[4];
};

static void visit(void *arg, const char *const *labels, size_t n, double value,
                  uint64_t count)
{
    struct visited *v = arg;
    if (v->n < 4) {
        snprintf(v->seen[v->n], sizeof(v->seen[0]), "%s",
                 n > 0 ? labels[0] : "-");
        v->values[v->n] = value;
        v->counts[v->n] = count;
    }
    v->n++;
}

static void test_family_visit(void)
{
    struct velo_metrics *m = velo_metrics_create();
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    struct velo_metric_family *c = velo_metrics_family(
        m, "velo_test_visit_total", "V.", VELO_METRIC_COUNTER, "k", NULL, 0);
    const char *a[] = {"a"}, *b[] = {"b"};
    velo_metric_inc(velo_metric_series(c, b, 1), 2);
    velo_metric_inc(velo_metric_series(c, a, 1), 5);
    struct visited v = {0};
    velo_metrics_family_visit(c, visit, &v);
    CU_ASSERT_EQUAL(v.n, 2);
    CU_ASSERT_STRING_EQUAL(v.seen[0], "b"); /* creation order */
    CU_ASSERT_DOUBLE_EQUAL(v.values[0], 2, 0);
    CU_ASSERT_STRING_EQUAL(v.seen[1], "a");
    CU_ASSERT_DOUBLE_EQUAL(v.values[1], 5, 0);
    CU_ASSERT_EQUAL(v.counts[1], 0);
    struct velo_metric_family *h =
        velo_metrics_family(m, "velo_test_visit_seconds", "H.",
                            VELO_METRIC_HISTOGRAM, NULL, NULL, 0);
    struct velo_metric *hs = velo_metric_series(h, NULL, 0);
    velo_metric_observe(hs, 0.5);
    velo_metric_observe(hs, 100);
    memset(&v, 0, sizeof(v));
    velo_metrics_family_visit(h, visit, &v);
    CU_ASSERT_EQUAL(v.n, 1);
    CU_ASSERT_STRING_EQUAL(v.seen[0], "-");
    CU_ASSERT_DOUBLE_EQUAL(v.values[0], 100.5, 1e-9); /* the sum */
    CU_ASSERT_EQUAL(v.counts[0], 2);
    velo_metrics_family_visit(NULL, visit, &v); /* no crash */
    velo_metrics_destroy(m);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 1;
    }
    CU_pSuite s = CU_add_suite("metrics", NULL, NULL);
    CU_add_test(s, "counter and gauge", test_counter_gauge);
    CU_add_test(s, "family rules", test_family_rules);
    CU_add_test(s, "histogram", test_histogram);
    CU_add_test(s, "escaping and values", test_escaping_and_values);
    CU_add_test(s, "series cap", test_series_cap);
    CU_add_test(s, "concurrent updates", test_concurrent_updates);
    CU_add_test(s, "collectors", test_collectors);
    CU_add_test(s, "process metrics", test_process_metrics);
    CU_add_test(s, "promtool accepts the exposition", test_promtool_accepts);
    CU_add_test(s, "histogram mirrored", test_histogram_set);
    CU_add_test(s, "family visit", test_family_visit);
    CU_add_test(s, "connector families share labels",
                test_connector_families);
    return tu_run_all();
}
