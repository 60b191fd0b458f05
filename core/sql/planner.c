/*
 * The planner: statements -> sources, sinks and a push-based operator DAG.
 *
 * Every statement reads one input: an external source (a name configured
 * with '<name>.type' properties, a declared stream, a URI, or a bare
 * connector word like stdin) or the output of an earlier statement, read
 * by name through that statement's target (a Tee for a stream, the Table
 * operator for a table). Its shape:
 *
 *   input -> [Filter WHERE] -> [Aggregate -> [Filter HAVING]] -> Project
 *         -> [Sort | Limit] -> target (stdout sink, Tee, Table)
 *
 * Every problem is reported and planning goes on with the next statement,
 * so one run lists every error; the plan is only returned without errors.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "connectors/lookup.h"
#include "sql/bind.h"

#define FNV_OFFSET UINT64_C(0xcbf29ce484222325)
#define FNV_PRIME UINT64_C(0x100000001b3)

enum cat_kind { CAT_SOURCE = 1, CAT_STREAM, CAT_TABLE };

/* A name later statements can read (or INSERT INTO). */
struct cat_entry {
    char *name;
    int kind;
    size_t source;       /* CAT_SOURCE: index into the plan's sources */
    struct velo_op *out; /* readers connect here */
    struct velo_op *in;  /* INSERT INTO pushes here */
    const struct velo_schema *schema;
    int bounded;
    int changelog;
    struct sql_pos pos;
    int line;
    int readers;
    int has_sink;
    int failed; /* its statement had errors: do not report again */
    /* A declared source: the properties of its CREATE STREAM, for the
     * event time and watermark settings its readers apply. */
    const struct ast_prop *decl_props;
    size_t ndecl_props;
    /* The external sources this stream or table is computed from
     * (indexes into the plan's sources), for preloading a join's table. */
    size_t *srcs;
    size_t nsrcs;
    int cte; /* a WITH name: visible in its statement only */
    /* The out-of-orderness its inputs allow, for windows downstream. */
    int64_t ooo_us;
};

/* ROW_NUMBER() filtered by an outer query: Top-N or deduplication. */
struct topn_req {
    const char *alias; /* the ROW_NUMBER column's name in the subquery */
    int64_t n;         /* rn <= n */
    int emit;          /* the outer query's EMIT, or -1 */
    int consumed;      /* the subquery built the operator */
};

struct planner {
    const struct velo_plan_env *env;
    const struct sql_text *t;
    struct velo_sql_diags *diags;
    struct plan_impl *plan;
    struct cat_entry *cat;
    size_t ncat, cap_cat;
    size_t stmt; /* index of the current plan statement */
    struct sql_buf canon;
    /* External sources read so far (with repeats), so a join knows which
     * sources feed its table side. */
    size_t *touched;
    size_t ntouched, cap_touched;
    struct topn_req *topn; /* for the next subquery planned */
    int nested; /* planning a subquery, WITH query or IN (SELECT ...) */
};

/* One statement's WITH properties ('<name>.<property>'). */
struct stmt_props {
    const struct ast_prop *p;
    size_t n;
};

/* The input of a query. */
struct input {
    struct velo_op *op;
    const struct velo_schema *schema;
    uint8_t *needed;
    int bounded;
    int changelog; /* a table, or an EMIT CHANGES stream */
    const char *qual;
    const char *alias;
    const struct cat_entry *cat;
    /* A join: its relations (malloc'd; NULL for one relation). */
    struct bind_rel *rels;
    size_t nrels;
    int windowed; /* a window join: _window_start, _window_end first */
    int64_t ooo_us; /* the allowed out-of-orderness of its sources */
    /* A lookup table ('<name>.lookup'='true'): read by key, no op. */
    struct lookup_rel *lookup;
};

struct lookup_rel {
    const struct velo_connector_ref *conn;
    const char *name;
    struct velo_property *props; /* pool */
    size_t nprops;
    size_t cache_entries;
    int64_t cache_ttl_us;
    struct sql_pos pos;
};

static void input_free(struct input *in)
{
    free(in->rels);
    in->rels = NULL;
    in->nrels = 0;
}

/* What a planned query hands its statement. */
struct query_out {
    struct velo_op *op;
    const struct velo_schema *schema;
    int bounded;
    int emit;      /* -1 without aggregation */
    int changelog; /* rows carry INSERT/UPDATE marks */
    int *key_cols; /* GROUP BY keys in the output (-1: not there) */
    int64_t ooo_us; /* the allowed out-of-orderness of its inputs */
    char **key_names;
    size_t nkeys;
};

static void query_out_free(struct query_out *q)
{
    for (size_t i = 0; i < q->nkeys; i++) {
        free(q->key_names[i]);
    }
    free(q->key_names);
    free(q->key_cols);
    memset(q, 0, sizeof(*q));
}

/* ---- Plumbing ----------------------------------------------------------- */

static void perr(struct planner *pl, struct sql_pos pos, const char *code,
                 const char *hint, const char *fmt, ...) VELO_PRINTF(5, 6);
static void perr(struct planner *pl, struct sql_pos pos, const char *code,
                 const char *hint, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sql_diag(pl->diags, pl->t, pos, SQL_ERROR, code, hint, "%s", msg);
}

static void oom(struct planner *pl, struct sql_pos pos)
{
    perr(pl, pos, "V5098", NULL, "out of memory");
}

static char *pstr(struct planner *pl, const char *s)
{
    return s != NULL ? sql_pool_strdup(pl->plan->pool, s) : NULL;
}

static int line_of(const struct planner *pl, struct sql_pos pos)
{
    int line, col;
    sql_text_linecol(pl->t, pos.off, &line, &col);
    return line;
}

static struct velo_op *add_op(struct planner *pl, struct velo_op *op,
                              const char *what, struct sql_pos pos)
{
    struct velo_plan *p = &pl->plan->pub;
    if (op == NULL) {
        int e = errno;
        char hint[200];
        snprintf(hint, sizeof(hint), "%s (errno %d)", strerror(e), e);
        perr(pl, pos, "V5099", hint, "internal error: cannot build the %s "
                                     "operator",
             what);
        return NULL;
    }
    if (sql_pool_grow(pl->plan->pool, (void **)&p->ops, &pl->plan->cap_ops,
                      p->nops, sizeof(*p->ops)) != VELO_OK) {
        velo_op_destroy(op);
        oom(pl, pos);
        return NULL;
    }
    p->ops[p->nops++] = op;
    return op;
}

static int connect_ops(struct planner *pl, struct velo_op *from,
                       struct velo_op *to, struct sql_pos pos)
{
    if (velo_op_connect(from, to) != VELO_OK) {
        perr(pl, pos, "V5027",
             "read it through a stream: CREATE STREAM copy AS SELECT * "
             "FROM it, and let some statements read the copy",
             "more than %d statements read one source or stream",
             VELO_OP_MAX_CHILDREN);
        return VELO_ERR;
    }
    return VELO_OK;
}

static struct plan_stmt_nodes *cur_nodes(struct planner *pl)
{
    return &pl->plan->nodes[pl->stmt];
}

static void add_node(struct planner *pl, int kind, struct velo_op *op,
                     const char *label, const char *detail,
                     const char *emits, size_t index,
                     const struct velo_schema *schema)
{
    struct plan_stmt_nodes *sn = cur_nodes(pl);
    if (sql_pool_grow(pl->plan->pool, (void **)&sn->nodes, &sn->cap, sn->n,
                      sizeof(*sn->nodes)) != VELO_OK) {
        return; /* explain loses a line; planning is unaffected */
    }
    struct plan_node *n = &sn->nodes[sn->n++];
    n->kind = kind;
    n->op = op;
    n->label = pstr(pl, label);
    n->detail = pstr(pl, detail);
    n->emits = pstr(pl, emits);
    n->index = index;
    n->schema = schema;
}

/* Index of the statement's last node so far (SIZE_MAX: none). */
static size_t last_node(struct planner *pl)
{
    size_t n = cur_nodes(pl)->n;
    return n > 0 ? n - 1 : SIZE_MAX;
}

/* Give the last node added its inputs (explain draws the branches). */
static void set_inputs(struct planner *pl, const size_t *in, size_t n)
{
    struct plan_stmt_nodes *sn = cur_nodes(pl);
    if (sn->n == 0) {
        return;
    }
    size_t *c = sql_pool_alloc(pl->plan->pool, (n ? n : 1) * sizeof(*c));
    if (c == NULL) {
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] != SIZE_MAX) {
            c[k++] = in[i];
        }
    }
    sn->nodes[sn->n - 1].inputs = c;
    sn->nodes[sn->n - 1].ninputs = k;
}

static struct cat_entry *cat_find(struct planner *pl, const char *name)
{
    for (size_t i = 0; i < pl->ncat; i++) {
        if (strcasecmp(pl->cat[i].name, name) == 0) {
            return &pl->cat[i];
        }
    }
    return NULL;
}

static struct cat_entry *cat_add(struct planner *pl, const char *name,
                                 int kind, struct sql_pos pos)
{
    if (pl->ncat == pl->cap_cat) {
        size_t cap = pl->cap_cat ? pl->cap_cat * 2 : 8;
        struct cat_entry *n = realloc(pl->cat, cap * sizeof(*n));
        if (n == NULL) {
            oom(pl, pos);
            return NULL;
        }
        pl->cat = n;
        pl->cap_cat = cap;
    }
    struct cat_entry *c = &pl->cat[pl->ncat++];
    memset(c, 0, sizeof(*c));
    c->name = pstr(pl, name);
    c->kind = kind;
    c->pos = pos;
    c->line = line_of(pl, pos);
    return c;
}

/* Did-you-mean over the catalog's names. */
static const char *suggest_name(struct planner *pl, const char *name)
{
    const char **c = calloc(pl->ncat + 1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < pl->ncat; i++) {
        c[i] = pl->cat[i].name;
    }
    const char *s = sql_suggest(name, c, pl->ncat);
    free(c);
    return s;
}

static void canon_schema(struct sql_buf *o, const struct velo_schema *s)
{
    char tb[40];
    sql_buf_add(o, "[", 1);
    for (size_t i = 0; s != NULL && i < s->n; i++) {
        sql_buf_printf(o, "%s%s %s%s%s", i ? "," : "", s->fields[i].name,
                       type_name(s->fields[i].type, tb, sizeof(tb)),
                       s->fields[i].nullable ? "" : " NOT NULL",
                       s->fields[i].hidden ? " HIDDEN" : "");
    }
    sql_buf_add(o, "]", 1);
}

/* ---- Properties --------------------------------------------------------- */

static const char *const engine_keys[] = {
    "type",       "format",   "csv.delimiter",    "csv.quote",
    "csv.header", "csv.null", "record.max_bytes", "schema", "key.format",
    /* Event time and watermarks (read by the queries of a source) and a
     * job's late-data policy (read by its aggregation). */
    "event.time.field", "event.time.format",
    "watermark.max_out_of_orderness", "watermark.idle_timeout",
    "late.data.strategy", "state.ttl", "window.grace",
    /* A join's right side read by key through the connector. */
    "lookup", "lookup.cache.entries", "lookup.cache.ttl",
    /* The application's dead-letter file (any statement may name it). */
    "dlq.path"};
#define N_ENGINE_KEYS (sizeof(engine_keys) / sizeof(*engine_keys))

static int is_engine_key(const char *k)
{
    for (size_t i = 0; i < N_ENGINE_KEYS; i++) {
        if (strcasecmp(engine_keys[i], k) == 0) {
            return 1;
        }
    }
    return 0;
}

static const char *prop_suffix(const struct ast_prop *p)
{
    const char *dot = strchr(p->key, '.');
    return dot != NULL ? dot + 1 : p->key;
}

static int prop_is_for(const struct ast_prop *p, const char *name)
{
    const char *dot = strchr(p->key, '.');
    if (name == NULL || dot == NULL) {
        return 0;
    }
    size_t n = (size_t)(dot - p->key);
    return strlen(name) == n && strncasecmp(p->key, name, n) == 0;
}

/* Check every key names something of this statement. */
static int check_prop_names(struct planner *pl, const struct ast_stmt *st,
                            const char *const *names, size_t nnames)
{
    int ok = 1;
    for (size_t i = 0; i < st->nprops; i++) {
        const struct ast_prop *p = &st->props[i];
        const char *dot = strchr(p->key, '.');
        if (dot == NULL || dot == p->key || dot[1] == '\0') {
            char hint[300];
            snprintf(hint, sizeof(hint),
                     "prefix the property with the name it configures, "
                     "e.g. '%s.%s'",
                     nnames > 0 && names[0] ? names[0] : "trades",
                     dot == NULL ? p->key : "path");
            perr(pl, p->key_pos, "V6001", hint,
                 "property '%s' does not name a source or sink", p->key);
            ok = 0;
            continue;
        }
        int found = 0;
        for (size_t k = 0; k < nnames; k++) {
            found |= prop_is_for(p, names[k]);
        }
        if (!found) {
            char prefix[SQL_MAX_IDENT + 1];
            size_t n = (size_t)(dot - p->key);
            snprintf(prefix, sizeof(prefix), "%.*s",
                     (int)(n > SQL_MAX_IDENT ? SQL_MAX_IDENT : n), p->key);
            const char *sug = sql_suggest(prefix, names, nnames);
            struct sql_buf hint = {0};
            if (sug != NULL) {
                sql_buf_printf(&hint, "did you mean '%s.%s'?", sug, dot + 1);
            } else {
                sql_buf_puts(&hint, "properties here can configure: ");
                size_t shown = 0;
                for (size_t k = 0; k < nnames; k++) {
                    if (names[k] != NULL) {
                        sql_buf_printf(&hint, "%s%s", shown++ ? ", " : "",
                                       names[k]);
                    }
                }
            }
            perr(pl, p->key_pos, "V3007", hint.data,
                 "property '%s' is for '%s', which is not a source or sink "
                 "of this statement",
                 p->key, prefix);
            sql_buf_free(&hint);
            ok = 0;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcasecmp(st->props[j].key, p->key) == 0) {
                char hint[120];
                snprintf(hint, sizeof(hint), "it was first set on line %d",
                         line_of(pl, st->props[j].key_pos));
                perr(pl, p->key_pos, "V6007", hint,
                     "property '%s' is set twice", p->key);
                ok = 0;
                break;
            }
        }
    }
    return ok;
}

static const struct ast_prop *find_prop(const struct stmt_props *sp,
                                        const char *name, const char *key)
{
    for (size_t i = 0; i < sp->n; i++) {
        if (prop_is_for(&sp->p[i], name) &&
            strcasecmp(prop_suffix(&sp->p[i]), key) == 0) {
            return &sp->p[i];
        }
    }
    return NULL;
}

static size_t count_props(const struct stmt_props *sp, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < sp->n; i++) {
        n += prop_is_for(&sp->p[i], name);
    }
    return n;
}

static int format_from_extension(const char *path, char *delim)
{
    if (path == NULL) {
        return -1;
    }
    size_t n = strlen(path);
    /* Drop a query string (kafka://...?x=y does not name a format). */
    const char *q = strchr(path, '?');
    if (q != NULL) {
        n = (size_t)(q - path);
    }
    static const struct {
        const char *ext;
        int kind;
        char delim;
    } exts[] = {{".csv", VELO_FORMAT_CSV, ','},
                {".tsv", VELO_FORMAT_CSV, '\t'},
                {".json", VELO_FORMAT_JSON, 0},
                {".jsonl", VELO_FORMAT_JSON, 0},
                {".ndjson", VELO_FORMAT_JSON, 0}};
    for (size_t i = 0; i < sizeof(exts) / sizeof(*exts); i++) {
        size_t el = strlen(exts[i].ext);
        if (n >= el && strncasecmp(path + n - el, exts[i].ext, el) == 0) {
            *delim = exts[i].delim;
            return exts[i].kind;
        }
    }
    return -1;
}

static int one_char(const char *v, char *out)
{
    if (strcmp(v, "\\t") == 0 || strcasecmp(v, "tab") == 0) {
        *out = '\t';
        return VELO_OK;
    }
    if (strlen(v) == 1) {
        *out = v[0];
        return VELO_OK;
    }
    return VELO_ERR;
}

/*
 * The engine's properties of one source or sink (format and its options,
 * schema) into fmt; the rest become the connector's property list.
 * `hint_path` names the file (URI rest or the connector's path) for the
 * format default. @return VELO_OK or VELO_ERR (reported).
 */
static int apply_props(struct planner *pl, const struct stmt_props *sp,
                       const char *name, const char *hint_path,
                       struct velo_format_opts *fmt,
                       struct velo_property **cprops, size_t *ncprops,
                       const struct ast_prop ***cast_props,
                       const struct ast_prop **schema_prop)
{
    int ok = 1;
    char delim = 0;
    const struct ast_prop *fp = find_prop(sp, name, "format");
    const struct ast_prop *pathp = find_prop(sp, name, "path");
    int kind = -1;
    if (fp != NULL) {
        kind = velo_format_parse(fp->value);
        if (kind < 0 || kind == VELO_FORMAT_TABLE) {
            const char *cands[] = {"csv", "json", "jsonl", "raw"};
            const char *sug = sql_suggest(fp->value, cands, 4);
            char hint[160];
            snprintf(hint, sizeof(hint), "%s%s%sformats are csv, json "
                                         "(JSON Lines) and raw",
                     sug ? "did you mean '" : "", sug ? sug : "",
                     sug ? "'? " : "");
            perr(pl, fp->value_pos, "V6005", hint,
                 "unknown format '%s' in '%s'", fp->value, fp->key);
            ok = 0;
            kind = VELO_FORMAT_JSON;
        }
    } else {
        kind = format_from_extension(pathp != NULL ? pathp->value : hint_path,
                                     &delim);
        if (kind < 0) {
            kind = VELO_FORMAT_JSON;
        }
    }
    velo_format_opts_default(fmt, kind);
    if (delim != 0 && kind == VELO_FORMAT_CSV) {
        fmt->delimiter = delim;
    }
    *schema_prop = NULL;
    size_t n = count_props(sp, name);
    *cprops = sql_pool_alloc(pl->plan->pool, (n + 1) * sizeof(**cprops));
    *cast_props = calloc(n + 1, sizeof(**cast_props));
    *ncprops = 0;
    if (*cprops == NULL || *cast_props == NULL) {
        free(*cast_props);
        *cast_props = NULL;
        oom(pl, sp->n ? sp->p[0].key_pos : (struct sql_pos){0, 0});
        return VELO_ERR;
    }
    for (size_t i = 0; i < sp->n; i++) {
        const struct ast_prop *p = &sp->p[i];
        if (!prop_is_for(p, name)) {
            continue;
        }
        const char *k = prop_suffix(p);
        if (!is_engine_key(k)) {
            struct velo_property *cp = &(*cprops)[*ncprops];
            cp->key = pstr(pl, k);
            cp->value = pstr(pl, p->value);
            (*cast_props)[(*ncprops)++] = p;
            continue;
        }
        int csv_key = strncasecmp(k, "csv.", 4) == 0;
        if (csv_key && kind != VELO_FORMAT_CSV && ok) {
            char hint[200];
            snprintf(hint, sizeof(hint),
                     "set '%s.format'='csv', or remove it", name);
            sql_diag(pl->diags, pl->t, p->key_pos, SQL_WARNING, "V6011",
                     hint, "'%s' has no effect: the format is not csv",
                     p->key);
            continue;
        }
        if (strcasecmp(k, "csv.delimiter") == 0 ||
            strcasecmp(k, "csv.quote") == 0) {
            char c;
            if (one_char(p->value, &c) != VELO_OK) {
                perr(pl, p->value_pos, "V6005",
                     "write one character, e.g. ';' or '\\t' for a tab",
                     "'%s' must be one character, not '%s'", p->key,
                     p->value);
                ok = 0;
            } else if (strcasecmp(k, "csv.delimiter") == 0) {
                fmt->delimiter = c;
            } else {
                fmt->quote = c;
            }
        } else if (strcasecmp(k, "csv.header") == 0) {
            int v;
            if (velo_parse_bool(p->value, &v) != VELO_OK) {
                perr(pl, p->value_pos, "V6005", "write 'true' or 'false'",
                     "'%s' must be true or false, not '%s'", p->key,
                     p->value);
                ok = 0;
            } else {
                fmt->header = v;
            }
        } else if (strcasecmp(k, "csv.null") == 0) {
            fmt->null_text = pstr(pl, p->value);
        } else if (strcasecmp(k, "record.max_bytes") == 0) {
            int64_t v;
            if (velo_parse_size(p->value, &v) != VELO_OK || v < 16 ||
                v > (int64_t)1 << 30) {
                perr(pl, p->value_pos, "V6005",
                     "write a size from 16 bytes to 1GiB, e.g. '4MiB'",
                     "'%s' must be a size, not '%s'", p->key, p->value);
                ok = 0;
            } else {
                fmt->max_record_bytes = (size_t)v;
            }
        } else if (strcasecmp(k, "key.format") == 0) {
            int kf = velo_key_format_parse(p->value);
            if (kf < 0) {
                perr(pl, p->value_pos, "V6005",
                     "write text, json, long, int or double",
                     "'%s' is not a key format: '%s'", p->key, p->value);
                ok = 0;
            } else {
                fmt->key_format = kf;
            }
        } else if (strcasecmp(k, "schema") == 0) {
            *schema_prop = p;
        }
    }
    return ok ? VELO_OK : VELO_ERR;
}

/* Validate the connector's properties through its config map. */
static int check_connector(struct planner *pl,
                           const struct velo_connector_ref *ref,
                           const char *name, const struct velo_property *cp,
                           size_t n, const struct ast_prop *const *asts,
                           struct sql_pos where)
{
    void *cfg = NULL;
    const char *bad = NULL;
    char err[512] = "";
    if (velo_connector_config_fill(ref, cp, n, NULL, &cfg, &bad, err,
                                   sizeof(err)) == VELO_OK) {
        velo_connector_config_free(ref, cfg);
        return VELO_OK;
    }
    const struct ast_prop *ap = NULL;
    for (size_t i = 0; bad != NULL && i < n; i++) {
        if (cp[i].key == bad) {
            ap = asts[i];
        }
    }
    if (ap == NULL) {
        perr(pl, where, "V6004", NULL, "%s: %s", name, err);
        return VELO_ERR;
    }
    int declared = 0;
    size_t nmap = 0;
    for (const struct velo_config_map *m = ref->config_map;
         m != NULL && m->type != VELO_CONFIG_END; m++) {
        nmap++;
        declared |= strcasecmp(m->name, bad) == 0;
    }
    if (!declared) {
        const char **cands = calloc(nmap + N_ENGINE_KEYS + 1, sizeof(*cands));
        size_t nc = 0;
        for (size_t i = 0; cands != NULL && i < nmap; i++) {
            cands[nc++] = ref->config_map[i].name;
        }
        for (size_t i = 0; cands != NULL && i < N_ENGINE_KEYS; i++) {
            cands[nc++] = engine_keys[i];
        }
        const char *sug = cands ? sql_suggest(bad, cands, nc) : NULL;
        struct sql_buf hint = {0};
        if (sug != NULL) {
            sql_buf_printf(&hint, "did you mean '%s.%s'?", name, sug);
        } else {
            sql_buf_printf(&hint, "the %s connector takes: ", ref->name);
            for (size_t i = 0; i < nmap; i++) {
                sql_buf_printf(&hint, "%s%s", i ? ", " : "",
                               ref->config_map[i].name);
            }
            sql_buf_puts(&hint, nmap ? "; and the engine: " : "the engine "
                                                               "takes: ");
            for (size_t i = 0; i < N_ENGINE_KEYS; i++) {
                sql_buf_printf(&hint, "%s%s", i ? ", " : "", engine_keys[i]);
            }
        }
        free(cands);
        perr(pl, ap->key_pos, "V3004", hint.data,
             "unknown property '%s' for the %s connector", ap->key,
             ref->name);
        sql_buf_free(&hint);
        return VELO_ERR;
    }
    perr(pl, ap->value_pos, "V6004", NULL, "invalid value for '%s': %s",
         ap->key, err);
    return VELO_ERR;
}

/* ---- Schemas ------------------------------------------------------------ */

/* The hidden columns of message sources (Kafka, Redis, CDC). */
static const struct {
    const char *name;
    int type;
} record_meta_cols[] = {
    {VELO_COL_KEY, VELO_TYPE_STRING},
    {VELO_COL_PARTITION, VELO_TYPE_INTEGER},
    {VELO_COL_OFFSET, VELO_TYPE_BIGINT},
    {VELO_COL_HEADERS, VELO_TYPE_JSON},
};
#define N_RECORD_META (sizeof(record_meta_cols) / sizeof(*record_meta_cols))

static int is_system_column(const char *name)
{
    for (size_t i = 0; i < N_RECORD_META; i++) {
        if (strcasecmp(name, record_meta_cols[i].name) == 0) {
            return 1;
        }
    }
    return strcasecmp(name, VELO_COL_TIMESTAMP) == 0 ||
           strcasecmp(name, VELO_COL_WINDOW_START) == 0 ||
           strcasecmp(name, VELO_COL_WINDOW_END) == 0;
}

/* Append the message columns a record source fills from its meta. */
static struct velo_schema *with_record_meta(struct velo_schema *s)
{
    if (s == NULL || velo_schema_find(s, VELO_COL_KEY) >= 0) {
        return s;
    }
    struct velo_schema *n = velo_schema_create(s->n + N_RECORD_META);
    if (n == NULL) {
        velo_schema_destroy(s);
        return NULL;
    }
    int ok = 1;
    for (size_t i = 0; i < s->n; i++) {
        ok &= velo_schema_set(n, i, s->fields[i].name, s->fields[i].type,
                              s->fields[i].nullable,
                              s->fields[i].hidden) == VELO_OK;
    }
    for (size_t i = 0; i < N_RECORD_META; i++) {
        ok &= velo_schema_set(n, s->n + i, record_meta_cols[i].name,
                              velo_type_of(record_meta_cols[i].type), 1,
                              1) == VELO_OK;
    }
    velo_schema_destroy(s);
    if (!ok) {
        velo_schema_destroy(n);
        return NULL;
    }
    return n;
}

/* Append a hidden "_timestamp" when the schema lacks one. */
static struct velo_schema *with_timestamp(struct velo_schema *s)
{
    if (velo_schema_find(s, VELO_COL_TIMESTAMP) >= 0) {
        return s;
    }
    struct velo_schema *n = velo_schema_create(s->n + 1);
    if (n == NULL) {
        velo_schema_destroy(s);
        return NULL;
    }
    for (size_t i = 0; i < s->n; i++) {
        if (velo_schema_set(n, i, s->fields[i].name, s->fields[i].type,
                            s->fields[i].nullable,
                            s->fields[i].hidden) != VELO_OK) {
            velo_schema_destroy(n);
            velo_schema_destroy(s);
            return NULL;
        }
    }
    if (velo_schema_set(n, s->n, VELO_COL_TIMESTAMP,
                        velo_type_of(VELO_TYPE_TIMESTAMP), 0, 1) != VELO_OK) {
        velo_schema_destroy(n);
        n = NULL;
    }
    velo_schema_destroy(s);
    return n;
}

