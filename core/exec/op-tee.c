/*
 * Tee: every child sees every batch (two statements of one application
 * reading the same stream). velo_op_emit restores the selection and marks
 * between children, so one child's Filter does not hide rows from the
 * next.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <velo/log.h>

#include "exec/exec-internal.h"

static int tee_push(struct velo_op *op, struct velo_batch *in)
{
    return velo_op_emit(op, in);
}

static void tee_destroy(struct velo_op *op)
{
    (void)op;
}

static void tee_explain(const struct velo_op *op, char *buf, size_t len)
{
    snprintf(buf, len, "fans out to %zu consumer%s", op->nchildren,
             op->nchildren == 1 ? "" : "s");
}

static const struct velo_op_ops tee_ops = {
    .name = "Tee",
    .push = tee_push,
    .destroy = tee_destroy,
    .explain = tee_explain,
};

struct velo_op *velo_op_tee(const struct velo_exec_env *env,
                            const struct velo_schema *in)
{
    if (env == NULL || in == NULL) {
        errno = EINVAL;
        return NULL;
    }
    struct velo_schema *out = velo_schema_copy(in);
    struct velo_op *op = out != NULL ? velo_op_alloc(env, &tee_ops, out, NULL)
                                     : NULL;
    if (op == NULL) {
        velo_schema_destroy(out);
        errno = ENOMEM;
    }
    return op;
}
