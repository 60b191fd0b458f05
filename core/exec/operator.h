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
struct velo_state_writer;
struct velo_state_reader;

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

    /* ---- Appended for SQL engine II (NULL where not applicable) ---- */
    /** Several inputs (joins, UNION ALL): a batch arrived on input `port`
     *  (see velo_op_port). Operators with ports leave push NULL. */
    int (*push_port)(struct velo_op *op, size_t port, struct velo_batch *in);
    /** Optional: input `port` has ended (a lookup table finished
     *  loading). Called before the operator's own finish, which runs once
     *  every port has ended. */
    int (*port_finish)(struct velo_op *op, size_t port);
    /** Checkpoints: write everything needed to continue exactly where the
     *  operator is (its rows, groups, windows, its own watermark). NULL
     *  for a stateless operator. @return VELO_OK, VELO_ERR (w->oom). */
    int (*snapshot)(const struct velo_op *op, struct velo_state_writer *w);
    /** Load a snapshot into a freshly built operator (same plan). Must
     *  reject (VELO_ERR) a section that does not read back exactly
     *  (velo_sr_ok(r, 1)); never crash on corrupt input. */
    int (*restore)(struct velo_op *op, struct velo_state_reader *r);
};

struct velo_op_ports; /* op.c */

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
    struct velo_op_ports *ports; /* inputs of a multi-input operator */
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

/* ---- Operators with several inputs -------------------------------------
 * A join or UNION ALL declares its inputs with velo_op_ports_init; each
 * upstream is connected to the port operator velo_op_port(op, i) (owned
 * by op, destroyed with it). A batch pushed into port i reaches
 * ops->push_port(op, i, batch).
 * Watermarks: op's watermark is the minimum over the ports that hold it
 * (holds[i] != 0; a lookup table's port does not); a finished port no
 * longer holds it back. When that minimum advances, velo_op_watermark(op,
 * min) runs (op's own watermark callback, then its children).
 * Finish: when a port ends, ops->port_finish(op, i) runs; when all have
 * ended, velo_op_finish(op). */
/** holds: nports flags, or NULL for "every port holds the watermark".
 *  @return VELO_OK/VELO_ERR (ENOMEM). */
int velo_op_ports_init(struct velo_op *op, size_t nports,
                       const uint8_t *holds);
/** The operator to connect input `port` to; NULL when out of range. */
struct velo_op *velo_op_port(struct velo_op *op, size_t port);
size_t velo_op_nports(const struct velo_op *op);
/** The last watermark seen on a port (INT64_MIN before any). */
int64_t velo_op_port_watermark(const struct velo_op *op, size_t port);
/** Has the port ended? */
int velo_op_port_done(const struct velo_op *op, size_t port);
/** A source has been idle for its '<src>.watermark.idle_timeout' (idle
 *  1), or has data again (0): travels down like a watermark; a port whose
 *  input is idle stops holding its operator's watermark back until data
 *  comes again. */
int velo_op_idle(struct velo_op *op, int idle);

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
    VELO_WINDOW_HOPPING = 2, /* size, advance; SLIDING is the same */
    /* SESSION(gap): per key, rows closer than size_us (the gap) in event
     * time form one window [first, last + gap). A row that bridges two
     * sessions merges them (aggregate states combine with velo_agg.merge;
     * EMIT CHANGES retracts the merged sessions' rows with DELETE). A
     * session closes when the watermark passes its end + grace. */
    VELO_WINDOW_SESSION = 3
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

/* ---- Row windows: OVER (...) -------------------------------------------
 * Each input row goes out once, with one extra column per call appended
 * after the input's columns (out_schema = in + calls, in order).
 * Order: when the ORDER BY is the event time (order_is_time), rows are
 * buffered per partition until the watermark passes them and are then
 * processed in event-time order (ties: arrival order), so the result does
 * not depend on disorder within the allowed lateness; rows older than the
 * watermark are late (counted, on_late_row, dropped). Otherwise (ORDER BY
 * another column, or none) the input must be bounded: every partition is
 * sorted at finish. State per partition is bounded by the frame (ROWS n:
 * the last n rows; RANGE interval: rows within it; unbounded: one
 * aggregate state) and a partition unseen for idle_ttl_us of event time
 * is dropped (0: kept). */
enum velo_wf {
    VELO_WF_ROW_NUMBER = 1,
    VELO_WF_RANK,
    VELO_WF_DENSE_RANK,
    VELO_WF_LAG,         /* arg, offset (default 1), deflt */
    VELO_WF_LEAD,        /* waits for `offset` later rows (or finish) */
    VELO_WF_FIRST_VALUE, /* first row of the frame */
    VELO_WF_LAST_VALUE,  /* the current row (frame ends at it) */
    VELO_WF_AGG          /* agg over the frame: running SUM, AVG, ... */
};