/* A declared column list (from CREATE STREAM or a 'schema' property). */
static struct velo_schema *declared_schema(struct planner *pl,
                                           const struct ast_coldef *cols,
                                           size_t n)
{
    struct binder b = {.env = pl->env, .t = pl->t, .diags = pl->diags};
    struct velo_schema *s = velo_schema_create(n);
    if (s == NULL) {
        oom(pl, n ? cols[0].name.pos : (struct sql_pos){0, 0});
        return NULL;
    }
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        const struct ast_coldef *c = &cols[i];
        if (is_system_column(c->name.name)) {
            perr(pl, c->name.pos, "V3010",
                 "system columns are added by the engine; rename the column",
                 "'%s' is a system column and cannot be declared",
                 c->name.name);
            ok = 0;
            continue;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcasecmp(cols[j].name.name, c->name.name) == 0) {
                perr(pl, c->name.pos, "V3011", "give each column its own "
                                               "name",
                     "column '%s' is declared twice", c->name.name);
                ok = 0;
            }
        }
        struct velo_datatype t;
        if (resolve_type(&b, &c->type, &t) != 0) {
            ok = 0;
            continue;
        }
        if (velo_schema_set(s, i, c->name.name, t, !c->not_null, 0) !=
            VELO_OK) {
            oom(pl, c->name.pos);
            ok = 0;
        }
    }
    if (!ok) {
        velo_schema_destroy(s);
        return NULL;
    }
    return with_timestamp(s);
}

/* 'name.schema'='ts TIMESTAMP, symbol STRING, ...': parsed with the SQL
 * parser as the column list of a declared stream. */
static struct velo_schema *schema_from_prop(struct planner *pl,
                                            const struct ast_prop *p)
{
    struct sql_buf text = {0};
    sql_buf_printf(&text, "CREATE STREAM s (%s) WITH ('s.type'='x')",
                   p->value);
    struct velo_sql_diags d = {0};
    struct velo_sql_program *prog =
        text.data ? velo_sql_parse(text.data, text.len, &d) : NULL;
    struct velo_schema *s = NULL;
    if (prog != NULL && d.errors == 0 && prog->nstmts == 1 &&
        prog->stmts[0]->kind == ST_CREATE_SOURCE) {
        /* Bind against the property's own text for messages. */
        const struct sql_text *saved = pl->t;
        struct velo_sql_diags *saved_d = pl->diags;
        struct velo_sql_diags inner = {0};
        pl->t = &prog->text;
        pl->diags = &inner;
        s = declared_schema(pl, prog->stmts[0]->cols, prog->stmts[0]->ncols);
        pl->t = saved;
        pl->diags = saved_d;
        if (inner.errors > 0) {
            perr(pl, p->value_pos, inner.d[0].code, inner.d[0].hint,
                 "in '%s': %s", p->key, inner.d[0].message);
        }
        velo_sql_diags_free(&inner);
    } else {
        perr(pl, p->value_pos, "V6009",
             "write the columns as in CREATE STREAM: 'ts TIMESTAMP, symbol "
             "STRING, price DECIMAL(10,2)'",
             "cannot read '%s': %s", p->key,
             d.n > 0 && d.d[0].message ? d.d[0].message : "not a column "
                                                          "list");
    }
    velo_sql_diags_free(&d);
    velo_sql_program_free(prog);
    sql_buf_free(&text);
    return s;
}

/* ---- Sources ------------------------------------------------------------ */

/*
 * Add an external source: fill it, ask the caller for its schema and
 * boundedness (a declared schema stays), make its Tee and its catalog
 * entry. @return the entry, or NULL (reported).
 */
static struct cat_entry *make_source(struct planner *pl, const char *name,
                                     const char *uri,
                                     const struct velo_connector_ref *conn,
                                     struct velo_property *props,
                                     size_t nprops,
                                     const struct velo_format_opts *fmt,
                                     struct velo_schema *declared,
                                     struct sql_pos pos)
{
    struct velo_plan *p = &pl->plan->pub;
    if (sql_pool_grow(pl->plan->pool, (void **)&p->sources,
                      &pl->plan->cap_sources, p->nsources,
                      sizeof(*p->sources)) != VELO_OK) {
        velo_schema_destroy(declared);
        oom(pl, pos);
        return NULL;
    }
    size_t idx = p->nsources++;
    struct velo_plan_source *src = &p->sources[idx];
    memset(src, 0, sizeof(*src));
    src->name = pstr(pl, name);
    src->uri = pstr(pl, uri);
    src->conn = conn;
    src->props = props;
    src->nprops = nprops;
    src->format = *fmt;
    src->schema = declared;
    sql_text_linecol(pl->t, pos.off, &src->line, &src->col);

    struct velo_schema *got = NULL;
    int bounded = 0;
    if (pl->env->source_schema != NULL) {
        char err[512] = "";
        int rc = pl->env->source_schema(pl->env->arg, src, &got, &bounded,
                                        err, sizeof(err));
        src = &p->sources[idx];
        if (rc != VELO_OK) {
            char hint[300];
            snprintf(hint, sizeof(hint),
                     "check that the source exists and is readable; a "
                     "relative path is relative to the directory velo runs "
                     "in");
            perr(pl, pos, "V6010", hint, "cannot read source '%s': %s",
                 name, err[0] ? err : "the reason is logged above");
            velo_schema_destroy(got);
            return NULL;
        }
    } else if (declared == NULL) {
        perr(pl, pos, "V6010",
             "declare its columns: CREATE STREAM name (col TYPE, ...) WITH "
             "(...)",
             "cannot infer the schema of source '%s'", name);
        return NULL;
    }
    if (src->schema != NULL) {
        velo_schema_destroy(got); /* declared wins */
    } else if (got == NULL) {
        perr(pl, pos, "V6010", NULL, "source '%s' has no schema", name);
        return NULL;
    } else {
        src->schema = with_timestamp(got);
        if (src->schema == NULL) {
            oom(pl, pos);
            return NULL;
        }
    }
    if ((conn->vt->flags & VELO_CONNECTOR_RECORD_SOURCE) != 0) {
        src->schema = with_record_meta(src->schema);
        if (src->schema == NULL) {
            oom(pl, pos);
            return NULL;
        }
    }
    src->bounded = bounded;
    src->needed = sql_pool_alloc(pl->plan->pool,
                                 src->schema->n ? src->schema->n : 1);
    if (src->needed == NULL) {
        oom(pl, pos);
        return NULL;
    }
    src->entry = add_op(pl, velo_op_tee(pl->env->exec, src->schema), "Tee",
                        pos);
    if (src->entry == NULL) {
        return NULL;
    }
    struct cat_entry *c = cat_add(pl, name, CAT_SOURCE, pos);
    if (c == NULL) {
        return NULL;
    }
    c->source = idx;
    c->out = src->entry;
    c->schema = src->schema;
    c->bounded = bounded;

    sql_buf_printf(&pl->canon, "SOURCE %s uri=%s conn=%s fmt=%d/%d/%d/%d/"
                               "%s/%zu props=",
                   name, uri ? uri : "", conn->name, fmt->kind,
                   fmt->delimiter, fmt->quote, fmt->header,
                   fmt->null_text ? fmt->null_text : "",
                   fmt->max_record_bytes);
    for (size_t i = 0; i < nprops; i++) {
        sql_buf_printf(&pl->canon, "%s=%s;", props[i].key, props[i].value);
    }
    canon_schema(&pl->canon, src->schema);
    sql_buf_puts(&pl->canon, "\n");
    return c;
}

static void source_label(struct planner *pl, size_t idx, struct sql_buf *o)
{
    const struct velo_plan_source *s = &pl->plan->pub.sources[idx];
    static const char *const kinds[] = {"?", "csv", "json", "raw", "table"};
    int k = s->format.kind >= 1 && s->format.kind <= 4 ? s->format.kind : 0;
    sql_buf_printf(o, "Source %s [%s, %s, %s]", s->name, s->conn->name,
                   kinds[k], s->bounded ? "bounded" : "unbounded");
}

/* Schemes for did-you-mean: the connector types without _source/_sink.
 * Writes every scheme into `all`; the suggestion into out. */
static const char *suggest_scheme(struct planner *pl, const char *scheme,
                                  struct sql_buf *all, char *out,
                                  size_t outlen)
{
    const char *types[64];
    size_t n = velo_connectors_type_names(pl->env->connectors, types, 64);
    char bare[64][64];
    const char *cands[64];
    size_t nc = 0;
    for (size_t i = 0; i < n; i++) {
        const char *us = strrchr(types[i], '_');
        size_t l = us != NULL ? (size_t)(us - types[i]) : strlen(types[i]);
        if (l >= sizeof(bare[0])) {
            continue;
        }
        snprintf(bare[nc], sizeof(bare[nc]), "%.*s", (int)l, types[i]);
        int dup = 0;
        for (size_t k = 0; k < nc; k++) {
            dup |= strcmp(cands[k], bare[nc]) == 0;
        }
        if (dup) {
            continue;
        }
        sql_buf_printf(all, "%s%s", nc ? ", " : "", bare[nc]);
        cands[nc] = bare[nc];
        nc++;
    }
    const char *best = sql_suggest(scheme, cands, nc);
    if (best == NULL) {
        return NULL;
    }
    snprintf(out, outlen, "%s", best);
    return out;
}

/* A source's configuration from its properties: format, the connector's
 * own properties (checked against its config map) and the declared
 * schema ('<name>.schema'), *decl NULL when none. props_for: whose
 * properties (NULL: none); shown: the name in messages. */
struct src_conf {
    struct velo_format_opts fmt;
    struct velo_property *cp;
    size_t ncp;
    struct velo_schema *decl;
    int has_schema;
};

static int configure_source(struct planner *pl, const struct stmt_props *sp,
                            const char *props_for, const char *shown,
                            const char *hint_path,
                            const struct velo_connector_ref *conn,
                            struct sql_pos pos, struct src_conf *out)
{
    const struct ast_prop **casts = NULL;
    const struct ast_prop *schema_p = NULL;
    struct stmt_props none = {0};
    memset(out, 0, sizeof(*out));
    int rc = apply_props(pl, props_for != NULL ? sp : &none, props_for,
                         hint_path, &out->fmt, &out->cp, &out->ncp, &casts,
                         &schema_p);
    if (rc == VELO_OK) {
        rc = check_connector(pl, conn, shown, out->cp, out->ncp, casts, pos);
    }
    free(casts);
    out->has_schema = schema_p != NULL;
    if (rc == VELO_OK && schema_p != NULL) {
        out->decl = schema_from_prop(pl, schema_p);
        rc = out->decl != NULL ? VELO_OK : VELO_ERR;
    }
    return rc;
}

/* The source of a FROM. @return VELO_OK with *in, or VELO_ERR. */
static void touch_source(struct planner *pl, size_t idx)
{
    if (pl->ntouched == pl->cap_touched) {
        size_t cap = pl->cap_touched ? pl->cap_touched * 2 : 16;
        size_t *nt = realloc(pl->touched, cap * sizeof(*nt));
        if (nt == NULL) {
            return; /* preloading is lost, not correctness of planning */
        }
        pl->touched = nt;
        pl->cap_touched = cap;
    }
    pl->touched[pl->ntouched++] = idx;
}

static int resolve_from(struct planner *pl, const struct ast_stmt *st,
                        const struct ast_from *f, struct stmt_props *sp,
                        struct input *in)
{
    memset(in, 0, sizeof(*in));
    in->alias = f->alias.name;
    struct cat_entry *c = NULL;
    struct sql_pos pos = f->name.pos;

    if (f->kind == FROM_URI) {
        char scheme[64];
        const char *rest = NULL;
        if (strstr(f->name.name, "://") == NULL ||
            velo_uri_split(f->name.name, scheme, sizeof(scheme), &rest) !=
                VELO_OK) {
            char hint[300];
            snprintf(hint, sizeof(hint),
                     "name a file as 'file://%s' (relative) or "
                     "'file:///abs/path'",
                     f->name.name);
            perr(pl, pos, "V6003", hint, "'%s' is not a URI", f->name.name);
            return VELO_ERR;
        }
        const struct velo_connector_ref *conn =
            velo_connectors_by_scheme(pl->env->connectors, scheme);
        if (conn == NULL) {
            struct sql_buf all = {0};
            char sugbuf[64];
            const char *sug = suggest_scheme(pl, scheme, &all, sugbuf,
                                             sizeof(sugbuf));
            struct sql_buf hint = {0};
            if (sug != NULL) {
                sql_buf_printf(&hint, "did you mean %s://? ", sug);
            }
            sql_buf_printf(&hint, "the connectors are: %s",
                           all.data ? all.data : "(none)");
            perr(pl, pos, "V6003", hint.data, "unknown URI scheme '%s'",
                 scheme);
            sql_buf_free(&hint);
            sql_buf_free(&all);
            return VELO_ERR;
        }
        if (conn->vt->source_create == NULL) {
            perr(pl, pos, "V6006", "read from a source connector",
                 "the %s connector cannot be read from", conn->name);
            return VELO_ERR;
        }
        c = cat_find(pl, f->name.name);
        if (c != NULL && c->kind == CAT_SOURCE &&
            (f->alias.name == NULL || count_props(sp, f->alias.name) == 0)) {
            /* The same URI again, without properties: share it. */
        } else if (c != NULL) {
            char hint[200];
            snprintf(hint, sizeof(hint),
                     "it is read with its properties from line %d; give "
                     "this one an alias and properties of its own, or "
                     "drop these",
                     c->line);
            perr(pl, pos, "V6012", hint,
                 "source '%s' is configured twice", f->name.name);
            return VELO_ERR;
        } else {
            const char *pname = f->alias.name;
            struct src_conf sc;
            if (configure_source(pl, sp, pname,
                                 pname ? pname : f->name.name, rest, conn,
                                 pos, &sc) != VELO_OK) {
                velo_schema_destroy(sc.decl);
                return VELO_ERR;
            }
            c = make_source(pl, f->name.name, f->name.name, conn, sc.cp,
                            sc.ncp, &sc.fmt, sc.decl, pos);
            if (c == NULL) {
                return VELO_ERR;
            }
        }
    } else {
        const char *name = f->name.name;
        const struct ast_prop *typep = find_prop(sp, name, "type");
        if (typep == NULL && f->alias.name != NULL) {
            typep = find_prop(sp, f->alias.name, "type");
        }
        size_t nmine = count_props(sp, name) +
                       (f->alias.name ? count_props(sp, f->alias.name) : 0);
        c = cat_find(pl, name);
        if (c != NULL) {
            if (c->failed) {
                return VELO_ERR;
            }
            if (nmine > 0) {
                char hint[200];
                snprintf(hint, sizeof(hint),
                         "'%s' is defined on line %d; set its properties "
                         "there",
                         name, c->line);
                for (size_t i = 0; i < sp->n; i++) {
                    if (prop_is_for(&sp->p[i], name) ||
                        prop_is_for(&sp->p[i], f->alias.name)) {
                        perr(pl, sp->p[i].key_pos, "V6012", hint,
                             "'%s' is already defined", name);
                        return VELO_ERR;
                    }
                }
            }
        } else if (typep != NULL) {
            const char *pname = find_prop(sp, name, "type") ? name
                                                             : f->alias.name;
            int is_source = 0;
            const struct velo_connector_ref *conn = velo_connectors_by_type(
                pl->env->connectors, typep->value, &is_source);
            if (conn == NULL) {
                const char *types[64];
                size_t nt = velo_connectors_type_names(pl->env->connectors,
                                                       types, 64);
                const char *sug = sql_suggest(typep->value, types, nt);
                struct sql_buf hint = {0};
                if (sug != NULL) {
                    sql_buf_printf(&hint, "did you mean '%s'?", sug);
                } else {
                    sql_buf_puts(&hint, "the types are: ");
                    for (size_t i = 0; i < nt; i++) {
                        sql_buf_printf(&hint, "%s%s", i ? ", " : "",
                                       types[i]);
                    }
                }
                perr(pl, typep->value_pos, "V6002", hint.data,
                     "unknown connector type '%s'", typep->value);
                sql_buf_free(&hint);
                return VELO_ERR;
            }
            if (!is_source) {
                char hint[200];
                snprintf(hint, sizeof(hint),
                         "'%s' is read here: use '%s_source'", name,
                         conn->name);
                perr(pl, typep->value_pos, "V6006", hint,
                     "'%s' is a sink type, but '%s' is a source",
                     typep->value, name);
                return VELO_ERR;
            }
            struct src_conf sc;
            if (configure_source(pl, sp, pname, pname, NULL, conn, pos,
                                 &sc) != VELO_OK) {
                velo_schema_destroy(sc.decl);
                return VELO_ERR;
            }
            c = make_source(pl, name, NULL, conn, sc.cp, sc.ncp, &sc.fmt,
                            sc.decl, pos);
            if (c == NULL) {
                return VELO_ERR;
            }
            /* Later statements reading it by name apply the same event
             * time and watermark properties. */
            c->decl_props = sp->p;
            c->ndecl_props = sp->n;
        } else {
            /* A connector's own word (stdin): properties configure it. */
            char scheme[64];
            const char *rest = NULL;
            const struct velo_connector_ref *conn = NULL;
            if (velo_uri_split(name, scheme, sizeof(scheme), &rest) ==
                VELO_OK) {
                conn = velo_connectors_by_scheme(pl->env->connectors, scheme);
            }
            if (conn != NULL && conn->vt->source_create != NULL) {
                const char *pname =
                    f->alias.name != NULL &&
                            count_props(sp, f->alias.name) > 0
                        ? f->alias.name
                        : name;
                struct src_conf sc;
                if (configure_source(pl, sp, pname, pname, NULL, conn, pos,
                                     &sc) != VELO_OK) {
                    velo_schema_destroy(sc.decl);
                    return VELO_ERR;
                }
                c = make_source(pl, name, name, conn, sc.cp, sc.ncp, &sc.fmt,
                                sc.decl, pos);
                if (c == NULL) {
                    return VELO_ERR;
                }
                c->decl_props = sp->p;
                c->ndecl_props = sp->n;
            } else if (nmine > 0) {
                const struct ast_prop *first = NULL;
                for (size_t i = 0; i < sp->n && first == NULL; i++) {
                    if (prop_is_for(&sp->p[i], name) ||
                        prop_is_for(&sp->p[i], f->alias.name)) {
                        first = &sp->p[i];
                    }
                }
                char hint[200];
                snprintf(hint, sizeof(hint),
                         "add '%s.type'='file_source' (or another source "
                         "type)",
                         name);
                perr(pl, first->key_pos, "V6008", hint,
                     "source '%s' has properties but no type", name);
                return VELO_ERR;
            } else {
                const char *sug = suggest_name(pl, name);
                char hint[400];
                if (sug != NULL) {
                    snprintf(hint, sizeof(hint), "did you mean '%s'?", sug);
                } else {
                    snprintf(hint, sizeof(hint),
                             "read a file with FROM 'file://data/%s.csv', or "
                             "configure it: WITH ('%s.type'='file_source', "
                             "'%s.path'='...')",
                             name, name, name);
                }
                perr(pl, pos, "V3002", hint, "unknown source or stream '%s'",
                     name);
                return VELO_ERR;
            }
        }
    }
    /* Reading the statement's own target would loop forever. */
    if (st->name.name != NULL && c->kind != CAT_SOURCE &&
        strcasecmp(c->name, st->name.name) == 0) {
        perr(pl, pos, "V5025",
             "read from the inputs of the stream instead",
             "'%s' cannot read from itself", st->name.name);
        return VELO_ERR;
    }
    c->readers++;
    if (c->kind == CAT_SOURCE) {
        touch_source(pl, c->source);
    }
    for (size_t i = 0; i < c->nsrcs; i++) {
        touch_source(pl, c->srcs[i]);
    }
    in->cat = c;
    in->op = c->out;
    in->schema = c->schema;
    in->bounded = c->bounded;
    in->changelog = c->changelog;
    in->qual = c->name;
    if (c->kind == CAT_SOURCE) {
        in->needed = pl->plan->pub.sources[c->source].needed;
        struct sql_buf l = {0};
        source_label(pl, c->source, &l);
        add_node(pl, PN_SOURCE, NULL, l.data, NULL, NULL, c->source,
                 c->schema);
        sql_buf_free(&l);
    } else {
        char l[300];
        snprintf(l, sizeof(l), "%s %s (from line %d)",
                 c->kind == CAT_TABLE ? "Table" : "Stream", c->name,
                 c->line);
        add_node(pl, PN_STREAM, NULL, l, NULL, NULL, 0, c->schema);
    }
    sql_buf_printf(&pl->canon, "FROM %s\n", c->name);
    return VELO_OK;
}

/* ---- Queries ------------------------------------------------------------ */

static char *lower_dup(const char *s)
{
    char *r = strdup(s);
    for (char *c = r; c != NULL && *c; c++) {
        *c = (char)tolower((unsigned char)*c);
    }
    return r;
}

/* The output name of an unaliased select item: a column's own name (a
 * GROUP BY key's for an aggregate query), a function's name, a field's
 * last key, else "expr". */
static char *derive_name(const struct binder *b, const struct ast_expr *e,
                         const struct velo_expr *bound)
{
    if (bound != NULL && bound->kind == VELO_EXPR_COLUMN &&
        bound->u.column >= 0) {
        size_t c = (size_t)bound->u.column;
        if (b->mode == BIND_ROW && c < b->in.schema->n) {
            return strdup(b->in.schema->fields[c].name);
        }
        if (b->mode == BIND_AGG && b->agg != NULL) {
            size_t off = b->agg->windowed ? 2 : 0;
            if (c < off) {
                return strdup(c == 0 ? VELO_COL_WINDOW_START
                                     : VELO_COL_WINDOW_END);
            }
            if (c - off < b->agg->nkeys) {
                return strdup(b->agg->keys[c - off].name);
            }
        }
    }
    switch (e->kind) {
    case AX_NAME:
        return strdup(e->parts[e->nparts - 1].name);
    case AX_FIELD:
        return strdup(e->name);
    case AX_SUBSCRIPT:
        if (e->args[1]->kind == AX_STRING || e->args[1]->kind == AX_INTEGER) {
            return strdup(e->args[1]->text);
        }
        return strdup("expr");
    case AX_CALL:
        return lower_dup(e->name);
    case AX_CAST:
        return derive_name(b, e->args[0], NULL);
    default:
        return strdup("expr");
    }
}

/* Make names unique: a, a_2, a_3 (case-insensitive). */
static int unique_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (int k = 2;; k++) {
            int clash = 0;
            for (size_t j = 0; j < i; j++) {
                clash |= strcasecmp(names[j], names[i]) == 0;
            }
            if (!clash) {
                break;
            }
            const char *base = names[i];
            char *us = strrchr(base, '_');
            size_t bl = strlen(base);
            if (k > 2 && us != NULL) {
                bl = (size_t)(us - base);
            }
            char *nn = malloc(bl + 16);
            if (nn == NULL) {
                return VELO_ERR;
            }
            snprintf(nn, bl + 16, "%.*s_%d", (int)bl, base, k);
            free(names[i]);
            names[i] = nn;
        }
    }
    return VELO_OK;
}

struct proj_col {
    struct velo_expr *expr;
    char *name;
    int hidden;
    char *canon;
    int is_alias; /* named by AS */
};

struct proj {
    struct proj_col *c;
    size_t n, cap;
};

static int proj_add(struct proj *p, struct velo_expr *e, char *name,
                    int hidden, int is_alias)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        struct proj_col *nc = realloc(p->c, cap * sizeof(*nc));
        if (nc == NULL) {
            velo_expr_free(e);
            free(name);
            return VELO_ERR;
        }
        p->c = nc;
        p->cap = cap;
    }
    struct proj_col *c = &p->c[p->n++];
    c->expr = e;
    c->name = name;
    c->hidden = hidden;
    c->is_alias = is_alias;
    c->canon = canon_dup(e);
    return c->name != NULL && c->canon != NULL ? VELO_OK : VELO_ERR;
}

static void proj_free(struct proj *p)
{
    for (size_t i = 0; i < p->n; i++) {
        velo_expr_free(p->c[i].expr);
        free(p->c[i].name);
        free(p->c[i].canon);
    }
    free(p->c);
    memset(p, 0, sizeof(*p));
}

/* Expand * (or t.*) into the visible columns of the input. */
static int expand_star(struct binder *b, const struct ast_expr *e,
                       struct proj *p)
{
    if (e->nparts == 1 && !(b->in.name != NULL &&
                            strcasecmp(b->in.name, e->parts[0].name) == 0) &&
        !(b->in.alias != NULL &&
          strcasecmp(b->in.alias, e->parts[0].name) == 0)) {
        const char *cands[2] = {b->in.name, b->in.alias};
        const char *sug = sql_suggest(e->parts[0].name, cands, 2);
        char hint[200];
        snprintf(hint, sizeof(hint), "%s%s%s", sug ? "did you mean '" : "",
                 sug ? sug : "write the source's name or alias",
                 sug ? ".*'?" : "");
        bind_error(b, e->parts[0].pos, "V3009", hint,
                   "unknown source or alias '%s'", e->parts[0].name);
        return VELO_ERR;
    }
    const struct velo_schema *s = b->in.schema;
    for (size_t i = 0; i < s->n; i++) {
        if (s->fields[i].hidden) {
            continue;
        }
        struct velo_expr *x = bind_column(b, (int)i, e->pos);
        if (x == NULL) {
            return VELO_ERR;
        }
        if (proj_add(p, x, strdup(s->fields[i].name), 0, 0) != VELO_OK) {
            return VELO_ERR;
        }
    }
    return VELO_OK;
}

/* A constant non-negative integer (LIMIT, OFFSET). */
static int const_count(struct planner *pl, struct binder *b,
                       const struct ast_expr *e, const char *what,
                       int64_t *out)
{
    int saved = b->mode;
    const char *saved_no = b->no_agg;
    b->mode = BIND_ROW;
    b->no_agg = what;
    struct velo_expr *x = bind_expr(b, e);
    b->mode = saved;
    b->no_agg = saved_no;
    x = fold_constants(b, x, e->pos);
    if (x == NULL) {
        return VELO_ERR;
    }
    int ok = x->kind == VELO_EXPR_LITERAL && !x->u.literal.is_null &&
             (x->type.id == VELO_TYPE_INTEGER ||
              x->type.id == VELO_TYPE_BIGINT) &&
             x->u.literal.i64 >= 0;
    if (ok) {
        *out = x->u.literal.i64;
    }
    velo_expr_free(x);
    if (!ok) {
        char hint[120];
        snprintf(hint, sizeof(hint), "write a whole number: %s 10", what);
        perr(pl, e->pos, "V4013", hint,
             "%s must be a constant integer of 0 or more", what);
        return VELO_ERR;
    }
    return VELO_OK;
}

/* An interval of a window clause (size, advance, grace) in microseconds;
 * zero is allowed for GRACE only. @return -1 after reporting. */
