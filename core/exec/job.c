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
#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "exec/batch.h"
#include "exec/operator.h"
#include "exec/state.h"
#include "formats/format.h"
#include "plugin/host.h"
#include "plugin/loader.h"
#include "sql/ast.h"
#include "util/log.h"

#define JOB_PAYLOADS 64
#define JOB_SAMPLE_MAX (256 * 1024)
#define JOB_SINK_FLUSH_BYTES (256 * 1024)
#define JOB_IDLE_POLL_MS 20
/* A binary key (key.format long/int/double) as decimal text. */
#define KEYTXT_MAX 32
#define JOB_PROGRESS_NS 500000000LL
/* Buffered sink output goes out at least this often while input flows,
 * and at once whenever the input goes idle: live results stay live. */
#define JOB_SINK_LATENCY_NS 200000000LL
/* How often positions are committed upstream when the plan keeps no state
 * (after flushing every sink); stateful plans commit at a clean stop. */
#define JOB_COMMIT_NS 1000000000LL
#define JOB_POSITION_MAX (64 * 1024)
#define JOB_CKPT_INTERVAL_MS 10000
#define JOB_DLQ_FLUSH_BYTES (64 * 1024)

const double velo_job_latency_bounds[VELO_JOB_LATENCY_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01,   0.025,   0.05,   0.1,   0.5,    1.0};

struct job_source {
    char *name;       /* as the planner names it (may be a URI) */
    char shown[256];  /* the name for logs: a URI's password masked */
    struct velo_plan_source *ps; /* bound after planning */
    struct velo_instance ins;
    char label[300]; /* "<scheme>:<shown>" for the plugin's log prefix */
    const struct velo_connector_ref *conn;
    void *conn_config;
    struct velo_source_info info;
    /* `velo test` rebinding: read from another URI in its format. */
    const char *rebind_uri;
    struct velo_format_opts rebind_fmt;
    int opened;
    int sampled; /* source_sample ran */
    int carry_fresh; /* the carry holds a sample not yet decoded */
    int done;

    /* Payloads from the last source_read, consumed in order. */
    struct velo_str payload[JOB_PAYLOADS];
    struct velo_record_meta meta[JOB_PAYLOADS];
    struct velo_str headers[JOB_PAYLOADS]; /* message sources' headers */
    /* '<src>.watermark.idle_timeout': when data last came (monotonic
     * microseconds), and whether the DAG was told the source is idle. */
    int64_t last_data_us;
    int idle;
    /* A query reads _headers / HEADER(): ask the source for headers (a
     * JSON object per record is work nobody needs otherwise). */
    int want_headers;
    /* '<name>.key.format' long/int/double: binary keys become their
     * decimal text in keytxt (KEYTXT_MAX per payload) before decoding;
     * keys_done says this read's keys are converted. */
    int key_conv;
    int keys_done;
    char *keytxt;
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
    int pos_len;  /* of the last checkpoint's position, -1 none */
    uint64_t bad_reported;
    struct velo_job *job;

    /* The CSV header line, kept for a resume (the decoder needs it and
     * the resumed stream starts past it). */
    struct velo_buf header;
    int header_known;
    /* The bytes being decoded (a chunk or the carry) and the stream
     * offset of their first byte: a failed row's origin points in here
     * while its batch is pushed, which is where dead letters find the
     * original record. */
    const char *region;
    size_t region_len;
    int64_t region_pos;

    /* For velo_job_source_stats. */
    uint64_t records, bytes, bad;
    struct timespec batch_t0; /* when decoding of the next batch began */
};

struct job_sink {
    struct velo_plan_sink *ps;
    /* ps->conn, or the file connector when output is captured */
    const struct velo_connector_ref *conn;
    struct velo_format_opts fmt; /* ps->format, or JSON Lines (capture) */
    char *capture_path;          /* malloc'd when captured */
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
    /* Record keys (ps->key_cols): text per row in keybuf, for meta. */
    struct velo_record_meta *kmeta; /* batch cap, or NULL: no keys */
    size_t *kends;
    struct velo_buf keybuf;
    /* Message headers from the output's `_headers` column (sinks with
     * sink_write_headers): its index, or -1; views per row; the schema
     * the encoder sees, with _headers hidden from the payload. */
    int hdr_col;
    struct velo_str *hdrs;
    struct velo_schema *enc_schema;
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

    /* Checkpoints (opts.state_dir): <state_dir>/checkpoint. */
    char *ckpt_path, *ckpt_tmp;
    struct velo_state_writer ckw, opw;
    uint8_t *scratch;     /* JOB_POSITION_MAX, for sink positions */
    int resumed;          /* restored from a checkpoint */
    int already_finished; /* that checkpoint was written at the end */

    /* Dead letters (plan->dlq_path): buffered JSON Lines. */
    int dlq_fd;
    /* Sources that can say "data is ready" (ctx->wake, from any thread)
     * write here; the idle loop waits on it instead of only sleeping. */
    int wake_fd;
    /* The loop connectors register with (ctx->base): the worker's, or
     * our own (own_base). wake_ev reads wake_fd; idle_ev bounds a wait. */
    struct event_base *base;
    int own_base;
    struct event *wake_ev, *idle_ev;
    uint64_t dlq_len; /* bytes in the file, buffered ones included */
    int64_t dlq_resume_len; /* from the checkpoint; -1: start empty */
    struct velo_buf dlq;
};

static int ckpt_prepare(struct velo_job *j, struct velo_sql_diags *diags);

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

/* ---- Dead letters ------------------------------------------------------- */

/* The dead-letter file is JSON Lines, one object per record or row that
 * could not be processed. It is written like a sink (buffered, synced at
 * every checkpoint before sources are acknowledged) and its length is in
 * each checkpoint, so a resume truncates it back: no duplicates. */

static const char *eval_error_code(int code)
{
    switch (code) {
    case VELO_EVAL_DIV_ZERO:
        return "division_by_zero";
    case VELO_EVAL_CAST:
        return "cast_failed";
    case VELO_EVAL_OVERFLOW:
        return "overflow";
    case VELO_EVAL_BAD_ARG:
        return "bad_argument";
    default:
        return "evaluation_error";
    }
}

