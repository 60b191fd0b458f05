/*
 * The expression compiler and the vectorized evaluator.
 *
 * velo_expr_compile turns a bound tree into a tree of nodes, each with a
 * preallocated output column of batch_cap rows and a direct function
 * pointer: evaluating a batch is one call per node, and each node loops
 * over the live rows. There is no lookup by name or type at run time.
 *
 * Laziness: AND/OR evaluate later operands only on rows not yet decided,
 * CASE evaluates a THEN branch only on the rows whose WHEN matched, and
 * COALESCE evaluates an argument only on rows still NULL. So an error in a
 * branch not taken (CASE WHEN x = 0 THEN 0 ELSE 1 / x END) never fires.
 * Functions declared NULL_PROPAGATES never see NULL rows: the node builds
 * a selection of the rows where every argument is non-NULL.
 *
 * A row whose evaluation fails is flagged in the context and its value is
 * NULL from then on, so later nodes skip it like any NULL; the operator
 * drops and reports it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <velo/log.h>

#include "exec/exec-internal.h"
#include "exec/expr.h"
#include "exec/func-internal.h"

struct enode;
typedef const struct velo_column *(*enode_eval_fn)(
    struct enode *nd, struct velo_eval_ctx *ctx, const struct velo_batch *in,
    const uint16_t *sel, size_t n);

/* Constant IN list: values plus, for long lists, an open-addressing set. */
struct inset {
    int phys;
    size_t n;
    union velo_slot *vals;
    int has_null;
    uint32_t *tab; /* index + 1; 0 empty */
    size_t mask;
};

#define INSET_HASH_MIN 8 /* below this a linear scan is faster */
#define FIELD_MAX_STEPS 64

struct enode {
    enode_eval_fn eval;
    const struct velo_expr *expr; /* NULL for casts the compiler added */
    struct velo_datatype type;
    size_t nkids;
    struct enode **kids;
    const struct velo_column **argv;
    struct velo_column out;
    int owns_out; /* out has buffers of its own */
    uint16_t *sel_a, *sel_b, *sel_c;
    size_t cap;
    const char *text;
    /* kind-specific */
    int col;
    const struct velo_func *fn;
    const struct velo_func_ext *ext;
    void *state;
    velo_cast_fn cast;
    int try_;
    int negated;
    int has_else;
    struct inset *set;
    struct velo_json_step *steps;
    size_t nsteps;
    struct velo_column tmp; /* FIELD: text before conversion */
    velo_cast_fn tmp_cast;
};

struct velo_evaluator {
    struct enode *root;
    size_t cap;
    uint16_t *selbuf; /* velo_filter's output selection */
};

/* Evaluate a node with its source text as the context of any error it
 * raises; nodes without text (casts the compiler added, inner nodes a
 * binder did not annotate) report under their nearest annotated parent. */
static inline const struct velo_column *run(struct enode *nd,
                                            struct velo_eval_ctx *ctx,
                                            const struct velo_batch *in,
                                            const uint16_t *sel, size_t n)
{
    const char *saved = ctx->expr_text;
    if (nd->text != NULL) {
        ctx->expr_text = nd->text;
    }
    const struct velo_column *c = nd->eval(nd, ctx, in, sel, n);
    ctx->expr_text = saved;
    return c;
}

/* ---- Context and errors ------------------------------------------------- */

int velo_eval_ctx_init(struct velo_eval_ctx *ctx, size_t cap,
                       int row_messages)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->row_error = calloc(cap > 0 ? cap : 1, 1);
    if (ctx->row_error == NULL) {
        return VELO_ERR;
    }
    if (row_messages) {
        ctx->row_msg = calloc(cap > 0 ? cap : 1, sizeof(*ctx->row_msg));
        ctx->msg_arena = velo_arena_create(4096);
        if (ctx->row_msg == NULL || ctx->msg_arena == NULL) {
            velo_eval_ctx_free(ctx);
            errno = ENOMEM;
            return VELO_ERR;
        }
    }
    return VELO_OK;
}

void velo_eval_ctx_clear(struct velo_eval_ctx *ctx, size_t cap)
{
    if (ctx->n_errors > 0) {
        memset(ctx->row_error, 0, cap);
        if (ctx->row_msg != NULL) {
            memset(ctx->row_msg, 0, cap * sizeof(*ctx->row_msg));
            velo_arena_reset(ctx->msg_arena);
        }
    }
    ctx->n_errors = 0;
    ctx->first_msg[0] = '\0';
    ctx->expr_text = NULL;
}

void velo_eval_ctx_free(struct velo_eval_ctx *ctx)
{
    free(ctx->row_error);
    free(ctx->row_msg);
    velo_arena_destroy(ctx->msg_arena);
    ctx->row_error = NULL;
    ctx->row_msg = NULL;
    ctx->msg_arena = NULL;
}

const char *velo_eval_row_msg(const struct velo_eval_ctx *ctx, size_t row)
{
    if (ctx->row_msg != NULL && ctx->row_msg[row] != NULL) {
        return ctx->row_msg[row];
    }
    return ctx->first_msg;
}

static void eval_verror(struct velo_eval_ctx *ctx, size_t row, int code,
                        const char *fmt, va_list ap)
{
    if (ctx->row_error == NULL || ctx->row_error[row] != 0) {
        return; /* the first failure of a row is the one that matters */
    }
    ctx->row_error[row] = (uint8_t)(code != 0 ? code : VELO_EVAL_BAD_ARG);
    ctx->n_errors++;
    char msg[VELO_EVAL_ERR_MSG];
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (n < 0) {
        msg[0] = '\0';
        n = 0;
    }
    if (ctx->expr_text != NULL && (size_t)n < sizeof(msg) - 5) {
        snprintf(msg + n, sizeof(msg) - (size_t)n, " in %s", ctx->expr_text);
    }
    if (ctx->first_msg[0] == '\0') {
        snprintf(ctx->first_msg, sizeof(ctx->first_msg), "%s", msg);
    }
    if (ctx->row_msg != NULL && ctx->msg_arena != NULL) {
        ctx->row_msg[row] =
            velo_arena_strdup(ctx->msg_arena, msg, strlen(msg));
    }
}

