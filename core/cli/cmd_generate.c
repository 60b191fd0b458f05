/*
 * velo generate: write the data a schema describes, standalone, with the
 * generator velo test and the gen:// source use. References to another
 * source are resolved from <source>.schema.yaml beside the schema, which
 * is generated first (in memory) with the same seed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "testkit/testkit.h"

static const char generate_usage[] =
    "Usage: velo generate SCHEMA.yaml [options]\n"
    "\n"
    "Write the records SCHEMA.yaml describes (fields, types, constraints,\n"
    "distributions, event time) to standard output or a file.\n"
    "\n"
    "Options:\n"
    "  --records N        how many (default: schema.records, else 1000)\n"
    "  --seed S           random seed (default 0); the same seed writes the\n"
    "                     same bytes\n"
    "  --format FORMAT    jsonl (default) or csv\n"
    "  --output FILE      write to FILE instead of standard output\n"
    "  --now TIME         anchor relative times (\"-1h\", \"now\") at TIME\n"
    "                     (ISO 8601) instead of the clock\n";

#define MAX_REF_DEPTH 8

/* Generate what `s` references (recursively) into pools. */
static int generate_refs(const struct velo_tk_schema *s, const char *dir,
                         uint64_t seed, int64_t now, struct velo_tk_pools *p,
                         int depth, char *err, size_t errlen)
{
    for (size_t i = 0; i < s->n; i++) {
        const char *src = s->fields[i].ref_source;
        size_t n;
        if (src == NULL ||
            velo_tk_pools_get(p, src, s->fields[i].ref_field, &n) != NULL) {
            continue;
        }
        if (depth >= MAX_REF_DEPTH) {
            snprintf(err, errlen,
                     "references nest deeper than %d schemas "
                     "(a cycle?)",
                     MAX_REF_DEPTH);
            return -1;
        }
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s.schema.yaml", dir, src);
        struct velo_tk_schema *rs = velo_tk_schema_load(path, err, errlen);
        if (rs == NULL) {
            char e2[600];
            snprintf(e2, sizeof(e2), "field '%s' references %s.%s: %s",
                     s->fields[i].name, src, s->fields[i].ref_field, err);
            snprintf(err, errlen, "%s", e2);
            return -1;
        }
        free(rs->name);
        rs->name = strdup(src);
        int rc = generate_refs(rs, dir, seed, now, p, depth + 1, err, errlen);
        struct velo_tk_gen *g =
            rc == 0 ? velo_tk_gen_create(rs, seed, now, p, err, errlen) : NULL;
        FILE *devnull = fopen("/dev/null", "w");
        if (g == NULL || devnull == NULL ||
            velo_tk_gen_write(g, rs->records > 0 ? rs->records : 1000,
                              VELO_TK_JSONL, devnull, p) != 0) {
            if (g != NULL) {
                snprintf(err, errlen, "cannot generate %s: %s", src,
                         strerror(errno));
            }
            rc = -1;
        }
        if (devnull != NULL) {
            fclose(devnull);
        }
        velo_tk_gen_destroy(g);
        velo_tk_schema_free(rs);
        if (rc != 0) {
            return -1;
        }
    }
    return 0;
}

