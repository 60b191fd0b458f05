/*
 * The SQL front end: text -> statements (parser) -> bound, planned
 * operator DAG (binder + planner), with errors that teach.
 *
 * Every lexing, parsing and binding error carries a stable code, a
 * message, the line and column, the source line with a caret, and a hint
 * (did-you-mean for unknown columns, functions, sources, properties; the
 * expected tokens for syntax errors; the types for type errors).
 * velo_sql_plan reports every error it can find, not only the first.
 *
 * An application is one file of statements; a later statement reads an
 * earlier one's output by name, in the same thread, with no copy.
 */
#ifndef VELO_SQL_SQL_H
#define VELO_SQL_SQL_H

#include <stddef.h>
#include <stdint.h>

#include <velo/connector.h>

#include "connectors/registry.h"
#include "exec/expr.h"
#include "exec/operator.h"
#include "formats/format.h"

/* ---- Diagnostics -------------------------------------------------------- */

/* Stable codes, documented in docs/sql.md:
 *   V1xxx lexical, V2xxx syntax, V3xxx names (unknown column, source,
 *   function, property), V4xxx types, V5xxx semantics (aggregate rules,
 *   windows, emit modes, ORDER BY on unbounded input), V6xxx properties and
 *   connectors, V7xxx annotations. */
struct velo_sql_diag {
    char code[8];   /* "V3001" */
    int severity;   /* 0 error, 1 warning */
    int line, col;  /* 1-based; 0 when not tied to a place */
    int len;        /* length of the underlined span (>= 1) */
    char *message;  /* "unknown column 'pirce'" */
    char *detail;   /* may be NULL */
    char *hint;     /* "did you mean 'price'?"; may be NULL */
    char *source_line; /* the line's text, for the caret display */
};

struct velo_sql_diags {
    size_t n, cap;
    struct velo_sql_diag *d;
    size_t errors; /* count with severity 0 */
};

void velo_sql_diags_free(struct velo_sql_diags *ds);
/** PostgreSQL-style text, one block per diagnostic:
 *    q.sql:3:8: error V3001: unknown column 'pirce'
 *      SELECT pirce FROM trades
 *             ^~~~~
 *      hint: did you mean 'price'?
 *  @return malloc'd text. */
char *velo_sql_diags_format(const struct velo_sql_diags *ds,
                            const char *filename);
/** JSON array of {code, severity, line, column, length, message, detail,
 *  hint}. @return malloc'd text. */
char *velo_sql_diags_json(const struct velo_sql_diags *ds,
                          const char *filename);

/* ---- Parsing ------------------------------------------------------------ */

struct velo_sql_program; /* statements, properties, annotations */

/** Parse a whole file. Returns the program (possibly partial) and appends
 *  every lexical/syntax problem to diags; never NULL except on ENOMEM. */
struct velo_sql_program *velo_sql_parse(const char *text, size_t len,
                                        struct velo_sql_diags *diags);
void velo_sql_program_free(struct velo_sql_program *p);
size_t velo_sql_program_statements(const struct velo_sql_program *p);

/* `-- @key: value` annotations, kept for the observability issue. */
struct velo_sql_annotation {
    const char *key;   /* "metric" */
    const char *value; /* "trade_volume" */
    int line, col;
    size_t statement; /* index of the statement it belongs to */
};
size_t velo_sql_annotations(const struct velo_sql_program *p,
                            const struct velo_sql_annotation **out);

/* ---- Planning ----------------------------------------------------------- */

struct velo_plan_source;
struct event_base;

