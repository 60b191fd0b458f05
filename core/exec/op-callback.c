/*
 * Callback: the terminal operator that hands every batch to a function
 * (a sink's encoder, the CLI, a test) and calls `finish` at the end of a
 * bounded input.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <velo/log.h>

#include "exec/exec-internal.h"

struct callback_impl {
    velo_op_sink_fn fn;
    velo_op_sink_finish_fn finish;
    void *arg;
    char *name;
};

static int callback_push(struct velo_op *op, struct velo_batch *in)
{
    struct callback_impl *c = op->impl;
    op->stats.rows_out += velo_batch_live(in);
    return c->fn != NULL ? c->fn(c->arg, in) : VELO_OK;
}

static int callback_finish(struct velo_op *op)
{
    struct callback_impl *c = op->impl;
    return c->finish != NULL ? c->finish(c->arg) : VELO_OK;
}

static void callback_destroy(struct velo_op *op)
{
    struct callback_impl *c = op->impl;
    if (c != NULL) {
        free(c->name);
        free(c);
    }
}

static void callback_explain(const struct velo_op *op, char *buf, size_t len)
{
    const struct callback_impl *c = op->impl;
    snprintf(buf, len, "writes to %s", c->name != NULL ? c->name : "a sink");
}

static const struct velo_op_ops callback_ops = {
    .name = "Sink",
    .push = callback_push,
    .finish = callback_finish,
    .destroy = callback_destroy,
    .explain = callback_explain,
};

struct velo_op *velo_op_callback(const struct velo_exec_env *env,
                                 const struct velo_schema *in,
                                 velo_op_sink_fn fn,
                                 velo_op_sink_finish_fn finish, void *arg,
                                 const char *name)
{
    if (env == NULL || in == NULL || fn == NULL) {
        errno = EINVAL;
        return NULL;
    }
    struct callback_impl *c = calloc(1, sizeof(*c));
    struct velo_schema *out = velo_schema_copy(in);
    struct velo_op *op = NULL;
    if (c != NULL && out != NULL &&
        (name == NULL || (c->name = strdup(name)) != NULL)) {
        c->fn = fn;
        c->finish = finish;
        c->arg = arg;
        op = velo_op_alloc(env, &callback_ops, out, c);
    }
    if (op == NULL) {
        if (c != NULL) {
            free(c->name);
        }
        free(c);
        velo_schema_destroy(out);
        errno = ENOMEM;
    }
    return op;
}