void velo_eval_error(struct velo_eval_ctx *ctx, size_t row, int code,
                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    eval_verror(ctx, row, code, fmt, ap);
    va_end(ap);
}

void velo_eval_fail(struct velo_eval_ctx *ctx, struct velo_column *out,
                    size_t row, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    eval_verror(ctx, row, code, fmt, ap);
    va_end(ap);
    if (out != NULL) {
        out->nulls[row] = 1;
        out->has_nulls = 1;
    }
}

/* ---- Columns ------------------------------------------------------------ */

static int col_alloc(struct velo_column *c, struct velo_datatype type,
                     size_t cap)
{
    c->type = type;
    c->has_nulls = 0;
    c->nulls = calloc(cap, 1);
    c->v.u8 = calloc(cap, velo_phys_width(type.id));
    if (c->nulls == NULL || c->v.u8 == NULL) {
        free(c->nulls);
        free(c->v.u8);
        c->nulls = NULL;
        c->v.u8 = NULL;
        errno = ENOMEM;
        return VELO_ERR;
    }
    return VELO_OK;
}

/* Back to "no NULLs": every byte 0, as has_nulls == 0 promises. */
static inline void col_clear_nulls(struct velo_column *c, size_t cap)
{
    if (c->has_nulls) {
        memset(c->nulls, 0, cap);
        c->has_nulls = 0;
    }
}

static inline void copy_value(struct velo_column *dst,
                              const struct velo_column *src, size_t r,
                              int phys)
{
    switch (phys) {
    case VELO_PHYS_U8:
        dst->v.u8[r] = src->v.u8[r];
        break;
    case VELO_PHYS_I64:
        dst->v.i64[r] = src->v.i64[r];
        break;
    case VELO_PHYS_F64:
        dst->v.f64[r] = src->v.f64[r];
        break;
    case VELO_PHYS_STR:
        dst->v.str[r] = src->v.str[r];
        break;
    default:
        break;
    }
}

/* dst[r] = src[r] (value and NULL) for the listed rows. */
static void copy_rows(struct velo_column *dst, const struct velo_column *src,
                      const uint16_t *sel, size_t n)
{
    int phys = velo_phys(dst->type.id);
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        if (src->has_nulls && src->nulls[r]) {
            dst->nulls[r] = 1;
            dst->has_nulls = 1;
        } else {
            dst->nulls[r] = 0;
            copy_value(dst, src, r, phys);
        }
    }
}

/* ---- Node evaluation ---------------------------------------------------- */

static const struct velo_column *eval_column(struct enode *nd,
                                             struct velo_eval_ctx *ctx,
                                             const struct velo_batch *in,
                                             const uint16_t *sel, size_t n)
{
    (void)ctx;
    (void)sel;
    (void)n;
    return &in->cols[nd->col];
}

static const struct velo_column *eval_literal(struct enode *nd,
                                              struct velo_eval_ctx *ctx,
                                              const struct velo_batch *in,
                                              const uint16_t *sel, size_t n)
{
    (void)ctx;
    (void)in;
    (void)sel;
    (void)n;
    return &nd->out; /* filled for every row at compile time */
}

/* Rows of sel where no argument is NULL go to nd->sel_a; the others get
 * a NULL output. @return count of non-NULL rows, or n (and *ksel = sel)
 * when no argument has NULLs. */
static size_t strip_null_rows(struct enode *nd, const uint16_t *sel, size_t n,
                              const uint16_t **ksel)
{
    int any = 0;
    for (size_t k = 0; k < nd->nkids; k++) {
        any |= nd->argv[k]->has_nulls;
    }
    *ksel = sel;
    if (!any) {
        return n;
    }
    struct velo_column *out = &nd->out;
    uint16_t *s2 = nd->sel_a;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        uint8_t isnull = 0;
        for (size_t k = 0; k < nd->nkids; k++) {
            const struct velo_column *a = nd->argv[k];
            if (a->has_nulls) {
                isnull |= a->nulls[r];
            }
        }
        if (isnull) {
            out->nulls[r] = 1;
            out->has_nulls = 1;
        } else {
            s2[m++] = (uint16_t)r;
        }
    }
    *ksel = s2;
    return m;
}

static const struct velo_column *eval_call(struct enode *nd,
                                           struct velo_eval_ctx *ctx,
                                           const struct velo_batch *in,
                                           const uint16_t *sel, size_t n)
{
    for (size_t k = 0; k < nd->nkids; k++) {
        nd->argv[k] = run(nd->kids[k], ctx, in, sel, n);
    }
    struct velo_column *out = &nd->out;
    col_clear_nulls(out, nd->cap);
    const uint16_t *ksel = sel;
    size_t kn = n;
    if (nd->fn->flags & VELO_FUNC_NULL_PROPAGATES) {
        kn = strip_null_rows(nd, sel, n, &ksel);
    }
    if (kn == 0) {
        return out;
    }
    if (nd->ext != NULL) {
        nd->ext->kernel(ctx, nd->state, nd->argv, nd->nkids, out, ksel, kn);
    } else {
        nd->fn->kernel(ctx, nd->fn, nd->argv, nd->nkids, out, ksel, kn);
    }
    return out;
}

static const struct velo_column *eval_cast(struct enode *nd,
                                           struct velo_eval_ctx *ctx,
                                           const struct velo_batch *in,
                                           const uint16_t *sel, size_t n)
{
    const struct velo_column *src =
        run(nd->kids[0], ctx, in, sel, n);
    if (!nd->owns_out) {
        /* Same representation (INTEGER -> BIGINT, JSON -> STRING, ...):
         * hand the source buffers on under the new type. */
        nd->out = *src;
        nd->out.type = nd->type;
        return &nd->out;
    }
    struct velo_column *out = &nd->out;
    col_clear_nulls(out, nd->cap);
    nd->argv[0] = src;
    const uint16_t *ksel;
    size_t kn = strip_null_rows(nd, sel, n, &ksel);
    if (kn > 0) {
        nd->cast(ctx, src, out, ksel, kn, nd->try_);
    }
    return out;
}

