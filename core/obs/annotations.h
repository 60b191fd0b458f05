/*
 * Observability annotations: `-- @metric: ...` and `-- @alert: ...`
 * comments on a statement, as the parser keeps them
 * (velo_sql_annotations), checked and turned into metric and alert specs.
 *
 * Annotations group by statement: each `@metric` starts a metric, the
 * `@metric_*` keys after it (up to the next `@metric`) describe it; each
 * `@alert` starts an alert the same way. Errors are SQL diagnostics with
 * stable codes V7003..V7016 (docs/observability.md), so `velo validate`
 * lists them with the other errors, with line, column and a caret.
 *
 * With a plan, fields, labels and the condition are resolved against the
 * output schema of the statement (the rows its sink, or stdout, receives);
 * without one (velo rules, velo dashboard) only what the text alone can
 * show is checked.
 */
#ifndef VELO_OBS_ANNOTATIONS_H
#define VELO_OBS_ANNOTATIONS_H

#include <stddef.h>

#include "exec/expr.h"
#include "sql/sql.h"

#define VELO_OBS_MAX_LABELS 16
#define VELO_OBS_MAX_BUCKETS 64

struct velo_obs_metric_spec {
    size_t statement;
    int line, col;      /* of the @metric annotation */
    char *name;
    char *help;         /* never NULL after loading */
    int type;           /* enum velo_metric_type */
    char *field;        /* NULL: a counter counts rows */
    char *labels[VELO_OBS_MAX_LABELS];
    size_t nlabels;
    char *condition;    /* the text; NULL when none */
    double buckets[VELO_OBS_MAX_BUCKETS];
    size_t nbuckets;    /* 0: the registry's defaults */

    /* Resolved against the output schema (with a plan only). */
    const struct velo_plan_sink *sink; /* whose upstream carries the rows */
    int field_col;                     /* -1 when none */
    int label_cols[VELO_OBS_MAX_LABELS];
    struct velo_expr *cond;            /* bound, owned; NULL when none */
};

struct velo_obs_alert_spec {
    size_t statement;
    int line, col;
    char *expr;
    char *name;     /* never NULL after loading (a default is made) */
    char *severity; /* NULL when not given */
    char *for_;     /* Prometheus duration, NULL when not given */
    char *summary;  /* NULL when not given */
};

struct velo_obs_annotations {
    struct velo_obs_metric_spec *metrics;
    size_t nmetrics;
    struct velo_obs_alert_spec *alerts;
    size_t nalerts;
};

/**
 * Check the annotations of `sql` and build their specs. The SQL is parsed
 * again here (its own syntax errors are not repeated: the caller reported
 * them). plan may be NULL (text-only checks); with a plan, funcs resolves
 * the condition's comparisons (NULL: the plan's operators' registry).
 * Appends V7xxx diagnostics to diags.
 * @return the specs (possibly empty; free with velo_obs_annotations_free),
 *  or NULL on ENOMEM. Errors are counted in diags->errors.
 */
struct velo_obs_annotations *
velo_obs_annotations_load(const char *sql, size_t len,
                          const struct velo_plan *plan,
                          const struct velo_funcs *funcs,
                          struct velo_sql_diags *diags);
void velo_obs_annotations_free(struct velo_obs_annotations *a);

/** Is name a valid Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)? */
int velo_obs_valid_metric_name(const char *name);

/** `velo rules`: Prometheus alerting rules YAML for the @alert specs.
 *  group names the rule group. @return malloc'd text, NULL on ENOMEM. */
char *velo_obs_rules_yaml(const struct velo_obs_annotations *a,
                          const char *group);

/** `velo dashboard`: a Grafana dashboard (JSON) with a panel (or two, for
 *  histograms) per @metric and the engine's job panels.
 *  @return malloc'd text, NULL on ENOMEM. */
char *velo_obs_dashboard_json(const struct velo_obs_annotations *a,
                              const char *title);

#endif /* VELO_OBS_ANNOTATIONS_H */
