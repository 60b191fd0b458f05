/*
 * The job runner: one application on one thread.
 *
 * Byte-stream sources (files, stdin) hand over large chunks; the decoder
 * consumes whole records in place and the runner copies only the partial
 * record at the end of a chunk, completing it from the next chunk one line
 * at a time. Decoded strings are views into the chunk or the carry, so a
 * batch is pushed before either can change (at the end of each chunk, and
 * after rows decoded from the carry). Nothing here allocates per record.
 */
#include "exec/job.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "exec/batch.h"
#include "exec/operator.h"
#include "formats/format.h"
#include "plugin/host.h"
#include "plugin/loader.h"
#include "util/log.h"

#define JOB_PAYLOADS 64
#define JOB_SAMPLE_MAX (256 * 1024)
#define JOB_SINK_FLUSH_BYTES (256 * 1024)
#define JOB_IDLE_POLL_MS 20
#define JOB_PROGRESS_NS 500000000LL
/* Buffered sink output goes out at least this often while input flows,
 * and at once whenever the input goes idle: live results stay live. */
#define JOB_SINK_LATENCY_NS 200000000LL
/* How often positions are committed upstream when the plan keeps no state
 * (after flushing every sink); stateful plans commit at a clean stop. */
#define JOB_COMMIT_NS 1000000000LL
#define JOB_POSITION_MAX (64 * 1024)

struct job_source {
    char *name;       /* as the planner names it (may be a URI) */
    char shown[256];  /* the name for logs: a URI's password masked */
    struct velo_plan_source *ps; /* bound after planning */
    struct velo_instance ins;
    char label[300]; /* "<scheme>:<shown>" for the plugin's log prefix */
    const struct velo_connector_ref *conn;
    void *conn_config;
    struct velo_source_info info;
    int opened;
    int sampled; /* source_sample ran */
    int carry_fresh; /* the carry holds a sample not yet decoded */
    int done;

    /* Payloads from the last source_read, consumed in order. */
    struct velo_str payload[JOB_PAYLOADS];
    struct velo_record_meta meta[JOB_PAYLOADS];
    struct velo_source_batch sb;
    size_t next_payload;
    int eof; /* source_read said DECLINED */

    /* Byte streams: `view` is what is being decoded (a chunk, or the
     * carry); `carry` holds a partial record between reads. */
    const char *view;
    size_t view_len;
    struct velo_buf carry;
    int64_t position; /* stream offset of view[0] */
    int64_t line;     /* line number of view[0] */
    int header_pending;

    struct velo_decoder *dec;
    struct velo_batch *batch;
    int ts_col; /* index of "_timestamp", or -1 */
    uint8_t *pos; /* JOB_POSITION_MAX bytes for source_position */
    uint64_t bad_reported;
};

struct job_sink {
    struct velo_plan_sink *ps;
    struct velo_instance ins;
    char label[160];
    void *conn_config;
    struct velo_encoder *enc;
    struct velo_buf out;
    struct velo_op *op;
    int header_done;
    int failed;
    int records; /* VELO_CONNECTOR_RECORD_SINK: one row per record */
    struct velo_str *recs; /* batch-cap views into `out`, reused */
    size_t *ends;          /* where each row's text ends in `out` */
    struct velo_job *job;
};

struct velo_job {
    struct velo_job_opts opts;
    struct velo_funcs *funcs;
    struct velo_connectors *connectors;
    struct velo_exec_env env;
    struct velo_plan_env penv;
    struct velo_sql_program *program;
    struct velo_plan *plan;

    struct job_source *sources;
    size_t nsources, cap_sources;
    struct job_sink *sinks;
    size_t nsinks;

    struct velo_job_stats stats;
    struct timespec started, last_progress;
    uint64_t errors_reported;
    int failed;
};

static int64_t clock_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t job_now_us(const struct velo_job *j)
{
    return j->opts.now_us != NULL ? j->opts.now_us() : clock_now_us();
}

/* ---- Reporting ---------------------------------------------------------- */

static int job_may_report(struct velo_job *j)
{
    int max = j->opts.max_reported > 0 ? j->opts.max_reported : 10;
    return j->errors_reported++ < (uint64_t)max;
}

static void on_bad_record(void *arg, int64_t position, int64_t line,
                          const char *record, size_t record_len,
                          const char *msg)
{
    struct job_source *s = arg;
    /* The job pointer is not needed: counting happens in the report. */
    if (s->bad_reported++ < 10) {
        int shown = record_len > 120 ? 120 : (int)record_len;
        while (shown > 0 && (record[shown - 1] == '\n' ||
                             record[shown - 1] == '\r')) {
            shown--;
        }
        if (line > 0) {
            velo_log_warn("%s: line %lld: bad record skipped: %s: %.*s%s",
                          s->shown, (long long)line, msg, shown, record,
                          record_len > 120 ? "..." : "");
        } else {
            velo_log_warn("%s: position %lld: bad record skipped: %s: "
                          "%.*s%s",
                          s->shown, (long long)position, msg, shown, record,
                          record_len > 120 ? "..." : "");
        }
    } else if (s->bad_reported == 11) {
        velo_log_warn("%s: more bad records; only the count is reported "
                      "from now on", s->shown);
    }
}

static const char *job_source_name(const struct velo_job *j, int32_t idx)
{
    if (idx >= 0 && (size_t)idx < j->nsources) {
        return j->sources[idx].shown;
    }
    return "(derived)";
}