static const struct velo_column *eval_andor(struct enode *nd,
                                            struct velo_eval_ctx *ctx,
                                            const struct velo_batch *in,
                                            const uint16_t *sel, size_t n)
{
    int is_and = nd->expr->kind == VELO_EXPR_AND;
    uint8_t undecided = is_and ? 1 : 0; /* AND starts TRUE, OR FALSE */
    struct velo_column *out = &nd->out;
    col_clear_nulls(out, nd->cap);
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        out->v.u8[r] = undecided;
    }
    const uint16_t *act = sel;
    size_t m = n;
    uint16_t *bufs[2] = {nd->sel_a, nd->sel_b};
    int flip = 0;
    for (size_t k = 0; k < nd->nkids && m > 0; k++) {
        const struct velo_column *c =
            run(nd->kids[k], ctx, in, act, m);
        uint16_t *next = bufs[flip];
        size_t m2 = 0;
        for (size_t i = 0; i < m; i++) {
            size_t r = act != NULL ? act[i] : i;
            if (c->has_nulls && c->nulls[r]) {
                out->nulls[r] = 1;
                out->has_nulls = 1;
                next[m2++] = (uint16_t)r;
            } else if ((c->v.u8[r] != 0) != undecided) {
                /* FALSE decides AND, TRUE decides OR, NULL or not. */
                out->v.u8[r] = !undecided;
                out->nulls[r] = 0;
            } else {
                next[m2++] = (uint16_t)r;
            }
        }
        act = next;
        m = m2;
        flip ^= 1;
    }
    return out;
}

static const struct velo_column *eval_not(struct enode *nd,
                                          struct velo_eval_ctx *ctx,
                                          const struct velo_batch *in,
                                          const uint16_t *sel, size_t n)
{
    const struct velo_column *c =
        run(nd->kids[0], ctx, in, sel, n);
    struct velo_column *out = &nd->out;
    col_clear_nulls(out, nd->cap);
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        out->v.u8[r] = !c->v.u8[r];
        if (c->has_nulls && c->nulls[r]) {
            out->nulls[r] = 1;
            out->has_nulls = 1;
        }
    }
    return out;
}

static const struct velo_column *eval_is_null(struct enode *nd,
                                              struct velo_eval_ctx *ctx,
                                              const struct velo_batch *in,
                                              const uint16_t *sel, size_t n)
{
    const struct velo_column *c =
        run(nd->kids[0], ctx, in, sel, n);
    struct velo_column *out = &nd->out;
    col_clear_nulls(out, nd->cap);
    uint8_t neg = (uint8_t)(nd->negated ? 1 : 0);
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        uint8_t isnull = c->has_nulls ? c->nulls[r] : 0;
        out->v.u8[r] = isnull ^ neg;
    }
    return out;
}

static const struct velo_column *eval_case(struct enode *nd,
                                           struct velo_eval_ctx *ctx,
                                           const struct velo_batch *in,
                                           const uint16_t *sel, size_t n)
{
    struct velo_column *out = &nd->out;
    col_clear_nulls(out, nd->cap);
    size_t npairs = (nd->nkids - (nd->has_else ? 1 : 0)) / 2;
    const uint16_t *rem = sel;
    size_t m = n;
    uint16_t *bufs[2] = {nd->sel_b, nd->sel_c};
    int flip = 0;
    for (size_t p = 0; p < npairs && m > 0; p++) {
        struct enode *w = nd->kids[2 * p], *t = nd->kids[2 * p + 1];
        const struct velo_column *wc = run(w, ctx, in, rem, m);
        uint16_t *next = bufs[flip];
        size_t k = 0, m2 = 0;
        for (size_t i = 0; i < m; i++) {
            size_t r = rem != NULL ? rem[i] : i;
            if (!(wc->has_nulls && wc->nulls[r]) && wc->v.u8[r]) {
                nd->sel_a[k++] = (uint16_t)r;
            } else {
                next[m2++] = (uint16_t)r;
            }
        }
        if (k > 0) {
            const struct velo_column *tc = run(t, ctx, in, nd->sel_a, k);
            copy_rows(out, tc, nd->sel_a, k);
        }
        rem = next;
        m = m2;
        flip ^= 1;
    }
    if (m > 0) {
        if (nd->has_else) {
            struct enode *e = nd->kids[nd->nkids - 1];
            const struct velo_column *ec = run(e, ctx, in, rem, m);
            copy_rows(out, ec, rem, m);
        } else {
            for (size_t i = 0; i < m; i++) {
                size_t r = rem != NULL ? rem[i] : i;
                out->nulls[r] = 1;
            }
            out->has_nulls = 1;
        }
    }
    return out;
}

static const struct velo_column *eval_coalesce(struct enode *nd,
                                               struct velo_eval_ctx *ctx,
                                               const struct velo_batch *in,
                                               const uint16_t *sel, size_t n)
{
    struct velo_column *out = &nd->out;
    col_clear_nulls(out, nd->cap);
    int phys = velo_phys(out->type.id);
    const uint16_t *rem = sel;
    size_t m = n;
    uint16_t *bufs[2] = {nd->sel_a, nd->sel_b};
    int flip = 0;
    for (size_t k = 0; k < nd->nkids && m > 0; k++) {
        const struct velo_column *c =
            run(nd->kids[k], ctx, in, rem, m);
        uint16_t *next = bufs[flip];
        size_t m2 = 0;
        for (size_t i = 0; i < m; i++) {
            size_t r = rem != NULL ? rem[i] : i;
            if (c->has_nulls && c->nulls[r]) {
                next[m2++] = (uint16_t)r;
            } else {
                copy_value(out, c, r, phys);
            }
        }
        rem = next;
        m = m2;
        flip ^= 1;
    }
    for (size_t i = 0; i < m; i++) {
        size_t r = rem != NULL ? rem[i] : i;
        out->nulls[r] = 1;
        out->has_nulls = 1;
    }
    return out;
}

