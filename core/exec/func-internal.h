/*
 * Internals of the scalar functions, casts and aggregates: registration
 * tables, the per-node state extension for functions that compile a
 * constant argument once (LIKE, regular expressions, JSON paths, date
 * units), text and UTF-8 helpers, calendar arithmetic, a JSON text walker.
 */
#ifndef VELO_EXEC_FUNC_INTERNAL_H
#define VELO_EXEC_FUNC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "exec/exec-internal.h"
#include "exec/expr.h"

/* ---- Type shorthands for the registration tables ------------------------ */

#define VT_ANY {VELO_TYPE_NULL, 0, 0} /* matches every type, no cast */
#define VT_BOOL {VELO_TYPE_BOOLEAN, 0, 0}
#define VT_INT {VELO_TYPE_INTEGER, 0, 0}
#define VT_BIG {VELO_TYPE_BIGINT, 0, 0}
#define VT_DBL {VELO_TYPE_DOUBLE, 0, 0}
#define VT_DEC {VELO_TYPE_DECIMAL, 18, 0} /* any DECIMAL(p,s) */
#define VT_STR {VELO_TYPE_STRING, 0, 0}
#define VT_TS {VELO_TYPE_TIMESTAMP, 0, 0}
#define VT_DATE {VELO_TYPE_DATE, 0, 0}
#define VT_IVL {VELO_TYPE_INTERVAL, 0, 0}
#define VT_BYTES {VELO_TYPE_BYTES, 0, 0}
#define VT_JSON {VELO_TYPE_JSON, 0, 0}

/* ---- Kernel helpers ----------------------------------------------------- */

#define VELO_KERNEL(name)                                                     \
    void name(struct velo_eval_ctx *ctx, const struct velo_func *fn,          \
              const struct velo_column *const *args, size_t nargs,            \
              struct velo_column *out, const uint16_t *sel, size_t n)

/* Run the statement for every live row r; a dense loop when sel is NULL
 * so simple kernels vectorize. */