static void on_row_error(void *arg, const struct velo_op *op,
                         const struct velo_row_origin *origin, int code,
                         const char *msg)
{
    struct velo_job *j = arg;
    j->stats.failed_rows++;
    if (!job_may_report(j)) {
        return;
    }
    if (origin != NULL && origin->line > 0) {
        velo_log_warn("%s: line %lld: row skipped: %s",
                      job_source_name(j, origin->source),
                      (long long)origin->line, msg);
    } else if (origin != NULL && origin->source >= 0) {
        velo_log_warn("%s: position %lld: row skipped: %s",
                      job_source_name(j, origin->source),
                      (long long)origin->position, msg);
    } else {
        velo_log_warn("%s: row skipped: %s", op->ops->name, msg);
    }
}

static void on_late_row(void *arg, const struct velo_op *op,
                        const struct velo_row_origin *origin,
                        int64_t event_time_us, int64_t watermark_us)
{
    struct velo_job *j = arg;
    j->stats.late_rows++;
    if (!job_may_report(j)) {
        return;
    }
    char et[40], wm[40];
    velo_format_timestamp(event_time_us, et, sizeof(et));
    velo_format_timestamp(watermark_us, wm, sizeof(wm));
    velo_log_warn("%s: late row dropped: event time %s is before the "
                  "watermark %s (its window already closed)",
                  origin != NULL ? job_source_name(j, origin->source)
                                 : op->ops->name,
                  et, wm);
}

/* ---- Sources ------------------------------------------------------------ */

static struct job_source *find_source(struct velo_job *j, const char *name)
{
    for (size_t i = 0; i < j->nsources; i++) {
        if (strcmp(j->sources[i].name, name) == 0) {
            return &j->sources[i];
        }
    }
    return NULL;
}

static struct job_source *add_source(struct velo_job *j, const char *name)
{
    if (j->nsources == j->cap_sources) {
        size_t cap = j->cap_sources ? j->cap_sources * 2 : 4;
        struct job_source *n = realloc(j->sources, cap * sizeof(*n));
        if (n == NULL) {
            return NULL;
        }
        j->sources = n;
        j->cap_sources = cap;
    }
    struct job_source *s = &j->sources[j->nsources];
    memset(s, 0, sizeof(*s));
    s->name = strdup(name);
    if (s->name == NULL) {
        return NULL;
    }
    velo_uri_redact(name, s->shown, sizeof(s->shown));
    s->ts_col = -1;
    s->line = 1;
    j->nsources++;
    return s;
}

/* Read the next batch of payloads. @return VELO_OK (count > 0),
 * VELO_AGAIN (nothing now), VELO_DECLINED (ended), VELO_ERR. */
static int source_fill(struct job_source *s)
{
    s->sb.count = 0;
    s->sb.capacity = JOB_PAYLOADS;
    s->sb.payload = s->payload;
    s->sb.meta = s->meta;
    s->next_payload = 0;
    for (size_t i = 0; i < JOB_PAYLOADS; i++) {
        s->meta[i].timestamp_us = INT64_MIN;
        s->meta[i].partition = -1;
        s->meta[i].offset = -1;
        s->meta[i].key.ptr = NULL;
        s->meta[i].key.len = 0;
    }
    int rc = s->conn->vt->source_read(&s->ins, &s->sb);
    if (rc == VELO_OK && s->sb.count == 0) {
        return VELO_AGAIN;
    }
    return rc;
}

static int open_source(struct velo_job *j, struct job_source *s,
                       const struct velo_plan_source *src, char *err,
                       size_t errlen)
{
    char redacted[256];
    if (src->uri != NULL) {
        velo_uri_redact(src->uri, redacted, sizeof(redacted));
    } else {
        snprintf(redacted, sizeof(redacted), "%s_source", src->conn->name);
    }
    snprintf(s->label, sizeof(s->label), "%s:%s", src->conn->name,
             s->shown);
    s->conn = src->conn;
    if (s->conn->vt->source_create == NULL || s->conn->vt->source_read ==
                                                  NULL) {
        snprintf(err, errlen, "connector '%s' cannot read (it has no "
                              "source)", src->conn->name);
        return VELO_ERR;
    }
    const char *bad_key = NULL;
    if (velo_connector_config_fill(src->conn, src->props, src->nprops, NULL,
                                   &s->conn_config, &bad_key, err,
                                   errlen) != VELO_OK) {
        return VELO_ERR;
    }
    struct velo_connector_ctx ctx = {
        .job = j->opts.filename,
        .name = src->name,
        .uri = src->uri,
        .props = src->props,
        .nprops = src->nprops,
        .base = NULL,
        .wake = NULL,
        .wake_arg = NULL,
    };
    s->ins.host = velo_host_api();
    s->ins.name = s->label;
    s->ins.context = NULL;
    memset(&s->info, 0, sizeof(s->info));
    s->info.size_bytes = -1;
    if (s->conn->vt->source_create(&s->ins, s->conn_config, &ctx,
                                   &s->info) != VELO_OK) {
        snprintf(err, errlen, "cannot open source '%s' (%s); the reason "
                              "is logged above", s->shown, redacted);
        return VELO_ERR;
    }
    s->opened = 1;
    return VELO_OK;
}

/* The first bytes of a source, for inference: waits for data. A byte
 * stream is sampled into the carry (up to JOB_SAMPLE_MAX, or what arrives
 * before the source pauses), so the sample stays valid and decoding later
 * starts from it; record sources keep their first payloads. */
