/*
 * `velo explain`: each statement as a tree of operators, output first,
 * with the rows each produces (name TYPE), the state it keeps (and how
 * much, from the live counters) and when it emits.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sql/bind.h"

/* json_stringn, not json_string: a string of known length, and a symbol
 * no other module of the binary can shadow. */
static json_t *jstr(const char *s)
{
    return json_stringn(s, strlen(s));
}

static void put_schema(struct sql_buf *b, const struct velo_schema *s)
{
    char tb[48];
    size_t shown = 0;
    for (size_t i = 0; s != NULL && i < s->n; i++) {
        if (s->fields[i].hidden) {
            continue;
        }
        sql_buf_printf(b, "%s%s %s", shown++ ? ", " : "", s->fields[i].name,
                       type_name(s->fields[i].type, tb, sizeof(tb)));
    }
    if (shown == 0) {
        sql_buf_puts(b, "(no columns)");
    }
    size_t hidden = 0;
    for (size_t i = 0; s != NULL && i < s->n; i++) {
        if (!s->fields[i].hidden) {
            continue;
        }
        sql_buf_printf(b, "%s%s %s", hidden++ ? ", " : "; system: ",
                       s->fields[i].name,
                       type_name(s->fields[i].type, tb, sizeof(tb)));
    }
}

static void human_bytes(size_t n, char *buf, size_t len)
{
    if (n >= (size_t)1 << 20) {
        snprintf(buf, len, "%.1f MiB", (double)n / (1 << 20));
    } else if (n >= 1024) {
        snprintf(buf, len, "%.1f KiB", (double)n / 1024);
    } else {
        snprintf(buf, len, "%zu B", n);
    }
}

static void indent(struct sql_buf *b, size_t depth)
{
    for (size_t i = 0; i < depth; i++) {
        sql_buf_puts(b, "   ");
    }
}

static const char *emit_name(int emit)
{
    return emit == VELO_EMIT_FINAL     ? "FINAL"
           : emit == VELO_EMIT_CHANGES ? "CHANGES"
                                       : NULL;
}

static void text_node(struct sql_buf *b, const struct plan_node *n,
                      size_t depth)
{
    indent(b, depth);
    sql_buf_puts(b, depth > 0 ? "-> " : "");
    sql_buf_puts(b, n->label ? n->label : "?");
    if (n->detail != NULL && n->detail[0] != '\0') {
        sql_buf_printf(b, ": %s", n->detail);
    }
    sql_buf_puts(b, "\n");
    size_t d = depth + 1;
    indent(b, d);
    sql_buf_puts(b, "rows: ");
    put_schema(b, n->schema);
    sql_buf_puts(b, "\n");
    if (n->op != NULL) {
        const struct velo_op *op = n->op;
        char ex[512] = "";
        if (op->ops != NULL && op->ops->explain != NULL) {
            op->ops->explain(op, ex, sizeof(ex));
        }
        if (ex[0] != '\0') {
            indent(b, d);
            sql_buf_printf(b, "details: %s\n", ex);
        }
        indent(b, d);
        if (op->keeps_state) {
            char hb[32];
            human_bytes(op->stats.state_bytes, hb, sizeof(hb));
            sql_buf_printf(b, "state: kept across batches (%zu rows, %s)\n",
                           op->stats.state_rows, hb);
        } else {
            sql_buf_puts(b, "state: none\n");
        }
        if (op->stats.rows_in > 0 || op->stats.rows_out > 0) {
            indent(b, d);
            sql_buf_printf(b, "rows so far: %" PRIu64 " in, %" PRIu64
                              " out",
                           op->stats.rows_in, op->stats.rows_out);
            if (op->stats.rows_failed > 0) {
                sql_buf_printf(b, ", %" PRIu64 " failed",
                               op->stats.rows_failed);
            }
            if (op->stats.rows_late > 0) {
                sql_buf_printf(b, ", %" PRIu64 " late", op->stats.rows_late);
            }
            sql_buf_puts(b, "\n");
        }
    }
    indent(b, d);
    if (n->emits != NULL) {
        sql_buf_printf(b, "emits: %s\n", n->emits);
    } else if (n->kind == PN_SOURCE || n->kind == PN_STREAM) {
        sql_buf_puts(b, "emits: each batch as it is read\n");
    } else if (n->kind == PN_SINK) {
        sql_buf_puts(b, "writes: each batch it receives\n");
    } else {
        sql_buf_puts(b, "emits: each input batch, at once\n");
    }
}

/* The input of node i when it has no explicit ones: the node before it,
 * unless it is a leaf. */
static int implicit_input(const struct plan_stmt_nodes *sn, size_t i)
{
    const struct plan_node *n = &sn->nodes[i];
    return n->ninputs == 0 && i > 0 && n->kind != PN_SOURCE &&
           n->kind != PN_STREAM;
}

