/*
 * A job: one SQL application (a file of statements) planned and run on
 * one thread: sources -> decoders -> the operator DAG -> encoders ->
 * sinks. `velo run`, `velo validate` and `velo explain` all start here.
 *
 * Sources are opened while planning (the planner asks for each external
 * source's schema; the job infers it from the first bytes read, which it
 * keeps and decodes first), so validate and explain see the same schemas
 * a run would.
 */
#ifndef VELO_EXEC_JOB_H
#define VELO_EXEC_JOB_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "sql/sql.h"

struct velo_plugins;
struct velo_job;

struct velo_job_opts {
    const char *filename;  /* for messages; "<stdin>", "<command line>" */
    int stdout_format;     /* enum velo_format_kind for bare SELECTs */
    int stdout_fd;         /* where stdout sinks write; 1 normally */
    const struct velo_plugins *plugins; /* Connector/App plugins, or NULL */
    int progress_fd;       /* live progress line, -1 for none */
    int64_t (*now_us)(void); /* NOW() and arrival times; NULL: the clock */
    size_t batch_rows;     /* 0: VELO_BATCH_ROWS */
    int max_reported;      /* bad records/rows logged in full; 0: 10 */
    /* Called on every turn of the run loop, on the job's thread; idle is
     * 1 when nothing moved (the loop then sleeps briefly). `velo run
     * --metrics-port` answers scrapes here. May be NULL. */
    void (*on_turn)(void *arg, int idle);
    void *turn_arg;
    /* Set by a signal handler: preparing gives up waiting for a source's
     * first data (an empty topic) when it becomes nonzero. May be NULL. */
    volatile sig_atomic_t *stop;

    /* ---- Appended for SQL engine II and `velo test` ---- */
    /* Checkpoints: NULL state_dir = none. The job writes
     * <state_dir>/checkpoint (temporary file, fsync, rename, fsync of the
     * directory) every checkpoint_interval_ms (0: 10000) and at a clean
     * stop, and resumes from it at start. A checkpoint written by a
     * different plan (fingerprint) is refused at prepare (error V8001
     * naming both queries' fingerprints and --reset-state) unless
     * reset_state, which deletes it first. */
    const char *state_dir;
    int reset_state;
    int64_t checkpoint_interval_ms;
    /* `velo test`: read source `rebind[i].name` from rebind[i].uri
     * instead of its own connector (its declared columns, event-time and
     * watermark properties still apply; the format follows the URI's
     * extension); unknown names are an error at prepare. */
    const struct velo_job_rebind *rebind;
    size_t nrebind;
    /* `velo test`: every statement's output goes to
     * <capture_dir>/<target>.jsonl (a bare SELECT: select-<n>.jsonl, n
     * 1-based among the file's SELECTs) as JSON Lines, with an "_op"
     * field on changelog rows, instead of its sink. NULL: real sinks. */
    const char *capture_dir;

    /* ---- Appended for the connectors on the event loop (ABI 1.2) ---- */
    /* The worker's event loop the job's connectors register their fds
     * with (ctx->base). NULL: the job makes its own. The job runs it
     * (never from inside one of its callbacks) between batches and while
     * it waits; nothing else may run this base meanwhile. */
    struct event_base *base;
};

struct velo_job_rebind {
    const char *name; /* the source's SQL name */
    const char *uri;  /* file:///tmp/x/orders.jsonl, gen://..., ... */
};

/* Batch latency: time from a source batch's decode to the end of its push
 * through the DAG, in buckets of upper bounds (seconds). */
#define VELO_JOB_LATENCY_BUCKETS 12
extern const double velo_job_latency_bounds[VELO_JOB_LATENCY_BUCKETS];

struct velo_job_stats {
    uint64_t records_in;  /* decoded records */
    uint64_t records_out; /* rows handed to sinks */
    uint64_t bad_records; /* could not be decoded (skipped) */
    uint64_t failed_rows; /* evaluation errors (skipped) */
    uint64_t late_rows;   /* for closed windows (dropped) */
    uint64_t bytes_in;
    double elapsed_s;

    /* ---- Appended for SQL engine II and observability ---- */
    uint64_t dead_lettered; /* records and rows written to the DLQ */
    int64_t watermark_us;   /* lowest source watermark; INT64_MIN none */
    int64_t max_event_time_us; /* highest event time seen; INT64_MIN */
    uint64_t checkpoints;      /* completed */
    double checkpoint_last_s;  /* duration of the last one */
    int64_t checkpoint_last_us; /* wall clock of the last one; 0 none */
    uint64_t checkpoint_bytes; /* size of the last one */
    uint64_t batches;          /* source batches pushed */
    double batch_latency_sum_s;
    /* cumulative: count of batches with latency <= bound[i] */
    uint64_t batch_latency_le[VELO_JOB_LATENCY_BUCKETS];
    size_t state_rows, state_bytes; /* summed over operators */
    uint64_t peak_rss_bytes;        /* of the process, at the end */
};

/* Per source, for metrics (lag, watermark delay) and `velo test`. */
struct velo_job_source_stats {
    const char *name;       /* SQL name; valid while the job lives */
    uint64_t records, bytes, bad_records;
    int64_t watermark_us;   /* INT64_MIN before any event time */
    int64_t lag;            /* records (Kafka) or bytes (files) not yet
                               read, -1 when unknown */
    int bounded, ended;
};
size_t velo_job_nsources(const struct velo_job *j);
void velo_job_source_stats(const struct velo_job *j, size_t i,
                           struct velo_job_source_stats *out);

/**
 * Parse and plan. @return the job, or NULL with every problem in diags
 * (warnings may be there on success too).
 */
struct velo_job *velo_job_prepare(const char *sql, size_t len,
                                  const struct velo_job_opts *opts,
                                  struct velo_sql_diags *diags);

const struct velo_plan *velo_job_plan(const struct velo_job *j);

/**
 * Run until every source has ended (bounded input) or *stop becomes
 * nonzero (Ctrl-C): then emit what is final, flush the sinks and return.
 * @return VELO_OK, or VELO_ERR when a source or sink failed (logged).
 */
int velo_job_run(struct velo_job *j, volatile sig_atomic_t *stop);

void velo_job_get_stats(const struct velo_job *j, struct velo_job_stats *out);

void velo_job_destroy(struct velo_job *j);

#endif /* VELO_EXEC_JOB_H */