static int64_t window_interval(struct planner *pl, const struct ast_expr *e,
                               const char *what, int zero_ok)
{
    int64_t us = -1;
    int rc = VELO_ERR;
    if (e->kind == AX_INTERVAL) {
        rc = interval_parse(e->text, e->name, &us);
    } else if (e->kind == AX_DURATION || e->kind == AX_STRING) {
        rc = interval_parse(e->text, NULL, &us);
    }
    if (rc == -2) {
        perr(pl, e->pos, "V5020",
             "months and years have no fixed length; write days",
             "a %s cannot be in months or years", what);
        return -1;
    }
    if (rc != VELO_OK) {
        char hint[120];
        snprintf(hint, sizeof(hint),
                 "write the %s as INTERVAL '5' MINUTE, '5 minutes' or 5m",
                 what);
        perr(pl, e->pos, "V5020", hint, "invalid %s", what);
        return -1;
    }
    if (us < 0 || (us == 0 && !zero_ok)) {
        perr(pl, e->pos, "V5020",
             zero_ok ? "a grace period is 0 or more"
                     : "a window lasts a positive time",
             "%s must be %s", what,
             zero_ok ? "0 or more" : "greater than zero");
        return -1;
    }
    return us;
}

static int64_t window_size(struct planner *pl, const struct ast_expr *e)
{
    return window_interval(pl, e, "window size", 0);
}

/* A property of the query's input: set in this statement on the source's
 * name or alias, or on the CREATE STREAM that declared it. */
static const struct ast_prop *input_prop(const struct stmt_props *sp,
                                         const struct input *in,
                                         const char *key)
{
    const struct ast_prop *p = find_prop(sp, in->qual, key);
    if (p == NULL && in->alias != NULL) {
        p = find_prop(sp, in->alias, key);
    }
    if (p == NULL && in->cat != NULL && in->cat->decl_props != NULL) {
        struct stmt_props d = {in->cat->decl_props, in->cat->ndecl_props};
        p = find_prop(&d, in->qual, key);
    }
    return p;
}

/* A duration property ('5s', '500ms', '2 minutes') of 0 or more. */
static int prop_duration(struct planner *pl, const struct ast_prop *p,
                         int64_t *us)
{
    if (interval_parse(p->value, NULL, us) != VELO_OK || *us < 0) {
        perr(pl, p->value_pos, "V6005",
             "write a duration such as '5s', '500ms' or '2 minutes'",
             "'%s' must be a duration of 0 or more, not '%s'", p->key,
             p->value);
        return VELO_ERR;
    }
    return VELO_OK;
}

/* FROM_UNIXTIME(x) for epoch seconds, resolved like a call in SQL. */
static struct velo_expr *call1(struct planner *pl, const char *name,
                               struct velo_expr *x)
{
    struct velo_datatype cast = {0};
    int known = 0;
    const struct velo_func *f = velo_funcs_resolve(pl->env->funcs, name,
                                                   &x->type, 1, &cast,
                                                   &known);
    if (f == NULL) {
        velo_expr_free(x);
        return NULL;
    }
    if (cast.id != VELO_TYPE_NULL) {
        x = cast_to(x, cast);
        if (x == NULL) {
            return NULL;
        }
    }
    struct velo_expr *c = velo_expr_new(VELO_EXPR_CALL, f->ret, 1);
    if (c == NULL) {
        velo_expr_free(x);
        return NULL;
    }
    c->args[0] = x;
    c->u.call = f;
    struct velo_datatype at = x->type;
    c->type = f->ret_type != NULL ? f->ret_type(&at, 1) : f->ret;
    return c;
}

/* name(x, y) for two arguments of the types the function takes. */
static struct velo_expr *call2(struct planner *pl, const char *name,
                               struct velo_expr *x, struct velo_expr *y)
{
    struct velo_datatype types[2] = {x->type, y->type};
    struct velo_datatype casts[2];
    memset(casts, 0, sizeof(casts));
    int known = 0;
    const struct velo_func *f = velo_funcs_resolve(pl->env->funcs, name,
                                                   types, 2, casts, &known);
    struct velo_expr *c = f != NULL ? velo_expr_new(VELO_EXPR_CALL, f->ret, 2)
                                    : NULL;
    if (c == NULL || (x->type.id == VELO_TYPE_STRING && y->type.id ==
                      VELO_TYPE_STRING && y->u.literal.str == NULL)) {
        velo_expr_free(c);
        velo_expr_free(x);
        velo_expr_free(y);
        return NULL;
    }
    c->args[0] = x;
    c->args[1] = y;
    c->u.call = f;
    c->type = f->ret_type != NULL ? f->ret_type(types, 2) : f->ret;
    return c;
}

/*
 * '<src>.event.time.field' (and '.event.time.format'): a Project in front
 * of the query that sets _timestamp from the column, so windows, the
 * watermark and later statements see the event time. Formats: iso8601
 * (text, the default for a STRING column), epoch_millis (the default for
 * an integer), epoch_seconds; a TIMESTAMP column is taken as it is.
 * @return VELO_OK (also when there is nothing to do) or VELO_ERR.
 */
static int plan_event_time(struct planner *pl, const struct stmt_props *sp,
                           const struct input *in, struct velo_op **cur,
                           const struct velo_schema **cur_schema)
{
    const struct ast_prop *fp = input_prop(sp, in, "event.time.field");
    const struct ast_prop *mp = input_prop(sp, in, "event.time.format");
    if (fp == NULL) {
        if (mp != NULL) {
            char hint[200];
            snprintf(hint, sizeof(hint),
                     "name the column too: '%s.event.time.field'='ts'",
                     in->qual);
            perr(pl, mp->key_pos, "V6013", hint,
                 "'%s' needs an event time field", mp->key);
            return VELO_ERR;
        }
        return VELO_OK;
    }
    const struct velo_schema *s = *cur_schema;
    int col = velo_schema_find(s, fp->value);
    int ts = velo_schema_find(s, VELO_COL_TIMESTAMP);
    if (col < 0 || s->fields[col].hidden) {
        struct sql_buf h = {0};
        sql_buf_puts(&h, "columns: ");
        schema_names(s, &h, 0);
        perr(pl, fp->value_pos, "V6013", h.data,
             "event time field '%s' is not a column of '%s'", fp->value,
             in->qual);
        sql_buf_free(&h);
        return VELO_ERR;
    }
    if (ts < 0) {
        perr(pl, fp->key_pos, "V6013", NULL,
             "'%s' has no _timestamp to set", in->qual);
        return VELO_ERR;
    }
    struct velo_datatype t = s->fields[col].type;
    int is_int = t.id == VELO_TYPE_INTEGER || t.id == VELO_TYPE_BIGINT;
    const char *fmt = mp != NULL ? mp->value
                      : t.id == VELO_TYPE_STRING ? "iso8601"
                      : is_int                   ? "epoch_millis"
                                                 : "";
    int ok;
    if (strcasecmp(fmt, "iso8601") == 0) {
        ok = t.id == VELO_TYPE_STRING || t.id == VELO_TYPE_TIMESTAMP ||
             t.id == VELO_TYPE_DATE;
    } else if (strcasecmp(fmt, "epoch_millis") == 0 ||
               strcasecmp(fmt, "epoch_seconds") == 0) {
        ok = is_int || t.id == VELO_TYPE_STRING ||
             (t.id == VELO_TYPE_DOUBLE &&
              strcasecmp(fmt, "epoch_seconds") == 0);
    } else if (mp != NULL && strchr(fmt, '%') != NULL) {
        /* A strftime pattern: '%d/%m/%Y %H:%M:%S'. */
        ok = t.id == VELO_TYPE_STRING;
    } else if (mp != NULL) {
        perr(pl, mp->value_pos, "V6013",
             "formats are iso8601, epoch_millis, epoch_seconds or a strftime "
             "pattern such as '%Y-%m-%d %H:%M:%S'",
             "unknown event time format '%s'", mp->value);
        return VELO_ERR;
    } else {
        ok = t.id == VELO_TYPE_TIMESTAMP || t.id == VELO_TYPE_DATE;
    }
    if (!ok) {
        char tb[40];
        perr(pl, (mp != NULL ? mp : fp)->value_pos, "V6013",
             "iso8601 reads text or a TIMESTAMP, epoch_millis and "
             "epoch_seconds read integers",
             "event time field '%s' is %s, which the format '%s' cannot "
             "read",
             fp->value, type_name(t, tb, sizeof(tb)),
             fmt[0] ? fmt : "(none)");
        return VELO_ERR;
    }
    if (in->needed != NULL) {
        in->needed[col] = 1;
        in->needed[ts] = 1;
    }
    struct velo_expr **ex = calloc(s->n, sizeof(*ex));
    const char **names = calloc(s->n, sizeof(*names));
    uint8_t *hidden = calloc(s->n, 1);
    int rc = VELO_ERR;
    if (ex == NULL || names == NULL || hidden == NULL) {
        goto out;
    }
    for (size_t i = 0; i < s->n; i++) {
        names[i] = s->fields[i].name;
        hidden[i] = s->fields[i].hidden;
        ex[i] = velo_expr_new(VELO_EXPR_COLUMN, s->fields[i].type, 0);
        if (ex[i] == NULL) {
            goto out;
        }
        ex[i]->u.column = (int)i;
    }
    struct velo_expr *x = ex[col];
    ex[col] = velo_expr_new(VELO_EXPR_COLUMN, t, 0);
    if (ex[col] == NULL) {
        ex[col] = x;
        goto out;
    }
    ex[col]->u.column = col;
    if (strchr(fmt, '%') != NULL) {
        struct velo_expr *pat = velo_expr_new(
            VELO_EXPR_LITERAL, velo_type_of(VELO_TYPE_STRING), 0);
        if (pat != NULL) {
            pat->u.literal.str = strdup(fmt);
            pat->u.literal.len = strlen(fmt);
        }
        if (pat == NULL) {
            velo_expr_free(x);
            x = NULL;
        } else {
            x = call2(pl, "PARSE_TIMESTAMP", x, pat);
        }
    } else if (strcasecmp(fmt, "epoch_seconds") == 0) {
        if (t.id != VELO_TYPE_DOUBLE) {
            x = cast_to(x, velo_type_of(VELO_TYPE_BIGINT));
        }
        x = x != NULL ? call1(pl, "FROM_UNIXTIME", x) : NULL;
    } else if (strcasecmp(fmt, "epoch_millis") == 0) {
        /* BIGINT -> TIMESTAMP counts milliseconds. */
        x = cast_to(x, velo_type_of(VELO_TYPE_BIGINT));
        x = x != NULL ? cast_to(x, velo_type_of(VELO_TYPE_TIMESTAMP)) : NULL;
    } else {
        x = cast_to(x, velo_type_of(VELO_TYPE_TIMESTAMP));
    }
    if (x == NULL) {
        goto out;
    }
    velo_expr_free(ex[ts]);
    ex[ts] = x;
    struct velo_op *op = add_op(pl, velo_op_project(pl->env->exec, s, ex,
                                                    names, hidden, s->n),
                                "Project", fp->key_pos);
    for (size_t i = 0; i < s->n; i++) {
        ex[i] = NULL; /* the operator owns them, built or not */
    }
    if (op == NULL || connect_ops(pl, *cur, op, fp->key_pos) != VELO_OK) {
        goto out;
    }
    char det[300];
    snprintf(det, sizeof(det), "_timestamp = %s (%s)", fp->value,
             fmt[0] ? fmt : "TIMESTAMP");
    add_node(pl, PN_OP, op, "Project (event time)", det, NULL, 0,
             op->out_schema);
    sql_buf_printf(&pl->canon, "EVENTTIME %s %s\n", fp->value, fmt);
    *cur = op;
    *cur_schema = op->out_schema;
    rc = VELO_OK;
out:
    if (rc != VELO_OK && pl->diags->errors == 0) {
        oom(pl, fp->key_pos);
    }
    for (size_t i = 0; ex != NULL && i < s->n; i++) {
        velo_expr_free(ex[i]);
    }
    free(ex);
    free(names);
    free(hidden);
    return rc;
}

/* The item a GROUP BY ordinal or alias stands for, else g itself. */
static const struct ast_expr *group_target(struct planner *pl,
                                           const struct ast_query *q,
                                           const struct velo_schema *in,
                                           const struct ast_expr *g)
{
    if (g->kind == AX_INTEGER) {
        long n = strtol(g->text, NULL, 10);
        if (n < 1 || (size_t)n > q->nitems ||
            q->items[n - 1].expr->kind == AX_STAR) {
            char hint[120];
            snprintf(hint, sizeof(hint),
                     "GROUP BY %s names the %s-th item of the SELECT list, "
                     "which has %zu",
                     g->text, g->text, q->nitems);
            perr(pl, g->pos, "V5010", hint,
                 "GROUP BY position %s is out of range", g->text);
            return NULL;
        }
        return q->items[n - 1].expr;
    }
    if (g->kind == AX_NAME && g->nparts == 1 &&
        velo_schema_find(in, g->parts[0].name) < 0) {
        for (size_t i = 0; i < q->nitems; i++) {
            if (q->items[i].alias.name != NULL &&
                strcasecmp(q->items[i].alias.name, g->parts[0].name) == 0) {
                return q->items[i].expr;
            }
        }
    }
    return g;
}

static const char *emit_text(int emit, int windowed, int bounded)
{
    if (emit == VELO_EMIT_FINAL) {
        return windowed ? "FINAL: one row per group when the watermark "
                          "passes the window end (and at end of input)"
                        : "FINAL: one row per group at end of input";
    }
    (void)bounded;
    return "CHANGES: the updated row of its group after each input row";
}

/* ---- FROM: sources, subqueries and joins -------------------------------- */

static int plan_query(struct planner *pl, const struct ast_stmt *st,
                      const struct ast_query *q, struct stmt_props *sp,
                      struct query_out *out);

/* Which sides an expression reads: bit 1 columns < nleft, bit 2 the
 * others. */
static int expr_sides(const struct velo_expr *e, size_t nleft)
{
    if (e == NULL) {
        return 0;
    }
    int m = 0;
    if (e->kind == VELO_EXPR_COLUMN) {
        m |= (size_t)e->u.column < nleft ? 1 : 2;
    }
    for (size_t i = 0; i < e->nargs; i++) {
        m |= expr_sides(e->args[i], nleft);
    }
    return m;
}

/* Move every column reference by delta (a side's own numbering). */
static void expr_shift(struct velo_expr *e, int delta)
{
    if (e == NULL) {
        return;
    }
    if (e->kind == VELO_EXPR_COLUMN) {
        e->u.column += delta;
    }
    for (size_t i = 0; i < e->nargs; i++) {
        expr_shift(e->args[i], delta);
    }
}

/* The relations of an input, their columns moved by shift. */
static int input_rels(const struct input *in, size_t shift,
                      struct bind_rel **rels, size_t *n)
{
    size_t add = in->nrels > 0 ? in->nrels : 1;
    struct bind_rel *nr = realloc(*rels, (*n + add) * sizeof(*nr));
    if (nr == NULL) {
        return VELO_ERR;
    }
    *rels = nr;
    if (in->nrels > 0) {
        for (size_t i = 0; i < in->nrels; i++) {
            nr[*n] = in->rels[i];
            nr[*n].first += shift;
            (*n)++;
        }
    } else {
        struct bind_rel *r = &nr[(*n)++];
        r->name = in->cat != NULL ? in->qual : NULL;
        r->alias = in->alias;
        r->first = shift;
        r->n = in->schema->n;
        r->needed = in->needed;
    }
    return VELO_OK;
}

static struct velo_schema *concat_schema(const struct velo_schema *a,
                                         size_t skip,
                                         const struct velo_schema *b)
{
    struct velo_schema *s = velo_schema_create(skip + a->n + b->n);
    if (s == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < skip; i++) {
        velo_schema_set(s, i, i == 0 ? VELO_COL_WINDOW_START
                                     : VELO_COL_WINDOW_END,
                        velo_type_of(VELO_TYPE_TIMESTAMP), 0, 1);
    }
    for (size_t i = 0; i < a->n; i++) {
        const struct velo_field *f = &a->fields[i];
        velo_schema_set(s, skip + i, f->name, f->type, f->nullable,
                        f->hidden);
    }
    for (size_t i = 0; i < b->n; i++) {
        const struct velo_field *f = &b->fields[i];
        velo_schema_set(s, skip + a->n + i, f->name, f->type, 1, f->hidden);
    }
    return s;
}

/* ON a AND b AND c: the conjuncts. */
static void conjuncts(const struct ast_expr *e, const struct ast_expr **out,
                      size_t *n, size_t cap)
{
    if (e->kind == AX_AND) {
        for (size_t i = 0; i < e->nargs; i++) {
            conjuncts(e->args[i], out, n, cap);
        }
    } else if (*n < cap) {
        out[(*n)++] = e;
    }
}

#define MAX_CONJUNCTS 64

/* x + INTERVAL 'c', x - INTERVAL 'c', or x: the base and the offset. */
static const struct ast_expr *time_offset(struct planner *pl,
                                          const struct ast_expr *e,
                                          int64_t *off)
{
    *off = 0;
    if (e->kind == AX_BINARY && (e->op == TK_PLUS || e->op == TK_MINUS) &&
        (e->args[1]->kind == AX_INTERVAL ||
         e->args[1]->kind == AX_DURATION)) {
        int64_t us = window_interval(pl, e->args[1], "join interval", 1);
        if (us < 0) {
            return NULL;
        }
        *off = e->op == TK_PLUS ? us : -us;
        return e->args[0];
    }
    return e;
}

static struct velo_expr *as_timestamp(struct planner *pl,
                                      struct velo_expr *t,
                                      struct sql_pos pos)
{
    if (t != NULL && t->type.id == VELO_TYPE_DATE) {
        t = cast_to(t, velo_type_of(VELO_TYPE_TIMESTAMP));
    }
    if (t != NULL && t->type.id != VELO_TYPE_TIMESTAMP) {
        char tb[40];
        perr(pl, pos, "V4011",
             "join on event time: set '<src>.event.time.field' and use the "
             "TIMESTAMP column, or CAST(x AS TIMESTAMP)",
             "an interval join compares TIMESTAMPs, not %s",
             type_name(t->type, tb, sizeof(tb)));
        velo_expr_free(t);
        return NULL;
    }
    return t;
}

static int same_type(struct velo_datatype a, struct velo_datatype b)
{
    return a.id == b.id && (a.id != VELO_TYPE_DECIMAL || a.scale == b.scale);
}

/* The type two numbers are compared or merged as: DOUBLE over DECIMAL
 * (the larger scale, the widest precision there is) over BIGINT. */
static struct velo_datatype numeric_common(struct velo_datatype a,
                                           struct velo_datatype b)
{
    if (a.id == VELO_TYPE_DOUBLE || b.id == VELO_TYPE_DOUBLE) {
        return velo_type_of(VELO_TYPE_DOUBLE);
    }
    if (a.id != VELO_TYPE_DECIMAL && b.id != VELO_TYPE_DECIMAL) {
        return velo_type_of(VELO_TYPE_BIGINT);
    }
    int scale = a.id == VELO_TYPE_DECIMAL ? a.scale : 0;
    if (b.id == VELO_TYPE_DECIMAL && b.scale > scale) {
        scale = b.scale;
    }
    return velo_type_decimal(VELO_DECIMAL_MAX_PRECISION, scale);
}

/* Make a and z comparable as keys (same type, same decimal scale).
 * @return VELO_OK, or VELO_ERR after reporting (both freed). */
static int unify_keys(struct planner *pl, struct velo_expr **a,
                      struct velo_expr **z, struct sql_pos pos)
{
    if (same_type((*a)->type, (*z)->type)) {
        return VELO_OK;
    }
    int an = velo_type_is_numeric((*a)->type);
    int zn = velo_type_is_numeric((*z)->type);
    if (an && zn) {
        struct velo_datatype t = numeric_common((*a)->type, (*z)->type);
        *a = cast_to(*a, t);
        *z = cast_to(*z, t);
    } else if ((*a)->type.id == VELO_TYPE_STRING &&
               cast_allowed((*z)->type, (*a)->type)) {
        *z = cast_to(*z, (*a)->type);
    } else if ((*z)->type.id == VELO_TYPE_STRING &&
               cast_allowed((*a)->type, (*z)->type)) {
        *a = cast_to(*a, (*z)->type);
    } else {
        char ta[40], tz[40];
        perr(pl, pos, "V4002", "cast one side: CAST(a.k AS VARCHAR) = b.k",
             "keys of different types cannot match: %s and %s",
             type_name((*a)->type, ta, sizeof(ta)),
             type_name((*z)->type, tz, sizeof(tz)));
        velo_expr_free(*a);
        velo_expr_free(*z);
        *a = *z = NULL;
        return VELO_ERR;
    }
    if (*a == NULL || *z == NULL) {
        velo_expr_free(*a);
        velo_expr_free(*z);
        *a = *z = NULL;
        oom(pl, pos);
        return VELO_ERR;
    }
    return VELO_OK;
}

static const char *const join_names[] = {"INNER", "LEFT", "RIGHT", "FULL"};

/* Keys not handed to an operator. */
static void join_keys_free(struct velo_join_keys *k)
{
    for (size_t i = 0; i < k->nkeys; i++) {
        velo_expr_free(k->lkeys[i]);
        velo_expr_free(k->rkeys[i]);
    }
    velo_expr_free(k->residual);
    free(k->lkeys);
    free(k->rkeys);
    memset(k, 0, sizeof(*k));
}

/* Mark the table side's external sources for reading first. */
static void preload_range(struct planner *pl, size_t from, size_t to)
{
    for (size_t i = from; i < to && i < pl->ntouched; i++) {
        pl->plan->pub.sources[pl->touched[i]].preload = 1;
    }
}

static int plan_from(struct planner *pl, const struct ast_stmt *st,
                     const struct ast_from *f, struct stmt_props *sp,
                     const struct ast_query *q, int q_is_agg,
                     struct input *in);

/* Is this FROM item a lookup table ('<name>.lookup'='true')? */
static int wants_lookup(const struct stmt_props *sp, const struct ast_from *f)
{
    const struct ast_prop *p = find_prop(sp, f->name.name, "lookup");
    if (p == NULL && f->alias.name != NULL) {
        p = find_prop(sp, f->alias.name, "lookup");
    }
    return p != NULL && (strcasecmp(p->value, "true") == 0 ||
                         strcmp(p->value, "1") == 0 ||
                         strcasecmp(p->value, "yes") == 0);
}

static int keep_schema(struct planner *pl, struct velo_schema *s)
{
    struct plan_impl *pi = pl->plan;
    if (sql_pool_grow(pi->pool, (void **)&pi->schemas, &pi->cap_schemas,
                      pi->nschemas, sizeof(*pi->schemas)) != VELO_OK) {
        velo_schema_destroy(s);
        return VELO_ERR;
    }
    pi->schemas[pi->nschemas++] = s;
    return VELO_OK;
}

/*
 * The right side of a stream-table join read by key through its connector
 * (PostgreSQL, Redis) instead of loaded whole: it declares its columns
 * ('<name>.schema') and is opened when the join is built.
 */
static int plan_lookup_rel(struct planner *pl, const struct ast_from *f,
                           struct stmt_props *sp, struct input *in)
{
    const char *name = f->name.name;
    const char *pname = find_prop(sp, name, "type") != NULL ||
                                f->alias.name == NULL
                            ? name
                            : f->alias.name;
    const struct ast_prop *typep = find_prop(sp, pname, "type");
    if (typep == NULL) {
        char hint[200];
        snprintf(hint, sizeof(hint),
                 "name its connector: '%s.type'='postgres_source' (or "
                 "redis_source)",
                 pname);
        perr(pl, f->name.pos, "V6008", hint,
             "lookup table '%s' has no type", pname);
        return VELO_ERR;
    }
    int is_source = 0;
    const struct velo_connector_ref *conn = velo_connectors_by_type(
        pl->env->connectors, typep->value, &is_source);
    if (conn == NULL || !is_source) {
        perr(pl, typep->value_pos, "V6002",
             "a lookup table is a source type: postgres_source or "
             "redis_source",
             "'%s' is not a source connector type", typep->value);
        return VELO_ERR;
    }
    if (!VELO_VTABLE_HAS(conn->vt, lookup_get) ||
        !VELO_VTABLE_HAS(conn->vt, lookup_create)) {
        char hint[200];
        snprintf(hint, sizeof(hint),
                 "load the whole table instead: drop '%s.lookup'", pname);
        perr(pl, typep->value_pos, "V6006", hint,
             "the %s connector cannot look rows up by key", conn->name);
        return VELO_ERR;
    }
    struct src_conf sc;
    if (configure_source(pl, sp, pname, pname, NULL, conn, f->name.pos,
                         &sc) != VELO_OK) {
        velo_schema_destroy(sc.decl);
        return VELO_ERR;
    }
    struct velo_property *cp = sc.cp;
    size_t ncp = sc.ncp;
    if (!sc.has_schema) {
        char hint[240];
        snprintf(hint, sizeof(hint),
                 "declare its columns: '%s.schema'='id BIGINT, name STRING' "
                 "(velo inspect describes a table)",
                 pname);
        perr(pl, f->name.pos, "V6009", hint,
             "lookup table '%s' needs its columns declared", pname);
        return VELO_ERR;
    }
    struct velo_schema *decl = sc.decl;
    if (keep_schema(pl, decl) != VELO_OK) {
        return VELO_ERR;
    }
    struct lookup_rel *lr = sql_pool_alloc(pl->plan->pool, sizeof(*lr));
    if (lr == NULL) {
        oom(pl, f->name.pos);
        return VELO_ERR;
    }
    lr->conn = conn;
    lr->name = pstr(pl, pname);
    lr->props = cp;
    lr->nprops = ncp;
    lr->cache_entries = 10000;
    lr->cache_ttl_us = 60 * INT64_C(1000000);
    lr->pos = f->name.pos;
    const struct ast_prop *ce = find_prop(sp, pname, "lookup.cache.entries");
    if (ce != NULL) {
        char *end = NULL;
        long long v = strtoll(ce->value, &end, 10);
        if (end == ce->value || *end != '\0' || v < 0) {
            perr(pl, ce->value_pos, "V6005",
                 "write a count of entries (0: no cache)",
                 "'%s' must be a count, not '%s'", ce->key, ce->value);
            return VELO_ERR;
        }
        lr->cache_entries = (size_t)v;
    }
    const struct ast_prop *ct = find_prop(sp, pname, "lookup.cache.ttl");
    if (ct != NULL && prop_duration(pl, ct, &lr->cache_ttl_us) != VELO_OK) {
        return VELO_ERR;
    }
    in->schema = decl;
    in->bounded = 1;
    in->qual = name;
    in->alias = f->alias.name;
    in->lookup = lr;
    char l[300];
    snprintf(l, sizeof(l), "Lookup table %s [%s, by key]", pname,
             conn->name);
    add_node(pl, PN_STREAM, NULL, l, NULL,
             "rows asked for by key as stream rows arrive", 0, decl);
    sql_buf_printf(&pl->canon, "LOOKUP %s %s\n", pname, conn->name);
    return VELO_OK;
}

static int add_watermark(struct planner *pl, struct input *in, int ts,
                         size_t *branch, struct sql_pos pos);

/* Open a lookup table for a join whose right side reads by key: one key
 * column of the table. @return the provider, or NULL after reporting. */