static void text_tree(struct sql_buf *b, const struct plan_stmt_nodes *sn,
                      size_t i, size_t depth, uint8_t *done)
{
    /* A chain iterates; branches recurse (bounded by the query's joins). */
    for (;;) {
        done[i] = 1;
        const struct plan_node *n = &sn->nodes[i];
        text_node(b, n, depth++);
        if (n->ninputs > 0) {
            for (size_t k = 0; k < n->ninputs; k++) {
                if (n->inputs[k] < sn->n && !done[n->inputs[k]]) {
                    text_tree(b, sn, n->inputs[k], depth, done);
                }
            }
            return;
        }
        if (!implicit_input(sn, i) || done[i - 1]) {
            return;
        }
        i--;
    }
}

static char *explain_text(const struct plan_impl *pi)
{
    const struct velo_plan *p = &pi->pub;
    struct sql_buf b = {0};
    sql_buf_printf(&b, "Plan %016" PRIx64 ": %zu statement%s, %zu "
                       "source%s, %zu sink%s\n",
                   p->fingerprint, p->nstatements,
                   p->nstatements == 1 ? "" : "s", p->nsources,
                   p->nsources == 1 ? "" : "s", p->nsinks,
                   p->nsinks == 1 ? "" : "s");
    for (size_t s = 0; s < p->nstatements; s++) {
        const struct velo_plan_statement *st = &p->statements[s];
        sql_buf_printf(&b, "\nStatement %zu (line %d): %s%s%s", s + 1,
                       st->line, st->kind ? st->kind : "?",
                       st->target ? " " : "", st->target ? st->target : "");
        if (emit_name(st->emit) != NULL) {
            sql_buf_printf(&b, ", EMIT %s", emit_name(st->emit));
        }
        sql_buf_puts(&b, "\n");
        const struct plan_stmt_nodes *sn = &pi->nodes[s];
        uint8_t *done = calloc(sn->n + 1, 1);
        /* The output's tree first, then what it does not reach (a WITH
         * query's operators, read through its name). */
        for (size_t i = sn->n; done != NULL && i > 0; i--) {
            if (!done[i - 1]) {
                text_tree(&b, sn, i - 1, 0, done);
            }
        }
        free(done);
    }
    return sql_buf_take(&b);
}

static json_t *json_schema(const struct velo_schema *s)
{
    json_t *a = json_array();
    char tb[48];
    for (size_t i = 0; a != NULL && s != NULL && i < s->n; i++) {
        json_t *f = json_object();
        json_object_set_new(f, "name", jstr(s->fields[i].name));
        json_object_set_new(
            f, "type",
            jstr(type_name(s->fields[i].type, tb, sizeof(tb))));
        json_object_set_new(f, "nullable",
                            json_boolean(s->fields[i].nullable));
        json_object_set_new(f, "hidden", json_boolean(s->fields[i].hidden));
        json_array_append_new(a, f);
    }
    return a;
}

static const char *node_kind(int k)
{
    switch (k) {
    case PN_SOURCE: return "source";
    case PN_STREAM: return "stream";
    case PN_OP: return "operator";
    case PN_SINK: return "sink";
    case PN_TARGET: return "target";
    default: return "?";
    }
}

static json_t *json_node(const struct plan_node *n)
{
    json_t *o = json_object();
    json_object_set_new(o, "kind", jstr(node_kind(n->kind)));
    static const char *const names[] = {"?", "Source", "Stream", "?", "Sink",
                                        "?"};
    const char *opname = n->op && n->op->ops ? n->op->ops->name
                         : n->kind >= 1 && n->kind <= 5 ? names[n->kind]
                                                        : "?";
    json_object_set_new(o, "operator", jstr(opname));
    json_object_set_new(o, "label", jstr(n->label ? n->label : ""));
    json_object_set_new(o, "detail",
                        n->detail ? jstr(n->detail) : json_null());
    json_object_set_new(o, "schema", json_schema(n->schema));
    if (n->op != NULL) {
        const struct velo_op *op = n->op;
        char ex[512] = "";
        if (op->ops != NULL && op->ops->explain != NULL) {
            op->ops->explain(op, ex, sizeof(ex));
        }
        json_object_set_new(o, "details", jstr(ex));
        json_object_set_new(o, "keeps_state", json_boolean(op->keeps_state));
        json_object_set_new(o, "state_rows",
                            json_integer((json_int_t)op->stats.state_rows));
        json_object_set_new(o, "state_bytes",
                            json_integer((json_int_t)op->stats.state_bytes));
        json_object_set_new(o, "rows_in",
                            json_integer((json_int_t)op->stats.rows_in));
        json_object_set_new(o, "rows_out",
                            json_integer((json_int_t)op->stats.rows_out));
    } else {
        json_object_set_new(o, "keeps_state", json_false());
    }
    json_object_set_new(o, "emits",
                        n->emits ? jstr(n->emits) : json_null());
    if (n->kind == PN_SOURCE || n->kind == PN_SINK) {
        json_object_set_new(o, "index", json_integer((json_int_t)n->index));
    }
    return o;
}

