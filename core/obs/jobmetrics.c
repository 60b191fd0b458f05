/*
 * Engine and annotated metrics of one job.
 *
 * Annotated metrics: one callback operator per @metric, connected as an
 * extra child of the operator that feeds the statement's sink, so every
 * output batch of the statement passes through it after planning and
 * nothing in the job runner changes. Per batch: the condition is
 * evaluated once over the batch (vectorized); per row, the label values
 * are formatted into a fixed scratch buffer and looked up in a small
 * open-addressing cache of series, so an update allocates nothing unless
 * the row brings a label set not seen before.
 */
#include "obs/jobmetrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "util/log.h"

#define LABEL_BUF 4096 /* formatted label values of one row */

struct series_slot {
    uint64_t hash;
    char *key; /* label values joined by '\0', owned */
    size_t keylen;
    struct velo_metric *s;
};

struct annotated {
    struct velo_obs_job_metrics *jm;
    const struct velo_obs_metric_spec *spec;
    struct velo_metric_family *fam;
    struct velo_metric *dropped; /* velo_metrics_dropped_series_total{..} */
    struct velo_op *op;          /* the callback op, owned */
    struct velo_evaluator *ev;
    struct velo_eval_ctx ctx;
    struct velo_arena *arena;
    size_t cap_rows;
    struct series_slot *slots;
    size_t nslots, nseries, cap;
    char buf[LABEL_BUF];
};

struct op_series {
    struct velo_metric *in, *out, *failed, *late, *state_rows, *state_bytes;
};

struct velo_obs_job_metrics {
    struct velo_metrics *m;
    struct velo_job *job;
    const struct velo_plan *plan;
    struct annotated *ann;
    size_t nann;
    /* engine series */
    struct velo_metric *records_in, *records_out, *bad, *failed, *late,
        *bytes_in;
    struct op_series *ops;
    size_t nops;
    struct velo_metric **source_records;
};

/* ---- Engine metrics ------------------------------------------------------ */

/* Counters only grow: bring the series up to the job's own count. */
static void counter_to(struct velo_metric *s, double v)
{
    if (s == NULL) {
        return;
    }
    double cur = velo_metric_value(s);
    if (v > cur) {
        velo_metric_inc(s, v - cur);
    }
}

void velo_obs_job_metrics_refresh(struct velo_obs_job_metrics *jm)
{
    struct velo_job_stats st;
    velo_job_get_stats(jm->job, &st);
    counter_to(jm->records_in, (double)st.records_in);
    counter_to(jm->records_out, (double)st.records_out);
    counter_to(jm->bad, (double)st.bad_records);
    counter_to(jm->failed, (double)st.failed_rows);
    counter_to(jm->late, (double)st.late_rows);
    counter_to(jm->bytes_in, (double)st.bytes_in);
    for (size_t i = 0; i < jm->nops; i++) {
        const struct velo_op *op = jm->plan->ops[i];
        struct op_series *s = &jm->ops[i];
        counter_to(s->in, (double)op->stats.rows_in);
        counter_to(s->out, (double)op->stats.rows_out);
        counter_to(s->failed, (double)op->stats.rows_failed);
        counter_to(s->late, (double)op->stats.rows_late);
        velo_metric_set(s->state_rows, (double)op->stats.state_rows);
        velo_metric_set(s->state_bytes, (double)op->stats.state_bytes);
    }
    for (size_t i = 0; i < jm->plan->nsources; i++) {
        const struct velo_op *e = jm->plan->sources[i].entry;
        if (e != NULL) {
            counter_to(jm->source_records[i], (double)e->stats.rows_in);
        }
    }
}

static void collect(struct velo_metrics *m, void *arg)
{
    (void)m;
    velo_obs_job_metrics_refresh(arg);
}

static struct velo_metric *one(struct velo_metrics *m, const char *name,
                               const char *help, int type,
                               const char *labels, const char *const *v,
                               size_t n)
{
    struct velo_metric_family *f =
        velo_metrics_family(m, name, help, type, labels, NULL, 0);
    return f != NULL ? velo_metric_series(f, v, n) : NULL;
}

