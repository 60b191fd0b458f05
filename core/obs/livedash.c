/*
 * `velo run --dashboard`: a live page served by the running job on the
 * same listener as /metrics. GET /dashboard is one self-contained HTML
 * page (vanilla JS, no external assets) that polls GET /api/job every
 * second: the job's counters, per source and per operator stats, the last
 * output rows of each statement and the current @metric values.
 *
 * The last rows come from a callback operator attached to each
 * statement's output, like the @metric ones: per batch it formats at most
 * LIVE_ROWS rows (the batch's tail) as JSON arrays into a fixed ring of
 * text slots, so watching the output allocates nothing per record. The
 * JSON answer is built per request, which happens once a second.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>

#include "exec/batch.h"
#include "exec/expr.h"
#include "formats/format.h"
#include "obs/jobmetrics-internal.h"
#include "obs/jobmetrics.h"
#include "util/log.h"

#define LIVE_ROWS 20       /* last rows kept per statement */
#define LIVE_ROW_TEXT 2048 /* one row as a JSON array */
#define LIVE_CELL_MAX 200  /* bytes of a text value shown */
#define LIVE_MAX_SERIES 50 /* series of one @metric in the answer */

struct live_stmt {
    struct velo_obs_live *live;
    size_t statement;
    const struct velo_plan_sink *sink;
    struct velo_op *op; /* the callback op, owned */
    uint64_t total;     /* rows seen (retractions too) */
    size_t next, count; /* ring position and fill */
    uint8_t ops[LIVE_ROWS];
    uint8_t fits[LIVE_ROWS];
    char rows[LIVE_ROWS][LIVE_ROW_TEXT];
};

struct velo_obs_live {
    struct velo_obs_job_metrics *jm;
    struct live_stmt *stmts;
    size_t nstmts;
    int64_t started_us; /* monotonic */
    const char *state;  /* "running", "finished" or "failed" */
};

/* ---- One row as JSON, into a fixed buffer ----------------------------- */

struct fixw {
    char *p;
    size_t len, cap;
    int over;
};

static void fw_put(struct fixw *w, const char *s, size_t n)
{
    if (w->over || w->len + n + 1 > w->cap) {
        w->over = 1;
        return;
    }
    memcpy(w->p + w->len, s, n);
    w->len += n;
    w->p[w->len] = '\0';
}

static void fw_puts(struct fixw *w, const char *s)
{
    fw_put(w, s, strlen(s));
}

/* A JSON string of at most LIVE_CELL_MAX bytes of s, cut on a UTF-8
 * boundary and marked with an ellipsis when cut. */
static void fw_string(struct fixw *w, const char *s, size_t n)
{
    int cut = 0;
    if (n > LIVE_CELL_MAX) {
        n = LIVE_CELL_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) {
            n--;
        }
        cut = 1;
    }
    fw_put(w, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\') {
            run++;
            continue;
        }
        fw_put(w, s + i - run, run);
        run = 0;
        char esc[8];
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            esc[2] = '\0';
        } else {
            snprintf(esc, sizeof(esc), "\\u%04x", ch);
        }
        fw_puts(w, esc);
    }
    fw_put(w, s + n - run, run);
    if (cut) {
        fw_puts(w, "\xe2\x80\xa6"); /* ... */
    }
    fw_put(w, "\"", 1);
}

