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
#include "obs/jobmetrics-internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
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

/* ---- Engine metrics ------------------------------------------------------ */

int64_t velo_obs_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void velo_obs_statement_name(const struct velo_plan *p, size_t i, char *buf,
                             size_t len)
{
    if (p->statements[i].target != NULL) {
        snprintf(buf, len, "%s", p->statements[i].target);
        return;
    }
    size_t n = 0;
    for (size_t k = 0; k <= i; k++) {
        n += p->statements[k].target == NULL;
    }
    snprintf(buf, len, "select-%zu", n);
}

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

/* An event time (microseconds) as Prometheus spells times: seconds. NaN
 * before there is one, so a graph shows a gap rather than 1970. */
static double event_seconds(int64_t us)
{
    return us == INT64_MIN ? NAN : (double)us / 1e6;
}

static double delay_seconds(int64_t now_us, int64_t us)
{
    return us == INT64_MIN ? NAN : (double)(now_us - us) / 1e6;
}

void velo_obs_job_metrics_refresh(struct velo_obs_job_metrics *jm)
{
    struct velo_job_stats st;
    velo_job_get_stats(jm->job, &st);
    int64_t now = velo_obs_wall_us();
    counter_to(jm->records_in, (double)st.records_in);
    counter_to(jm->records_out, (double)st.records_out);
    counter_to(jm->bad, (double)st.bad_records);
    counter_to(jm->failed, (double)st.failed_rows);
    counter_to(jm->late, (double)st.late_rows);
    counter_to(jm->bytes_in, (double)st.bytes_in);
    counter_to(jm->dead_lettered, (double)st.dead_lettered);
    velo_metric_set(jm->watermark, event_seconds(st.watermark_us));
    velo_metric_set(jm->wm_delay, delay_seconds(now, st.watermark_us));
    velo_metric_set(jm->max_event_time, event_seconds(st.max_event_time_us));
    /* The job sums its operators' state at the end of a run; while it
     * runs, sum them here so the gauge is live. */
    size_t srows = 0, sbytes = 0;
    for (size_t i = 0; i < jm->nops; i++) {
        const struct velo_op *op = jm->plan->ops[i];
        struct velo_obs_op_series *s = &jm->ops[i];
        counter_to(s->in, (double)op->stats.rows_in);
        counter_to(s->out, (double)op->stats.rows_out);
        counter_to(s->failed, (double)op->stats.rows_failed);
        counter_to(s->late, (double)op->stats.rows_late);
        velo_metric_set(s->state_rows, (double)op->stats.state_rows);
        velo_metric_set(s->state_bytes, (double)op->stats.state_bytes);
        srows += op->stats.state_rows;
        sbytes += op->stats.state_bytes;
    }
    velo_metric_set(jm->state_rows, (double)srows);
    velo_metric_set(jm->state_bytes, (double)sbytes);
    velo_metric_histogram_set(jm->batch_latency, st.batch_latency_le,
                              VELO_JOB_LATENCY_BUCKETS, st.batches,
                              st.batch_latency_sum_s);
    counter_to(jm->checkpoints, (double)st.checkpoints);
    if (st.checkpoints > 0) {
        velo_metric_set(jm->ckpt_duration, st.checkpoint_last_s);
        velo_metric_set(jm->ckpt_bytes, (double)st.checkpoint_bytes);
    }
    /* Before the first checkpoint the age counts from the start, so an
     * alert on the age also fires when checkpoints never succeed. */
    int64_t last =
        st.checkpoint_last_us > 0 ? st.checkpoint_last_us : jm->created_us;
    velo_metric_set(jm->ckpt_age, (double)(now - last) / 1e6);
    size_t ns = velo_job_nsources(jm->job);
    for (size_t i = 0; i < ns && i < jm->nsources; i++) {
        struct velo_job_source_stats ss;
        velo_job_source_stats(jm->job, i, &ss);
        struct velo_obs_source_series *s = &jm->sources[i];
        counter_to(s->records, (double)ss.records);
        counter_to(s->bytes, (double)ss.bytes);
        counter_to(s->bad, (double)ss.bad_records);
        velo_metric_set(s->lag, ss.lag >= 0 ? (double)ss.lag : NAN);
        velo_metric_set(s->wm_delay, delay_seconds(now, ss.watermark_us));
    }
}

