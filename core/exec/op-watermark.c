/*
 * Watermark: passes rows through unchanged and, after each batch, tells
 * everything downstream how far event time has come: the highest event
 * time seen so far minus the allowed out-of-orderness. Windows close,
 * OVER releases the rows it holds in time order, and joins drop state as
 * this advances; an operator with several inputs takes the minimum over
 * them (op.c). The planner puts one behind each input of a query that
 * needs event time (windows, OVER, joins), after its event-time Project.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <velo/plugin.h>

#include "exec/exec-internal.h"
#include "exec/operator.h"
#include "exec/state.h"

struct wm_impl {
    int ts_col;
    int64_t ooo_us;
    int64_t max_ts; /* INT64_MIN before any row */
    int64_t sent;   /* the last watermark passed on */
};

static int wm_push(struct velo_op *op, struct velo_batch *in)
{
    struct wm_impl *w = op->impl;
    const struct velo_column *c = &in->cols[w->ts_col];
    int64_t mx = w->max_ts;
    size_t n = velo_batch_live(in);
    if (in->sel == NULL && !c->has_nulls) {
        for (size_t r = 0; r < n; r++) {
            mx = c->v.i64[r] > mx ? c->v.i64[r] : mx;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            size_t r = in->sel != NULL ? in->sel[i] : i;
            if (!velo_col_is_null(c, r) && c->v.i64[r] > mx) {
                mx = c->v.i64[r];
            }
        }
    }
    w->max_ts = mx;
    int rc = velo_op_emit(op, in);
    if (rc != VELO_OK || mx == INT64_MIN) {
        return rc;
    }
    int64_t wm = mx - w->ooo_us;
    if (mx - w->ooo_us > mx) { /* overflow near INT64_MIN */
        wm = INT64_MIN + 1;
    }
    if (wm <= w->sent) {
        return VELO_OK;
    }
    w->sent = wm;
    /* Not velo_op_watermark(op): that would also call this operator,
     * which has no callback; its children are what need it. */
    for (size_t i = 0; i < op->nchildren; i++) {
        rc = velo_op_watermark(op->children[i], wm);
        if (rc != VELO_OK) {
            return rc;
        }
    }
    return VELO_OK;
}

static void wm_destroy(struct velo_op *op)
{
    free(op->impl);
}

static void wm_explain(const struct velo_op *op, char *buf, size_t len)
{
    const struct wm_impl *w = op->impl;
    if (w->ooo_us > 0) {
        snprintf(buf, len,
                 "watermark = highest %s - %lld ms (bounded out-of-orderness)",
                 op->out_schema->fields[w->ts_col].name,
                 (long long)(w->ooo_us / 1000));
    } else {
        snprintf(buf, len, "watermark = highest %s (ascending)",
                 op->out_schema->fields[w->ts_col].name);
    }
}

static int wm_snapshot(const struct velo_op *op, struct velo_state_writer *sw)
{
    const struct wm_impl *w = op->impl;
    velo_sw_u32(sw, 0x574d4b31); /* "WMK1" */
    velo_sw_i64(sw, w->max_ts);
    velo_sw_i64(sw, w->sent);
    return sw->oom ? VELO_ERR : VELO_OK;
}

static int wm_restore(struct velo_op *op, struct velo_state_reader *r)
{
    struct wm_impl *w = op->impl;
    if (velo_sr_u32(r) != 0x574d4b31) {
        velo_sr_fail(r);
    }
    int64_t mx = velo_sr_i64(r);
    int64_t sent = velo_sr_i64(r);
    if (!velo_sr_ok(r, 1)) {
        return VELO_ERR;
    }
    w->max_ts = mx;
    w->sent = sent;
    return VELO_OK;
}

static const struct velo_op_ops wm_ops = {
    .name = "Watermark",
    .push = wm_push,
    .destroy = wm_destroy,
    .explain = wm_explain,
    .snapshot = wm_snapshot,
    .restore = wm_restore,
};

struct velo_op *velo_op_watermark_gen(const struct velo_exec_env *env,
                                      const struct velo_schema *in,
                                      int ts_col, int64_t ooo_us)
{
    if (in == NULL || ts_col < 0 || (size_t)ts_col >= in->n ||
        in->fields[ts_col].type.id != VELO_TYPE_TIMESTAMP || ooo_us < 0) {
        errno = EINVAL;
        return NULL;
    }
    struct wm_impl *w = calloc(1, sizeof(*w));
    struct velo_schema *out = velo_schema_copy(in);
    if (w == NULL || out == NULL) {
        free(w);
        velo_schema_destroy(out);
        return NULL;
    }
    w->ts_col = ts_col;
    w->ooo_us = ooo_us;
    w->max_ts = INT64_MIN;
    w->sent = INT64_MIN;
    struct velo_op *op = velo_op_alloc(env, &wm_ops, out, w);
    if (op == NULL) {
        free(w);
        velo_schema_destroy(out);
    }
    return op;
}

int velo_op_watermark_gen_state(const struct velo_op *op, int64_t *wm,
                                int64_t *max_ts)
{
    if (op == NULL || op->ops != &wm_ops) {
        return VELO_DECLINED;
    }
    const struct wm_impl *w = op->impl;
    *wm = w->sent;
    *max_ts = w->max_ts;
    return VELO_OK;
}
