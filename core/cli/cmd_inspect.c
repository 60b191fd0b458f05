/*
 * velo inspect: ask a connector what it reaches (the ABI 1.1 introspect
 * entry), the way the Studio does. The URI's scheme picks the connector
 * among the built-ins and the loaded plugins:
 *
 *   velo inspect postgres://u:p@127.0.0.1:5432/db list
 *   velo inspect postgres://u:p@127.0.0.1:5432/db describe public.orders
 *   velo inspect redis://127.0.0.1:6379 describe 'user:*' --prop sample=50
 *
 * Connector properties go with --prop key=value (the '<name>.key' WITH
 * properties of SQL, without the name); --set stays the configuration's,
 * as for every verb (plugins.dirs=...). The answer is printed as text
 * (tables of columns and fields) or as the connector's JSON. Passwords in
 * the URI are redacted in every message this command prints.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include <velo/velo.h>

#include "cli/cli.h"
#include "config/config.h"
#include "connectors/registry.h"
#include "plugin/host.h"
#include "plugin/license.h"
#include "plugin/loader.h"

#define INSPECT_MAX_PROPS 64

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: velo inspect URI [list | describe NAME] [--prop k=v]...\n"
            "                    [--format text|json] [configuration "
            "options]\n"
            "\n"
            "Ask the connector of URI's scheme what it reaches:\n"
            "  list            tables with their columns (PostgreSQL), "
            "topics\n"
            "                  (Kafka), streams and key patterns (Redis); "
            "the default\n"
            "  describe NAME   one of them: columns and types, or for "
            "schemaless\n"
            "                  sources fields inferred from sampled records\n"
            "  groups          consumer groups and their lag, where it "
            "applies\n"
            "\n"
            "  --prop KEY=VAL  a connector property, as '<name>.KEY' in SQL "
            "(password,\n"
            "                  sample, scan.limit, ...); repeatable\n"
            "  --format FMT    text (default) or json\n"
            "\n%s\n"
            "Exit codes: 0 answered, 1 the connector failed (unreachable, "
            "refused,\nno such table), 2 usage error or a connector "
            "without introspection.\n",
            velo_cli_common_help);
}

/* ---- text rendering ------------------------------------------------------ */

static const char *str_or(const json_t *o, const char *k, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s != NULL ? s : dflt;
}

/* Any JSON value as short text (examples). */
static void print_value(const json_t *v, int width)
{
    if (json_is_string(v)) {
        printf("%-*s", width, json_string_value(v));
        return;
    }
    char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    printf("%-*s", width, t != NULL ? t : "?");
    free(t);
}

/* {"schema","table","columns":[...]} (PostgreSQL). */
static void print_table_obj(const json_t *t)
{
    printf("%s.%s", str_or(t, "schema", "?"), str_or(t, "table", "?"));
    const char *kind = str_or(t, "kind", NULL);
    if (kind != NULL && strcmp(kind, "table") != 0) {
        printf(" (%s)", kind);
    }
    printf("\n");
    const json_t *cols = json_object_get(t, "columns");
    size_t i;
    json_t *c;
    int w = 4;
    json_array_foreach(cols, i, c)
    {
        int l = (int)strlen(str_or(c, "name", ""));
        w = l > w ? l : w;
    }
    json_array_foreach(cols, i, c)
    {
        printf(
            "  %-*s  %s%s\n", w, str_or(c, "name", "?"), str_or(c, "type", "?"),
            json_is_false(json_object_get(c, "nullable")) ? " NOT NULL" : "");
    }
    const json_t *pk = json_object_get(t, "primary_key");
    if (json_array_size(pk) > 0) {
        printf("  primary key:");
        json_array_foreach(pk, i, c)
        {
            printf("%s%s", i > 0 ? ", " : " ", json_string_value(c));
        }
        printf("\n");
    }
    const json_t *est = json_object_get(t, "rows_estimate");
    if (json_is_integer(est) && json_integer_value(est) >= 0) {
        printf("  about %lld rows\n", (long long)json_integer_value(est));
    }
}

