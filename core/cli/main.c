/*
 * velo: the command-line entry point. Dispatches to a verb; only verbs that
 * work are listed.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

struct verb {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
};

static const struct verb verbs[] = {
    {"run", "run SQL: a file, -e 'SQL', or SQL on standard input",
     velo_cmd_run},
    {"test", "run SQL against generated input and check assertions",
     velo_cmd_test},
    {"generate", "write synthetic records from a schema file",
     velo_cmd_generate},
    {"validate", "check SQL and report every error with line and column",
     velo_cmd_validate},
    {"explain", "print the plan of SQL: operators, schemas, state, emits",
     velo_cmd_explain},
    {"rules", "write Prometheus alerting rules from @alert annotations",
     velo_cmd_rules},
    {"dashboard", "write a Grafana dashboard from @metric annotations",
     velo_cmd_dashboard},
    {"server", "run the Velostream server (HTTP API, plugins)",
     velo_cmd_server},
    {"plugins", "list plugins found and whether each loaded",
     velo_cmd_plugins},
    {"inspect", "list or describe what a connector reaches (tables, "
                "streams)",
     velo_cmd_inspect},
    {"license", "verify or show a license file (verify, show)",
     velo_cmd_license},
    {"user", "manage users (add, passwd, list, delete)", velo_cmd_user},
    {"apikey", "manage API keys (create, list, revoke)", velo_cmd_apikey},
    {"version", "print the version", velo_cmd_version},
    {NULL, NULL, NULL}};

static void usage(FILE *out)
{
    fprintf(out, "Usage: velo <command> [options]\n\nCommands:\n");
    for (const struct verb *v = verbs; v->name != NULL; v++) {
        fprintf(out, "  %-9s %s\n", v->name, v->summary);
    }
    fprintf(out, "\nRun 'velo <command> --help' for a command's options.\n"
                 "Exit codes: 0 success, 1 runtime failure, 2 usage "
                 "error.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return VELO_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
        strcmp(cmd, "help") == 0) {
        usage(stdout);
        return VELO_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        return velo_cmd_version(argc - 1, argv + 1);
    }
    for (const struct verb *v = verbs; v->name != NULL; v++) {
        if (strcmp(cmd, v->name) == 0) {
            return v->run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "velo: unknown command '%s'\n", cmd);
    usage(stderr);
    return VELO_EXIT_USAGE;
}