static int source_sample(struct velo_job *j, struct job_source *s,
                         const char **sample, size_t *len,
                         struct velo_buf *tmp)
{
    for (;;) {
        if (j->opts.stop != NULL && *j->opts.stop) {
            velo_log_warn("source %s: interrupted while waiting for its "
                          "first data", s->shown);
            return VELO_ERR;
        }
        int rc = source_fill(s);
        if (rc == VELO_DECLINED) {
            s->eof = 1;
            break;
        }
        if (rc == VELO_AGAIN) {
            if (s->info.byte_stream && s->carry.len > 0) {
                break; /* the source paused: sample what came */
            }
            poll(NULL, 0, JOB_IDLE_POLL_MS);
            continue;
        }
        if (rc != VELO_OK) {
            return VELO_ERR;
        }
        if (!s->info.byte_stream) {
            break;
        }
        for (size_t i = 0; i < s->sb.count; i++) {
            if (velo_buf_append(&s->carry, s->payload[i].ptr,
                                s->payload[i].len) != VELO_OK) {
                return VELO_ERR;
            }
        }
        s->next_payload = s->sb.count; /* consumed into the carry */
        s->carry_fresh = 1;
        if (s->carry.len >= JOB_SAMPLE_MAX) {
            break;
        }
    }
    if (s->info.byte_stream) {
        *sample = s->carry.data != NULL ? s->carry.data : "";
        *len = s->carry.len < JOB_SAMPLE_MAX ? s->carry.len : JOB_SAMPLE_MAX;
        return VELO_OK;
    }
    if (s->sb.count == 0) {
        *sample = "";
        *len = 0;
        return VELO_OK;
    }
    /* One record per payload: join them as lines. */
    tmp->len = 0;
    for (size_t i = 0; i < s->sb.count && tmp->len < JOB_SAMPLE_MAX; i++) {
        if (velo_buf_append(tmp, s->payload[i].ptr, s->payload[i].len) !=
                VELO_OK ||
            velo_buf_append(tmp, "\n", 1) != VELO_OK) {
            return VELO_ERR;
        }
    }
    *sample = tmp->data;
    *len = tmp->len;
    return VELO_OK;
}

static int job_source_schema(void *arg, const struct velo_plan_source *src,
                             struct velo_schema **out, int *bounded,
                             char *err, size_t errlen)
{
    struct velo_job *j = arg;
    struct job_source *s = find_source(j, src->name);
    if (s == NULL) {
        s = add_source(j, src->name);
        if (s == NULL) {
            snprintf(err, errlen, "out of memory");
            return VELO_ERR;
        }
        if (open_source(j, s, src, err, errlen) != VELO_OK) {
            return VELO_ERR;
        }
    }
    if (src->schema != NULL) {
        /* Declared: the planner keeps its own schema and only asks whether
         * the source ends; nothing is read, so an empty source is fine. */
        *out = NULL;
        *bounded = s->info.bounded;
        return VELO_OK;
    }
    const char *sample = "";
    size_t len = 0;
    struct velo_buf tmp = {0};
    if (!s->sampled) {
        if (source_sample(j, s, &sample, &len, &tmp) != VELO_OK) {
            velo_buf_free(&tmp);
            snprintf(err, errlen, "cannot read source '%s'; the reason is "
                                  "logged above", s->shown);
            return VELO_ERR;
        }
        s->sampled = 1;
    } else if (s->info.byte_stream) {
        /* Asked again (two statements read it): the sample is still the
         * start of the carry, nothing has been decoded yet. */
        sample = s->carry.data != NULL ? s->carry.data : "";
        len = s->carry.len < JOB_SAMPLE_MAX ? s->carry.len : JOB_SAMPLE_MAX;
    } else {
        for (size_t i = 0; i < s->sb.count; i++) {
            velo_buf_append(&tmp, s->payload[i].ptr, s->payload[i].len);
            velo_buf_append(&tmp, "\n", 1);
        }
        sample = tmp.data != NULL ? tmp.data : "";
        len = tmp.len;
    }
    *out = velo_infer_schema(&src->format, sample, len, err, errlen);
    velo_buf_free(&tmp);
    *bounded = s->info.bounded;
    return *out != NULL ? VELO_OK : VELO_ERR;
}

/* After planning: bind job sources to plan sources, open the ones whose
 * schema was declared, and make decoders. */
static int setup_sources(struct velo_job *j, struct velo_sql_diags *diags)
{
    for (size_t i = 0; i < j->plan->nsources; i++) {
        struct velo_plan_source *ps = &j->plan->sources[i];
        struct job_source *s = find_source(j, ps->name);
        char err[512];
        if (s == NULL) {
            s = add_source(j, ps->name);
            if (s == NULL || open_source(j, s, ps, err, sizeof(err)) !=
                                 VELO_OK) {
                velo_log_error("%s", s != NULL ? err : "out of memory");
                return VELO_ERR;
            }
        }
        s->ps = ps;
        s->ts_col = velo_schema_find(ps->schema, VELO_COL_TIMESTAMP);
        s->dec = velo_decoder_create(&ps->format, ps->schema, ps->needed, err,
                                     sizeof(err));
        if (s->dec == NULL) {
            velo_log_error("source %s: %s", s->shown, err);
            return VELO_ERR;
        }
        s->batch = velo_batch_create(ps->schema, j->env.batch_cap);
        if (s->batch == NULL) {
            velo_log_error("source %s: out of memory", s->shown);
            return VELO_ERR;
        }
        s->header_pending = ps->format.kind == VELO_FORMAT_CSV &&
                            ps->format.header;
    }
    (void)diags;
    return VELO_OK;
}

/* ---- Sinks -------------------------------------------------------------- */

/* Hand records to the sink, waiting while it is full (VELO_AGAIN: the
 * sink took none of them, so the call is repeated as is). */
