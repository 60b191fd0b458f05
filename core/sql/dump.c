/*
 * The AST as S-expressions, one statement per line: what the parser
 * understood, for tests and for debugging the grammar
 * ("SELECT a + b * c" -> "(select (query (items (+ a (* b c)))))").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/ast.h"

static void dump_expr(struct sql_buf *b, const struct ast_expr *e);

static void dump_quoted(struct sql_buf *b, const char *s)
{
    sql_buf_add(b, "'", 1);
    for (const char *p = s; *p; p++) {
        if (*p == '\'') {
            sql_buf_add(b, "'", 1);
        }
        sql_buf_add(b, p, 1);
    }
    sql_buf_add(b, "'", 1);
}

static void dump_type(struct sql_buf *b, const struct ast_type *t)
{
    sql_buf_puts(b, t->name);
    if (t->nparams > 0) {
        sql_buf_printf(b, "(%lld", (long long)t->params[0]);
        if (t->nparams > 1) {
            sql_buf_printf(b, ",%lld", (long long)t->params[1]);
        }
        sql_buf_puts(b, ")");
    }
}

static void dump_query(struct sql_buf *b, const struct ast_query *q);
static void dump_list(struct sql_buf *b, const char *tag,
                      struct ast_expr *const *l, size_t n);
static void dump_order(struct sql_buf *b, const struct ast_order *o,
                       size_t n);

static void dump_args(struct sql_buf *b, const struct ast_expr *e, size_t from)
{
    for (size_t i = from; i < e->nargs; i++) {
        sql_buf_puts(b, " ");
        dump_expr(b, e->args[i]);
    }
}

static const char *op_text(int op)
{
    switch (op) {
    case TK_PLUS: return "+";
    case TK_MINUS: return "-";
    case TK_STAR: return "*";
    case TK_SLASH: return "/";
    case TK_PERCENT: return "%";
    case TK_CONCAT: return "||";
    case TK_EQ: return "=";
    case TK_NE: return "<>";
    case TK_LT: return "<";
    case TK_LE: return "<=";
    case TK_GT: return ">";
    case TK_GE: return ">=";
    default: return "?";
    }
}

static void dump_expr(struct sql_buf *b, const struct ast_expr *e)
{
    if (e == NULL) {
        sql_buf_puts(b, "<null>");
        return;
    }
    switch (e->kind) {
    case AX_INTEGER:
    case AX_DECIMAL:
    case AX_FLOAT:
        sql_buf_puts(b, e->text);
        return;
    case AX_STRING:
        dump_quoted(b, e->text);
        return;
    case AX_BOOL:
        sql_buf_puts(b, e->ival ? "true" : "false");
        return;
    case AX_NULL:
        sql_buf_puts(b, "null");
        return;
    case AX_TYPED:
        sql_buf_printf(b, "(%s ", e->name);
        dump_quoted(b, e->text);
        sql_buf_puts(b, ")");
        return;
    case AX_INTERVAL:
        sql_buf_puts(b, "(interval ");
        dump_quoted(b, e->text);
        if (e->name != NULL) {
            sql_buf_printf(b, " %s", e->name);
        }
        sql_buf_puts(b, ")");
        return;
    case AX_DURATION:
        sql_buf_printf(b, "(duration %s)", e->text);
        return;
    case AX_NAME:
        for (size_t i = 0; i < e->nparts; i++) {
            sql_buf_printf(b, "%s%s%s%s", i ? "." : "",
                           e->parts[i].quoted ? "\"" : "", e->parts[i].name,
                           e->parts[i].quoted ? "\"" : "");
        }
        return;
    case AX_STAR:
        if (e->nparts > 0) {
            sql_buf_printf(b, "%s.", e->parts[0].name);
        }
        sql_buf_puts(b, "*");
        return;
    case AX_SUBSCRIPT:
        sql_buf_puts(b, "([]");
        dump_args(b, e, 0);
        sql_buf_puts(b, ")");
        return;
    case AX_FIELD:
        sql_buf_puts(b, "(. ");
        dump_expr(b, e->args[0]);
        sql_buf_printf(b, " %s)", e->name);
        return;
    case AX_NEG:
        sql_buf_puts(b, "(neg");
        break;
    case AX_BINARY:
        sql_buf_printf(b, "(%s", op_text(e->op));
        break;
    case AX_AND:
        sql_buf_puts(b, "(and");
        break;
    case AX_OR:
        sql_buf_puts(b, "(or");
        break;
    case AX_NOT:
        sql_buf_puts(b, "(not");
        break;
    case AX_IS_NULL:
        sql_buf_puts(b, e->negated ? "(is-not-null" : "(is-null");
        break;
    case AX_IN:
        sql_buf_puts(b, e->negated ? "(not-in" : "(in");
        break;
    case AX_BETWEEN:
        sql_buf_puts(b, e->negated ? "(not-between" : "(between");
        break;
    case AX_LIKE:
        sql_buf_printf(b, "(%s%s", e->negated ? "not-" : "",
                       e->ilike ? "ilike" : "like");
        break;
    case AX_CASE: {
        sql_buf_puts(b, "(case");
        size_t i = 0;
        if (e->has_operand) {
            sql_buf_puts(b, " ");
            dump_expr(b, e->args[0]);
            i = 1;
        }
        size_t end = e->nargs - (e->has_else ? 1 : 0);
        for (; i + 1 < end; i += 2) {
            sql_buf_puts(b, " (when ");
            dump_expr(b, e->args[i]);
            sql_buf_puts(b, " ");
            dump_expr(b, e->args[i + 1]);
            sql_buf_puts(b, ")");
        }
        if (e->has_else) {
            sql_buf_puts(b, " (else ");
            dump_expr(b, e->args[e->nargs - 1]);
            sql_buf_puts(b, ")");
        }
        sql_buf_puts(b, ")");
        return;
    }
    case AX_CAST:
        sql_buf_puts(b, e->try_cast ? "(try-cast " : "(cast ");
        dump_expr(b, e->args[0]);
        sql_buf_puts(b, " ");
        dump_type(b, &e->type);
        sql_buf_puts(b, ")");
        return;
    case AX_CALL:
        sql_buf_printf(b, "(%s", e->name);
        if (e->special == SP_TRIM) {
            static const char *const sides[] = {"both", "leading",
                                                "trailing"};
            sql_buf_printf(b, ":%s", sides[e->trim_side % 3]);
        }
        if (e->distinct) {
            sql_buf_puts(b, " distinct");
        }
        if (e->star) {
            sql_buf_puts(b, " *");
        }
        dump_args(b, e, 0);
        if (e->filter != NULL) {
            sql_buf_puts(b, " (filter ");
            dump_expr(b, e->filter);
            sql_buf_puts(b, ")");
        }
        if (e->over != NULL) {
            const struct ast_over *o = e->over;
            sql_buf_puts(b, " (over");
            if (o->npartition > 0) {
                dump_list(b, "partition", o->partition, o->npartition);
            }
            dump_order(b, o->order, o->norder);
            if (o->frame != FRAME_DEFAULT) {
                sql_buf_puts(b, o->frame == FRAME_ROWS ? " (rows "
                                                       : " (range ");
                if (o->preceding != NULL) {
                    dump_expr(b, o->preceding);
                } else {
                    sql_buf_puts(b, "unbounded");
                }
                sql_buf_puts(b, ")");
            }
            sql_buf_puts(b, ")");
        }
        sql_buf_puts(b, ")");
        return;
    case AX_IN_QUERY:
        sql_buf_puts(b, e->negated ? "(not-in " : "(in ");
        dump_expr(b, e->args[0]);
        sql_buf_puts(b, " ");
        dump_query(b, e->sub);
        sql_buf_puts(b, ")");
        return;
    default:
        sql_buf_printf(b, "(?%d)", e->kind);
        return;
    }
    dump_args(b, e, 0);
    sql_buf_puts(b, ")");
}

static void dump_list(struct sql_buf *b, const char *tag,
                      struct ast_expr *const *l, size_t n)
{
    sql_buf_printf(b, " (%s", tag);
    for (size_t i = 0; i < n; i++) {
        sql_buf_puts(b, " ");
        dump_expr(b, l[i]);
    }
    sql_buf_puts(b, ")");
}

static void dump_order(struct sql_buf *b, const struct ast_order *o,
                       size_t n)
{
    if (n == 0) {
        return;
    }
    sql_buf_puts(b, " (order");
    for (size_t i = 0; i < n; i++) {
        sql_buf_puts(b, " (");
        dump_expr(b, o[i].expr);
        sql_buf_puts(b, o[i].desc ? " desc" : " asc");
        if (o[i].nulls >= 0) {
            sql_buf_puts(b, o[i].nulls ? " nulls-first" : " nulls-last");
        }
        sql_buf_puts(b, ")");
    }
    sql_buf_puts(b, ")");
}

static void dump_from(struct sql_buf *b, const struct ast_from *f)
{
    static const char *const jt[] = {"inner", "left", "right", "full"};
    switch (f->kind) {
    case FROM_JOIN:
        sql_buf_printf(b, "(join %s ", jt[f->join_type & 3]);
        dump_from(b, f->left);
        sql_buf_puts(b, " ");
        dump_from(b, f->right);
        if (f->within != NULL) {
            sql_buf_puts(b, " (within ");
            dump_expr(b, f->within);
            sql_buf_puts(b, ")");
        }
        sql_buf_puts(b, " (on ");
        dump_expr(b, f->on);
        sql_buf_puts(b, "))");
        return;
    case FROM_SUBQUERY:
        sql_buf_puts(b, "(subquery ");
        dump_query(b, f->sub);
        break;
    case FROM_URI:
        sql_buf_puts(b, "(uri ");
        dump_quoted(b, f->name.name);
        break;
    default:
        sql_buf_printf(b, "(%s", f->name.name);
        break;
    }
    if (f->alias.name != NULL) {
        sql_buf_printf(b, " as %s", f->alias.name);
    }
    sql_buf_puts(b, ")");
}

static void dump_query(struct sql_buf *b, const struct ast_query *q)
{
    if (q->nctes > 0) {
        sql_buf_puts(b, "(with");
        for (size_t i = 0; i < q->nctes; i++) {
            sql_buf_printf(b, " (%s ", q->ctes[i].name.name);
            dump_query(b, q->ctes[i].query);
            sql_buf_puts(b, ")");
        }
        sql_buf_puts(b, " ");
    }
    sql_buf_puts(b, "(query");
    if (q->distinct) {
        sql_buf_puts(b, " distinct");
    }
    sql_buf_puts(b, " (items");
    for (size_t i = 0; i < q->nitems; i++) {
        sql_buf_puts(b, " ");
        if (q->items[i].alias.name != NULL) {
            sql_buf_puts(b, "(as ");
            dump_expr(b, q->items[i].expr);
            sql_buf_printf(b, " %s)", q->items[i].alias.name);
        } else {
            dump_expr(b, q->items[i].expr);
        }
    }
    sql_buf_puts(b, ")");
    if (q->has_from && (q->from.kind == FROM_URI ||
                        q->from.kind == FROM_NAME)) {
        /* The shape earlier dumps had. */
        sql_buf_printf(b, " (from %s", q->from.kind == FROM_URI ? "uri " : "");
        if (q->from.kind == FROM_URI) {
            dump_quoted(b, q->from.name.name);
        } else {
            sql_buf_puts(b, q->from.name.name);
        }
        if (q->from.alias.name != NULL) {
            sql_buf_printf(b, " as %s", q->from.alias.name);
        }
        sql_buf_puts(b, ")");
    } else if (q->has_from) {
        sql_buf_puts(b, " (from ");
        dump_from(b, &q->from);
        sql_buf_puts(b, ")");
    }
    if (q->where != NULL) {
        sql_buf_puts(b, " (where ");
        dump_expr(b, q->where);
        sql_buf_puts(b, ")");
    }
    if (q->has_group) {
        dump_list(b, "group", q->group, q->ngroup);
    }
    if (q->window.kind == WIN_SESSION || q->window.kind == WIN_TUMBLING) {
        sql_buf_puts(b, q->window.kind == WIN_SESSION ? " (session"
                                                      : " (tumbling");
        if (q->window.time != NULL) {
            sql_buf_puts(b, " ");
            dump_expr(b, q->window.time);
        }
        sql_buf_puts(b, " ");
        dump_expr(b, q->window.size);
        sql_buf_puts(b, ")");
    }
    if (q->having != NULL) {
        sql_buf_puts(b, " (having ");
        dump_expr(b, q->having);
        sql_buf_puts(b, ")");
    }
    if (q->emit >= 0) {
        sql_buf_puts(b, q->emit == VELO_EMIT_FINAL ? " (emit final)"
                                                   : " (emit changes)");
    }
    if (q->norder > 0) {
        sql_buf_puts(b, " (order");
        for (size_t i = 0; i < q->norder; i++) {
            sql_buf_puts(b, " (");
            dump_expr(b, q->order[i].expr);
            sql_buf_puts(b, q->order[i].desc ? " desc" : " asc");
            if (q->order[i].nulls >= 0) {
                sql_buf_puts(b, q->order[i].nulls ? " nulls-first"
                                                  : " nulls-last");
            }
            sql_buf_puts(b, ")");
        }
        sql_buf_puts(b, ")");
    }
    if (q->limit != NULL) {
        sql_buf_puts(b, " (limit ");
        dump_expr(b, q->limit);
        sql_buf_puts(b, ")");
    }
    if (q->offset != NULL) {
        sql_buf_puts(b, " (offset ");
        dump_expr(b, q->offset);
        sql_buf_puts(b, ")");
    }
    sql_buf_puts(b, ")");
    if (q->nctes > 0) {
        sql_buf_puts(b, ")");
    }
    if (q->union_next != NULL) {
        sql_buf_puts(b, " (union-all ");
        dump_query(b, q->union_next);
        sql_buf_puts(b, ")");
    }
}

