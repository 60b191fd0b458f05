/*
 * velo subcommands. Each verb lives in core/cli/cmd_<verb>.c and returns a
 * process exit code: 0 success, 1 runtime failure, 2 usage error.
 *
 * Every verb accepts --help (prints usage on stdout, exits 0). Verbs that
 * read configuration accept the common options parsed by
 * velo_cli_common_opt(): -c/--config FILE, --set key=value (repeatable),
 * --data-dir DIR, --log-level LEVEL.
 */
#ifndef VELO_CORE_CLI_H
#define VELO_CORE_CLI_H

#include <stddef.h>

struct velo_config;

#define VELO_EXIT_OK 0
#define VELO_EXIT_FAILURE 1
#define VELO_EXIT_USAGE 2

int velo_cmd_server(int argc, char **argv);
int velo_cmd_version(int argc, char **argv);
int velo_cmd_plugins(int argc, char **argv);
int velo_cmd_license(int argc, char **argv);
int velo_cmd_user(int argc, char **argv);
int velo_cmd_apikey(int argc, char **argv);
int velo_cmd_run(int argc, char **argv);
int velo_cmd_validate(int argc, char **argv);
int velo_cmd_explain(int argc, char **argv);
int velo_cmd_rules(int argc, char **argv);
int velo_cmd_dashboard(int argc, char **argv);
int velo_cmd_test(int argc, char **argv);
int velo_cmd_generate(int argc, char **argv);
int velo_cmd_inspect(int argc, char **argv);

struct velo_obs_annotations;
/* velo rules / velo dashboard: read QUERY.sql [--output FILE], check its
 * annotations from the text, and write what render makes of them. */
int velo_cli_annotated(const char *verb, int argc, char **argv,
                       const char *usage,
                       char *(*render)(const struct velo_obs_annotations *,
                                       const char *name));

/* Options shared by verbs that read configuration. */
#define VELO_CLI_MAX_SETS 64
struct velo_cli_common {
    const char *config_path; /* -c/--config, else $VELO_CONFIG, else NULL */
    const char *sets[VELO_CLI_MAX_SETS + 2]; /* --set k=v, and the flags
                                                below turned into sets */
    size_t n_sets;
    char set_buf[4][1024]; /* storage for flag-derived sets */
};

/**
 * If argv[*i] is a common option, consume it (and its value) and return 1;
 * return 0 when it is not one; return -1 (after printing why) on a missing
 * value or too many --set.
 */
int velo_cli_common_opt(struct velo_cli_common *c, int argc, char **argv,
                        int *i);

/**
 * Load the configuration for a verb: the file from the common options (or
 * $VELO_CONFIG, or the installed default when it exists), VELO_* variables,
 * then the --set flags. Prints errors to stderr. @return VELO_OK/VELO_ERR.
 */
int velo_cli_load_config(const struct velo_cli_common *c,
                         struct velo_config *cfg);

struct velo_authstore;
/**
 * Load the configuration from `common`, open the auth store under
 * server.data_dir, call run(store, opts) and close everything (velo user,
 * velo apikey). @return run's exit code, or VELO_EXIT_FAILURE.
 */
int velo_cli_with_authstore(const struct velo_cli_common *common,
                            const char *verb,
                            int (*run)(struct velo_authstore *s,
                                       const void *opts),
                            const void *opts);

/* Help text for the common options, for each verb's usage. */
extern const char velo_cli_common_help[];

#endif /* VELO_CORE_CLI_H */
