/*
 * UNION ALL: several inputs of one schema become one stream. Batches pass
 * through unchanged (op marks included); the watermark is the minimum of
 * the inputs' (the ports do that), and the union ends when every input
 * has ended.
 */
#include <errno.h>
#include <stdio.h>

#include <velo/plugin.h>

#include "exec/exec-internal.h"
#include "exec/operator.h"

static int union_push_port(struct velo_op *op, size_t port,
                           struct velo_batch *in)
{
    (void)port;
    return velo_op_emit(op, in);
}

static void union_destroy(struct velo_op *op)
{
    (void)op;
}

static void union_explain(const struct velo_op *op, char *buf, size_t len)
{
    snprintf(buf, len, "%zu inputs, rows pass through in arrival order",
             velo_op_nports(op));
}

static const struct velo_op_ops union_ops = {
    .name = "UnionAll",
    .push_port = union_push_port,
    .destroy = union_destroy,
    .explain = union_explain,
};

struct velo_op *velo_op_union(const struct velo_exec_env *env,
                              const struct velo_schema *schema,
                              size_t ninputs)
{
    if (ninputs < 1) {
        errno = EINVAL;
        return NULL;
    }
    struct velo_schema *out = velo_schema_copy(schema);
    if (out == NULL) {
        return NULL;
    }
    struct velo_op *op = velo_op_alloc(env, &union_ops, out, NULL);
    if (op == NULL) {
        velo_schema_destroy(out);
        return NULL;
    }
    if (velo_op_ports_init(op, ninputs, NULL) != VELO_OK) {
        velo_op_destroy(op);
        return NULL;
    }
    return op;
}