static int sink_write_all(struct job_sink *k, const struct velo_str *recs,
                          size_t n)
{
    for (;;) {
        int rc = k->ps->conn->vt->sink_write(&k->ins, recs, NULL, n);
        if (rc == VELO_OK) {
            return VELO_OK;
        }
        if (rc != VELO_AGAIN) {
            break;
        }
        poll(NULL, 0, JOB_IDLE_POLL_MS);
    }
    velo_log_error("sink %s: write failed; the reason is logged above",
                   k->ps->name);
    k->failed = 1;
    k->job->failed = 1;
    return VELO_ERR;
}

static int sink_write_out(struct job_sink *k)
{
    if (k->out.len == 0 || k->failed) {
        return k->failed ? VELO_ERR : VELO_OK;
    }
    struct velo_str rec = {k->out.data, k->out.len};
    if (sink_write_all(k, &rec, 1) != VELO_OK) {
        return VELO_ERR;
    }
    k->out.len = 0;
    return VELO_OK;
}

/* A record sink gets one encoded row per record: each live row is encoded
 * on its own (through a one-row selection of the same batch, no copy), then
 * the batch's rows go out in one sink_write. */
static int sink_records(struct job_sink *k, struct velo_batch *b)
{
    size_t n = velo_batch_live(b);
    k->job->stats.records_out += n;
    if (n == 0) {
        return VELO_OK;
    }
    struct velo_batch one = *b;
    uint16_t row;
    one.sel = &row;
    one.nsel = 1;
    k->out.len = 0;
    for (size_t i = 0; i < n; i++) {
        row = b->sel != NULL ? b->sel[i] : (uint16_t)i;
        if (velo_encode(k->enc, &one, &k->out) != VELO_OK) {
            velo_log_error("sink %s: out of memory encoding output",
                           k->ps->name);
            return VELO_ERR;
        }
        k->ends[i] = k->out.len;
    }
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        size_t end = k->ends[i];
        size_t len = end - start;
        while (len > 0 && (k->out.data[start + len - 1] == '\n' ||
                           k->out.data[start + len - 1] == '\r')) {
            len--;
        }
        k->recs[i].ptr = k->out.data + start;
        k->recs[i].len = len;
        start = end;
    }
    if (sink_write_all(k, k->recs, n) != VELO_OK) {
        return VELO_ERR;
    }
    k->out.len = 0;
    return VELO_OK;
}

static int sink_on_batch(void *arg, struct velo_batch *b)
{
    struct job_sink *k = arg;
    if (k->records) {
        return sink_records(k, b);
    }
    if (!k->header_done) {
        k->header_done = 1;
        if (velo_encode_header(k->enc, &k->out) != VELO_OK) {
            return VELO_ERR;
        }
    }
    k->job->stats.records_out += velo_batch_live(b);
    if (velo_encode(k->enc, b, &k->out) != VELO_OK) {
        velo_log_error("sink %s: out of memory encoding output",
                       k->ps->name);
        return VELO_ERR;
    }
    if (k->out.len >= JOB_SINK_FLUSH_BYTES) {
        return sink_write_out(k);
    }
    return VELO_OK;
}

static int sink_on_finish(void *arg)
{
    struct job_sink *k = arg;
    if (!k->header_done && !k->records) {
        k->header_done = 1;
        velo_encode_header(k->enc, &k->out);
    }
    if (sink_write_out(k) != VELO_OK) {
        return VELO_ERR;
    }
    if (k->ps->conn->vt->sink_flush == NULL) {
        return VELO_OK;
    }
    for (;;) {
        int rc = k->ps->conn->vt->sink_flush(&k->ins);
        if (rc == VELO_OK) {
            return VELO_OK;
        }
        if (rc != VELO_AGAIN) {
            velo_log_error("sink %s: flush failed; the reason is logged "
                           "above", k->ps->name);
            k->job->failed = 1;
            return VELO_ERR;
        }
        poll(NULL, 0, JOB_IDLE_POLL_MS);
    }
}

static int setup_sinks(struct velo_job *j)
{
    j->sinks = calloc(j->plan->nsinks ? j->plan->nsinks : 1,
                      sizeof(*j->sinks));
    if (j->sinks == NULL) {
        return VELO_ERR;
    }
    for (size_t i = 0; i < j->plan->nsinks; i++) {
        struct velo_plan_sink *ps = &j->plan->sinks[i];
        struct job_sink *k = &j->sinks[i];
        j->nsinks++;
        k->ps = ps;
        k->job = j;
        snprintf(k->label, sizeof(k->label), "%s:%s", ps->conn->name,
                 ps->name);
        if (ps->conn->vt->sink_create == NULL ||
            ps->conn->vt->sink_write == NULL) {
            velo_log_error("sink %s: connector '%s' cannot write", ps->name,
                           ps->conn->name);
            return VELO_ERR;
        }
        char err[512];
        const char *bad_key = NULL;
        if (velo_connector_config_fill(ps->conn, ps->props, ps->nprops, NULL,
                                       &k->conn_config, &bad_key, err,
                                       sizeof(err)) != VELO_OK) {
            velo_log_error("sink %s: %s", ps->name, err);
            return VELO_ERR;
        }
        struct velo_connector_ctx ctx = {
            .job = j->opts.filename,
            .name = ps->name,
            .uri = ps->uri,
            .props = ps->props,
            .nprops = ps->nprops,
        };
        k->ins.host = velo_host_api();
        k->ins.name = k->label;
        if (ps->conn->vt->sink_create(&k->ins, k->conn_config, &ctx) !=
            VELO_OK) {
            velo_log_error("sink %s: cannot open; the reason is logged "
                           "above", ps->name);
            k->ins.context = NULL;
            k->failed = 1;
            return VELO_ERR;
        }
        k->records = (ps->conn->vt->flags & VELO_CONNECTOR_RECORD_SINK) != 0;
        if (k->records) {
            k->recs = calloc(j->env.batch_cap, sizeof(*k->recs));
            k->ends = calloc(j->env.batch_cap, sizeof(*k->ends));
            if (k->recs == NULL || k->ends == NULL) {
                velo_log_error("sink %s: out of memory", ps->name);
                return VELO_ERR;
            }
        }
        k->enc = velo_encoder_create(&ps->format, ps->schema, ps->changelog);
        k->op = velo_op_callback(&j->env, ps->schema, sink_on_batch,
                                 sink_on_finish, k, k->label);
        if (k->enc == NULL || k->op == NULL ||
            velo_op_connect(ps->upstream, k->op) != VELO_OK) {
            velo_log_error("sink %s: out of memory", ps->name);
            return VELO_ERR;
        }
    }
    return VELO_OK;
}