static void fw_value(struct fixw *w, const struct velo_column *c, size_t r)
{
    char num[64];
    if (c->has_nulls && c->nulls[r]) {
        fw_puts(w, "null");
        return;
    }
    switch (c->type.id) {
    case VELO_TYPE_BOOLEAN:
        fw_puts(w, c->v.u8[r] ? "true" : "false");
        break;
    case VELO_TYPE_INTEGER:
    case VELO_TYPE_BIGINT:
    case VELO_TYPE_INTERVAL:
        snprintf(num, sizeof(num), "%" PRId64, c->v.i64[r]);
        fw_puts(w, num);
        break;
    case VELO_TYPE_DOUBLE:
        if (!isfinite(c->v.f64[r])) {
            fw_puts(w, "null"); /* JSON has no NaN or Infinity */
        } else {
            velo_format_double(c->v.f64[r], num, sizeof(num));
            fw_puts(w, num);
        }
        break;
    case VELO_TYPE_DECIMAL:
        velo_dec_format(c->v.i64[r], c->type.scale, num, sizeof(num));
        fw_puts(w, num);
        break;
    case VELO_TYPE_TIMESTAMP: {
        size_t n = velo_format_timestamp(c->v.i64[r], num, sizeof(num));
        fw_string(w, num, n);
        break;
    }
    case VELO_TYPE_DATE: {
        size_t n = velo_format_date(c->v.i64[r], num, sizeof(num));
        fw_string(w, num, n);
        break;
    }
    case VELO_TYPE_BYTES:
        snprintf(num, sizeof(num), "(%zu bytes)", c->v.str[r].len);
        fw_string(w, num, strlen(num));
        break;
    default:
        fw_string(w, c->v.str[r].ptr, c->v.str[r].len);
        break;
    }
}

static int live_on_batch(void *arg, struct velo_batch *b)
{
    struct live_stmt *ls = arg;
    const struct velo_schema *sc = ls->sink->schema;
    size_t live = velo_batch_live(b);
    ls->total += live;
    size_t from = live > LIVE_ROWS ? live - LIVE_ROWS : 0;
    for (size_t k = from; k < live; k++) {
        size_t r = b->sel != NULL ? b->sel[k] : k;
        size_t slot = ls->next;
        ls->next = (ls->next + 1) % LIVE_ROWS;
        if (ls->count < LIVE_ROWS) {
            ls->count++;
        }
        struct fixw w = {ls->rows[slot], 0, LIVE_ROW_TEXT, 0};
        fw_put(&w, "[", 1);
        int first = 1;
        for (size_t c = 0; c < b->ncols && c < sc->n; c++) {
            if (sc->fields[c].hidden) {
                continue;
            }
            if (!first) {
                fw_put(&w, ",", 1);
            }
            first = 0;
            fw_value(&w, &b->cols[c], r);
        }
        fw_put(&w, "]", 1);
        ls->fits[slot] = !w.over;
        ls->ops[slot] = b->op != NULL ? b->op[r] : VELO_ROW_INSERT;
    }
    return VELO_OK;
}