enum velo_frame_kind {
    VELO_FRAME_UNBOUNDED = 0, /* UNBOUNDED PRECEDING AND CURRENT ROW */
    VELO_FRAME_ROWS = 1,      /* ROWS BETWEEN n PRECEDING AND CURRENT ROW */
    VELO_FRAME_RANGE = 2      /* RANGE BETWEEN INTERVAL .. PRECEDING ... */
};

struct velo_over_call {
    int fn;                   /* enum velo_wf */
    const struct velo_agg *agg; /* VELO_WF_AGG */
    struct velo_expr *arg;    /* LAG/LEAD/FIRST/LAST/agg argument; owned;
                                 NULL for COUNT(*) and ranking */
    int64_t offset;           /* LAG/LEAD, >= 0 */
    struct velo_expr *deflt;  /* LAG/LEAD default, or NULL; owned */
    int frame;                /* enum velo_frame_kind */
    int64_t frame_rows;       /* ROWS: n preceding */
    int64_t frame_range_us;   /* RANGE: interval preceding (on order key) */
    const char *name;         /* output column (copied) */
    struct velo_datatype type; /* output column type */
};

struct velo_over_spec {
    struct velo_expr **partition; /* owned */
    size_t npartition;
    struct velo_sort_key order;   /* expr NULL: no ORDER BY */
    int order_is_time;            /* ORDER BY is the row's event time */
    struct velo_over_call *calls; /* owned by the operator after create */
    size_t ncalls;
    int64_t idle_ttl_us;
};

struct velo_op *velo_op_over(const struct velo_exec_env *env,
                             const struct velo_schema *in,
                             struct velo_over_spec *spec);

/**
 * Top-N per key, incremental: ROW_NUMBER() OVER (PARTITION BY keys ORDER
 * BY sort) filtered to <= n. Keeps the n best rows per partition. Output:
 * in's columns plus, when rank_name != NULL, a BIGINT rank column, as a
 * changelog: a row entering the top n is INSERTed (rows it displaces are
 * DELETEd, and with a rank column the rows whose rank moved are UPDATEd).
 * On bounded input with emit FINAL it emits each partition's final top n
 * at finish, in rank order, as plain inserts.
 */
struct velo_op *velo_op_topn(const struct velo_exec_env *env,
                             const struct velo_schema *in,
                             struct velo_expr **keys, size_t nkeys,
                             struct velo_sort_key *sort, size_t nsort,
                             int64_t n, const char *rank_name, int emit);

/**
 * Deduplication: one row per key. keep_last 0: the first row of each key
 * passes (INSERT) and later ones are dropped (ROW_NUMBER() ... ORDER BY
 * time ASC = 1). keep_last 1: the latest row per key by the order (event
 * time DESC) is kept and emitted as INSERT then UPDATE (a changelog
 * keyed by keys). State: one row per key, expired after ttl_us of event
 * time without a row for it (0: never).
 */
struct velo_op *velo_op_dedup(const struct velo_exec_env *env,
                              const struct velo_schema *in,
                              struct velo_expr **keys, size_t nkeys,
                              int keep_last, int64_t ttl_us);

/* ---- Joins ---------------------------------------------------------------
 * Every join has two ports: 0 the left input, 1 the right. The output
 * schema is the left input's fields followed by the right input's, copied
 * as they are (hidden flags kept, names may repeat: the planner resolves
 * columns by index). The first hidden "_timestamp" (the left's) carries
 * the output row's event time: the left row's for a lookup join, the
 * later of the two for interval and window joins, the row's own for an
 * outer row emitted without a partner. Columns of the missing side of an
 * outer row are NULL. Keys are equi-join expressions evaluated on each
 * side (lkeys over the left schema, rkeys over the right); NULL keys
 * never match. `residual` (may be NULL, owned) is a further predicate
 * over the output schema (ON a.k = b.k AND a.x > b.y). */
enum velo_join_type {
    VELO_JOIN_INNER = 0,
    VELO_JOIN_LEFT = 1,
    VELO_JOIN_RIGHT = 2,
    VELO_JOIN_FULL = 3
};

struct velo_join_keys {
    struct velo_expr **lkeys, **rkeys; /* nkeys each; owned */
    size_t nkeys;
    struct velo_expr *residual;        /* owned, or NULL */
    int type;                          /* enum velo_join_type */
};