static int register_engine(struct velo_obs_job_metrics *jm, const char *name)
{
    struct velo_metrics *m = jm->m;
    const char *q[1] = {name};
    jm->records_in = one(m, "velo_job_records_in_total",
                         "Records decoded from the job's sources.",
                         VELO_METRIC_COUNTER, "query", q, 1);
    jm->records_out = one(m, "velo_job_records_out_total",
                          "Rows handed to the job's sinks.",
                          VELO_METRIC_COUNTER, "query", q, 1);
    jm->bad = one(m, "velo_job_bad_records_total",
                  "Records that could not be decoded (skipped).",
                  VELO_METRIC_COUNTER, "query", q, 1);
    jm->failed = one(m, "velo_job_failed_rows_total",
                     "Rows that failed evaluation (skipped).",
                     VELO_METRIC_COUNTER, "query", q, 1);
    jm->late = one(m, "velo_job_late_rows_total",
                   "Rows for windows that had already closed (dropped).",
                   VELO_METRIC_COUNTER, "query", q, 1);
    jm->bytes_in = one(m, "velo_job_bytes_in_total",
                       "Bytes read from the job's sources.",
                       VELO_METRIC_COUNTER, "query", q, 1);
    if (jm->records_in == NULL || jm->records_out == NULL || jm->bad == NULL ||
        jm->failed == NULL || jm->late == NULL || jm->bytes_in == NULL) {
        return VELO_ERR;
    }
    const struct velo_plan *p = jm->plan;
    jm->nops = p->nops;
    jm->ops = calloc(p->nops ? p->nops : 1, sizeof(*jm->ops));
    jm->source_records =
        calloc(p->nsources ? p->nsources : 1, sizeof(*jm->source_records));
    if (jm->ops == NULL || jm->source_records == NULL) {
        return VELO_ERR;
    }
    static const char ol[] = "query,op_id,operator";
    for (size_t i = 0; i < p->nops; i++) {
        char id[24];
        snprintf(id, sizeof(id), "%zu", i);
        const char *v[3] = {name, id, p->ops[i]->ops->name};
        struct op_series *s = &jm->ops[i];
        s->in = one(m, "velo_operator_rows_in_total",
                    "Rows pushed into the operator.", VELO_METRIC_COUNTER,
                    ol, v, 3);
        s->out = one(m, "velo_operator_rows_out_total",
                     "Rows the operator emitted.", VELO_METRIC_COUNTER, ol,
                     v, 3);
        s->failed = one(m, "velo_operator_rows_failed_total",
                        "Rows that failed evaluation in the operator.",
                        VELO_METRIC_COUNTER, ol, v, 3);
        s->late = one(m, "velo_operator_rows_late_total",
                      "Rows that arrived for closed windows.",
                      VELO_METRIC_COUNTER, ol, v, 3);
        s->state_rows = one(m, "velo_operator_state_rows",
                            "Rows (groups, buffered rows) the operator "
                            "holds as state.",
                            VELO_METRIC_GAUGE, ol, v, 3);
        s->state_bytes = one(m, "velo_operator_state_bytes",
                             "Memory the operator holds for state.",
                             VELO_METRIC_GAUGE, ol, v, 3);
    }
    for (size_t i = 0; i < p->nsources; i++) {
        const char *v[2] = {name, p->sources[i].name};
        jm->source_records[i] =
            one(m, "velo_source_records_total",
                "Records decoded from the source.", VELO_METRIC_COUNTER,
                "query,source", v, 2);
    }
    return velo_metrics_add_collector(m, collect, jm);
}

/* ---- Annotated metrics ----------------------------------------------------- */

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* Append one label value of row r to buf at *o ('\0'-terminated).
 * @return VELO_ERR when it does not fit. */
static int format_value(const struct velo_column *c, size_t r, char *buf,
                        size_t *o)
{
    size_t room = LABEL_BUF - *o;
    int n = 0;
    char *p = buf + *o;
    if (c->has_nulls && c->nulls[r]) {
        n = 0; /* an empty label value: Prometheus shows it as absent */
    } else {
        switch (c->type.id) {
        case VELO_TYPE_BOOLEAN:
            n = snprintf(p, room, "%s", c->v.u8[r] ? "true" : "false");
            break;
        case VELO_TYPE_INTEGER:
        case VELO_TYPE_BIGINT:
        case VELO_TYPE_INTERVAL:
            n = snprintf(p, room, "%" PRId64, c->v.i64[r]);
            break;
        case VELO_TYPE_DATE: {
            time_t t = (time_t)(c->v.i64[r] * 86400);
            struct tm tm;
            gmtime_r(&t, &tm);
            n = (int)strftime(p, room, "%Y-%m-%d", &tm);
            break;
        }
        case VELO_TYPE_TIMESTAMP: {
            int64_t us = c->v.i64[r];
            time_t t = (time_t)(us >= 0 ? us / 1000000
                                        : -((-us + 999999) / 1000000));
            struct tm tm;
            gmtime_r(&t, &tm);
            n = (int)strftime(p, room, "%Y-%m-%dT%H:%M:%SZ", &tm);
            break;
        }
        case VELO_TYPE_DOUBLE:
            n = snprintf(p, room, "%.17g", c->v.f64[r]);
            break;
        case VELO_TYPE_DECIMAL:
            n = (int)velo_dec_format(c->v.i64[r], c->type.scale, p, room);
            break;
        default: {
            const struct velo_str *s = &c->v.str[r];
            if (s->len + 1 > room) {
                return VELO_ERR;
            }
            memcpy(p, s->ptr, s->len);
            n = (int)s->len;
            break;
        }
        }
    }
    if (n < 0 || (size_t)n + 1 > room) {
        return VELO_ERR;
    }
    p[n] = '\0';
    *o += (size_t)n + 1;
    return VELO_OK;
}

