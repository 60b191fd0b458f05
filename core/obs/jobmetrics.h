/*
 * A job's metrics: the engine's own (per job: records and rows in/out,
 * bad, failed, late and dead-lettered, batch latency, watermark, state,
 * checkpoints; per source: records, bytes, lag, watermark delay; per
 * operator, labelled with its statement: rows in/out/failed/late and
 * state) refreshed from the job's counters before each exposition, and
 * the @metric annotations, updated by a callback operator attached to the
 * annotated statement's output as each batch passes. docs/observability.md
 * lists them all.
 *
 * Everything runs on the job's thread: the collector reads the counters
 * the job thread writes, so render the registry on that thread (velo run
 * polls its /metrics listener from the job loop).
 */
#ifndef VELO_OBS_JOBMETRICS_H
#define VELO_OBS_JOBMETRICS_H

#include <stddef.h>

#include "exec/job.h"
#include "obs/annotations.h"
#include "obs/metrics.h"

#define VELO_OBS_DEFAULT_SERIES_CAP 1000

struct velo_obs_job_metrics;

/**
 * Register the engine metrics of job (labelled query="<name>") and attach
 * the annotated metrics of ann (resolved against the job's plan) to the
 * plan's operators. m, job and ann are borrowed and must outlive the
 * result; destroy it after the job has stopped running and before
 * the job is destroyed (it unhooks its operators from the plan's). series_cap bounds
 * the label sets of each annotated metric (0: the default, 1000); past it
 * updates are dropped and counted in velo_metrics_dropped_series_total.
 * @return NULL and errno on failure.
 */
struct velo_obs_job_metrics *
velo_obs_job_metrics_create(struct velo_metrics *m, const char *name,
                            struct velo_job *job,
                            const struct velo_obs_annotations *ann,
                            size_t series_cap);
void velo_obs_job_metrics_destroy(struct velo_obs_job_metrics *jm);

/** Refresh the engine metrics from the job's counters now (the registry's
 *  collector does this before each exposition). */
void velo_obs_job_metrics_refresh(struct velo_obs_job_metrics *jm);

/* ---- A minimal /metrics listener for `velo run --metrics-port` ---------- */

struct velo_obs_metrics_http;

/** Listen on 127.0.0.1:port (0: a free port) and serve GET /metrics from
 *  m. Nothing happens until velo_obs_metrics_http_poll runs.
 *  @return NULL (reason logged) when the port cannot be bound. */
struct velo_obs_metrics_http *velo_obs_metrics_http_start(
    struct velo_metrics *m, int port);
/** The port listened on. */
int velo_obs_metrics_http_port(const struct velo_obs_metrics_http *h);
/** Answer what is pending without blocking. */
void velo_obs_metrics_http_poll(struct velo_obs_metrics_http *h);
void velo_obs_metrics_http_stop(struct velo_obs_metrics_http *h);

/* ---- `velo run --dashboard` ---------------------------------------------- */

struct velo_obs_live;

/**
 * Watch the job: keep the last rows of each statement's output (a
 * callback operator on each, like the @metric ones) and serve, on h,
 * GET /dashboard (a self-contained live page), GET /api/job (the JSON it
 * polls) and / (a redirect to /dashboard). jm and h are borrowed and
 * must outlive the result; destroy it before jm and the job.
 * @return NULL (reason logged) on failure.
 */
struct velo_obs_live *velo_obs_live_create(struct velo_obs_job_metrics *jm,
                                           struct velo_obs_metrics_http *h);
void velo_obs_live_destroy(struct velo_obs_live *l);

/** The job has stopped (ok: without an error): /api/job says so, and the
 *  page shows the final state instead of "live". */
void velo_obs_live_finished(struct velo_obs_live *l, int ok);

/** The /api/job document: the job's stats, sources, statements with their
 *  last output rows, operators and @metric values. @return malloc'd JSON
 *  text, NULL on ENOMEM. */
char *velo_obs_live_json(const struct velo_obs_live *l);

#endif /* VELO_OBS_JOBMETRICS_H */