/* What the planner asks of its caller while binding. */
struct velo_plan_env {
    const struct velo_funcs *funcs;
    const struct velo_connectors *connectors;
    const struct velo_exec_env *exec; /* handed to every operator */
    /**
     * The schema of an external source: the caller opens the source (it
     * may keep it open for the run) and infers from a sample. Called for
     * declared sources too, to learn whether they are bounded; the planner
     * then keeps the declared schema and discards the inferred one. Return VELO_OK with
     * *out (ownership passes to the plan) and *bounded set, or VELO_ERR
     * with err (the planner reports it at the source's place).
     */
    int (*source_schema)(void *arg, const struct velo_plan_source *src,
                         struct velo_schema **out, int *bounded, char *err,
                         size_t errlen);
    void *arg;
    /* Used when a statement has no sink: bare SELECT goes to stdout. */
    int stdout_format; /* enum velo_format_kind */
    /* The job's event loop, handed to lookup tables the plan opens (their
     * connectors register their sockets there). */
    struct event_base *base;
};

/* An external input, as bound. */
struct velo_plan_source {
    char *name;     /* the SQL name ("trades"), or the URI when anonymous */
    char *uri;      /* NULL when given by '<name>.type' */
    const struct velo_connector_ref *conn;
    struct velo_property *props; /* prefix stripped; owned */
    size_t nprops;
    struct velo_format_opts format;
    struct velo_schema *schema;  /* declared or inferred; hidden
                                    "_timestamp" last */
    uint8_t *needed;             /* schema->n flags: columns used */
    int bounded;
    struct velo_op *entry;       /* push decoded batches here (a Tee) */
    int line, col;               /* where it was named */
    /* The table side of a stream-table join: the job reads this bounded
     * source to its end before it reads any source without the flag, so
     * every stream row meets the whole table. */
    int preload;
    /* '<src>.watermark.idle_timeout': after this long without data the
     * source stops holding back the watermark of joins and unions it
     * feeds (0: it always holds). */
    int64_t idle_timeout_us;
};

/* An external output. */
struct velo_plan_sink {
    char *name;    /* statement's target name, or "stdout" */
    char *uri;
    const struct velo_connector_ref *conn;
    struct velo_property *props; /* owned */
    size_t nprops;
    struct velo_format_opts format;
    const struct velo_schema *schema; /* of the rows it receives */
    struct velo_op *upstream; /* connect the sink's callback op to this */
    int changelog;            /* rows carry op marks (EMIT CHANGES/TABLE) */
    size_t statement;
    /* The output key (PRIMARY KEY, else GROUP BY columns): columns of
     * schema, for record keys and upserts; nkeys 0 when none. */
    const int *key_cols;
    size_t nkeys;
};

/* One statement, for explain and progress. */
struct velo_plan_statement {
    char *kind;   /* "SELECT", "CREATE STREAM", "CREATE TABLE", "INSERT" */
    char *target; /* name, or NULL for SELECT */
    int emit;     /* enum velo_emit_mode of its top aggregate, or -1 */
    int line;
};

struct velo_plan {
    struct velo_plan_source *sources;
    size_t nsources;
    struct velo_plan_sink *sinks;
    size_t nsinks;
    struct velo_plan_statement *statements;
    size_t nstatements;
    struct velo_op **ops; /* every operator, for destroy and explain */
    size_t nops;
    uint64_t fingerprint; /* of the bound plan: checkpoints refuse a
                             checkpoint written under another one */
    /* Dead letters: '<name>.dlq.path' on any statement (all must agree);
     * NULL: bad records and failed rows are skipped and logged. */
    char *dlq_path;
    /* '<job>.late.data.strategy'='dead_letter': late rows (reported
     * through on_late_row) go to the dead-letter file too. */
    int late_dead_letter;
};

/**
 * Bind and plan. On success returns the plan and diags may hold warnings;
 * on any error returns NULL with every error found in diags.
 */
struct velo_plan *velo_sql_plan(const struct velo_sql_program *p,
                                const struct velo_plan_env *env,
                                struct velo_sql_diags *diags);
void velo_plan_destroy(struct velo_plan *plan);

/** `velo explain`: operators as a tree per statement with output schemas,
 *  state kept (and how much, from the stats), and what emits when.
 *  json: a JSON document instead of text. @return malloc'd text. */
char *velo_plan_explain(const struct velo_plan *plan, int json);

#endif /* VELO_SQL_SQL_H */