int velo_cmd_generate(int argc, char **argv)
{
    const char *schema_path = NULL, *out_path = NULL;
    long long records = -1;
    uint64_t seed = 0;
    int64_t now = 0;
    int format = VELO_TK_JSONL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            printf("%s", generate_usage);
            return VELO_EXIT_OK;
        }
        char *end;
        if (strcmp(a, "--records") == 0 && has) {
            errno = 0;
            records = strtoll(argv[++i], &end, 10);
            if (*end != '\0' || end == argv[i] || errno || records < 0) {
                fprintf(stderr,
                        "velo generate: --records needs a count, "
                        "not '%s'\n",
                        argv[i]);
                return VELO_EXIT_USAGE;
            }
        } else if (strcmp(a, "--seed") == 0 && has) {
            errno = 0;
            seed = strtoull(argv[++i], &end, 10);
            if (*end != '\0' || end == argv[i] || errno || argv[i][0] == '-') {
                fprintf(stderr,
                        "velo generate: --seed needs a "
                        "non-negative number, not '%s'\n",
                        argv[i]);
                return VELO_EXIT_USAGE;
            }
        } else if (strcmp(a, "--format") == 0 && has) {
            const char *f = argv[++i];
            if (strcmp(f, "jsonl") == 0 || strcmp(f, "json") == 0) {
                format = VELO_TK_JSONL;
            } else if (strcmp(f, "csv") == 0) {
                format = VELO_TK_CSV;
            } else {
                fprintf(stderr,
                        "velo generate: unknown format '%s' (use "
                        "jsonl or csv)\n",
                        f);
                return VELO_EXIT_USAGE;
            }
        } else if (strcmp(a, "--output") == 0 && has) {
            out_path = argv[++i];
        } else if (strcmp(a, "--now") == 0 && has) {
            int rel;
            if (velo_tk_parse_time(argv[++i], &now, &rel) != 0 || rel) {
                fprintf(stderr,
                        "velo generate: --now needs an ISO-8601 "
                        "time, not '%s'\n",
                        argv[i]);
                return VELO_EXIT_USAGE;
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr,
                    "velo generate: unknown option '%s'%s (see velo "
                    "generate --help)\n",
                    a, has ? "" : " or a missing value");
            return VELO_EXIT_USAGE;
        } else if (schema_path == NULL) {
            schema_path = a;
        } else {
            fprintf(stderr,
                    "velo generate: more than one schema given "
                    "('%s' and '%s')\n",
                    schema_path, a);
            return VELO_EXIT_USAGE;
        }
    }
    if (schema_path == NULL) {
        fprintf(stderr, "velo generate: no schema given\n%s", generate_usage);
        return VELO_EXIT_USAGE;
    }
    char err[1024] = "";
    struct velo_tk_schema *s =
        velo_tk_schema_load(schema_path, err, sizeof(err));
    if (s == NULL) {
        fprintf(stderr, "velo generate: %s\n", err);
        return VELO_EXIT_USAGE;
    }
    const char *sl = strrchr(schema_path, '/');
    char *dir = sl != NULL ? strndup(schema_path, (size_t)(sl - schema_path))
                           : strdup(".");
    struct velo_tk_pools *pools = velo_tk_pools_create();
    int rc = VELO_EXIT_USAGE;
    struct velo_tk_gen *g = NULL;
    FILE *out = NULL;
    if (dir == NULL || pools == NULL ||
        generate_refs(s, dir, seed, now, pools, 0, err, sizeof(err)) != 0 ||
        (g = velo_tk_gen_create(s, seed, now, pools, err, sizeof(err))) ==
            NULL) {
        fprintf(stderr, "velo generate: %s: %s\n", schema_path,
                err[0] ? err : "out of memory");
        goto done;
    }
    out = out_path != NULL ? fopen(out_path, "w") : stdout;
    if (out == NULL) {
        fprintf(stderr, "velo generate: cannot write %s: %s\n", out_path,
                strerror(errno));
        goto done;
    }
    int64_t n = records >= 0 ? records : s->records > 0 ? s->records : 1000;
    if (velo_tk_gen_write(g, n, format, out, NULL) != 0 || fflush(out) != 0) {
        fprintf(stderr, "velo generate: cannot write %s: %s\n",
                out_path != NULL ? out_path : "standard output",
                strerror(errno));
        rc = VELO_EXIT_FAILURE;
        goto done;
    }
    rc = VELO_EXIT_OK;
done:
    if (out != NULL && out != stdout && fclose(out) != 0 &&
        rc == VELO_EXIT_OK) {
        fprintf(stderr, "velo generate: cannot write %s\n", out_path);
        rc = VELO_EXIT_FAILURE;
    }
    velo_tk_gen_destroy(g);
    velo_tk_pools_free(pools);
    velo_tk_schema_free(s);
    free(dir);
    return rc;
}