/* ---- Prepare ------------------------------------------------------------ */

struct velo_job *velo_job_prepare(const char *sql, size_t len,
                                  const struct velo_job_opts *opts,
                                  struct velo_sql_diags *diags)
{
    struct velo_job *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        return NULL;
    }
    j->opts = *opts;
    j->funcs = velo_funcs_create();
    j->connectors = velo_connectors_create(opts->plugins);
    if (j->funcs == NULL || j->connectors == NULL) {
        velo_log_error("out of memory");
        velo_job_destroy(j);
        return NULL;
    }
    /* Plugins' SQL functions join the registry. */
    if (opts->plugins != NULL) {
        for (size_t i = 0; i < velo_plugins_count(opts->plugins); i++) {
            const struct velo_plugin_entry *e =
                velo_plugins_at(opts->plugins, i);
            if (e->state != VELO_PLUGIN_LOADED ||
                e->kind != VELO_PLUGIN_APP) {
                continue;
            }
            const struct velo_app_vtable *vt = e->desc->vtable;
            for (const struct velo_app_sql_function *f = vt->functions;
                 f != NULL && f->name != NULL; f++) {
                if (velo_funcs_add_plugin(j->funcs, f) != VELO_OK) {
                    velo_log_warn("plugin %s: SQL function %s clashes with "
                                  "an existing one; not added",
                                  e->name, f->name);
                }
            }
        }
    }
    j->env.funcs = j->funcs;
    j->env.batch_cap = opts->batch_rows ? opts->batch_rows : VELO_BATCH_ROWS;
    j->env.on_row_error = on_row_error;
    j->env.on_late_row = on_late_row;
    j->env.cb_arg = j;
    j->env.now_us = opts->now_us != NULL ? opts->now_us : clock_now_us;

    j->penv.funcs = j->funcs;
    j->penv.connectors = j->connectors;
    j->penv.exec = &j->env;
    j->penv.source_schema = job_source_schema;
    j->penv.arg = j;
    j->penv.stdout_format = opts->stdout_format;

    j->program = velo_sql_parse(sql, len, diags);
    if (j->program == NULL) {
        velo_job_destroy(j);
        return NULL;
    }
    /* Planned even after parse errors: the planner skips the statements
     * that failed and still reports binding errors in the others, so one
     * validate lists everything. */
    j->plan = velo_sql_plan(j->program, &j->penv, diags);
    if (j->plan == NULL || diags->errors > 0) {
        velo_job_destroy(j);
        return NULL;
    }
    if (setup_sources(j, diags) != VELO_OK || setup_sinks(j) != VELO_OK) {
        velo_job_destroy(j);
        return NULL;
    }
    return j;
}

const struct velo_plan *velo_job_plan(const struct velo_job *j)
{
    return j->plan;
}

/* ---- Running ------------------------------------------------------------ */

