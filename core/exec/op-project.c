/*
 * Project (the SELECT list): output column i is expression i over the
 * input. A plain column reference passes the input column through without
 * a copy (the output batch's column struct points at the input's
 * buffers); computed columns are the evaluators' scratch columns. The
 * selection, origins and changelog marks pass through as they are.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <velo/log.h>

#include "exec/exec-internal.h"

struct project_impl {
    size_t n;
    struct velo_expr **exprs;
    struct velo_evaluator **evs;
    struct velo_batch *out; /* shell: columns borrowed per push */
    struct velo_eval_ctx ctx;
    size_t cap;
};

static int project_push(struct velo_op *op, struct velo_batch *in)
{
    struct project_impl *p = op->impl;
    struct velo_batch *out = p->out;
    velo_arena_reset(out->arena);
    p->ctx.arena = out->arena;
    p->ctx.now_us = velo_op_now(op->env);
    for (size_t i = 0; i < p->n; i++) {
        const struct velo_column *c = velo_evaluate(p->evs[i], &p->ctx, in);
        out->cols[i] = *c;
        out->cols[i].type = op->out_schema->fields[i].type;
    }
    out->nrows = in->nrows;
    out->sel = in->sel;
    out->nsel = in->nsel;
    out->origin = in->origin;
    out->op = in->op;
    if (p->ctx.n_errors > 0) {
        size_t n = velo_batch_live(in);
        velo_op_report_errors(op, &p->ctx, in, in->sel, n);
        uint16_t *keep = velo_batch_sel_buf(out);
        out->nsel = velo_sel_drop_failed(&p->ctx, in->sel, n, keep);
        out->sel = keep;
        velo_eval_ctx_clear(&p->ctx, p->cap);
    }
    return velo_op_emit(op, out);
}

static void project_destroy(struct velo_op *op)
{
    struct project_impl *p = op->impl;
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; i < p->n; i++) {
        if (p->evs != NULL) {
            velo_evaluator_destroy(p->evs[i]);
        }
        if (p->exprs != NULL) {
            velo_expr_free(p->exprs[i]);
        }
    }
    free(p->evs);
    free(p->exprs);
    velo_batch_destroy(p->out);
    velo_eval_ctx_free(&p->ctx);
    free(p);
}

static void project_explain(const struct velo_op *op, char *buf, size_t len)
{
    const struct project_impl *p = op->impl;
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < p->n && used + 1 < len; i++) {
        const struct velo_expr *e = p->exprs[i];
        const char *name = op->out_schema->fields[i].name;
        char text[256];
        velo_expr_format(e, NULL, text, sizeof(text));
        int w;
        if (e->kind == VELO_EXPR_COLUMN) {
            w = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", name);
        } else {
            w = snprintf(buf + used, len - used, "%s%s AS %s", i ? ", " : "",
                         e->text != NULL ? e->text : text, name);
        }
        if (w < 0) {
            break;
        }
        used += (size_t)w;
    }
}

static const struct velo_op_ops project_ops = {
    .name = "Project",
    .push = project_push,
    .destroy = project_destroy,
    .explain = project_explain,
};

struct velo_op *velo_op_project(const struct velo_exec_env *env,
                                const struct velo_schema *in,
                                struct velo_expr **exprs,
                                const char *const *names,
                                const uint8_t *hidden, size_t n)
{
    struct project_impl *p = calloc(1, sizeof(*p));
    struct velo_schema *out = velo_schema_create(n);
    if (p != NULL) {
        p->exprs = calloc(n ? n : 1, sizeof(*p->exprs));
        if (p->exprs != NULL) {
            p->n = n;
            for (size_t i = 0; i < n; i++) {
                p->exprs[i] = exprs != NULL ? exprs[i] : NULL;
            }
        }
    }
    if (p == NULL || p->exprs == NULL || out == NULL || env == NULL ||
        in == NULL || exprs == NULL || names == NULL) {
        goto fail;
    }
    p->cap = env->batch_cap ? env->batch_cap : VELO_BATCH_ROWS;
    p->evs = calloc(n ? n : 1, sizeof(*p->evs));
    if (p->evs == NULL || velo_eval_ctx_init(&p->ctx, p->cap, 1) != VELO_OK) {
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        const struct velo_expr *e = exprs[i];
        if (e == NULL || names[i] == NULL) {
            errno = EINVAL;
            goto fail;
        }
        int nullable = 1;
        if (e->kind == VELO_EXPR_COLUMN && e->u.column >= 0 &&
            (size_t)e->u.column < in->n) {
            nullable = in->fields[e->u.column].nullable;
        }
        if (velo_schema_set(out, i, names[i], e->type, nullable,
                            hidden != NULL && hidden[i]) != VELO_OK) {
            goto fail;
        }
        p->evs[i] = velo_expr_compile(e, in, p->cap);
        if (p->evs[i] == NULL) {
            goto fail;
        }
    }
    p->out = velo_batch_create_shell(out, p->cap);
    if (p->out == NULL) {
        goto fail;
    }
    p->out->origin = NULL;
    struct velo_op *op = velo_op_alloc(env, &project_ops, out, p);
    if (op == NULL) {
        goto fail;
    }
    return op;
fail:;
    int saved = errno != 0 ? errno : ENOMEM;
    if (p != NULL && p->exprs != NULL) {
        struct velo_op tmp = {.impl = p};
        project_destroy(&tmp);
    } else {
        free(p);
        for (size_t i = 0; exprs != NULL && i < n; i++) {
            velo_expr_free(exprs[i]);
        }
    }
    velo_schema_destroy(out);
    errno = saved;
    return NULL;
}
