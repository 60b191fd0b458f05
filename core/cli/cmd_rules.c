/*
 * velo rules: Prometheus alerting rules from a query's @alert
 * annotations. Also the shared part of velo dashboard: reading the query
 * and checking its annotations from the text alone (no source is opened,
 * so the files work for queries over Kafka or standard input too).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "obs/annotations.h"
#include "sql/sql.h"

#define ANNOTATED_MAX_BYTES (1024 * 1024)

static char *slurp(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        if (n + 1 == cap) {
            char *nb = cap >= ANNOTATED_MAX_BYTES ? NULL
                                                  : realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                errno = cap >= ANNOTATED_MAX_BYTES ? EFBIG : ENOMEM;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) {
            break;
        }
    }
    if (buf != NULL && ferror(f)) {
        free(buf);
        buf = NULL;
    }
    if (f != stdin) {
        fclose(f);
    }
    if (buf != NULL) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

/* The name a query goes by in rule groups and dashboard titles. */
static void base_name(const char *path, char *out, size_t len)
{
    if (strcmp(path, "-") == 0) {
        snprintf(out, len, "stdin");
        return;
    }
    const char *b = strrchr(path, '/');
    snprintf(out, len, "%s", b != NULL ? b + 1 : path);
    char *dot = strrchr(out, '.');
    if (dot != NULL && dot != out) {
        *dot = '\0';
    }
}

int velo_cli_annotated(const char *verb, int argc, char **argv,
                       const char *usage,
                       char *(*render)(const struct velo_obs_annotations *,
                                       const char *name))
{
    const char *file = NULL, *output = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return VELO_EXIT_OK;
        }
        if ((strcmp(a, "--output") == 0 || strcmp(a, "-o") == 0) &&
            i + 1 < argc) {
            output = argv[++i];
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "velo %s: unknown option '%s' (see velo %s "
                            "--help)\n", verb, a, verb);
            return VELO_EXIT_USAGE;
        } else if (file == NULL) {
            file = a;
        } else {
            fprintf(stderr, "velo %s: more than one SQL file given\n", verb);
            return VELO_EXIT_USAGE;
        }
    }
    if (file == NULL) {
        fprintf(stderr, "velo %s: name the query file (see velo %s "
                        "--help)\n", verb, verb);
        return VELO_EXIT_USAGE;
    }
    size_t len = 0;
    char *sql = slurp(file, &len);
    if (sql == NULL) {
        fprintf(stderr, "velo %s: cannot read %s: %s\n", verb, file,
                strerror(errno));
        return VELO_EXIT_FAILURE;
    }
    struct velo_sql_diags diags;
    memset(&diags, 0, sizeof(diags));
    struct velo_sql_program *prog = velo_sql_parse(sql, len, &diags);
    velo_sql_program_free(prog);
    struct velo_obs_annotations *ann = NULL;
    if (prog != NULL && diags.errors == 0) {
        ann = velo_obs_annotations_load(sql, len, NULL, NULL, &diags);
    }
    if (diags.n > 0) {
        char *text = velo_sql_diags_format(&diags, file);
        if (text != NULL) {
            fputs(text, stderr);
            free(text);
        }
    }
    int rc = VELO_EXIT_OK;
    if (ann == NULL || diags.errors > 0) {
        rc = VELO_EXIT_FAILURE;
    } else {
        char name[256];
        base_name(file, name, sizeof(name));
        char *out = render(ann, name);
        if (out == NULL) {
            fprintf(stderr, "velo %s: out of memory\n", verb);
            rc = VELO_EXIT_FAILURE;
        } else if (output != NULL && strcmp(output, "-") != 0) {
            FILE *f = fopen(output, "w");
            if (f == NULL || fputs(out, f) < 0 || fputc('\n', f) < 0 ||
                fclose(f) != 0) {
                fprintf(stderr, "velo %s: cannot write %s: %s\n", verb,
                        output, strerror(errno));
                rc = VELO_EXIT_FAILURE;
            }
        } else {
            printf("%s\n", out);
        }
        free(out);
    }
    velo_obs_annotations_free(ann);
    velo_sql_diags_free(&diags);
    free(sql);
    return rc;
}

static const char rules_usage[] =
    "Usage: velo rules QUERY.sql [--output FILE]\n"
    "\n"
    "Write Prometheus alerting rules (YAML) for the query's @alert\n"
    "annotations: one rule per '-- @alert: <PromQL condition>', named by\n"
    "@alert_name, with @alert_for, @alert_severity (label severity) and\n"
    "@alert_summary. Check the result with 'promtool check rules FILE'.\n"
    "The annotations are checked from the text; 'velo validate' also\n"
    "checks them against the query's output columns.\n"
    "\n"
    "Options:\n"
    "  -o, --output FILE   write there instead of standard output\n";

static char *render_rules(const struct velo_obs_annotations *a,
                          const char *name)
{
    char group[300];
    snprintf(group, sizeof(group), "velostream_%s", name);
    return velo_obs_rules_yaml(a, group);
}

int velo_cmd_rules(int argc, char **argv)
{
    return velo_cli_annotated("rules", argc, argv, rules_usage,
                              render_rules);
}