static void collect(struct velo_metrics *m, void *arg)
{
    (void)m;
    velo_obs_job_metrics_refresh(arg);
}

/* Each engine family is declared here once, with its help text. */
struct engine_family {
    const char *name;
    int type;
    const char *help;
};

static struct velo_metric *one(struct velo_metrics *m,
                               const struct engine_family *ef,
                               const char *labels, const char *const *v,
                               size_t n, int *failed)
{
    const double *bounds = NULL;
    size_t nb = 0;
    if (ef->type == VELO_METRIC_HISTOGRAM) {
        bounds = velo_job_latency_bounds;
        nb = VELO_JOB_LATENCY_BUCKETS;
    }
    struct velo_metric_family *f = velo_metrics_family(
        m, ef->name, ef->help, ef->type, labels, bounds, nb);
    struct velo_metric *s = f != NULL ? velo_metric_series(f, v, n) : NULL;
    if (s == NULL) {
        *failed = 1;
    }
    return s;
}

/* Job-wide, labelled query. */
static const struct engine_family job_families[] = {
    {"velo_job_records_in_total", VELO_METRIC_COUNTER,
     "Records decoded from the job's sources."},
    {"velo_job_records_out_total", VELO_METRIC_COUNTER,
     "Rows handed to the job's sinks."},
    {"velo_job_bad_records_total", VELO_METRIC_COUNTER,
     "Records that could not be decoded (skipped or dead-lettered)."},
    {"velo_job_failed_rows_total", VELO_METRIC_COUNTER,
     "Rows that failed evaluation (skipped or dead-lettered)."},
    {"velo_job_late_rows_total", VELO_METRIC_COUNTER,
     "Rows for windows that had already closed."},
    {"velo_job_bytes_in_total", VELO_METRIC_COUNTER,
     "Bytes read from the job's sources."},
    {"velo_job_dead_lettered_total", VELO_METRIC_COUNTER,
     "Records and rows written to the dead-letter file."},
    {"velo_job_watermark_seconds", VELO_METRIC_GAUGE,
     "Event-time watermark (lowest over the sources), Unix seconds; NaN "
     "before the first event time."},
    {"velo_job_watermark_delay_seconds", VELO_METRIC_GAUGE,
     "Wall clock minus the event-time watermark."},
    {"velo_job_max_event_time_seconds", VELO_METRIC_GAUGE,
     "Highest event time seen, Unix seconds."},
    {"velo_job_state_rows", VELO_METRIC_GAUGE,
     "Rows held as state, summed over the operators."},
    {"velo_job_state_bytes", VELO_METRIC_GAUGE,
     "Memory held for state, summed over the operators."},
    {"velo_job_batch_latency_seconds", VELO_METRIC_HISTOGRAM,
     "Time from decoding a source batch to the end of its push through the "
     "operators."},
    {"velo_job_checkpoints_total", VELO_METRIC_COUNTER,
     "Checkpoints completed."},
    {"velo_job_checkpoint_duration_seconds", VELO_METRIC_GAUGE,
     "Duration of the last checkpoint."},
    {"velo_job_last_checkpoint_age_seconds", VELO_METRIC_GAUGE,
     "Seconds since the last checkpoint completed (since the start before "
     "the first)."},
    {"velo_job_checkpoint_size_bytes", VELO_METRIC_GAUGE,
     "Size of the last checkpoint."},
};

static const struct engine_family op_families[] = {
    {"velo_operator_rows_in_total", VELO_METRIC_COUNTER,
     "Rows pushed into the operator."},
    {"velo_operator_rows_out_total", VELO_METRIC_COUNTER,
     "Rows the operator emitted."},
    {"velo_operator_rows_failed_total", VELO_METRIC_COUNTER,
     "Rows that failed evaluation in the operator."},
    {"velo_operator_rows_late_total", VELO_METRIC_COUNTER,
     "Rows that arrived for closed windows."},
    {"velo_operator_state_rows", VELO_METRIC_GAUGE,
     "Rows (groups, buffered rows) the operator holds as state."},
    {"velo_operator_state_bytes", VELO_METRIC_GAUGE,
     "Memory the operator holds for state."},
};

