/*
 * Bound expressions and the function registry.
 *
 * The binder (core/sql) turns AST expressions into this typed tree: every
 * node has its result type, every column reference is an index into the
 * input schema, every function call names the resolved overload. The
 * executor compiles a tree once (velo_expr_compile) into an evaluator that
 * works a whole batch at a time: each node fills one output column for the
 * live rows, so there is no per-row dispatch on names or type strings.
 *
 * Evaluation errors (division by zero, a failed cast, decimal overflow) are
 * per row: the row is flagged in the context's `row_error` with a code and
 * the first message is kept; the operator drops flagged rows and reports
 * them (the dead-letter hook of the next issue). Evaluation never aborts
 * the batch.
 */
#ifndef VELO_EXEC_EXPR_H
#define VELO_EXEC_EXPR_H

#include <stddef.h>
#include <stdint.h>

#include <velo/log.h>

#include "exec/batch.h"
#include "exec/types.h"

enum velo_expr_kind {
    VELO_EXPR_COLUMN = 1,  /* u.column: index into the input batch */
    VELO_EXPR_LITERAL,     /* u.literal (NULL literal: literal.is_null) */
    VELO_EXPR_CALL,        /* u.call: scalar function/operator overload */
    VELO_EXPR_CAST,        /* args[0] to node type; u.cast.try_ for TRY */
    VELO_EXPR_AND,         /* n-ary, three-valued */
    VELO_EXPR_OR,          /* n-ary, three-valued */
    VELO_EXPR_NOT,
    VELO_EXPR_IS_NULL,     /* u.negated for IS NOT NULL */
    VELO_EXPR_CASE,        /* args: when1, then1, ..., [else]; u.has_else */
    VELO_EXPR_COALESCE,    /* lazily evaluated left to right */
    VELO_EXPR_IN_LIST,     /* args[0] IN (args[1..]); u.negated */
    VELO_EXPR_FIELD        /* JSON field: args[0] JSON/STRING, u.path */
};

/* System columns are hidden fields of a schema, bound as COLUMN refs:
 * sources carry "_timestamp" (TIMESTAMP), windowed aggregates add
 * "_window_start" and "_window_end". */
#define VELO_COL_TIMESTAMP "_timestamp"
#define VELO_COL_WINDOW_START "_window_start"
#define VELO_COL_WINDOW_END "_window_end"
/* Message sources (VELO_CONNECTOR_RECORD_SOURCE) also carry these. */
#define VELO_COL_KEY "_key"             /* STRING */
#define VELO_COL_PARTITION "_partition" /* INTEGER */
#define VELO_COL_OFFSET "_offset"       /* BIGINT */
#define VELO_COL_HEADERS "_headers"     /* JSON object */

struct velo_literal {
    int is_null;
    int64_t i64;   /* BOOLEAN INTEGER BIGINT DECIMAL TIMESTAMP DATE INTERVAL */
    double f64;    /* DOUBLE */
    char *str;     /* STRING BYTES JSON: owned, NUL-terminated */
    size_t len;
};

struct velo_eval_ctx;
struct velo_func;

struct velo_expr {
    int kind; /* enum velo_expr_kind */
    struct velo_datatype type; /* result type */
    size_t nargs;
    struct velo_expr **args; /* owned */
    union {
        int column;
        struct velo_literal literal;
        const struct velo_func *call; /* resolved overload (registry's) */
        struct {
            int try_; /* TRY_CAST: NULL on failure instead of an error */
        } cast;
        int negated;
        int has_else;
        struct {
            char **keys; /* owned; a.b['k'] -> {"b","k"} relative to arg */
            size_t n;
        } path;
    } u;
    /* Where it was written, for evaluation error messages. */
    int line, col;
    char *text; /* the source text of the expression, owned, may be NULL */
};

/* Constructors used by the binder. Ownership of args passes to the node.
 * NULL and errno on failure. */
struct velo_expr *velo_expr_new(int kind, struct velo_datatype type,
                                size_t nargs);
void velo_expr_free(struct velo_expr *e);
struct velo_expr *velo_expr_clone(const struct velo_expr *e);
/** Deterministic text form for explain and plan fingerprints. */
size_t velo_expr_format(const struct velo_expr *e,
                        const struct velo_schema *input, char *buf,
                        size_t len);

/* ---- Scalar function registry ------------------------------------------ */

/* Vectorized kernel: compute `out` for the live rows of `sel`/`n` (sel
 * NULL means rows 0..n-1). args are the evaluated argument columns.
 * NULL handling: with VELO_FUNC_NULL_PROPAGATES the executor sets out's
 * null for rows where any argument is NULL and the kernel may ignore those
 * rows; otherwise the kernel handles NULLs itself. */
typedef void (*velo_kernel_fn)(struct velo_eval_ctx *ctx,
                               const struct velo_func *fn,
                               const struct velo_column *const *args,
                               size_t nargs, struct velo_column *out,
                               const uint16_t *sel, size_t n);