/* ---- GET /api/job ------------------------------------------------------- */

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* NaN and the "none" markers become null: JSON has no NaN. */
static json_t *jreal(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *jtime(int64_t us)
{
    return us == INT64_MIN ? json_null() : json_real((double)us / 1e6);
}

static json_t *jdelay(int64_t now, int64_t us)
{
    return us == INT64_MIN ? json_null() : json_real((double)(now - us) / 1e6);
}

/* The smallest bucket bound holding quantile q of the batches: an upper
 * estimate, as Prometheus' histogram_quantile would interpolate in it. */
static double latency_quantile(const struct velo_job_stats *st, double q)
{
    if (st->batches == 0) {
        return NAN;
    }
    double want = q * (double)st->batches;
    for (size_t i = 0; i < VELO_JOB_LATENCY_BUCKETS; i++) {
        if ((double)st->batch_latency_le[i] >= want) {
            return velo_job_latency_bounds[i];
        }
    }
    return INFINITY; /* above the last bound: reported as null */
}

static json_t *stats_json(const struct velo_obs_live *l, int64_t now)
{
    struct velo_job_stats st;
    velo_job_get_stats(l->jm->job, &st);
    const struct velo_plan *p = l->jm->plan;
    size_t srows = 0, sbytes = 0;
    for (size_t i = 0; i < p->nops; i++) {
        srows += p->ops[i]->stats.state_rows;
        sbytes += p->ops[i]->stats.state_bytes;
    }
    json_t *o = json_object();
    json_object_set_new(o, "records_in",
                        json_integer((json_int_t)st.records_in));
    json_object_set_new(o, "records_out",
                        json_integer((json_int_t)st.records_out));
    json_object_set_new(o, "bytes_in", json_integer((json_int_t)st.bytes_in));
    json_object_set_new(o, "bad_records",
                        json_integer((json_int_t)st.bad_records));
    json_object_set_new(o, "failed_rows",
                        json_integer((json_int_t)st.failed_rows));
    json_object_set_new(o, "late_rows", json_integer((json_int_t)st.late_rows));
    json_object_set_new(o, "dead_lettered",
                        json_integer((json_int_t)st.dead_lettered));
    json_object_set_new(o, "batches", json_integer((json_int_t)st.batches));
    json_object_set_new(
        o, "batch_latency_avg_s",
        jreal(st.batches ? st.batch_latency_sum_s / (double)st.batches : NAN));
    json_object_set_new(o, "batch_latency_p99_s",
                        jreal(latency_quantile(&st, 0.99)));
    json_object_set_new(o, "watermark", jtime(st.watermark_us));
    json_object_set_new(o, "watermark_delay_s", jdelay(now, st.watermark_us));
    json_object_set_new(o, "max_event_time", jtime(st.max_event_time_us));
    json_object_set_new(o, "state_rows", json_integer((json_int_t)srows));
    json_object_set_new(o, "state_bytes", json_integer((json_int_t)sbytes));
    json_object_set_new(o, "checkpoints",
                        json_integer((json_int_t)st.checkpoints));
    json_object_set_new(
        o, "last_checkpoint_age_s",
        st.checkpoint_last_us > 0
            ? json_real((double)(now - st.checkpoint_last_us) / 1e6)
            : json_null());
    json_object_set_new(o, "checkpoint_duration_s",
                        st.checkpoints ? jreal(st.checkpoint_last_s)
                                       : json_null());
    return o;
}

static json_t *sources_json(const struct velo_obs_live *l, int64_t now)
{
    json_t *a = json_array();
    size_t n = velo_job_nsources(l->jm->job);
    for (size_t i = 0; i < n; i++) {
        struct velo_job_source_stats ss;
        velo_job_source_stats(l->jm->job, i, &ss);
        json_array_append_new(
            a, json_pack("{s:s, s:I, s:I, s:I, s:o, s:o, s:b, s:b}", "name",
                         ss.name != NULL ? ss.name : "", "records",
                         (json_int_t)ss.records, "bytes", (json_int_t)ss.bytes,
                         "bad_records", (json_int_t)ss.bad_records, "lag",
                         ss.lag >= 0 ? json_integer((json_int_t)ss.lag)
                                     : json_null(),
                         "watermark_delay_s", jdelay(now, ss.watermark_us),
                         "bounded", ss.bounded, "ended", ss.ended));
    }
    return a;
}

static json_t *operators_json(const struct velo_obs_live *l)
{
    const struct velo_obs_job_metrics *jm = l->jm;
    json_t *a = json_array();
    for (size_t i = 0; i < jm->plan->nops; i++) {
        const struct velo_op *op = jm->plan->ops[i];
        const char *st =
            jm->op_stmt[i] >= 0 ? jm->stmt_names[jm->op_stmt[i]] : "shared";
        json_array_append_new(
            a, json_pack("{s:I, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "id",
                         (json_int_t)i, "statement", st, "name", op->ops->name,
                         "rows_in", (json_int_t)op->stats.rows_in, "rows_out",
                         (json_int_t)op->stats.rows_out, "rows_failed",
                         (json_int_t)op->stats.rows_failed, "rows_late",
                         (json_int_t)op->stats.rows_late, "state_rows",
                         (json_int_t)op->stats.state_rows, "state_bytes",
                         (json_int_t)op->stats.state_bytes));
    }
    return a;
}

static int is_numeric(int id)
{
    return id == VELO_TYPE_INTEGER || id == VELO_TYPE_BIGINT ||
           id == VELO_TYPE_DOUBLE || id == VELO_TYPE_DECIMAL;
}

static json_t *statements_json(const struct velo_obs_live *l)
{
    const struct velo_obs_job_metrics *jm = l->jm;
    json_t *a = json_array();
    for (size_t i = 0; i < l->nstmts; i++) {
        const struct live_stmt *ls = &l->stmts[i];
        const struct velo_plan_statement *ps =
            &jm->plan->statements[ls->statement];
        json_t *cols = json_array();
        const struct velo_schema *sc = ls->sink->schema;
        for (size_t c = 0; c < sc->n; c++) {
            if (sc->fields[c].hidden) {
                continue;
            }
            int id = sc->fields[c].type.id;
            json_array_append_new(
                cols,
                json_pack("{s:s, s:b, s:b}", "name", sc->fields[c].name,
                          "numeric", is_numeric(id), "time",
                          id == VELO_TYPE_TIMESTAMP || id == VELO_TYPE_DATE));
        }
        json_t *rows = json_array();
        /* Oldest first: the ring starts at next once it is full. */
        size_t start = ls->count < LIVE_ROWS ? 0 : ls->next;
        for (size_t k = 0; k < ls->count; k++) {
            size_t s = (start + k) % LIVE_ROWS;
            json_t *vals = NULL;
            if (ls->fits[s]) {
                vals = json_loads(ls->rows[s], JSON_DECODE_ANY, NULL);
            }
            static const char *const opn[] = {"+", "~", "-"};
            json_array_append_new(
                rows, json_pack("{s:s, s:o}", "op",
                                opn[ls->ops[s] <= 2 ? ls->ops[s] : 0], "values",
                                vals != NULL ? vals : json_null()));
        }
        json_array_append_new(
            a, json_pack("{s:I, s:s, s:s, s:i, s:s, s:b, s:I, s:o, s:o}",
                         "index", (json_int_t)ls->statement, "name",
                         jm->stmt_names[ls->statement], "kind", ps->kind,
                         "line", ps->line, "sink", ls->sink->name, "changelog",
                         ls->sink->changelog, "rows_total",
                         (json_int_t)ls->total, "columns", cols, "rows", rows));
    }
    return a;
}

struct series_json {
    json_t *arr;
    size_t n, total;
};

static void add_series(void *arg, const char *const *labels, size_t n,
                       double value, uint64_t count)
{
    struct series_json *sj = arg;
    sj->total++;
    if (sj->n >= LIVE_MAX_SERIES) {
        return;
    }
    sj->n++;
    json_t *lv = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(lv, json_string(labels[i]));
    }
    json_array_append_new(sj->arr,
                          json_pack("{s:o, s:o, s:I}", "labels", lv, "value",
                                    jreal(value), "count", (json_int_t)count));
}

