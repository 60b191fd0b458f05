/*
 * Shared by velo run, validate and explain: reading the SQL (a file, -e,
 * or standard input), loading plugins so their connectors and functions
 * resolve, and preparing the job.
 */
#ifndef VELO_CORE_SQLCLI_H
#define VELO_CORE_SQLCLI_H

#include <stddef.h>

#include "cli/cli.h"
#include "config/config.h"
#include "exec/job.h"
#include "obs/annotations.h"
#include "plugin/license.h"

#define VELO_SQL_MAX_BYTES (1024 * 1024)

struct velo_metrics;

struct velo_sqlcli {
    const char *verb;   /* "run" for messages */
    const char *file;   /* the .sql path, or NULL */
    const char *inline_sql; /* -e */
    int format;         /* --format (verb-specific meaning), -1 unset */
    int annotations;    /* check @metric/@alert annotations (run,
                           validate): their errors fail the preparation */
    /* Where plugins' metrics go (velo run --metrics-port), or NULL. */
    struct velo_metrics *metrics;
    struct velo_cli_common common;

    /* filled by velo_sqlcli_prepare */
    char *sql;
    size_t sql_len;
    char filename[512];
    struct velo_config cfg;
    int cfg_loaded;
    struct velo_license license;
    struct velo_plugins *plugins;
    struct velo_job *job;
    struct velo_sql_diags diags;
    struct velo_obs_annotations *ann; /* when annotations */
};

/**
 * Parse the arguments of a verb that takes [FILE | -e SQL]
 * [--format text|json] plus the common options. Prints `usage` for
 * --help. @return -1 to go on (*json set), or the exit code to return.
 */
int velo_sqlcli_args(struct velo_sqlcli *c, int argc, char **argv,
                     const char *usage, int *json);

/**
 * Read the SQL and prepare the job. Prints diagnostics (text or JSON) to
 * stderr, or stdout when `diags_to_stdout`. @return VELO_EXIT_OK, or the
 * exit code to use (1 for SQL/config errors).
 */
int velo_sqlcli_prepare(struct velo_sqlcli *c, struct velo_job_opts *opts,
                        int diags_json, int diags_to_stdout);
void velo_sqlcli_free(struct velo_sqlcli *c);

#endif /* VELO_CORE_SQLCLI_H */