enum velo_func_flags {
    VELO_FUNC_NULL_PROPAGATES = 1, /* NULL in -> NULL out */
    VELO_FUNC_VOLATILE = 2,        /* NOW(): not folded as a constant */
    VELO_FUNC_VARIADIC = 4         /* last arg type repeats */
};

#define VELO_FUNC_MAX_ARGS 8

struct velo_func {
    const char *name; /* upper case; operators: "+", "=", "||", "LIKE" */
    int nargs;        /* fixed count, or minimum with VARIADIC */
    struct velo_datatype args[VELO_FUNC_MAX_ARGS];
    /* Result type; for DECIMAL results the binder computes precision and
     * scale with ret_type (NULL: use `ret`). */
    struct velo_datatype ret;
    struct velo_datatype (*ret_type)(const struct velo_datatype *args,
                                     size_t nargs);
    unsigned flags;
    velo_kernel_fn kernel;
    const void *data; /* kernel-specific (e.g. a plugin's function) */
};

struct velo_funcs; /* the registry: built-ins plus plugins' functions */

struct velo_funcs *velo_funcs_create(void); /* with every built-in */
void velo_funcs_destroy(struct velo_funcs *r);
/** Add an overload (copied). @return VELO_OK, VELO_ERR on a clash. */
int velo_funcs_add(struct velo_funcs *r, const struct velo_func *f);
/** Add a plugin's row-at-a-time function through an adapter kernel. */
int velo_funcs_add_plugin(struct velo_funcs *r, const void *app_sql_function);
/**
 * Resolve `name` for these argument types: an exact match first, then the
 * overload needing the fewest implicit widenings (INTEGER->BIGINT->
 * DECIMAL->DOUBLE, DATE->TIMESTAMP, NULL->any). Writes the casts the
 * binder must insert into `cast_to` (one per arg; id 0 = none).
 * @return the overload, or NULL (no such name: *name_known = 0).
 */
const struct velo_func *velo_funcs_resolve(
    const struct velo_funcs *r, const char *name,
    const struct velo_datatype *args, size_t nargs,
    struct velo_datatype *cast_to, int *name_known);
/** Names for did-you-mean hints. @return count; names borrowed. */
size_t velo_funcs_names(const struct velo_funcs *r, const char **out,
                        size_t max);
/** Every overload of name, for "expected one of" hints. */
size_t velo_funcs_overloads(const struct velo_funcs *r, const char *name,
                            const struct velo_func **out, size_t max);

/* ---- Aggregate functions ------------------------------------------------ */

/*
 * An aggregate keeps a fixed-size state per group (state_size bytes,
 * 8-aligned, inside the hash table's slot) and may keep variable data in
 * the group table's arena (STRING_AGG, COLLECT_LIST, MIN of strings,
 * HyperLogLog registers). Updates are vectorized: gid[i] is the group slot
 * index of live row i; states + gid[i] * stride is its state.
 */
struct velo_state_writer;
struct velo_state_reader;

struct velo_agg_ctx {
    struct velo_arena *arena; /* the group table's, for variable data */
    struct velo_eval_ctx *eval;
};

struct velo_agg {
    const char *name; /* COUNT, SUM, ..., APPROX_COUNT_DISTINCT */
    int nargs;        /* 0 for COUNT(*); STRING_AGG has 2 (x, separator) */
    struct velo_datatype args[2];
    struct velo_datatype ret;
    struct velo_datatype (*ret_type)(const struct velo_datatype *args,
                                     size_t nargs);
    int distinct_ok; /* accepts DISTINCT (COUNT) */
    size_t state_size;
    void (*init)(void *state);
    /** rows: live row indexes (n of them); args evaluated over the batch;
     *  a NULL argument is skipped by SQL rules (COUNT(*) counts all). */
    void (*update)(struct velo_agg_ctx *ctx, char *states, size_t stride,
                   const uint32_t *gid, const struct velo_column *const *args,
                   const uint16_t *rows, size_t n);
    /** Write the result of one state into out row `row`. */
    void (*final)(struct velo_agg_ctx *ctx, const void *state,
                  struct velo_column *out, size_t row,
                  struct velo_arena *out_arena);
    /** Optional: release what the state holds outside the arena. */
    void (*destroy)(void *state);

    /* ---- Appended for SQL engine II: every built-in aggregate has all
     * three. ---- */
    /** Fold src into dst (both initialized states of this aggregate):
     *  SESSION windows merge when a row bridges two sessions. src stays
     *  valid (the caller destroys it). */
    void (*merge)(struct velo_agg_ctx *ctx, void *dst, const void *src);
    /** Checkpoints: append the state's contents. @return VELO_OK/ERR. */
    int (*save)(const void *state, struct velo_state_writer *w);
    /** Read what save wrote into an initialized state (variable data into
     *  ctx->arena). @return VELO_OK, or VELO_ERR on corrupt input. */
    int (*load)(void *state, struct velo_state_reader *r,
                struct velo_agg_ctx *ctx);
};

