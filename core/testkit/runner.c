/*
 * velo test's runner: find the query's sources, generate input for each,
 * run the query in-process with its sources rebound to the generated
 * files and every output captured, then check and analyse.
 *
 * Sources are found by planning the query once with a schema callback
 * that never opens a connector (a Kafka source must not be contacted by a
 * test). The callback answers with the generator schema's columns so the
 * whole query binds and the statements' targets are known.
 *
 * A source's generator schema comes from, in order: the spec's input
 * (inline or a file), <source>.schema.yaml beside the query, a gen://
 * URI's schema file, the columns declared in the query, or inference
 * from the source's own file used as a sample.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "exec/batch.h"
#include "exec/job.h"
#include "obs/annotations.h"
#include "obs/jobmetrics.h"
#include "obs/metrics.h"
#include "testkit/testkit-internal.h"

#define SQL_MAX_BYTES (1024 * 1024)
#define SAMPLE_BYTES (64 * 1024)
#define DEFAULT_RECORDS 1000
#define DEFAULT_MAX_S 30.0

struct tsource {
    char *name;
    char *uri;
    char *path_prop;              /* '<name>.path' */
    struct velo_schema *declared; /* copy, or NULL */
    struct velo_tk_schema *gen;
    char *schema_from; /* for the report */
    int64_t records;
    char *data_path;
    int generated;
};

struct runner {
    const struct velo_tk_run_opts *o;
    struct velo_tk_spec *spec;
    char *sql;
    size_t sql_len;
    char *sql_dir;
    char *dir; /* working directory (generated data, captures) */
    int own_dir;
    struct tsource *src;
    size_t nsrc;
    char *err;
    size_t errlen;
    int failed;
    /* Statements with a target but no sink (a stream only later
     * statements read): the run appends "SELECT * FROM target;" for each
     * so its rows are captured too. uncaptured[i] is 1 for those. */
    uint8_t *uncaptured;
    char **targets; /* of the uncaptured statements */
    size_t nstatements;
};

/* ---- Files -------------------------------------------------------------- */

static char *read_file(const char *path, size_t max, size_t *len, char *err,
                       size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(max + 1);
    size_t n = buf != NULL ? fread(buf, 1, max, f) : 0;
    fclose(f);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        char p[4096];
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            remove_tree(p);
        } else {
            unlink(p);
        }
    }
    closedir(d);
    rmdir(dir);
}

static json_t *load_jsonl(const char *path)
{
    json_t *rows = json_array();
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return rows;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        json_t *o = json_loadb(line, (size_t)n, JSON_DECODE_ANY, NULL);
        if (json_is_object(o)) {
            json_array_append_new(rows, o);
        } else {
            json_decref(o);
        }
    }
    free(line);
    fclose(f);
    return rows;
}

/* ---- gen:// URIs -------------------------------------------------------- */

int velo_tk_gen_uri(const char *uri, char *path, size_t pathlen,
                    int64_t *records, uint64_t *seed)
{
    if (strncasecmp(uri, "gen://", 6) != 0) {
        return -1;
    }
    const char *p = uri + 6;
    size_t n = strcspn(p, "?");
    if (n == 0 || n >= pathlen) {
        return -1;
    }
    memcpy(path, p, n);
    path[n] = '\0';
    const char *q = p[n] == '?' ? p + n + 1 : NULL;
    while (q != NULL && *q != '\0') {
        const char *amp = strchr(q, '&');
        size_t len = amp != NULL ? (size_t)(amp - q) : strlen(q);
        char kv[128];
        snprintf(kv, sizeof(kv), "%.*s", (int)(len < 127 ? len : 127), q);
        char *eq = strchr(kv, '=');
        char *end = NULL;
        if (eq == NULL) {
            return -1;
        }
        *eq = '\0';
        if (strcmp(kv, "records") == 0) {
            long long v = strtoll(eq + 1, &end, 10);
            if (*end != '\0' || v < 0) {
                return -1;
            }
            *records = v;
        } else if (strcmp(kv, "seed") == 0) {
            unsigned long long v = strtoull(eq + 1, &end, 10);
            if (*end != '\0') {
                return -1;
            }
            *seed = v;
        } else {
            return -1;
        }
        q = amp != NULL ? amp + 1 : NULL;
    }
    return 0;
}

/* ---- Finding sources ---------------------------------------------------- */

static struct tsource *find_src(struct runner *r, const char *name)
{
    for (size_t i = 0; i < r->nsrc; i++) {
        if (strcasecmp(r->src[i].name, name) == 0) {
            return &r->src[i];
        }
    }
    return NULL;
}