static void progress(struct velo_job *j, int final)
{
    if (j->opts.progress_fd < 0) {
        return;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t since = (int64_t)(now.tv_sec - j->last_progress.tv_sec) *
                        1000000000LL +
                    (now.tv_nsec - j->last_progress.tv_nsec);
    if (!final && since < JOB_PROGRESS_NS) {
        return;
    }
    j->last_progress = now;
    double el = (double)(now.tv_sec - j->started.tv_sec) +
                (double)(now.tv_nsec - j->started.tv_nsec) / 1e9;
    char line[200];
    int n;
    if (final) {
        n = snprintf(line, sizeof(line), "\r\033[K");
    } else {
        n = snprintf(line, sizeof(line),
                     "\r\033[Krecords in %llu, out %llu, %.0f rec/s, "
                     "%.1fs",
                     (unsigned long long)j->stats.records_in,
                     (unsigned long long)j->stats.records_out,
                     el > 0 ? (double)j->stats.records_in / el : 0.0, el);
    }
    if (n > 0 && write(j->opts.progress_fd, line, (size_t)n) < 0) {
        j->opts.progress_fd = -1; /* the terminal went away */
    }
}

/* Fill _timestamp for rows [from, nrows) of the batch. */
static void stamp_rows(struct velo_job *j, struct job_source *s, size_t from,
                       const struct velo_record_meta *meta)
{
    if (s->ts_col < 0) {
        return;
    }
    struct velo_column *c = &s->batch->cols[s->ts_col];
    int64_t now = meta != NULL && meta->timestamp_us != INT64_MIN
                      ? meta->timestamp_us
                      : job_now_us(j);
    for (size_t r = from; r < s->batch->nrows; r++) {
        c->v.i64[r] = now;
        c->nulls[r] = 0;
    }
}

static int push_batch(struct velo_job *j, struct job_source *s)
{
    if (s->batch->nrows == 0) {
        return VELO_OK;
    }
    j->stats.records_in += s->batch->nrows;
    int rc = velo_op_push(s->ps->entry, s->batch);
    velo_batch_reset(s->batch);
    progress(j, 0);
    return rc;
}

/* Newlines in p[0, n). Every decoded byte passes through here, and a
 * memchr per line costs a call per record: count 16 bytes at a time. */
static int64_t count_lines(const char *p, size_t n)
{
    int64_t lines = 0;
    const char *end = p + n;
#if defined(__SSE2__)
    const __m128i nl = _mm_set1_epi8('\n');
    while (end - p >= 16) {
        /* Per-byte counters (0xFF per match, subtracted) for at most 255
         * blocks, then summed with one SAD. */
        size_t blocks = (size_t)(end - p) / 16;
        if (blocks > 255) {
            blocks = 255;
        }
        __m128i acc = _mm_setzero_si128();
        for (size_t i = 0; i < blocks; i++) {
            __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
            acc = _mm_sub_epi8(acc, _mm_cmpeq_epi8(x, nl));
            p += 16;
        }
        __m128i sum = _mm_sad_epu8(acc, _mm_setzero_si128());
        lines += _mm_cvtsi128_si32(sum) +
                 _mm_cvtsi128_si32(_mm_srli_si128(sum, 8));
    }
#endif
    for (; p < end; p++) {
        lines += *p == '\n';
    }
    return lines;
}

/* Decode as much of s->view as makes whole records. */
static int decode_view(struct velo_job *j, struct job_source *s, int eof)
{
    struct velo_decode_report rep = {
        .bad_record = on_bad_record,
        .arg = s,
    };
    if (s->header_pending) {
        const char *nl = memchr(s->view, '\n', s->view_len);
        if (nl == NULL && !eof) {
            return VELO_OK; /* the header line is not complete yet */
        }
        size_t hlen = nl != NULL ? (size_t)(nl - s->view) : s->view_len;
        char err[512];
        if (velo_decoder_set_header(s->dec, s->view, hlen, err,
                                    sizeof(err)) != VELO_OK) {
            velo_log_error("%s: line 1: %s", s->name, err);
            return VELO_ERR;
        }
        s->header_pending = 0;
        size_t skip = nl != NULL ? hlen + 1 : hlen;
        s->view += skip;
        s->view_len -= skip;
        s->position += (int64_t)skip;
        s->line++;
    }
    while (s->view_len > 0) {
        size_t before = s->batch->nrows;
        size_t used = velo_decode_stream(s->dec, s->view, s->view_len, eof,
                                         s->batch, (int32_t)(s - j->sources),
                                         s->position, s->line, &rep);
        stamp_rows(j, s, before, NULL);
        j->stats.bytes_in += used;
        s->line += count_lines(s->view, used);
        s->view += used;
        s->view_len -= used;
        s->position += (int64_t)used;
        if (s->batch->nrows >= s->batch->cap) {
            if (push_batch(j, s) != VELO_OK) {
                return VELO_ERR;
            }
            continue;
        }
        if (used == 0) {
            break; /* a partial record: wait for more bytes */
        }
    }
    j->stats.bad_records += rep.bad;
    return VELO_OK;
}

/* Decode one chunk of a byte stream. A partial record left from the last
 * chunk (in `carry`) is completed first, one line at a time, so only
 * partial records are ever copied; the rest of the chunk is decoded in
 * place. The undecoded tail is copied into `carry` before returning,
 * because the source may reuse its buffer on the next read. */
static int feed_chunk(struct velo_job *j, struct job_source *s,
                      const struct velo_str *chunk)
{
    const char *p = chunk->ptr;
    size_t n = chunk->len;
    while (s->carry.len > 0 && n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl != NULL ? (size_t)(nl - p) + 1 : n;
        if (velo_buf_append(&s->carry, p, take) != VELO_OK) {
            return VELO_ERR;
        }
        p += take;
        n -= take;
        s->view = s->carry.data;
        s->view_len = s->carry.len;
        /* Rows decoded from the carry point into it: push them before
         * the carry moves. */
        if (decode_view(j, s, 0) != VELO_OK || push_batch(j, s) != VELO_OK) {
            return VELO_ERR;
        }
        memmove(s->carry.data, s->view, s->view_len);
        s->carry.len = s->view_len;
    }
    if (n > 0) {
        s->view = p;
        s->view_len = n;
        if (decode_view(j, s, 0) != VELO_OK) {
            return VELO_ERR;
        }
        s->carry.len = 0;
        if (s->view_len > 0 &&
            velo_buf_append(&s->carry, s->view, s->view_len) != VELO_OK) {
            return VELO_ERR;
        }
    }
    s->view = s->carry.data;
    s->view_len = s->carry.len;
    /* Decoded strings are views into the chunk, which the source may reuse
     * on its next read (stdin, pipes): push them now. */
    return push_batch(j, s);
}

/* One step of a source. @return 1 when it made progress, 0 when idle,
 * VELO_ERR on failure. */
static int source_step(struct velo_job *j, struct job_source *s)
{
    if (s->carry_fresh) {
        /* The sample read for inference: decode it now, not when the next
         * chunk comes (on a paused stream that may be never). */
        s->carry_fresh = 0;
        s->view = s->carry.data;
        s->view_len = s->carry.len;
        if (decode_view(j, s, 0) != VELO_OK || push_batch(j, s) != VELO_OK) {
            return VELO_ERR;
        }
        memmove(s->carry.data, s->view, s->view_len);
        s->carry.len = s->view_len;
        s->view = s->carry.data;
        return 1;
    }
    if (s->next_payload >= s->sb.count) {
        if (s->eof) {
            s->view = s->carry.data;
            s->view_len = s->carry.len;
            if (s->info.byte_stream && s->view_len > 0 &&
                decode_view(j, s, 1) != VELO_OK) {
                return VELO_ERR;
            }
            if (push_batch(j, s) != VELO_OK) {
                return VELO_ERR;
            }
            s->done = 1;
            return 1;
        }
        int rc = source_fill(s);
        if (rc == VELO_DECLINED) {
            s->eof = 1;
            return 1;
        }
        if (rc == VELO_AGAIN) {
            return 0;
        }
        if (rc != VELO_OK) {
            velo_log_error("source %s: read failed; the reason is logged "
                           "above", s->shown);
            return VELO_ERR;
        }
    }
    if (s->info.byte_stream) {
        while (s->next_payload < s->sb.count) {
            if (feed_chunk(j, s, &s->payload[s->next_payload++]) !=
                VELO_OK) {
                return VELO_ERR;
            }
        }
        return 1;
    }
    struct velo_decode_report rep = {.bad_record = on_bad_record, .arg = s};
    while (s->next_payload < s->sb.count) {
        size_t before = s->batch->nrows;
        size_t used = velo_decode_records(
            s->dec, &s->payload[s->next_payload], &s->meta[s->next_payload],
            s->sb.count - s->next_payload, s->batch,
            (int32_t)(s - j->sources), &rep);
        /* Per-record source timestamps. */
        if (s->ts_col >= 0) {
            struct velo_column *c = &s->batch->cols[s->ts_col];
            int64_t now = job_now_us(j);
            for (size_t r = before; r < s->batch->nrows; r++) {
                size_t p = s->next_payload + (r - before);
                int64_t ts = p < s->sb.count ? s->meta[p].timestamp_us
                                             : INT64_MIN;
                c->v.i64[r] = ts != INT64_MIN ? ts : now;
                c->nulls[r] = 0;
            }
        }
        s->next_payload += used;
        if (s->batch->nrows >= s->batch->cap || used == 0) {
            if (push_batch(j, s) != VELO_OK) {
                return VELO_ERR;
            }
        }
        if (used == 0 && s->batch->nrows == 0) {
            s->next_payload++; /* a decoder that takes nothing: skip */
        }
    }
    j->stats.bad_records += rep.bad;
    return push_batch(j, s) == VELO_OK ? 1 : VELO_ERR;
}

static int all_limits_done(const struct velo_job *j)
{
    /* One statement whose output passes a LIMIT that is satisfied: no
     * more input can change the result. */
    if (j->plan->nstatements != 1) {
        return 0;
    }
    for (size_t i = 0; i < j->plan->nops; i++) {
        const struct velo_op *op = j->plan->ops[i];
        if (strcmp(op->ops->name, "Limit") == 0 && velo_op_limit_done(op)) {
            return 1;
        }
    }
    return 0;
}

static int flush_sinks(struct velo_job *j)
{
    int rc = VELO_OK;
    for (size_t i = 0; i < j->nsinks; i++) {
        if (sink_write_out(&j->sinks[i]) != VELO_OK) {
            rc = VELO_ERR;
        }
    }
    return rc;
}

/* Make every sink durable (write what is buffered, then sink_flush). */
static int make_sinks_durable(struct velo_job *j)
{
    for (size_t i = 0; i < j->nsinks; i++) {
        struct job_sink *k = &j->sinks[i];
        if (sink_write_out(k) != VELO_OK) {
            return VELO_ERR;
        }
        if (k->ps->conn->vt->sink_flush == NULL) {
            continue;
        }
        for (;;) {
            int rc = k->ps->conn->vt->sink_flush(&k->ins);
            if (rc == VELO_OK) {
                break;
            }
            if (rc != VELO_AGAIN) {
                velo_log_error("sink %s: flush failed; the reason is logged "
                               "above", k->ps->name);
                j->failed = 1;
                return VELO_ERR;
            }
            poll(NULL, 0, JOB_IDLE_POLL_MS);
        }
    }
    return VELO_OK;
}

/* At-least-once: once every sink is durable, tell each source that what
 * it has handed over so far may be acknowledged upstream. */
static int commit_sources(struct velo_job *j)
{
    if (make_sinks_durable(j) != VELO_OK) {
        return VELO_ERR;
    }
    for (size_t i = 0; i < j->nsources; i++) {
        struct job_source *s = &j->sources[i];
        const struct velo_connector_vtable *vt = s->conn != NULL
                                                     ? s->conn->vt
                                                     : NULL;
        if (s->ps == NULL || !s->opened || vt == NULL ||
            vt->source_position == NULL || vt->source_commit == NULL) {
            continue;
        }
        if (s->pos == NULL && (s->pos = malloc(JOB_POSITION_MAX)) == NULL) {
            return VELO_ERR;
        }
        int n = vt->source_position(&s->ins, s->pos, JOB_POSITION_MAX);
        if (n < 0) {
            velo_log_warn("source %s: its position could not be saved; "
                          "nothing is acknowledged upstream this time",
                          s->shown);
            continue;
        }
        if (vt->source_commit(&s->ins, s->pos, (size_t)n) != VELO_OK) {
            velo_log_warn("source %s: acknowledging upstream failed; the "
                          "records may be delivered again after a restart",
                          s->shown);
        }
    }
    return VELO_OK;
}

/* Operators that hold rows across batches (open windows, groups, sorts)
 * have effects not yet in any sink: without state checkpoints such a plan
 * may only acknowledge its sources at a clean stop. A LIMIT may still drop
 * what was read, so it never acknowledges mid-run either. */
static int plan_commits_midrun(const struct velo_job *j)
{
    for (size_t i = 0; i < j->plan->nops; i++) {
        const struct velo_op *op = j->plan->ops[i];
        if (op->keeps_state || strcmp(op->ops->name, "Limit") == 0) {
            return 0;
        }
    }
    return 1;
}

static int64_t ns_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(now.tv_sec - t->tv_sec) * 1000000000LL +
           (now.tv_nsec - t->tv_nsec);
}

