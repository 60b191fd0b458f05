/*
 * Metrics registry and Prometheus text exposition (format 0.0.4).
 *
 * A family has a name, help, type and label names; a series is one set of
 * label values. Updates are lock-free (atomic doubles) so worker threads can
 * count; creating a series takes the registry lock. Series per family are
 * capped (default 10,000); past the cap updates go to no series and the
 * family's dropped count grows (velo_metrics_dropped_series_total).
 */
#ifndef VELO_CORE_METRICS_H
#define VELO_CORE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <velo/log.h>

struct velo_metrics;
struct velo_metric_family;
struct velo_metric; /* one series; the SDK's opaque handle */

enum velo_metric_type {
    VELO_METRIC_COUNTER = 0,
    VELO_METRIC_GAUGE = 1,
    VELO_METRIC_HISTOGRAM = 2
};

struct velo_metrics *velo_metrics_create(void);
void velo_metrics_destroy(struct velo_metrics *m);

/**
 * Declare (or find, when name and type match) a family. label_names is a
 * comma-separated list ("route,method,status") or NULL. Histogram buckets
 * are upper bounds in ascending order (+Inf implied); NULL uses defaults.
 * @return NULL when the name is invalid or reused with another type.
 */
struct velo_metric_family *velo_metrics_family(struct velo_metrics *m,
                                               const char *name,
                                               const char *help, int type,
                                               const char *label_names,
                                               const double *buckets,
                                               size_t n_buckets);

/** The series for these label values (in label_names order; n must match).
 *  @return NULL when capped or on a count mismatch. */
struct velo_metric *velo_metric_series(struct velo_metric_family *f,
                                       const char *const *label_values,
                                       size_t n);

void velo_metric_inc(struct velo_metric *s, double v);     /* counter/gauge */
void velo_metric_set(struct velo_metric *s, double v);     /* gauge */
void velo_metric_observe(struct velo_metric *s, double v); /* histogram */
double velo_metric_value(const struct velo_metric *s);     /* counter/gauge */

/**
 * Mirror a histogram kept elsewhere (a job's batch latency): le_cum[i] is
 * the cumulative count of observations <= the family's bound i (n must be
 * the family's number of bounds), count the total and sum their sum.
 * @return VELO_ERR when s is not a histogram or n does not match.
 */
int velo_metric_histogram_set(struct velo_metric *s, const uint64_t *le_cum,
                              size_t n, uint64_t count, double sum);

/** One series as velo_metrics_family_visit shows it: value is a counter's
 *  or gauge's value or a histogram's sum; count a histogram's count (0
 *  otherwise). label_values are borrowed for the call. */
typedef void (*velo_metric_visit_fn)(void *arg, const char *const *label_values,
                                     size_t n, double value, uint64_t count);
/** Call fn for each series of f, in creation order (under the registry
 *  lock: fn must not call into the registry). */
void velo_metrics_family_visit(struct velo_metric_family *f,
                               velo_metric_visit_fn fn, void *arg);

/* Callback run before each exposition (process stats, queue depth). */
typedef void (*velo_metrics_collect_fn)(struct velo_metrics *m, void *arg);
int velo_metrics_add_collector(struct velo_metrics *m,
                               velo_metrics_collect_fn fn, void *arg);

/** Prometheus text exposition. @return malloc'd NUL-terminated text; the
 *  caller frees. NULL on ENOMEM. */
char *velo_metrics_render(struct velo_metrics *m, size_t *len);

/**
 * Register the standard process and build metrics: velo_build_info,
 * process_cpu_seconds_total, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_open_fds, process_max_fds,
 * process_start_time_seconds (from /proc/self).
 */
int velo_metrics_register_process(struct velo_metrics *m,
                                   const char *version, const char *commit);

#endif /* VELO_CORE_METRICS_H */