static const struct velo_tk_input *spec_input(struct runner *r,
                                              const char *name)
{
    for (size_t q = 0; r->spec != NULL && q < r->spec->nqueries; q++) {
        const struct velo_tk_query *tq = &r->spec->queries[q];
        for (size_t i = 0; i < tq->ninputs; i++) {
            if (strcasecmp(tq->inputs[i].source, name) == 0) {
                return &tq->inputs[i];
            }
        }
    }
    return NULL;
}

static struct velo_datatype engine_type(const struct velo_tk_field *f)
{
    switch (f->type) {
    case VELO_TK_INTEGER:
        return velo_type_of(VELO_TYPE_BIGINT);
    case VELO_TK_FLOAT:
        return velo_type_of(VELO_TYPE_DOUBLE);
    /* Generated decimals are JSON numbers; the engine reads them as
     * DOUBLE unless the query declares DECIMAL columns. */
    case VELO_TK_DECIMAL:
        return velo_type_of(VELO_TYPE_DOUBLE);
    case VELO_TK_BOOLEAN:
        return velo_type_of(VELO_TYPE_BOOLEAN);
    case VELO_TK_TIMESTAMP:
        return velo_type_of(VELO_TYPE_TIMESTAMP);
    default:
        return velo_type_of(VELO_TYPE_STRING);
    }
}

/* The generator schema of one source (see the top of the file). */
static int resolve_schema(struct runner *r, struct tsource *s,
                          const struct velo_plan_source *ps, char *err,
                          size_t errlen)
{
    const struct velo_tk_input *in = spec_input(r, s->name);
    char path[4096];
    int64_t uri_records = 0;
    uint64_t uri_seed = 0;
    if (in != NULL && in->schema_inline != NULL) {
        s->gen =
            velo_tk_schema_parse(in->schema_inline, "the spec", err, errlen);
        s->schema_from = strdup("the spec");
    } else if (in != NULL && in->schema_file != NULL) {
        s->gen = velo_tk_schema_load(in->schema_file, err, errlen);
        s->schema_from = strdup(in->schema_file);
    } else {
        char *p = NULL;
        if (asprintf(&p, "%s/%s.schema.yaml", r->sql_dir, s->name) > 0 &&
            exists(p)) {
            s->gen = velo_tk_schema_load(p, err, errlen);
            s->schema_from = p;
            p = NULL;
        }
        free(p);
        if (s->gen == NULL && s->schema_from == NULL && s->uri != NULL &&
            velo_tk_gen_uri(s->uri, path, sizeof(path), &uri_records,
                            &uri_seed) == 0) {
            s->gen = velo_tk_schema_load(path, err, errlen);
            s->schema_from = strdup(path);
        }
    }
    if (s->schema_from != NULL && s->gen == NULL) {
        return -1; /* a schema file that does not parse: err says why */
    }
    if (s->gen == NULL && s->declared != NULL) {
        s->gen = velo_tk_schema_from_engine(s->name, s->declared, NULL, 0, 0);
        s->schema_from = strdup("the columns declared in the query");
    }
    if (s->gen == NULL) {
        /* A sample: the source's own file, when it has one. */
        const char *file = NULL;
        if (s->path_prop != NULL) {
            file = s->path_prop;
        } else if (s->uri != NULL && strncasecmp(s->uri, "file://", 7) == 0) {
            file = s->uri + 7;
        }
        size_t len = 0;
        char serr[256];
        char *sample = file != NULL ? read_file(file, SAMPLE_BYTES, &len, serr,
                                                sizeof(serr))
                                    : NULL;
        if (sample != NULL) {
            /* Keep whole lines only. */
            char *nl = strrchr(sample, '\n');
            if (nl != NULL && len == SAMPLE_BYTES) {
                nl[1] = '\0';
                len = (size_t)(nl - sample) + 1;
            }
            struct velo_schema *inf =
                velo_infer_schema(&ps->format, sample, len, serr, sizeof(serr));
            if (inf != NULL) {
                s->gen = velo_tk_schema_from_engine(s->name, inf, sample, len,
                                                    ps->format.kind ==
                                                        VELO_FORMAT_CSV);
                s->schema_from = strdup(file);
                velo_schema_destroy(inf);
            }
            free(sample);
        }
    }
    if (s->gen == NULL) {
        snprintf(err, errlen,
                 "no schema to generate source '%s' from: write %s/%s."
                 "schema.yaml, give it under the spec's inputs (schema: "
                 "file.yaml), declare the source's columns in the query, or "
                 "point the source at a sample file",
                 s->name, r->sql_dir, s->name);
        return -1;
    }
    free(s->gen->name);
    s->gen->name = strdup(s->name);
    if (in != NULL && in->records > 0) {
        s->records = in->records;
    } else if (r->o->records > 0) {
        s->records = r->o->records;
    } else if (uri_records > 0) {
        s->records = uri_records;
    } else if (s->gen->records > 0) {
        s->records = s->gen->records;
    } else {
        s->records = DEFAULT_RECORDS;
    }
    return 0;
}