static const struct engine_family source_families[] = {
    {"velo_source_records_total", VELO_METRIC_COUNTER,
     "Records decoded from the source."},
    {"velo_source_bytes_total", VELO_METRIC_COUNTER,
     "Bytes read from the source."},
    {"velo_source_bad_records_total", VELO_METRIC_COUNTER,
     "Records of the source that could not be decoded."},
    {"velo_source_lag", VELO_METRIC_GAUGE,
     "Input not yet read: records (Kafka) or bytes (files); NaN when "
     "unknown."},
    {"velo_source_watermark_delay_seconds", VELO_METRIC_GAUGE,
     "Wall clock minus the source's event-time watermark."},
};

/* Which statement each operator works for: the one whose output (a sink's
 * upstream) it reaches without passing another statement's output first;
 * a source's Tee that feeds several statements gets -1. */
static int op_statements(struct velo_obs_job_metrics *jm)
{
    const struct velo_plan *p = jm->plan;
    jm->op_stmt = calloc(p->nops ? p->nops : 1, sizeof(*jm->op_stmt));
    const struct velo_op **stack = calloc(p->nops * 4 + 16, sizeof(*stack));
    if (jm->op_stmt == NULL || stack == NULL) {
        free(stack);
        return VELO_ERR;
    }
    size_t cap = p->nops * 4 + 16;
    for (size_t i = 0; i < p->nops; i++) {
        int found = -2; /* none yet */
        size_t top = 0;
        stack[top++] = p->ops[i];
        /* Plans are DAGs of a few dozen operators: a bounded walk. */
        size_t steps = 0;
        while (top > 0 && steps++ < 100000) {
            const struct velo_op *op = stack[--top];
            int hit = -1;
            for (size_t k = 0; k < p->nsinks; k++) {
                if (p->sinks[k].upstream == op) {
                    hit = (int)p->sinks[k].statement;
                    break;
                }
            }
            if (hit >= 0) {
                found = found == -2 || found == hit ? hit : -1;
                continue;
            }
            for (size_t c = 0; c < op->nchildren && top < cap; c++) {
                stack[top++] = op->children[c];
            }
        }
        jm->op_stmt[i] = found >= 0 ? found : -1;
    }
    free(stack);
    return VELO_OK;
}

