/*
 * Inside a job's metrics: shared by jobmetrics.c (the registry side) and
 * livedash.c (`velo run --dashboard`, which shows the same numbers as
 * JSON and HTML). Everything here lives on the job's thread.
 */
#ifndef VELO_OBS_JOBMETRICS_INTERNAL_H
#define VELO_OBS_JOBMETRICS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "exec/operator.h"
#include "obs/jobmetrics.h"

#define VELO_OBS_LABEL_BUF 4096 /* formatted label values of one row */

struct velo_obs_series_slot {
    uint64_t hash;
    char *key; /* label values joined by '\0', owned */
    size_t keylen;
    struct velo_metric *s;
};

/* One @metric attached to its statement's output. */
struct velo_obs_annotated {
    struct velo_obs_job_metrics *jm;
    const struct velo_obs_metric_spec *spec;
    struct velo_metric_family *fam;
    struct velo_metric *dropped; /* velo_metrics_dropped_series_total{..} */
    struct velo_op *op;          /* the callback op, owned */
    struct velo_evaluator *ev;
    struct velo_eval_ctx ctx;
    struct velo_arena *arena;
    size_t cap_rows;
    struct velo_obs_series_slot *slots;
    size_t nslots, nseries, cap;
    char buf[VELO_OBS_LABEL_BUF];
};

struct velo_obs_op_series {
    struct velo_metric *in, *out, *failed, *late, *state_rows, *state_bytes;
};

struct velo_obs_source_series {
    struct velo_metric *records, *bytes, *bad, *lag, *wm_delay;
};

struct velo_obs_job_metrics {
    struct velo_metrics *m;
    struct velo_job *job;
    const struct velo_plan *plan;
    char *name; /* the query label */
    struct velo_obs_annotated *ann;
    size_t nann;
    /* Statement names ("trades", "select-1") and, per plan operator, the
     * statement it works for (index, or -1 when it feeds several). */
    char **stmt_names;
    int *op_stmt;
    /* Engine series, one per job. */
    struct velo_metric *records_in, *records_out, *bad, *failed, *late,
        *bytes_in, *dead_lettered, *watermark, *wm_delay, *max_event_time,
        *state_rows, *state_bytes, *batch_latency, *checkpoints, *ckpt_duration,
        *ckpt_age, *ckpt_bytes;
    struct velo_obs_op_series *ops;
    size_t nops;
    struct velo_obs_source_series *sources;
    size_t nsources;
    int64_t created_us; /* wall clock: checkpoint age before the first */
};

/** Wall clock, microseconds since the epoch. */
int64_t velo_obs_wall_us(void);

/** Statement i's display name: its target, or "select-<n>" (n 1-based
 *  among the bare SELECTs), as `velo test` names captured output. */
void velo_obs_statement_name(const struct velo_plan *p, size_t i, char *buf,
                             size_t len);

/** Remove child op from up's children (it was attached after planning;
 *  the job's operators go with the job, ours before it). */
void velo_obs_unhook(struct velo_op *up, struct velo_op *op);

struct evhttp_request;
/** Serve path on the metrics listener too (the dashboard's pages).
 *  @return VELO_OK, or VELO_ERR when the path is taken. */
int velo_obs_metrics_http_route(struct velo_obs_metrics_http *h,
                                const char *path,
                                void (*cb)(struct evhttp_request *, void *),
                                void *arg);

/* livedash-page.c: the HTML of /dashboard, NUL-terminated. */
extern const char velo_obs_live_page[];
extern const size_t velo_obs_live_page_len;

#endif /* VELO_OBS_JOBMETRICS_INTERNAL_H */