static int64_t clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int discover_cb(void *arg, const struct velo_plan_source *ps,
                       struct velo_schema **out, int *bounded, char *err,
                       size_t errlen)
{
    struct runner *r = arg;
    *out = NULL;
    *bounded = 1;
    struct tsource *s = find_src(r, ps->name);
    if (s == NULL) {
        struct tsource *ns = realloc(r->src, (r->nsrc + 1) * sizeof(*ns));
        if (ns == NULL) {
            snprintf(err, errlen, "out of memory");
            return VELO_ERR;
        }
        r->src = ns;
        s = &r->src[r->nsrc++];
        memset(s, 0, sizeof(*s));
        s->name = strdup(ps->name);
        s->uri = ps->uri != NULL ? strdup(ps->uri) : NULL;
        for (size_t i = 0; i < ps->nprops; i++) {
            if (ps->props[i].key != NULL &&
                strcmp(ps->props[i].key, "path") == 0) {
                s->path_prop = strdup(ps->props[i].value);
            }
        }
        if (ps->schema != NULL) {
            s->declared = velo_schema_copy(ps->schema);
        }
        if (resolve_schema(r, s, ps, err, errlen) != 0) {
            if (!r->failed) {
                snprintf(r->err, r->errlen, "%s", err);
            }
            r->failed = 1;
            return VELO_ERR;
        }
    }
    if (ps->schema != NULL) {
        return VELO_OK; /* declared columns stay */
    }
    struct velo_schema *sch = velo_schema_create(s->gen->n);
    if (sch == NULL) {
        snprintf(err, errlen, "out of memory");
        return VELO_ERR;
    }
    for (size_t i = 0; i < s->gen->n; i++) {
        velo_schema_set(sch, i, s->gen->fields[i].name,
                        engine_type(&s->gen->fields[i]), 1, 0);
    }
    *out = sch;
    return VELO_OK;
}

/* Plan once, connector-free, to learn the sources. */
static int discover(struct runner *r)
{
    struct velo_funcs *funcs = velo_funcs_create();
    struct velo_connectors *conns = velo_connectors_create(r->o->plugins);
    struct velo_exec_env exec = {0};
    exec.funcs = funcs;
    exec.batch_cap = VELO_BATCH_ROWS;
    exec.now_us = clock_us;
    struct velo_plan_env penv = {0};
    penv.funcs = funcs;
    penv.connectors = conns;
    penv.exec = &exec;
    penv.source_schema = discover_cb;
    penv.arg = r;
    penv.stdout_format = VELO_FORMAT_JSON;
    /* Lookup tables the plan opens register with a loop (ctx->base). */
    penv.base = event_base_new();
    struct velo_sql_diags diags = {0};
    int rc = 0;
    if (funcs == NULL || conns == NULL || penv.base == NULL) {
        snprintf(r->err, r->errlen, "out of memory");
        rc = -1;
    } else {
        struct velo_sql_program *prog =
            velo_sql_parse(r->sql, r->sql_len, &diags);
        struct velo_plan *plan = prog != NULL && diags.errors == 0
                                     ? velo_sql_plan(prog, &penv, &diags)
                                     : NULL;
        if (plan != NULL && diags.errors == 0) {
            r->nstatements = plan->nstatements;
            r->uncaptured = calloc(plan->nstatements + 1, 1);
            r->targets = calloc(plan->nstatements + 1, sizeof(char *));
            for (size_t i = 0; r->uncaptured != NULL && i < plan->nstatements;
                 i++) {
                const struct velo_plan_statement *ps = &plan->statements[i];
                int sink = 0;
                for (size_t k = 0; k < plan->nsinks; k++) {
                    sink |= plan->sinks[k].statement == i;
                }
                r->uncaptured[i] = !sink && ps->target != NULL &&
                                   strcasecmp(ps->kind, "SELECT") != 0 &&
                                   r->targets != NULL;
                if (r->uncaptured[i]) {
                    r->targets[i] = strdup(ps->target);
                }
            }
        }
        if (!r->failed && (plan == NULL || diags.errors > 0)) {
            char *text = velo_sql_diags_format(&diags, r->o->sql_path);
            snprintf(r->err, r->errlen, "%s",
                     text != NULL ? text : "cannot plan");
            free(text);
            rc = -1;
        } else if (r->failed) {
            rc = -1;
        }
        velo_plan_destroy(plan);
        velo_sql_program_free(prog);
    }
    velo_sql_diags_free(&diags);
    velo_connectors_destroy(conns);
    velo_funcs_destroy(funcs);
    if (penv.base != NULL) {
        event_base_free(penv.base); /* after the plan's lookup tables */
    }
    return rc;
}