const struct velo_agg *velo_funcs_resolve_agg(
    const struct velo_funcs *r, const char *name,
    const struct velo_datatype *args, size_t nargs,
    struct velo_datatype *cast_to, int *name_known);
int velo_funcs_is_agg(const struct velo_funcs *r, const char *name);

/* ---- Compilation and evaluation ----------------------------------------- */

#define VELO_EVAL_ERR_MSG 256

enum velo_eval_error {
    VELO_EVAL_OK = 0,
    VELO_EVAL_DIV_ZERO = 1,
    VELO_EVAL_CAST = 2,
    VELO_EVAL_OVERFLOW = 3,
    VELO_EVAL_BAD_ARG = 4 /* e.g. a negative SQRT, a bad regex input */
};

struct velo_eval_ctx {
    uint8_t *row_error; /* per row (batch cap), enum velo_eval_error */
    size_t n_errors;    /* rows flagged in this batch */
    char first_msg[VELO_EVAL_ERR_MSG]; /* "division by zero in price/qty" */
    struct velo_arena *arena; /* output strings: the batch's arena */
    int64_t now_us;           /* NOW() for this batch: one value per batch */
    /* Added by the executor (zero-initialize; velo_eval_ctx_init does):
     * expr_text is set by the evaluator while a node runs so messages end
     * with "in <expression>"; row_msg (optional, batch cap entries) keeps
     * every flagged row's own message, allocated in msg_arena, for the
     * per-row reports (on_row_error, dead letters). */
    const char *expr_text;
    const char **row_msg;
    struct velo_arena *msg_arena;
};

/** Allocate row_error (and row_msg + msg_arena when row_messages) for
 *  `cap` rows. @return VELO_OK, or VELO_ERR (ENOMEM). */
int velo_eval_ctx_init(struct velo_eval_ctx *ctx, size_t cap,
                       int row_messages);
/** Forget the flags and messages of the last batch (cheap when none). */
void velo_eval_ctx_clear(struct velo_eval_ctx *ctx, size_t cap);
void velo_eval_ctx_free(struct velo_eval_ctx *ctx);
/** The message of a flagged row: its own, or first_msg. */
const char *velo_eval_row_msg(const struct velo_eval_ctx *ctx, size_t row);

/** Flag a row; keeps the first message. */
void velo_eval_error(struct velo_eval_ctx *ctx, size_t row, int code,
                     const char *fmt, ...) VELO_PRINTF(4, 5);

struct velo_evaluator; /* compiled; owns its scratch columns */

/** Compile `e` (borrowed; must outlive the evaluator) over `input`.
 *  @return NULL and errno. */
struct velo_evaluator *velo_expr_compile(const struct velo_expr *e,
                                         const struct velo_schema *input,
                                         size_t batch_cap);
void velo_evaluator_destroy(struct velo_evaluator *ev);

/**
 * Evaluate over the live rows of `in`. The result column is owned by the
 * evaluator and valid until its next call (a COLUMN reference returns the
 * input column itself, without copying). Rows that failed are flagged in
 * ctx->row_error.
 */
const struct velo_column *velo_evaluate(struct velo_evaluator *ev,
                                        struct velo_eval_ctx *ctx,
                                        const struct velo_batch *in);

/** Evaluate a boolean predicate and narrow in->sel to rows where it is
 *  TRUE (not NULL, not FALSE, not failed). */
void velo_filter(struct velo_evaluator *ev, struct velo_eval_ctx *ctx,
                 struct velo_batch *in);

/** Can a value of type `from` be CAST to `to`? (The binder reports a type
 *  error at bind time for the pairs that cannot.) Added by the executor. */
int velo_cast_supported(struct velo_datatype from, struct velo_datatype to);

/** Fold a constant expression (no column, not volatile).
 *  @return VELO_OK with *out set, VELO_DECLINED when not constant,
 *  VELO_ERR with msg on an evaluation error. */
int velo_expr_fold(const struct velo_expr *e, struct velo_literal *out,
                   char *msg, size_t msglen);

/* ---- Decimal arithmetic (scaled int64, 128-bit intermediates) ----------- */

/* All return VELO_OK or VELO_ERR on overflow (never wrap). Rounding is
 * HALF_EVEN. */
int velo_dec_rescale(int64_t v, int from_scale, int to_scale, int64_t *out);
int velo_dec_add(int64_t a, int sa, int64_t b, int sb, int rs, int64_t *out);
int velo_dec_mul(int64_t a, int sa, int64_t b, int sb, int rs, int64_t *out);
int velo_dec_div(int64_t a, int sa, int64_t b, int sb, int rs, int64_t *out);
int velo_dec_parse(const char *s, size_t len, int precision, int scale,
                   int64_t *out);
/** "-123.45"; @return length written. */
size_t velo_dec_format(int64_t v, int scale, char *buf, size_t len);
double velo_dec_to_double(int64_t v, int scale);
int velo_dec_from_double(double d, int precision, int scale, int64_t *out);

#endif /* VELO_EXEC_EXPR_H */
