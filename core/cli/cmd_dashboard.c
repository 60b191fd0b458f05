/*
 * velo dashboard: a Grafana dashboard JSON for a query's @metric
 * annotations plus the engine's job panels.
 */
#include <stdio.h>

#include "cli/cli.h"
#include "obs/annotations.h"

static const char dashboard_usage[] =
    "Usage: velo dashboard QUERY.sql [--output FILE]\n"
    "\n"
    "Write a Grafana dashboard (JSON, import it in Grafana) with one panel\n"
    "per @metric of the query: a counter as a per-second rate, a gauge as\n"
    "a stat or a time series per label set, a histogram as a heatmap and\n"
    "its p50/p95/p99; series are grouped by @metric_labels. Engine panels\n"
    "follow (records in/out, skipped rows, operator rows and state). The\n"
    "Prometheus data source is a dashboard variable.\n"
    "\n"
    "Options:\n"
    "  -o, --output FILE   write there instead of standard output\n";

static char *render_dashboard(const struct velo_obs_annotations *a,
                              const char *name)
{
    char title[300];
    snprintf(title, sizeof(title), "Velostream: %s", name);
    return velo_obs_dashboard_json(a, title);
}

int velo_cmd_dashboard(int argc, char **argv)
{
    return velo_cli_annotated("dashboard", argc, argv, dashboard_usage,
                              render_dashboard);
}