/* ---- Generating ---------------------------------------------------------- */

static int generate_all(struct runner *r, struct velo_tk_pools *pools,
                        struct velo_tk_ctx *ctx, json_t *inputs)
{
    size_t done = 0;
    while (done < r->nsrc) {
        size_t progress = 0;
        for (size_t i = 0; i < r->nsrc; i++) {
            struct tsource *s = &r->src[i];
            if (s->generated) {
                continue;
            }
            int ready = 1;
            for (size_t f = 0; f < s->gen->n; f++) {
                const char *ref = s->gen->fields[f].ref_source;
                if (ref == NULL) {
                    continue;
                }
                struct tsource *t = find_src(r, ref);
                if (t == NULL) {
                    snprintf(r->err, r->errlen,
                             "%s: field '%s' references source '%s', which "
                             "the query does not read; reference one of its "
                             "sources",
                             s->schema_from, s->gen->fields[f].name, ref);
                    return -1;
                }
                ready &= t->generated || t == s;
            }
            if (!ready) {
                continue;
            }
            if (asprintf(&s->data_path, "%s/source-%zu.jsonl", r->dir, i) < 0) {
                return -1;
            }
            FILE *f = fopen(s->data_path, "w");
            if (f == NULL) {
                snprintf(r->err, r->errlen, "cannot write %s: %s", s->data_path,
                         strerror(errno));
                return -1;
            }
            char gerr[512];
            struct velo_tk_gen *g = velo_tk_gen_create(
                s->gen, r->o->seed, r->o->now_us, pools, gerr, sizeof(gerr));
            if (g == NULL) {
                fclose(f);
                snprintf(r->err, r->errlen, "%s: %s", s->schema_from, gerr);
                return -1;
            }
            int wrc = velo_tk_gen_write(g, s->records, VELO_TK_JSONL, f, pools);
            velo_tk_gen_destroy(g);
            if (fclose(f) != 0 || wrc != 0) {
                snprintf(r->err, r->errlen, "cannot write %s: %s", s->data_path,
                         strerror(errno));
                return -1;
            }
            s->generated = 1;
            done++;
            progress++;
            struct velo_tk_source_data *d = &ctx->sources[ctx->nsources++];
            d->name = s->name;
            d->path = s->data_path;
            d->rows = load_jsonl(s->data_path);
            d->schema = s->gen;
            json_t *in = json_object();
            json_object_set_new(in, "source", json_string(s->name));
            json_object_set_new(in, "records", json_integer(s->records));
            json_object_set_new(in, "schema", json_string(s->schema_from));
            json_object_set_new(in, "file", json_string(s->data_path));
            json_array_append_new(inputs, in);
        }
        if (progress == 0) {
            snprintf(r->err, r->errlen,
                     "the sources' references form a "
                     "cycle; one side of each join must "
                     "be generated first");
            return -1;
        }
    }
    return 0;
}

/* ---- In-process scalar queries ------------------------------------------ */

static int scalar_sql(void *arg, const char *sql, double *out, char *err,
                      size_t errlen)
{
    struct runner *r = arg;
    /* The bare SELECT's rows are captured like the query's own outputs,
     * into a directory of their own. */
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/scalar-XXXXXX", r->dir);
    if (mkdtemp(dir) == NULL) {
        snprintf(err, errlen, "cannot create a temporary directory: %s",
                 strerror(errno));
        return -1;
    }
    struct velo_job_opts jo = {0};
    jo.filename = "<velo test>";
    jo.stdout_format = VELO_FORMAT_JSON;
    jo.stdout_fd = 1;
    jo.progress_fd = -1;
    jo.plugins = r->o->plugins;
    jo.capture_dir = dir;
    struct velo_sql_diags diags = {0};
    struct velo_job *j = velo_job_prepare(sql, strlen(sql), &jo, &diags);
    int rc = -1;
    if (j == NULL) {
        snprintf(err, errlen, "%s",
                 diags.n > 0 && diags.d[0].message ? diags.d[0].message
                                                   : "cannot plan");
    } else if (velo_job_run(j, NULL) != VELO_OK) {
        snprintf(err, errlen, "the query failed");
    } else {
        rc = 0;
    }
    velo_job_destroy(j);
    velo_sql_diags_free(&diags);
    char path[4200];
    snprintf(path, sizeof(path), "%s/select-1.jsonl", dir);
    if (rc == 0) {
        /* A changelog: the last row holds the final value. */
        json_t *rows = load_jsonl(path);
        json_t *last = json_array_get(rows, json_array_size(rows) - 1);
        json_t *v = json_object_get(last, "v");
        if (json_is_number(v)) {
            *out = json_number_value(v);
        } else {
            snprintf(err, errlen, "%s",
                     last == NULL ? "no result row" : "the result is NULL");
            rc = last == NULL ? 1 : -1;
        }
        json_decref(rows);
    }
    remove_tree(dir);
    return rc;
}