static const struct velo_lookup_provider *
open_lookup(struct planner *pl, const struct input *r,
            const struct velo_join_keys *keys)
{
    const struct lookup_rel *lr = r->lookup;
    if (keys->nkeys != 1 || keys->rkeys[0]->kind != VELO_EXPR_COLUMN) {
        perr(pl, lr->pos, "V5033",
             "join a lookup table on one of its columns: ON s.k = t.id",
             "a lookup table is read by one key column");
        return NULL;
    }
    struct plan_impl *pi = pl->plan;
    if (sql_pool_grow(pi->pool, (void **)&pi->lookups, &pi->cap_lookups,
                      pi->nlookups, sizeof(*pi->lookups)) != VELO_OK) {
        oom(pl, lr->pos);
        return NULL;
    }
    const char *key = r->schema->fields[keys->rkeys[0]->u.column].name;
    char label[200];
    snprintf(label, sizeof(label), "%s:%s", lr->conn->name, lr->name);
    struct velo_lookup_spec spec = {
        .conn = lr->conn, .name = lr->name, .uri = NULL,
        .props = lr->props, .nprops = lr->nprops, .key = key,
        .schema = r->schema, .label = label, .base = pl->env->base,
    };
    char err[512];
    struct velo_lookup_table *t = velo_lookup_open(&spec, err, sizeof(err));
    if (t == NULL) {
        perr(pl, lr->pos, "V6010",
             "check the table's properties and that the server is up",
             "cannot open lookup table '%s': %s", lr->name, err);
        return NULL;
    }
    pi->lookups[pi->nlookups++] = t;
    struct velo_lookup_provider *prov =
        sql_pool_alloc(pi->pool, sizeof(*prov));
    if (prov == NULL) {
        oom(pl, lr->pos);
        return NULL;
    }
    velo_lookup_provider_init(t, prov, lr->cache_entries, lr->cache_ttl_us);
    return prov;
}

static int plan_join(struct planner *pl, const struct ast_stmt *st,
                     const struct ast_from *f, struct stmt_props *sp,
                     const struct ast_query *q, int q_is_agg,
                     struct input *in)
{
    struct input l, r;
    memset(in, 0, sizeof(*in));
    int lrc = plan_from(pl, st, f->left, sp, q, q_is_agg, &l);
    if (lrc != VELO_OK) {
        return VELO_ERR;
    }
    size_t touched0 = pl->ntouched;
    size_t branches[2];
    branches[0] = last_node(pl);
    int rrc = plan_from(pl, st, f->right, sp, q, q_is_agg, &r);
    if (rrc != VELO_OK) {
        input_free(&l);
        return VELO_ERR;
    }
    branches[1] = last_node(pl);
    size_t touched1 = pl->ntouched;
    const struct velo_exec_env *ex = pl->env->exec;
    size_t ln = l.schema->n, rn = r.schema->n;
    int rc = VELO_ERR;
    size_t errors0 = pl->diags->errors;
    struct bind_rel *rels = NULL;
    size_t nrels = 0;
    struct velo_schema *both = concat_schema(l.schema, 0, r.schema);
    struct velo_expr *lkeys[MAX_CONJUNCTS], *rkeys[MAX_CONJUNCTS];
    struct velo_expr *resid[MAX_CONJUNCTS];
    size_t nkeys = 0, nresid = 0;
    struct velo_expr *ltime = NULL, *rtime = NULL, *residual = NULL;
    int64_t lower = 0, upper = 0;
    int has_time = 0;
    struct sql_buf det = {0};
    if (both == NULL || input_rels(&l, 0, &rels, &nrels) != VELO_OK ||
        input_rels(&r, ln, &rels, &nrels) != VELO_OK) {
        oom(pl, f->pos);
        goto out;
    }
    struct binder b = {
        .env = pl->env, .t = pl->t, .diags = pl->diags, .mode = BIND_ROW,
        .no_agg = "ON",
    };
    b.in.schema = both;
    b.in.rels = rels;
    b.in.nrels = nrels;

    const struct ast_expr *cj[MAX_CONJUNCTS];
    size_t ncj = 0;
    conjuncts(f->on, cj, &ncj, MAX_CONJUNCTS);
    for (size_t i = 0; i < ncj; i++) {
        const struct ast_expr *c = cj[i];
        if (c->kind == AX_BINARY && c->op == TK_EQ) {
            struct velo_expr *a = fold_constants(&b, bind_expr(&b, c->args[0]),
                                                 c->args[0]->pos);
            struct velo_expr *z = fold_constants(&b, bind_expr(&b, c->args[1]),
                                                 c->args[1]->pos);
            int sa = expr_sides(a, ln), sz = expr_sides(z, ln);
            if (a != NULL && z != NULL &&
                ((sa == 1 && sz == 2) || (sa == 2 && sz == 1))) {
                if (sa == 2) {
                    struct velo_expr *t = a;
                    a = z;
                    z = t;
                }
                if (unify_keys(pl, &a, &z, c->pos) != VELO_OK) {
                    continue;
                }
                expr_shift(z, -(int)ln);
                lkeys[nkeys] = a;
                rkeys[nkeys++] = z;
                continue;
            }
            velo_expr_free(a);
            velo_expr_free(z);
        }
        if (c->kind == AX_BETWEEN && !c->negated && !has_time &&
            f->within == NULL) {
            int64_t olo, ohi;
            const struct ast_expr *blo = time_offset(pl, c->args[1], &olo);
            const struct ast_expr *bhi = time_offset(pl, c->args[2], &ohi);
            if (blo == NULL || bhi == NULL) {
                continue;
            }
            b.quiet = 1;
            struct velo_expr *x = bind_expr(&b, c->args[0]);
            struct velo_expr *bl = bind_expr(&b, blo);
            struct velo_expr *bh = bind_expr(&b, bhi);
            b.quiet = 0;
            int sx = expr_sides(x, ln), sb = expr_sides(bl, ln);
            char *cl = bl ? canon_dup(bl) : NULL;
            char *ch = bh ? canon_dup(bh) : NULL;
            int ok = x != NULL && bl != NULL && bh != NULL && cl && ch &&
                     strcmp(cl, ch) == 0 &&
                     ((sx == 2 && sb == 1) || (sx == 1 && sb == 2));
            free(cl);
            free(ch);
            velo_expr_free(bh);
            if (ok) {
                x = as_timestamp(pl, x, c->args[0]->pos);
                bl = as_timestamp(pl, bl, blo->pos);
                if (x == NULL || bl == NULL) {
                    velo_expr_free(x);
                    velo_expr_free(bl);
                    continue;
                }
                if (olo > ohi) {
                    perr(pl, c->pos, "V5035",
                         "write the earlier bound first: BETWEEN a.ts AND "
                         "a.ts + INTERVAL '10' MINUTE",
                         "the join's time interval is empty");
                }
                if (sx == 2) { /* r BETWEEN l + lo AND l + hi */
                    rtime = x;
                    ltime = bl;
                    lower = olo;
                    upper = ohi;
                } else { /* l BETWEEN r + lo AND r + hi */
                    ltime = x;
                    rtime = bl;
                    lower = -ohi;
                    upper = -olo;
                }
                expr_shift(rtime, -(int)ln);
                has_time = 1;
                continue;
            }
            velo_expr_free(x);
            velo_expr_free(bl);
        }
        struct velo_expr *p = bind_predicate(&b, c, "ON");
        p = fold_constants(&b, p, c->pos);
        if (p != NULL) {
            resid[nresid++] = p;
        }
    }
    if (f->within != NULL) {
        int64_t w = window_interval(pl, f->within, "join interval", 0);
        int lt = velo_schema_find(l.schema, VELO_COL_TIMESTAMP);
        int rt = velo_schema_find(r.schema, VELO_COL_TIMESTAMP);
        if (lt < 0 || rt < 0) {
            perr(pl, f->within->pos, "V5012",
                 "both sides need event time: read sources, or streams "
                 "that keep _timestamp",
                 "WITHIN needs the event time of both sides");
        } else if (w >= 0) {
            ltime = velo_expr_new(VELO_EXPR_COLUMN,
                                  velo_type_of(VELO_TYPE_TIMESTAMP), 0);
            rtime = velo_expr_new(VELO_EXPR_COLUMN,
                                  velo_type_of(VELO_TYPE_TIMESTAMP), 0);
            if (ltime == NULL || rtime == NULL) {
                oom(pl, f->pos);
                goto out;
            }
            ltime->u.column = lt;
            rtime->u.column = rt;
            lower = -w;
            upper = w;
            has_time = 1;
            if (l.needed != NULL) {
                l.needed[lt] = 1;
            }
            if (r.needed != NULL) {
                r.needed[rt] = 1;
            }
        }
    }
    if (pl->diags->errors > errors0) {
        goto out;
    }
    if (nkeys == 0) {
        perr(pl, f->on->pos, "V5033",
             "join on equal keys of the two sides: ON a.k = b.k",
             "a join needs at least one equality between its two sides");
        goto out;
    }
    if (nresid > 0) {
        if (nresid == 1) {
            residual = resid[0];
        } else {
            residual = velo_expr_new(VELO_EXPR_AND,
                                     velo_type_of(VELO_TYPE_BOOLEAN), nresid);
            if (residual == NULL) {
                oom(pl, f->pos);
                goto out;
            }
            for (size_t i = 0; i < nresid; i++) {
                residual->args[i] = resid[i];
            }
        }
        nresid = 0;
    }
    int window_join = !has_time && q != NULL &&
                      q->window.kind != WIN_NONE && !q_is_agg;
    struct velo_join_keys keys = {0};
    keys.lkeys = calloc(nkeys, sizeof(*keys.lkeys));
    keys.rkeys = calloc(nkeys, sizeof(*keys.rkeys));
    if (keys.lkeys == NULL || keys.rkeys == NULL) {
        free(keys.lkeys);
        free(keys.rkeys);
        oom(pl, f->pos);
        goto out;
    }
    sql_buf_printf(&pl->canon, "JOIN %d ", f->join_type);
    for (size_t i = 0; i < nkeys; i++) {
        keys.lkeys[i] = lkeys[i];
        keys.rkeys[i] = rkeys[i];
        canon_expr(lkeys[i], &pl->canon);
        sql_buf_puts(&pl->canon, "=");
        canon_expr(rkeys[i], &pl->canon);
        sql_buf_puts(&pl->canon, ";");
    }
    if (residual != NULL) {
        sql_buf_puts(&pl->canon, " residual ");
        canon_expr(residual, &pl->canon);
    }
    keys.nkeys = nkeys;
    keys.residual = residual;
    keys.type = f->join_type;
    nkeys = 0;
    residual = NULL;
    {
        char *on = span_text(pl->t, f->on->pos);
        sql_buf_printf(&det, "%s JOIN ON %s", join_names[f->join_type & 3],
                       on ? on : "?");
        free(on);
    }
    struct velo_op *op = NULL;
    const char *label;
    const char *emits = NULL;
    size_t skip = 0;
    /* Interval and window joins drop state and close windows as event
     * time moves: each side gets a Watermark on its join time. */
    if (has_time || window_join) {
        int lt = has_time && ltime->kind == VELO_EXPR_COLUMN ? ltime->u.column
                                                              : -1;
        int rt = has_time && rtime->kind == VELO_EXPR_COLUMN ? rtime->u.column
                                                              : -1;
        if (add_watermark(pl, &l, lt, &branches[0], f->join_pos) !=
                VELO_OK ||
            add_watermark(pl, &r, rt, &branches[1], f->join_pos) !=
                VELO_OK) {
            join_keys_free(&keys);
            goto out;
        }
    }
    if (has_time) {
        label = "IntervalJoin";
        if (l.changelog || r.changelog) {
            perr(pl, f->join_pos, "V5033",
                 "an interval join matches stream rows in time; join a "
                 "table without a time bound (a lookup join)",
                 "an interval join needs two streams, not a table");
            join_keys_free(&keys);
            goto out;
        }
        /* The inputs' Watermark operators already trail their highest
         * event time by the allowed out-of-orderness. */
        int64_t grace = 0;
        sql_buf_printf(&det, "; right time within [%+" PRId64 " ms, %+" PRId64
                             " ms] of left time",
                       lower / 1000, upper / 1000);
        sql_buf_printf(&pl->canon, " interval %" PRId64 " %" PRId64 " ",
                       lower, upper);
        canon_expr(ltime, &pl->canon);
        sql_buf_puts(&pl->canon, " ");
        canon_expr(rtime, &pl->canon);
        op = velo_op_interval_join(ex, l.schema, r.schema, &keys, ltime,
                                   rtime, lower, upper, grace);
        ltime = rtime = NULL;
        emits = "as matches arrive; unmatched outer rows when they expire";
    } else if (window_join) {
        label = "WindowJoin";
        struct velo_window_spec win;
        memset(&win, 0, sizeof(win));
        if (q->window.kind == WIN_SESSION || q->window.time != NULL) {
            perr(pl, q->window.pos, "V5033",
                 "a window join puts both sides' rows in the same TUMBLING "
                 "or HOPPING windows of their event time: WINDOW "
                 "TUMBLING(INTERVAL '1' MINUTE)",
                 "a window join needs a TUMBLING or HOPPING window on the "
                 "event time");
            join_keys_free(&keys);
            goto out;
        }
        win.kind = q->window.kind == WIN_HOPPING ? VELO_WINDOW_HOPPING
                                                 : VELO_WINDOW_TUMBLING;
        win.size_us = window_size(pl, q->window.size);
        if (q->window.advance != NULL) {
            win.advance_us = window_interval(pl, q->window.advance,
                                             "window advance", 0);
        }
        if (q->window.grace != NULL) {
            win.grace_us = window_interval(pl, q->window.grace,
                                           "grace period", 1);
        }
        win.max_ooo_us = l.ooo_us > r.ooo_us ? l.ooo_us : r.ooo_us;
        if (pl->diags->errors > errors0) {
            join_keys_free(&keys);
            goto out;
        }
        sql_buf_printf(&det, "; window %s %" PRId64 " ms",
                       win.kind == VELO_WINDOW_HOPPING ? "HOPPING"
                                                       : "TUMBLING",
                       win.size_us / 1000);
        sql_buf_printf(&pl->canon, " window %d %" PRId64 " %" PRId64
                                   " %" PRId64,
                       win.kind, win.size_us, win.advance_us, win.grace_us);
        op = velo_op_window_join(ex, l.schema, r.schema, &keys, &win, NULL);
        skip = 2;
        emits = "when the window closes";
    } else {
        label = "LookupJoin";
        if (l.changelog) {
            perr(pl, f->left->pos, "V5033",
                 "the left side of a join is the stream whose rows look up "
                 "the right side; put the table on the right",
                 "the left side of this join is a table");
        } else if (!r.bounded && !r.changelog) {
            perr(pl, f->right->pos, "V5033",
                 "bound the join in time: ON a.k = b.k AND b.ts BETWEEN "
                 "a.ts AND a.ts + INTERVAL '10' MINUTE (or JOIN b WITHIN "
                 "INTERVAL '10' MINUTE ON ...), or join a TABLE",
                 "the right side of this join does not end: a join with "
                 "an unbounded stream needs a time bound");
        } else if (f->join_type == VELO_JOIN_RIGHT ||
                   f->join_type == VELO_JOIN_FULL) {
            perr(pl, f->join_pos, "V5033",
                 "a stream-table join keeps every stream row (LEFT) or the "
                 "matching ones (INNER); RIGHT and FULL need a time bound",
                 "%s JOIN against a table is not supported",
                 join_names[f->join_type & 3]);
        }
        if (pl->diags->errors > errors0) {
            join_keys_free(&keys);
            goto out;
        }
        if (r.lookup != NULL) {
            const struct velo_lookup_provider *prov =
                open_lookup(pl, &r, &keys);
            if (prov == NULL) {
                join_keys_free(&keys);
                goto out;
            }
            sql_buf_printf(&det, "; rows of %s asked for by key (cache %zu "
                                 "entries)",
                           r.lookup->name, prov->cache_entries);
            sql_buf_puts(&pl->canon, " lookup-by-key");
            op = velo_op_lookup_join(ex, l.schema, r.schema, &keys, prov);
        } else {
            if (r.bounded) {
                preload_range(pl, touched0, touched1);
            }
            sql_buf_puts(&det, "; the table side is the latest row per key");
            sql_buf_puts(&pl->canon, " lookup");
            op = velo_op_lookup_join(ex, l.schema, r.schema, &keys, NULL);
        }
        emits = "one row per stream row and match";
    }
    sql_buf_puts(&pl->canon, "\n");
    free(keys.lkeys);
    free(keys.rkeys);
    op = add_op(pl, op, label, f->join_pos);
    if (op == NULL ||
        connect_ops(pl, l.op, velo_op_port(op, 0), f->join_pos) != VELO_OK ||
        (r.lookup == NULL &&
         connect_ops(pl, r.op, velo_op_port(op, 1), f->join_pos) !=
             VELO_OK)) {
        goto out;
    }
    add_node(pl, PN_OP, op, label, det.data, emits, 0, op->out_schema);
    set_inputs(pl, branches, 2);
    if (op->out_schema == NULL || op->out_schema->n != skip + ln + rn) {
        perr(pl, f->pos, "V5099", NULL,
             "internal error: the join has %zu output columns, expected %zu",
             op->out_schema ? op->out_schema->n : 0, skip + ln + rn);
        goto out;
    }
    if (skip > 0) {
        for (size_t i = 0; i < nrels; i++) {
            rels[i].first += skip;
        }
    }
    in->op = op;
    in->schema = op->out_schema;
    in->bounded = l.bounded && (r.bounded || r.changelog);
    in->changelog = 0;
    in->rels = rels;
    in->nrels = nrels;
    in->windowed = skip > 0;
    in->qual = "join";
    in->ooo_us = l.ooo_us > r.ooo_us ? l.ooo_us : r.ooo_us;
    rels = NULL;
    rc = VELO_OK;
    goto out;
out:
    for (size_t i = 0; i < nkeys; i++) {
        velo_expr_free(lkeys[i]);
        velo_expr_free(rkeys[i]);
    }
    for (size_t i = 0; i < nresid; i++) {
        velo_expr_free(resid[i]);
    }
    velo_expr_free(residual);
    velo_expr_free(ltime);
    velo_expr_free(rtime);
    sql_buf_free(&det);
    velo_schema_destroy(both);
    free(rels);
    input_free(&l);
    input_free(&r);
    if (pl->diags->errors > errors0) {
        rc = VELO_ERR;
    }
    return rc;
}

static void collect_over(const struct ast_expr *e, const struct ast_expr **out,
                         size_t *n, size_t cap);

/*
 * Put a Watermark operator behind an input: its watermark follows column
 * ts (the input's _timestamp when ts < 0). Joins and OVER get theirs this
 * way; an aggregation follows the event time of its own rows.
 */
static int add_watermark(struct planner *pl, struct input *in, int ts,
                         size_t *branch, struct sql_pos pos)
{
    if (ts < 0) {
        ts = velo_schema_find(in->schema, VELO_COL_TIMESTAMP);
    }
    if (ts < 0 || in->schema->fields[ts].type.id != VELO_TYPE_TIMESTAMP) {
        return VELO_OK; /* no event time: nothing to follow */
    }
    if (in->needed != NULL) {
        in->needed[ts] = 1;
    }
    struct velo_op *op = add_op(pl, velo_op_watermark_gen(pl->env->exec,
                                                           in->schema, ts,
                                                           in->ooo_us),
                                "Watermark", pos);
    if (op == NULL || connect_ops(pl, in->op, op, pos) != VELO_OK) {
        return VELO_ERR;
    }
    char det[200];
    snprintf(det, sizeof(det), "event time %s; out-of-orderness %lld ms",
             in->schema->fields[ts].name, (long long)(in->ooo_us / 1000));
    add_node(pl, PN_OP, op, "Watermark", det,
             "rows at once; the watermark after each batch", 0,
             op->out_schema);
    if (branch != NULL) {
        set_inputs(pl, branch, 1);
        *branch = last_node(pl);
    }
    sql_buf_printf(&pl->canon, "WATERMARK %" PRId64 "\n", in->ooo_us);
    in->op = op;
    in->schema = op->out_schema;
    return VELO_OK;
}

static int plan_from_one(struct planner *pl, const struct ast_stmt *st,
                         const struct ast_from *f, struct stmt_props *sp,
                         const struct ast_query *q, int q_is_agg,
                         struct input *in);

static int plan_from(struct planner *pl, const struct ast_stmt *st,
                     const struct ast_from *f, struct stmt_props *sp,
                     const struct ast_query *q, int q_is_agg,
                     struct input *in)
{
    return plan_from_one(pl, st, f, sp, q, q_is_agg, in);
}

static int plan_from_one(struct planner *pl, const struct ast_stmt *st,
                         const struct ast_from *f, struct stmt_props *sp,
                         const struct ast_query *q, int q_is_agg,
                         struct input *in)
{
    memset(in, 0, sizeof(*in));
    if (f->kind == FROM_JOIN) {
        return plan_join(pl, st, f, sp, q, q_is_agg, in);
    }
    if (f->kind == FROM_SUBQUERY) {
        struct query_out qo;
        pl->nested++;
        int qrc = plan_query(pl, st, f->sub, sp, &qo);
        pl->nested--;
        if (qrc != VELO_OK) {
            return VELO_ERR;
        }
        in->op = qo.op;
        in->schema = qo.schema;
        in->bounded = qo.bounded;
        in->changelog = qo.changelog;
        in->alias = f->alias.name;
        in->qual = f->alias.name != NULL ? f->alias.name : "subquery";
        in->ooo_us = qo.ooo_us;
        query_out_free(&qo);
        return VELO_OK;
    }
    if (f->kind == FROM_NAME && wants_lookup(sp, f)) {
        return plan_lookup_rel(pl, f, sp, in);
    }
    if (resolve_from(pl, st, f, sp, in) != VELO_OK) {
        return VELO_ERR;
    }
    const struct ast_prop *op = input_prop(sp, in,
                                           "watermark.max_out_of_orderness");
    if (op != NULL) {
        prop_duration(pl, op, &in->ooo_us);
    } else if (in->cat != NULL) {
        in->ooo_us = in->cat->ooo_us;
    }
    const struct ast_prop *ip = input_prop(sp, in, "watermark.idle_timeout");
    if (ip != NULL && in->cat != NULL && in->cat->kind == CAT_SOURCE) {
        int64_t us = 0;
        if (prop_duration(pl, ip, &us) != VELO_OK) {
            return VELO_ERR;
        }
        pl->plan->pub.sources[in->cat->source].idle_timeout_us = us;
    }
    struct velo_op *cur = in->op;
    const struct velo_schema *cs = in->schema;
    if (plan_event_time(pl, sp, in, &cur, &cs) != VELO_OK) {
        return VELO_ERR;
    }
    in->op = cur;
    in->schema = cs;
    return VELO_OK;
}

/* ---- Common table expressions, UNION ALL, IN (SELECT ...) --------------- */

static int plan_select(struct planner *pl, const struct ast_stmt *st,
                       const struct ast_query *q, struct stmt_props *sp,
                       struct query_out *out);

/* Copy the sources read since `from` into a catalog entry. */
static void cat_take_sources(struct planner *pl, struct cat_entry *c,
                             size_t from)
{
    if (from >= pl->ntouched) {
        return;
    }
    size_t n = pl->ntouched - from;
    size_t *s = malloc(n * sizeof(*s));
    if (s == NULL) {
        return;
    }
    memcpy(s, pl->touched + from, n * sizeof(*s));
    free(c->srcs);
    c->srcs = s;
    c->nsrcs = n;
}

/* WITH name AS (query): planned like CREATE STREAM name AS, visible to
 * the rest of its statement only. */
static int plan_cte(struct planner *pl, const struct ast_stmt *st,
                    const struct ast_cte *cte, struct stmt_props *sp)
{
    struct cat_entry *old = cat_find(pl, cte->name.name);
    if (old != NULL) {
        char hint[160];
        snprintf(hint, sizeof(hint),
                 "'%s' is defined on line %d; give the WITH query another "
                 "name",
                 cte->name.name, old->line);
        perr(pl, cte->name.pos, "V3008", hint, "'%s' is already defined",
             cte->name.name);
        return VELO_ERR;
    }
    size_t touched0 = pl->ntouched;
    struct query_out qo;
    pl->nested++;
    int qrc = plan_query(pl, st, cte->query, sp, &qo);
    pl->nested--;
    if (qrc != VELO_OK) {
        return VELO_ERR;
    }
    struct velo_op *tee = add_op(pl, velo_op_tee(pl->env->exec, qo.schema),
                                 "Tee", cte->name.pos);
    int rc = VELO_ERR;
    if (tee != NULL &&
        connect_ops(pl, qo.op, tee, cte->name.pos) == VELO_OK) {
        char l[200];
        snprintf(l, sizeof(l), "WITH %s", cte->name.name);
        add_node(pl, PN_TARGET, tee, l, "in-process, read by this statement",
                 NULL, 0, tee->out_schema);
        struct cat_entry *c = cat_add(pl, cte->name.name, CAT_STREAM,
                                      cte->name.pos);
        if (c != NULL) {
            c->out = c->in = tee;
            c->schema = tee->out_schema;
            c->bounded = qo.bounded;
            c->changelog = qo.changelog;
            c->cte = 1;
            c->ooo_us = qo.ooo_us;
            c->has_sink = 1; /* read here or not, it is not an output */
            cat_take_sources(pl, c, touched0);
            sql_buf_printf(&pl->canon, "CTE %s\n", cte->name.name);
            rc = VELO_OK;
        }
    }
    query_out_free(&qo);
    return rc;
}

/* A Project keeping columns [0, n) of s as they are. */
static struct velo_op *keep_columns(struct planner *pl,
                                    const struct velo_schema *s, size_t n,
                                    struct sql_pos pos)
{
    struct velo_expr **ex = calloc(n + 1, sizeof(*ex));
    const char **names = calloc(n + 1, sizeof(*names));
    uint8_t *hidden = calloc(n + 1, 1);
    struct velo_op *op = NULL;
    if (ex == NULL || names == NULL || hidden == NULL) {
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        ex[i] = velo_expr_new(VELO_EXPR_COLUMN, s->fields[i].type, 0);
        if (ex[i] == NULL) {
            goto out;
        }
        ex[i]->u.column = (int)i;
        names[i] = s->fields[i].name;
        hidden[i] = (uint8_t)s->fields[i].hidden;
    }
    op = velo_op_project(pl->env->exec, s, ex, names, hidden, n);
    for (size_t i = 0; i < n; i++) {
        ex[i] = NULL;
    }
out:
    for (size_t i = 0; ex != NULL && i < n; i++) {
        velo_expr_free(ex[i]);
    }
    free(ex);
    free(names);
    free(hidden);
    return add_op(pl, op, "Project", pos);
}

/* WHERE x [NOT] IN (SELECT k FROM t): a semi-join (anti-join) against
 * the subquery's rows, held like a table. */