static int register_engine(struct velo_obs_job_metrics *jm)
{
    struct velo_metrics *m = jm->m;
    const struct velo_plan *p = jm->plan;
    int failed = 0;
    const char *q[1] = {jm->name};
    struct velo_metric **job_series[] = {
        &jm->records_in,     &jm->records_out, &jm->bad,
        &jm->failed,         &jm->late,        &jm->bytes_in,
        &jm->dead_lettered,  &jm->watermark,   &jm->wm_delay,
        &jm->max_event_time, &jm->state_rows,  &jm->state_bytes,
        &jm->batch_latency,  &jm->checkpoints, &jm->ckpt_duration,
        &jm->ckpt_age,       &jm->ckpt_bytes,
    };
    _Static_assert(sizeof(job_series) / sizeof(job_series[0]) ==
                       sizeof(job_families) / sizeof(job_families[0]),
                   "one series pointer per job family");
    for (size_t i = 0; i < sizeof(job_families) / sizeof(job_families[0]);
         i++) {
        *job_series[i] = one(m, &job_families[i], "query", q, 1, &failed);
    }
    /* Nothing measured yet: NaN, not a misleading 0. */
    velo_metric_set(jm->watermark, NAN);
    velo_metric_set(jm->wm_delay, NAN);
    velo_metric_set(jm->max_event_time, NAN);
    velo_metric_set(jm->ckpt_duration, NAN);
    velo_metric_set(jm->ckpt_bytes, NAN);

    jm->stmt_names =
        calloc(p->nstatements ? p->nstatements : 1, sizeof(*jm->stmt_names));
    if (jm->stmt_names == NULL || op_statements(jm) != VELO_OK) {
        return VELO_ERR;
    }
    for (size_t i = 0; i < p->nstatements; i++) {
        char b[VELO_NAME_MAX + 32];
        velo_obs_statement_name(p, i, b, sizeof(b));
        jm->stmt_names[i] = strdup(b);
        if (jm->stmt_names[i] == NULL) {
            return VELO_ERR;
        }
    }
    jm->nops = p->nops;
    jm->ops = calloc(p->nops ? p->nops : 1, sizeof(*jm->ops));
    jm->nsources = p->nsources;
    jm->sources = calloc(p->nsources ? p->nsources : 1, sizeof(*jm->sources));
    if (jm->ops == NULL || jm->sources == NULL) {
        return VELO_ERR;
    }
    static const char ol[] = "query,statement,op_id,operator";
    for (size_t i = 0; i < p->nops; i++) {
        char id[24];
        snprintf(id, sizeof(id), "%zu", i);
        const char *st =
            jm->op_stmt[i] >= 0 ? jm->stmt_names[jm->op_stmt[i]] : "shared";
        const char *v[4] = {jm->name, st, id, p->ops[i]->ops->name};
        struct velo_obs_op_series *s = &jm->ops[i];
        struct velo_metric **ps[] = {&s->in,   &s->out,        &s->failed,
                                     &s->late, &s->state_rows, &s->state_bytes};
        for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++) {
            *ps[k] = one(m, &op_families[k], ol, v, 4, &failed);
        }
    }
    for (size_t i = 0; i < p->nsources; i++) {
        /* The job's name for the source: a URI's password masked. */
        struct velo_job_source_stats ss;
        memset(&ss, 0, sizeof(ss));
        if (i < velo_job_nsources(jm->job)) {
            velo_job_source_stats(jm->job, i, &ss);
        }
        const char *v[2] = {jm->name,
                            ss.name != NULL ? ss.name : p->sources[i].name};
        struct velo_obs_source_series *s = &jm->sources[i];
        struct velo_metric **ps[] = {&s->records, &s->bytes, &s->bad, &s->lag,
                                     &s->wm_delay};
        for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++) {
            *ps[k] = one(m, &source_families[k], "query,source", v, 2, &failed);
        }
        velo_metric_set(s->lag, NAN);
        velo_metric_set(s->wm_delay, NAN);
    }
    if (failed) {
        velo_log_error("metrics: cannot register the engine metrics (%s)",
                       strerror(errno));
        return VELO_ERR;
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
    size_t room = VELO_OBS_LABEL_BUF - *o;
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

static void count_drop(struct velo_obs_annotated *a)
{
    velo_metric_inc(a->dropped, 1.0);
}

/* The series for row r, from the cache or made now. NULL: dropped. */
static struct velo_metric *series_for(struct velo_obs_annotated *a,
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
        struct velo_obs_series_slot *sl = &a->slots[k];
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
    struct velo_obs_annotated *a = arg;
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

static int attach(struct velo_obs_job_metrics *jm, struct velo_obs_annotated *a,
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
    jm->name = strdup(name != NULL ? name : "");
    jm->created_us = velo_obs_wall_us();
    if (series_cap == 0) {
        series_cap = VELO_OBS_DEFAULT_SERIES_CAP;
    }
    if (jm->name == NULL || register_engine(jm) != VELO_OK) {
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

void velo_obs_unhook(struct velo_op *up, struct velo_op *op)
{
    for (size_t c = 0; c < up->nchildren; c++) {
        if (up->children[c] == op) {
            memmove(&up->children[c], &up->children[c + 1],
                    (up->nchildren - c - 1) * sizeof(up->children[0]));
            up->nchildren--;
            return;
        }
    }
}

void velo_obs_job_metrics_destroy(struct velo_obs_job_metrics *jm)
{
    if (jm == NULL) {
        return;
    }
    for (size_t i = 0; i < jm->nann; i++) {
        struct velo_obs_annotated *a = &jm->ann[i];
        if (a->op != NULL) {
            velo_obs_unhook(a->spec->sink->upstream, a->op);
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
    free(jm->sources);
    free(jm->op_stmt);
    for (size_t i = 0; jm->stmt_names != NULL && i < jm->plan->nstatements;
         i++) {
        free(jm->stmt_names[i]);
    }
    free(jm->stmt_names);
    free(jm->name);
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
    evhttp_send_error(req, 404, "not found (this listener serves /metrics)");
}

int velo_obs_metrics_http_route(struct velo_obs_metrics_http *h,
                                const char *path,
                                void (*cb)(struct evhttp_request *, void *),
                                void *arg)
{
    return evhttp_set_cb(h->http, path, cb, arg) == 0 ? VELO_OK : VELO_ERR;
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
