/*
 * Limit (LIMIT/OFFSET without ORDER BY): passes rows offset..offset+limit
 * in arrival order by narrowing the selection, then drops everything and
 * tells the job it may stop reading (velo_op_limit_done).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <velo/log.h>

#include "exec/exec-internal.h"
#include "exec/state.h"

struct limit_impl {
    int64_t limit; /* < 0: no limit */
    int64_t offset;
    int64_t seen;
    uint16_t *sel;
};

static int limit_done_impl(const struct limit_impl *l)
{
    return l->limit >= 0 && l->seen >= l->offset + l->limit;
}

static int limit_push(struct velo_op *op, struct velo_batch *in)
{
    struct limit_impl *l = op->impl;
    if (limit_done_impl(l)) {
        return VELO_OK;
    }
    size_t n = velo_batch_live(in), m = 0;
    for (size_t i = 0; i < n; i++) {
        size_t r = in->sel != NULL ? in->sel[i] : i;
        int64_t pos = l->seen++;
        if (pos >= l->offset && (l->limit < 0 || pos < l->offset + l->limit)) {
            l->sel[m++] = (uint16_t)r;
        }
        if (limit_done_impl(l)) {
            break;
        }
    }
    if (m == 0) {
        return VELO_OK;
    }
    in->sel = l->sel;
    in->nsel = m;
    return velo_op_emit(op, in);
}

static void limit_destroy(struct velo_op *op)
{
    struct limit_impl *l = op->impl;
    if (l != NULL) {
        free(l->sel);
        free(l);
    }
}

static void limit_explain(const struct velo_op *op, char *buf, size_t len)
{
    const struct limit_impl *l = op->impl;
    if (l->limit >= 0) {
        snprintf(buf, len, "passes %lld rows after skipping %lld, then "
                 "stops the input",
                 (long long)l->limit, (long long)l->offset);
    } else {
        snprintf(buf, len, "skips the first %lld rows", (long long)l->offset);
    }
}

/* Checkpoints: how many rows have gone by (limit and offset are the
 * plan's and come back with it). */
static int limit_snapshot(const struct velo_op *op,
                          struct velo_state_writer *w)
{
    const struct limit_impl *l = op->impl;
    velo_sw_i64(w, l->seen);
    return w->oom ? VELO_ERR : VELO_OK;
}

static int limit_restore(struct velo_op *op, struct velo_state_reader *r)
{
    struct limit_impl *l = op->impl;
    int64_t seen = velo_sr_i64(r);
    if (!velo_sr_ok(r, 1) || seen < 0) {
        return VELO_ERR;
    }
    l->seen = seen;
    return VELO_OK;
}

static const struct velo_op_ops limit_ops = {
    .name = "Limit",
    .push = limit_push,
    .destroy = limit_destroy,
    .explain = limit_explain,
    .snapshot = limit_snapshot,
    .restore = limit_restore,
};

struct velo_op *velo_op_limit(const struct velo_exec_env *env,
                              const struct velo_schema *in, int64_t limit,
                              int64_t offset)
{
    if (env == NULL || in == NULL || offset < 0) {
        errno = EINVAL;
        return NULL;
    }
    size_t cap = env->batch_cap ? env->batch_cap : VELO_BATCH_ROWS;
    struct limit_impl *l = calloc(1, sizeof(*l));
    struct velo_schema *out = velo_schema_copy(in);
    if (l != NULL) {
        l->sel = calloc(cap, sizeof(uint16_t));
    }
    struct velo_op *op = NULL;
    if (l != NULL && l->sel != NULL && out != NULL) {
        l->limit = limit;
        l->offset = offset;
        op = velo_op_alloc(env, &limit_ops, out, l);
    }
    if (op == NULL) {
        if (l != NULL) {
            free(l->sel);
        }
        free(l);
        velo_schema_destroy(out);
        errno = ENOMEM;
        return NULL;
    }
    return op;
}

int velo_op_limit_done(const struct velo_op *op)
{
    if (op == NULL || op->ops != &limit_ops) {
        return 0;
    }
    return limit_done_impl(op->impl);
}
