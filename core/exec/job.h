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
};

struct velo_job_stats {
    uint64_t records_in;  /* decoded records */
    uint64_t records_out; /* rows handed to sinks */
    uint64_t bad_records; /* could not be decoded (skipped) */
    uint64_t failed_rows; /* evaluation errors (skipped) */
    uint64_t late_rows;   /* for closed windows (dropped) */
    uint64_t bytes_in;
    double elapsed_s;
};

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
