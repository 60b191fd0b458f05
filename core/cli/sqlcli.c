/*
 * Shared setup of the SQL verbs.
 */
#include "cli/sqlcli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "plugin/host.h"
#include "plugin/loader.h"
#include "util/log.h"

static char *read_all(FILE *f, size_t *len, const char *what)
{
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL) {
        return NULL;
    }
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (n > VELO_SQL_MAX_BYTES) {
            fprintf(stderr, "velo: %s: the SQL is larger than %d bytes\n",
                    what, VELO_SQL_MAX_BYTES);
            free(buf);
            errno = EFBIG;
            return NULL;
        }
        if (r == 0) {
            break;
        }
    }
    if (ferror(f)) {
        fprintf(stderr, "velo: %s: %s\n", what, strerror(errno));
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int read_sql(struct velo_sqlcli *c)
{
    if (c->inline_sql != NULL) {
        c->sql = strdup(c->inline_sql);
        c->sql_len = strlen(c->inline_sql);
        snprintf(c->filename, sizeof(c->filename), "<command line>");
        return c->sql != NULL ? VELO_OK : VELO_ERR;
    }
    if (c->file != NULL && strcmp(c->file, "-") != 0) {
        FILE *f = fopen(c->file, "rb");
        if (f == NULL) {
            fprintf(stderr, "velo %s: cannot open %s: %s\n", c->verb,
                    c->file, strerror(errno));
            return VELO_ERR;
        }
        c->sql = read_all(f, &c->sql_len, c->file);
        fclose(f);
        snprintf(c->filename, sizeof(c->filename), "%s", c->file);
        return c->sql != NULL ? VELO_OK : VELO_ERR;
    }
    if (c->file == NULL && isatty(STDIN_FILENO)) {
        fprintf(stderr, "velo %s: no SQL given: name a .sql file, use -e "
                        "'SQL', or pipe the SQL on standard input\n",
                c->verb);
        errno = EINVAL;
        return VELO_ERR;
    }
    c->sql = read_all(stdin, &c->sql_len, "<stdin>");
    snprintf(c->filename, sizeof(c->filename), "<stdin>");
    return c->sql != NULL ? VELO_OK : VELO_ERR;
}

int velo_sqlcli_args(struct velo_sqlcli *c, int argc, char **argv,
                     const char *usage, int *json)
{
    *json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            printf("%s%s", usage, velo_cli_common_help);
            return VELO_EXIT_OK;
        }
        if ((strcmp(a, "-e") == 0 || strcmp(a, "--execute") == 0) &&
            i + 1 < argc) {
            c->inline_sql = argv[++i];
        } else if (strcmp(a, "--format") == 0 && i + 1 < argc) {
            const char *f = argv[++i];
            if (strcmp(f, "json") == 0) {
                *json = 1;
            } else if (strcmp(f, "text") != 0) {
                fprintf(stderr, "velo %s: unknown format '%s' (use text or "
                                "json)\n", c->verb, f);
                return VELO_EXIT_USAGE;
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            int r = velo_cli_common_opt(&c->common, argc, argv, &i);
            if (r <= 0) {
                if (r == 0) {
                    fprintf(stderr, "velo %s: unknown option '%s' (see velo "
                                    "%s --help)\n", c->verb, a, c->verb);
                }
                return VELO_EXIT_USAGE;
            }
        } else if (c->file == NULL) {
            c->file = a;
        } else {
            fprintf(stderr, "velo %s: more than one SQL file given ('%s' and "
                            "'%s')\n", c->verb, c->file, a);
            return VELO_EXIT_USAGE;
        }
    }
    if (c->inline_sql != NULL && c->file != NULL) {
        fprintf(stderr, "velo %s: give either a file or -e, not both\n",
                c->verb);
        return VELO_EXIT_USAGE;
    }
    return -1;
}

int velo_sqlcli_prepare(struct velo_sqlcli *c, struct velo_job_opts *opts,
                        int diags_json, int diags_to_stdout)
{
    if (read_sql(c) != VELO_OK) {
        return errno == EINVAL ? VELO_EXIT_USAGE : VELO_EXIT_FAILURE;
    }
    if (velo_cli_load_config(&c->common, &c->cfg) != VELO_OK) {
        return VELO_EXIT_FAILURE;
    }
    c->cfg_loaded = 1;
    /* A CLI run stays quiet about the license unless a plugin needs it:
     * the loader says why a gated plugin stayed unloaded. */
    memset(&c->license, 0, sizeof(c->license));
    if (c->cfg.license_file != NULL) {
        velo_license_verify_file(c->cfg.license_file, time(NULL),
                                 &c->license);
    } else {
        c->license.status = VELO_LICENSE_MISSING;
    }
    velo_host_bind(NULL, c->metrics, &c->license);
    c->plugins = velo_plugins_load(&c->cfg, velo_host_api(), &c->license);

    opts->filename = c->filename;
    opts->plugins = c->plugins;
    c->job = velo_job_prepare(c->sql, c->sql_len, opts, &c->diags);
    if (c->annotations && c->job != NULL) {
        /* Annotation errors are SQL errors: listed with the others, and
         * the job does not start. */
        c->ann = velo_obs_annotations_load(c->sql, c->sql_len,
                                           velo_job_plan(c->job), NULL,
                                           &c->diags);
        if (c->ann == NULL || c->diags.errors > 0) {
            velo_job_destroy(c->job);
            c->job = NULL;
        }
    }
    if (c->diags.n > 0) {
        char *text = diags_json
                         ? velo_sql_diags_json(&c->diags, c->filename)
                         : velo_sql_diags_format(&c->diags, c->filename);
        if (text != NULL) {
            fputs(text, diags_to_stdout ? stdout : stderr);
            if (!diags_json && text[0] != '\0' &&
                text[strlen(text) - 1] != '\n') {
                fputc('\n', diags_to_stdout ? stdout : stderr);
            }
            free(text);
        }
    }
    if (c->job == NULL) {
        if (c->diags.errors == 0) {
            /* Not an SQL problem: a source or sink failed to open; the
             * reason is logged. */
            fprintf(stderr, "velo %s: the job could not be prepared\n",
                    c->verb);
        }
        return VELO_EXIT_FAILURE;
    }
    return VELO_EXIT_OK;
}

void velo_sqlcli_free(struct velo_sqlcli *c)
{
    if (c->job != NULL) {
        velo_job_destroy(c->job);
    }
    velo_obs_annotations_free(c->ann);
    velo_sql_diags_free(&c->diags);
    if (c->plugins != NULL) {
        velo_plugins_unload(c->plugins);
    }
    velo_host_bind(NULL, NULL, NULL);
    if (c->cfg_loaded) {
        velo_config_free(&c->cfg);
    }
    free(c->sql);
}
