/*
 * Driving the operator DAG: pushes, watermarks and finish move from an
 * operator to its children in the same thread. An output batch is valid
 * only during the push; a child that narrows it (Filter, Limit) or marks
 * it (Table) does so in place, so velo_op_emit puts the selection and the
 * changelog marks back before the next child sees the batch.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <velo/log.h>

#include "exec/exec-internal.h"
#include "exec/operator.h"

void velo_op_ports_free(struct velo_op *op);

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
    velo_op_ports_free(op);
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

/* ---- Ports: inputs of multi-input operators ----------------------------- */

struct port_impl {
    struct velo_op *target;
    size_t index;
};

struct velo_op_ports {
    size_t n;
    struct velo_op **port_ops; /* n forwarding operators, owned */
    int64_t *wm;               /* last watermark per port */
    uint8_t *holds, *done;
    uint8_t *idle; /* the input has been idle: it does not hold either */
    int64_t emitted_wm;        /* the minimum last passed on */
    size_t ndone;
};

static int port_push(struct velo_op *op, struct velo_batch *in)
{
    struct port_impl *p = op->impl;
    struct velo_op *t = p->target;
    t->stats.batches_in++;
    t->stats.rows_in += velo_batch_live(in);
    return t->ops->push_port(t, p->index, in);
}

static int ports_advance(struct velo_op *t)
{
    struct velo_op_ports *ps = t->ports;
    int64_t min = INT64_MAX;
    int any = 0;
    for (size_t i = 0; i < ps->n; i++) {
        if (!ps->holds[i] || ps->done[i] || ps->idle[i]) {
            continue;
        }
        any = 1;
        if (ps->wm[i] < min) {
            min = ps->wm[i];
        }
    }
    if (!any || min == INT64_MIN || min <= ps->emitted_wm) {
        return VELO_OK;
    }
    ps->emitted_wm = min;
    return velo_op_watermark(t, min);
}

static int port_watermark(struct velo_op *op, int64_t wm_us)
{
    struct port_impl *p = op->impl;
    struct velo_op_ports *ps = p->target->ports;
    if (wm_us > ps->wm[p->index]) {
        ps->wm[p->index] = wm_us;
    }
    return ports_advance(p->target);
}

static int port_finish(struct velo_op *op)
{
    struct port_impl *p = op->impl;
    struct velo_op *t = p->target;
    struct velo_op_ports *ps = t->ports;
    if (ps->done[p->index]) {
        return VELO_OK;
    }
    ps->done[p->index] = 1;
    ps->ndone++;
    if (t->ops->port_finish != NULL) {
        int rc = t->ops->port_finish(t, p->index);
        if (rc != VELO_OK) {
            return rc;
        }
    }
    if (ps->ndone == ps->n) {
        return velo_op_finish(t);
    }
    /* A finished input no longer holds the others back. */
    return ports_advance(t);
}

static void port_destroy(struct velo_op *op)
{
    free(op->impl);
}

static void port_explain(const struct velo_op *op, char *buf, size_t len)
{
    const struct port_impl *p = op->impl;
    snprintf(buf, len, "input %zu of %s", p->index, p->target->ops->name);
}

static const struct velo_op_ops port_ops = {
    .name = "Input",
    .push = port_push,
    .watermark = port_watermark,
    .finish = port_finish,
    .destroy = port_destroy,
    .explain = port_explain,
};

int velo_op_ports_init(struct velo_op *op, size_t nports, const uint8_t *holds)
{
    struct velo_op_ports *ps = calloc(1, sizeof(*ps));
    if (ps == NULL) {
        return VELO_ERR;
    }
    ps->n = nports;
    ps->emitted_wm = INT64_MIN;
    ps->port_ops = calloc(nports, sizeof(*ps->port_ops));
    ps->wm = calloc(nports, sizeof(*ps->wm));
    ps->holds = calloc(nports, 1);
    ps->done = calloc(nports, 1);
    ps->idle = calloc(nports, 1);
    if (ps->port_ops == NULL || ps->wm == NULL || ps->holds == NULL ||
        ps->done == NULL || ps->idle == NULL) {
        goto fail;
    }
    for (size_t i = 0; i < nports; i++) {
        ps->wm[i] = INT64_MIN;
        ps->holds[i] = holds == NULL || holds[i] != 0;
        struct port_impl *pi = calloc(1, sizeof(*pi));
        if (pi == NULL) {
            goto fail;
        }
        pi->target = op;
        pi->index = i;
        /* A port's out_schema is never read: it has no children. */
        ps->port_ops[i] = velo_op_alloc(op->env, &port_ops, NULL, pi);
        if (ps->port_ops[i] == NULL) {
            free(pi);
            goto fail;
        }
    }
    op->ports = ps;
    return VELO_OK;
fail:
    if (ps->port_ops != NULL) {
        for (size_t i = 0; i < nports; i++) {
            velo_op_destroy(ps->port_ops[i]);
        }
    }
    free(ps->port_ops);
    free(ps->wm);
    free(ps->holds);
    free(ps->done);
    free(ps->idle);
    free(ps);
    errno = ENOMEM;
    return VELO_ERR;
}

struct velo_op *velo_op_port(struct velo_op *op, size_t port)
{
    if (op == NULL || op->ports == NULL || port >= op->ports->n) {
        return NULL;
    }
    return op->ports->port_ops[port];
}

size_t velo_op_nports(const struct velo_op *op)
{
    return op->ports != NULL ? op->ports->n : 0;
}

int64_t velo_op_port_watermark(const struct velo_op *op, size_t port)
{
    return op->ports != NULL && port < op->ports->n ? op->ports->wm[port]
                                                     : INT64_MIN;
}

int velo_op_port_done(const struct velo_op *op, size_t port)
{
    return op->ports != NULL && port < op->ports->n &&
           op->ports->done[port];
}

void velo_op_ports_free(struct velo_op *op)
{
    struct velo_op_ports *ps = op->ports;
    if (ps == NULL) {
        return;
    }
    for (size_t i = 0; i < ps->n; i++) {
        velo_op_destroy(ps->port_ops[i]);
    }
    free(ps->port_ops);
    free(ps->wm);
    free(ps->holds);
    free(ps->done);
    free(ps->idle);
    free(ps);
    op->ports = NULL;
}

int velo_op_idle(struct velo_op *op, int idle)
{
    if (op->ops == &port_ops) {
        struct port_impl *p = op->impl;
        struct velo_op_ports *ps = p->target->ports;
        ps->idle[p->index] = idle != 0;
        /* Without the idle input the others' minimum may move on. */
        return idle ? ports_advance(p->target) : VELO_OK;
    }
    for (size_t i = 0; i < op->nchildren; i++) {
        int rc = velo_op_idle(op->children[i], idle);
        if (rc != VELO_OK) {
            return rc;
        }
    }
    return VELO_OK;
}
