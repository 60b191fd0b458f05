/*
 * query.test.yaml: per output (the CREATE STREAM/TABLE name, or select-<n>
 * for the n-th bare SELECT) the inputs to generate and the assertions to
 * check. Types, operators and required keys are checked while loading, so
 * a typo fails with its line before anything runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testkit/testkit-internal.h"

struct atype {
    const char *type;
    const char *required[3]; /* keys that must be present */
    int numeric;             /* takes operator/expected */
};

static const struct atype atypes[] = {
    {"record_count", {NULL}, 1},
    {"schema_contains", {"fields", NULL}, 0},
    {"no_nulls", {NULL}, 0},
    {"field_in_set", {"field", "values", NULL}, 0},
    {"field_range", {"field", NULL}, 0},
    {"no_duplicates", {NULL}, 0},
    {"aggregate_check", {"expression", NULL}, 1},
    {"join_coverage", {"left_source", "right_source", NULL}, 0},
    {"execution_time", {NULL}, 1},
    {"throughput", {NULL}, 1},
    {"memory", {NULL}, 1},
    {"dlq_count", {NULL}, 1},
    {"late_count", {NULL}, 1},
    {"file_matches", {"file", NULL}, 0},
    {"metric", {"name", NULL}, 1},
    {NULL, {NULL}, 0}};

static const char *const op_names[] = {
    "equals", "not_equals", "greater_than", "less_than", "between", "in"};