static int inset_find(const struct inset *s, union velo_slot v)
{
    if (s->tab == NULL) {
        for (size_t i = 0; i < s->n; i++) {
            if (velo_slot_key_eq(s->phys, s->vals[i], v)) {
                return 1;
            }
        }
        return 0;
    }
    size_t pos = velo_hash_slot(s->phys, v, 0) & s->mask;
    for (;;) {
        uint32_t e = s->tab[pos];
        if (e == 0) {
            return 0;
        }
        if (velo_slot_key_eq(s->phys, s->vals[e - 1], v)) {
            return 1;
        }
        pos = (pos + 1) & s->mask;
    }
}

static const struct velo_column *eval_in(struct enode *nd,
                                         struct velo_eval_ctx *ctx,
                                         const struct velo_batch *in,
                                         const uint16_t *sel, size_t n)
{
    struct velo_column *out = &nd->out;
    col_clear_nulls(out, nd->cap);
    const struct velo_column *x =
        run(nd->kids[0], ctx, in, sel, n);
    int phys = velo_phys(x->type.id);
    uint8_t hit = nd->negated ? 0 : 1;
    if (nd->set != NULL) {
        for (size_t i = 0; i < n; i++) {
            size_t r = sel != NULL ? sel[i] : i;
            if (x->has_nulls && x->nulls[r]) {
                velo_col_set_null(out, r);
            } else if (inset_find(nd->set, velo_col_get(x, r))) {
                out->v.u8[r] = hit;
            } else if (nd->set->has_null) {
                velo_col_set_null(out, r);
            } else {
                out->v.u8[r] = !hit;
            }
        }
        return out;
    }
    for (size_t k = 1; k < nd->nkids; k++) {
        nd->argv[k] = run(nd->kids[k], ctx, in, sel, n);
    }
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        if (x->has_nulls && x->nulls[r]) {
            velo_col_set_null(out, r);
            continue;
        }
        union velo_slot v = velo_col_get(x, r);
        int found = 0, sawnull = 0;
        for (size_t k = 1; k < nd->nkids && !found; k++) {
            const struct velo_column *c = nd->argv[k];
            if (c->has_nulls && c->nulls[r]) {
                sawnull = 1;
            } else if (velo_slot_key_eq(phys, v, velo_col_get(c, r))) {
                found = 1;
            }
        }
        if (found) {
            out->v.u8[r] = hit;
        } else if (sawnull) {
            velo_col_set_null(out, r);
        } else {
            out->v.u8[r] = !hit;
        }
    }
    return out;
}

static const struct velo_column *eval_field(struct enode *nd,
                                            struct velo_eval_ctx *ctx,
                                            const struct velo_batch *in,
                                            const uint16_t *sel, size_t n)
{
    const struct velo_column *src =
        run(nd->kids[0], ctx, in, sel, n);
    struct velo_column *out = &nd->out;
    int to_text = nd->type.id == VELO_TYPE_STRING;
    int raw = nd->type.id == VELO_TYPE_JSON;
    struct velo_column *dst = (to_text || raw) ? out : &nd->tmp;
    col_clear_nulls(out, nd->cap);
    col_clear_nulls(&nd->tmp, nd->cap);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        if (src->has_nulls && src->nulls[r]) {
            velo_col_set_null(out, r);
            continue;
        }
        struct velo_str s = src->v.str[r];
        const char *vp;
        size_t vlen;
        int rc = velo_json_walk(s.ptr, s.len, nd->steps, nd->nsteps, &vp,
                                &vlen);
        if (rc < 0) {
            velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                           "value is not valid JSON");
            continue;
        }
        if (rc == 0 || (vlen == 4 && memcmp(vp, "null", 4) == 0)) {
            velo_col_set_null(out, r);
            continue;
        }
        if (raw) {
            dst->v.str[r].ptr = vp;
            dst->v.str[r].len = vlen;
            continue;
        }
        struct velo_str t;
        int tr = velo_json_to_text(vp, vlen, ctx->arena, &t);
        if (tr < 0) {
            velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG,
                           "value is not valid JSON");
            continue;
        }
        dst->v.str[r] = t;
        if (!to_text) {
            nd->sel_a[m++] = (uint16_t)r;
        }
    }
    if (!to_text && !raw && m > 0) {
        /* A typed field (BIGINT, DOUBLE, ...): convert the text the way
         * CAST(text AS type) does, with the same errors. */
        nd->tmp_cast(ctx, &nd->tmp, out, nd->sel_a, m, 0);
    }
    return out;
}

/* ---- Compilation -------------------------------------------------------- */

static void node_free(struct enode *nd)
{
    if (nd == NULL) {
        return;
    }
    for (size_t k = 0; k < nd->nkids; k++) {
        node_free(nd->kids[k]);
    }
    free(nd->kids);
    free(nd->argv);
    if (nd->owns_out) {
        free(nd->out.nulls);
        free(nd->out.v.u8);
    }
    free(nd->tmp.nulls);
    free(nd->tmp.v.u8);
    free(nd->sel_a);
    free(nd->sel_b);
    free(nd->sel_c);
    if (nd->ext != NULL && nd->ext->release != NULL && nd->state != NULL) {
        nd->ext->release(nd->state);
    }
    if (nd->set != NULL) {
        if (nd->set->phys == VELO_PHYS_STR) {
            for (size_t i = 0; i < nd->set->n; i++) {
                free((void *)nd->set->vals[i].s.ptr);
            }
        }
        free(nd->set->vals);
        free(nd->set->tab);
        free(nd->set);
    }
    free(nd->steps);
    free(nd);
}