static int plan_in_query(struct planner *pl, const struct ast_stmt *st,
                         struct stmt_props *sp, const struct ast_expr *c,
                         struct binder *b, struct velo_op **cur,
                         const struct velo_schema **cur_schema)
{
    size_t touched0 = pl->ntouched;
    size_t branches[2];
    branches[0] = last_node(pl);
    struct query_out qo;
    pl->nested++;
    int qrc = plan_query(pl, st, c->sub, sp, &qo);
    pl->nested--;
    if (qrc != VELO_OK) {
        return VELO_ERR;
    }
    branches[1] = last_node(pl);
    size_t touched1 = pl->ntouched;
    int rc = VELO_ERR;
    int kcol = -1;
    size_t nvis = 0;
    for (size_t i = 0; i < qo.schema->n; i++) {
        if (!qo.schema->fields[i].hidden) {
            kcol = kcol < 0 ? (int)i : kcol;
            nvis++;
        }
    }
    struct velo_join_keys keys = {0};
    struct velo_expr *lk = NULL, *rk = NULL, *lk2 = NULL;
    if (nvis != 1) {
        perr(pl, c->sub->pos, "V5034",
             "select the one column to compare: x IN (SELECT k FROM t)",
             "the subquery of IN returns %zu columns, not 1", nvis);
        goto out;
    }
    if (!qo.bounded && !qo.changelog) {
        perr(pl, c->sub->pos, "V5033",
             "IN (SELECT ...) reads a TABLE or a bounded source, held as a "
             "set of keys; for two streams use an interval join",
             "the subquery of IN reads an unbounded stream");
        goto out;
    }
    if (qo.bounded) {
        preload_range(pl, touched0, touched1);
    }
    lk = fold_constants(b, bind_expr(b, c->args[0]), c->args[0]->pos);
    rk = velo_expr_new(VELO_EXPR_COLUMN, qo.schema->fields[kcol].type, 0);
    if (lk == NULL || rk == NULL) {
        goto out;
    }
    rk->u.column = kcol;
    if (unify_keys(pl, &lk, &rk, c->pos) != VELO_OK) {
        goto out;
    }
    if (c->negated) {
        lk2 = velo_expr_clone(lk);
        if (lk2 == NULL) {
            oom(pl, c->pos);
            goto out;
        }
    }
    keys.lkeys = calloc(1, sizeof(*keys.lkeys));
    keys.rkeys = calloc(1, sizeof(*keys.rkeys));
    if (keys.lkeys == NULL || keys.rkeys == NULL) {
        oom(pl, c->pos);
        goto out;
    }
    keys.lkeys[0] = lk;
    keys.rkeys[0] = rk;
    keys.nkeys = 1;
    keys.type = c->negated ? VELO_JOIN_LEFT : VELO_JOIN_INNER;
    lk = rk = NULL;
    sql_buf_printf(&pl->canon, "%s ", c->negated ? "ANTIJOIN" : "SEMIJOIN");
    canon_expr(keys.lkeys[0], &pl->canon);
    sql_buf_puts(&pl->canon, "\n");
    size_t ln = (*cur_schema)->n;
    const struct velo_schema *ls = *cur_schema;
    struct velo_op *op = velo_op_lookup_join(pl->env->exec, ls, qo.schema,
                                             &keys, NULL);
    free(keys.lkeys);
    free(keys.rkeys);
    memset(&keys, 0, sizeof(keys));
    op = add_op(pl, op, "LookupJoin", c->pos);
    if (op == NULL ||
        connect_ops(pl, *cur, velo_op_port(op, 0), c->pos) != VELO_OK ||
        connect_ops(pl, qo.op, velo_op_port(op, 1), c->pos) != VELO_OK) {
        goto out;
    }
    char *txt = span_text(pl->t, c->pos);
    add_node(pl, PN_OP, op, c->negated ? "AntiJoin" : "SemiJoin", txt,
             "rows whose key is (not) in the subquery's rows", 0,
             op->out_schema);
    set_inputs(pl, branches, 2);
    free(txt);
    struct velo_op *last = op;
    if (c->negated) {
        /* NOT IN: no match, and a key (NULL NOT IN (...) is not TRUE). */
        struct velo_expr *rnull = velo_expr_new(
            VELO_EXPR_IS_NULL, velo_type_of(VELO_TYPE_BOOLEAN), 1);
        struct velo_expr *lnn = velo_expr_new(
            VELO_EXPR_IS_NULL, velo_type_of(VELO_TYPE_BOOLEAN), 1);
        struct velo_expr *rcol = velo_expr_new(
            VELO_EXPR_COLUMN, qo.schema->fields[kcol].type, 0);
        struct velo_expr *both = velo_expr_new(
            VELO_EXPR_AND, velo_type_of(VELO_TYPE_BOOLEAN), 2);
        if (rnull == NULL || lnn == NULL || rcol == NULL || both == NULL) {
            velo_expr_free(rnull);
            velo_expr_free(lnn);
            velo_expr_free(rcol);
            velo_expr_free(both);
            oom(pl, c->pos);
            goto out;
        }
        rcol->u.column = (int)ln + kcol;
        rnull->args[0] = rcol;
        lnn->args[0] = lk2;
        lnn->u.negated = 1;
        lk2 = NULL;
        both->args[0] = lnn;
        both->args[1] = rnull;
        struct velo_op *f = add_op(pl, velo_op_filter(pl->env->exec,
                                                      op->out_schema, both),
                                   "Filter", c->pos);
        if (f == NULL || connect_ops(pl, op, f, c->pos) != VELO_OK) {
            goto out;
        }
        add_node(pl, PN_OP, f, "Filter", "no match in the subquery", NULL, 0,
                 f->out_schema);
        last = f;
    }
    struct velo_op *pj = keep_columns(pl, last->out_schema, ln, c->pos);
    if (pj == NULL || connect_ops(pl, last, pj, c->pos) != VELO_OK) {
        goto out;
    }
    add_node(pl, PN_OP, pj, "Project", "the left side's columns", NULL, 0,
             pj->out_schema);
    (void)ls;
    *cur = pj;
    *cur_schema = pj->out_schema;
    b->in.schema = pj->out_schema;
    rc = VELO_OK;
out:
    velo_expr_free(lk);
    velo_expr_free(rk);
    velo_expr_free(lk2);
    query_out_free(&qo);
    return rc;
}

/* The common type of a UNION ALL column. */
static int union_type(struct velo_datatype a, struct velo_datatype b,
                      struct velo_datatype *out)
{
    if (same_type(a, b) || b.id == VELO_TYPE_NULL) {
        *out = a;
        return VELO_OK;
    }
    if (a.id == VELO_TYPE_NULL) {
        *out = b;
        return VELO_OK;
    }
    if (velo_type_is_numeric(a) && velo_type_is_numeric(b)) {
        *out = numeric_common(a, b);
        return VELO_OK;
    }
    if (a.id == VELO_TYPE_STRING && b.id == VELO_TYPE_STRING) {
        *out = a;
        return VELO_OK;
    }
    return VELO_ERR;
}

static int plan_union(struct planner *pl, const struct ast_stmt *st,
                      const struct ast_query *q, struct stmt_props *sp,
                      struct query_out *out)
{
    size_t n = 0;
    for (const struct ast_query *m = q; m != NULL; m = m->union_next) {
        n++;
    }
    struct query_out *outs = calloc(n, sizeof(*outs));
    const struct ast_query **qs = calloc(n, sizeof(*qs));
    size_t *branches = NULL;
    size_t *member_last = calloc(n, sizeof(*member_last));
    struct velo_datatype *types = NULL;
    int rc = VELO_ERR;
    size_t planned = 0, nvis = 0;
    size_t errors0 = pl->diags->errors;
    if (outs == NULL || qs == NULL || member_last == NULL) {
        oom(pl, q->pos);
        goto out;
    }
    size_t i = 0;
    for (const struct ast_query *m = q; m != NULL; m = m->union_next) {
        qs[i] = m;
        if (plan_select(pl, st, m, sp, &outs[i]) != VELO_OK) {
            goto out;
        }
        if (member_last != NULL) {
            member_last[i] = last_node(pl);
        }
        planned = ++i;
    }
    for (size_t f = 0; f < outs[0].schema->n; f++) {
        nvis += !outs[0].schema->fields[f].hidden;
    }
    types = calloc(nvis + 1, sizeof(*types));
    if (types == NULL) {
        oom(pl, q->pos);
        goto out;
    }
    int has_ts = 1;
    for (size_t k = 0; k < n; k++) {
        const struct velo_schema *s = outs[k].schema;
        size_t v = 0;
        for (size_t f = 0; f < s->n; f++) {
            if (s->fields[f].hidden) {
                continue;
            }
            if (v < nvis) {
                if (k == 0) {
                    types[v] = s->fields[f].type;
                } else if (union_type(types[v], s->fields[f].type,
                                      &types[v]) != VELO_OK) {
                    char ta[40], tb[40];
                    perr(pl, qs[k]->pos, "V4013",
                         "cast the column so every SELECT gives one type",
                         "column %zu of the UNION ALL is %s in the first "
                         "SELECT and %s here",
                         v + 1, type_name(types[v], ta, sizeof(ta)),
                         type_name(s->fields[f].type, tb, sizeof(tb)));
                }
            }
            v++;
        }
        if (v != nvis) {
            perr(pl, qs[k]->pos, "V5036",
                 "give every SELECT of a UNION ALL the same columns",
                 "this SELECT has %zu columns, the first has %zu", v, nvis);
        }
        if (velo_schema_find(s, VELO_COL_TIMESTAMP) < 0) {
            has_ts = 0;
        }
    }
    if (pl->diags->errors > errors0) {
        goto out;
    }
    struct velo_op *u = NULL;
    branches = calloc(n, sizeof(*branches));
    if (branches == NULL) {
        oom(pl, q->pos);
        goto out;
    }
    for (size_t k = 0; k < n; k++) {
        const struct velo_schema *s = outs[k].schema;
        size_t np = nvis + (size_t)has_ts;
        struct velo_expr **ex = calloc(np + 1, sizeof(*ex));
        const char **names = calloc(np + 1, sizeof(*names));
        uint8_t *hidden = calloc(np + 1, 1);
        if (ex == NULL || names == NULL || hidden == NULL) {
            free(ex);
            free(names);
            free(hidden);
            oom(pl, q->pos);
            goto out;
        }
        size_t v = 0;
        int okk = 1;
        for (size_t f = 0; f < s->n && okk; f++) {
            if (s->fields[f].hidden) {
                continue;
            }
            struct velo_expr *x =
                velo_expr_new(VELO_EXPR_COLUMN, s->fields[f].type, 0);
            if (x == NULL) {
                okk = 0;
                break;
            }
            x->u.column = (int)f;
            x = cast_to(x, types[v]);
            if (x == NULL) {
                okk = 0;
                break;
            }
            ex[v] = x;
            /* Names come from the first SELECT. */
            size_t vv = 0;
            for (size_t g = 0; g < outs[0].schema->n; g++) {
                if (outs[0].schema->fields[g].hidden) {
                    continue;
                }
                if (vv++ == v) {
                    names[v] = outs[0].schema->fields[g].name;
                    break;
                }
            }
            v++;
        }
        if (okk && has_ts) {
            int ts = velo_schema_find(s, VELO_COL_TIMESTAMP);
            ex[v] = velo_expr_new(VELO_EXPR_COLUMN,
                                  velo_type_of(VELO_TYPE_TIMESTAMP), 0);
            if (ex[v] == NULL) {
                okk = 0;
            } else {
                ex[v]->u.column = ts;
                names[v] = VELO_COL_TIMESTAMP;
                hidden[v] = 1;
            }
        }
        struct velo_op *pj = NULL;
        if (okk) {
            pj = velo_op_project(pl->env->exec, s, ex, names, hidden, np);
            for (size_t x = 0; x < np; x++) {
                ex[x] = NULL;
            }
        }
        for (size_t x = 0; x < np; x++) {
            velo_expr_free(ex[x]);
        }
        free(ex);
        free(names);
        free(hidden);
        pj = add_op(pl, pj, "Project", qs[k]->pos);
        if (pj == NULL || connect_ops(pl, outs[k].op, pj, qs[k]->pos) !=
                              VELO_OK) {
            goto out;
        }
        add_node(pl, PN_OP, pj, "Project", "to the UNION ALL's columns", NULL,
                 0, pj->out_schema);
        /* Its input is its member's last node (the members were all
         * planned before the Projects). */
        set_inputs(pl, &member_last[k], 1);
        branches[k] = last_node(pl);
        if (k == 0) {
            u = add_op(pl, velo_op_union(pl->env->exec, pj->out_schema, n),
                       "UnionAll", q->union_pos);
            if (u == NULL) {
                goto out;
            }
        }
        if (connect_ops(pl, pj, velo_op_port(u, k), q->union_pos) !=
            VELO_OK) {
            goto out;
        }
    }
    char det[64];
    snprintf(det, sizeof(det), "%zu inputs", n);
    add_node(pl, PN_OP, u, "UnionAll", det, NULL, 0, u->out_schema);
    set_inputs(pl, branches, n);
    sql_buf_printf(&pl->canon, "UNION %zu\n", n);
    memset(out, 0, sizeof(*out));
    out->op = u;
    out->schema = u->out_schema;
    out->emit = -1;
    out->bounded = 1;
    for (size_t k = 0; k < n; k++) {
        out->bounded &= outs[k].bounded;
        out->changelog |= outs[k].changelog;
        if (outs[k].ooo_us > out->ooo_us) {
            out->ooo_us = outs[k].ooo_us;
        }
    }
    rc = VELO_OK;
out:
    for (size_t k = 0; k < planned; k++) {
        query_out_free(&outs[k]);
    }
    free(outs);
    free(qs);
    free(types);
    free(branches);
    free(member_last);
    return rc;
}

static int plan_query(struct planner *pl, const struct ast_stmt *st,
                      const struct ast_query *q, struct stmt_props *sp,
                      struct query_out *out)
{
    memset(out, 0, sizeof(*out));
    out->emit = -1;
    for (size_t i = 0; i < q->nctes; i++) {
        if (plan_cte(pl, st, &q->ctes[i], sp) != VELO_OK) {
            return VELO_ERR;
        }
    }
    if (q->union_next == NULL) {
        return plan_select(pl, st, q, sp, out);
    }
    return plan_union(pl, st, q, sp, out);
}

/* ---- Window functions: OVER, Top-N, deduplication ----------------------- */

static void collect_over(const struct ast_expr *e, const struct ast_expr **out,
                         size_t *n, size_t cap)
{
    if (e == NULL) {
        return;
    }
    if (e->kind == AX_CALL && e->over != NULL) {
        if (*n < cap) {
            out[(*n)++] = e;
        }
        return;
    }
    for (size_t i = 0; i < e->nargs; i++) {
        collect_over(e->args[i], out, n, cap);
    }
}

#define MAX_OVER 32

/* The outer query of a Top-N or deduplication: SELECT ... FROM (SELECT
 * ..., ROW_NUMBER() OVER (...) AS rn FROM s) WHERE rn <= N. Fills req and
 * returns the WHERE conjunct it stands for, or NULL. */
static const struct ast_expr *detect_topn(const struct ast_query *q,
                                          struct topn_req *req)
{
    if (!q->has_from || q->from.kind != FROM_SUBQUERY || q->where == NULL) {
        return NULL;
    }
    const struct ast_query *sub = q->from.sub;
    if (sub->union_next != NULL) {
        return NULL;
    }
    const char *alias = NULL;
    for (size_t i = 0; i < sub->nitems; i++) {
        const struct ast_expr *e = sub->items[i].expr;
        if (e->kind == AX_CALL && e->over != NULL &&
            strcmp(e->name, "ROW_NUMBER") == 0 && e->nargs == 0 &&
            sub->items[i].alias.name != NULL) {
            alias = sub->items[i].alias.name;
        }
    }
    if (alias == NULL) {
        return NULL;
    }
    const struct ast_expr *cj[MAX_CONJUNCTS];
    size_t ncj = 0;
    conjuncts(q->where, cj, &ncj, MAX_CONJUNCTS);
    for (size_t i = 0; i < ncj; i++) {
        const struct ast_expr *c = cj[i];
        if (c->kind != AX_BINARY || c->nargs != 2) {
            continue;
        }
        const struct ast_expr *nm = c->args[0], *lit = c->args[1];
        int op = c->op;
        if (nm->kind == AX_INTEGER && lit->kind == AX_NAME) {
            const struct ast_expr *t = nm;
            nm = lit;
            lit = t;
            op = op == TK_GE ? TK_LE : op == TK_GT ? TK_LT : op;
        }
        if (nm->kind != AX_NAME || lit->kind != AX_INTEGER ||
            strcasecmp(nm->parts[nm->nparts - 1].name, alias) != 0) {
            continue;
        }
        int64_t v = strtoll(lit->text, NULL, 10);
        int64_t n = op == TK_LE ? v : op == TK_LT ? v - 1
                                 : op == TK_EQ && v == 1 ? 1 : -1;
        if (n < 1) {
            continue;
        }
        req->alias = alias;
        req->n = n;
        req->emit = q->emit;
        req->consumed = 0;
        return c;
    }
    return NULL;
}

static const char *const ranking_fns[] = {"ROW_NUMBER", "RANK",
                                          "DENSE_RANK"};

/* Plan the SELECT list's window functions over the rows at *cur: an Over
 * operator, or Top-N / deduplication when the outer query asked (req).
 * Sets the binder's references to the computed columns. */
static int plan_over(struct planner *pl, struct stmt_props *sp,
                     const struct ast_query *q, const struct input *in,
                     struct binder *b, struct velo_op **cur,
                     const struct velo_schema **cur_schema,
                     struct topn_req *req, struct bind_over_ref **refs_out,
                     int *changelog, int *emit_out)
{
    const struct ast_expr *calls[MAX_OVER];
    size_t ncalls = 0;
    for (size_t i = 0; i < q->nitems; i++) {
        collect_over(q->items[i].expr, calls, &ncalls, MAX_OVER);
    }
    if (ncalls == 0) {
        return VELO_OK;
    }
    const struct velo_exec_env *ex = pl->env->exec;
    const struct velo_schema *s = *cur_schema;
    size_t errors0 = pl->diags->errors;
    const struct ast_over *o = calls[0]->over;
    /* One window specification per query. */
    char *spec0 = NULL;
    for (size_t i = 0; i < ncalls; i++) {
        const struct ast_over *oi = calls[i]->over;
        struct sql_buf t = {0};
        for (size_t k = 0; k < oi->npartition; k++) {
            char *x = span_text(pl->t, oi->partition[k]->pos);
            sql_buf_printf(&t, "%s,", x ? x : "");
            free(x);
        }
        sql_buf_puts(&t, "|");
        for (size_t k = 0; k < oi->norder; k++) {
            char *x = span_text(pl->t, oi->order[k].expr->pos);
            sql_buf_printf(&t, "%s %d,", x ? x : "", oi->order[k].desc);
            free(x);
        }
        if (i == 0) {
            spec0 = sql_buf_take(&t);
        } else if (spec0 != NULL && t.data != NULL &&
                   strcasecmp(spec0, t.data) != 0) {
            perr(pl, oi->pos, "V5034",
                 "give every window function of a query the same PARTITION "
                 "BY and ORDER BY, or compute them in separate queries",
                 "window functions with different PARTITION BY or ORDER BY "
                 "in one query");
        }
        sql_buf_free(&t);
    }
    free(spec0);
    if (pl->diags->errors > errors0) {
        return VELO_ERR;
    }
    /* PARTITION BY */
    struct velo_expr **part = calloc(o->npartition + 1, sizeof(*part));
    struct velo_sort_key *order = calloc(o->norder + 1, sizeof(*order));
    struct bind_over_ref *refs = calloc(ncalls, sizeof(*refs));
    struct velo_over_call *oc = calloc(ncalls, sizeof(*oc));
    char **names = calloc(ncalls, sizeof(*names));
    int rc = VELO_ERR;
    if (part == NULL || order == NULL || refs == NULL || oc == NULL ||
        names == NULL) {
        oom(pl, o->pos);
        goto out;
    }
    b->no_agg = "OVER";
    for (size_t k = 0; k < o->npartition; k++) {
        part[k] = fold_constants(b, bind_expr(b, o->partition[k]),
                                 o->partition[k]->pos);
    }
    /* ORDER BY: on the event time, rows are processed in time order as
     * the watermark passes them. */
    int order_is_time = 0;
    const struct ast_prop *etf = in->cat != NULL
                                     ? input_prop(sp, in, "event.time.field")
                                     : NULL;
    int ts = velo_schema_find(s, VELO_COL_TIMESTAMP);
    for (size_t k = 0; k < o->norder; k++) {
        const struct ast_expr *oe = o->order[k].expr;
        struct velo_expr *x = NULL;
        if (k == 0 && ts >= 0 && oe->kind == AX_NAME &&
            ((etf != NULL &&
              strcasecmp(oe->parts[oe->nparts - 1].name, etf->value) == 0) ||
             strcasecmp(oe->parts[oe->nparts - 1].name,
                        VELO_COL_TIMESTAMP) == 0)) {
            x = velo_expr_new(VELO_EXPR_COLUMN,
                              velo_type_of(VELO_TYPE_TIMESTAMP), 0);
            if (x != NULL) {
                x->u.column = ts;
                order_is_time = 1;
            }
        } else {
            x = fold_constants(b, bind_expr(b, oe), oe->pos);
        }
        order[k].expr = x;
        order[k].desc = o->order[k].desc;
        order[k].nulls_first = o->order[k].nulls >= 0 ? o->order[k].nulls
                                                      : o->order[k].desc;
    }
    b->no_agg = NULL;
    if (pl->diags->errors > errors0) {
        goto out;
    }
    /* Top-N / deduplication for an outer rn <= N. */
    if (req != NULL && ncalls == 1 &&
        strcmp(calls[0]->name, "ROW_NUMBER") == 0) {
        struct velo_op *op;
        struct sql_buf det = {0};
        const char *label;
        char *ptxt = NULL;
        for (size_t k = 0; k < o->npartition; k++) {
            char *x = span_text(pl->t, o->partition[k]->pos);
            sql_buf_printf(&det, "%s%s", k ? ", " : "per ", x ? x : "?");
            free(x);
        }
        free(ptxt);
        sql_buf_printf(&pl->canon, "TOPN %" PRId64 " parts=%zu ", req->n,
                       o->npartition);
        for (size_t k = 0; k < o->npartition; k++) {
            canon_expr(part[k], &pl->canon);
            sql_buf_puts(&pl->canon, ";");
        }
        for (size_t k = 0; k < o->norder; k++) {
            canon_expr(order[k].expr, &pl->canon);
            sql_buf_puts(&pl->canon, order[k].desc ? "D;" : "A;");
        }
        sql_buf_puts(&pl->canon, "\n");
        if (order_is_time && o->norder == 1 && req->n == 1) {
            int keep_last = order[0].desc;
            int64_t ttl = 0;
            const struct ast_prop *tp =
                in->cat != NULL ? input_prop(sp, in, "state.ttl") : NULL;
            if (tp != NULL) {
                prop_duration(pl, tp, &ttl);
            }
            op = velo_op_dedup(ex, s, part, o->npartition, keep_last, ttl);
            velo_expr_free(order[0].expr);
            order[0].expr = NULL;
            memset(part, 0, (o->npartition + 1) * sizeof(*part));
            label = "Deduplicate";
            sql_buf_printf(&det, "; keeps the %s row per key",
                           keep_last ? "latest" : "first");
            refs[0].col = -1;
            *changelog = keep_last;
        } else {
            if (o->norder == 0) {
                perr(pl, o->pos, "V5034",
                     "order the rows: ROW_NUMBER() OVER (PARTITION BY k "
                     "ORDER BY v DESC)",
                     "a Top-N needs ORDER BY in its OVER");
                sql_buf_free(&det);
                goto out;
            }
            int emit = req->emit >= 0 ? req->emit
                       : q->emit >= 0 ? q->emit
                       : in->bounded  ? VELO_EMIT_FINAL
                                      : VELO_EMIT_CHANGES;
            if (emit == VELO_EMIT_FINAL && !in->bounded) {
                perr(pl, q->emit_pos.len ? q->emit_pos : o->pos, "V5006",
                     "a Top-N over an unbounded input updates as rows "
                     "arrive: use EMIT CHANGES",
                     "EMIT FINAL needs a bounded input here");
                sql_buf_free(&det);
                goto out;
            }
            op = velo_op_topn(ex, s, part, o->npartition, order, o->norder,
                              req->n, req->alias, emit);
            memset(part, 0, (o->npartition + 1) * sizeof(*part));
            for (size_t k = 0; k < o->norder; k++) {
                order[k].expr = NULL;
            }
            label = "TopN";
            sql_buf_printf(&det, "; top %" PRId64, req->n);
            refs[0].col = (int)s->n;
            *changelog = emit == VELO_EMIT_CHANGES;
            *emit_out = emit;
        }
        refs[0].call = calls[0];
        req->consumed = 1;
        op = add_op(pl, op, label, o->pos);
        if (op == NULL || connect_ops(pl, *cur, op, o->pos) != VELO_OK) {
            sql_buf_free(&det);
            goto out;
        }
        add_node(pl, PN_OP, op, label, det.data,
                 *changelog ? "a changelog as rows arrive"
                            : "at end of input",
                 0, op->out_schema);
        sql_buf_free(&det);
        *cur = op;
        *cur_schema = op->out_schema;
        b->in.schema = op->out_schema;
        *refs_out = refs;
        refs = NULL;
        rc = VELO_OK;
        goto out;
    }
    if (!order_is_time && !in->bounded) {
        perr(pl, o->norder ? o->order[0].expr->pos : o->pos, "V5005",
             "on an unbounded input, order window functions by the event "
             "time: OVER (PARTITION BY k ORDER BY ts) with "
             "'<src>.event.time.field'='ts'",
             "window functions over an unbounded input need ORDER BY the "
             "event time");
        goto out;
    }
    if (o->norder > 1) {
        perr(pl, o->order[1].expr->pos, "V5034",
             "order window functions by one column",
             "ORDER BY with several columns in OVER is not supported");
        goto out;
    }
    for (size_t i = 0; i < ncalls; i++) {
        const struct ast_expr *c = calls[i];
        const struct ast_over *oi = c->over;
        struct velo_over_call *k = &oc[i];
        refs[i].call = c;
        refs[i].col = (int)(s->n + i);
        char *txt = span_text(pl->t, c->pos);
        names[i] = txt != NULL ? txt : strdup("over");
        k->name = names[i];
        size_t nr = sizeof(ranking_fns) / sizeof(*ranking_fns);
        int rank = -1;
        for (size_t r = 0; r < nr; r++) {
            if (strcmp(c->name, ranking_fns[r]) == 0) {
                rank = (int)r;
            }
        }
        if (rank >= 0) {
            if (c->nargs != 0) {
                perr(pl, c->pos, "V4001", "write it with no arguments",
                     "%s() takes no arguments", c->name);
                continue;
            }
            k->fn = rank == 0 ? VELO_WF_ROW_NUMBER
                    : rank == 1 ? VELO_WF_RANK
                                : VELO_WF_DENSE_RANK;
            k->type = velo_type_of(VELO_TYPE_BIGINT);
            continue;
        }
        int lag = strcmp(c->name, "LAG") == 0, lead = strcmp(c->name, "LEAD") == 0;
        if (lag || lead) {
            if (c->nargs < 1 || c->nargs > 3) {
                perr(pl, c->pos, "V4001",
                     "LAG(x [, offset [, default]])",
                     "%s takes 1 to 3 arguments", c->name);
                continue;
            }
            k->fn = lag ? VELO_WF_LAG : VELO_WF_LEAD;
            k->arg = fold_constants(b, bind_expr(b, c->args[0]),
                                    c->args[0]->pos);
            k->offset = 1;
            if (c->nargs >= 2) {
                if (c->args[1]->kind != AX_INTEGER) {
                    perr(pl, c->args[1]->pos, "V4001",
                         "write the offset as a number: LAG(x, 2)",
                         "the offset of %s must be an integer literal",
                         c->name);
                    continue;
                }
                k->offset = strtoll(c->args[1]->text, NULL, 10);
            }
            if (k->arg == NULL) {
                continue;
            }
            k->type = k->arg->type;
            if (c->nargs == 3) {
                struct velo_expr *d = fold_constants(
                    b, bind_expr(b, c->args[2]), c->args[2]->pos);
                if (d != NULL && !same_type(d->type, k->type)) {
                    d = cast_to(d, k->type);
                }
                k->deflt = d;
            }
            continue;
        }
        int first = strcmp(c->name, "FIRST_VALUE") == 0;
        int last = strcmp(c->name, "LAST_VALUE") == 0;
        const struct velo_agg *agg = NULL;
        struct velo_expr *arg = NULL;
        if (!first && !last) {
            if (!velo_funcs_is_agg(pl->env->funcs, c->name)) {
                perr(pl, c->name_pos, "V3003",
                     "window functions are ROW_NUMBER, RANK, DENSE_RANK, "
                     "LAG, LEAD, FIRST_VALUE, LAST_VALUE and the aggregates "
                     "(SUM, COUNT, AVG, MIN, MAX, ...)",
                     "%s is not a window function", c->name);
                continue;
            }
            if (c->nargs > 1 || c->distinct || c->filter != NULL) {
                perr(pl, c->pos, "V5034",
                     "a running aggregate takes one argument, without "
                     "DISTINCT or FILTER",
                     "%s(...) OVER with these arguments is not supported",
                     c->name);
                continue;
            }
            struct velo_datatype at[1], cast[1];
            size_t na = 0;
            if (c->nargs == 1 && !c->star) {
                arg = fold_constants(b, bind_expr(b, c->args[0]),
                                     c->args[0]->pos);
                if (arg == NULL) {
                    continue;
                }
                at[0] = arg->type;
                na = 1;
            }
            memset(cast, 0, sizeof(cast));
            int known = 0;
            agg = velo_funcs_resolve_agg(pl->env->funcs, c->name, at, na,
                                         cast, &known);
            if (agg == NULL) {
                char tb[40];
                perr(pl, c->pos, "V4001", NULL,
                     "%s does not take %s", c->name,
                     na ? type_name(at[0], tb, sizeof(tb)) : "no argument");
                velo_expr_free(arg);
                continue;
            }
            if (na == 1 && cast[0].id != 0 && !same_type(cast[0], arg->type)) {
                arg = cast_to(arg, cast[0]);
            }
            k->fn = VELO_WF_AGG;
            k->agg = agg;
            k->arg = arg;
            k->type = agg->ret_type != NULL ? agg->ret_type(at, na) : agg->ret;
        } else {
            if (c->nargs != 1) {
                perr(pl, c->pos, "V4001", NULL, "%s takes one argument",
                     c->name);
                continue;
            }
            k->fn = first ? VELO_WF_FIRST_VALUE : VELO_WF_LAST_VALUE;
            k->arg = fold_constants(b, bind_expr(b, c->args[0]),
                                    c->args[0]->pos);
            if (k->arg == NULL) {
                continue;
            }
            k->type = k->arg->type;
        }
        /* The frame. */
        if (oi->frame == FRAME_ROWS && oi->preceding != NULL) {
            if (oi->preceding->kind != AX_INTEGER) {
                perr(pl, oi->preceding->pos, "V5034",
                     "ROWS BETWEEN 3 PRECEDING AND CURRENT ROW",
                     "a ROWS frame counts rows with an integer literal");
                continue;
            }
            k->frame = VELO_FRAME_ROWS;
            k->frame_rows = strtoll(oi->preceding->text, NULL, 10);
        } else if (oi->frame == FRAME_RANGE && oi->preceding != NULL) {
            int64_t us = window_interval(pl, oi->preceding, "frame range", 1);
            if (us < 0) {
                continue;
            }
            if (!order_is_time) {
                perr(pl, oi->frame_pos, "V5034",
                     "RANGE frames measure the event time: ORDER BY ts",
                     "a RANGE frame needs ORDER BY the event time");
                continue;
            }
            k->frame = VELO_FRAME_RANGE;
            k->frame_range_us = us;
        } else {
            k->frame = VELO_FRAME_UNBOUNDED;
        }
    }
    if (pl->diags->errors > errors0) {
        for (size_t i = 0; i < ncalls; i++) {
            velo_expr_free(oc[i].arg);
            velo_expr_free(oc[i].deflt);
            oc[i].arg = oc[i].deflt = NULL;
        }
        goto out;
    }
    struct velo_over_spec spec;
    memset(&spec, 0, sizeof(spec));
    spec.partition = part;
    spec.npartition = o->npartition;
    if (o->norder == 1) {
        spec.order = order[0];
    }
    spec.order_is_time = order_is_time;
    spec.calls = oc;
    spec.ncalls = ncalls;
    const struct ast_prop *tp =
        in->cat != NULL ? input_prop(sp, in, "state.ttl") : NULL;
    if (tp != NULL) {
        prop_duration(pl, tp, &spec.idle_ttl_us);
    }
    sql_buf_printf(&pl->canon, "OVER parts=%zu time=%d ", o->npartition,
                   order_is_time);
    for (size_t k = 0; k < o->npartition; k++) {
        canon_expr(part[k], &pl->canon);
        sql_buf_puts(&pl->canon, ";");
    }
    if (spec.order.expr != NULL) {
        canon_expr(spec.order.expr, &pl->canon);
    }
    for (size_t i = 0; i < ncalls; i++) {
        sql_buf_printf(&pl->canon, " %d/%d/%" PRId64 "/%" PRId64 "/%" PRId64
                                   ":",
                       oc[i].fn, oc[i].frame, oc[i].frame_rows,
                       oc[i].frame_range_us, oc[i].offset);
        if (oc[i].arg != NULL) {
            canon_expr(oc[i].arg, &pl->canon);
        }
    }
    sql_buf_puts(&pl->canon, "\n");
    if (order_is_time) {
        /* Rows are released in time order as the watermark passes. */
        struct input w;
        memset(&w, 0, sizeof(w));
        w.op = *cur;
        w.schema = s;
        w.ooo_us = in->ooo_us;
        if (add_watermark(pl, &w, ts, NULL, o->pos) != VELO_OK) {
            goto out;
        }
        *cur = w.op;
        s = w.schema;
    }
    struct velo_op *op = velo_op_over(ex, s, &spec);
    /* The operator owns the expressions and calls now. */
    memset(part, 0, (o->npartition + 1) * sizeof(*part));
    order[0].expr = NULL;
    oc = NULL;
    op = add_op(pl, op, "Over", o->pos);
    if (op == NULL || connect_ops(pl, *cur, op, o->pos) != VELO_OK) {
        goto out;
    }
    {
        struct sql_buf det = {0};
        char *ot = span_text(pl->t, o->pos);
        sql_buf_printf(&det, "%zu function%s %s", ncalls,
                       ncalls == 1 ? "" : "s", ot ? ot : "");
        free(ot);
        add_node(pl, PN_OP, op, "Over", det.data,
                 order_is_time ? "each row when the watermark passes it"
                               : "at end of input, per partition in order",
                 0, op->out_schema);
        sql_buf_free(&det);
    }
    *cur = op;
    *cur_schema = op->out_schema;
    b->in.schema = op->out_schema;
    *refs_out = refs;
    refs = NULL;
    rc = VELO_OK;
out:
    for (size_t k = 0; part != NULL && k < o->npartition; k++) {
        velo_expr_free(part[k]);
    }
    for (size_t k = 0; order != NULL && k < o->norder; k++) {
        velo_expr_free(order[k].expr);
    }
    if (oc != NULL) {
        for (size_t i = 0; i < ncalls; i++) {
            velo_expr_free(oc[i].arg);
            velo_expr_free(oc[i].deflt);
        }
    }
    for (size_t i = 0; names != NULL && i < ncalls; i++) {
        free(names[i]);
    }
    free(names);
    free(oc);
    free(part);
    free(order);
    free(refs);
    if (pl->diags->errors > errors0) {
        rc = VELO_ERR;
    }
    return rc;
}

