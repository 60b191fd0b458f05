/*
 * velo license verify FILE | show [FILE]: explain a license file against
 * the key compiled into this binary. Exit 0 when the license is usable
 * (valid, or expired within its grace period), 1 when it is not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <velo/log.h>

#include "cli/cli.h"
#include "config/config.h"
#include "plugin/license-internal.h"
#include "plugin/license.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: velo license verify FILE [--format text|json]\n"
            "       velo license show [FILE] [--format text|json] "
            "[configuration options]\n"
            "\n"
            "verify  check FILE's signature against the key built into this "
            "velo,\n        then its dates, and describe it\n"
            "show    the same for the configured license (license.file), or "
            "FILE\n"
            "\n"
            "  --format FMT           text (default) or json\n"
            "\nFor show: %s\n"
            "Exit codes: 0 usable (valid, or expired but within its grace "
            "period),\n1 missing or not usable (the reason is printed), 2 "
            "usage error.\n",
            velo_cli_common_help);
}

static int report(const char *path, int json)
{
    struct velo_license *lic = calloc(1, sizeof(*lic));
    if (lic == NULL) {
        fprintf(stderr, "velo license: out of memory\n");
        return VELO_EXIT_FAILURE;
    }
    int usable = velo_license_verify_file(path, time(NULL), lic) == VELO_OK;
    if (json) {
        char *text = velo_license_to_json(lic);
        if (text == NULL) {
            fprintf(stderr, "velo license: out of memory\n");
            free(lic);
            return VELO_EXIT_FAILURE;
        }
        printf("%s\n", text);
        free(text);
    } else {
        char desc[4096];
        velo_license_describe(lic, desc, sizeof(desc));
        if (path != NULL) {
            printf("File:        %s\n", path);
        }
        fputs(desc, stdout);
    }
    if (!usable) {
        fprintf(stderr, "velo license: %s: %s\n",
                velo_license_status_name(lic->status), lic->reason);
    } else if (lic->status == VELO_LICENSE_IN_GRACE) {
        fprintf(stderr, "velo license: warning: %s\n", lic->reason);
    }
    free(lic);
    return usable ? VELO_EXIT_OK : VELO_EXIT_FAILURE;
}

/* --format text|json at argv[*i]. @return 1 consumed, 0 not it, -1 bad. */
static int format_opt(int argc, char **argv, int *i, int *json)
{
    const char *a = argv[*i];
    const char *f;
    if (strncmp(a, "--format=", 9) == 0) {
        f = a + 9;
    } else if (strcmp(a, "--format") == 0) {
        if (*i + 1 >= argc) {
            fprintf(stderr, "velo license: --format needs text or json\n");
            return -1;
        }
        f = argv[++*i];
    } else {
        return 0;
    }
    if (strcmp(f, "json") == 0) {
        *json = 1;
    } else if (strcmp(f, "text") == 0) {
        *json = 0;
    } else {
        fprintf(stderr, "velo license: unknown format '%s' (use text or "
                        "json)\n",
                f);
        return -1;
    }
    return 1;
}

int velo_cmd_license(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return VELO_EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 ||
        strcmp(sub, "help") == 0) {
        usage(stdout);
        return VELO_EXIT_OK;
    }
    int verify = strcmp(sub, "verify") == 0;
    if (!verify && strcmp(sub, "show") != 0) {
        fprintf(stderr, "velo license: unknown subcommand '%s' (use verify "
                        "or show)\n",
                sub);
        usage(stderr);
        return VELO_EXIT_USAGE;
    }

    struct velo_cli_common opts;
    memset(&opts, 0, sizeof(opts));
    int json = 0, config_opts = 0;
    const char *file = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return VELO_EXIT_OK;
        }
        int m = format_opt(argc, argv, &i, &json);
        if (m < 0) {
            return VELO_EXIT_USAGE;
        }
        if (m > 0) {
            continue;
        }
        if (!verify) {
            m = velo_cli_common_opt(&opts, argc, argv, &i);
            if (m < 0) {
                return VELO_EXIT_USAGE;
            }
            if (m > 0) {
                config_opts = 1;
                continue;
            }
        }
        if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "velo license %s: unknown option '%s'\n", sub, a);
            return VELO_EXIT_USAGE;
        }
        if (file != NULL) {
            fprintf(stderr, "velo license %s: one file at a time ('%s' and "
                            "'%s' given)\n",
                    sub, file, a);
            return VELO_EXIT_USAGE;
        }
        file = a;
    }
    if (verify) {
        if (file == NULL) {
            fprintf(stderr, "velo license verify: which file? (velo license "
                            "verify FILE)\n");
            return VELO_EXIT_USAGE;
        }
        return report(file, json);
    }
    if (file != NULL) {
        if (config_opts) {
            fprintf(stderr, "velo license show: give a FILE or configuration "
                            "options, not both\n");
            return VELO_EXIT_USAGE;
        }
        return report(file, json);
    }
    struct velo_config cfg;
    if (velo_cli_load_config(&opts, &cfg) != VELO_OK) {
        return VELO_EXIT_FAILURE;
    }
    int rc = report(cfg.license_file, json);
    velo_config_free(&cfg);
    return rc;
}