static double value_of(const struct velo_column *c, size_t r)
{
    switch (c->type.id) {
    case VELO_TYPE_BOOLEAN:
        return c->v.u8[r] ? 1.0 : 0.0;
    case VELO_TYPE_DOUBLE:
        return c->v.f64[r];
    case VELO_TYPE_DECIMAL:
        return velo_dec_to_double(c->v.i64[r], c->type.scale);
    default:
        return (double)c->v.i64[r];
    }
}

static void count_drop(struct annotated *a)
{
    velo_metric_inc(a->dropped, 1.0);
}

/* The series for row r, from the cache or made now. NULL: dropped. */
static struct velo_metric *series_for(struct annotated *a,
                                      const struct velo_batch *b, size_t r)
{
    const struct velo_obs_metric_spec *sp = a->spec;
    if (sp->nlabels == 0) {
        if (a->nseries == 0) {
            a->slots[0].s = velo_metric_series(a->fam, NULL, 0);
            a->nseries = 1;
        }
        return a->slots[0].s;
    }
    size_t o = 0;
    for (size_t i = 0; i < sp->nlabels; i++) {
        if (format_value(&b->cols[sp->label_cols[i]], r, a->buf, &o) !=
            VELO_OK) {
            count_drop(a); /* a label value over 4 KiB */
            return NULL;
        }
    }
    uint64_t h = fnv1a(a->buf, o);
    size_t mask = a->nslots - 1;
    for (size_t k = (size_t)h & mask;; k = (k + 1) & mask) {
        struct series_slot *sl = &a->slots[k];
        if (sl->key == NULL) {
            break;
        }
        if (sl->hash == h && sl->keylen == o &&
            memcmp(sl->key, a->buf, o) == 0) {
            return sl->s;
        }
    }
    if (a->nseries >= a->cap) {
        count_drop(a);
        return NULL;
    }
    const char *vals[VELO_OBS_MAX_LABELS];
    size_t p = 0;
    for (size_t i = 0; i < sp->nlabels; i++) {
        vals[i] = a->buf + p;
        p += strlen(a->buf + p) + 1;
    }
    struct velo_metric *s = velo_metric_series(a->fam, vals, sp->nlabels);
    if (s == NULL) {
        return NULL; /* the registry's own cap: it counted the drop */
    }
    char *key = malloc(o);
    if (key == NULL) {
        return s;
    }
    memcpy(key, a->buf, o);
    /* The cache holds at most cap entries at under half load. */
    for (size_t k = (size_t)h & mask;; k = (k + 1) & mask) {
        if (a->slots[k].key == NULL) {
            a->slots[k].key = key;
            a->slots[k].keylen = o;
            a->slots[k].hash = h;
            a->slots[k].s = s;
            break;
        }
    }
    a->nseries++;
    return s;
}