static int plan_select(struct planner *pl, const struct ast_stmt *st,
                       const struct ast_query *q, struct stmt_props *sp,
                       struct query_out *out)
{
    /* A Top-N request is for this query only, not its subqueries. */
    struct topn_req *treq = pl->topn;
    pl->topn = NULL;
    memset(out, 0, sizeof(*out));
    out->emit = -1;
    if (!q->has_from) {
        perr(pl, q->pos, "V5016",
             "every query reads a source: SELECT ... FROM "
             "'file://data/trades.csv'",
             "SELECT without FROM is not supported yet");
        return VELO_ERR;
    }
    struct binder probe = {.env = pl->env};
    int has_agg = 0;
    for (size_t i = 0; i < q->nitems; i++) {
        has_agg |= ast_has_agg(&probe, q->items[i].expr);
    }
    for (size_t i = 0; i < q->norder; i++) {
        has_agg |= ast_has_agg(&probe, q->order[i].expr);
    }
    int base_agg = q->has_group || q->distinct || q->having != NULL ||
                   has_agg;
    /* A window over a join without aggregation joins in windows. */
    int window_join = q->window.kind != WIN_NONE && !base_agg &&
                      q->from.kind == FROM_JOIN;
    int is_agg = base_agg || (q->window.kind != WIN_NONE && !window_join);

    struct topn_req myreq;
    const struct ast_expr *topn_conj = detect_topn(q, &myreq);
    pl->topn = topn_conj != NULL ? &myreq : NULL;
    struct input in;
    int frc = plan_from(pl, st, &q->from, sp, q, is_agg, &in);
    pl->topn = NULL;
    if (frc != VELO_OK) {
        return VELO_ERR;
    }
    if (topn_conj != NULL && !myreq.consumed) {
        topn_conj = NULL; /* planned as a plain filter */
    }
    const struct velo_exec_env *ex = pl->env->exec;
    struct binder b = {
        .env = pl->env, .t = pl->t, .diags = pl->diags, .mode = BIND_ROW,
        .items = q->items, .nitems = q->nitems,
    };
    b.in.schema = in.schema;
    b.in.name = in.qual;
    b.in.alias = in.alias;
    b.in.needed = in.needed;
    b.in.rels = in.rels;
    b.in.nrels = in.nrels;
    size_t errors0 = pl->diags->errors;
    struct velo_op *cur = in.op;
    const struct velo_schema *cur_schema = in.schema;
    out->bounded = in.bounded;
    out->ooo_us = in.ooo_us;
    /* Rows read from a table or a changelog keep their marks. */
    out->changelog = in.changelog;
    struct bind_over_ref *over_refs = NULL;

    /* WHERE: plain conditions in one Filter, then IN (SELECT ...)
     * conditions as semi-joins. */
    if (q->where != NULL) {
        const struct ast_expr *cj[MAX_CONJUNCTS];
        size_t ncj = 0;
        conjuncts(q->where, cj, &ncj, MAX_CONJUNCTS);
        struct velo_expr *preds[MAX_CONJUNCTS];
        size_t np = 0;
        int all_plain = 1;
        for (size_t i = 0; i < ncj; i++) {
            all_plain &= cj[i]->kind != AX_IN_QUERY && cj[i] != topn_conj;
        }
        b.no_agg = "WHERE";
        if (all_plain || ncj >= MAX_CONJUNCTS) {
            preds[np] = bind_predicate(&b, q->where, "WHERE");
            preds[np] = fold_constants(&b, preds[np], q->where->pos);
            np += preds[np] != NULL;
        } else {
            for (size_t i = 0; i < ncj; i++) {
                if (cj[i]->kind == AX_IN_QUERY || cj[i] == topn_conj) {
                    continue;
                }
                preds[np] = bind_predicate(&b, cj[i], "WHERE");
                preds[np] = fold_constants(&b, preds[np], cj[i]->pos);
                np += preds[np] != NULL;
            }
        }
        b.no_agg = NULL;
        struct velo_expr *pred = NULL;
        if (np == 1) {
            pred = preds[0];
        } else if (np > 1) {
            pred = velo_expr_new(VELO_EXPR_AND,
                                 velo_type_of(VELO_TYPE_BOOLEAN), np);
            for (size_t i = 0; i < np; i++) {
                if (pred != NULL) {
                    pred->args[i] = preds[i];
                } else {
                    velo_expr_free(preds[i]);
                }
            }
        }
        if (pred != NULL) {
            sql_buf_puts(&pl->canon, "FILTER ");
            canon_expr(pred, &pl->canon);
            sql_buf_puts(&pl->canon, "\n");
            char *txt = span_text(pl->t, q->where->pos);
            struct velo_op *op = add_op(pl, velo_op_filter(ex, cur_schema,
                                                           pred),
                                        "Filter", q->where->pos);
            if (op != NULL && connect_ops(pl, cur, op, q->where->pos) ==
                                  VELO_OK) {
                add_node(pl, PN_OP, op, "Filter", txt, NULL, 0,
                         op->out_schema);
                cur = op;
                cur_schema = op->out_schema;
            }
            free(txt);
        }
        for (size_t i = 0; !all_plain && i < ncj; i++) {
            if (cj[i]->kind == AX_IN_QUERY &&
                pl->diags->errors == errors0) {
                plan_in_query(pl, st, sp, cj[i], &b, &cur, &cur_schema);
            }
        }
    }

    /* Window functions (OVER), Top-N and deduplication. */
    if (pl->diags->errors == errors0) {
        int over_changelog = 0, over_emit = -1;
        size_t n_over0 = pl->plan->pub.nops;
        int orc = is_agg ? VELO_OK
                         : plan_over(pl, sp, q, &in, &b, &cur, &cur_schema,
                                     treq, &over_refs, &over_changelog,
                                     &over_emit);
        b.over_failed = orc != VELO_OK;
        if (orc == VELO_OK && pl->plan->pub.nops > n_over0) {
            size_t nover = 0;
            for (size_t i = 0; i < q->nitems; i++) {
                const struct ast_expr *c[MAX_OVER];
                size_t nc = 0;
                collect_over(q->items[i].expr, c, &nc, MAX_OVER);
                nover += nc;
            }
            b.over = over_refs;
            b.nover = nover > MAX_OVER ? MAX_OVER : nover;
            out->changelog |= over_changelog;
            if (over_emit >= 0) {
                out->emit = over_emit;
            }
        }
        if (is_agg) {
            const struct ast_expr *c[1];
            size_t nc = 0;
            for (size_t i = 0; i < q->nitems && nc == 0; i++) {
                collect_over(q->items[i].expr, c, &nc, 1);
            }
            if (nc > 0) {
                perr(pl, c[0]->pos, "V5034",
                     "compute the aggregation in a subquery and the window "
                     "function over it: SELECT ..., RANK() OVER (...) FROM "
                     "(SELECT k, SUM(x) AS s FROM t GROUP BY k)",
                     "window functions (OVER) together with GROUP BY or "
                     "aggregates in one query are not supported");
            }
        }
    }
    if (q->distinct && (q->has_group || has_agg || q->having)) {
        perr(pl, q->pos, "V5016",
             "compute the groups in one statement (CREATE STREAM s AS "
             "SELECT ... GROUP BY ...) and SELECT DISTINCT from it",
             "SELECT DISTINCT together with GROUP BY or aggregates is not "
             "supported yet");
        free(over_refs);
        input_free(&in);
        return VELO_ERR;
    }
    if (q->window.grace != NULL && q->window.kind == WIN_NONE) {
        perr(pl, q->window.grace_pos, "V5031",
             "GRACE follows a window: WINDOW TUMBLING(INTERVAL '1' MINUTE) "
             "GRACE INTERVAL '10' SECOND",
             "GRACE without a window");
    }
    if (!is_agg && q->emit == VELO_EMIT_FINAL && topn_conj == NULL) {
        perr(pl, q->emit_pos, "V5014",
             "EMIT FINAL applies to aggregations; add GROUP BY or an "
             "aggregate, or remove EMIT FINAL",
             "EMIT FINAL needs an aggregation");
    }

    struct agg_state agg;
    memset(&agg, 0, sizeof(agg));
    struct velo_window_spec win;
    memset(&win, 0, sizeof(win));
    struct proj pj = {0};
    struct velo_expr *having = NULL;
    int emit = -1;
    int rc = VELO_ERR;
    size_t norder_extra = 0;
    /* Sort keys: output column indexes. */
    int *sort_cols = NULL;

    if (is_agg) {
        agg.windowed = q->window.kind != WIN_NONE;
        b.agg = &agg;
        /* GROUP BY keys over the rows. */
        const struct ast_expr *const *keys_ast =
            (const struct ast_expr *const *)q->group;
        size_t nkeys_ast = q->ngroup;
        if (q->distinct) {
            keys_ast = NULL;
            nkeys_ast = 0;
        }
        for (size_t i = 0; i < nkeys_ast; i++) {
            const struct ast_expr *g =
                group_target(pl, q, cur_schema, keys_ast[i]);
            if (g == NULL) {
                continue;
            }
            if (ast_has_agg(&b, g)) {
                perr(pl, keys_ast[i]->pos, "V5009",
                     "group by the rows' values; aggregates are computed "
                     "per group",
                     "aggregate functions are not allowed in GROUP BY");
                continue;
            }
            b.no_agg = "GROUP BY";
            struct velo_expr *x = bind_expr(&b, g);
            b.no_agg = NULL;
            x = fold_constants(&b, x, g->pos);
            if (x == NULL) {
                continue;
            }
            char *canon = canon_dup(x);
            int dup = 0;
            for (size_t k = 0; canon != NULL && k < agg.nkeys; k++) {
                dup |= strcmp(agg.keys[k].canon, canon) == 0;
            }
            if (dup || canon == NULL) {
                free(canon);
                velo_expr_free(x);
                continue;
            }
            if (agg.nkeys == agg.cap_keys) {
                size_t cap = agg.cap_keys ? agg.cap_keys * 2 : 8;
                struct agg_key *nk = realloc(agg.keys, cap * sizeof(*nk));
                if (nk == NULL) {
                    free(canon);
                    velo_expr_free(x);
                    oom(pl, g->pos);
                    continue;
                }
                agg.keys = nk;
                agg.cap_keys = cap;
            }
            struct agg_key *k = &agg.keys[agg.nkeys++];
            k->expr = x;
            k->canon = canon;
            k->name = x->kind == VELO_EXPR_COLUMN
                          ? strdup(cur_schema->fields[x->u.column].name)
                          : span_text(pl->t, g->pos);
        }
        if (q->distinct) {
            /* SELECT DISTINCT a, b: the items are the keys. */
            for (size_t i = 0; i < q->nitems; i++) {
                const struct ast_expr *e = q->items[i].expr;
                struct proj tmp = {0};
                if (e->kind == AX_STAR) {
                    if (expand_star(&b, e, &tmp) != VELO_OK) {
                        proj_free(&tmp);
                        continue;
                    }
                } else {
                    struct velo_expr *x = fold_constants(&b, bind_expr(&b, e),
                                                         e->pos);
                    if (x == NULL ||
                        proj_add(&tmp, x, span_text(pl->t, e->pos), 0, 0) !=
                            VELO_OK) {
                        proj_free(&tmp);
                        continue;
                    }
                }
                for (size_t j = 0; j < tmp.n; j++) {
                    if (agg.nkeys == agg.cap_keys) {
                        size_t cap = agg.cap_keys ? agg.cap_keys * 2 : 8;
                        struct agg_key *nk =
                            realloc(agg.keys, cap * sizeof(*nk));
                        if (nk == NULL) {
                            break;
                        }
                        agg.keys = nk;
                        agg.cap_keys = cap;
                    }
                    struct agg_key *k = &agg.keys[agg.nkeys++];
                    k->expr = tmp.c[j].expr;
                    k->canon = tmp.c[j].canon;
                    k->name = tmp.c[j].name;
                    tmp.c[j].expr = NULL;
                    tmp.c[j].canon = NULL;
                    tmp.c[j].name = NULL;
                }
                proj_free(&tmp);
            }
        }
        if (pl->diags->errors > errors0) {
            /* Without every key, every column would look ungrouped. */
            goto done;
        }
        /* The window. */
        if (q->window.kind != WIN_NONE) {
            win.kind = q->window.kind == WIN_HOPPING   ? VELO_WINDOW_HOPPING
                       : q->window.kind == WIN_SESSION ? VELO_WINDOW_SESSION
                                                       : VELO_WINDOW_TUMBLING;
            if (win.kind == VELO_WINDOW_HOPPING && q->window.time == NULL &&
                q->window.size->kind == AX_NAME) {
                /* HOPPING(ts, size): a time column and no advance. */
                perr(pl, q->window.pos, "V5016",
                     "name the advance too: HOPPING(ts, INTERVAL '10' "
                     "SECOND, INTERVAL '2' SECOND)",
                     "a HOPPING window without an advance is not "
                     "supported yet");
                goto done;
            }
            win.size_us = q->window.size ? window_size(pl, q->window.size)
                                         : -1;
            if (q->window.advance != NULL) {
                win.advance_us = window_interval(pl, q->window.advance,
                                                 "window advance", 0);
                if (win.advance_us > 0 && win.size_us > 0 &&
                    win.advance_us > win.size_us) {
                    perr(pl, q->window.advance->pos, "V5030",
                         "HOPPING(size, advance): a window starts every "
                         "advance, which is at most the size (equal is a "
                         "tumbling window)",
                         "the window advance is longer than its size, so "
                         "some rows would be in no window");
                }
            }
            if (q->window.grace != NULL) {
                win.grace_us = window_interval(pl, q->window.grace,
                                               "grace period", 1);
            } else {
                /* '<job>.window.grace' (or on the input), as GRACE. */
                const struct ast_prop *gp =
                    st->name.name != NULL
                        ? find_prop(sp, st->name.name, "window.grace")
                        : NULL;
                if (gp == NULL) {
                    gp = input_prop(sp, &in, "window.grace");
                }
                if (gp != NULL) {
                    prop_duration(pl, gp, &win.grace_us);
                }
            }
            /* The sources' allowance, or the one of the streams read. */
            win.max_ooo_us = in.ooo_us;
            const struct ast_prop *lp = NULL;
            if (st->name.name != NULL) {
                lp = find_prop(sp, st->name.name, "late.data.strategy");
            }
            if (lp == NULL) {
                lp = input_prop(sp, &in, "late.data.strategy");
            }
            if (lp == NULL) {
                win.late_strategy = VELO_LATE_DROP;
            } else if (strcasecmp(lp->value, "drop") == 0) {
                win.late_strategy = VELO_LATE_DROP;
            } else if (strcasecmp(lp->value, "update") == 0) {
                win.late_strategy = VELO_LATE_UPDATE;
                if (q->emit != VELO_EMIT_CHANGES) {
                    perr(pl, lp->value_pos, "V5032",
                         "add EMIT CHANGES: late rows then update the "
                         "window's row; EMIT FINAL rows are final",
                         "late data strategy 'update' needs EMIT CHANGES");
                }
            } else if (strcasecmp(lp->value, "dead_letter") == 0) {
                win.late_strategy = VELO_LATE_DROP;
                if (pl->plan->pub.dlq_path == NULL) {
                    perr(pl, lp->value_pos, "V5016",
                         "name the file: '<job>.dlq.path'='late.jsonl' (or "
                         "use 'drop' or 'update')",
                         "late data strategy 'dead_letter' needs a "
                         "dead-letter file");
                } else {
                    pl->plan->pub.late_dead_letter = 1;
                }
            } else {
                perr(pl, lp->value_pos, "V6005",
                     "write 'drop', 'update' or 'dead_letter'",
                     "'%s' must be drop, update or dead_letter, not '%s'",
                     lp->key, lp->value);
            }
            if (q->window.time != NULL) {
                b.no_agg = "WINDOW";
                struct velo_expr *t = bind_expr(&b, q->window.time);
                b.no_agg = NULL;
                if (t != NULL && t->type.id == VELO_TYPE_DATE) {
                    t = cast_to(t, velo_type_of(VELO_TYPE_TIMESTAMP));
                }
                if (t != NULL && t->type.id != VELO_TYPE_TIMESTAMP) {
                    char tb[40];
                    char *txt = span_text(pl->t, q->window.time->pos);
                    char hint[300];
                    snprintf(hint, sizeof(hint),
                             "windows need a TIMESTAMP: CAST(%s AS "
                             "TIMESTAMP), or FROM_UNIXTIME(%s) for epoch "
                             "seconds",
                             txt, txt);
                    perr(pl, q->window.time->pos, "V4011", hint,
                         "the window's time column must be a TIMESTAMP, "
                         "not %s",
                         type_name(t->type, tb, sizeof(tb)));
                    free(txt);
                    velo_expr_free(t);
                    t = NULL;
                }
                win.time = t;
            } else {
                int ts = velo_schema_find(cur_schema, VELO_COL_TIMESTAMP);
                if (ts < 0) {
                    char hint[300];
                    snprintf(hint, sizeof(hint),
                             "name the time column: TUMBLING(ts, INTERVAL "
                             "'5' MINUTE)");
                    perr(pl, q->window.pos, "V5012", hint,
                         "'%s' has no event time (_timestamp) for the window",
                         in.qual);
                } else if (in.needed != NULL) {
                    in.needed[ts] = 1;
                }
            }
        } else {
            win.kind = VELO_WINDOW_NONE;
        }
        /* Default: FINAL with a window; FINAL too on bounded input that
         * is sorted (ORDER BY wants the one final result, as PostgreSQL
         * gives); CHANGES otherwise. */
        /* A subquery over bounded input is a batch result too. */
        emit = q->emit >= 0   ? q->emit
               : agg.windowed ? VELO_EMIT_FINAL
               : ((q->norder > 0 || pl->nested > 0) && in.bounded)
                   ? VELO_EMIT_FINAL
                   : VELO_EMIT_CHANGES;
        if (emit == VELO_EMIT_FINAL && !agg.windowed && !in.bounded) {
            perr(pl, q->emit_pos.len ? q->emit_pos : q->pos, "V5006",
                 "on an unbounded input add a window (WINDOW TUMBLING(ts, "
                 "INTERVAL '1' MINUTE)) so results close, or use EMIT "
                 "CHANGES",
                 "EMIT FINAL without a window never emits: '%s' does not "
                 "end",
                 in.qual);
        }
        b.mode = BIND_AGG;
    }

