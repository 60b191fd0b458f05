/*
 * velo test: run a query's statements in-process against generated input
 * and check assertions (core/testkit). Exit 0 when every assertion
 * passes, 1 when any fails, 2 on usage or setup errors.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "config/config.h"
#include "plugin/host.h"
#include "plugin/license.h"
#include "plugin/loader.h"
#include "testkit/testkit.h"

static const char test_usage[] =
    "Usage: velo test QUERY.sql [options]\n"
    "\n"
    "Generate input for every source of QUERY.sql, run its statements\n"
    "in-process with each output captured, and check the assertions of\n"
    "the spec (QUERY.test.yaml beside the query when --spec is not given).\n"
    "Without a spec: each output is not empty, has no NULL key columns and\n"
    "finishes within 30 s. A source's input follows, in order: the spec's\n"
    "inputs, <source>.schema.yaml beside the query, a gen:// URI's schema,\n"
    "the columns the query declares, or its own file as a sample.\n"
    "\n"
    "Options:\n"
    "  --records N        records per source (default: the spec's, the\n"
    "                     schema's schema.records, else 1000)\n"
    "  --seed S           random seed (default 0); the same seed generates\n"
    "                     the same input\n"
    "  --spec FILE        the test spec (query.test.yaml)\n"
    "  --output FORMAT    text (default), json or junit\n"
    "  --keep-data DIR    keep the generated inputs and captured outputs\n"
    "                     in DIR\n"
    "  --now TIME         anchor relative times (\"-1h\", \"now\") at TIME\n"
    "                     (ISO 8601) instead of the clock\n"
    "\n"
    "Exit codes: 0 all assertions pass, 1 any fails, 2 usage or setup\n"
    "error.\n";

static int parse_count(const char *what, const char *s, long long max,
                       long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0' || end == s || errno != 0 || v < 0 || v > max) {
        fprintf(stderr,
                "velo test: %s needs a number from 0 to %lld, not "
                "'%s'\n",
                what, max, s);
        return -1;
    }
    *out = v;
    return 0;
}

int velo_cmd_test(int argc, char **argv)
{
    struct velo_cli_common common;
    memset(&common, 0, sizeof(common));
    struct velo_tk_run_opts o;
    memset(&o, 0, sizeof(o));
    const char *output = "text";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long long v;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            printf("%s%s", test_usage, velo_cli_common_help);
            return VELO_EXIT_OK;
        }
        int has = i + 1 < argc;
        if (strcmp(a, "--records") == 0 && has) {
            if (parse_count("--records", argv[++i], 1000000000LL, &v) != 0) {
                return VELO_EXIT_USAGE;
            }
            o.records = v;
        } else if (strcmp(a, "--seed") == 0 && has) {
            char *end;
            errno = 0;
            o.seed = strtoull(argv[++i], &end, 10);
            if (*end != '\0' || end == argv[i] || errno != 0 ||
                argv[i][0] == '-') {
                fprintf(stderr,
                        "velo test: --seed needs a non-negative "
                        "number, not '%s'\n",
                        argv[i]);
                return VELO_EXIT_USAGE;
            }
        } else if (strcmp(a, "--spec") == 0 && has) {
            o.spec_path = argv[++i];
        } else if (strcmp(a, "--output") == 0 && has) {
            output = argv[++i];
            if (strcmp(output, "text") != 0 && strcmp(output, "json") != 0 &&
                strcmp(output, "junit") != 0) {
                fprintf(stderr,
                        "velo test: unknown output '%s' (use text, "
                        "json or junit)\n",
                        output);
                return VELO_EXIT_USAGE;
            }
        } else if (strcmp(a, "--keep-data") == 0 && has) {
            o.keep_dir = argv[++i];
        } else if (strcmp(a, "--now") == 0 && has) {
            int rel;
            int64_t us;
            if (velo_tk_parse_time(argv[++i], &us, &rel) != 0 || rel) {
                fprintf(stderr,
                        "velo test: --now needs an ISO-8601 time "
                        "such as 2026-01-01T00:00:00Z, not '%s'\n",
                        argv[i]);
                return VELO_EXIT_USAGE;
            }
            o.now_us = us;
        } else if (a[0] == '-' && a[1] != '\0') {
            int r = velo_cli_common_opt(&common, argc, argv, &i);
            if (r < 0) {
                return VELO_EXIT_USAGE;
            }
            if (r == 0) {
                fprintf(stderr,
                        "velo test: unknown option '%s'%s (see velo "
                        "test --help)\n",
                        a, has ? "" : " or a missing value");
                return VELO_EXIT_USAGE;
            }
        } else if (o.sql_path == NULL) {
            o.sql_path = a;
        } else {
            fprintf(stderr,
                    "velo test: more than one query given ('%s' and "
                    "'%s')\n",
                    o.sql_path, a);
            return VELO_EXIT_USAGE;
        }
    }
    if (o.sql_path == NULL) {
        fprintf(stderr, "velo test: no query given\n%s", test_usage);
        return VELO_EXIT_USAGE;
    }
    struct velo_config cfg;
    if (velo_cli_load_config(&common, &cfg) != VELO_OK) {
        return VELO_EXIT_USAGE;
    }
    struct velo_license lic;
    memset(&lic, 0, sizeof(lic));
    if (cfg.license_file != NULL) {
        velo_license_verify_file(cfg.license_file, time(NULL), &lic);
    } else {
        lic.status = VELO_LICENSE_MISSING;
    }
    velo_host_bind(NULL, NULL, &lic);
    struct velo_plugins *plugins =
        velo_plugins_load(&cfg, velo_host_api(), &lic);
    o.plugins = plugins;
    /* o.explainer stays NULL until the Studio's AI provider exists. */
    struct velo_tk_report rep;
    char err[4096];
    int rc = velo_tk_run(&o, &rep, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "velo test: %s\n", err);
        rc = VELO_EXIT_USAGE;
    } else {
        char *text = strcmp(output, "json") == 0    ? velo_tk_report_json(&rep)
                     : strcmp(output, "junit") == 0 ? velo_tk_report_junit(&rep)
                                                    : velo_tk_report_text(&rep);
        if (text != NULL) {
            fputs(text, stdout);
            if (strcmp(output, "json") == 0) {
                fputc('\n', stdout);
            }
        }
        free(text);
        rc = velo_tk_report_failed(&rep) > 0 ? VELO_EXIT_FAILURE : VELO_EXIT_OK;
    }
    velo_tk_report_free(&rep);
    if (plugins != NULL) {
        velo_plugins_unload(plugins);
    }
    velo_host_bind(NULL, NULL, NULL);
    velo_config_free(&cfg);
    return rc;
}
