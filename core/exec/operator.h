/*
 * Physical operators: a push-based DAG inside one worker thread.
 *
 * A source's decoded batch is pushed into the first operator; each
 * operator transforms it and pushes its output batch to its children
 * (usually one; a Tee fans out to several, e.g. when two statements of an
 * application read the same stream). Output batches are owned by the
 * operator that produced them and valid only during the push call: a
 * child that needs rows later (Sort, a window) copies them into its state.
 *
 * Event time moves forward through velo_op_watermark(wm): windows whose
 * end <= wm close (EMIT FINAL). velo_op_finish() ends a bounded input:
 * every open window and buffered row is emitted, then the call reaches the
 * children.
 *
 * Every operator keeps counters for explain, the progress line and
 * metrics, and reports failed rows (evaluation errors) and late rows to
 * the job through the environment's callbacks.
 */
#ifndef VELO_EXEC_OPERATOR_H
#define VELO_EXEC_OPERATOR_H

#include <stddef.h>
#include <stdint.h>

#include "exec/batch.h"
#include "exec/expr.h"
#include "exec/types.h"

struct velo_op;

/* What every operator of one job shares. Borrowed by the operators. */
struct velo_exec_env {
    const struct velo_funcs *funcs;
    size_t batch_cap; /* VELO_BATCH_ROWS unless a test says otherwise */
    /* A row failed evaluation (code: enum velo_eval_error). May be NULL. */
    void (*on_row_error)(void *arg, const struct velo_op *op,
                         const struct velo_row_origin *origin, int code,
                         const char *msg);
    /* A row arrived for a window that already closed. May be NULL. */
    void (*on_late_row)(void *arg, const struct velo_op *op,
                        const struct velo_row_origin *origin,
                        int64_t event_time_us, int64_t watermark_us);
    void *cb_arg;
    int64_t (*now_us)(void); /* NOW(); fixed in tests */
};

struct velo_op_stats {
    uint64_t rows_in, rows_out;
    uint64_t rows_failed; /* evaluation errors */
    uint64_t rows_late;   /* for closed windows */
    uint64_t batches_in;
    size_t state_rows;  /* groups, open windows' groups, buffered rows */
    size_t state_bytes; /* memory held for state */
    /* Late rows kept by the update strategy (also in rows_late). */
    uint64_t rows_late_updated;
};

struct velo_op_ops {
    const char *name; /* "Filter", "Project", "Aggregate", ... */
    int (*push)(struct velo_op *op, struct velo_batch *in);
    int (*watermark)(struct velo_op *op, int64_t wm_us); /* may be NULL */
    int (*finish)(struct velo_op *op);                  /* may be NULL */
    void (*destroy)(struct velo_op *op);
    /** One line of details for explain ("keys: symbol; window: TUMBLING
     *  5 MINUTE on ts; emits FINAL when the window closes"). */
    void (*explain)(const struct velo_op *op, char *buf, size_t len);
};

#define VELO_OP_MAX_CHILDREN 16

struct velo_op {
    const struct velo_op_ops *ops;
    const struct velo_exec_env *env;
    struct velo_schema *out_schema; /* owned */
    struct velo_op *children[VELO_OP_MAX_CHILDREN];
    size_t nchildren;
    struct velo_op_stats stats;
    int keeps_state; /* for explain: does it hold rows across batches? */
    void *impl;      /* the operator's own */
};

/* ---- Driving a DAG ------------------------------------------------------ */

/** @return VELO_OK, or VELO_ERR when out of children slots. */
int velo_op_connect(struct velo_op *from, struct velo_op *to);
/** Push to every child (operators call this for their output). */
int velo_op_emit(struct velo_op *op, struct velo_batch *out);
int velo_op_push(struct velo_op *op, struct velo_batch *in);
int velo_op_watermark(struct velo_op *op, int64_t wm_us);
int velo_op_finish(struct velo_op *op);
/** Destroy op (not its children). */
void velo_op_destroy(struct velo_op *op);

/* ---- Operators (constructors take ownership of expressions) -------------
 * All return NULL and set errno on failure. `in` is borrowed and must
 * outlive the operator (it is the upstream operator's out_schema). */

/** WHERE / HAVING: keeps rows where pred is TRUE. out_schema = in. */
struct velo_op *velo_op_filter(const struct velo_exec_env *env,
                               const struct velo_schema *in,
                               struct velo_expr *pred);

/** SELECT list: out column i = exprs[i] named names[i] (copied); hidden[i]
 *  marks system columns carried along (may be NULL: none hidden). */