/* Length of the valid UTF-8 sequence at p[0..n), or 0 when there is
 * none (overlong forms, surrogates and past U+10FFFF are not UTF-8). */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        len = 2;
        cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3;
        cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (size_t k = 1; k < len; k++) {
        if ((p[k] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (p[k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
        (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return len;
}

static int utf8_valid(const unsigned char *p, size_t n)
{
    for (size_t i = 0, len; i < n; i += len) {
        if ((len = utf8_seq(p + i, n - i)) == 0) {
            return 0;
        }
    }
    return 1;
}

/* A JSON string (quotes included). Bytes that are not UTF-8 (a message
 * quoting a bad value) become U+FFFD, so the line stays valid JSON. */
static void json_str(struct velo_buf *b, const char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)p;
    velo_buf_append(b, "\"", 1);
    size_t run = 0, i = 0;
    while (i < n) {
        unsigned char c = u[i];
        size_t len = c < 0x80 ? 1 : utf8_seq(u + i, n - i);
        if (len > 1 || (len == 1 && c >= 0x20 && c != '"' && c != '\\')) {
            i += len;
            continue;
        }
        velo_buf_append(b, p + run, i - run);
        char esc[8] = {'\\', 0};
        size_t elen = 2;
        if (len == 0) {
            memcpy(esc, "\\ufffd", 6);
            elen = 6;
        } else if (c == '"' || c == '\\') {
            esc[1] = (char)c;
        } else if (c == '\n') {
            esc[1] = 'n';
        } else if (c == '\r') {
            esc[1] = 'r';
        } else if (c == '\t') {
            esc[1] = 't';
        } else {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        velo_buf_append(b, esc, elen);
        i++;
        run = i;
    }
    velo_buf_append(b, p + run, n - run);
    velo_buf_append(b, "\"", 1);
}

static void base64(struct velo_buf *b, const unsigned char *p, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    velo_buf_append(b, "\"", 1);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)p[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= p[i + 2];
        }
        char out[4] = {tab[(v >> 18) & 63], tab[(v >> 12) & 63],
                       i + 1 < n ? tab[(v >> 6) & 63] : '=',
                       i + 2 < n ? tab[v & 63] : '='};
        velo_buf_append(b, out, 4);
    }
    velo_buf_append(b, "\"", 1);
}

static int dlq_flush(struct velo_job *j)
{
    if (j->dlq_fd < 0 || j->dlq.len == 0) {
        return VELO_OK;
    }
    const char *p = j->dlq.data;
    size_t n = j->dlq.len;
    while (n > 0) {
        ssize_t w = write(j->dlq_fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            velo_log_error("dead-letter file %s: cannot write: %s",
                           j->plan->dlq_path, strerror(errno));
            j->failed = 1;
            return VELO_ERR;
        }
        p += w;
        n -= (size_t)w;
    }
    j->dlq.len = 0;
    return VELO_OK;
}

/* Everything dead-lettered so far on disk (a checkpoint barrier). */
static int dlq_sync(struct velo_job *j)
{
    if (j->dlq_fd < 0) {
        return VELO_OK;
    }
    if (dlq_flush(j) != VELO_OK) {
        return VELO_ERR;
    }
    if (fsync(j->dlq_fd) != 0) {
        velo_log_error("dead-letter file %s: cannot fsync: %s",
                       j->plan->dlq_path, strerror(errno));
        j->failed = 1;
        return VELO_ERR;
    }
    return VELO_OK;
}

/* Open the file at the start of a run: emptied, or cut back to what the
 * checkpoint being resumed had written. */
static int dlq_open(struct velo_job *j)
{
    if (j->plan->dlq_path == NULL || j->dlq_fd >= 0) {
        return VELO_OK;
    }
    const char *path = j->plan->dlq_path;
    j->dlq_fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (j->dlq_fd < 0) {
        velo_log_error("dead-letter file %s: cannot open: %s%s", path,
                       strerror(errno),
                       errno == ENOENT ? " (does its directory exist?)" : "");
        return VELO_ERR;
    }
    struct stat st;
    uint64_t keep = j->dlq_resume_len > 0 ? (uint64_t)j->dlq_resume_len : 0;
    if (fstat(j->dlq_fd, &st) != 0 || (uint64_t)st.st_size < keep) {
        velo_log_error("dead-letter file %s is shorter than the checkpoint "
                       "recorded (%llu bytes): it was changed since; run "
                       "with --reset-state to start over",
                       path, (unsigned long long)keep);
        return VELO_ERR;
    }
    if (ftruncate(j->dlq_fd, (off_t)keep) != 0 ||
        lseek(j->dlq_fd, (off_t)keep, SEEK_SET) < 0) {
        velo_log_error("dead-letter file %s: cannot truncate: %s", path,
                       strerror(errno));
        return VELO_ERR;
    }
    j->dlq_len = keep;
    return VELO_OK;
}

/* One dead letter. record may be NULL (not known). */
static void dlq_add(struct velo_job *j, const char *source, int64_t position,
                    int64_t line, const char *code, const char *msg,
                    const char *record, size_t record_len)
{
    if (j == NULL || j->dlq_fd < 0) {
        return;
    }
    struct velo_buf *b = &j->dlq;
    size_t start = b->len;
    char num[64];
    velo_buf_append(b, "{\"source\":", 10);
    json_str(b, source, strlen(source));
    int n = snprintf(num, sizeof(num), ",\"position\":%lld",
                     (long long)position);
    velo_buf_append(b, num, (size_t)n);
    if (line > 0) {
        n = snprintf(num, sizeof(num), ",\"line\":%lld", (long long)line);
        velo_buf_append(b, num, (size_t)n);
    }
    velo_buf_append(b, ",\"error\":", 9);
    json_str(b, code, strlen(code));
    velo_buf_append(b, ",\"message\":", 11);
    json_str(b, msg, strlen(msg));
    if (record != NULL) {
        while (record_len > 0 && (record[record_len - 1] == '\n' ||
                                  record[record_len - 1] == '\r')) {
            record_len--;
        }
        if (utf8_valid((const unsigned char *)record, record_len)) {
            velo_buf_append(b, ",\"record\":", 10);
            json_str(b, record, record_len);
        } else {
            velo_buf_append(b, ",\"record_base64\":", 17);
            base64(b, (const unsigned char *)record, record_len);
        }
    }
    char ts[40];
    velo_format_timestamp(job_now_us(j), ts, sizeof(ts));
    velo_buf_append(b, ",\"time\":", 8);
    json_str(b, ts, strlen(ts));
    velo_buf_append(b, "}\n", 2);
    j->dlq_len += b->len - start;
    j->stats.dead_lettered++;
    if (b->len >= JOB_DLQ_FLUSH_BYTES) {
        dlq_flush(j);
    }
}

/* A row's original record: from the bytes its source is decoding (byte
 * streams: the line at its offset) or from the payload with its offset
 * (record sources). */
static void row_record(struct velo_job *j, const struct velo_row_origin *o,
                       const char **rec, size_t *len)
{
    *rec = NULL;
    *len = 0;
    if (o == NULL || o->source < 0 || (size_t)o->source >= j->nsources) {
        return;
    }
    const struct job_source *s = &j->sources[o->source];
    if (s->info.byte_stream) {
        if (s->region == NULL || o->position < s->region_pos ||
            o->position >= s->region_pos + (int64_t)s->region_len) {
            return;
        }
        size_t off = (size_t)(o->position - s->region_pos);
        const char *p = s->region + off;
        const char *nl = memchr(p, '\n', s->region_len - off);
        *rec = p;
        *len = nl != NULL ? (size_t)(nl - p) : s->region_len - off;
        return;
    }
    for (size_t i = 0; i < s->sb.count; i++) {
        if (s->meta[i].offset == o->position) {
            *rec = s->payload[i].ptr;
            *len = s->payload[i].len;
            return;
        }
    }
}

static void dlq_row(struct velo_job *j, const struct velo_row_origin *o,
                    const char *code, const char *msg)
{
    if (j->dlq_fd < 0) {
        return;
    }
    const char *rec;
    size_t len;
    row_record(j, o, &rec, &len);
    const char *name = o != NULL && o->source >= 0 &&
                               (size_t)o->source < j->nsources
                           ? j->sources[o->source].shown
                           : "(derived)";
    dlq_add(j, name, o != NULL ? o->position : -1, o != NULL ? o->line : 0,
            code, msg, rec, len);
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
    s->bad++;
    dlq_add(s->job, s->shown, position, line, "decode_error", msg, record,
            record_len);
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
    dlq_row(j, origin, eval_error_code(code), msg);
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
    char et[40], wm[40];
    velo_format_timestamp(event_time_us, et, sizeof(et));
    velo_format_timestamp(watermark_us, wm, sizeof(wm));
    if (j->plan != NULL && j->plan->late_dead_letter) {
        char msg[160];
        snprintf(msg, sizeof(msg), "event time %s is before the watermark "
                                   "%s (its window already closed)",
                 et, wm);
        dlq_row(j, origin, "late_row", msg);
    }
    if (!job_may_report(j)) {
        return;
    }
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
    s->job = j;
    s->pos_len = -1;
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
    /* Headers when a query reads them, and while the first records are
     * sampled for the schema (they are decoded later, when it is known
     * whether their headers are needed). */
    s->sb.headers = s->want_headers ||
                            (s->ps == NULL &&
                             (s->conn->vt->flags &
                              VELO_CONNECTOR_RECORD_SOURCE) != 0)
                        ? s->headers
                        : NULL;
    s->next_payload = 0;
    s->keys_done = 0;
    for (size_t i = 0; i < JOB_PAYLOADS; i++) {
        s->meta[i].timestamp_us = INT64_MIN;
        s->meta[i].partition = -1;
        s->meta[i].offset = -1;
        s->meta[i].key.ptr = NULL;
        s->meta[i].key.len = 0;
        s->headers[i].ptr = NULL;
        s->headers[i].len = 0;
    }
    int rc = s->conn->vt->source_read(&s->ins, &s->sb);
    if (rc == VELO_OK && s->sb.count == 0) {
        return VELO_AGAIN;
    }
    return rc;
}

/* `velo test`: the URI a source is rebound to, or NULL. */
static const char *rebind_uri(const struct velo_job *j, const char *name)
{
    for (size_t i = 0; i < j->opts.nrebind; i++) {
        if (j->opts.rebind[i].name != NULL &&
            strcmp(j->opts.rebind[i].name, name) == 0) {
            return j->opts.rebind[i].uri;
        }
    }
    return NULL;
}

/* The format a rebound source is read in: from the URI's extension (the
 * source's own options when the kind is the same, so a CSV's delimiter
 * survives); JSON Lines when the extension says nothing. */
static void rebind_format(const char *uri, const struct velo_format_opts *own,
                          struct velo_format_opts *out)
{
    size_t n = strlen(uri);
    const char *q = strchr(uri, '?');
    if (q != NULL) {
        n = (size_t)(q - uri);
    }
    int kind = VELO_FORMAT_JSON;
    char delim = ',';
    if (n >= 4 && strncasecmp(uri + n - 4, ".csv", 4) == 0) {
        kind = VELO_FORMAT_CSV;
    } else if (n >= 4 && strncasecmp(uri + n - 4, ".tsv", 4) == 0) {
        kind = VELO_FORMAT_CSV;
        delim = '\t';
    }
    if (own->kind == kind) {
        *out = *own;
        return;
    }
    velo_format_opts_default(out, kind);
    out->delimiter = delim;
}

/* ctx->wake: a source has data (or a sink has room). May run on any
 * thread (librdkafka's), so it only writes to the eventfd. */
static void job_wake(void *arg)
{
    struct velo_job *j = arg;
    uint64_t one = 1;
    ssize_t w = write(j->wake_fd, &one, sizeof(one));
    (void)w; /* full (EAGAIN): a wake is already pending */
}

/* The wake eventfd became readable: drain it. The turn that follows
 * asks every source anyway, so nothing else is needed here. */
static void job_wake_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    uint64_t n;
    ssize_t r = read(fd, &n, sizeof(n));
    (void)r;
}

static void job_idle_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* Nothing moved (or a sink is full, or a flush is outstanding): run the
 * loop until an event arrives (a source's wake, a connector's socket),
 * at most JOB_IDLE_POLL_MS (for sources that cannot wake us: a watched
 * file, stdin between lines). */
static void job_wait(struct velo_job *j)
{
    if (j->base == NULL) {
        poll(NULL, 0, JOB_IDLE_POLL_MS);
        return;
    }
    const struct timeval tv = {0, JOB_IDLE_POLL_MS * 1000};
    evtimer_add(j->idle_ev, &tv);
    event_base_loop(j->base, EVLOOP_ONCE);
    evtimer_del(j->idle_ev);
}

/* A wait outside the run loop's turn (a full sink, a flush waiting for
 * its replies, the first data of a source): the caller's turn hook runs
 * too, so `--metrics-port` answers scrapes while a sink reconnects. */
static void job_wait_blocked(struct velo_job *j)
{
    if (j->opts.on_turn != NULL) {
        j->opts.on_turn(j->opts.turn_arg, 1);
    }
    job_wait(j);
}

/* Between batches: let the connectors' socket callbacks run (replies,
 * reconnect timers) without waiting. */
static void job_poll_loop(struct velo_job *j)
{
    if (j->base != NULL) {
        event_base_loop(j->base, EVLOOP_NONBLOCK);
    }
}

/* The loop ctx->base names: the caller's, or one of our own; the wake
 * eventfd and the idle timer live on it. */
static int job_loop_setup(struct velo_job *j)
{
    j->base = j->opts.base;
    if (j->base == NULL) {
        j->base = event_base_new();
        j->own_base = 1;
        if (j->base == NULL) {
            return VELO_ERR;
        }
    }
    j->idle_ev = evtimer_new(j->base, job_idle_cb, j);
    if (j->idle_ev == NULL) {
        return VELO_ERR;
    }
    if (j->wake_fd >= 0) {
        j->wake_ev = event_new(j->base, j->wake_fd, EV_READ | EV_PERSIST,
                               job_wake_cb, j);
        if (j->wake_ev == NULL || event_add(j->wake_ev, NULL) != 0) {
            return VELO_ERR;
        }
    }
    return VELO_OK;
}

static int open_source(struct velo_job *j, struct job_source *s,
                       const struct velo_plan_source *src, char *err,
                       size_t errlen)
{
    const struct velo_connector_ref *conn = src->conn;
    const char *uri = src->uri;
    const struct velo_property *props = src->props;
    size_t nprops = src->nprops;
    const char *rb = rebind_uri(j, src->name);
    if (rb != NULL) {
        /* The test's input replaces the connector: none of the source's
         * own connector properties apply to it. */
        char scheme[32];
        const char *rest = NULL;
        if (velo_uri_split(rb, scheme, sizeof(scheme), &rest) != VELO_OK ||
            (conn = velo_connectors_by_scheme(j->connectors, scheme)) ==
                NULL) {
            snprintf(err, errlen, "source '%s' is rebound to '%s', whose "
                                  "scheme no connector reads; use "
                                  "file:///path/to/input.jsonl",
                     s->shown, rb);
            return VELO_ERR;
        }
        uri = rb;
        props = NULL;
        nprops = 0;
        s->rebind_uri = rb;
        rebind_format(rb, &src->format, &s->rebind_fmt);
    }
    char redacted[256];
    if (uri != NULL) {
        velo_uri_redact(uri, redacted, sizeof(redacted));
    } else {
        snprintf(redacted, sizeof(redacted), "%s_source", conn->name);
    }
    snprintf(s->label, sizeof(s->label), "%s:%s", conn->name, s->shown);
    s->conn = conn;
    if (s->conn->vt->source_create == NULL || s->conn->vt->source_read ==
                                                  NULL) {
        snprintf(err, errlen, "connector '%s' cannot read (it has no "
                              "source)", conn->name);
        return VELO_ERR;
    }
    const char *bad_key = NULL;
    if (velo_connector_config_fill(conn, props, nprops, NULL,
                                   &s->conn_config, &bad_key, err,
                                   errlen) != VELO_OK) {
        return VELO_ERR;
    }
    struct velo_connector_ctx ctx = {
        .job = j->opts.filename,
        .name = src->name,
        .uri = uri,
        .props = props,
        .nprops = nprops,
        .base = j->base,
        .wake = j->wake_fd >= 0 ? job_wake : NULL,
        .wake_arg = j,
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
            job_wait_blocked(j);
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
    *out = velo_infer_schema(s->rebind_uri != NULL ? &s->rebind_fmt
                                                   : &src->format,
                             sample, len, err, errlen);
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
        if (s->rebind_uri != NULL) {
            ps->format = s->rebind_fmt; /* decode what the test gives */
        }
        s->ts_col = velo_schema_find(ps->schema, VELO_COL_TIMESTAMP);
        int hc = velo_schema_find(ps->schema, VELO_COL_HEADERS);
        /* Headers are asked of message sources only (ABI 1.1). */
        s->want_headers =
            hc >= 0 && ps->needed[hc] &&
            (s->conn->vt->flags & VELO_CONNECTOR_RECORD_SOURCE) != 0;
        int kc = velo_schema_find(ps->schema, VELO_COL_KEY);
        s->key_conv = kc >= 0 && ps->needed[kc] &&
                      ps->format.key_format >= VELO_KEY_LONG &&
                      (s->conn->vt->flags & VELO_CONNECTOR_RECORD_SOURCE) !=
                          0;
        if (s->key_conv && s->keytxt == NULL) {
            s->keytxt = malloc((size_t)JOB_PAYLOADS * KEYTXT_MAX);
            if (s->keytxt == NULL) {
                velo_log_error("source %s: out of memory", s->shown);
                return VELO_ERR;
            }
        }
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
    /* A rebinding that names no source of the plan is a typo in the
     * test, not something to ignore. */
    for (size_t i = 0; i < j->opts.nrebind; i++) {
        const char *name = j->opts.rebind[i].name;
        if (name == NULL || find_source(j, name) == NULL) {
            sql_diag_noplace(diags, SQL_ERROR, "V8002",
                             "name a source the application reads (FROM)",
                             "the test rebinds source '%s', which the "
                             "application does not read",
                             name != NULL ? name : "(null)");
            return VELO_ERR;
        }
    }
    return VELO_OK;
}

/* ---- Sinks -------------------------------------------------------------- */

/* Hand records to the sink, waiting while it is full (VELO_AGAIN: the
 * sink took none of them, so the call is repeated as is). */
static int sink_write_all(struct job_sink *k, const struct velo_str *recs,
                          const struct velo_record_meta *meta,
                          const struct velo_str *hdrs, size_t n)
{
    for (;;) {
        int rc = hdrs != NULL ? k->conn->vt->sink_write_headers(
                                    &k->ins, recs, meta, hdrs, n)
                              : k->conn->vt->sink_write(&k->ins, recs, meta,
                                                        n);
        if (rc == VELO_OK) {
            return VELO_OK;
        }
        if (rc != VELO_AGAIN) {
            break;
        }
        job_wait_blocked(k->job);
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
    if (sink_write_all(k, &rec, NULL, NULL, 1) != VELO_OK) {
        return VELO_ERR;
    }
    k->out.len = 0;
    return VELO_OK;
}

/* A record sink gets one encoded row per record: each live row is encoded
 * on its own (through a one-row selection of the same batch, no copy), then
 * the batch's rows go out in one sink_write. */
/* One key value as text: strings as they are, numbers and times as the
 * CSV encoder writes them. @return VELO_OK, or VELO_DECLINED for NULL. */
static int key_text(struct velo_buf *o, const struct velo_column *c,
                    size_t r, int json)
{
    if (c->has_nulls && c->nulls[r]) {
        return json ? velo_buf_append(o, "null", 4) : VELO_DECLINED;
    }
    char tmp[64];
    size_t n = 0;
    switch (c->type.id) {
    case VELO_TYPE_STRING:
    case VELO_TYPE_JSON:
    case VELO_TYPE_BYTES:
        if (!json) {
            return velo_buf_append(o, c->v.str[r].ptr, c->v.str[r].len);
        }
        if (velo_buf_append(o, "\"", 1) != VELO_OK) {
            return VELO_ERR;
        }
        for (size_t i = 0; i < c->v.str[r].len; i++) {
            unsigned char ch = (unsigned char)c->v.str[r].ptr[i];
            char e[8];
            size_t en = 1;
            e[0] = (char)ch;
            if (ch == '"' || ch == '\\') {
                e[0] = '\\';
                e[1] = (char)ch;
                en = 2;
            } else if (ch < 0x20) {
                en = (size_t)snprintf(e, sizeof(e), "\\u%04x", ch);
            }
            if (velo_buf_append(o, e, en) != VELO_OK) {
                return VELO_ERR;
            }
        }
        return velo_buf_append(o, "\"", 1);
    case VELO_TYPE_BOOLEAN:
        return c->v.u8[r] ? velo_buf_append(o, "true", 4)
                          : velo_buf_append(o, "false", 5);
    case VELO_TYPE_DOUBLE:
        n = velo_format_double(c->v.f64[r], tmp, sizeof(tmp));
        break;
    case VELO_TYPE_DECIMAL:
        n = velo_format_decimal(c->v.i64[r], c->type.scale, tmp);
        if (json) {
            /* as the JSON encoder writes DECIMAL: a string */
            memmove(tmp + 1, tmp, n);
            tmp[0] = '"';
            tmp[n + 1] = '"';
            n += 2;
        }
        break;
    case VELO_TYPE_TIMESTAMP:
        tmp[0] = '"';
        n = velo_format_timestamp(c->v.i64[r], tmp + json, sizeof(tmp) - 2);
        if (json) {
            tmp[n + 1] = '"';
            n += 2;
        }
        break;
    default:
        n = (size_t)snprintf(tmp, sizeof(tmp), "%lld",
                             (long long)c->v.i64[r]);
        break;
    }
    return velo_buf_append(o, tmp, n);
}

/* key.format long/int/double: the one key column as Kafka's serializers
 * write it (big-endian). @return VELO_OK, or VELO_DECLINED for NULL. */
static int key_binary(struct velo_buf *o, const struct velo_column *c,
                      size_t r, int kf)
{
    if (c->has_nulls && c->nulls[r]) {
        return VELO_DECLINED;
    }
    uint64_t v;
    size_t n = kf == VELO_KEY_INT ? 4 : 8;
    if (kf == VELO_KEY_DOUBLE) {
        double d = c->type.id == VELO_TYPE_DOUBLE ? c->v.f64[r]
                                                  : (double)c->v.i64[r];
        memcpy(&v, &d, sizeof(v));
    } else {
        v = (uint64_t)c->v.i64[r]; /* INTEGER is held in i64 too */
    }
    char be[8];
    for (size_t i = 0; i < n; i++) {
        be[i] = (char)(v >> (8 * (n - 1 - i)));
    }
    return velo_buf_append(o, be, n);
}

/* Can key.format kf write this sink's key? NULL when it can, else why. */
static const char *key_format_check(const struct velo_plan_sink *ps, int kf)
{
    if (kf < VELO_KEY_LONG || ps->nkeys == 0) {
        return NULL;
    }
    if (ps->nkeys != 1) {
        return "a binary key.format (long, int, double) writes one key "
               "column; use 'json' for several";
    }
    int t = ps->schema->fields[ps->key_cols[0]].type.id;
    if (kf == VELO_KEY_INT && t != VELO_TYPE_INTEGER) {
        return "key.format 'int' writes an INTEGER key column (4 bytes); "
               "CAST it AS INTEGER, or use 'long'";
    }
    if (kf == VELO_KEY_LONG && t != VELO_TYPE_INTEGER &&
        t != VELO_TYPE_BIGINT) {
        return "key.format 'long' writes an INTEGER or BIGINT key column; "
               "CAST it, or use 'text' or 'json'";
    }
    if (kf == VELO_KEY_DOUBLE && t != VELO_TYPE_DOUBLE &&
        t != VELO_TYPE_INTEGER && t != VELO_TYPE_BIGINT) {
        return "key.format 'double' writes a numeric key column; CAST it, "
               "or use 'text' or 'json'";
    }
    return NULL;
}

/* meta[i].key of each row: one key column's text, or a JSON object of
 * several (key.format text, the default); always the object (json); one
 * column's big-endian bytes (long, int, double). Rows whose single key is
 * NULL get no key. */
static int sink_keys(struct job_sink *k, const struct velo_batch *b,
                     size_t n)
{
    const struct velo_plan_sink *ps = k->ps;
    k->keybuf.len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t r = b->sel != NULL ? b->sel[i] : i;
        size_t start = k->keybuf.len;
        int rc;
        int kf = k->fmt.key_format;
        if (kf >= VELO_KEY_LONG) {
            rc = key_binary(&k->keybuf, &b->cols[ps->key_cols[0]], r, kf);
        } else if (ps->nkeys == 1 && kf == VELO_KEY_TEXT) {
            rc = key_text(&k->keybuf, &b->cols[ps->key_cols[0]], r, 0);
        } else {
            rc = velo_buf_append(&k->keybuf, "{", 1);
            for (size_t c = 0; rc == VELO_OK && c < ps->nkeys; c++) {
                const char *nm = b->schema->fields[ps->key_cols[c]].name;
                rc = (c > 0 ? velo_buf_append(&k->keybuf, ",", 1) : VELO_OK);
                if (rc == VELO_OK) {
                    rc = velo_buf_append(&k->keybuf, "\"", 1);
                }
                if (rc == VELO_OK) {
                    rc = velo_buf_append(&k->keybuf, nm, strlen(nm));
                }
                if (rc == VELO_OK) {
                    rc = velo_buf_append(&k->keybuf, "\":", 2);
                }
                if (rc == VELO_OK) {
                    rc = key_text(&k->keybuf, &b->cols[ps->key_cols[c]], r,
                                  1);
                }
            }
            if (rc == VELO_OK) {
                rc = velo_buf_append(&k->keybuf, "}", 1);
            }
        }
        if (rc == VELO_ERR) {
            return VELO_ERR;
        }
        k->kmeta[i].timestamp_us = INT64_MIN;
        k->kmeta[i].partition = -1;
        k->kmeta[i].offset = -1;
        k->kends[i] = rc == VELO_DECLINED ? (size_t)-1 : start;
        k->kmeta[i].key.len = rc == VELO_DECLINED ? 0 : k->keybuf.len - start;
    }
    /* The buffer may have moved while it grew: point at it now. */
    for (size_t i = 0; i < n; i++) {
        k->kmeta[i].key.ptr =
            k->kends[i] == (size_t)-1 ? NULL : k->keybuf.data + k->kends[i];
    }
    return VELO_OK;
}

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
    if (k->kmeta != NULL && sink_keys(k, b, n) != VELO_OK) {
        velo_log_error("sink %s: out of memory encoding keys", k->ps->name);
        return VELO_ERR;
    }
    if (k->hdr_col >= 0) {
        const struct velo_column *c = &b->cols[k->hdr_col];
        for (size_t i = 0; i < n; i++) {
            size_t r = b->sel != NULL ? b->sel[i] : i;
            if (c->has_nulls && c->nulls[r]) {
                k->hdrs[i].ptr = NULL;
                k->hdrs[i].len = 0;
            } else {
                k->hdrs[i] = c->v.str[r];
            }
        }
    }
    if (sink_write_all(k, k->recs, k->kmeta,
                       k->hdr_col >= 0 ? k->hdrs : NULL, n) != VELO_OK) {
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
    if (k->conn->vt->sink_flush == NULL) {
        return VELO_OK;
    }
    for (;;) {
        int rc = k->conn->vt->sink_flush(&k->ins);
        if (rc == VELO_OK) {
            return VELO_OK;
        }
        if (rc != VELO_AGAIN) {
            velo_log_error("sink %s: flush failed; the reason is logged "
                           "above", k->ps->name);
            k->job->failed = 1;
            return VELO_ERR;
        }
        job_wait_blocked(k->job);
    }
}

/* `velo test`: where a sink's output is captured instead, as
 * <capture_dir>/<target>.jsonl (a bare SELECT: select-<n>.jsonl, n
 * counting the file's SELECTs from 1). @return malloc'd path or NULL. */
static char *capture_path(const struct velo_job *j,
                          const struct velo_plan_sink *ps)
{
    const struct velo_plan_statement *st =
        ps->statement < j->plan->nstatements
            ? &j->plan->statements[ps->statement]
            : NULL;
    char name[300];
    if (st != NULL && st->target != NULL) {
        /* A target is an SQL name; keep it one path component. */
        size_t n = 0;
        for (const char *c = st->target; *c != '\0' && n < 255; c++) {
            name[n++] = *c == '/' ? '_' : *c;
        }
        name[n] = '\0';
    } else {
        size_t nth = 0;
        for (size_t i = 0; i <= ps->statement && i < j->plan->nstatements;
             i++) {
            nth += j->plan->statements[i].target == NULL;
        }
        snprintf(name, sizeof(name), "select-%zu", nth ? nth : 1);
    }
    size_t len = strlen(j->opts.capture_dir) + strlen(name) + 8;
    char *path = malloc(len);
    if (path != NULL) {
        snprintf(path, len, "%s/%s.jsonl", j->opts.capture_dir, name);
    }
    return path;
}

static int setup_sinks(struct velo_job *j)
{
    j->sinks = calloc(j->plan->nsinks ? j->plan->nsinks : 1,
                      sizeof(*j->sinks));
    if (j->sinks == NULL) {
        return VELO_ERR;
    }
    const struct velo_connector_ref *file_conn = NULL;
    if (j->opts.capture_dir != NULL) {
        file_conn = velo_connectors_by_scheme(j->connectors, "file");
        if (file_conn == NULL) {
            velo_log_error("capturing output needs the file connector");
            return VELO_ERR;
        }
    }
    for (size_t i = 0; i < j->plan->nsinks; i++) {
        struct velo_plan_sink *ps = &j->plan->sinks[i];
        struct job_sink *k = &j->sinks[i];
        j->nsinks++;
        k->ps = ps;
        k->job = j;
        k->hdr_col = -1;
        k->conn = ps->conn;
        k->fmt = ps->format;
        const struct velo_property *props = ps->props;
        size_t nprops = ps->nprops;
        const char *uri = ps->uri;
        /* Captured: path and append (several statements may write one
         * target; the file is emptied once, by its first sink). */
        struct velo_property cprops[3];
        if (file_conn != NULL) {
            k->capture_path = capture_path(j, ps);
            if (k->capture_path == NULL) {
                velo_log_error("sink %s: out of memory", ps->name);
                return VELO_ERR;
            }
            int first = 1;
            for (size_t e = 0; e < i; e++) {
                if (strcmp(j->sinks[e].capture_path, k->capture_path) ==
                    0) {
                    first = 0;
                }
            }
            if (first && unlink(k->capture_path) != 0 && errno != ENOENT) {
                velo_log_error("sink %s: cannot replace %s: %s", ps->name,
                               k->capture_path, strerror(errno));
                return VELO_ERR;
            }
            cprops[0] = (struct velo_property){"path", k->capture_path};
            cprops[1] = (struct velo_property){"append", "true"};
            cprops[2] = (struct velo_property){"fsync", "false"};
            props = cprops;
            nprops = 3;
            uri = NULL;
            k->conn = file_conn;
            velo_format_opts_default(&k->fmt, VELO_FORMAT_JSON);
        }
        snprintf(k->label, sizeof(k->label), "%s:%s", k->conn->name,
                 ps->name);
        if (k->conn->vt->sink_create == NULL ||
            k->conn->vt->sink_write == NULL) {
            velo_log_error("sink %s: connector '%s' cannot write", ps->name,
                           k->conn->name);
            return VELO_ERR;
        }
        char err[512];
        const char *bad_key = NULL;
        if (velo_connector_config_fill(k->conn, props, nprops, NULL,
                                       &k->conn_config, &bad_key, err,
                                       sizeof(err)) != VELO_OK) {
            velo_log_error("sink %s: %s", ps->name, err);
            return VELO_ERR;
        }
        struct velo_connector_ctx ctx = {
            .job = j->opts.filename,
            .name = ps->name,
            .uri = uri,
            .props = props,
            .nprops = nprops,
            .base = j->base,
            .wake = j->wake_fd >= 0 ? job_wake : NULL,
            .wake_arg = j,
        };
        k->ins.host = velo_host_api();
        k->ins.name = k->label;
        if (k->conn->vt->sink_create(&k->ins, k->conn_config, &ctx) !=
            VELO_OK) {
            velo_log_error("sink %s: cannot open; the reason is logged "
                           "above", ps->name);
            k->ins.context = NULL;
            k->failed = 1;
            return VELO_ERR;
        }
        k->records = (k->conn->vt->flags & VELO_CONNECTOR_RECORD_SINK) != 0;
        if (k->records) {
            k->recs = calloc(j->env.batch_cap, sizeof(*k->recs));
            k->ends = calloc(j->env.batch_cap, sizeof(*k->ends));
            if (k->recs == NULL || k->ends == NULL) {
                velo_log_error("sink %s: out of memory", ps->name);
                return VELO_ERR;
            }
            /* Keyed output (PRIMARY KEY, GROUP BY): each record's key. */
            const char *why = k->capture_path == NULL
                                  ? key_format_check(ps, k->fmt.key_format)
                                  : NULL;
            if (why != NULL) {
                velo_log_error("sink %s: %s", ps->name, why);
                return VELO_ERR;
            }
            /* A `_headers` column goes out as the records' headers when
             * the sink can write them (not in the payload). */
            int hc = velo_schema_find(ps->schema, VELO_COL_HEADERS);
            if (hc >= 0 && k->capture_path == NULL &&
                VELO_VTABLE_HAS(k->conn->vt, sink_write_headers)) {
                int t = ps->schema->fields[hc].type.id;
                if (t != VELO_TYPE_STRING && t != VELO_TYPE_JSON) {
                    char tb[64];
                    velo_log_error("sink %s: column _headers must be a JSON "
                                   "object (build it with JSON_OBJECT('name', "
                                   "value, ...)), not a %s",
                                   ps->name,
                                   velo_type_name(ps->schema->fields[hc].type,
                                                  tb, sizeof(tb)));
                    return VELO_ERR;
                }
                k->hdr_col = hc;
                k->hdrs = calloc(j->env.batch_cap, sizeof(*k->hdrs));
                k->enc_schema = velo_schema_copy(ps->schema);
                if (k->hdrs == NULL || k->enc_schema == NULL) {
                    velo_log_error("sink %s: out of memory", ps->name);
                    return VELO_ERR;
                }
                k->enc_schema->fields[hc].hidden = 1;
            }
            if (ps->nkeys > 0 && k->capture_path == NULL) {
                k->kmeta = calloc(j->env.batch_cap, sizeof(*k->kmeta));
                k->kends = calloc(j->env.batch_cap, sizeof(*k->kends));
                if (k->kmeta == NULL || k->kends == NULL) {
                    velo_log_error("sink %s: out of memory", ps->name);
                    return VELO_ERR;
                }
            }
        }
        k->enc = velo_encoder_create(&k->fmt,
                                     k->enc_schema != NULL ? k->enc_schema
                                                           : ps->schema,
                                     ps->changelog);
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
    j->wake_fd = -1; /* destroy closes these only once opened */
    j->dlq_fd = -1;
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
    j->dlq_fd = -1;
    j->dlq_resume_len = -1;
    j->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (job_loop_setup(j) != VELO_OK) {
        velo_log_error("cannot set up the job's event loop (out of memory "
                       "or file descriptors)");
        velo_job_destroy(j);
        return NULL;
    }
    velo_sw_init(&j->ckw);
    velo_sw_init(&j->opw);
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
    j->penv.base = j->base;

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
    if (opts->state_dir != NULL && ckpt_prepare(j, diags) != VELO_OK) {
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
    s->records += s->batch->nrows;
    int rc = velo_op_push(s->ps->entry, s->batch);
    velo_batch_reset(s->batch);
    /* Latency from the start of the batch's decode to the end of its
     * push: one clock read per batch (the end of one push starts the
     * next batch's decode). */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double lat = (double)(now.tv_sec - s->batch_t0.tv_sec) +
                 (double)(now.tv_nsec - s->batch_t0.tv_nsec) / 1e9;
    s->batch_t0 = now;
    j->stats.batches++;
    j->stats.batch_latency_sum_s += lat;
    for (size_t i = 0; i < VELO_JOB_LATENCY_BUCKETS; i++) {
        if (lat <= velo_job_latency_bounds[i]) {
            j->stats.batch_latency_le[i]++;
        }
    }
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
        s->header.len = 0;
        if (velo_buf_append(&s->header, s->view, hlen) != VELO_OK) {
            return VELO_ERR;
        }
        s->header_known = 1;
        size_t skip = nl != NULL ? hlen + 1 : hlen;
        s->view += skip;
        s->view_len -= skip;
        s->position += (int64_t)skip;
        s->line++;
    }
    s->region = s->view;
    s->region_len = s->view_len;
    s->region_pos = s->position;
    while (s->view_len > 0) {
        size_t before = s->batch->nrows;
        size_t used = velo_decode_stream(s->dec, s->view, s->view_len, eof,
                                         s->batch, (int32_t)(s - j->sources),
                                         s->position, s->line, &rep);
        stamp_rows(j, s, before, NULL);
        j->stats.bytes_in += used;
        s->bytes += used;
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
static int64_t mono_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* An idle source stops holding back the watermark of the joins and
 * unions it feeds; its next data makes it count again. */
static void source_idle_check(struct job_source *s, int moved)
{
    int64_t now = mono_us();
    if (moved || s->last_data_us == 0) {
        s->last_data_us = now;
        if (s->idle) {
            s->idle = 0;
            velo_op_idle(s->ps->entry, 0);
        }
        return;
    }
    if (!s->idle && now - s->last_data_us >= s->ps->idle_timeout_us) {
        s->idle = 1;
        velo_log_info("source %s: idle for %lld ms; it no longer holds "
                      "back the watermark",
                      s->shown, (long long)(s->ps->idle_timeout_us / 1000));
        velo_op_idle(s->ps->entry, 1);
    }
}

static uint64_t be_u64(const char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v = (v << 8) | (unsigned char)p[i];
    }
    return v;
}

/* Binary keys (key.format long/int/double) to their text, in place of
 * meta[i].key; a key of the wrong length sends its record to the
 * dead letters and out of the batch. No allocation: keytxt is sized for
 * a whole read. */
static void convert_keys(struct job_source *s)
{
    int kf = s->ps->format.key_format;
    size_t want = kf == VELO_KEY_INT ? 4 : 8;
    size_t out = s->next_payload;
    for (size_t i = s->next_payload; i < s->sb.count; i++) {
        struct velo_str *k = &s->meta[i].key;
        if (k->ptr != NULL && k->len != want) {
            char msg[160];
            snprintf(msg, sizeof(msg),
                     "the key is %zu bytes; key.format '%s' reads %zu-byte "
                     "big-endian values (set '<name>.key.format'='text' to "
                     "read it as text)",
                     k->len,
                     kf == VELO_KEY_INT ? "int"
                                        : kf == VELO_KEY_LONG ? "long"
                                                              : "double",
                     want);
            on_bad_record(s, s->meta[i].offset, 0, s->payload[i].ptr,
                          s->payload[i].len, msg);
            continue;
        }
        if (k->ptr != NULL) {
            char *t = s->keytxt + i * KEYTXT_MAX;
            uint64_t v = be_u64(k->ptr, want);
            int n;
            if (kf == VELO_KEY_INT) {
                n = snprintf(t, KEYTXT_MAX, "%" PRId32,
                             (int32_t)(uint32_t)v);
            } else if (kf == VELO_KEY_LONG) {
                n = snprintf(t, KEYTXT_MAX, "%" PRId64, (int64_t)v);
            } else {
                double d;
                memcpy(&d, &v, sizeof(d));
                n = (int)velo_format_double(d, t, KEYTXT_MAX);
            }
            k->ptr = t;
            k->len = (size_t)n;
        }
        if (out != i) {
            s->payload[out] = s->payload[i];
            s->meta[out] = s->meta[i];
            s->headers[out] = s->headers[i];
        }
        out++;
    }
    s->sb.count = out;
}

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
        if (rc == VELO_OK && s->batch->nrows == 0) {
            /* New input after a pause: its batches start now. */
            clock_gettime(CLOCK_MONOTONIC, &s->batch_t0);
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
    if (s->key_conv && !s->keys_done) {
        s->keys_done = 1;
        convert_keys(s);
    }
    struct velo_decode_report rep = {.bad_record = on_bad_record, .arg = s};
    while (s->next_payload < s->sb.count) {
        size_t before = s->batch->nrows;
        size_t used = velo_decode_messages(
            s->dec, &s->payload[s->next_payload], &s->meta[s->next_payload],
            s->sb.headers != NULL ? &s->headers[s->next_payload] : NULL,
            s->sb.count - s->next_payload, s->batch,
            (int32_t)(s - j->sources), &rep);
        /* The decoder set each row's source timestamp; rows of records
         * without one arrive now. */
        if (s->ts_col >= 0) {
            struct velo_column *c = &s->batch->cols[s->ts_col];
            int64_t now = job_now_us(j);
            for (size_t r = before; r < s->batch->nrows; r++) {
                if (c->nulls[r]) {
                    c->v.i64[r] = now;
                    c->nulls[r] = 0;
                }
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
    if (dlq_flush(j) != VELO_OK) {
        rc = VELO_ERR;
    }
    return rc;
}

/* Make every sink durable (write what is buffered, then sink_flush), and
 * the dead letters. */
static int make_sinks_durable(struct velo_job *j)
{
    if (dlq_sync(j) != VELO_OK) {
        return VELO_ERR;
    }
    for (size_t i = 0; i < j->nsinks; i++) {
        struct job_sink *k = &j->sinks[i];
        if (sink_write_out(k) != VELO_OK) {
            return VELO_ERR;
        }
        if (k->conn->vt->sink_flush == NULL) {
            continue;
        }
        for (;;) {
            int rc = k->conn->vt->sink_flush(&k->ins);
            if (rc == VELO_OK) {
                break;
            }
            if (rc != VELO_AGAIN) {
                velo_log_error("sink %s: flush failed; the reason is logged "
                               "above", k->ps->name);
                j->failed = 1;
                return VELO_ERR;
            }
            job_wait_blocked(j);
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

/* ---- Checkpoints -------------------------------------------------------- */

/* <state_dir>/checkpoint, all integers little-endian:
 *   "VELOCKPT" u32 version u64 plan fingerprint
 *   u8 finished (written after the end of bounded input)
 *   u32 nsinks    { bytes name, u8 header_done, u8 has, bytes position }
 *   u32 nsources  { bytes name, u8 has, bytes position, bytes carry,
 *                   i64 stream offset of the carry, i64 its line,
 *                   u8 header_known, bytes header }
 *   u32 nops      { u32 index in plan->ops, u32 crc, bytes snapshot }
 *   u64 counters x7, u64 dead-letter file length
 *   u32 CRC-32 of everything before it
 * A source's position is where its connector will read next; the carry
 * is what it had read but not yet decoded (a partial record), decoded
 * first on resume. Sinks' positions are taken after they are durable,
 * before the sources' and the operators': the state describes exactly
 * the input whose effects are in the sinks. */
#define CKPT_MAGIC "VELOCKPT"
#define CKPT_VERSION 1u
#define CKPT_HEAD (8 + 4 + 8)

static uint32_t crc32_of(const uint8_t *p, size_t n)
{
    static uint32_t table[256];
    static int ready;
    if (!ready) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) {
                c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            }
            table[i] = c;
        }
        ready = 1;
    }
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    }
    return c ^ 0xFFFFFFFFu;
}


static int write_file_durably(const char *tmp, const char *path,
                              const char *dir, const uint8_t *p, size_t n)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        velo_log_error("checkpoint: cannot create %s: %s", tmp,
                       strerror(errno));
        return VELO_ERR;
    }
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            velo_log_error("checkpoint: cannot write %s: %s", tmp,
                           strerror(errno));
            close(fd);
            return VELO_ERR;
        }
        p += w;
        n -= (size_t)w;
    }
    if (fsync(fd) != 0) {
        velo_log_error("checkpoint: cannot fsync %s: %s", tmp,
                       strerror(errno));
        close(fd);
        return VELO_ERR;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        velo_log_error("checkpoint: cannot rename %s to %s: %s", tmp, path,
                       strerror(errno));
        return VELO_ERR;
    }
    if (velo_fsync_dir(dir) != VELO_OK) {
        velo_log_error("checkpoint: cannot fsync the directory %s: %s", dir,
                       strerror(errno));
        return VELO_ERR;
    }
    return VELO_OK;
}

/* Can every source be described now? Only between records: a sample not
 * yet decoded or record payloads not yet consumed are not a position. */
static int ckpt_consistent(const struct velo_job *j)
{
    for (size_t i = 0; i < j->nsources; i++) {
        const struct job_source *s = &j->sources[i];
        if (s->ps != NULL && (s->carry_fresh ||
                              (!s->info.byte_stream &&
                               s->next_payload < s->sb.count))) {
            return 0;
        }
    }
    return 1;
}

static int job_checkpoint(struct velo_job *j, int finished, int commit)
{
    if (!ckpt_consistent(j)) {
        return VELO_OK; /* at the next turn */
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (make_sinks_durable(j) != VELO_OK) {
        return VELO_ERR;
    }
    struct velo_state_writer *w = &j->ckw;
    velo_sw_reset(w);
    velo_sw_raw(w, CKPT_MAGIC, 8);
    velo_sw_u32(w, CKPT_VERSION);
    velo_sw_u64(w, j->plan->fingerprint);
    velo_sw_u8(w, (uint8_t)(finished != 0));

    velo_sw_u32(w, (uint32_t)j->nsinks);
    for (size_t i = 0; i < j->nsinks; i++) {
        struct job_sink *k = &j->sinks[i];
        velo_sw_bytes(w, k->ps->name, strlen(k->ps->name));
        velo_sw_u8(w, (uint8_t)k->header_done);
        int n = -1;
        if (VELO_VTABLE_HAS(k->conn->vt, sink_position)) {
            n = k->conn->vt->sink_position(&k->ins, j->scratch,
                                           JOB_POSITION_MAX);
            if (n < 0) {
                velo_log_error("checkpoint: sink %s could not say what is "
                               "durable; the reason is logged above",
                               k->ps->name);
                return VELO_ERR;
            }
        }
        velo_sw_u8(w, n >= 0);
        velo_sw_bytes(w, j->scratch, n >= 0 ? (size_t)n : 0);
    }

    uint32_t nsrc = 0;
    for (size_t i = 0; i < j->nsources; i++) {
        nsrc += j->sources[i].ps != NULL;
    }
    velo_sw_u32(w, nsrc);
    for (size_t i = 0; i < j->nsources; i++) {
        struct job_source *s = &j->sources[i];
        if (s->ps == NULL) {
            continue;
        }
        velo_sw_bytes(w, s->name, strlen(s->name));
        const struct velo_connector_vtable *vt = s->conn->vt;
        s->pos_len = -1;
        if (s->opened && vt->source_position != NULL) {
            if (s->pos == NULL &&
                (s->pos = malloc(JOB_POSITION_MAX)) == NULL) {
                return VELO_ERR;
            }
            s->pos_len = vt->source_position(&s->ins, s->pos,
                                             JOB_POSITION_MAX);
            if (s->pos_len < 0) {
                velo_log_error("checkpoint: source %s could not save its "
                               "position", s->shown);
                return VELO_ERR;
            }
        }
        velo_sw_u8(w, s->pos_len >= 0);
        velo_sw_bytes(w, s->pos, s->pos_len >= 0 ? (size_t)s->pos_len : 0);
        velo_sw_bytes(w, s->carry.data, s->carry.len);
        velo_sw_i64(w, s->position);
        velo_sw_i64(w, s->line);
        velo_sw_u8(w, (uint8_t)s->header_known);
        velo_sw_bytes(w, s->header.data, s->header.len);
    }

    uint32_t nops = 0;
    for (size_t i = 0; i < j->plan->nops; i++) {
        nops += j->plan->ops[i]->ops->snapshot != NULL;
    }
    velo_sw_u32(w, nops);
    for (size_t i = 0; i < j->plan->nops; i++) {
        const struct velo_op *op = j->plan->ops[i];
        if (op->ops->snapshot == NULL) {
            continue;
        }
        velo_sw_reset(&j->opw);
        if (op->ops->snapshot(op, &j->opw) != VELO_OK || j->opw.oom) {
            velo_log_error("checkpoint: operator %s could not save its "
                           "state (out of memory?)", op->ops->name);
            return VELO_ERR;
        }
        velo_sw_u32(w, (uint32_t)i);
        velo_sw_u32(w, crc32_of(j->opw.buf, j->opw.len));
        velo_sw_bytes(w, j->opw.buf, j->opw.len);
    }

    const struct velo_job_stats *st = &j->stats;
    velo_sw_u64(w, st->records_in);
    velo_sw_u64(w, st->records_out);
    velo_sw_u64(w, st->bad_records);
    velo_sw_u64(w, st->failed_rows);
    velo_sw_u64(w, st->late_rows);
    velo_sw_u64(w, st->bytes_in);
    velo_sw_u64(w, st->dead_lettered);
    velo_sw_u64(w, j->dlq_len);
    velo_sw_u32(w, crc32_of(w->buf, w->len));
    if (w->oom) {
        velo_log_error("checkpoint: out of memory");
        return VELO_ERR;
    }
    if (write_file_durably(j->ckpt_tmp, j->ckpt_path, j->opts.state_dir,
                           w->buf, w->len) != VELO_OK) {
        return VELO_ERR;
    }
    /* The checkpoint covers everything read so far: only now may the
     * sources acknowledge it upstream. */
    for (size_t i = 0; commit && i < j->nsources; i++) {
        struct job_source *s = &j->sources[i];
        if (s->ps == NULL || s->pos_len < 0 ||
            s->conn->vt->source_commit == NULL) {
            continue;
        }
        if (s->conn->vt->source_commit(&s->ins, s->pos, (size_t)s->pos_len) !=
            VELO_OK) {
            velo_log_warn("source %s: acknowledging upstream failed; the "
                          "checkpoint still holds its position",
                          s->shown);
        }
    }
    j->stats.checkpoints++;
    j->stats.checkpoint_last_s = (double)ns_since(&t0) / 1e9;
    j->stats.checkpoint_last_us = clock_now_us();
    j->stats.checkpoint_bytes = w->len;
    return VELO_OK;
}

struct ckpt_view {
    struct velo_str name, pos, carry, header;
    uint8_t has, flag, header_known;
    int64_t position, line;
};

static int ckpt_corrupt(struct velo_job *j, struct velo_sql_diags *diags,
                        const char *what)
{
    sql_diag_noplace(diags, SQL_ERROR, "V8003",
                     "the file was damaged or edited; move it away or run "
                     "with --reset-state to start over (outputs are then "
                     "written again from the beginning)",
                     "checkpoint %s cannot be used: %s", j->ckpt_path, what);
    return VELO_ERR;
}

static int str_is(struct velo_str s, const char *z)
{
    size_t n = strlen(z);
    return s.ptr != NULL && s.len == n && memcmp(s.ptr, z, n) == 0;
}

/* Verify the whole file before changing anything, then restore operators,
 * seek sources, and last cut the sinks back (the only step that changes
 * output files). */
static int ckpt_load(struct velo_job *j, struct velo_sql_diags *diags,
                     const uint8_t *buf, size_t len)
{
    if (len < CKPT_HEAD + 4 || memcmp(buf, CKPT_MAGIC, 8) != 0) {
        return ckpt_corrupt(j, diags, "it is not a Velostream checkpoint");
    }
    struct velo_state_reader r;
    velo_sr_init(&r, buf + 8, len - 8);
    uint32_t version = velo_sr_u32(&r);
    if (version != CKPT_VERSION) {
        char what[160];
        snprintf(what, sizeof(what), "it has format version %u; this "
                                     "version of velo reads version %u",
                 version, CKPT_VERSION);
        return ckpt_corrupt(j, diags, what);
    }
    uint32_t want = (uint32_t)buf[len - 4] | (uint32_t)buf[len - 3] << 8 |
                    (uint32_t)buf[len - 2] << 16 |
                    (uint32_t)buf[len - 1] << 24;
    if (crc32_of(buf, len - 4) != want) {
        return ckpt_corrupt(j, diags, "its checksum does not match");
    }
    uint64_t fp = velo_sr_u64(&r);
    if (fp != j->plan->fingerprint) {
        sql_diag_noplace(diags, SQL_ERROR, "V8001",
                         "run with --reset-state to start over, or use "
                         "another --state-dir for the new query",
                         "checkpoint in %s was written by a different "
                         "query (fingerprint %016llx, this query %016llx); "
                         "run with --reset-state to start over",
                         j->opts.state_dir, (unsigned long long)fp,
                         (unsigned long long)j->plan->fingerprint);
        return VELO_ERR;
    }
    velo_sr_init(&r, buf + CKPT_HEAD, len - CKPT_HEAD - 4);
    int finished = velo_sr_u8(&r);

    uint32_t nsinks = velo_sr_u32(&r);
    if (nsinks != j->nsinks) {
        return ckpt_corrupt(j, diags, "its sinks are not this query's");
    }
    struct ckpt_view *sk = calloc(nsinks + 1, sizeof(*sk));
    struct ckpt_view *sv = calloc(j->nsources + 1, sizeof(*sv));
    const struct velo_str **opv = calloc(j->plan->nops + 1, sizeof(*opv));
    struct velo_str *opb = calloc(j->plan->nops + 1, sizeof(*opb));
    int rc = VELO_ERR;
    if (sk == NULL || sv == NULL || opv == NULL || opb == NULL) {
        velo_log_error("checkpoint: out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < nsinks; i++) {
        sk[i].name = velo_sr_bytes(&r);
        sk[i].flag = velo_sr_u8(&r);
        sk[i].has = velo_sr_u8(&r);
        sk[i].pos = velo_sr_bytes(&r);
        if (!str_is(sk[i].name, j->sinks[i].ps->name)) {
            ckpt_corrupt(j, diags, "its sinks are not this query's");
            goto out;
        }
    }
    uint32_t nsrc = velo_sr_u32(&r);
    if (nsrc > j->nsources) {
        ckpt_corrupt(j, diags, "its sources are not this query's");
        goto out;
    }
    for (uint32_t i = 0; i < nsrc; i++) {
        struct ckpt_view *v = &sv[i];
        v->name = velo_sr_bytes(&r);
        v->has = velo_sr_u8(&r);
        v->pos = velo_sr_bytes(&r);
        v->carry = velo_sr_bytes(&r);
        v->position = velo_sr_i64(&r);
        v->line = velo_sr_i64(&r);
        v->header_known = velo_sr_u8(&r);
        v->header = velo_sr_bytes(&r);
        int found = 0;
        for (size_t k = 0; k < j->nsources && !r.bad; k++) {
            if (j->sources[k].ps != NULL &&
                str_is(v->name, j->sources[k].name)) {
                found = 1;
            }
        }
        if (!r.bad && !found) {
            ckpt_corrupt(j, diags, "its sources are not this query's");
            goto out;
        }
    }
    uint32_t nops = velo_sr_u32(&r);
    for (uint32_t i = 0; i < nops && !r.bad; i++) {
        uint32_t idx = velo_sr_u32(&r);
        uint32_t crc = velo_sr_u32(&r);
        struct velo_str b = velo_sr_bytes(&r);
        if (r.bad) {
            break;
        }
        if (idx >= j->plan->nops || opv[idx] != NULL ||
            j->plan->ops[idx]->ops->restore == NULL) {
            ckpt_corrupt(j, diags, "it holds state for an operator this "
                                   "query does not have");
            goto out;
        }
        if (crc32_of((const uint8_t *)b.ptr, b.len) != crc) {
            ckpt_corrupt(j, diags, "an operator's state fails its "
                                   "checksum");
            goto out;
        }
        opb[idx] = b;
        opv[idx] = &opb[idx];
    }
    struct velo_job_stats st = j->stats;
    st.records_in = velo_sr_u64(&r);
    st.records_out = velo_sr_u64(&r);
    st.bad_records = velo_sr_u64(&r);
    st.failed_rows = velo_sr_u64(&r);
    st.late_rows = velo_sr_u64(&r);
    st.bytes_in = velo_sr_u64(&r);
    st.dead_lettered = velo_sr_u64(&r);
    uint64_t dlq_len = velo_sr_u64(&r);
    if (!velo_sr_ok(&r, 1)) {
        ckpt_corrupt(j, diags, "it is truncated or malformed");
        goto out;
    }
    for (size_t i = 0; i < j->plan->nops; i++) {
        if (j->plan->ops[i]->ops->snapshot != NULL && opv[i] == NULL) {
            ckpt_corrupt(j, diags, "an operator's state is missing");
            goto out;
        }
    }

    /* Operators. */
    for (size_t i = 0; i < j->plan->nops; i++) {
        if (opv[i] == NULL) {
            continue;
        }
        struct velo_op *op = j->plan->ops[i];
        struct velo_state_reader or;
        velo_sr_init(&or, opv[i]->ptr, opv[i]->len);
        if (op->ops->restore(op, &or) != VELO_OK) {
            char what[160];
            snprintf(what, sizeof(what), "the state of operator %s (#%zu) "
                                         "does not read back",
                     op->ops->name, i);
            ckpt_corrupt(j, diags, what);
            goto out;
        }
    }
    /* Sources: back to the checkpoint, whatever prepare sampled. */
    for (uint32_t i = 0; i < nsrc; i++) {
        struct ckpt_view *v = &sv[i];
        struct job_source *s = NULL;
        for (size_t k = 0; k < j->nsources; k++) {
            if (j->sources[k].ps != NULL && str_is(v->name,
                                                   j->sources[k].name)) {
                s = &j->sources[k];
            }
        }
        if (!v->has) {
            /* It could not say where it was: it starts where its
             * connector starts, as on a first run. */
            velo_log_warn("source %s: no saved position; it is read "
                          "from where its connector starts",
                          s->shown);
            continue;
        }
        if (s->conn->vt->source_seek == NULL) {
            sql_diag_noplace(diags, SQL_ERROR, "V8003",
                             "run with --reset-state to start over",
                             "source '%s' cannot resume from the "
                             "checkpoint: connector '%s' cannot seek",
                             s->shown, s->conn->name);
            goto out;
        }
        if (s->conn->vt->source_seek(&s->ins, (const uint8_t *)v->pos.ptr,
                                     v->pos.len) != VELO_OK) {
            sql_diag_noplace(diags, SQL_ERROR, "V8003",
                             "run with --reset-state to start over",
                             "source '%s' cannot resume from the "
                             "checkpoint's position; the reason is "
                             "logged above",
                             s->shown);
            goto out;
        }
        s->sb.count = 0;
        s->next_payload = 0;
        s->eof = 0;
        s->done = 0;
        s->carry.len = 0;
        s->carry_fresh = 0;
        /* A connector that could not go back there (a file replaced or
         * truncated since) starts elsewhere, and says so: the saved
         * partial record and line count then mean nothing. */
        int n = s->conn->vt->source_position != NULL
                    ? s->conn->vt->source_position(&s->ins, j->scratch,
                                                   JOB_POSITION_MAX)
                    : -1;
        if (n != (int)v->pos.len ||
            memcmp(j->scratch, v->pos.ptr, v->pos.len) != 0) {
            s->position = 0;
            s->line = 1;
            s->view = s->carry.data;
            s->view_len = 0;
            continue;
        }
        if (velo_buf_append(&s->carry, v->carry.ptr, v->carry.len) !=
            VELO_OK) {
            goto out;
        }
        s->carry_fresh = v->carry.len > 0;
        s->view = s->carry.data;
        s->view_len = s->carry.len;
        s->position = v->position;
        s->line = v->line;
        if (v->header_known) {
            char err[512];
            s->header.len = 0;
            if (velo_buf_append(&s->header, v->header.ptr, v->header.len) !=
                    VELO_OK ||
                velo_decoder_set_header(s->dec, v->header.ptr, v->header.len,
                                        err, sizeof(err)) != VELO_OK) {
                sql_diag_noplace(diags, SQL_ERROR, "V8003",
                                 "run with --reset-state to start over",
                                 "source '%s': the checkpoint's CSV header "
                                 "does not fit: %s",
                                 s->shown, err);
                goto out;
            }
            s->header_known = 1;
            s->header_pending = 0;
        }
    }
    /* Sinks last: cut back to what the checkpoint covered. */
    for (uint32_t i = 0; i < nsinks; i++) {
        struct job_sink *k = &j->sinks[i];
        k->header_done = sk[i].flag;
        if (!sk[i].has) {
            continue; /* at least once: it cannot go back */
        }
        if (!VELO_VTABLE_HAS(k->conn->vt, sink_restore) ||
            k->conn->vt->sink_restore(&k->ins, (const uint8_t *)sk[i].pos.ptr,
                                      sk[i].pos.len) != VELO_OK) {
            sql_diag_noplace(diags, SQL_ERROR, "V8003",
                             "run with --reset-state to start over",
                             "sink '%s' cannot go back to the checkpoint; "
                             "the reason is logged above",
                             k->ps->name);
            goto out;
        }
    }
    j->stats = st;
    j->dlq_resume_len = (int64_t)dlq_len;
    j->resumed = 1;
    j->already_finished = finished;
    rc = VELO_OK;
out:
    free(sk);
    free(sv);
    free(opv);
    free(opb);
    return rc;
}

/* At prepare with a state dir: refuse operators that cannot be saved,
 * then resume from the checkpoint when there is one. */
static int ckpt_prepare(struct velo_job *j, struct velo_sql_diags *diags)
{
    for (size_t i = 0; i < j->plan->nops; i++) {
        const struct velo_op *op = j->plan->ops[i];
        if (op->keeps_state && op->ops->snapshot == NULL) {
            sql_diag_noplace(diags, SQL_ERROR, "V8004",
                             "run without --state-dir (the query then "
                             "starts over after a restart)",
                             "operator %s keeps state that cannot be "
                             "checkpointed yet, so --state-dir cannot be "
                             "used with this query",
                             op->ops->name);
            return VELO_ERR;
        }
    }
    const char *dir = j->opts.state_dir;
    size_t n = strlen(dir) + 32;
    j->ckpt_path = malloc(n);
    j->ckpt_tmp = malloc(n);
    j->scratch = malloc(JOB_POSITION_MAX);
    if (j->ckpt_path == NULL || j->ckpt_tmp == NULL || j->scratch == NULL) {
        velo_log_error("out of memory");
        return VELO_ERR;
    }
    snprintf(j->ckpt_path, n, "%s/checkpoint", dir);
    snprintf(j->ckpt_tmp, n, "%s/checkpoint.tmp", dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        sql_diag_noplace(diags, SQL_ERROR, "V8003",
                         "create its parent directory, or name another "
                         "--state-dir",
                         "cannot create the state directory %s: %s", dir,
                         strerror(errno));
        return VELO_ERR;
    }
    if (j->opts.reset_state) {
        if (unlink(j->ckpt_path) != 0 && errno != ENOENT) {
            sql_diag_noplace(diags, SQL_ERROR, "V8003", NULL,
                             "cannot remove %s: %s", j->ckpt_path,
                             strerror(errno));
            return VELO_ERR;
        }
        unlink(j->ckpt_tmp);
        return VELO_OK;
    }
    int fd = open(j->ckpt_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            return VELO_OK; /* the first run */
        }
        sql_diag_noplace(diags, SQL_ERROR, "V8003", NULL,
                         "cannot read the checkpoint %s: %s", j->ckpt_path,
                         strerror(errno));
        return VELO_ERR;
    }
    struct stat st;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = VELO_ERR;
    if (fstat(fd, &st) == 0 && st.st_size >= 0 &&
        (buf = malloc((size_t)st.st_size + 1)) != NULL) {
        len = (size_t)st.st_size;
        size_t got = 0;
        while (got < len) {
            ssize_t r = read(fd, buf + got, len - got);
            if (r < 0 && errno == EINTR) {
                continue;
            }
            if (r <= 0) {
                break;
            }
            got += (size_t)r;
        }
        if (got == len) {
            rc = ckpt_load(j, diags, buf, len);
        } else {
            ckpt_corrupt(j, diags, "it could not be read in full");
        }
    } else {
        ckpt_corrupt(j, diags, "it could not be read");
    }
    close(fd);
    free(buf);
    if (rc == VELO_OK) {
        velo_log_info("resuming from the checkpoint in %s", dir);
    }
    return rc;
}

int velo_job_run(struct velo_job *j, volatile sig_atomic_t *stop)
{
    clock_gettime(CLOCK_MONOTONIC, &j->started);
    j->last_progress = j->started;
    struct timespec last_flush = j->started, last_commit = j->started;
    struct timespec last_ckpt = j->started;
    int stateless = plan_commits_midrun(j);
    int limited = 0; /* stopped because a LIMIT was satisfied */
    int stopped = 0; /* by *stop */
    int64_t ckpt_ns = (j->opts.checkpoint_interval_ms > 0
                           ? j->opts.checkpoint_interval_ms
                           : JOB_CKPT_INTERVAL_MS) *
                      1000000LL;
    for (size_t i = 0; i < j->nsources; i++) {
        j->sources[i].batch_t0 = j->started;
    }
    if (dlq_open(j) != VELO_OK) {
        return VELO_ERR;
    }
    if (j->already_finished) {
        velo_log_info("the checkpoint in %s was written when this query "
                      "had finished: nothing to do (run with "
                      "--reset-state to start over)",
                      j->opts.state_dir);
        return VELO_OK;
    }
    int rc = VELO_OK;
    for (;;) {
        int active = 0, moved = 0;
        /* A join's table sources are read to their end first, so every
         * stream row meets the whole table. */
        int preloading = 0;
        for (size_t i = 0; i < j->nsources; i++) {
            const struct job_source *s = &j->sources[i];
            preloading |= !s->done && s->ps != NULL && s->ps->preload;
        }
        for (size_t i = 0; i < j->nsources; i++) {
            struct job_source *s = &j->sources[i];
            if (s->done || s->ps == NULL) {
                continue;
            }
            active++;
            if (preloading && !s->ps->preload) {
                continue;
            }
            int r = source_step(j, s);
            if (s->ps->idle_timeout_us > 0 && r >= 0) {
                source_idle_check(s, r > 0);
            }
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
            stopped = 1;
            if (j->ckpt_path != NULL) {
                velo_log_info("stopping: saving a checkpoint; a restart "
                              "with the same --state-dir continues here");
            } else {
                velo_log_info("stopping: emitting final results and "
                              "flushing");
            }
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
        if (j->ckpt_path != NULL) {
            if (ns_since(&last_ckpt) >= ckpt_ns) {
                if (job_checkpoint(j, 0, 1) != VELO_OK) {
                    rc = VELO_ERR;
                    break;
                }
                clock_gettime(CLOCK_MONOTONIC, &last_ckpt);
            }
        } else if (stateless && ns_since(&last_commit) >= JOB_COMMIT_NS) {
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
            job_wait(j);
        } else {
            job_poll_loop(j);
        }
    }
    /* Bounded input ended or the job was stopped: final emits, flush. */
    for (size_t i = 0; i < j->nsources; i++) {
        struct job_source *s = &j->sources[i];
        if (s->ps != NULL && s->batch != NULL) {
            push_batch(j, s);
        }
    }
    /* Stopped with a state dir: open windows stay open in the
     * checkpoint, to be completed by the restart, not emitted early. */
    int keep_open = stopped && j->ckpt_path != NULL;
    for (size_t i = 0; i < j->nsources && !keep_open; i++) {
        struct job_source *s = &j->sources[i];
        if (s->ps != NULL && velo_op_finish(s->ps->entry) != VELO_OK) {
            rc = VELO_ERR;
        }
    }
    /* Final results are emitted and flushed: acknowledge the sources
     * (not after a failure: those records must be read again). A run
     * stopped by its LIMIT is a peek: it read rows the LIMIT discarded, so
     * it acknowledges nothing and the next reader sees them all. */
    if (j->ckpt_path != NULL) {
        /* The last checkpoint; after the end of input it says so, and a
         * restart has nothing to do. */
        if (rc == VELO_OK && !j->failed &&
            job_checkpoint(j, !keep_open, !limited) != VELO_OK) {
            rc = VELO_ERR;
        }
    } else if (rc == VELO_OK && !j->failed && !limited &&
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
    out->state_rows = 0;
    out->state_bytes = 0;
    for (size_t i = 0; j->plan != NULL && i < j->plan->nops; i++) {
        out->state_rows += j->plan->ops[i]->stats.state_rows;
        out->state_bytes += j->plan->ops[i]->stats.state_bytes;
    }
    /* Event time: the Watermark operators the planner put in front of
     * windows, joins and OVER; the job's watermark is the lowest of them
     * (the one holding results back). */
    out->watermark_us = INT64_MIN;
    out->max_event_time_us = INT64_MIN;
    int any = 0;
    for (size_t i = 0; j->plan != NULL && i < j->plan->nops; i++) {
        int64_t wm, mx;
        if (velo_op_watermark_gen_state(j->plan->ops[i], &wm, &mx) !=
                VELO_OK ||
            mx == INT64_MIN) {
            continue;
        }
        if (!any || wm < out->watermark_us) {
            out->watermark_us = wm;
        }
        if (mx > out->max_event_time_us) {
            out->max_event_time_us = mx;
        }
        any = 1;
    }
    struct rusage ru;
    out->peak_rss_bytes = getrusage(RUSAGE_SELF, &ru) == 0
                              ? (uint64_t)ru.ru_maxrss * 1024
                              : 0;
}

size_t velo_job_nsources(const struct velo_job *j)
{
    return j->nsources;
}

void velo_job_source_stats(const struct velo_job *j, size_t i,
                           struct velo_job_source_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->watermark_us = INT64_MIN;
    out->lag = -1;
    if (i >= j->nsources) {
        return;
    }
    const struct job_source *s = &j->sources[i];
    out->name = s->shown;
    out->records = s->records;
    out->bytes = s->bytes;
    out->bad_records = s->bad;
    out->bounded = s->info.bounded;
    out->ended = s->done;
    /* A file of known size: what is left past the first byte not yet
     * decoded. */
    if (s->info.byte_stream && s->info.size_bytes >= 0) {
        int64_t left = s->info.size_bytes - s->position;
        out->lag = left > 0 ? left : 0;
    }
}

void velo_job_destroy(struct velo_job *j)
{
    if (j == NULL) {
        return;
    }
    for (size_t i = 0; i < j->nsinks; i++) {
        struct job_sink *k = &j->sinks[i];
        if (k->ins.context != NULL && k->conn->vt->sink_destroy != NULL) {
            k->conn->vt->sink_destroy(&k->ins);
        }
        if (k->conn_config != NULL) {
            velo_connector_config_free(k->conn, k->conn_config);
        }
        velo_encoder_destroy(k->enc);
        velo_buf_free(&k->out);
        free(k->capture_path);
        free(k->recs);
        free(k->ends);
        free(k->kmeta);
        free(k->kends);
        velo_buf_free(&k->keybuf);
        free(k->hdrs);
        velo_schema_destroy(k->enc_schema);
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
        velo_buf_free(&s->header);
        free(s->keytxt);
        free(s->pos);
        free(s->name);
    }
    free(j->sources);
    if (j->dlq_fd >= 0) {
        close(j->dlq_fd);
    }
    velo_buf_free(&j->dlq);
    velo_sw_free(&j->ckw);
    velo_sw_free(&j->opw);
    free(j->scratch);
    free(j->ckpt_path);
    free(j->ckpt_tmp);
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
    /* Last: the connectors and lookup tables above had their events on
     * this loop. */
    if (j->wake_ev != NULL) {
        event_free(j->wake_ev);
    }
    if (j->idle_ev != NULL) {
        event_free(j->idle_ev);
    }
    if (j->own_base && j->base != NULL) {
        event_base_free(j->base);
    }
    if (j->wake_fd >= 0) {
        close(j->wake_fd);
    }
    free(j);
}