static int on_batch(void *arg, struct velo_batch *b)
{
    struct annotated *a = arg;
    const struct velo_obs_metric_spec *sp = a->spec;
    const struct velo_column *cond = NULL;
    if (a->ev != NULL) {
        velo_arena_reset(a->arena);
        a->ctx.arena = a->arena;
        a->ctx.now_us = 0;
        cond = velo_evaluate(a->ev, &a->ctx, b);
    }
    size_t live = velo_batch_live(b);
    const struct velo_column *vc =
        sp->field_col >= 0 ? &b->cols[sp->field_col] : NULL;
    for (size_t k = 0; k < live; k++) {
        size_t r = b->sel != NULL ? b->sel[k] : k;
        if (b->op != NULL && b->op[r] == VELO_ROW_DELETE) {
            continue; /* a retraction is not an event to count */
        }
        if (cond != NULL &&
            (a->ctx.row_error[r] || (cond->has_nulls && cond->nulls[r]) ||
             !cond->v.u8[r])) {
            continue;
        }
        double v = 1.0;
        if (vc != NULL) {
            if (vc->has_nulls && vc->nulls[r]) {
                continue;
            }
            v = value_of(vc, r);
        }
        struct velo_metric *s = series_for(a, b, r);
        if (s == NULL) {
            continue;
        }
        switch (sp->type) {
        case VELO_METRIC_COUNTER:
            if (v >= 0) { /* a counter never goes down */
                velo_metric_inc(s, v);
            }
            break;
        case VELO_METRIC_GAUGE:
            velo_metric_set(s, v);
            break;
        default:
            velo_metric_observe(s, v);
            break;
        }
    }
    if (a->ev != NULL && a->ctx.n_errors > 0) {
        velo_eval_ctx_clear(&a->ctx, a->cap_rows);
    }
    return VELO_OK;
}

static int attach(struct velo_obs_job_metrics *jm, struct annotated *a,
                  const struct velo_obs_metric_spec *sp, size_t cap)
{
    a->jm = jm;
    a->spec = sp;
    a->cap = cap;
    char labels[VELO_OBS_MAX_LABELS * (VELO_NAME_MAX + 1) + 1];
    size_t o = 0;
    labels[0] = '\0';
    for (size_t i = 0; i < sp->nlabels; i++) {
        o += (size_t)snprintf(labels + o, sizeof(labels) - o, "%s%s",
                              i ? "," : "", sp->labels[i]);
    }
    a->fam = velo_metrics_family(jm->m, sp->name, sp->help, sp->type,
                                 sp->nlabels ? labels : NULL,
                                 sp->nbuckets ? sp->buckets : NULL,
                                 sp->nbuckets);
    if (a->fam == NULL) {
        velo_log_error("metric %s: cannot register it (%s)", sp->name,
                       errno == EEXIST ? "the name is used with another "
                                         "type or labels"
                                       : strerror(errno));
        return VELO_ERR;
    }
    /* Drops are counted in the registry's own family, per metric. */
    struct velo_metric_family *d = velo_metrics_family(
        jm->m, "velo_metrics_dropped_series_total",
        "Updates dropped because a metric family reached its series limit.",
        VELO_METRIC_COUNTER, "family", NULL, 0);
    const char *dv[1] = {sp->name};
    a->dropped = d != NULL ? velo_metric_series(d, dv, 1) : NULL;
    size_t ns = 2;
    while (ns < cap * 2 + 2) {
        ns *= 2;
    }
    a->nslots = sp->nlabels ? ns : 1;
    a->slots = calloc(a->nslots, sizeof(*a->slots));
    if (a->slots == NULL) {
        return VELO_ERR;
    }
    struct velo_op *up = sp->sink->upstream;
    a->cap_rows = up->env->batch_cap ? up->env->batch_cap : VELO_BATCH_ROWS;
    if (sp->cond != NULL) {
        a->ev = velo_expr_compile(sp->cond, up->out_schema, a->cap_rows);
        a->arena = velo_arena_create(16 * 1024);
        if (a->ev == NULL || a->arena == NULL ||
            velo_eval_ctx_init(&a->ctx, a->cap_rows, 0) != VELO_OK) {
            return VELO_ERR;
        }
    }
    char name[200];
    snprintf(name, sizeof(name), "metric %s", sp->name);
    a->op = velo_op_callback(up->env, up->out_schema, on_batch, NULL, a,
                             name);
    if (a->op == NULL || velo_op_connect(up, a->op) != VELO_OK) {
        velo_log_error("metric %s: cannot attach it to the statement's "
                       "output", sp->name);
        return VELO_ERR;
    }
    return VELO_OK;
}