/* [{"field","type","example"}] (sampled schemas). */
static void print_fields(const json_t *a)
{
    size_t i;
    json_t *f;
    int wf = 5, wt = 4;
    json_array_foreach(a, i, f)
    {
        int l = (int)strlen(str_or(f, "field", ""));
        wf = l > wf ? l : wf;
        l = (int)strlen(str_or(f, "type", ""));
        wt = l > wt ? l : wt;
    }
    printf("%-*s  %-*s  %s\n", wf, "FIELD", wt, "TYPE", "EXAMPLE");
    json_array_foreach(a, i, f)
    {
        printf("%-*s  %-*s  ", wf, str_or(f, "field", "?"), wt,
               str_or(f, "type", "?"));
        print_value(json_object_get(f, "example"), 0);
        printf("\n");
    }
}

/* {"streams":[...],"keys":[...]} (Redis) or any array of flat objects. */
static void print_rows(const char *title, const json_t *a)
{
    if (!json_is_array(a)) {
        return;
    }
    printf("%s (%zu)\n", title, json_array_size(a));
    size_t i;
    json_t *o;
    json_array_foreach(a, i, o)
    {
        const char *k;
        json_t *v;
        int first = 1;
        printf("  ");
        json_object_foreach(o, k, v)
        {
            if (!first) {
                printf("  ");
            }
            printf("%s=", k);
            print_value(v, 0);
            first = 0;
        }
        printf("\n");
    }
}

static void print_text(const json_t *doc)
{
    if (json_is_object(doc) && json_object_get(doc, "columns") != NULL) {
        print_table_obj(doc);
        return;
    }
    if (json_is_array(doc)) {
        const json_t *first = json_array_get(doc, 0);
        if (first != NULL && json_object_get(first, "columns") != NULL) {
            size_t i;
            json_t *t;
            json_array_foreach(doc, i, t)
            {
                print_table_obj(t);
            }
            printf("%zu table(s)\n", json_array_size(doc));
            return;
        }
        if (first != NULL && json_object_get(first, "field") != NULL) {
            print_fields(doc);
            return;
        }
        if (first == NULL) {
            printf("(nothing)\n");
            return;
        }
        print_rows("items", doc);
        return;
    }
    if (json_is_object(doc)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)doc, k, v)
        {
            if (json_is_array(v)) {
                print_rows(k, v);
            } else {
                printf("%s: ", k);
                print_value(v, 0);
                printf("\n");
            }
        }
        return;
    }
    print_value(doc, 0);
    printf("\n");
}

/* ---- the verb ------------------------------------------------------------ */

struct inspect_opts {
    struct velo_cli_common common;
    const char *uri;
    const char *what;
    const char *arg;
    int json;
    struct velo_property props[INSPECT_MAX_PROPS];
    char *prop_buf[INSPECT_MAX_PROPS];
    size_t nprops;
};