static struct enode *node_new(const struct velo_expr *e,
                              struct velo_datatype type, size_t nkids,
                              size_t cap, int own_out, int nsel)
{
    struct enode *nd = calloc(1, sizeof(*nd));
    if (nd == NULL) {
        return NULL;
    }
    nd->expr = e;
    nd->type = type;
    nd->cap = cap;
    nd->text = e != NULL ? e->text : NULL;
    nd->nkids = nkids;
    if (nkids > 0) {
        nd->kids = calloc(nkids, sizeof(*nd->kids));
        nd->argv = calloc(nkids, sizeof(*nd->argv));
        if (nd->kids == NULL || nd->argv == NULL) {
            node_free(nd);
            return NULL;
        }
    }
    if (own_out) {
        if (col_alloc(&nd->out, type, cap) != VELO_OK) {
            node_free(nd);
            return NULL;
        }
        nd->owns_out = 1;
    } else {
        nd->out.type = type;
    }
    uint16_t **bufs[3] = {&nd->sel_a, &nd->sel_b, &nd->sel_c};
    for (int i = 0; i < nsel; i++) {
        *bufs[i] = calloc(cap, sizeof(uint16_t));
        if (*bufs[i] == NULL) {
            node_free(nd);
            return NULL;
        }
    }
    return nd;
}

static int type_same(struct velo_datatype a, struct velo_datatype b)
{
    return velo_type_equal(a, b);
}

/* A cast node the compiler adds where the tree's types disagree (the
 * binder normally inserts them itself). */
static struct enode *make_cast(struct enode *kid, struct velo_datatype to,
                               size_t cap, const char *text, int try_)
{
    int pass = 0;
    velo_cast_fn fn = velo_cast_lookup(kid->type, to, &pass);
    if (fn == NULL && !pass) {
        errno = ENOTSUP;
        return NULL;
    }
    struct enode *nd = node_new(NULL, to, 1, cap, !pass, pass ? 0 : 1);
    if (nd == NULL) {
        return NULL;
    }
    nd->eval = eval_cast;
    nd->cast = fn;
    nd->try_ = try_;
    nd->kids[0] = kid;
    nd->text = text;
    return nd;
}

/* kid as type `to`; declared DECIMAL (any precision) accepts any DECIMAL
 * when `generic_decimal`; id 0 (ANY) accepts everything. On failure the
 * kid is freed. */
static struct enode *coerce(struct enode *kid, struct velo_datatype to,
                            size_t cap, const char *text, int generic_decimal)
{
    if (kid == NULL) {
        return NULL;
    }
    if (to.id == VELO_TYPE_NULL || type_same(kid->type, to)) {
        return kid;
    }
    if (generic_decimal && to.id == VELO_TYPE_DECIMAL) {
        if (kid->type.id == VELO_TYPE_DECIMAL) {
            return kid;
        }
        to = velo_widen_target(kid->type, to);
    }
    struct enode *c = make_cast(kid, to, cap, text, 0);
    if (c == NULL) {
        int saved = errno;
        node_free(kid);
        errno = saved;
    }
    return c;
}

static void fill_literal(struct velo_column *c, const struct velo_literal *l,
                         size_t cap)
{
    if (l->is_null || c->type.id == VELO_TYPE_NULL) {
        memset(c->nulls, 1, cap);
        c->has_nulls = 1;
        return;
    }
    for (size_t r = 0; r < cap; r++) {
        switch (velo_phys(c->type.id)) {
        case VELO_PHYS_U8:
            c->v.u8[r] = l->i64 != 0;
            break;
        case VELO_PHYS_I64:
            c->v.i64[r] = l->i64;
            break;
        case VELO_PHYS_F64:
            c->v.f64[r] = l->f64;
            break;
        case VELO_PHYS_STR:
            c->v.str[r].ptr = l->str != NULL ? l->str : "";
            c->v.str[r].len = l->str != NULL ? l->len : 0;
            break;
        default:
            break;
        }
    }
}

static struct enode *compile_node(const struct velo_expr *e,
                                  const struct velo_schema *input, size_t cap);

static int is_constant(const struct velo_expr *e)
{
    if (e->kind == VELO_EXPR_COLUMN) {
        return 0;
    }
    if (e->kind == VELO_EXPR_CALL &&
        (e->u.call == NULL || (e->u.call->flags & VELO_FUNC_VOLATILE))) {
        return 0;
    }
    for (size_t i = 0; i < e->nargs; i++) {
        if (!is_constant(e->args[i])) {
            return 0;
        }
    }
    return 1;
}

/* Evaluate constant nodes of an IN list once into a set. @return VELO_OK,
 * VELO_DECLINED (an item failed: evaluate per row instead), VELO_ERR. */
static int build_inset(struct enode *nd)
{
    struct velo_schema empty = {0, NULL};
    struct velo_batch *one = velo_batch_create(&empty, 1);
    struct velo_eval_ctx ctx;
    if (one == NULL || velo_eval_ctx_init(&ctx, 1, 0) != VELO_OK) {
        velo_batch_destroy(one);
        return VELO_ERR;
    }
    one->nrows = 1;
    ctx.arena = one->arena;
    struct inset *s = calloc(1, sizeof(*s));
    size_t nitems = nd->nkids - 1;
    int rc = VELO_OK;
    if (s == NULL || (s->vals = calloc(nitems, sizeof(*s->vals))) == NULL) {
        rc = VELO_ERR;
        goto done;
    }
    s->phys = velo_phys(nd->kids[0]->type.id);
    for (size_t k = 1; k < nd->nkids; k++) {
        const struct velo_column *c =
            run(nd->kids[k], &ctx, one, NULL, 1);
        if (ctx.n_errors > 0) {
            rc = VELO_DECLINED;
            goto done;
        }
        if (c->has_nulls && c->nulls[0]) {
            s->has_null = 1;
            continue;
        }
        union velo_slot v = velo_col_get(c, 0);
        if (s->phys == VELO_PHYS_STR) {
            /* Literal strings live in the expression tree, which outlives
             * the evaluator; anything computed is copied. */
            char *copy = malloc(v.s.len + 1);
            if (copy == NULL) {
                rc = VELO_ERR;
                goto done;
            }
            memcpy(copy, v.s.ptr, v.s.len);
            copy[v.s.len] = '\0';
            v.s.ptr = copy;
        }
        s->vals[s->n++] = v;
    }
    if (s->n >= INSET_HASH_MIN) {
        size_t size = 16;
        while (size < s->n * 2) {
            size <<= 1;
        }
        s->tab = calloc(size, sizeof(*s->tab));
        if (s->tab == NULL) {
            rc = VELO_ERR;
            goto done;
        }
        s->mask = size - 1;
        for (size_t i = 0; i < s->n; i++) {
            size_t pos = velo_hash_slot(s->phys, s->vals[i], 0) & s->mask;
            while (s->tab[pos] != 0) {
                pos = (pos + 1) & s->mask;
            }
            s->tab[pos] = (uint32_t)(i + 1);
        }
    }
done:
    if (rc == VELO_OK) {
        nd->set = s; /* owns its string copies from here on */
    } else if (s != NULL) {
        if (s->phys == VELO_PHYS_STR) {
            for (size_t i = 0; i < s->n; i++) {
                free((void *)s->vals[i].s.ptr);
            }
        }
        free(s->vals);
        free(s->tab);
        free(s);
    }
    velo_eval_ctx_free(&ctx);
    velo_batch_destroy(one);
    return rc;
}