int velo_job_run(struct velo_job *j, volatile sig_atomic_t *stop)
{
    clock_gettime(CLOCK_MONOTONIC, &j->started);
    j->last_progress = j->started;
    struct timespec last_flush = j->started, last_commit = j->started;
    int stateless = plan_commits_midrun(j);
    int limited = 0; /* stopped because a LIMIT was satisfied */
    int rc = VELO_OK;
    for (;;) {
        int active = 0, moved = 0;
        for (size_t i = 0; i < j->nsources; i++) {
            struct job_source *s = &j->sources[i];
            if (s->done || s->ps == NULL) {
                continue;
            }
            active++;
            int r = source_step(j, s);
            if (r < 0) {
                rc = VELO_ERR;
                break;
            }
            moved += r;
        }
        if (rc != VELO_OK || active == 0 || j->failed) {
            break;
        }
        if (stop != NULL && *stop) {
            velo_log_info("stopping: emitting final results and flushing");
            break;
        }
        if (all_limits_done(j)) {
            limited = 1;
            break;
        }
        if (moved == 0 || ns_since(&last_flush) >= JOB_SINK_LATENCY_NS) {
            if (flush_sinks(j) != VELO_OK) {
                rc = VELO_ERR;
                break;
            }
            clock_gettime(CLOCK_MONOTONIC, &last_flush);
        }
        if (stateless && ns_since(&last_commit) >= JOB_COMMIT_NS) {
            if (commit_sources(j) != VELO_OK) {
                rc = VELO_ERR;
                break;
            }
            clock_gettime(CLOCK_MONOTONIC, &last_commit);
        }
        if (j->opts.on_turn != NULL) {
            j->opts.on_turn(j->opts.turn_arg, moved == 0);
        }
        if (moved == 0) {
            poll(NULL, 0, JOB_IDLE_POLL_MS);
        }
    }
    /* Bounded input ended or the job was stopped: final emits, flush. */
    for (size_t i = 0; i < j->nsources; i++) {
        struct job_source *s = &j->sources[i];
        if (s->ps != NULL && s->batch != NULL) {
            push_batch(j, s);
        }
    }
    for (size_t i = 0; i < j->nsources; i++) {
        struct job_source *s = &j->sources[i];
        if (s->ps != NULL && velo_op_finish(s->ps->entry) != VELO_OK) {
            rc = VELO_ERR;
        }
    }
    /* Final results are emitted and flushed: acknowledge the sources
     * (not after a failure: those records must be read again). A run
     * stopped by its LIMIT is a peek: it read rows the LIMIT discarded, so
     * it acknowledges nothing and the next reader sees them all. */
    if (rc == VELO_OK && !j->failed && !limited &&
        commit_sources(j) != VELO_OK) {
        rc = VELO_ERR;
    } else if (limited && rc == VELO_OK && make_sinks_durable(j) != VELO_OK) {
        rc = VELO_ERR;
    }
    progress(j, 1);
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    j->stats.elapsed_s = (double)(end.tv_sec - j->started.tv_sec) +
                         (double)(end.tv_nsec - j->started.tv_nsec) / 1e9;
    if (j->failed) {
        rc = VELO_ERR;
    }
    return rc;
}