static const char *format_name(int kind)
{
    switch (kind) {
    case VELO_FORMAT_CSV: return "csv";
    case VELO_FORMAT_JSON: return "json";
    case VELO_FORMAT_RAW: return "raw";
    case VELO_FORMAT_TABLE: return "table";
    default: return "?";
    }
}

static json_t *json_tree(const struct plan_stmt_nodes *sn, size_t i,
                         uint8_t *done)
{
    done[i] = 1;
    const struct plan_node *n = &sn->nodes[i];
    json_t *o = json_node(n);
    if (n->ninputs > 0) {
        json_t *arr = json_array();
        for (size_t k = 0; k < n->ninputs; k++) {
            if (n->inputs[k] < sn->n && !done[n->inputs[k]]) {
                json_array_append_new(arr, json_tree(sn, n->inputs[k], done));
            }
        }
        json_object_set_new(o, "inputs", arr);
        return o;
    }
    json_object_set_new(o, "input",
                        implicit_input(sn, i) && !done[i - 1]
                            ? json_tree(sn, i - 1, done)
                            : json_null());
    return o;
}

static char *explain_json(const struct plan_impl *pi)
{
    const struct velo_plan *p = &pi->pub;
    json_t *root = json_object();
    char fp[24];
    snprintf(fp, sizeof(fp), "%016" PRIx64, p->fingerprint);
    json_object_set_new(root, "fingerprint", jstr(fp));
    json_t *stmts = json_array();
    for (size_t s = 0; s < p->nstatements; s++) {
        const struct velo_plan_statement *st = &p->statements[s];
        json_t *o = json_object();
        json_object_set_new(o, "index", json_integer((json_int_t)s + 1));
        json_object_set_new(o, "line", json_integer(st->line));
        json_object_set_new(o, "kind", jstr(st->kind ? st->kind : ""));
        json_object_set_new(o, "target", st->target ? jstr(st->target)
                                                    : json_null());
        json_object_set_new(o, "emit",
                            emit_name(st->emit)
                                ? jstr(emit_name(st->emit))
                                : json_null());
        /* Output first; each node's input nested under it ("inputs" for
         * joins and UNION ALL). */
        const struct plan_stmt_nodes *sn = &pi->nodes[s];
        uint8_t *done = calloc(sn->n + 1, 1);
        json_t *top = sn->n > 0 && done != NULL
                          ? json_tree(sn, sn->n - 1, done)
                          : NULL;
        free(done);
        json_object_set_new(o, "plan", top ? top : json_null());
        json_array_append_new(stmts, o);
    }
    json_object_set_new(root, "statements", stmts);
    json_t *srcs = json_array();
    for (size_t i = 0; i < p->nsources; i++) {
        const struct velo_plan_source *s = &p->sources[i];
        json_t *o = json_object();
        json_object_set_new(o, "name", jstr(s->name));
        json_object_set_new(o, "uri", s->uri ? jstr(s->uri)
                                             : json_null());
        json_object_set_new(o, "connector", jstr(s->conn->name));
        json_object_set_new(o, "format",
                            jstr(format_name(s->format.kind)));
        json_object_set_new(o, "bounded", json_boolean(s->bounded));
        json_object_set_new(o, "line", json_integer(s->line));
        json_object_set_new(o, "schema", json_schema(s->schema));
        json_t *needed = json_array();
        for (size_t c = 0; s->schema && c < s->schema->n; c++) {
            if (s->needed[c]) {
                json_array_append_new(needed,
                                      jstr(s->schema->fields[c].name));
            }
        }
        json_object_set_new(o, "needed", needed);
        json_array_append_new(srcs, o);
    }
    json_object_set_new(root, "sources", srcs);
    json_t *sinks = json_array();
    for (size_t i = 0; i < p->nsinks; i++) {
        const struct velo_plan_sink *k = &p->sinks[i];
        json_t *o = json_object();
        json_object_set_new(o, "name", jstr(k->name));
        json_object_set_new(o, "connector", jstr(k->conn->name));
        json_object_set_new(o, "format",
                            jstr(format_name(k->format.kind)));
        json_object_set_new(o, "changelog", json_boolean(k->changelog));
        json_object_set_new(o, "statement",
                            json_integer((json_int_t)k->statement + 1));
        json_object_set_new(o, "schema", json_schema(k->schema));
        json_array_append_new(sinks, o);
    }
    json_object_set_new(root, "sinks", sinks);
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (s == NULL) {
        return NULL;
    }
    size_t n = strlen(s);
    char *r = malloc(n + 2);
    if (r != NULL) {
        memcpy(r, s, n);
        r[n] = '\n';
        r[n + 1] = '\0';
    }
    free(s);
    return r;
}

char *velo_plan_explain(const struct velo_plan *plan, int json)
{
    if (plan == NULL) {
        return NULL;
    }
    const struct plan_impl *pi = (const struct plan_impl *)plan;
    return json ? explain_json(pi) : explain_text(pi);
}