struct velo_op *velo_op_project(const struct velo_exec_env *env,
                                const struct velo_schema *in,
                                struct velo_expr **exprs,
                                const char *const *names,
                                const uint8_t *hidden, size_t n);

enum velo_window_kind {
    VELO_WINDOW_NONE = 0,
    VELO_WINDOW_TUMBLING = 1,
    VELO_WINDOW_HOPPING = 2 /* size, advance; SLIDING is the same */
};

/* What happens to a row whose window has closed. */
enum velo_late_strategy {
    VELO_LATE_DROP = 0,  /* counted, reported through on_late_row */
    VELO_LATE_UPDATE = 1 /* EMIT CHANGES: added to its window while the
                            window's state is still held, re-emitted */
};
enum velo_emit_mode { VELO_EMIT_CHANGES = 0, VELO_EMIT_FINAL = 1 };

struct velo_window_spec {
    int kind;        /* enum velo_window_kind */
    int64_t size_us; /* > 0 */
    /* Event time of a row: a TIMESTAMP expression over the input, or NULL
     * for the input's "_timestamp" column. */
    struct velo_expr *time;
    /* Appended (SQL engine II); zero keeps the behaviour of before. */
    int64_t advance_us;    /* HOPPING: a window starts every advance_us */
    int64_t grace_us;      /* GRACE: windows close at end + grace */
    int64_t max_ooo_us;    /* watermark = highest event time - this */
    int late_strategy;     /* enum velo_late_strategy */
};

struct velo_agg_call {
    const struct velo_agg *agg;
    struct velo_expr *args[2]; /* nargs of them; owned */
    size_t nargs;
    int distinct;             /* COUNT(DISTINCT x) */
    struct velo_expr *filter; /* FILTER (WHERE ...), NULL if none; owned */
    const char *name;         /* output column name (copied) */
};

/**
 * GROUP BY with aggregates, optionally per tumbling window. Output schema:
 * [hidden _window_start, hidden _window_end (windowed only),] keys...,
 * aggregates... . EMIT CHANGES: after each input row, the updated row of
 * its group (op INSERT for a new group, UPDATE after). EMIT FINAL: one row
 * per group when its window closes (watermark) or at finish. Without
 * GROUP BY keys (nkeys 0) there is one global group; with no input rows at
 * finish and no window, FINAL still emits it (COUNT(*) = 0) as SQL does.
 * Uses an open-addressing hash table on the key columns.
 */
struct velo_op *velo_op_aggregate(const struct velo_exec_env *env,
                                  const struct velo_schema *in,
                                  struct velo_expr **keys,
                                  const char *const *key_names, size_t nkeys,
                                  struct velo_agg_call *aggs, size_t naggs,
                                  const struct velo_window_spec *window,
                                  int emit);

struct velo_sort_key {
    struct velo_expr *expr; /* owned */
    int desc;
    int nulls_first; /* default: NULLS LAST for ASC, FIRST for DESC */
};

/** ORDER BY on bounded input: buffers rows, emits sorted at finish. With
 *  limit >= 0 it keeps only the top limit+offset rows (a heap). */
struct velo_op *velo_op_sort(const struct velo_exec_env *env,
                             const struct velo_schema *in,
                             struct velo_sort_key *keys, size_t n,
                             int64_t limit, int64_t offset);

/** LIMIT/OFFSET without ORDER BY: passes the first rows, then drops;
 *  velo_op_limit_done() tells the job it may stop reading. */
struct velo_op *velo_op_limit(const struct velo_exec_env *env,
                              const struct velo_schema *in, int64_t limit,
                              int64_t offset);
int velo_op_limit_done(const struct velo_op *op);

/** Fan-out: every child sees every batch. out_schema = in. */
struct velo_op *velo_op_tee(const struct velo_exec_env *env,
                            const struct velo_schema *in);

/** CREATE TABLE: the latest row per key (key column indexes into in);
 *  passes each row on marked INSERT (new key) or UPDATE (existing key)
 *  and keeps the materialized table for lookups (next issue's joins). */
struct velo_op *velo_op_table(const struct velo_exec_env *env,
                              const struct velo_schema *in,
                              const int *key_cols, size_t nkeys);

/** Terminal: hands every batch to fn (sinks, tests, the CLI). */
typedef int (*velo_op_sink_fn)(void *arg, struct velo_batch *b);
typedef int (*velo_op_sink_finish_fn)(void *arg);
struct velo_op *velo_op_callback(const struct velo_exec_env *env,
                                 const struct velo_schema *in,
                                 velo_op_sink_fn fn,
                                 velo_op_sink_finish_fn finish, void *arg,
                                 const char *name);

#endif /* VELO_EXEC_OPERATOR_H */