static int parse_index(const char *k, long *out)
{
    if (*k == '\0') {
        return 0;
    }
    long v = 0;
    for (const char *p = k; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || v > 100000000) {
            return 0;
        }
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return 1;
}

static struct enode *compile_kids(struct enode *nd, const struct velo_expr *e,
                                  const struct velo_schema *input, size_t cap)
{
    for (size_t k = 0; k < e->nargs; k++) {
        nd->kids[k] = compile_node(e->args[k], input, cap);
        if (nd->kids[k] == NULL) {
            int saved = errno;
            node_free(nd);
            errno = saved;
            return NULL;
        }
    }
    return nd;
}

/* Replace kid k by its coercion to `to`; frees nd on failure. */
static int coerce_kid(struct enode *nd, size_t k, struct velo_datatype to,
                      int generic_decimal)
{
    struct enode *c = coerce(nd->kids[k], to, nd->cap, nd->text,
                             generic_decimal);
    if (c == NULL) {
        int saved = errno;
        nd->kids[k] = NULL;
        node_free(nd);
        errno = saved;
        return VELO_ERR;
    }
    nd->kids[k] = c;
    return VELO_OK;
}

static struct enode *compile_node(const struct velo_expr *e,
                                  const struct velo_schema *input, size_t cap)
{
    if (e == NULL) {
        errno = EINVAL;
        return NULL;
    }
    struct enode *nd = NULL;
    const struct velo_datatype booltype = velo_type_of(VELO_TYPE_BOOLEAN);
    switch (e->kind) {
    case VELO_EXPR_COLUMN: {
        if (input == NULL || e->u.column < 0 ||
            (size_t)e->u.column >= input->n) {
            errno = EINVAL;
            return NULL;
        }
        struct velo_datatype ct = input->fields[e->u.column].type;
        nd = node_new(e, ct, 0, cap, 0, 0);
        if (nd == NULL) {
            return NULL;
        }
        nd->eval = eval_column;
        nd->col = e->u.column;
        if (!type_same(ct, e->type) && e->type.id != VELO_TYPE_NULL) {
            return coerce(nd, e->type, cap, e->text, 0);
        }
        return nd;
    }
    case VELO_EXPR_LITERAL:
        nd = node_new(e, e->type, 0, cap, 1, 0);
        if (nd == NULL) {
            return NULL;
        }
        nd->eval = eval_literal;
        fill_literal(&nd->out, &e->u.literal, cap);
        return nd;
    case VELO_EXPR_CALL: {
        const struct velo_func *fn = e->u.call;
        if (fn == NULL || fn->kernel == NULL) {
            errno = EINVAL;
            return NULL;
        }
        nd = node_new(e, e->type, e->nargs, cap, 1, 1);
        if (nd == NULL || compile_kids(nd, e, input, cap) == NULL) {
            return NULL;
        }
        nd->eval = eval_call;
        nd->fn = fn;
        for (size_t k = 0; k < e->nargs; k++) {
            int di = fn->nargs > 0 && (int)k >= fn->nargs ? fn->nargs - 1
                                                          : (int)k;
            if (di >= VELO_FUNC_MAX_ARGS) {
                di = VELO_FUNC_MAX_ARGS - 1;
            }
            struct velo_datatype want = fn->args[di];
            if (fn->nargs == 0) {
                want.id = VELO_TYPE_NULL;
            }
            if (coerce_kid(nd, k, want, 1) != VELO_OK) {
                return NULL;
            }
        }
        nd->ext = velo_func_ext_of(fn);
        if (nd->ext != NULL) {
            nd->state = nd->ext->prepare(e);
            if (nd->state == NULL) {
                node_free(nd);
                errno = ENOMEM;
                return NULL;
            }
        }
        return nd;
    }
    case VELO_EXPR_CAST: {
        if (e->nargs != 1) {
            errno = EINVAL;
            return NULL;
        }
        struct enode *kid = compile_node(e->args[0], input, cap);
        if (kid == NULL) {
            return NULL;
        }
        struct enode *c = make_cast(kid, e->type, cap, e->text, e->u.cast.try_);
        if (c == NULL) {
            int saved = errno;
            node_free(kid);
            errno = saved;
            return NULL;
        }
        c->expr = e;
        return c;
    }
    case VELO_EXPR_AND:
    case VELO_EXPR_OR:
    case VELO_EXPR_NOT:
        if (e->nargs == 0 || (e->kind == VELO_EXPR_NOT && e->nargs != 1)) {
            errno = EINVAL;
            return NULL;
        }
        nd = node_new(e, booltype, e->nargs, cap, 1, 2);
        if (nd == NULL || compile_kids(nd, e, input, cap) == NULL) {
            return NULL;
        }
        nd->eval = e->kind == VELO_EXPR_NOT ? eval_not : eval_andor;
        for (size_t k = 0; k < e->nargs; k++) {
            if (coerce_kid(nd, k, booltype, 0) != VELO_OK) {
                return NULL;
            }
        }
        return nd;
    case VELO_EXPR_IS_NULL:
        if (e->nargs != 1) {
            errno = EINVAL;
            return NULL;
        }
        nd = node_new(e, booltype, 1, cap, 1, 0);
        if (nd == NULL || compile_kids(nd, e, input, cap) == NULL) {
            return NULL;
        }
        nd->eval = eval_is_null;
        nd->negated = e->u.negated;
        return nd;
    case VELO_EXPR_CASE: {
        size_t npairs = (e->nargs - (e->u.has_else ? 1 : 0)) / 2;
        if (npairs == 0 ||
            npairs * 2 + (e->u.has_else ? 1 : 0) != e->nargs) {
            errno = EINVAL;
            return NULL;
        }
        nd = node_new(e, e->type, e->nargs, cap, 1, 3);
        if (nd == NULL || compile_kids(nd, e, input, cap) == NULL) {
            return NULL;
        }
        nd->eval = eval_case;
        nd->has_else = e->u.has_else;
        for (size_t k = 0; k < e->nargs; k++) {
            int is_when = k < npairs * 2 && k % 2 == 0;
            if (coerce_kid(nd, k, is_when ? booltype : e->type, 0) !=
                VELO_OK) {
                return NULL;
            }
        }
        return nd;
    }
    case VELO_EXPR_COALESCE:
        if (e->nargs == 0) {
            errno = EINVAL;
            return NULL;
        }
        nd = node_new(e, e->type, e->nargs, cap, 1, 2);
        if (nd == NULL || compile_kids(nd, e, input, cap) == NULL) {
            return NULL;
        }
        nd->eval = eval_coalesce;
        for (size_t k = 0; k < e->nargs; k++) {
            if (coerce_kid(nd, k, e->type, 0) != VELO_OK) {
                return NULL;
            }
        }
        return nd;
    case VELO_EXPR_IN_LIST: {
        if (e->nargs < 2) {
            errno = EINVAL;
            return NULL;
        }
        nd = node_new(e, booltype, e->nargs, cap, 1, 0);
        if (nd == NULL || compile_kids(nd, e, input, cap) == NULL) {
            return NULL;
        }
        nd->eval = eval_in;
        nd->negated = e->u.negated;
        struct velo_datatype common = nd->kids[0]->type;
        for (size_t k = 1; k < e->nargs; k++) {
            struct velo_datatype t = nd->kids[k]->type;
            if (t.id == VELO_TYPE_NULL) {
                continue;
            }
            if (common.id == VELO_TYPE_NULL) {
                common = t;
                continue;
            }
            struct velo_datatype c = velo_type_common(common, t);
            if (c.id == VELO_TYPE_NULL) {
                node_free(nd);
                errno = ENOTSUP;
                return NULL;
            }
            common = c;
        }
        if (common.id == VELO_TYPE_NULL) {
            common = velo_type_of(VELO_TYPE_BOOLEAN);
        }
        for (size_t k = 0; k < e->nargs; k++) {
            if (coerce_kid(nd, k, common, 0) != VELO_OK) {
                return NULL;
            }
        }
        int all_const = 1;
        for (size_t k = 1; k < e->nargs; k++) {
            all_const &= is_constant(e->args[k]);
        }
        if (all_const) {
            int rc = build_inset(nd);
            if (rc == VELO_ERR) {
                node_free(nd);
                errno = ENOMEM;
                return NULL;
            }
        }
        return nd;
    }
    case VELO_EXPR_FIELD: {
        if (e->nargs != 1 || e->u.path.n > FIELD_MAX_STEPS) {
            errno = EINVAL;
            return NULL;
        }
        nd = node_new(e, e->type, 1, cap, 1, 1);
        if (nd == NULL || compile_kids(nd, e, input, cap) == NULL) {
            return NULL;
        }
        nd->eval = eval_field;
        int kt = nd->kids[0]->type.id;
        if (kt != VELO_TYPE_JSON && kt != VELO_TYPE_STRING) {
            node_free(nd);
            errno = EINVAL;
            return NULL;
        }
        nd->nsteps = e->u.path.n;
        nd->steps = calloc(nd->nsteps + 1, sizeof(*nd->steps));
        if (nd->steps == NULL) {
            node_free(nd);
            errno = ENOMEM;
            return NULL;
        }
        for (size_t i = 0; i < nd->nsteps; i++) {
            const char *k = e->u.path.keys[i];
            nd->steps[i].key = k;
            nd->steps[i].keylen = strlen(k);
            if (!parse_index(k, &nd->steps[i].index)) {
                nd->steps[i].index = -1;
            }
        }
        if (e->type.id != VELO_TYPE_STRING && e->type.id != VELO_TYPE_JSON) {
            int pass = 0;
            nd->tmp_cast = velo_cast_lookup(velo_type_of(VELO_TYPE_STRING),
                                            e->type, &pass);
            if (nd->tmp_cast == NULL ||
                col_alloc(&nd->tmp, velo_type_of(VELO_TYPE_STRING), cap) !=
                    VELO_OK) {
                node_free(nd);
                errno = ENOTSUP;
                return NULL;
            }
        }
        return nd;
    }
    default:
        errno = EINVAL;
        return NULL;
    }
}