static void dump_stmt(struct sql_buf *b, const struct ast_stmt *st)
{
    if (st->failed) {
        sql_buf_puts(b, "(failed)\n");
        return;
    }
    switch (st->kind) {
    case ST_SELECT:
        sql_buf_puts(b, "(select ");
        break;
    case ST_CREATE_STREAM_AS:
        sql_buf_printf(b, "(create-stream %s ", st->name.name);
        break;
    case ST_CREATE_TABLE_AS:
        sql_buf_printf(b, "(create-table %s ", st->name.name);
        break;
    case ST_CREATE_SOURCE:
        sql_buf_printf(b, "(create-source %s (cols", st->name.name);
        for (size_t i = 0; i < st->ncols; i++) {
            sql_buf_printf(b, " (%s ", st->cols[i].name.name);
            dump_type(b, &st->cols[i].type);
            sql_buf_puts(b, st->cols[i].not_null ? " not-null)" : ")");
        }
        sql_buf_puts(b, ")");
        break;
    case ST_INSERT:
        sql_buf_printf(b, "(insert %s ", st->name.name);
        break;
    default:
        sql_buf_puts(b, "(? ");
        break;
    }
    if (st->query != NULL) {
        dump_query(b, st->query);
    }
    if (st->npk > 0) {
        sql_buf_puts(b, " (pk");
        for (size_t i = 0; i < st->npk; i++) {
            sql_buf_printf(b, " %s", st->pk[i].name);
        }
        sql_buf_puts(b, ")");
    }
    if (st->nprops > 0) {
        sql_buf_puts(b, " (with");
        for (size_t i = 0; i < st->nprops; i++) {
            sql_buf_puts(b, " (");
            dump_quoted(b, st->props[i].key);
            sql_buf_puts(b, " ");
            dump_quoted(b, st->props[i].value);
            sql_buf_puts(b, ")");
        }
        sql_buf_puts(b, ")");
    }
    sql_buf_puts(b, ")\n");
}

char *sql_ast_dump(const struct velo_sql_program *p)
{
    struct sql_buf b = {0};
    for (size_t i = 0; p != NULL && i < p->nstmts; i++) {
        dump_stmt(&b, p->stmts[i]);
    }
    return sql_buf_take(&b);
}