static int parse_args(struct inspect_opts *o, int argc, char **argv)
{
    const char *pos[3] = {NULL, NULL, NULL};
    size_t npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return -1;
        }
        if (strcmp(a, "--format") == 0 || strncmp(a, "--format=", 9) == 0) {
            const char *f = a[8] == '=' ? a + 9 : NULL;
            if (f == NULL && i + 1 >= argc) {
                fprintf(stderr, "velo inspect: --format needs text or "
                                "json\n");
                return VELO_EXIT_USAGE;
            }
            f = f != NULL ? f : argv[++i];
            if (strcmp(f, "json") != 0 && strcmp(f, "text") != 0) {
                fprintf(stderr,
                        "velo inspect: unknown format '%s' (use "
                        "text or json)\n",
                        f);
                return VELO_EXIT_USAGE;
            }
            o->json = strcmp(f, "json") == 0;
            continue;
        }
        if (strcmp(a, "--prop") == 0 || strncmp(a, "--prop=", 7) == 0) {
            const char *kv = a[6] == '=' ? a + 7 : NULL;
            if (kv == NULL && i + 1 >= argc) {
                fprintf(stderr, "velo inspect: --prop needs key=value\n");
                return VELO_EXIT_USAGE;
            }
            kv = kv != NULL ? kv : argv[++i];
            const char *eq = strchr(kv, '=');
            if (eq == NULL || eq == kv) {
                fprintf(stderr,
                        "velo inspect: --prop '%.*s...': write "
                        "key=value\n",
                        (int)strcspn(kv, "="), kv);
                return VELO_EXIT_USAGE;
            }
            if (o->nprops == INSPECT_MAX_PROPS) {
                fprintf(stderr, "velo inspect: at most %d --prop\n",
                        INSPECT_MAX_PROPS);
                return VELO_EXIT_USAGE;
            }
            char *copy = strdup(kv);
            if (copy == NULL) {
                fprintf(stderr, "velo inspect: out of memory\n");
                return VELO_EXIT_FAILURE;
            }
            copy[eq - kv] = '\0';
            o->prop_buf[o->nprops] = copy;
            o->props[o->nprops].key = copy;
            o->props[o->nprops].value = copy + (eq - kv) + 1;
            o->nprops++;
            continue;
        }
        int m = velo_cli_common_opt(&o->common, argc, argv, &i);
        if (m < 0) {
            return VELO_EXIT_USAGE;
        }
        if (m > 0) {
            continue;
        }
        if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "velo inspect: unknown option '%s'\n", a);
            usage(stderr);
            return VELO_EXIT_USAGE;
        }
        if (npos == 3) {
            fprintf(stderr, "velo inspect: unexpected argument '%s'\n", a);
            usage(stderr);
            return VELO_EXIT_USAGE;
        }
        pos[npos++] = a;
    }
    if (npos == 0) {
        fprintf(stderr, "velo inspect: give a URI (postgres://..., "
                        "redis://..., kafka://...)\n");
        usage(stderr);
        return VELO_EXIT_USAGE;
    }
    o->uri = pos[0];
    o->what = npos > 1 ? pos[1] : "list";
    o->arg = npos > 2 ? pos[2] : NULL;
    if (strcmp(o->what, "describe") == 0 && o->arg == NULL) {
        fprintf(stderr, "velo inspect: describe needs a NAME (a table, "
                        "topic, stream or key pattern)\n");
        return VELO_EXIT_USAGE;
    }
    if (strcmp(o->what, "describe") != 0 && strcmp(o->what, "groups") != 0 &&
        o->arg != NULL) {
        fprintf(stderr, "velo inspect: '%s' takes no NAME ('%s')\n", o->what,
                o->arg);
        return VELO_EXIT_USAGE;
    }
    return VELO_EXIT_OK;
}

