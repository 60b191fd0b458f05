/*
 * Shared between the binder (expressions), the planner (statements,
 * sources, sinks) and explain. Private to core/sql.
 */
#ifndef VELO_SQL_BIND_H
#define VELO_SQL_BIND_H

#include <stddef.h>
#include <stdint.h>

#include "sql/ast.h"

/* ---- The plan as built -------------------------------------------------- */

enum plan_node_kind {
    PN_SOURCE = 1, /* an external source (index into sources) */
    PN_STREAM,     /* an earlier statement's output, read by name */
    PN_OP,         /* an operator */
    PN_SINK,       /* an external sink (index into sinks) */
    PN_TARGET      /* the in-process output of CREATE STREAM/TABLE */
};

struct plan_node {
    int kind;
    struct velo_op *op;  /* PN_OP, PN_TARGET; NULL otherwise */
    char *label;         /* "Filter", "Source trades", ... */
    char *detail;        /* "price > 100", may be NULL */
    char *emits;         /* "FINAL when ...", may be NULL */
    size_t index;        /* PN_SOURCE/PN_SINK: into the plan's arrays */
    const struct velo_schema *schema; /* rows it outputs */
    /* Where its rows come from: these nodes (joins, UNION ALL), else the
     * node before it, unless it is a source or stream (a leaf). */
    const size_t *inputs;
    size_t ninputs;
};

/* Per statement: the nodes from input (first) to output (last). */
struct plan_stmt_nodes {
    struct plan_node *nodes;
    size_t n, cap;
};

struct velo_lookup_table;

struct plan_impl {
    struct velo_plan pub;
    struct sql_pool *pool;
    size_t cap_sources, cap_sinks, cap_ops;
    struct plan_stmt_nodes *nodes; /* one per statement */
    /* Lookup tables (connectors read by key) and their schemas: closed
     * and freed after the operators. */
    struct velo_lookup_table **lookups;
    size_t nlookups, cap_lookups;
    struct velo_schema **schemas;
    size_t nschemas, cap_schemas;
};

/* ---- Binding expressions ------------------------------------------------ */

enum bind_mode {
    BIND_ROW = 0, /* over the input rows */
    BIND_AGG = 1  /* over the output of the query's aggregate */
};

/* One GROUP BY key or aggregate call of the query being bound. */
struct agg_key {
    struct velo_expr *expr; /* bound over the input (owned until built) */
    char *canon;            /* malloc'd */
    char *name;             /* malloc'd */
};

struct agg_rec {
    const struct velo_agg *agg;
    struct velo_expr *args[2];
    size_t nargs;
    int distinct;
    struct velo_expr *filter;
    struct velo_datatype type;
    char *canon; /* malloc'd */
    char *name;  /* malloc'd: the call's text */
};

struct agg_state {
    struct agg_key *keys;
    size_t nkeys, cap_keys;
    struct agg_rec *aggs;
    size_t naggs, cap_aggs;
    int windowed; /* output starts with _window_start, _window_end */
};

/* One relation of a join: its qualifiers and its columns' range in the
 * joined schema. */
struct bind_rel {
    const char *name;  /* SQL name, or NULL (a subquery) */
    const char *alias; /* or NULL */
    size_t first, n;
    uint8_t *needed;   /* external source: columns used (n flags); or NULL */
};

struct bind_scope {
    const struct velo_schema *schema;
    const char *name;  /* the source's SQL name (qualifier) */
    const char *alias; /* FROM alias, or NULL */
    uint8_t *needed;   /* external source: columns used; else NULL */
    /* A join: the relations whose columns make up schema (name, alias
     * and needed above are then unused). nrels 0: one relation. */
    const struct bind_rel *rels;
    size_t nrels;
};

/* A window function call (AST node) and where its value is: a column of
 * the input (the Over or Top-N operator appended it), or the constant 1
 * (col -1: ROW_NUMBER() of a deduplication, which keeps row 1 only). */
struct bind_over_ref {
    const struct ast_expr *call;
    int col;
};

struct binder {
    const struct velo_plan_env *env;
    const struct sql_text *t;
    struct velo_sql_diags *diags;
    int quiet;  /* probing: report nothing */
    int mode;   /* enum bind_mode */
    const char *no_agg; /* "WHERE", ...: aggregates forbidden here */
    int in_agg_arg;     /* binding an aggregate's argument */
    struct bind_scope in;
    struct agg_state *agg;
    /* SELECT aliases, for the hint when WHERE names one. */
    const struct ast_item *items;
    size_t nitems;
    /* Window function calls already computed by an operator. */
    const struct bind_over_ref *over;
    size_t nover;
    int over_failed; /* their planning failed (reported): stay quiet */
};

/** Bind an expression. @return the bound tree (caller owns), or NULL
 *  after reporting (unless quiet). */
struct velo_expr *bind_expr(struct binder *b, const struct ast_expr *e);
/** Bind a predicate (WHERE, HAVING, FILTER): must be BOOLEAN. */
struct velo_expr *bind_predicate(struct binder *b, const struct ast_expr *e,
                                 const char *clause);
/** A COLUMN reference to input column idx (in AGG mode: the key that is
 *  exactly that column, or an error naming it). */
struct velo_expr *bind_column(struct binder *b, int idx, struct sql_pos pos);
/** Does the tree contain an aggregate call? */
int ast_has_agg(const struct binder *b, const struct ast_expr *e);
/** Fold constant subtrees (keeps the tree when folding fails). */
struct velo_expr *fold_constants(struct binder *b, struct velo_expr *e,
                                 struct sql_pos pos);
/** Cast e to type (returns e when it already has it); NULL on ENOMEM
 *  (e is freed). */
struct velo_expr *cast_to(struct velo_expr *e, struct velo_datatype type);
/** Is an explicit CAST from -> to allowed? */
int cast_allowed(struct velo_datatype from, struct velo_datatype to);
/** The type named by an AST type; reports and returns -1 when unknown. */
int resolve_type(struct binder *b, const struct ast_type *ty,
                 struct velo_datatype *out);
/** Parse an interval text ('5 minutes', '1h30m', '90'+unit) into
 *  microseconds. @return VELO_OK/VELO_ERR. */
int interval_parse(const char *text, const char *unit, int64_t *us);

/** Deterministic text of a bound tree (group key matching, fingerprint). */
void canon_expr(const struct velo_expr *e, struct sql_buf *out);
char *canon_dup(const struct velo_expr *e);

void agg_state_free(struct agg_state *a);

/** Names of a schema's fields for hints: "a, b, c" (visible first). */
void schema_names(const struct velo_schema *s, struct sql_buf *out,
                  int with_types);
const char *type_name(struct velo_datatype t, char *buf, size_t len);

/** Source text of a span, malloc'd (trimmed to 200 characters). */
char *span_text(const struct sql_text *t, struct sql_pos pos);

/* Diagnostics through the binder (dropped while quiet). */
void bind_error(struct binder *b, struct sql_pos pos, const char *code,
                const char *hint, const char *fmt, ...) VELO_PRINTF(5, 6);

#endif /* VELO_SQL_BIND_H */
