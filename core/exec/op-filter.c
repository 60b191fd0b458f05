/*
 * Filter (WHERE, HAVING): narrows the batch's selection to the rows where
 * the predicate is TRUE; nothing is copied. Rows whose predicate failed
 * to evaluate are reported with their origin and dropped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <velo/log.h>

#include "exec/exec-internal.h"

#define FILTER_ARENA_CHUNK (16 * 1024)

struct filter_impl {
    struct velo_expr *pred;
    struct velo_evaluator *ev;
    struct velo_eval_ctx ctx;
    struct velo_arena *arena; /* strings the predicate builds */
    size_t cap;
};

static int filter_push(struct velo_op *op, struct velo_batch *in)
{
    struct filter_impl *f = op->impl;
    const uint16_t *sel0 = in->sel;
    size_t n0 = velo_batch_live(in);
    velo_arena_reset(f->arena);
    f->ctx.arena = f->arena;
    f->ctx.now_us = velo_op_now(op->env);
    velo_filter(f->ev, &f->ctx, in);
    if (f->ctx.n_errors > 0) {
        velo_op_report_errors(op, &f->ctx, in, sel0, n0);
        velo_eval_ctx_clear(&f->ctx, f->cap);
    }
    return velo_op_emit(op, in);
}

static void filter_destroy(struct velo_op *op)
{
    struct filter_impl *f = op->impl;
    if (f == NULL) {
        return;
    }
    velo_evaluator_destroy(f->ev);
    velo_expr_free(f->pred);
    velo_eval_ctx_free(&f->ctx);
    velo_arena_destroy(f->arena);
    free(f);
}

static void filter_explain(const struct velo_op *op, char *buf, size_t len)
{
    const struct filter_impl *f = op->impl;
    char e[512];
    velo_expr_format(f->pred, op->out_schema, e, sizeof(e));
    snprintf(buf, len, "keeps rows where %s", e);
}

static const struct velo_op_ops filter_ops = {
    .name = "Filter",
    .push = filter_push,
    .destroy = filter_destroy,
    .explain = filter_explain,
};

struct velo_op *velo_op_filter(const struct velo_exec_env *env,
                               const struct velo_schema *in,
                               struct velo_expr *pred)
{
    if (env == NULL || in == NULL || pred == NULL) {
        velo_expr_free(pred);
        errno = EINVAL;
        return NULL;
    }
    struct filter_impl *f = calloc(1, sizeof(*f));
    struct velo_schema *out = velo_schema_copy(in);
    struct velo_op *op = NULL;
    if (f != NULL) {
        f->pred = pred;
    }
    if (f == NULL || out == NULL) {
        goto fail;
    }
    f->cap = env->batch_cap ? env->batch_cap : VELO_BATCH_ROWS;
    f->ev = velo_expr_compile(pred, in, f->cap);
    f->arena = velo_arena_create(FILTER_ARENA_CHUNK);
    if (f->ev == NULL || f->arena == NULL ||
        velo_eval_ctx_init(&f->ctx, f->cap, 1) != VELO_OK) {
        goto fail;
    }
    op = velo_op_alloc(env, &filter_ops, out, f);
    if (op == NULL) {
        goto fail;
    }
    return op;
fail:;
    int saved = errno != 0 ? errno : ENOMEM;
    if (f != NULL) {
        struct velo_op tmp = {.impl = f};
        filter_destroy(&tmp); /* frees pred: ownership passed either way */
    } else {
        velo_expr_free(pred);
    }
    velo_schema_destroy(out);
    errno = saved;
    return NULL;
}