    /* The SELECT list. */
    for (size_t i = 0; i < q->nitems; i++) {
        const struct ast_item *it = &q->items[i];
        if (it->expr->kind == AX_STAR) {
            expand_star(&b, it->expr, &pj);
            continue;
        }
        struct velo_expr *x = bind_expr(&b, it->expr);
        x = fold_constants(&b, x, it->expr->pos);
        if (x == NULL) {
            continue;
        }
        if (x->type.id == VELO_TYPE_NULL) {
            x = cast_to(x, velo_type_of(VELO_TYPE_STRING));
        }
        char *name;
        if (it->alias.name != NULL) {
            name = strdup(it->alias.name);
            for (size_t j = 0; j < pj.n; j++) {
                if (pj.c[j].is_alias &&
                    strcasecmp(pj.c[j].name, it->alias.name) == 0) {
                    perr(pl, it->alias.pos, "V3011",
                         "give each output column its own name",
                         "output column '%s' is named twice",
                         it->alias.name);
                }
            }
        } else {
            name = derive_name(&b, it->expr, x);
        }
        proj_add(&pj, x, name, 0, it->alias.name != NULL);
    }
    size_t nvisible = pj.n;

    /* HAVING */
    if (q->having != NULL) {
        having = bind_predicate(&b, q->having, "HAVING");
        having = fold_constants(&b, having, q->having->pos);
    }

    /* ORDER BY: output columns, or extra hidden columns. After an error
     * in the SELECT list its aliases are missing: do not guess. */
    if (q->norder > 0 && pl->diags->errors == errors0) {
        sort_cols = calloc(q->norder, sizeof(*sort_cols));
    }
    for (size_t i = 0; sort_cols != NULL && i < q->norder; i++) {
        const struct ast_expr *e = q->order[i].expr;
        sort_cols[i] = -1;
        if (e->kind == AX_INTEGER) {
            long n = strtol(e->text, NULL, 10);
            if (n < 1 || (size_t)n > nvisible) {
                char hint[120];
                snprintf(hint, sizeof(hint),
                         "the SELECT list has %zu columns", nvisible);
                perr(pl, e->pos, "V5010", hint,
                     "ORDER BY position %s is out of range", e->text);
                continue;
            }
            sort_cols[i] = (int)n - 1;
            continue;
        }
        if (e->kind == AX_NAME && e->nparts == 1) {
            for (size_t j = 0; j < nvisible; j++) {
                if (strcasecmp(pj.c[j].name, e->parts[0].name) == 0 &&
                    (pj.c[j].is_alias ||
                     velo_schema_find(b.in.schema, e->parts[0].name) < 0 ||
                     pj.c[j].expr->kind == VELO_EXPR_COLUMN)) {
                    sort_cols[i] = (int)j;
                    break;
                }
            }
            if (sort_cols[i] >= 0) {
                continue;
            }
        }
        struct velo_expr *x = bind_expr(&b, e);
        x = fold_constants(&b, x, e->pos);
        if (x == NULL) {
            continue;
        }
        char *canon = canon_dup(x);
        for (size_t j = 0; canon != NULL && j < pj.n; j++) {
            if (strcmp(pj.c[j].canon, canon) == 0) {
                sort_cols[i] = (int)j;
                break;
            }
        }
        free(canon);
        if (sort_cols[i] >= 0) {
            velo_expr_free(x);
            continue;
        }
        if (q->distinct) {
            perr(pl, e->pos, "V5019",
                 "with SELECT DISTINCT, order by columns of the SELECT list",
                 "ORDER BY expression must appear in the SELECT DISTINCT "
                 "list");
            velo_expr_free(x);
            continue;
        }
        char nm[32];
        snprintf(nm, sizeof(nm), "_order%zu", ++norder_extra);
        sort_cols[i] = (int)pj.n;
        proj_add(&pj, x, strdup(nm), 1, 0);
    }
    if (q->norder > 0 && !in.bounded && q->limit == NULL) {
        perr(pl, q->order_pos, "V5005",
             "keep the top rows with LIMIT (they are emitted when the "
             "input stops), or read a bounded file",
             "ORDER BY needs a bounded input, and '%s' does not end",
             in.qual);
    }
    int64_t limit = -1, offset = 0;
    if (q->limit != NULL &&
        const_count(pl, &b, q->limit, "LIMIT", &limit) != VELO_OK) {
        limit = -1;
    }
    if (q->offset != NULL &&
        const_count(pl, &b, q->offset, "OFFSET", &offset) != VELO_OK) {
        offset = 0;
    }

    if (pl->diags->errors > errors0) {
        goto done;
    }

    /* Build: Aggregate, HAVING, Project, Sort/Limit. */
    if (is_agg) {
        size_t nk = agg.nkeys, na = agg.naggs;
        struct velo_expr **kx = calloc(nk + 1, sizeof(*kx));
        const char **kn = calloc(nk + 1, sizeof(*kn));
        struct velo_agg_call *calls = calloc(na + 1, sizeof(*calls));
        if (kx == NULL || kn == NULL || calls == NULL) {
            free(kx);
            free(kn);
            free(calls);
            oom(pl, q->pos);
            goto done;
        }
        struct sql_buf det = {0};
        sql_buf_puts(&pl->canon, "AGGREGATE keys=");
        for (size_t i = 0; i < nk; i++) {
            kx[i] = agg.keys[i].expr;
            kn[i] = agg.keys[i].name;
            sql_buf_printf(&pl->canon, "%s;", agg.keys[i].canon);
            sql_buf_printf(&det, "%s%s", i ? ", " : "keys: ",
                           agg.keys[i].name);
        }
        sql_buf_puts(&pl->canon, " aggs=");
        for (size_t i = 0; i < na; i++) {
            struct agg_rec *r = &agg.aggs[i];
            calls[i].agg = r->agg;
            calls[i].args[0] = r->args[0];
            calls[i].args[1] = r->args[1];
            calls[i].nargs = r->nargs;
            calls[i].distinct = r->distinct;
            calls[i].filter = r->filter;
            calls[i].name = r->name;
            sql_buf_printf(&pl->canon, "%s;", r->canon);
            sql_buf_printf(&det, "%s%s", i ? ", " : (nk ? "; aggregates: "
                                                        : "aggregates: "),
                           r->name);
        }
        if (agg.windowed) {
            char *tt = q->window.time ? span_text(pl->t, q->window.time->pos)
                                      : strdup(VELO_COL_TIMESTAMP);
            char *sz = span_text(pl->t, q->window.size->pos);
            if (win.kind == VELO_WINDOW_HOPPING) {
                char *ad = span_text(pl->t, q->window.advance->pos);
                sql_buf_printf(&det, "; window: HOPPING(%s, %s) on %s",
                               sz ? sz : "?", ad ? ad : "?", tt ? tt : "?");
                free(ad);
            } else if (win.kind == VELO_WINDOW_SESSION) {
                sql_buf_printf(&det, "; window: SESSION(gap %s) on %s",
                               sz ? sz : "?", tt ? tt : "?");
            } else {
                sql_buf_printf(&det, "; window: TUMBLING(%s) on %s",
                               sz ? sz : "?", tt ? tt : "?");
            }
            if (q->window.grace != NULL) {
                char *gr = span_text(pl->t, q->window.grace->pos);
                sql_buf_printf(&det, "; grace %s", gr ? gr : "?");
                free(gr);
            }
            if (win.max_ooo_us > 0) {
                sql_buf_printf(&det, "; out-of-orderness %" PRId64 " ms",
                               win.max_ooo_us / 1000);
            }
            if (win.late_strategy == VELO_LATE_UPDATE) {
                sql_buf_puts(&det, "; late rows update held windows");
            }
            if (win.kind != VELO_WINDOW_TUMBLING || win.grace_us != 0 ||
                win.max_ooo_us != 0 || win.late_strategy != 0) {
                sql_buf_printf(&pl->canon, " window2=%d/%" PRId64 "/%" PRId64
                                           "/%" PRId64 "/%d",
                               win.kind, win.advance_us, win.grace_us,
                               win.max_ooo_us, win.late_strategy);
            }
            sql_buf_printf(&pl->canon, " window=%" PRId64 " on ",
                           win.size_us);
            if (win.time != NULL) {
                canon_expr(win.time, &pl->canon);
            } else {
                sql_buf_puts(&pl->canon, VELO_COL_TIMESTAMP);
            }
            free(tt);
            free(sz);
        }
        sql_buf_printf(&pl->canon, " emit=%d\n", emit);
        if (agg.windowed && (win.time == NULL ||
                             win.time->kind == VELO_EXPR_COLUMN)) {
            /* The watermark the window closes on, visible in explain and
             * the job's statistics. */
            struct input w;
            memset(&w, 0, sizeof(w));
            w.op = cur;
            w.schema = cur_schema;
            w.ooo_us = in.ooo_us;
            w.needed = in.needed;
            if (add_watermark(pl, &w, win.time != NULL ? win.time->u.column
                                                       : -1,
                              NULL, q->pos) != VELO_OK) {
                free(kx);
                free(kn);
                free(calls);
                sql_buf_free(&det);
                goto done;
            }
            cur = w.op;
            cur_schema = w.schema;
        }
        struct velo_op *op = velo_op_aggregate(ex, cur_schema, kx, kn, nk,
                                               calls, na, &win, emit);
        /* The operator owns the expressions now, built or not. */
        for (size_t i = 0; i < nk; i++) {
            agg.keys[i].expr = NULL;
        }
        for (size_t i = 0; i < na; i++) {
            agg.aggs[i].args[0] = agg.aggs[i].args[1] = NULL;
            agg.aggs[i].nargs = 0;
            agg.aggs[i].filter = NULL;
        }
        win.time = NULL;
        free(kx);
        free(kn);
        free(calls);
        op = add_op(pl, op, "Aggregate", q->pos);
        if (op == NULL || connect_ops(pl, cur, op, q->pos) != VELO_OK) {
            sql_buf_free(&det);
            goto done;
        }
        size_t want = (agg.windowed ? 2 : 0) + nk + na;
        if (op->out_schema == NULL || op->out_schema->n != want) {
            perr(pl, q->pos, "V5099", NULL,
                 "internal error: the aggregate has %zu output columns, "
                 "the binder expected %zu",
                 op->out_schema ? op->out_schema->n : 0, want);
            sql_buf_free(&det);
            goto done;
        }
        add_node(pl, PN_OP, op, "Aggregate", det.data,
                 emit_text(emit, agg.windowed, in.bounded), 0,
                 op->out_schema);
        sql_buf_free(&det);
        cur = op;
        cur_schema = op->out_schema;
        out->emit = emit;
        /* Without aggregates each key is emitted once, as an insert: the
         * output is a plain stream, not a changelog. */
        out->changelog = emit == VELO_EMIT_CHANGES && na > 0;
        if (having != NULL) {
            sql_buf_puts(&pl->canon, "HAVING ");
            canon_expr(having, &pl->canon);
            sql_buf_puts(&pl->canon, "\n");
            char *txt = span_text(pl->t, q->having->pos);
            struct velo_op *h = add_op(pl, velo_op_filter(ex, cur_schema,
                                                          having),
                                       "Filter", q->having->pos);
            having = NULL;
            if (h == NULL || connect_ops(pl, cur, h, q->having->pos) !=
                                 VELO_OK) {
                free(txt);
                goto done;
            }
            add_node(pl, PN_OP, h, "Filter (HAVING)", txt, NULL, 0,
                     h->out_schema);
            free(txt);
            cur = h;
        }
        /* Where each GROUP BY key lands in the output, for tables. */
        out->nkeys = nk;
        out->key_cols = calloc(nk + 1, sizeof(int));
        out->key_names = calloc(nk + 1, sizeof(char *));
        for (size_t k = 0; out->key_cols && out->key_names && k < nk; k++) {
            out->key_cols[k] = -1;
            out->key_names[k] = strdup(agg.keys[k].name);
            int want_col = (agg.windowed ? 2 : 0) + (int)k;
            for (size_t j = 0; j < nvisible; j++) {
                if (pj.c[j].expr->kind == VELO_EXPR_COLUMN &&
                    pj.c[j].expr->u.column == want_col) {
                    out->key_cols[k] = (int)j;
                    break;
                }
            }
        }
    }

    /* System columns ride along hidden, so later statements can window
     * on event time. */
    {
        const struct velo_schema *s = cur_schema;
        for (size_t i = 0; i < s->n; i++) {
            if (!s->fields[i].hidden || !is_system_column(s->fields[i].name)) {
                continue;
            }
            int shadowed = 0;
            for (size_t j = 0; j < pj.n; j++) {
                shadowed |= strcasecmp(pj.c[j].name, s->fields[i].name) == 0;
            }
            if (shadowed) {
                continue;
            }
            struct velo_expr *x = velo_expr_new(VELO_EXPR_COLUMN,
                                                s->fields[i].type, 0);
            if (x == NULL) {
                oom(pl, q->pos);
                goto done;
            }
            x->u.column = (int)i;
            proj_add(&pj, x, strdup(s->fields[i].name), 1, 0);
        }
        if (is_agg && agg.windowed &&
            velo_schema_find(s, VELO_COL_TIMESTAMP) < 0) {
            int shadowed = 0;
            for (size_t j = 0; j < pj.n; j++) {
                shadowed |= strcasecmp(pj.c[j].name, VELO_COL_TIMESTAMP) == 0;
            }
            if (!shadowed) {
                /* A window's rows happen at its start. */
                struct velo_expr *x = velo_expr_new(
                    VELO_EXPR_COLUMN, velo_type_of(VELO_TYPE_TIMESTAMP), 0);
                if (x == NULL) {
                    oom(pl, q->pos);
                    goto done;
                }
                x->u.column = 0;
                proj_add(&pj, x, strdup(VELO_COL_TIMESTAMP), 1, 0);
            }
        }
    }

    {
        char **names = calloc(pj.n + 1, sizeof(*names));
        if (names == NULL) {
            oom(pl, q->pos);
            goto done;
        }
        for (size_t i = 0; i < nvisible; i++) {
            names[i] = pj.c[i].name;
        }
        if (unique_names(names, nvisible) != VELO_OK) {
            free(names);
            oom(pl, q->pos);
            goto done;
        }
        for (size_t i = 0; i < nvisible; i++) {
            pj.c[i].name = names[i];
        }
        free(names);
        struct velo_expr **px = calloc(pj.n + 1, sizeof(*px));
        const char **pn = calloc(pj.n + 1, sizeof(*pn));
        uint8_t *ph = calloc(pj.n + 1, 1);
        if (px == NULL || pn == NULL || ph == NULL) {
            free(px);
            free(pn);
            free(ph);
            oom(pl, q->pos);
            goto done;
        }
        sql_buf_puts(&pl->canon, "PROJECT ");
        struct sql_buf det = {0};
        for (size_t i = 0; i < pj.n; i++) {
            px[i] = pj.c[i].expr;
            pn[i] = pj.c[i].name;
            ph[i] = (uint8_t)pj.c[i].hidden;
            sql_buf_printf(&pl->canon, "%s=%s%s;", pj.c[i].name,
                           pj.c[i].canon, pj.c[i].hidden ? "(h)" : "");
        }
        sql_buf_puts(&pl->canon, "\n");
        for (size_t i = 0; i < q->nitems; i++) {
            char *txt = span_text(pl->t, q->items[i].expr->pos);
            sql_buf_printf(&det, "%s%s", i ? ", " : "", txt ? txt : "?");
            if (q->items[i].alias.name != NULL) {
                sql_buf_printf(&det, " AS %s", q->items[i].alias.name);
            }
            free(txt);
        }
        struct velo_op *op = velo_op_project(ex, cur_schema, px, pn, ph,
                                             pj.n);
        for (size_t i = 0; i < pj.n; i++) {
            pj.c[i].expr = NULL; /* the operator owns them */
        }
        free(px);
        free(pn);
        free(ph);
        op = add_op(pl, op, "Project", q->pos);
        if (op == NULL || connect_ops(pl, cur, op, q->pos) != VELO_OK) {
            sql_buf_free(&det);
            goto done;
        }
        add_node(pl, PN_OP, op, "Project", det.data, NULL, 0,
                 op->out_schema);
        sql_buf_free(&det);
        cur = op;
        cur_schema = op->out_schema;
    }

    if (q->norder > 0) {
        struct velo_sort_key *keys = calloc(q->norder, sizeof(*keys));
        if (keys == NULL) {
            oom(pl, q->order_pos);
            goto done;
        }
        struct sql_buf det = {0};
        sql_buf_puts(&pl->canon, "SORT ");
        for (size_t i = 0; i < q->norder; i++) {
            int c = sort_cols[i];
            keys[i].expr = velo_expr_new(VELO_EXPR_COLUMN,
                                         cur_schema->fields[c].type, 0);
            if (keys[i].expr == NULL) {
                for (size_t j = 0; j < i; j++) {
                    velo_expr_free(keys[j].expr);
                }
                free(keys);
                sql_buf_free(&det);
                oom(pl, q->order_pos);
                goto done;
            }
            keys[i].expr->u.column = c;
            keys[i].desc = q->order[i].desc;
            keys[i].nulls_first = q->order[i].nulls >= 0
                                      ? q->order[i].nulls
                                      : q->order[i].desc;
            char *txt = span_text(pl->t, q->order[i].expr->pos);
            sql_buf_printf(&det, "%s%s%s%s", i ? ", " : "", txt ? txt : "?",
                           keys[i].desc ? " DESC" : "",
                           keys[i].nulls_first ? " NULLS FIRST"
                                               : " NULLS LAST");
            free(txt);
            sql_buf_printf(&pl->canon, "$%d%s%s;", c, keys[i].desc ? "D" : "A",
                           keys[i].nulls_first ? "F" : "L");
        }
        if (limit >= 0) {
            sql_buf_printf(&det, "; top %" PRId64, limit);
        }
        if (offset > 0) {
            sql_buf_printf(&det, " after %" PRId64, offset);
        }
        sql_buf_printf(&pl->canon, " limit=%" PRId64 " offset=%" PRId64 "\n",
                       limit, offset);
        struct velo_op *op = velo_op_sort(ex, cur_schema, keys, q->norder,
                                          limit, offset);
        free(keys);
        op = add_op(pl, op, "Sort", q->order_pos);
        if (op == NULL || connect_ops(pl, cur, op, q->order_pos) != VELO_OK) {
            sql_buf_free(&det);
            goto done;
        }
        add_node(pl, PN_OP, op, "Sort", det.data,
                 "at end of input, in order", 0, op->out_schema);
        sql_buf_free(&det);
        cur = op;
        cur_schema = op->out_schema;
    } else if (q->limit != NULL || q->offset != NULL) {
        int64_t lim = limit >= 0 ? limit : INT64_MAX;
        char det[96];
        snprintf(det, sizeof(det), "first %" PRId64 " rows%s", lim,
                 offset > 0 ? " after an offset" : "");
        if (limit < 0) {
            snprintf(det, sizeof(det), "skip %" PRId64 " rows", offset);
        }
        sql_buf_printf(&pl->canon, "LIMIT %" PRId64 " %" PRId64 "\n", lim,
                       offset);
        struct velo_op *op = add_op(pl, velo_op_limit(ex, cur_schema, lim,
                                                      offset),
                                    "Limit", q->pos);
        if (op == NULL || connect_ops(pl, cur, op, q->pos) != VELO_OK) {
            goto done;
        }
        add_node(pl, PN_OP, op, "Limit", det, NULL, 0, op->out_schema);
        cur = op;
        cur_schema = op->out_schema;
    }
    out->op = cur;
    out->schema = cur_schema;
    rc = VELO_OK;
done:
    if (pl->diags->errors > errors0) {
        rc = VELO_ERR;
    }
    free(sort_cols);
    free(over_refs);
    input_free(&in);
    velo_expr_free(having);
    velo_expr_free(win.time);
    proj_free(&pj);
    agg_state_free(&agg);
    if (rc != VELO_OK) {
        query_out_free(out);
    }
    return rc;
}

/* ---- Sinks -------------------------------------------------------------- */

static int add_sink(struct planner *pl, const char *name, const char *uri,
                    const struct velo_connector_ref *conn,
                    struct velo_property *props, size_t nprops,
                    const struct velo_format_opts *fmt,
                    struct velo_op *upstream, int changelog)
{
    struct velo_plan *p = &pl->plan->pub;
    if (sql_pool_grow(pl->plan->pool, (void **)&p->sinks,
                      &pl->plan->cap_sinks, p->nsinks,
                      sizeof(*p->sinks)) != VELO_OK) {
        return VELO_ERR;
    }
    struct velo_plan_sink *k = &p->sinks[p->nsinks++];
    memset(k, 0, sizeof(*k));
    k->name = pstr(pl, name);
    k->uri = pstr(pl, uri);
    k->conn = conn;
    k->props = props;
    k->nprops = nprops;
    k->format = *fmt;
    k->schema = upstream->out_schema;
    k->upstream = upstream;
    k->changelog = changelog;
    k->statement = pl->stmt;
    static const char *const kinds[] = {"?", "csv", "json", "raw", "table"};
    int fk = fmt->kind >= 1 && fmt->kind <= 4 ? fmt->kind : 0;
    char label[300];
    snprintf(label, sizeof(label), "Sink %s [%s, %s%s]", name, conn->name,
             kinds[fk], changelog ? ", changelog with _op" : "");
    add_node(pl, PN_SINK, NULL, label, NULL, NULL, p->nsinks - 1,
             upstream->out_schema);
    sql_buf_printf(&pl->canon, "SINK %s conn=%s fmt=%d/%d/%d/%d cl=%d "
                               "props=",
                   name, conn->name, fmt->kind, fmt->delimiter, fmt->quote,
                   fmt->header, changelog);
    for (size_t i = 0; i < nprops; i++) {
        sql_buf_printf(&pl->canon, "%s=%s;", props[i].key, props[i].value);
    }
    sql_buf_puts(&pl->canon, "\n");
    return VELO_OK;
}

/* The sink named by '<name>.type' in this statement, if any.
 * @return 1 made, 0 none asked for, -1 error (reported). */
static int target_sink(struct planner *pl, struct stmt_props *sp,
                       const struct ast_stmt *st, struct velo_op *upstream,
                       int changelog)
{
    const char *name = st->name.name;
    size_t mine = count_props(sp, name);
    if (mine == 0) {
        return 0;
    }
    const struct ast_prop *typep = find_prop(sp, name, "type");
    if (typep == NULL) {
        const struct ast_prop *first = NULL;
        for (size_t i = 0; i < sp->n && first == NULL; i++) {
            if (prop_is_for(&sp->p[i], name)) {
                first = &sp->p[i];
            }
        }
        char hint[200];
        snprintf(hint, sizeof(hint),
                 "add '%s.type'='file_sink' (or another sink type)", name);
        perr(pl, first->key_pos, "V6008", hint,
             "sink '%s' has properties but no type", name);
        return -1;
    }
    int is_source = 0;
    const struct velo_connector_ref *conn =
        velo_connectors_by_type(pl->env->connectors, typep->value, &is_source);
    if (conn == NULL) {
        const char *types[64];
        size_t nt = velo_connectors_type_names(pl->env->connectors, types, 64);
        const char *sug = sql_suggest(typep->value, types, nt);
        struct sql_buf hint = {0};
        if (sug != NULL) {
            sql_buf_printf(&hint, "did you mean '%s'?", sug);
        } else {
            sql_buf_puts(&hint, "the types are: ");
            for (size_t i = 0; i < nt; i++) {
                sql_buf_printf(&hint, "%s%s", i ? ", " : "", types[i]);
            }
        }
        perr(pl, typep->value_pos, "V6002", hint.data,
             "unknown connector type '%s'", typep->value);
        sql_buf_free(&hint);
        return -1;
    }
    if (is_source) {
        char hint[200];
        snprintf(hint, sizeof(hint), "'%s' is written here: use '%s_sink'",
                 name, conn->name);
        perr(pl, typep->value_pos, "V6006", hint,
             "'%s' is a source type, but '%s' is a sink", typep->value, name);
        return -1;
    }
    struct velo_format_opts fmt;
    struct velo_property *cp = NULL;
    size_t ncp = 0;
    const struct ast_prop **casts = NULL;
    const struct ast_prop *schema_p = NULL;
    int rc = apply_props(pl, sp, name, NULL, &fmt, &cp, &ncp, &casts,
                         &schema_p);
    if (rc == VELO_OK && schema_p != NULL) {
        perr(pl, schema_p->key_pos, "V3004",
             "a sink's columns are the query's; remove the property",
             "'%s' applies to sources only", schema_p->key);
        rc = VELO_ERR;
    }
    if (rc == VELO_OK) {
        rc = check_connector(pl, conn, name, cp, ncp, casts, st->name.pos);
    }
    free(casts);
    if (rc != VELO_OK) {
        return -1;
    }
    if (fmt.kind == VELO_FORMAT_CSV && find_prop(sp, name, "csv.header") ==
                                           NULL) {
        fmt.header = 1;
    }
    if (add_sink(pl, name, NULL, conn, cp, ncp, &fmt, upstream, changelog) !=
        VELO_OK) {
        oom(pl, st->name.pos);
        return -1;
    }
    return 1;
}

/* ---- Statements --------------------------------------------------------- */

static const char *stmt_kind(int kind)
{
    switch (kind) {
    case ST_SELECT: return "SELECT";
    case ST_CREATE_STREAM_AS: return "CREATE STREAM";
    case ST_CREATE_TABLE_AS: return "CREATE TABLE";
    case ST_CREATE_SOURCE: return "CREATE STREAM";
    case ST_INSERT: return "INSERT";
    default: return "?";
    }
}

static void add_statement(struct planner *pl, const struct ast_stmt *st,
                          int emit)
{
    struct velo_plan *p = &pl->plan->pub;
    struct velo_plan_statement *s = &p->statements[pl->stmt];
    s->kind = pstr(pl, stmt_kind(st->kind));
    s->target = st->kind == ST_SELECT ? NULL : pstr(pl, st->name.name);
    s->emit = emit;
    s->line = line_of(pl, st->pos);
    sql_buf_printf(&pl->canon, "STATEMENT %s %s emit=%d\n", s->kind,
                   s->target ? s->target : "-", emit);
}