static json_t *metrics_json(const struct velo_obs_live *l)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    const struct velo_obs_job_metrics *jm = l->jm;
    json_t *a = json_array();
    for (size_t i = 0; i < jm->nann; i++) {
        const struct velo_obs_annotated *an = &jm->ann[i];
        const struct velo_obs_metric_spec *sp = an->spec;
        json_t *labels = json_array();
        for (size_t k = 0; k < sp->nlabels; k++) {
            json_array_append_new(labels, json_string(sp->labels[k]));
        }
        struct series_json sj = {json_array(), 0, 0};
        velo_metrics_family_visit(an->fam, add_series, &sj);
        json_array_append_new(
            a, json_pack("{s:s, s:s, s:s, s:o, s:o, s:I}", "name", sp->name,
                         "type", types[sp->type], "help", sp->help, "labels",
                         labels, "series", sj.arr, "series_total",
                         (json_int_t)sj.total));
    }
    return a;
}

static void send_text(struct evhttp_request *req, const char *type,
                      const char *text, size_t len)
{
    struct evbuffer *out = evbuffer_new();
    if (out == NULL) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    evbuffer_add(out, text, len);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

char *velo_obs_live_json(const struct velo_obs_live *l)
{
    int64_t now = velo_obs_wall_us();
    json_t *doc = json_pack(
        "{s:s, s:s, s:s, s:f, s:f, s:o, s:o, s:o, s:o, s:o}", "query",
        l->jm->name, "state", l->state, "version", VELO_VERSION, "now",
        (double)now / 1e6, "uptime_s",
        (double)(mono_us() - l->started_us) / 1e6, "stats", stats_json(l, now),
        "sources", sources_json(l, now), "statements", statements_json(l),
        "operators", operators_json(l), "metrics", metrics_json(l));
    if (doc == NULL) {
        return NULL;
    }
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

static void api_handler(struct evhttp_request *req, void *arg)
{
    char *text = velo_obs_live_json(arg);
    if (text == NULL) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    send_text(req, "application/json", text, strlen(text));
    free(text);
}

static void page_handler(struct evhttp_request *req, void *arg)
{
    (void)arg;
    send_text(req, "text/html; charset=utf-8", velo_obs_live_page,
              velo_obs_live_page_len);
}

static void root_handler(struct evhttp_request *req, void *arg)
{
    (void)arg;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Location",
                      "/dashboard");
    evhttp_send_reply(req, 302, "Found", NULL);
}

/* ---- Lifecycle ------------------------------------------------------------
 */

struct velo_obs_live *velo_obs_live_create(struct velo_obs_job_metrics *jm,
                                           struct velo_obs_metrics_http *h)
{
    const struct velo_plan *p = jm->plan;
    struct velo_obs_live *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        return NULL;
    }
    l->jm = jm;
    l->started_us = mono_us();
    l->state = "running";
    l->stmts = calloc(p->nsinks ? p->nsinks : 1, sizeof(*l->stmts));
    if (l->stmts == NULL) {
        free(l);
        return NULL;
    }
    /* One view per statement: the first sink of each (a statement with
     * several sinks sends them the same rows). */
    for (size_t i = 0; i < p->nsinks; i++) {
        const struct velo_plan_sink *sk = &p->sinks[i];
        int seen = 0;
        for (size_t k = 0; k < l->nstmts; k++) {
            seen |= l->stmts[k].statement == sk->statement;
        }
        if (seen || sk->upstream == NULL) {
            continue;
        }
        struct live_stmt *ls = &l->stmts[l->nstmts++];
        ls->live = l;
        ls->statement = sk->statement;
        ls->sink = sk;
        struct velo_op *up = sk->upstream;
        char name[VELO_NAME_MAX + 32];
        snprintf(name, sizeof(name), "dashboard %s",
                 jm->stmt_names[sk->statement]);
        ls->op = velo_op_callback(up->env, up->out_schema, live_on_batch, NULL,
                                  ls, name);
        if (ls->op == NULL || velo_op_connect(up, ls->op) != VELO_OK) {
            velo_log_error("dashboard: cannot watch the output of %s",
                           jm->stmt_names[sk->statement]);
            velo_obs_live_destroy(l);
            return NULL;
        }
    }
    if (velo_obs_metrics_http_route(h, "/api/job", api_handler, l) != VELO_OK ||
        velo_obs_metrics_http_route(h, "/dashboard", page_handler, l) !=
            VELO_OK ||
        velo_obs_metrics_http_route(h, "/", root_handler, l) != VELO_OK) {
        velo_log_error("dashboard: cannot add its pages to the listener");
        velo_obs_live_destroy(l);
        return NULL;
    }
    return l;
}

void velo_obs_live_finished(struct velo_obs_live *l, int ok)
{
    if (l != NULL) {
        l->state = ok ? "finished" : "failed";
    }
}

void velo_obs_live_destroy(struct velo_obs_live *l)
{
    if (l == NULL) {
        return;
    }
    for (size_t i = 0; i < l->nstmts; i++) {
        struct live_stmt *ls = &l->stmts[i];
        if (ls->op != NULL) {
            velo_obs_unhook(ls->sink->upstream, ls->op);
            velo_op_destroy(ls->op);
        }
    }
    free(l->stmts);
    free(l);
}
