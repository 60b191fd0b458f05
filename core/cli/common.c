/*
 * Options shared by every verb that reads configuration, and the one way
 * those verbs load it: file, then VELO_* variables, then flags.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "config/config.h"
#include "util/log.h"

#ifndef VELO_DEFAULT_CONFIG
#define VELO_DEFAULT_CONFIG "/etc/velo/velo.yaml"
#endif

const char velo_cli_common_help[] =
    "Configuration options:\n"
    "  -c, --config FILE      read settings from FILE (default: $VELO_CONFIG,\n"
    "                         else " VELO_DEFAULT_CONFIG " when it exists)\n"
    "      --set KEY=VALUE    override one setting; repeatable, e.g.\n"
    "                         --set server.workers=4 --set plugins.dirs=/a,/b\n"
    "      --data-dir DIR     same as --set server.data_dir=DIR\n"
    "      --log-level LEVEL  error, warn, info or debug\n"
    "                         (same as --set log.level=LEVEL)\n"
    "      --listen ADDR      host:port to serve on\n"
    "                         (same as --set server.listen=ADDR)\n"
    "Settings apply in this order, later winning: defaults, the file,\n"
    "VELO_* environment variables (server.data_dir -> "
    "VELO_SERVER_DATA_DIR),\nthen flags.\n";

/* Flags that are shorthands for one key, each with its own buffer. */
struct shorthand {
    const char *flag;
    const char *key;
    int slot; /* index into set_buf */
};

static const struct shorthand shorthands[] = {
    {"--data-dir", "server.data_dir", 0},
    {"--log-level", "log.level", 1},
    {"--listen", "server.listen", 2},
};

/* Match "--name VALUE" or "--name=VALUE"; *value set on a match. @return 1
 * matched, 0 not this option, -1 value missing. */
static int match_opt(const char *name, const char *short_name, int argc,
                     char **argv, int *i, const char **value)
{
    const char *arg = argv[*i];
    size_t nl = strlen(name);
    if (strncmp(arg, name, nl) == 0 && arg[nl] == '=') {
        *value = arg + nl + 1;
        return 1;
    }
    if (strcmp(arg, name) != 0 &&
        (short_name == NULL || strcmp(arg, short_name) != 0)) {
        return 0;
    }
    if (*i + 1 >= argc) {
        fprintf(stderr, "velo: option %s needs a value\n", arg);
        return -1;
    }
    *value = argv[++*i];
    return 1;
}

static int add_set(struct velo_cli_common *c, const char *set)
{
    if (c->n_sets >= sizeof(c->sets) / sizeof(c->sets[0])) {
        fprintf(stderr, "velo: too many configuration options\n");
        return -1;
    }
    c->sets[c->n_sets++] = set;
    return 1;
}

int velo_cli_common_opt(struct velo_cli_common *c, int argc, char **argv,
                        int *i)
{
    const char *value = NULL;
    int m = match_opt("--config", "-c", argc, argv, i, &value);
    if (m != 0) {
        if (m > 0) {
            if (value[0] == '\0') {
                fprintf(stderr, "velo: option --config needs a file path\n");
                return -1;
            }
            c->config_path = value;
        }
        return m;
    }
    m = match_opt("--set", NULL, argc, argv, i, &value);
    if (m != 0) {
        if (m < 0) {
            return m;
        }
        /* The shorthands below have their own two spare slots. */
        if (c->n_sets >= VELO_CLI_MAX_SETS) {
            fprintf(stderr, "velo: too many --set options (at most %d)\n",
                    VELO_CLI_MAX_SETS);
            return -1;
        }
        if (strchr(value, '=') == NULL) {
            fprintf(stderr,
                    "velo: --set %s: expected KEY=VALUE, e.g. --set "
                    "server.workers=4\n",
                    value);
            return -1;
        }
        return add_set(c, value);
    }
    for (size_t s = 0; s < sizeof(shorthands) / sizeof(shorthands[0]); s++) {
        const struct shorthand *sh = &shorthands[s];
        m = match_opt(sh->flag, NULL, argc, argv, i, &value);
        if (m == 0) {
            continue;
        }
        if (m < 0) {
            return m;
        }
        char *buf = c->set_buf[sh->slot];
        int w = snprintf(buf, sizeof(c->set_buf[0]), "%s=%s", sh->key, value);
        if (w < 0 || (size_t)w >= sizeof(c->set_buf[0])) {
            fprintf(stderr, "velo: %s value is too long\n", sh->flag);
            return -1;
        }
        /* A repeated shorthand appends again so it keeps its place after
         * any --set given in between; the earlier entry now reads the
         * same value, which is harmless. */
        return add_set(c, buf);
    }
    return 0;
}

int velo_cli_load_config(const struct velo_cli_common *c,
                         struct velo_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    const char *path = c->config_path;
    if (path == NULL) {
        const char *env = getenv("VELO_CONFIG");
        if (env != NULL && env[0] != '\0') {
            path = env;
        } else if (access(VELO_DEFAULT_CONFIG, F_OK) == 0) {
            path = VELO_DEFAULT_CONFIG;
        }
    }
    size_t errlen = 16384;
    char *err = malloc(errlen);
    if (err == NULL) {
        fprintf(stderr, "velo: out of memory\n");
        return VELO_ERR;
    }
    int rc = velo_config_load(cfg, path, NULL, c->sets, c->n_sets, err, errlen);
    if (rc != VELO_OK) {
        fprintf(stderr, "velo: the configuration has problems:\n");
        char *save = NULL;
        for (char *line = strtok_r(err, "\n", &save); line != NULL;
             line = strtok_r(NULL, "\n", &save)) {
            fprintf(stderr, "  %s\n", line);
        }
        free(err);
        return VELO_ERR;
    }
    free(err);
    velo_log_set_level(cfg->log_level);
    velo_log_set_format(cfg->log_format);
    return VELO_OK;
}