static int inspect(struct inspect_opts *o, const struct velo_connectors *conns)
{
    char redacted[512];
    velo_uri_redact(o->uri, redacted, sizeof(redacted));
    char scheme[64];
    const char *rest = NULL;
    if (velo_uri_split(o->uri, scheme, sizeof(scheme), &rest) != VELO_OK) {
        fprintf(stderr,
                "velo inspect: '%s' is not a URI (write "
                "scheme://...)\n",
                redacted);
        return VELO_EXIT_USAGE;
    }
    const struct velo_connector_ref *ref =
        velo_connectors_by_scheme(conns, scheme);
    if (ref == NULL) {
        fprintf(stderr,
                "velo inspect: no connector for '%s://' (%s); is "
                "its plugin in plugins.dirs? (velo plugins lists "
                "them)\n",
                scheme, redacted);
        return VELO_EXIT_USAGE;
    }
    if (!VELO_VTABLE_HAS(ref->vt, introspect)) {
        fprintf(stderr,
                "velo inspect: the %s connector cannot describe "
                "what it reaches (no introspection)\n",
                ref->name);
        return VELO_EXIT_USAGE;
    }
    void *config = NULL;
    const char *bad_key = NULL;
    char err[1024];
    if (velo_connector_config_fill(ref, o->props, o->nprops, NULL, &config,
                                   &bad_key, err, sizeof(err)) != VELO_OK) {
        fprintf(stderr, "velo inspect: %s\n", err);
        return VELO_EXIT_USAGE;
    }
    struct velo_connector_ctx ctx = {
        .job = NULL,
        .name = "inspect",
        .uri = o->uri,
        .props = o->props,
        .nprops = o->nprops,
        .base = NULL,
        .wake = NULL,
        .wake_arg = NULL,
    };
    char *out = NULL;
    err[0] = '\0';
    int rc = ref->vt->introspect(config, &ctx, o->what, o->arg, &out, err,
                                 sizeof(err));
    velo_connector_config_free(ref, config);
    if (rc == VELO_DECLINED) {
        fprintf(stderr, "velo inspect: %s\n",
                err[0] ? err : "not supported by this connector");
        free(out);
        return VELO_EXIT_USAGE;
    }
    if (rc != VELO_OK || out == NULL) {
        /* The connector's messages name the URI already (redacted). */
        if (strstr(err, "://") != NULL) {
            fprintf(stderr, "velo inspect: %s\n", err);
        } else {
            fprintf(stderr, "velo inspect: %s: %s\n", redacted,
                    err[0] ? err : "failed");
        }
        free(out);
        return VELO_EXIT_FAILURE;
    }
    json_error_t je;
    json_t *doc = json_loads(out, JSON_DECODE_ANY, &je);
    if (doc == NULL) {
        fprintf(stderr,
                "velo inspect: the %s connector answered invalid "
                "JSON (%s)\n",
                ref->name, je.text);
        free(out);
        return VELO_EXIT_FAILURE;
    }
    if (o->json) {
        char *pretty = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
                                           JSON_ENCODE_ANY);
        printf("%s\n", pretty != NULL ? pretty : out);
        free(pretty);
    } else {
        print_text(doc);
    }
    json_decref(doc);
    free(out);
    return VELO_EXIT_OK;
}

int velo_cmd_inspect(int argc, char **argv)
{
    struct inspect_opts *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        fprintf(stderr, "velo inspect: out of memory\n");
        return VELO_EXIT_FAILURE;
    }
    int rc = parse_args(o, argc, argv);
    if (rc != VELO_EXIT_OK) {
        rc = rc < 0 ? VELO_EXIT_OK : rc;
        goto done;
    }
    struct velo_config cfg;
    if (velo_cli_load_config(&o->common, &cfg) != VELO_OK) {
        rc = VELO_EXIT_FAILURE;
        goto done;
    }
    struct velo_license *lic = calloc(1, sizeof(*lic));
    if (lic == NULL) {
        fprintf(stderr, "velo inspect: out of memory\n");
        velo_config_free(&cfg);
        rc = VELO_EXIT_FAILURE;
        goto done;
    }
    velo_license_verify_file(cfg.license_file, time(NULL), lic);
    velo_host_bind(NULL, NULL, lic);
    struct velo_plugins *set = velo_plugins_load(&cfg, velo_host_api(), lic);
    struct velo_connectors *conns =
        set != NULL ? velo_connectors_create(set) : NULL;
    if (conns == NULL) {
        fprintf(stderr, "velo inspect: out of memory\n");
        rc = VELO_EXIT_FAILURE;
    } else {
        rc = inspect(o, conns);
        velo_connectors_destroy(conns);
    }
    velo_plugins_unload(set);
    velo_host_bind(NULL, NULL, NULL);
    free(lic);
    velo_config_free(&cfg);
done:
    for (size_t i = 0; i < o->nprops; i++) {
        free(o->prop_buf[i]);
    }
    free(o);
    return rc;
}