void velo_job_get_stats(const struct velo_job *j, struct velo_job_stats *out)
{
    *out = j->stats;
}

void velo_job_destroy(struct velo_job *j)
{
    if (j == NULL) {
        return;
    }
    for (size_t i = 0; i < j->nsinks; i++) {
        struct job_sink *k = &j->sinks[i];
        if (k->ins.context != NULL && k->ps->conn->vt->sink_destroy != NULL) {
            k->ps->conn->vt->sink_destroy(&k->ins);
        }
        if (k->conn_config != NULL) {
            velo_connector_config_free(k->ps->conn, k->conn_config);
        }
        velo_encoder_destroy(k->enc);
        velo_buf_free(&k->out);
        free(k->recs);
        free(k->ends);
        /* k->op belongs to the DAG; destroyed below. */
        if (k->op != NULL) {
            velo_op_destroy(k->op);
        }
    }
    free(j->sinks);
    for (size_t i = 0; i < j->nsources; i++) {
        struct job_source *s = &j->sources[i];
        if (s->opened && s->conn->vt->source_destroy != NULL) {
            s->conn->vt->source_destroy(&s->ins);
        }
        if (s->conn_config != NULL) {
            velo_connector_config_free(s->conn, s->conn_config);
        }
        if (s->dec != NULL) {
            velo_decoder_destroy(s->dec);
        }
        if (s->batch != NULL) {
            velo_batch_destroy(s->batch);
        }
        velo_buf_free(&s->carry);
        free(s->pos);
        free(s->name);
    }
    free(j->sources);
    if (j->plan != NULL) {
        velo_plan_destroy(j->plan);
    }
    if (j->program != NULL) {
        velo_sql_program_free(j->program);
    }
    if (j->connectors != NULL) {
        velo_connectors_destroy(j->connectors);
    }
    if (j->funcs != NULL) {
        velo_funcs_destroy(j->funcs);
    }
    free(j);
}