#define VELO_ROWS(sel, n, r, ...)                                            \
    do {                                                                     \
        if ((sel) == NULL) {                                                 \
            for (size_t r = 0; r < (n); r++) {                               \
                __VA_ARGS__                                                  \
            }                                                                \
        } else {                                                             \
            for (size_t r##_i = 0; r##_i < (n); r##_i++) {                   \
                size_t r = (sel)[r##_i];                                     \
                __VA_ARGS__                                                  \
            }                                                                \
        }                                                                    \
    } while (0)

/* ---- Registration ------------------------------------------------------- */

struct velo_funcs;
int velo_funcs_add_table(struct velo_funcs *r, const struct velo_func *t,
                         size_t n);
int velo_funcs_register_ops(struct velo_funcs *r);
int velo_funcs_register_string(struct velo_funcs *r);
int velo_funcs_register_math(struct velo_funcs *r);
int velo_funcs_register_time(struct velo_funcs *r);
int velo_funcs_register_json(struct velo_funcs *r);
int velo_funcs_add_agg(struct velo_funcs *r, const struct velo_agg *a);
int velo_aggs_register(struct velo_funcs *r);
/** The private aggregate behind COUNT(DISTINCT x). */
const struct velo_agg *velo_agg_count_distinct(void);

/* ret_type helpers shared by the tables. */
struct velo_datatype velo_ret_arg0(const struct velo_datatype *a, size_t n);
struct velo_datatype velo_ret_dec_addsub(const struct velo_datatype *a,
                                         size_t n);
struct velo_datatype velo_ret_dec_mul(const struct velo_datatype *a,
                                      size_t n);
struct velo_datatype velo_ret_dec_div(const struct velo_datatype *a,
                                      size_t n);
struct velo_datatype velo_ret_dec_mod(const struct velo_datatype *a,
                                      size_t n);

/* ---- Implicit widening -------------------------------------------------- */

/** Cost of passing a value of type `from` where `to` is declared: 0 exact,
 *  > 0 an implicit widening, -1 not allowed. */
int velo_widen_cost(struct velo_datatype from, struct velo_datatype to);
/** The concrete type a widened value becomes (DECIMAL gets a precision
 *  and scale that hold the source). */
struct velo_datatype velo_widen_target(struct velo_datatype from,
                                       struct velo_datatype to);
/** Smallest type both widen to; id 0 when there is none. */
struct velo_datatype velo_type_common(struct velo_datatype a,
                                      struct velo_datatype b);

/* ---- Functions with compiled state -------------------------------------
 * A velo_func whose `data` points at a velo_func_ext gets a state built
 * once per compiled call (the evaluator calls prepare with the bound call
 * node, so constant arguments are compiled once), and its kernel gets
 * that state. velo_func.kernel of such functions is velo_ext_kernel, which
 * builds a throwaway state per call for anyone calling it directly. */
#define VELO_FUNC_EXT_MAGIC 0x56455854u /* "VEXT" */

struct velo_func_ext {
    uint32_t magic;
    /** call may be NULL (no constants known). @return state or NULL on
     *  ENOMEM; a state that records a bad constant is not a failure. */
    void *(*prepare)(const struct velo_expr *call);
    void (*release)(void *state);
    void (*kernel)(struct velo_eval_ctx *ctx, void *state,
                   const struct velo_column *const *args, size_t nargs,
                   struct velo_column *out, const uint16_t *sel, size_t n);
};

void velo_ext_kernel(struct velo_eval_ctx *ctx, const struct velo_func *fn,
                     const struct velo_column *const *args, size_t nargs,
                     struct velo_column *out, const uint16_t *sel, size_t n);
static inline const struct velo_func_ext *velo_func_ext_of(
    const struct velo_func *fn)
{
    /* Only our own kernels mark ext functions; a plugin's data is never
     * read as an ext. */
    if (fn->kernel != velo_ext_kernel || fn->data == NULL) {
        return NULL;
    }
    const struct velo_func_ext *x = fn->data;
    return x->magic == VELO_FUNC_EXT_MAGIC ? x : NULL;
}
/** The literal of call->args[i] when it is a constant literal, else NULL. */
const struct velo_literal *velo_call_const_arg(const struct velo_expr *call,
                                               size_t i);

/* ---- Casts -------------------------------------------------------------- */

typedef void (*velo_cast_fn)(struct velo_eval_ctx *ctx,
                             const struct velo_column *src,
                             struct velo_column *out, const uint16_t *sel,
                             size_t n, int try_);
/** The cast kernel for from -> to, or NULL when the cast is not allowed.
 *  *passthrough is set when the representation does not change (the
 *  evaluator then hands the source column on without a copy). */
velo_cast_fn velo_cast_lookup(struct velo_datatype from,
                              struct velo_datatype to, int *passthrough);
int velo_cast_supported(struct velo_datatype from, struct velo_datatype to);

/* Text <-> values, shared by casts, CONCAT and COLLECT_LIST. */
/** Text of row r of c (not NULL) into the arena; views when possible.
 *  @return VELO_OK/VELO_ERR (ENOMEM). */
int velo_value_text(const struct velo_column *c, size_t r,
                    struct velo_arena *arena, struct velo_str *out);
/** Append the JSON form of row r of c to a growing buffer. */
struct velo_sbuf {
    char *p;
    size_t len, cap;
    struct velo_arena *arena; /* grows by reallocating in the arena */
};
int velo_sbuf_put(struct velo_sbuf *b, const char *s, size_t n);
int velo_value_json(const struct velo_column *c, size_t r,
                    struct velo_sbuf *b);
int velo_json_quote(struct velo_sbuf *b, const char *s, size_t n);
size_t velo_interval_format(int64_t us, char *buf, size_t len);
int velo_interval_parse(const char *s, size_t len, int64_t *us);
int velo_parse_i64_text(const char *s, size_t len, int64_t *out);
int velo_parse_f64_text(const char *s, size_t len, double *out);
int velo_parse_bool_text(const char *s, size_t len, int *out);

/* ---- Decimal internals -------------------------------------------------- */

int64_t velo_dec_pow10(int k); /* 0 <= k <= 18 */
__int128 velo_i128_pow10(int k);
int velo_i128_rescale(__int128 v, int from, int to, __int128 *out);
int velo_i128_to_i64(__int128 v, int64_t *out);
int velo_i128_div_round(__int128 num, __int128 den, __int128 *out);
int velo_dec_fits(int64_t v, int precision);
int velo_dec_cmp(int64_t a, int sa, int64_t b, int sb);

/* ---- UTF-8 -------------------------------------------------------------- */

/** Byte length of the sequence starting with lead byte c (1 for invalid
 *  bytes, so broken input still advances). */
static inline size_t velo_utf8_seqlen(unsigned char c)
{
    if (c < 0x80) {
        return 1;
    }
    if ((c & 0xe0) == 0xc0) {
        return 2;
    }
    if ((c & 0xf0) == 0xe0) {
        return 3;
    }
    if ((c & 0xf8) == 0xf0) {
        return 4;
    }
    return 1;
}
/** Characters in s (continuation bytes do not count). */
size_t velo_utf8_chars(const char *s, size_t len);
/** Byte offset of character index `chars` (clamped to len). */
size_t velo_utf8_offset(const char *s, size_t len, size_t chars);
/** Decode one code point at s[*i], advancing *i. */
uint32_t velo_utf8_next(const char *s, size_t len, size_t *i);

/* ---- Calendar (proleptic Gregorian, UTC) -------------------------------- */

#define VELO_US_PER_SEC INT64_C(1000000)
#define VELO_US_PER_DAY INT64_C(86400000000)

static inline int64_t velo_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) {
        q--;
    }
    return q;
}
int64_t velo_days_from_civil(int64_t y, unsigned m, unsigned d);
void velo_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);

/* ---- JSON text walker (no DOM, no allocation) --------------------------- */

/** End of the JSON value starting at p (after leading whitespace), or NULL
 *  when it is malformed. Nesting deeper than 512 levels is malformed. */
const char *velo_json_skip(const char *p, const char *end);
/** Whole text is one valid JSON value (with surrounding whitespace). */
int velo_json_valid(const char *p, size_t len);
struct velo_json_step {
    const char *key; /* NULL: array index */
    size_t keylen;
    long index;
};
/** Walk steps from the value in text; vp and vlen get the found value's
 *  raw text. @return 1 found, 0 absent, -1 malformed. */
int velo_json_walk(const char *text, size_t len,
                   const struct velo_json_step *steps, size_t nsteps,
                   const char **vp, size_t *vlen);
/** Parse '$.a.b[0]["k"]' into steps (keys point into path). @return
 *  count, or -1 when the path is malformed. */
int velo_json_path_parse(const char *path, size_t len,
                         struct velo_json_step *steps, size_t max);
/** A raw JSON value as SQL text: strings unescaped (copied to the arena
 *  only when they contain escapes), null -> NULL (return 0), others as
 *  their raw text. @return 1 value, 0 JSON null, -1 error. */
int velo_json_to_text(const char *v, size_t vlen, struct velo_arena *arena,
                      struct velo_str *out);

#endif /* VELO_EXEC_FUNC_INTERNAL_H */