struct velo_obs_job_metrics *
velo_obs_job_metrics_create(struct velo_metrics *m, const char *name,
                            struct velo_job *job,
                            const struct velo_obs_annotations *ann,
                            size_t series_cap)
{
    if (m == NULL || job == NULL) {
        errno = EINVAL;
        return NULL;
    }
    struct velo_obs_job_metrics *jm = calloc(1, sizeof(*jm));
    if (jm == NULL) {
        return NULL;
    }
    jm->m = m;
    jm->job = job;
    jm->plan = velo_job_plan(job);
    if (series_cap == 0) {
        series_cap = VELO_OBS_DEFAULT_SERIES_CAP;
    }
    if (register_engine(jm, name) != VELO_OK) {
        velo_obs_job_metrics_destroy(jm);
        errno = ENOMEM;
        return NULL;
    }
    size_t n = ann != NULL ? ann->nmetrics : 0;
    if (n > 0) {
        jm->ann = calloc(n, sizeof(*jm->ann));
        if (jm->ann == NULL) {
            velo_obs_job_metrics_destroy(jm);
            return NULL;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const struct velo_obs_metric_spec *sp = &ann->metrics[i];
        if (sp->sink == NULL) {
            continue; /* not resolved against this plan */
        }
        jm->nann++;
        if (attach(jm, &jm->ann[jm->nann - 1], sp, series_cap) != VELO_OK) {
            velo_obs_job_metrics_destroy(jm);
            errno = EINVAL;
            return NULL;
        }
    }
    return jm;
}

void velo_obs_job_metrics_destroy(struct velo_obs_job_metrics *jm)
{
    if (jm == NULL) {
        return;
    }
    for (size_t i = 0; i < jm->nann; i++) {
        struct annotated *a = &jm->ann[i];
        if (a->op != NULL) {
            /* Unhook from the upstream before freeing. */
            struct velo_op *up = a->spec->sink->upstream;
            for (size_t c = 0; c < up->nchildren; c++) {
                if (up->children[c] == a->op) {
                    memmove(&up->children[c], &up->children[c + 1],
                            (up->nchildren - c - 1) *
                                sizeof(up->children[0]));
                    up->nchildren--;
                    break;
                }
            }
            velo_op_destroy(a->op);
        }
        velo_evaluator_destroy(a->ev);
        velo_eval_ctx_free(&a->ctx);
        velo_arena_destroy(a->arena);
        for (size_t k = 0; k < a->nslots && a->slots != NULL; k++) {
            free(a->slots[k].key);
        }
        free(a->slots);
    }
    free(jm->ann);
    free(jm->ops);
    free(jm->source_records);
    free(jm);
}

/* ---- /metrics listener ---------------------------------------------------- */

struct velo_obs_metrics_http {
    struct velo_metrics *m;
    struct event_base *base;
    struct evhttp *http;
    int port;
};

static void metrics_handler(struct evhttp_request *req, void *arg)
{
    struct velo_obs_metrics_http *h = arg;
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
        evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
        evhttp_send_error(req, 405, "only GET /metrics");
        return;
    }
    size_t len = 0;
    char *text = velo_metrics_render(h->m, &len);
    if (text == NULL) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    struct evbuffer *out = evbuffer_new();
    if (out == NULL) {
        free(text);
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    evbuffer_add(out, text, len);
    free(text);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

static void other_handler(struct evhttp_request *req, void *arg)
{
    (void)arg;
    evhttp_send_error(req, 404, "only /metrics is served here");
}

struct velo_obs_metrics_http *velo_obs_metrics_http_start(
    struct velo_metrics *m, int port)
{
    struct velo_obs_metrics_http *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return NULL;
    }
    h->m = m;
    h->base = event_base_new();
    h->http = h->base != NULL ? evhttp_new(h->base) : NULL;
    if (h->http == NULL) {
        velo_log_error("metrics: cannot create the HTTP listener");
        velo_obs_metrics_http_stop(h);
        return NULL;
    }
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(
        h->http, "127.0.0.1", (ev_uint16_t)port);
    if (bs == NULL) {
        velo_log_error("metrics: cannot listen on 127.0.0.1:%d: %s", port,
                       strerror(errno));
        velo_obs_metrics_http_stop(h);
        return NULL;
    }
    evutil_socket_t fd = evhttp_bound_socket_get_fd(bs);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    h->port = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
        ss.ss_family == AF_INET) {
        h->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_timeout(h->http, 10);
    evhttp_set_cb(h->http, "/metrics", metrics_handler, h);
    evhttp_set_gencb(h->http, other_handler, h);
    return h;
}

int velo_obs_metrics_http_port(const struct velo_obs_metrics_http *h)
{
    return h->port;
}

void velo_obs_metrics_http_poll(struct velo_obs_metrics_http *h)
{
    if (h != NULL) {
        event_base_loop(h->base, EVLOOP_NONBLOCK);
    }
}

void velo_obs_metrics_http_stop(struct velo_obs_metrics_http *h)
{
    if (h == NULL) {
        return;
    }
    if (h->http != NULL) {
        evhttp_free(h->http);
    }
    if (h->base != NULL) {
        event_base_free(h->base);
    }
    free(h);
}