struct velo_evaluator *velo_expr_compile(const struct velo_expr *e,
                                         const struct velo_schema *input,
                                         size_t batch_cap)
{
    if (e == NULL || batch_cap == 0 || batch_cap > UINT16_MAX + 1u) {
        errno = EINVAL;
        return NULL;
    }
    struct velo_evaluator *ev = calloc(1, sizeof(*ev));
    if (ev == NULL) {
        return NULL;
    }
    ev->cap = batch_cap;
    ev->selbuf = calloc(batch_cap, sizeof(uint16_t));
    ev->root = ev->selbuf != NULL ? compile_node(e, input, batch_cap) : NULL;
    if (ev->root == NULL) {
        int saved = errno != 0 ? errno : ENOMEM;
        free(ev->selbuf);
        free(ev);
        errno = saved;
        return NULL;
    }
    return ev;
}

void velo_evaluator_destroy(struct velo_evaluator *ev)
{
    if (ev == NULL) {
        return;
    }
    node_free(ev->root);
    free(ev->selbuf);
    free(ev);
}

int velo_evaluator_is_column(const struct velo_evaluator *ev)
{
    return ev->root->eval == eval_column;
}

const struct velo_column *velo_evaluate_sel(struct velo_evaluator *ev,
                                            struct velo_eval_ctx *ctx,
                                            const struct velo_batch *in,
                                            const uint16_t *sel, size_t n)
{
    return run(ev->root, ctx, in, sel, n);
}

