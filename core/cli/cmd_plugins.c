/*
 * velo plugins: load the configured plugin directories the way the server
 * would (same loader, same license) and say what loaded and why the rest
 * did not. Refusals are the answer, not a failure of the command.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include <velo/log.h>

#include "cli/cli.h"
#include "config/config.h"
#include "plugin/host.h"
#include "plugin/license.h"
#include "plugin/loader.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: velo plugins [--format text|json] [configuration "
            "options]\n"
            "\n"
            "Load every plugin in plugins.dirs against this server's ABI and "
            "the\nconfigured license (license.file), then list each one: "
            "name, version,\nkind, state (loaded, refused, failed), the "
            "license feature it needs,\nits file, and why it did not load. "
            "Plugins are started and stopped\nagain, as the server would.\n"
            "\n"
            "  --format FMT           text (default) or json\n"
            "\n%s\n"
            "Exit codes: 0 listed (even when plugins were refused), 1 the\n"
            "configuration could not be loaded, 2 usage error.\n",
            velo_cli_common_help);
}

static const char *or_dash(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : "-";
}

static void print_license(const struct velo_license *lic)
{
    if (lic->status == VELO_LICENSE_VALID ||
        lic->status == VELO_LICENSE_IN_GRACE) {
        char feats[VELO_LICENSE_MAX_FEATURES * 34] = "";
        size_t off = 0;
        for (size_t i = 0; i < lic->n_features && off < sizeof(feats); i++) {
            int w = snprintf(feats + off, sizeof(feats) - off, "%s%s",
                             i > 0 ? ", " : "", lic->features[i]);
            if (w < 0) {
                break;
            }
            off += (size_t)w;
        }
        printf("License: %s, %s for %s; features: %s\n",
               velo_license_status_name(lic->status), lic->license_id,
               lic->customer, lic->n_features > 0 ? feats : "(none)");
        if (lic->status == VELO_LICENSE_IN_GRACE) {
            printf("         %s\n", lic->reason);
        }
    } else {
        printf("License: %s: %s\n", velo_license_status_name(lic->status),
               lic->reason);
    }
}

static void print_table(const struct velo_config *cfg,
                        const struct velo_plugins *set)
{
    size_t n = velo_plugins_count(set);
    int wn = 4, wv = 7, wk = 4, ws = 5, wf = 7;
    size_t counts[3] = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        const struct velo_plugin_entry *e = velo_plugins_at(set, i);
        int l;
        if ((l = (int)strlen(or_dash(e->name))) > wn) {
            wn = l;
        }
        if ((l = (int)strlen(or_dash(e->version))) > wv) {
            wv = l;
        }
        if ((l = (int)strlen(e->kind ? velo_plugin_kind_name(e->kind)
                                     : "-")) > wk) {
            wk = l;
        }
        if ((l = (int)strlen(velo_plugin_state_name(e->state)) +
                 (e->license_grace ? 8 : 0)) > ws) {
            ws = l;
        }
        if ((l = (int)strlen(or_dash(e->license_feature))) > wf) {
            wf = l;
        }
        if (e->state >= 0 && e->state < 3) {
            counts[e->state]++;
        }
    }
    if (n == 0) {
        printf("No plugins found in:");
        for (size_t d = 0; d < cfg->n_plugin_dirs; d++) {
            printf(" %s", cfg->plugin_dirs[d]);
        }
        printf("%s\n", cfg->n_plugin_dirs == 0 ? " (plugins.dirs is empty)"
                                               : "");
        return;
    }
    printf("%-*s  %-*s  %-*s  %-*s  %-*s  %s\n", wn, "NAME", wv, "VERSION", wk,
           "KIND", ws, "STATE", wf, "FEATURE", "PATH");
    for (size_t i = 0; i < n; i++) {
        const struct velo_plugin_entry *e = velo_plugins_at(set, i);
        char state[32];
        snprintf(state, sizeof(state), "%s%s",
                 velo_plugin_state_name(e->state),
                 e->license_grace ? " (grace)" : "");
        printf("%-*s  %-*s  %-*s  %-*s  %-*s  %s\n", wn, or_dash(e->name), wv,
               or_dash(e->version), wk,
               e->kind ? velo_plugin_kind_name(e->kind) : "-", ws, state, wf,
               or_dash(e->license_feature), e->path);
        if (e->reason != NULL) {
            printf("    %s\n", e->reason);
        }
    }
    printf("%zu plugin(s): %zu loaded, %zu refused, %zu failed\n", n,
           counts[VELO_PLUGIN_LOADED], counts[VELO_PLUGIN_REFUSED],
           counts[VELO_PLUGIN_FAILED]);
}

int velo_cmd_plugins(int argc, char **argv)
{
    struct velo_cli_common opts;
    memset(&opts, 0, sizeof(opts));
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return VELO_EXIT_OK;
        }
        if (strcmp(a, "--format") == 0 || strncmp(a, "--format=", 9) == 0) {
            const char *f = a[8] == '=' ? a + 9 : NULL;
            if (f == NULL) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "velo plugins: --format needs text or "
                                    "json\n");
                    return VELO_EXIT_USAGE;
                }
                f = argv[++i];
            }
            if (strcmp(f, "json") == 0) {
                json = 1;
            } else if (strcmp(f, "text") == 0) {
                json = 0;
            } else {
                fprintf(stderr, "velo plugins: unknown format '%s' (use text "
                                "or json)\n",
                        f);
                return VELO_EXIT_USAGE;
            }
            continue;
        }
        int m = velo_cli_common_opt(&opts, argc, argv, &i);
        if (m < 0) {
            return VELO_EXIT_USAGE;
        }
        if (m == 0) {
            fprintf(stderr, "velo plugins: unexpected argument '%s'\n", a);
            usage(stderr);
            return VELO_EXIT_USAGE;
        }
    }

    struct velo_config cfg;
    if (velo_cli_load_config(&opts, &cfg) != VELO_OK) {
        return VELO_EXIT_FAILURE;
    }
    struct velo_license *lic = calloc(1, sizeof(*lic));
    if (lic == NULL) {
        fprintf(stderr, "velo plugins: out of memory\n");
        velo_config_free(&cfg);
        return VELO_EXIT_FAILURE;
    }
    velo_license_verify_file(cfg.license_file, time(NULL), lic);
    velo_host_bind(NULL, NULL, lic);
    struct velo_plugins *set = velo_plugins_load(&cfg, velo_host_api(), lic);
    int rc = VELO_EXIT_OK;
    if (set == NULL) {
        fprintf(stderr, "velo plugins: out of memory\n");
        rc = VELO_EXIT_FAILURE;
    } else if (json) {
        char *text = velo_plugins_to_json(set);
        json_t *v = text != NULL ? json_loads(text, 0, NULL) : NULL;
        char *pretty = v != NULL ? json_dumps(v, JSON_INDENT(2) |
                                                     JSON_PRESERVE_ORDER)
                                 : NULL;
        if (pretty == NULL) {
            fprintf(stderr, "velo plugins: out of memory\n");
            rc = VELO_EXIT_FAILURE;
        } else {
            printf("%s\n", pretty);
        }
        free(pretty);
        json_decref(v);
        free(text);
    } else {
        print_license(lic);
        print_table(&cfg, set);
    }
    velo_plugins_unload(set);
    velo_host_bind(NULL, NULL, NULL);
    free(lic);
    velo_config_free(&cfg);
    return rc;
}
