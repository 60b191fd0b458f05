/*
 * Driving the operator DAG: pushes, watermarks and finish move from an
 * operator to its children in the same thread. An output batch is valid
 * only during the push; a child that narrows it (Filter, Limit) or marks
 * it (Table) does so in place, so velo_op_emit puts the selection and the
 * changelog marks back before the next child sees the batch.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <velo/log.h>

#include "exec/exec-internal.h"
#include "exec/operator.h"

int velo_op_connect(struct velo_op *from, struct velo_op *to)
{
    if (from == NULL || to == NULL) {
        errno = EINVAL;
        return VELO_ERR;
    }
    if (from->nchildren >= VELO_OP_MAX_CHILDREN) {
        errno = ENOSPC;
        return VELO_ERR;
    }
    from->children[from->nchildren++] = to;
    return VELO_OK;
}

int velo_op_emit(struct velo_op *op, struct velo_batch *out)
{
    size_t live = velo_batch_live(out);
    if (live == 0) {
        return VELO_OK;
    }
    op->stats.rows_out += live;
    uint16_t *sel = out->sel;
    size_t nsel = out->nsel, nrows = out->nrows;
    uint8_t *ops = out->op;
    for (size_t i = 0; i < op->nchildren; i++) {
        int rc = velo_op_push(op->children[i], out);
        out->sel = sel;
        out->nsel = nsel;
        out->nrows = nrows;
        out->op = ops;
        if (rc != VELO_OK) {
            return rc;
        }
    }
    return VELO_OK;
}

int velo_op_push(struct velo_op *op, struct velo_batch *in)
{
    size_t live = velo_batch_live(in);
    op->stats.batches_in++;
    op->stats.rows_in += live;
    if (live == 0) {
        return VELO_OK;
    }
    return op->ops->push(op, in);
}

int velo_op_watermark(struct velo_op *op, int64_t wm_us)
{
    if (op->ops->watermark != NULL) {
        int rc = op->ops->watermark(op, wm_us);
        if (rc != VELO_OK) {
            return rc;
        }
    }
    for (size_t i = 0; i < op->nchildren; i++) {
        int rc = velo_op_watermark(op->children[i], wm_us);
        if (rc != VELO_OK) {
            return rc;
        }
    }
    return VELO_OK;
}

int velo_op_finish(struct velo_op *op)
{
    if (op->ops->finish != NULL) {
        int rc = op->ops->finish(op);
        if (rc != VELO_OK) {
            return rc;
        }
    }
    for (size_t i = 0; i < op->nchildren; i++) {
        int rc = velo_op_finish(op->children[i]);
        if (rc != VELO_OK) {
            return rc;
        }
    }
    return VELO_OK;
}

void velo_op_destroy(struct velo_op *op)
{
    if (op == NULL) {
        return;
    }
    if (op->ops != NULL && op->ops->destroy != NULL) {
        op->ops->destroy(op);
    }
    velo_schema_destroy(op->out_schema);
    free(op);
}

struct velo_op *velo_op_alloc(const struct velo_exec_env *env,
                              const struct velo_op_ops *ops,
                              struct velo_schema *out_schema, void *impl)
{
    struct velo_op *op = calloc(1, sizeof(*op));
    if (op == NULL) {
        return NULL;
    }
    op->ops = ops;
    op->env = env;
    op->out_schema = out_schema;
    op->impl = impl;
    return op;
}

size_t velo_op_report_errors(struct velo_op *op, struct velo_eval_ctx *ctx,
                             const struct velo_batch *b, const uint16_t *sel,
                             size_t n)
{
    if (ctx->n_errors == 0) {
        return 0;
    }
    static const struct velo_row_origin unknown = {-1, 0, 0};
    size_t found = 0;
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        int code = ctx->row_error[r];
        if (code == 0) {
            continue;
        }
        found++;
        op->stats.rows_failed++;
        if (op->env != NULL && op->env->on_row_error != NULL) {
            const struct velo_row_origin *o =
                b != NULL && b->origin != NULL ? &b->origin[r] : &unknown;
            op->env->on_row_error(op->env->cb_arg, op, o, code,
                                  velo_eval_row_msg(ctx, r));
        }
    }
    return found;
}

size_t velo_sel_drop_failed(const struct velo_eval_ctx *ctx,
                            const uint16_t *sel, size_t n, uint16_t *out_sel)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        size_t r = sel != NULL ? sel[i] : i;
        out_sel[m] = (uint16_t)r;
        m += ctx->row_error[r] == 0;
    }
    return m;
}

int64_t velo_op_now(const struct velo_exec_env *env)
{
    if (env != NULL && env->now_us != NULL) {
        return env->now_us();
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