int velo_tk_op_parse(const char *s)
{
    for (int i = 0; i < 6; i++) {
        if (strcmp(s, op_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

const char *velo_tk_op_name(int op)
{
    return op >= 0 && op < 6 ? op_names[op] : "?";
}

static int check_assertion(const struct velo_tk_yaml *a, const char *where,
                           char *err, size_t errlen)
{
    const struct velo_tk_yaml *t = velo_tk_yaml_get(a, "type");
    if (a->kind != VELO_TK_YMAP || t == NULL || t->kind != VELO_TK_YSCALAR) {
        snprintf(err, errlen,
                 "%s:%d: an assertion needs 'type:' (e.g. "
                 "record_count)",
                 where, a->line);
        return -1;
    }
    const struct atype *at = NULL;
    for (size_t i = 0; atypes[i].type != NULL; i++) {
        if (strcmp(atypes[i].type, t->str) == 0) {
            at = &atypes[i];
        }
    }
    if (at == NULL) {
        snprintf(err, errlen,
                 "%s:%d: unknown assertion type '%s'; types are "
                 "record_count, schema_contains, no_nulls, field_in_set, "
                 "field_range, no_duplicates, aggregate_check, "
                 "join_coverage, execution_time, throughput, memory, "
                 "dlq_count, late_count, file_matches, metric",
                 where, t->line, t->str);
        return -1;
    }
    for (size_t k = 0; k < 3 && at->required[k] != NULL; k++) {
        if (velo_tk_yaml_get(a, at->required[k]) == NULL) {
            snprintf(err, errlen, "%s:%d: %s needs '%s:'", where, a->line,
                     at->type, at->required[k]);
            return -1;
        }
    }
    const struct velo_tk_yaml *op = velo_tk_yaml_get(a, "operator");
    if (op != NULL) {
        if (op->kind != VELO_TK_YSCALAR || velo_tk_op_parse(op->str) < 0) {
            snprintf(err, errlen,
                     "%s:%d: unknown operator '%s'; operators are equals, "
                     "not_equals, greater_than, less_than, between, in",
                     where, op->line,
                     op->kind == VELO_TK_YSCALAR ? op->str : "?");
            return -1;
        }
        if (!at->numeric) {
            snprintf(err, errlen, "%s:%d: %s takes no operator", where,
                     op->line, at->type);
            return -1;
        }
        if (velo_tk_yaml_get(a, "expected") == NULL) {
            snprintf(err, errlen, "%s:%d: operator %s needs 'expected:'", where,
                     op->line, op->str);
            return -1;
        }
        int o = velo_tk_op_parse(op->str);
        const struct velo_tk_yaml *e = velo_tk_yaml_get(a, "expected");
        if ((o == VELO_TK_BETWEEN || o == VELO_TK_IN) !=
            (e->kind == VELO_TK_YSEQ)) {
            snprintf(err, errlen, "%s:%d: %s needs expected as %s", where,
                     e->line, op->str,
                     o == VELO_TK_BETWEEN ? "a list [low, high]"
                     : o == VELO_TK_IN    ? "a list of values"
                                          : "a single value");
            return -1;
        }
        if (o == VELO_TK_BETWEEN && e->n != 2) {
            snprintf(err, errlen, "%s:%d: between needs [low, high]", where,
                     e->line);
            return -1;
        }
    }
    return 0;
}

static char *dir_of(const char *path)
{
    const char *sl = strrchr(path, '/');
    return sl == NULL ? strdup(".") : strndup(path, (size_t)(sl - path));
}

char *velo_tk_path_join(const char *dir, const char *file)
{
    if (file[0] == '/' || dir == NULL || dir[0] == '\0') {
        return strdup(file);
    }
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = malloc(n);
    if (p != NULL) {
        snprintf(p, n, "%s/%s", dir, file);
    }
    return p;
}

struct velo_tk_spec *velo_tk_spec_load(const char *path, char *err,
                                       size_t errlen)
{
    struct velo_tk_yaml *doc = velo_tk_yaml_load(path, err, errlen);
    if (doc == NULL) {
        return NULL;
    }
    struct velo_tk_spec *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        velo_tk_yaml_free(doc);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->doc = doc;
    s->dir = dir_of(path);
    const struct velo_tk_yaml *qs = velo_tk_yaml_get(doc, "queries");
    if (qs == NULL || qs->kind != VELO_TK_YSEQ) {
        snprintf(err, errlen,
                 "%s:%d: a spec lists its outputs under "
                 "'queries:' (- name: enriched, assertions: "
                 "[...])",
                 path, doc->line);
        velo_tk_spec_free(s);
        return NULL;
    }
    s->queries = calloc(qs->n + 1, sizeof(*s->queries));
    if (s->queries == NULL) {
        velo_tk_spec_free(s);
        return NULL;
    }
    for (size_t i = 0; i < qs->n; i++) {
        const struct velo_tk_yaml *q = qs->items[i];
        const struct velo_tk_yaml *nm = velo_tk_yaml_get(q, "name");
        if (nm == NULL || nm->kind != VELO_TK_YSCALAR) {
            snprintf(err, errlen,
                     "%s:%d: each query needs 'name:' (the "
                     "CREATE STREAM/TABLE name, or select-1)",
                     path, q->line);
            velo_tk_spec_free(s);
            return NULL;
        }
        struct velo_tk_query *tq = &s->queries[s->nqueries++];
        tq->name = strdup(nm->str);
        const struct velo_tk_yaml *ins = velo_tk_yaml_get(q, "inputs");
        if (ins != NULL && ins->kind == VELO_TK_YSEQ) {
            tq->inputs = calloc(ins->n + 1, sizeof(*tq->inputs));
            for (size_t k = 0; tq->inputs != NULL && k < ins->n; k++) {
                const struct velo_tk_yaml *in = ins->items[k];
                const struct velo_tk_yaml *src = velo_tk_yaml_get(in, "source");
                if (src == NULL || src->kind != VELO_TK_YSCALAR) {
                    snprintf(err, errlen,
                             "%s:%d: an input needs 'source:' "
                             "(the SQL source name)",
                             path, in->line);
                    velo_tk_spec_free(s);
                    return NULL;
                }
                struct velo_tk_input *ti = &tq->inputs[tq->ninputs++];
                ti->source = strdup(src->str);
                double v;
                const struct velo_tk_yaml *rc = velo_tk_yaml_get(in, "records");
                if (rc != NULL) {
                    if (velo_tk_yaml_num(rc, &v) != 0 || v < 0) {
                        snprintf(err, errlen,
                                 "%s:%d: records must be a "
                                 "count",
                                 path, rc->line);
                        velo_tk_spec_free(s);
                        return NULL;
                    }
                    ti->records = (int64_t)v;
                }
                const struct velo_tk_yaml *sc = velo_tk_yaml_get(in, "schema");
                if (sc != NULL && sc->kind == VELO_TK_YSCALAR) {
                    ti->schema_file = velo_tk_path_join(s->dir, sc->str);
                } else if (sc != NULL) {
                    ti->schema_inline = sc;
                }
            }
        }
        const struct velo_tk_yaml *as = velo_tk_yaml_get(q, "assertions");
        if (as != NULL && as->kind == VELO_TK_YSEQ) {
            tq->asserts = calloc(as->n + 1, sizeof(*tq->asserts));
            for (size_t k = 0; tq->asserts != NULL && k < as->n; k++) {
                if (check_assertion(as->items[k], path, err, errlen) != 0) {
                    velo_tk_spec_free(s);
                    return NULL;
                }
                struct velo_tk_assertion *ta = &tq->asserts[tq->nasserts++];
                ta->type = strdup(velo_tk_yaml_get(as->items[k], "type")->str);
                ta->y = as->items[k];
                ta->line = as->items[k]->line;
            }
        }
    }
    return s;
}

void velo_tk_spec_free(struct velo_tk_spec *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->nqueries; i++) {
        struct velo_tk_query *q = &s->queries[i];
        for (size_t k = 0; k < q->ninputs; k++) {
            free(q->inputs[k].source);
            free(q->inputs[k].schema_file);
        }
        free(q->inputs);
        for (size_t k = 0; k < q->nasserts; k++) {
            free(q->asserts[k].type);
        }
        free(q->asserts);
        free(q->name);
    }
    free(s->queries);
    free(s->dir);
    velo_tk_yaml_free(s->doc);
    free(s);
}