/* ---- Outputs ------------------------------------------------------------ */

/* Statement texts by the plan's lines: from its line to the next one. */
static char *statement_text(const char *sql, int line, int next_line)
{
    const char *p = sql;
    for (int l = 1; l < line && p != NULL; l++) {
        p = strchr(p, '\n');
        p = p != NULL ? p + 1 : NULL;
    }
    if (p == NULL) {
        return strdup("");
    }
    const char *e = p;
    for (int l = line; next_line > 0 && l < next_line && e != NULL; l++) {
        e = strchr(e, '\n');
        e = e != NULL ? e + 1 : NULL;
    }
    if (next_line <= 0 || e == NULL) {
        e = p + strlen(p);
    }
    return strndup(p, (size_t)(e - p));
}

/* GROUP BY columns of a statement (unqualified). */
static size_t group_keys(const char *sql, char **out, size_t max)
{
    const char *g = strcasestr(sql, "GROUP BY");
    if (g == NULL) {
        return 0;
    }
    g += 8;
    size_t n = 0;
    while (n < max) {
        while (*g == ' ' || *g == '\n' || *g == '\t') {
            g++;
        }
        const char *st = g;
        while (*g != '\0' && *g != ',' && *g != ' ' && *g != '\n' &&
               *g != ';' && *g != ')') {
            g++;
        }
        if (g == st) {
            break;
        }
        const char *dot = memchr(st, '.', (size_t)(g - st));
        const char *name = dot != NULL ? dot + 1 : st;
        /* A window function (TUMBLING(...)) is not a key column. */
        if (memchr(st, '(', (size_t)(g - st)) == NULL) {
            out[n++] = strndup(name, (size_t)(g - name));
        }
        while (*g == ' ') {
            g++;
        }
        if (*g != ',') {
            break;
        }
        g++;
    }
    return n;
}

/*
 * A changelog output (a table, EMIT CHANGES) is checked as its final
 * state: the last row per GROUP BY key ("_op": "delete" removes it), or
 * the last row of a global aggregate. Windowed outputs are left as they
 * are: their key includes the window, which the rows may not carry.
 */
static json_t *materialize(json_t *rows, const char *sql)
{
    size_t i;
    json_t *row;
    int changelog = 0;
    json_array_foreach(rows, i, row)
    {
        changelog |= json_object_get(row, "_op") != NULL;
    }
    if (!changelog || strcasestr(sql, "WINDOW") != NULL) {
        return rows;
    }
    char *keys[16];
    size_t nk = group_keys(sql, keys, 16);
    json_t *state = json_object();
    json_array_foreach(rows, i, row)
    {
        struct velo_textbuf k = {0};
        velo_textbuf_add(&k, "#");
        for (size_t c = 0; c < nk; c++) {
            char *t = velo_tk_cell_text(json_object_get(row, keys[c]));
            velo_textbuf_add(&k, "%s\x1f", t != NULL ? t : "");
            free(t);
        }
        const char *op = json_string_value(json_object_get(row, "_op"));
        if (k.p != NULL && op != NULL && strcmp(op, "delete") == 0) {
            json_object_del(state, k.p);
        } else if (k.p != NULL) {
            json_t *copy = json_copy(row);
            json_object_del(copy, "_op");
            json_object_set_new(state, k.p, copy);
        }
        velo_textbuf_free(&k);
    }
    json_t *out = json_array();
    const char *key;
    json_t *v;
    json_object_foreach(state, key, v)
    {
        json_array_append(out, v);
    }
    json_decref(state);
    json_decref(rows);
    for (size_t c = 0; c < nk; c++) {
        free(keys[c]);
    }
    return out;
}

/* ---- The run ------------------------------------------------------------ */

static void fill_stats(struct velo_tk_run_stats *st, struct velo_job *j)
{
    struct velo_job_stats js;
    velo_job_get_stats(j, &js);
    st->elapsed_s = js.elapsed_s;
    st->records_in = js.records_in;
    st->records_out = js.records_out;
    st->dead_lettered = js.dead_lettered;
    st->late_rows = js.late_rows;
    st->bad_records = js.bad_records;
    st->failed_rows = js.failed_rows;
    st->watermark_us = js.watermark_us;
    st->max_event_time_us = js.max_event_time_us;
    st->peak_rss = js.peak_rss_bytes;
    if (st->peak_rss == 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        st->peak_rss = (uint64_t)ru.ru_maxrss * 1024;
    }
}