/* An external table read by key (PostgreSQL, Redis) instead of port 1. */
struct velo_lookup_provider {
    const struct velo_schema *schema; /* rows it returns (right side) */
    /** For probe keys keys[0..n) (the single join key's value as text),
     *  fill rows 0..n-1 of `out` (a batch of `schema`, cap >= n, reset by
     *  the caller) with the match of each key and set found[i] (0: no
     *  row). @return VELO_OK, or VELO_ERR with err (the job fails). */
    int (*get)(void *arg, const struct velo_str *keys, size_t n,
               struct velo_batch *out, uint8_t *found, char *err,
               size_t errlen);
    void *arg;
    size_t cache_entries; /* bounded LRU of answers (found or not); 0: none */
    int64_t cache_ttl_us; /* wall-clock age after which an answer is
                             asked again */
};

/**
 * Stream-table join (INNER, LEFT). Port 0 is the stream; port 1 the
 * table's changelog (a CREATE TABLE's output or a bounded source loaded
 * whole: the latest row per right key is kept, DELETE removes it); port 1
 * does not hold the watermark. Each stream row is joined with the table
 * as it is when the row arrives (the job loads bounded table sources
 * before it reads the stream). With `ext` non-NULL there is no port 1
 * data: rows come from the provider (one key only), and the operator has
 * a single port. Output rows are inserts.
 */
struct velo_op *velo_op_lookup_join(const struct velo_exec_env *env,
                                    const struct velo_schema *left,
                                    const struct velo_schema *right,
                                    struct velo_join_keys *keys,
                                    const struct velo_lookup_provider *ext);

/**
 * Interval join: rows match when the keys are equal and
 * ltime + lower_us <= rtime <= ltime + upper_us (b.ts BETWEEN a.ts +
 * lower AND a.ts + upper; WITHIN INTERVAL i is -i..i). Rows are joined as
 * they arrive, against the other side's kept rows. A left row is kept
 * while watermark <= ltime + upper_us + grace_us, a right row while
 * watermark <= rtime - lower_us + grace_us (a partner exactly at the
 * watermark may still come); an outer (LEFT/RIGHT/FULL) row
 * that never matched is emitted NULL-padded when it expires (or at
 * finish). Rows arriving behind the watermark by more than the interval
 * allows are late (counted, dropped). Output rows are inserts.
 */
struct velo_op *velo_op_interval_join(const struct velo_exec_env *env,
                                      const struct velo_schema *left,
                                      const struct velo_schema *right,
                                      struct velo_join_keys *keys,
                                      struct velo_expr *ltime,
                                      struct velo_expr *rtime,
                                      int64_t lower_us, int64_t upper_us,
                                      int64_t grace_us);

/**
 * Window join: both sides are assigned to the same TUMBLING or HOPPING
 * windows (window->time evaluates on the left, rtime on the right; NULL:
 * each side's _timestamp); when a window closes (watermark >= end +
 * grace) its rows are joined and emitted. Output: hidden _window_start
 * and _window_end TIMESTAMP columns first, then left's and right's fields.
 * Outer types emit unmatched rows NULL-padded.
 */
struct velo_op *velo_op_window_join(const struct velo_exec_env *env,
                                    const struct velo_schema *left,
                                    const struct velo_schema *right,
                                    struct velo_join_keys *keys,
                                    const struct velo_window_spec *window,
                                    struct velo_expr *rtime);

/** Rows pass through; after each batch the watermark (highest value of
 *  TIMESTAMP column ts_col so far, minus ooo_us) goes to the children when
 *  it advanced. The source of watermarks for windows, OVER and joins. */
struct velo_op *velo_op_watermark_gen(const struct velo_exec_env *env,
                                      const struct velo_schema *in,
                                      int ts_col, int64_t ooo_us);
/** A Watermark operator's last watermark and highest event time
 *  (INT64_MIN before any). @return VELO_OK, or VELO_DECLINED for another
 *  kind of operator. */
int velo_op_watermark_gen_state(const struct velo_op *op, int64_t *wm,
                                int64_t *max_ts);

/** UNION ALL of ninputs ports whose schemas equal `schema` (the planner
 *  casts first). Batches pass through; op marks are kept. */
struct velo_op *velo_op_union(const struct velo_exec_env *env,
                              const struct velo_schema *schema,
                              size_t ninputs);

/** Terminal: hands every batch to fn (sinks, tests, the CLI). */
typedef int (*velo_op_sink_fn)(void *arg, struct velo_batch *b);
typedef int (*velo_op_sink_finish_fn)(void *arg);
struct velo_op *velo_op_callback(const struct velo_exec_env *env,
                                 const struct velo_schema *in,
                                 velo_op_sink_fn fn,
                                 velo_op_sink_finish_fn finish, void *arg,
                                 const char *name);

#endif /* VELO_EXEC_OPERATOR_H */