static int plan_create_source(struct planner *pl, const struct ast_stmt *st,
                              struct stmt_props *sp)
{
    const char *name = st->name.name;
    struct cat_entry *old = cat_find(pl, name);
    if (old != NULL) {
        char hint[120];
        snprintf(hint, sizeof(hint), "it is defined on line %d; choose "
                                     "another name",
                 old->line);
        perr(pl, st->name.pos, "V3008", hint, "'%s' is already defined",
             name);
        return VELO_ERR;
    }
    const struct ast_prop *typep = find_prop(sp, name, "type");
    if (typep == NULL) {
        char hint[200];
        snprintf(hint, sizeof(hint),
                 "add '%s.type'='file_source' (or another source type) to "
                 "WITH (...)",
                 name);
        perr(pl, st->name.pos, "V6008", hint, "source '%s' has no type",
             name);
        return VELO_ERR;
    }
    int is_source = 0;
    const struct velo_connector_ref *conn =
        velo_connectors_by_type(pl->env->connectors, typep->value, &is_source);
    if (conn == NULL || !is_source) {
        const char *types[64];
        size_t nt = velo_connectors_type_names(pl->env->connectors, types, 64);
        const char *sug = sql_suggest(typep->value, types, nt);
        char hint[200];
        if (conn != NULL) {
            snprintf(hint, sizeof(hint), "a declared stream is read: use "
                                         "'%s_source'",
                     conn->name);
        } else {
            snprintf(hint, sizeof(hint), "%s%s%s", sug ? "did you mean '" : "",
                     sug ? sug : "a source type such as 'file_source'",
                     sug ? "'?" : "");
        }
        perr(pl, typep->value_pos, conn != NULL ? "V6006" : "V6002", hint,
             conn != NULL ? "'%s' is a sink type, but '%s' is a source"
                          : "unknown connector type '%s'%.0s",
             typep->value, name);
        return VELO_ERR;
    }
    struct velo_format_opts fmt;
    struct velo_property *cp = NULL;
    size_t ncp = 0;
    const struct ast_prop **casts = NULL;
    const struct ast_prop *schema_p = NULL;
    int rc = apply_props(pl, sp, name, NULL, &fmt, &cp, &ncp, &casts,
                         &schema_p);
    if (rc == VELO_OK && schema_p != NULL) {
        perr(pl, schema_p->key_pos, "V6009",
             "the columns are declared in CREATE STREAM (...); remove the "
             "property",
             "'%s' repeats the declared columns", schema_p->key);
        rc = VELO_ERR;
    }
    if (rc == VELO_OK) {
        rc = check_connector(pl, conn, name, cp, ncp, casts, st->name.pos);
    }
    free(casts);
    if (rc != VELO_OK) {
        return VELO_ERR;
    }
    struct velo_schema *decl = declared_schema(pl, st->cols, st->ncols);
    if (decl == NULL) {
        return VELO_ERR;
    }
    struct cat_entry *c = make_source(pl, name, NULL, conn, cp, ncp, &fmt,
                                      decl, st->name.pos);
    if (c == NULL) {
        return VELO_ERR;
    }
    c->decl_props = sp->p;
    c->ndecl_props = sp->n;
    struct sql_buf l = {0};
    source_label(pl, c->source, &l);
    add_node(pl, PN_SOURCE, NULL, l.data, "declared columns", NULL, c->source,
             c->schema);
    sql_buf_free(&l);
    return VELO_OK;
}

/* Is a value of type from acceptable where to is declared (INSERT)? */
static int assignable(struct velo_datatype from, struct velo_datatype to)
{
    if (from.id == VELO_TYPE_NULL || velo_type_equal(from, to)) {
        return 1;
    }
    static const int rank[] = {
        [VELO_TYPE_INTEGER] = 1, [VELO_TYPE_BIGINT] = 2,
        [VELO_TYPE_DECIMAL] = 3, [VELO_TYPE_DOUBLE] = 4};
    if (velo_type_is_numeric(from) && velo_type_is_numeric(to)) {
        return from.id == VELO_TYPE_DECIMAL && to.id == VELO_TYPE_DECIMAL
                   ? 1
                   : rank[from.id] <= rank[to.id];
    }
    return (from.id == VELO_TYPE_DATE && to.id == VELO_TYPE_TIMESTAMP) ||
           (from.id == VELO_TYPE_JSON && to.id == VELO_TYPE_STRING);
}

/* INSERT INTO target: cast the query's rows to the target's columns. */
static struct velo_op *insert_project(struct planner *pl,
                                      const struct ast_stmt *st,
                                      const struct query_out *qo,
                                      const struct velo_schema *ts)
{
    const struct velo_schema *qs = qo->schema;
    size_t nq = 0, nt = 0;
    for (size_t i = 0; i < qs->n; i++) {
        nq += !qs->fields[i].hidden;
    }
    for (size_t i = 0; i < ts->n; i++) {
        nt += !ts->fields[i].hidden;
    }
    if (nq != nt) {
        struct sql_buf hint = {0};
        sql_buf_printf(&hint, "'%s' has: ", st->name.name);
        schema_names(ts, &hint, 1);
        perr(pl, st->query->pos, "V5018", hint.data,
             "INSERT INTO %s: the query gives %zu columns, '%s' has %zu",
             st->name.name, nq, st->name.name, nt);
        sql_buf_free(&hint);
        return NULL;
    }
    struct velo_expr **px = calloc(ts->n + 1, sizeof(*px));
    const char **pn = calloc(ts->n + 1, sizeof(*pn));
    uint8_t *ph = calloc(ts->n + 1, 1);
    if (px == NULL || pn == NULL || ph == NULL) {
        free(px);
        free(pn);
        free(ph);
        oom(pl, st->pos);
        return NULL;
    }
    int ok = 1;
    size_t qi = 0;
    sql_buf_puts(&pl->canon, "INSERT-CAST ");
    for (size_t i = 0; i < ts->n; i++) {
        const struct velo_field *tf = &ts->fields[i];
        pn[i] = tf->name;
        ph[i] = tf->hidden;
        int src = -1;
        if (tf->hidden) {
            src = velo_schema_find(qs, tf->name);
        } else {
            while (qi < qs->n && qs->fields[qi].hidden) {
                qi++;
            }
            src = (int)qi++;
        }
        if (src < 0) {
            px[i] = velo_expr_new(VELO_EXPR_LITERAL, tf->type, 0);
            if (px[i] != NULL) {
                px[i]->u.literal.is_null = 1;
            }
        } else {
            const struct velo_field *qf = &qs->fields[src];
            if (!tf->hidden && !assignable(qf->type, tf->type)) {
                char t1[40], t2[40];
                char hint[300];
                snprintf(hint, sizeof(hint),
                         "CAST it in the SELECT list: CAST(%s AS %s)",
                         qf->name, type_name(tf->type, t1, sizeof(t1)));
                perr(pl, st->query->pos, "V4012", hint,
                     "INSERT INTO %s: column %zu ('%s') is %s, but the "
                     "query gives %s",
                     st->name.name, i + 1, tf->name,
                     type_name(tf->type, t1, sizeof(t1)),
                     type_name(qf->type, t2, sizeof(t2)));
                ok = 0;
                continue;
            }
            struct velo_expr *x = velo_expr_new(VELO_EXPR_COLUMN, qf->type,
                                                0);
            if (x != NULL) {
                x->u.column = src;
            }
            px[i] = cast_to(x, tf->type);
        }
        if (px[i] == NULL) {
            ok = 0;
            oom(pl, st->pos);
            continue;
        }
        canon_expr(px[i], &pl->canon);
        sql_buf_add(&pl->canon, ";", 1);
    }
    sql_buf_puts(&pl->canon, "\n");
    struct velo_op *op = NULL;
    if (ok) {
        op = add_op(pl, velo_op_project(pl->env->exec, qs, px, pn, ph, ts->n),
                    "Project", st->pos);
    } else {
        for (size_t i = 0; i < ts->n; i++) {
            velo_expr_free(px[i]);
        }
    }
    free(px);
    free(pn);
    free(ph);
    if (op != NULL && connect_ops(pl, qo->op, op, st->pos) != VELO_OK) {
        return NULL;
    }
    if (op != NULL) {
        char det[200];
        snprintf(det, sizeof(det), "to the columns of %s", st->name.name);
        add_node(pl, PN_OP, op, "Project", det, NULL, 0, op->out_schema);
    }
    return op;
}

/* The output key of a statement: PRIMARY KEY (...), else the GROUP BY
 * columns. A table must have one (required); a stream's key only names
 * its sink records' keys. Sets *out (malloc'd column indexes, -1 for a
 * key not in the output) and *n, or leaves them NULL/0. */
/* Record a sink's key columns (its records' keys: Kafka message keys,
 * upserts). */
static void sink_keys(struct planner *pl, struct velo_plan_sink *k,
                      const int *kc, size_t nk)
{
    if (kc == NULL || nk == 0) {
        return;
    }
    int *c = sql_pool_alloc(pl->plan->pool, nk * sizeof(*c));
    if (c == NULL) {
        return;
    }
    memcpy(c, kc, nk * sizeof(*c));
    k->key_cols = c;
    k->nkeys = nk;
}

static void output_keys(struct planner *pl, const struct ast_stmt *st,
                        const struct query_out *qo, int required, int **out,
                        size_t *n)
{
    int *kc = NULL;
    size_t nk = 0;
    if (st->npk > 0) {
        kc = calloc(st->npk, sizeof(*kc));
        nk = st->npk;
        for (size_t i = 0; kc != NULL && i < st->npk; i++) {
            int c = velo_schema_find(qo->schema, st->pk[i].name);
            if (c < 0 || qo->schema->fields[c].hidden) {
                const char **cands =
                    calloc(qo->schema->n + 1, sizeof(*cands));
                for (size_t j = 0; cands && j < qo->schema->n; j++) {
                    cands[j] = qo->schema->fields[j].name;
                }
                const char *sug = cands ? sql_suggest(st->pk[i].name,
                                                      cands,
                                                      qo->schema->n)
                                        : NULL;
                free(cands);
                struct sql_buf hint = {0};
                if (sug != NULL) {
                    sql_buf_printf(&hint, "did you mean '%s'?", sug);
                } else {
                    sql_buf_puts(&hint, "a key is an output column: ");
                    schema_names(qo->schema, &hint, 0);
                }
                perr(pl, st->pk[i].pos, "V3001", hint.data,
                     "PRIMARY KEY column '%s' is not an output column",
                     st->pk[i].name);
                sql_buf_free(&hint);
            }
            kc[i] = c;
        }
    } else if (qo->nkeys > 0) {
        kc = calloc(qo->nkeys, sizeof(*kc));
        nk = qo->nkeys;
        for (size_t i = 0; kc != NULL && i < qo->nkeys; i++) {
            kc[i] = qo->key_cols[i];
            if (kc[i] < 0 && !required) {
                /* A stream without all its group keys has no key. */
                free(kc);
                kc = NULL;
                nk = 0;
                break;
            }
            if (kc[i] < 0) {
                char hint[300];
                snprintf(hint, sizeof(hint),
                         "add %s to the SELECT list, or name the key: "
                         "PRIMARY KEY (...)",
                         qo->key_names[i]);
                perr(pl, st->query->group_pos, "V5011", hint,
                     "table '%s' is keyed by its GROUP BY columns, but "
                     "'%s' is not in its SELECT list",
                     st->name.name, qo->key_names[i]);
            }
        }
    } else if (required) {
        perr(pl, st->name.pos, "V5011",
             "group the rows (GROUP BY k) or name the key: CREATE TABLE "
             "t AS SELECT ... PRIMARY KEY (k)",
             "table '%s' needs a key", st->name.name);
    }
    *out = kc;
    *n = nk;
}

#define MAX_NAMES 64

static void query_names(const struct ast_query *q, const char **names,
                        size_t *n);

/* The names a statement's properties may start with: sources, aliases,
 * WITH names, in every FROM of the statement. */
static void from_names(const struct ast_from *f, const char **names,
                       size_t *n)
{
    if (f->kind == FROM_JOIN) {
        from_names(f->left, names, n);
        from_names(f->right, names, n);
        return;
    }
    if (f->kind == FROM_SUBQUERY) {
        query_names(f->sub, names, n);
    } else if (f->kind == FROM_NAME && *n < MAX_NAMES) {
        names[(*n)++] = f->name.name;
    }
    if (f->alias.name != NULL && *n < MAX_NAMES) {
        names[(*n)++] = f->alias.name;
    }
}

static void expr_names(const struct ast_expr *e, const char **names,
                       size_t *n)
{
    if (e == NULL) {
        return;
    }
    if (e->kind == AX_IN_QUERY) {
        query_names(e->sub, names, n);
    }
    for (size_t i = 0; i < e->nargs; i++) {
        expr_names(e->args[i], names, n);
    }
}

static void query_names(const struct ast_query *q, const char **names,
                        size_t *n)
{
    for (; q != NULL; q = q->union_next) {
        for (size_t i = 0; i < q->nctes; i++) {
            if (*n < MAX_NAMES) {
                names[(*n)++] = q->ctes[i].name.name;
            }
            query_names(q->ctes[i].query, names, n);
        }
        if (q->has_from) {
            from_names(&q->from, names, n);
        }
        expr_names(q->where, names, n);
    }
}

static int plan_statement(struct planner *pl, const struct ast_stmt *st)
{
    struct stmt_props sp = {st->props, st->nprops};
    const char *names[MAX_NAMES];
    size_t nn = 0;
    if (st->name.name != NULL) {
        names[nn++] = st->name.name;
    }
    query_names(st->query, names, &nn);
    size_t errors0 = pl->diags->errors;
    size_t touched0 = pl->ntouched;
    int rc = VELO_ERR;
    /* Misnamed properties may be what configures the sources: planning
     * on would only add errors that follow from these. */
    if (!check_prop_names(pl, st, names, nn)) {
        goto out;
    }

    if (st->kind == ST_CREATE_SOURCE) {
        add_statement(pl, st, -1);
        rc = plan_create_source(pl, st, &sp);
        goto out;
    }
    if ((st->kind == ST_CREATE_STREAM_AS || st->kind == ST_CREATE_TABLE_AS)) {
        struct cat_entry *old = cat_find(pl, st->name.name);
        if (old != NULL) {
            char hint[120];
            snprintf(hint, sizeof(hint),
                     "it is defined on line %d; choose another name, or "
                     "INSERT INTO %s",
                     old->line, st->name.name);
            perr(pl, st->name.pos, "V3008", hint,
                 "'%s' is already defined", st->name.name);
            goto out;
        }
    }
    struct query_out qo;
    if (plan_query(pl, st, st->query, &sp, &qo) != VELO_OK) {
        goto out;
    }
    add_statement(pl, st, qo.emit);

    switch (st->kind) {
    case ST_SELECT: {
        const struct velo_connector_ref *conn =
            velo_connectors_by_scheme(pl->env->connectors, "stdout");
        if (conn == NULL) {
            perr(pl, st->pos, "V6003", NULL,
                 "no stdout connector is registered");
            break;
        }
        struct velo_format_opts fmt;
        velo_format_opts_default(&fmt, pl->env->stdout_format > 0
                                           ? pl->env->stdout_format
                                           : VELO_FORMAT_JSON);
        if (add_sink(pl, "stdout", NULL, conn, NULL, 0, &fmt, qo.op,
                     qo.changelog) != VELO_OK) {
            oom(pl, st->pos);
            break;
        }
        rc = VELO_OK;
        break;
    }
    case ST_CREATE_STREAM_AS: {
        struct velo_op *tee = add_op(pl, velo_op_tee(pl->env->exec,
                                                     qo.schema),
                                     "Tee", st->name.pos);
        if (tee == NULL || connect_ops(pl, qo.op, tee, st->pos) != VELO_OK) {
            break;
        }
        char l[200];
        snprintf(l, sizeof(l), "Stream %s", st->name.name);
        add_node(pl, PN_TARGET, tee, l, "in-process, readable by name",
                 NULL, 0, tee->out_schema);
        struct cat_entry *c = cat_add(pl, st->name.name, CAT_STREAM,
                                      st->name.pos);
        if (c == NULL) {
            break;
        }
        c->out = c->in = tee;
        c->schema = tee->out_schema;
        c->bounded = qo.bounded;
        c->changelog = qo.changelog;
        c->ooo_us = qo.ooo_us;
        cat_take_sources(pl, c, touched0);
        size_t nsinks0 = pl->plan->pub.nsinks;
        int s = target_sink(pl, &sp, st, tee, qo.changelog);
        if (s < 0) {
            break;
        }
        int *kc = NULL;
        size_t nk = 0;
        output_keys(pl, st, &qo, 0, &kc, &nk);
        if (pl->plan->pub.nsinks > nsinks0) {
            sink_keys(pl, &pl->plan->pub.sinks[nsinks0], kc, nk);
        }
        free(kc);
        if (pl->diags->errors > errors0) {
            break;
        }
        c->has_sink = s;
        rc = VELO_OK;
        break;
    }
    case ST_CREATE_TABLE_AS: {
        int *kc = NULL;
        size_t nk = 0;
        output_keys(pl, st, &qo, 1, &kc, &nk);
        if (kc == NULL || pl->diags->errors > errors0) {
            free(kc);
            break;
        }
        struct velo_op *tab = add_op(pl, velo_op_table(pl->env->exec,
                                                       qo.schema, kc, nk),
                                     "Table", st->name.pos);
        sql_buf_puts(&pl->canon, "TABLE keys=");
        struct sql_buf det = {0};
        for (size_t i = 0; i < nk; i++) {
            sql_buf_printf(&pl->canon, "%d;", kc[i]);
            sql_buf_printf(&det, "%s%s", i ? ", " : "keyed by ",
                           qo.schema->fields[kc[i]].name);
        }
        sql_buf_puts(&pl->canon, "\n");
        const int *tkc = kc;
        size_t tnk = nk;
        if (tab == NULL || connect_ops(pl, qo.op, tab, st->pos) != VELO_OK) {
            sql_buf_free(&det);
            free(kc);
            break;
        }
        char l[200];
        snprintf(l, sizeof(l), "Table %s", st->name.name);
        add_node(pl, PN_TARGET, tab, l, det.data,
                 "the latest row per key, marked insert or update", 0,
                 tab->out_schema);
        sql_buf_free(&det);
        struct cat_entry *c = cat_add(pl, st->name.name, CAT_TABLE,
                                      st->name.pos);
        if (c == NULL) {
            free(kc);
            break;
        }
        c->out = c->in = tab;
        c->schema = tab->out_schema;
        c->bounded = qo.bounded;
        c->changelog = 1;
        c->ooo_us = qo.ooo_us;
        cat_take_sources(pl, c, touched0);
        size_t nsinks0 = pl->plan->pub.nsinks;
        int s = target_sink(pl, &sp, st, tab, 1);
        if (s >= 0 && pl->plan->pub.nsinks > nsinks0) {
            sink_keys(pl, &pl->plan->pub.sinks[nsinks0], tkc, tnk);
        }
        free(kc);
        if (s < 0) {
            break;
        }
        c->has_sink = s;
        rc = VELO_OK;
        break;
    }
    case ST_INSERT: {
        struct cat_entry *c = cat_find(pl, st->name.name);
        if (c != NULL && c->failed) {
            break;
        }
        if (c != NULL && c->kind == CAT_SOURCE) {
            perr(pl, st->name.pos, "V5017",
                 "INSERT INTO a stream made by CREATE STREAM ... AS SELECT, "
                 "or give a sink: WITH ('out.type'='file_sink', ...)",
                 "cannot INSERT INTO '%s': it is a source", st->name.name);
            break;
        }
        if (c != NULL) {
            if (count_props(&sp, st->name.name) > 0) {
                char hint[200];
                snprintf(hint, sizeof(hint),
                         "'%s' is defined on line %d; set its properties "
                         "there",
                         st->name.name, c->line);
                perr(pl, st->name.pos, "V6012", hint,
                     "'%s' is already defined", st->name.name);
                break;
            }
            struct velo_op *op = insert_project(pl, st, &qo, c->schema);
            if (op == NULL || connect_ops(pl, op, c->in, st->pos) !=
                                  VELO_OK) {
                break;
            }
            char l[200];
            snprintf(l, sizeof(l), "%s %s (from line %d)",
                     c->kind == CAT_TABLE ? "Table" : "Stream", c->name,
                     c->line);
            add_node(pl, PN_TARGET, c->in, l, "INSERT INTO", NULL, 0,
                     c->schema);
            c->bounded = c->bounded && qo.bounded;
            rc = VELO_OK;
            break;
        }
        if (count_props(&sp, st->name.name) == 0) {
            const char *sug = suggest_name(pl, st->name.name);
            char hint[300];
            if (sug != NULL) {
                snprintf(hint, sizeof(hint), "did you mean '%s'?", sug);
            } else {
                snprintf(hint, sizeof(hint),
                         "create it first (CREATE STREAM %s AS SELECT ...), "
                         "or give it a sink: WITH ('%s.type'='file_sink', "
                         "'%s.path'='out.csv')",
                         st->name.name, st->name.name, st->name.name);
            }
            perr(pl, st->name.pos, "V3002", hint, "unknown stream '%s'",
                 st->name.name);
            break;
        }
        /* A new sink named here: later INSERTs may add to it. */
        struct velo_op *tee = add_op(pl, velo_op_tee(pl->env->exec,
                                                     qo.schema),
                                     "Tee", st->name.pos);
        if (tee == NULL || connect_ops(pl, qo.op, tee, st->pos) != VELO_OK) {
            break;
        }
        char l[200];
        snprintf(l, sizeof(l), "Stream %s", st->name.name);
        add_node(pl, PN_TARGET, tee, l, NULL, NULL, 0, tee->out_schema);
        struct cat_entry *c2 = cat_add(pl, st->name.name, CAT_STREAM,
                                       st->name.pos);
        if (c2 == NULL) {
            break;
        }
        c2->out = c2->in = tee;
        c2->schema = tee->out_schema;
        c2->bounded = qo.bounded;
        c2->changelog = qo.changelog;
        int s = target_sink(pl, &sp, st, tee, qo.changelog);
        if (s <= 0) {
            break;
        }
        c2->has_sink = 1;
        rc = VELO_OK;
        break;
    }
    default:
        break;
    }
    query_out_free(&qo);
out:
    if (pl->diags->errors > errors0) {
        rc = VELO_ERR;
    }
    return rc;
}

/* ---- Entry -------------------------------------------------------------- */

void velo_plan_destroy(struct velo_plan *plan)
{
    if (plan == NULL) {
        return;
    }
    struct plan_impl *pi = (struct plan_impl *)plan;
    for (size_t i = 0; i < plan->nops; i++) {
        velo_op_destroy(plan->ops[i]);
    }
    for (size_t i = 0; i < plan->nsources; i++) {
        velo_schema_destroy(plan->sources[i].schema);
    }
    for (size_t i = 0; i < pi->nlookups; i++) {
        velo_lookup_close(pi->lookups[i]);
    }
    for (size_t i = 0; i < pi->nschemas; i++) {
        velo_schema_destroy(pi->schemas[i]);
    }
    sql_pool_destroy(pi->pool);
    free(pi);
}

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = FNV_OFFSET;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= FNV_PRIME;
    }
    return h;
}

/* '<name>.dlq.path': one dead-letter file for the application, named by
 * any statement before any statement is planned (late.data.strategy
 * 'dead_letter' needs it). */
static void plan_dlq(struct planner *pl, const struct velo_sql_program *p)
{
    const struct ast_prop *first = NULL;
    for (size_t i = 0; i < p->nstmts; i++) {
        const struct ast_stmt *st = p->stmts[i];
        for (size_t k = 0; !st->failed && k < st->nprops; k++) {
            const struct ast_prop *pr = &st->props[k];
            if (strcasecmp(prop_suffix(pr), "dlq.path") != 0) {
                continue;
            }
            if (pr->value[0] == '\0') {
                perr(pl, pr->value_pos, "V6005",
                     "write a file path: 'app.dlq.path'='dead.jsonl'",
                     "'%s' is empty", pr->key);
            } else if (first == NULL) {
                first = pr;
                pl->plan->pub.dlq_path = pstr(pl, pr->value);
            } else if (strcmp(first->value, pr->value) != 0) {
                int line = line_of(pl, first->value_pos);
                char hint[200];
                snprintf(hint, sizeof(hint),
                         "an application has one dead-letter file; line %d "
                         "already names '%s'",
                         line, first->value);
                perr(pl, pr->value_pos, "V6005", hint,
                     "a second dead-letter file '%s'", pr->value);
            }
        }
    }
}

struct velo_plan *velo_sql_plan(const struct velo_sql_program *p,
                                const struct velo_plan_env *env,
                                struct velo_sql_diags *diags)
{
    if (p == NULL || env == NULL || env->funcs == NULL ||
        env->connectors == NULL) {
        errno = EINVAL;
        return NULL;
    }
    struct plan_impl *pi = calloc(1, sizeof(*pi));
    if (pi == NULL) {
        return NULL;
    }
    pi->pool = sql_pool_create();
    size_t n = p->nstmts;
    if (pi->pool == NULL) {
        free(pi);
        return NULL;
    }
    size_t slots = n ? n : 1;
    pi->pub.statements =
        sql_pool_alloc(pi->pool, slots * sizeof(*pi->pub.statements));
    pi->nodes = sql_pool_alloc(pi->pool, slots * sizeof(*pi->nodes));
    if (pi->pub.statements == NULL || pi->nodes == NULL) {
        velo_plan_destroy(&pi->pub);
        return NULL;
    }
    struct planner pl = {
        .env = env, .t = &p->text, .diags = diags, .plan = pi,
    };
    size_t errors0 = diags->errors;
    size_t first_diag = diags->n;
    int parse_failed = 0;
    plan_dlq(&pl, p);
    for (size_t i = 0; i < n; i++) {
        const struct ast_stmt *st = p->stmts[i];
        if (st->failed) {
            /* Reported by the parser; keep its name so later statements
             * reading it do not add a second, misleading error. */
            parse_failed = 1;
            if (st->name.name != NULL && cat_find(&pl, st->name.name) ==
                                             NULL) {
                struct cat_entry *c = cat_add(&pl, st->name.name, CAT_STREAM,
                                              st->name.pos);
                if (c != NULL) {
                    c->failed = 1;
                }
            }
            continue;
        }
        pl.stmt = pi->pub.nstatements++;
        size_t ncat = pl.ncat;
        int prc = plan_statement(&pl, st);
        /* WITH names belong to their statement. */
        for (size_t k = ncat; k < pl.ncat; k++) {
            if (pl.cat[k].cte) {
                pl.cat[k].name = (char *)"";
            }
        }
        if (prc != VELO_OK && st->name.name != NULL) {
            /* What it defines exists, failed: readers stay quiet. An
             * INSERT defines its target only when it named a new one. */
            struct cat_entry *c = cat_find(&pl, st->name.name);
            if (c == NULL) {
                c = cat_add(&pl, st->name.name, CAT_STREAM, st->name.pos);
                if (c != NULL) {
                    c->failed = 1;
                }
            } else if (st->kind != ST_INSERT ||
                       (size_t)(c - pl.cat) >= ncat) {
                c->failed = 1;
            }
        }
    }
    /* Targets nothing reads and nothing stores. */
    for (size_t i = 0; i < pl.ncat; i++) {
        struct cat_entry *c = &pl.cat[i];
        if ((c->kind == CAT_STREAM || c->kind == CAT_TABLE) && !c->failed &&
            c->readers == 0 && !c->has_sink) {
            char hint[300];
            snprintf(hint, sizeof(hint),
                     "read it in a later statement (SELECT * FROM %s), or "
                     "store it: WITH ('%s.type'='file_sink', '%s.path'="
                     "'%s.csv')",
                     c->name, c->name, c->name, c->name);
            sql_diag(diags, pl.t, c->pos, SQL_WARNING, "V5022", hint,
                     "'%s' is computed but neither read nor written to a "
                     "sink",
                     c->name);
        }
    }
    /* Clauses are bound in execution order (WHERE before the SELECT
     * list): list the problems in the order of the text. */
    sql_diags_sort(diags, first_diag);
    pi->pub.fingerprint = fnv1a(pl.canon.data ? pl.canon.data : "",
                                pl.canon.len);
    sql_buf_free(&pl.canon);
    for (size_t i = 0; i < pl.ncat; i++) {
        free(pl.cat[i].srcs);
    }
    free(pl.touched);
    free(pl.cat);
    if (diags->errors > errors0 || parse_failed || p->errors > 0) {
        velo_plan_destroy(&pi->pub);
        return NULL;
    }
    return &pi->pub;
}