const struct velo_column *velo_evaluate(struct velo_evaluator *ev,
                                        struct velo_eval_ctx *ctx,
                                        const struct velo_batch *in)
{
    size_t n = in->sel != NULL ? in->nsel : in->nrows;
    return run(ev->root, ctx, in, in->sel, n);
}

void velo_filter(struct velo_evaluator *ev, struct velo_eval_ctx *ctx,
                 struct velo_batch *in)
{
    const uint16_t *sel = in->sel;
    size_t n = sel != NULL ? in->nsel : in->nrows;
    const struct velo_column *c = run(ev->root, ctx, in, sel, n);
    uint16_t *out = ev->selbuf;
    size_t m = 0;
    int check_err = ctx->n_errors > 0;
    if (sel == NULL && !c->has_nulls && !check_err) {
        for (size_t r = 0; r < n; r++) {
            out[m] = (uint16_t)r;
            m += c->v.u8[r] != 0;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            size_t r = sel != NULL ? sel[i] : i;
            int keep = c->v.u8[r] != 0 && !(c->has_nulls && c->nulls[r]) &&
                       !(check_err && ctx->row_error[r]);
            out[m] = (uint16_t)r;
            m += keep;
        }
    }
    if (sel == NULL && m == n) {
        return; /* every row passed: stay dense */
    }
    in->sel = out;
    in->nsel = m;
}

/* ---- Helpers for functions ---------------------------------------------- */

const struct velo_literal *velo_call_const_arg(const struct velo_expr *call,
                                               size_t i)
{
    if (call == NULL || i >= call->nargs) {
        return NULL;
    }
    const struct velo_expr *a = call->args[i];
    /* The binder may wrap a literal in a no-op cast (VARCHAR -> STRING). */
    while (a->kind == VELO_EXPR_CAST && a->nargs == 1 &&
           a->args[0]->kind == VELO_EXPR_LITERAL &&
           velo_phys(a->type.id) == velo_phys(a->args[0]->type.id) &&
           a->type.id != VELO_TYPE_DECIMAL) {
        a = a->args[0];
    }
    return a->kind == VELO_EXPR_LITERAL ? &a->u.literal : NULL;
}

void velo_ext_kernel(struct velo_eval_ctx *ctx, const struct velo_func *fn,
                     const struct velo_column *const *args, size_t nargs,
                     struct velo_column *out, const uint16_t *sel, size_t n)
{
    const struct velo_func_ext *x = velo_func_ext_of(fn);
    if (x == NULL) {
        return;
    }
    void *state = x->prepare(NULL);
    if (state == NULL) {
        for (size_t i = 0; i < n; i++) {
            size_t r = sel != NULL ? sel[i] : i;
            velo_eval_fail(ctx, out, r, VELO_EVAL_BAD_ARG, "out of memory");
        }
        return;
    }
    x->kernel(ctx, state, args, nargs, out, sel, n);
    if (x->release != NULL) {
        x->release(state);
    }
}

/* ---- Constant folding --------------------------------------------------- */

int velo_expr_fold(const struct velo_expr *e, struct velo_literal *out,
                   char *msg, size_t msglen)
{
    if (e == NULL || out == NULL) {
        errno = EINVAL;
        return VELO_ERR;
    }
    if (!is_constant(e)) {
        return VELO_DECLINED;
    }
    struct velo_schema empty = {0, NULL};
    struct velo_evaluator *ev = velo_expr_compile(e, &empty, 1);
    if (ev == NULL) {
        if (msg != NULL && msglen > 0) {
            snprintf(msg, msglen, "cannot compile the expression: %s",
                     strerror(errno));
        }
        return VELO_ERR;
    }
    struct velo_batch *one = velo_batch_create(&empty, 1);
    struct velo_eval_ctx ctx;
    if (one == NULL || velo_eval_ctx_init(&ctx, 1, 0) != VELO_OK) {
        velo_batch_destroy(one);
        velo_evaluator_destroy(ev);
        errno = ENOMEM;
        return VELO_ERR;
    }
    one->nrows = 1;
    ctx.arena = one->arena;
    int rc = VELO_OK;
    const struct velo_column *c = velo_evaluate(ev, &ctx, one);
    memset(out, 0, sizeof(*out));
    if (ctx.n_errors > 0) {
        if (msg != NULL && msglen > 0) {
            snprintf(msg, msglen, "%s", ctx.first_msg);
        }
        rc = VELO_ERR;
    } else if (c->has_nulls && c->nulls[0]) {
        out->is_null = 1;
    } else {
        switch (velo_phys(c->type.id)) {
        case VELO_PHYS_U8:
            out->i64 = c->v.u8[0];
            break;
        case VELO_PHYS_I64:
            out->i64 = c->v.i64[0];
            break;
        case VELO_PHYS_F64:
            out->f64 = c->v.f64[0];
            break;
        case VELO_PHYS_STR: {
            struct velo_str s = c->v.str[0];
            out->str = malloc(s.len + 1);
            if (out->str == NULL) {
                rc = VELO_ERR;
                if (msg != NULL && msglen > 0) {
                    snprintf(msg, msglen, "out of memory");
                }
                break;
            }
            if (s.len > 0) {
                memcpy(out->str, s.ptr, s.len);
            }
            out->str[s.len] = '\0';
            out->len = s.len;
            break;
        }
        default:
            out->is_null = 1;
            break;
        }
    }
    velo_eval_ctx_free(&ctx);
    velo_batch_destroy(one);
    velo_evaluator_destroy(ev);
    return rc;
}