static void runner_free(struct runner *r)
{
    for (size_t i = 0; i < r->nsrc; i++) {
        struct tsource *s = &r->src[i];
        free(s->name);
        free(s->uri);
        free(s->path_prop);
        velo_schema_destroy(s->declared);
        velo_tk_schema_free(s->gen);
        free(s->schema_from);
        free(s->data_path);
    }
    free(r->src);
    for (size_t i = 0; r->targets != NULL && i < r->nstatements; i++) {
        free(r->targets[i]);
    }
    free(r->targets);
    free(r->uncaptured);
    velo_tk_spec_free(r->spec);
    free(r->sql);
    free(r->sql_dir);
    if (r->own_dir && r->dir != NULL) {
        remove_tree(r->dir);
    }
    free(r->dir);
}

static int setup(struct runner *r)
{
    const struct velo_tk_run_opts *o = r->o;
    r->sql =
        read_file(o->sql_path, SQL_MAX_BYTES, &r->sql_len, r->err, r->errlen);
    if (r->sql == NULL) {
        return -1;
    }
    const char *sl = strrchr(o->sql_path, '/');
    r->sql_dir = sl != NULL ? strndup(o->sql_path, (size_t)(sl - o->sql_path))
                            : strdup(".");
    char *spec = NULL;
    if (o->spec_path != NULL) {
        spec = strdup(o->spec_path);
    } else {
        size_t n = strlen(o->sql_path);
        if (n > 4 && strcmp(o->sql_path + n - 4, ".sql") == 0) {
            n -= 4;
        }
        if (asprintf(&spec, "%.*s.test.yaml", (int)n, o->sql_path) > 0 &&
            !exists(spec)) {
            free(spec);
            spec = NULL;
        }
    }
    if (spec != NULL) {
        r->spec = velo_tk_spec_load(spec, r->err, r->errlen);
        free(spec);
        if (r->spec == NULL) {
            return -1;
        }
    }
    if (o->keep_dir != NULL) {
        if (mkdir(o->keep_dir, 0755) != 0 && errno != EEXIST) {
            snprintf(r->err, r->errlen, "cannot create %s: %s", o->keep_dir,
                     strerror(errno));
            return -1;
        }
        r->dir = strdup(o->keep_dir);
    } else {
        const char *tmp = getenv("TMPDIR");
        char t[4096];
        snprintf(t, sizeof(t), "%s/velo-test-XXXXXX",
                 tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
        if (mkdtemp(t) == NULL) {
            snprintf(r->err, r->errlen,
                     "cannot create a temporary "
                     "directory: %s",
                     strerror(errno));
            return -1;
        }
        r->dir = strdup(t);
        r->own_dir = 1;
    }
    return 0;
}

/* A spec input must name a source of the query: a typo would otherwise
 * silently generate the default input instead. */
static int check_inputs(struct runner *r)
{
    for (size_t q = 0; r->spec != NULL && q < r->spec->nqueries; q++) {
        const struct velo_tk_query *tq = &r->spec->queries[q];
        for (size_t i = 0; i < tq->ninputs; i++) {
            if (find_src(r, tq->inputs[i].source) != NULL) {
                continue;
            }
            struct velo_textbuf names = {0};
            for (size_t k = 0; k < r->nsrc; k++) {
                velo_textbuf_add(&names, "%s%s", k ? ", " : "", r->src[k].name);
            }
            snprintf(r->err, r->errlen,
                     "the spec gives input for '%s', which the query does "
                     "not read; its sources are: %s",
                     tq->inputs[i].source,
                     names.p != NULL ? names.p : "(none)");
            velo_textbuf_free(&names);
            return -1;
        }
    }
    return 0;
}

int velo_tk_run(const struct velo_tk_run_opts *o, struct velo_tk_report *rep,
                char *err, size_t errlen)
{
    struct runner r = {0};
    r.o = o;
    r.err = err;
    r.errlen = errlen;
    err[0] = '\0';
    memset(rep, 0, sizeof(*rep));
    rep->query = strdup(o->sql_path);
    rep->seed = o->seed;
    rep->records = o->records;
    rep->inputs = json_array();
    if (setup(&r) != 0 || discover(&r) != 0 || check_inputs(&r) != 0) {
        runner_free(&r);
        return 2;
    }
    struct velo_tk_ctx ctx = {0};
    struct velo_tk_pools *pools = velo_tk_pools_create();
    ctx.sources = calloc(r.nsrc + 1, sizeof(*ctx.sources));
    ctx.spec_dir = r.spec != NULL ? r.spec->dir : r.sql_dir;
    ctx.scalar_sql = scalar_sql;
    ctx.scalar_arg = &r;
    int rc = 2;
    struct velo_job_rebind *rb = calloc(r.nsrc + 1, sizeof(*rb));
    char **uris = calloc(r.nsrc + 1, sizeof(*uris));
    struct velo_job *job = NULL;
    struct velo_sql_diags diags = {0};
    struct velo_metrics *metrics = NULL;
    struct velo_obs_job_metrics *jm = NULL;
    struct velo_obs_annotations *ann = NULL;
    char *capdir = NULL;
    int nullfd = -1;
    if (pools == NULL || ctx.sources == NULL || rb == NULL || uris == NULL ||
        generate_all(&r, pools, &ctx, rep->inputs) != 0) {
        if (err[0] == '\0') {
            snprintf(err, errlen, "out of memory");
        }
        goto out;
    }
    for (size_t i = 0; i < r.nsrc; i++) {
        if (asprintf(&uris[i], "file://%s", r.src[i].data_path) < 0) {
            goto out;
        }
        rb[i].name = r.src[i].name;
        rb[i].uri = uris[i];
    }
    if (asprintf(&capdir, "%s/out", r.dir) < 0 ||
        (mkdir(capdir, 0755) != 0 && errno != EEXIST)) {
        snprintf(err, errlen, "cannot create %s/out", r.dir);
        goto out;
    }
    nullfd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    struct velo_job_opts jo = {0};
    jo.filename = o->sql_path;
    jo.stdout_format = VELO_FORMAT_JSON;
    jo.stdout_fd = nullfd >= 0 ? nullfd : 1;
    jo.progress_fd = -1;
    jo.plugins = o->plugins;
    jo.rebind = rb;
    jo.nrebind = r.nsrc;
    jo.capture_dir = capdir;
    struct velo_textbuf full = {0};
    velo_textbuf_add(&full, "%s\n", r.sql);
    for (size_t i = 0; r.uncaptured != NULL && i < r.nstatements; i++) {
        if (r.uncaptured[i]) {
            velo_textbuf_add(&full, "SELECT * FROM %s;\n", r.targets[i]);
        }
    }
    job =
        full.p != NULL ? velo_job_prepare(full.p, full.len, &jo, &diags) : NULL;
    velo_textbuf_free(&full);
    if (job != NULL) {
        ann = velo_obs_annotations_load(r.sql, r.sql_len, velo_job_plan(job),
                                        NULL, &diags);
    }
    if (job == NULL || diags.errors > 0) {
        char *text = velo_sql_diags_format(&diags, o->sql_path);
        snprintf(err, errlen, "%s", text != NULL ? text : "cannot prepare");
        free(text);
        goto out;
    }
    metrics = velo_metrics_create();
    const char *base = strrchr(o->sql_path, '/');
    char qname[256];
    snprintf(qname, sizeof(qname), "%s", base != NULL ? base + 1 : o->sql_path);
    char *dot = strrchr(qname, '.');
    if (dot != NULL && dot != qname) {
        *dot = '\0';
    }
    if (metrics != NULL) {
        jm = velo_obs_job_metrics_create(metrics, qname, job, ann, 0);
    }
    int run_rc = velo_job_run(job, NULL);
    fill_stats(&ctx.stats, job);
    if (jm != NULL) {
        velo_obs_job_metrics_refresh(jm);
        size_t len;
        ctx.stats.metrics_text = velo_metrics_render(metrics, &len);
    }
    if (run_rc != VELO_OK) {
        snprintf(err, errlen,
                 "the query failed while running; the reason "
                 "is logged above");
        goto out;
    }
    /* Outputs, by statement. */
    const struct velo_plan *plan = velo_job_plan(job);
    ctx.outputs = calloc(r.nstatements + 1, sizeof(*ctx.outputs));
    size_t nselect = 0, nuser_select = 0, nextra = 0;
    for (size_t i = 0; i < r.nstatements && i < plan->nstatements; i++) {
        nuser_select += plan->statements[i].target == NULL ||
                        strcasecmp(plan->statements[i].kind, "SELECT") == 0;
    }
    for (size_t i = 0;
         ctx.outputs != NULL && i < r.nstatements && i < plan->nstatements;
         i++) {
        const struct velo_plan_statement *ps = &plan->statements[i];
        struct velo_tk_output *out = &ctx.outputs[ctx.noutputs++];
        const char *file;
        char nm[64];
        if (ps->target == NULL || strcasecmp(ps->kind, "SELECT") == 0) {
            snprintf(nm, sizeof(nm), "select-%zu", ++nselect);
            out->name = strdup(nm);
            file = nm;
        } else {
            out->name = strdup(ps->target);
            file = out->name;
            if (r.uncaptured != NULL && r.uncaptured[i]) {
                /* read back by an appended SELECT * */
                snprintf(nm, sizeof(nm), "select-%zu", nuser_select + ++nextra);
                file = nm;
            }
        }
        if (asprintf(&out->path, "%s/%s.jsonl", capdir, out->name) < 0) {
            out->path = NULL;
        }
        if (file != out->name && out->path != NULL) {
            /* Keep the layout <target>.jsonl for --keep-data. */
            char from[4200];
            snprintf(from, sizeof(from), "%s/%s.jsonl", capdir, file);
            if (rename(from, out->path) != 0 && errno != ENOENT) {
                free(out->path);
                out->path = strdup(from);
            }
        }
        out->sql = statement_text(
            r.sql, ps->line,
            i + 1 < r.nstatements ? plan->statements[i + 1].line : 0);
        json_t *raw = load_jsonl(out->path != NULL ? out->path : "");
        out->rows = materialize(raw, out->sql != NULL ? out->sql : "");
        char *state = NULL;
        if (out->rows != raw && out->path != NULL &&
            asprintf(&state, "%s/%s.state.jsonl", capdir, out->name) > 0) {
            /* SQL over the output (aggregate_check) sees the state too. */
            FILE *sf = fopen(state, "w");
            size_t k;
            json_t *row;
            json_array_foreach(out->rows, k, row)
            {
                if (sf != NULL) {
                    json_dumpf(row, sf, JSON_COMPACT | JSON_PRESERVE_ORDER);
                    fputc('\n', sf);
                }
            }
            if (sf != NULL && fclose(sf) == 0) {
                free(out->path);
                out->path = state;
                state = NULL;
            }
            free(state);
        }
        out->emit = ps->emit;
    }
    rep->elapsed_s = ctx.stats.elapsed_s;
    rep->records_in = ctx.stats.records_in;
    rep->records_out = ctx.stats.records_out;
    rep->peak_rss = ctx.stats.peak_rss;
    /* Assertions. */
    rc = 0;
    if (r.spec != NULL) {
        for (size_t q = 0; q < r.spec->nqueries && rc == 0; q++) {
            const struct velo_tk_query *tq = &r.spec->queries[q];
            const struct velo_tk_output *out =
                velo_tk_ctx_output(&ctx, tq->name);
            if (out == NULL) {
                struct velo_textbuf names = {0};
                for (size_t i = 0; i < ctx.noutputs; i++) {
                    velo_textbuf_add(&names, "%s%s", i ? ", " : "",
                                     ctx.outputs[i].name);
                }
                snprintf(err, errlen,
                         "the spec names output '%s', but the query's "
                         "outputs are: %s",
                         tq->name, names.p != NULL ? names.p : "(none)");
                velo_textbuf_free(&names);
                rc = 2;
                break;
            }
            for (size_t a = 0; a < tq->nasserts; a++) {
                velo_tk_check(&ctx, rep, out, &tq->asserts[a]);
            }
        }
    } else {
        for (size_t i = 0; i < ctx.noutputs; i++) {
            char *keys[16];
            size_t nk = group_keys(ctx.outputs[i].sql, keys, 16);
            velo_tk_check_defaults(&ctx, rep, &ctx.outputs[i],
                                   (const char *const *)keys, nk,
                                   DEFAULT_MAX_S);
            for (size_t k = 0; k < nk; k++) {
                free(keys[k]);
            }
        }
    }
    if (rc == 0) {
        velo_tk_analyse(&ctx, rep);
        if (velo_tk_report_failed(rep) > 0 && o->explainer.explain != NULL) {
            char *js = velo_tk_report_json(rep);
            rep->explanation =
                js != NULL ? o->explainer.explain(o->explainer.arg, js) : NULL;
            free(js);
        }
    }
out:
    if (jm != NULL) {
        velo_obs_job_metrics_destroy(jm);
    }
    velo_metrics_destroy(metrics);
    velo_obs_annotations_free(ann);
    velo_job_destroy(job);
    velo_sql_diags_free(&diags);
    if (nullfd >= 0) {
        close(nullfd);
    }
    for (size_t i = 0; ctx.outputs != NULL && i < ctx.noutputs; i++) {
        free(ctx.outputs[i].name);
        free(ctx.outputs[i].path);
        free(ctx.outputs[i].sql);
        json_decref(ctx.outputs[i].rows);
    }
    free(ctx.outputs);
    for (size_t i = 0; i < ctx.nsources; i++) {
        json_decref(ctx.sources[i].rows);
    }
    free(ctx.sources);
    free(ctx.stats.metrics_text);
    for (size_t i = 0; uris != NULL && i < r.nsrc; i++) {
        free(uris[i]);
    }
    free(uris);
    free(rb);
    free(capdir);
    velo_tk_pools_free(pools);
    runner_free(&r);
    return rc;
}
