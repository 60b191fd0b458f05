/*
 * Executor micro-benchmark: rows per second of the operators alone, over
 * synthetic Nexmark-like bid batches already in memory (no decoding):
 *
 *   filter   WHERE auction % 123 = 0                        (q2)
 *   project  SELECT auction, price * 0.908                  (q1)
 *   q5       GROUP BY auction, TUMBLING 10 s: COUNT(*), SUM(price),
 *            AVG(price); EMIT FINAL on a watermark that follows the data
 *   q7       TUMBLING 10 s: MAX(price)
 *
 * Bids: auction BIGINT (10,000 distinct), bidder BIGINT, price BIGINT,
 * channel STRING (100 distinct), url STRING (~70 bytes), one millisecond
 * of event time per bid.
 *
 * Build: cmake --build <dir> --target exec_micro (bench/CMakeLists.txt).
 * Run:   <dir>/bench/exec_micro [million rows, default 20]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <velo/log.h>

#include "exec/batch.h"
#include "exec/expr.h"
#include "exec/operator.h"
#include "micro-data.h"

#define NBATCHES 64
#define CAP VELO_BATCH_ROWS

static struct velo_funcs *funcs;
static struct velo_schema *schema;
static struct velo_batch *batches[NBATCHES];

static struct velo_expr *col(int i)
{
    struct velo_expr *e =
        velo_expr_new(VELO_EXPR_COLUMN, schema->fields[i].type, 0);
    e->u.column = i;
    return e;
}

static struct velo_expr *lit_int(int64_t v)
{
    struct velo_expr *e =
        velo_expr_new(VELO_EXPR_LITERAL, velo_type_of(VELO_TYPE_INTEGER), 0);
    e->u.literal.i64 = v;
    return e;
}

static struct velo_expr *lit_dec(int64_t unscaled, int p, int s)
{
    struct velo_expr *e =
        velo_expr_new(VELO_EXPR_LITERAL, velo_type_decimal(p, s), 0);
    e->u.literal.i64 = unscaled;
    return e;
}

/* A call resolved the way the binder does it (casts inserted). */
static struct velo_expr *call2(const char *name, struct velo_expr *a,
                               struct velo_expr *b)
{
    struct velo_expr *args[2] = {a, b};
    struct velo_datatype at[2] = {a->type, b->type}, cast[2];
    int known;
    const struct velo_func *f =
        velo_funcs_resolve(funcs, name, at, 2, cast, &known);
    if (f == NULL) {
        fprintf(stderr, "cannot resolve %s\n", name);
        exit(1);
    }
    for (int i = 0; i < 2; i++) {
        if (cast[i].id != 0) {
            struct velo_expr *c = velo_expr_new(VELO_EXPR_CAST, cast[i], 1);
            c->args[0] = args[i];
            args[i] = c;
            at[i] = cast[i];
        }
    }
    struct velo_expr *e = velo_expr_new(
        VELO_EXPR_CALL, f->ret_type ? f->ret_type(at, 2) : f->ret, 2);
    e->u.call = f;
    e->args[0] = args[0];
    e->args[1] = args[1];
    return e;
}

static struct velo_agg_call agg(const char *name, struct velo_expr *arg,
                                const char *out)
{
    struct velo_agg_call c;
    memset(&c, 0, sizeof(c));
    struct velo_datatype at = arg != NULL ? arg->type : velo_type_of(0);
    struct velo_datatype cast;
    int known;
    c.agg = velo_funcs_resolve_agg(funcs, name, &at, arg != NULL, &cast,
                                   &known);
    if (arg != NULL) {
        c.args[0] = arg;
        c.nargs = 1;
    }
    c.name = out;
    return c;
}

static void make_data(void)
{
    schema = bids_schema();
    make_bid_batches(schema, batches, NBATCHES, CAP);
}

/* Push `total` rows through op, restamping event time (1 ms per row) and
 * advancing the watermark to the batch's last time when `wm`. */
static double run(const char *label, struct velo_op *op, uint64_t total,
                  int wm)
{
    sink_rows = 0;
    int64_t t = 0;
    double start = now_s();
    uint64_t done = 0;
    for (size_t i = 0; done < total; i++) {
        struct velo_batch *b = batches[i % NBATCHES];
        b->sel = NULL;
        int64_t *ts = b->cols[5].v.i64;
        for (size_t r = 0; r < CAP; r++) {
            ts[r] = t;
            t += 1000;
        }
        if (velo_op_push(op, b) != VELO_OK) {
            fprintf(stderr, "%s: push failed\n", label);
            exit(1);
        }
        if (wm) {
            velo_op_watermark(op, t);
        }
        done += CAP;
    }
    velo_op_finish(op);
    double el = now_s() - start;
    printf("%-8s %6.2f M rows/s  (%llu rows in %.3f s, %llu out, state "
           "%zu bytes)\n",
           label, (double)done / el / 1e6, (unsigned long long)done, el,
           (unsigned long long)sink_rows, op->stats.state_bytes);
    return (double)done / el;
}

/* OVER (PARTITION BY auction ORDER BY _timestamp) with one call. */
static void over_case(const struct velo_exec_env *env, uint64_t total,
                      const char *label, int fn, const char *aggname,
                      int frame, int64_t rows)
{
    struct velo_over_call *c = calloc(1, sizeof(*c));
    c->fn = fn;
    c->name = "w";
    c->frame = frame;
    c->frame_rows = rows;
    c->type = velo_type_of(VELO_TYPE_BIGINT);
    if (aggname != NULL) {
        struct velo_agg_call a = agg(aggname, col(2), "w");
        c->agg = a.agg;
        c->arg = a.args[0];
    }
    struct velo_expr *part[1] = {col(0)};
    struct velo_over_spec spec = {.partition = part,
                                  .npartition = 1,
                                  .order = {.expr = col(5)},
                                  .order_is_time = 1,
                                  .calls = c,
                                  .ncalls = 1};
    struct velo_op *o = velo_op_over(env, schema, &spec);
    if (o == NULL) {
        fprintf(stderr, "%s: cannot build\n", label);
        exit(1);
    }
    struct velo_op *k =
        velo_op_callback(env, o->out_schema, count_rows, NULL, NULL, "count");
    velo_op_connect(o, k);
    run(label, o, total, 1);
    velo_op_destroy(o);
    velo_op_destroy(k);
}

static void over_cases(const struct velo_exec_env *env, uint64_t total)
{
    over_case(env, total, "over-rn", VELO_WF_ROW_NUMBER, NULL, 0, 0);
    over_case(env, total, "over-sum", VELO_WF_AGG, "SUM",
              VELO_FRAME_UNBOUNDED, 0);
    over_case(env, total, "over-s3", VELO_WF_AGG, "SUM", VELO_FRAME_ROWS, 2);
    over_case(env, total, "over-s300", VELO_WF_AGG, "SUM", VELO_FRAME_ROWS,
              300);

    /* q18: the last bid per (bidder, auction). */
    struct velo_expr *dk[2] = {col(1), col(0)};
    struct velo_op *d = velo_op_dedup(env, schema, dk, 2, 1, 0);
    struct velo_op *k =
        velo_op_callback(env, d->out_schema, count_rows, NULL, NULL, "count");
    velo_op_connect(d, k);
    run("dedup", d, total, 1);
    velo_op_destroy(d);
    velo_op_destroy(k);

    /* q19: the top 10 bids by price per auction. */
    struct velo_expr *tk[1] = {col(0)};
    struct velo_sort_key ts[1] = {{.expr = col(2), .desc = 1}};
    struct velo_op *t = velo_op_topn(env, schema, tk, 1, ts, 1, 10, "rank",
                                     VELO_EMIT_CHANGES);
    k = velo_op_callback(env, t->out_schema, count_rows, NULL, NULL, "count");
    velo_op_connect(t, k);
    run("topn", t, total, 1);
    velo_op_destroy(t);
    velo_op_destroy(k);
}

int main(int argc, char **argv)
{
    uint64_t total = (uint64_t)(argc > 1 ? atof(argv[1]) : 20) * 1000000;
    funcs = velo_funcs_create();
    make_data();
    struct velo_exec_env env;
    micro_env(&env, funcs, CAP);

    /* q2: filter */
    struct velo_op *f = velo_op_filter(
        &env, schema, call2("=", call2("%", col(0), lit_int(123)), lit_int(0)));
    struct velo_op *k = velo_op_callback(&env, f->out_schema, count_rows, NULL,
                                         NULL, "count");
    velo_op_connect(f, k);
    run("filter", f, total, 0);
    velo_op_destroy(f);
    velo_op_destroy(k);

    /* q1: project */
    struct velo_expr *ex[3] = {col(0), call2("*", col(2), lit_dec(908, 3, 3)),
                               col(5)};
    const char *names[3] = {"auction", "price", "_timestamp"};
    uint8_t hidden[3] = {0, 0, 1};
    struct velo_op *p = velo_op_project(&env, schema, ex, names, hidden, 3);
    k = velo_op_callback(&env, p->out_schema, count_rows, NULL, NULL, "count");
    velo_op_connect(p, k);
    run("project", p, total, 0);
    velo_op_destroy(p);
    velo_op_destroy(k);

    /* q5: tumbling 10 s count/sum/avg per auction */
    struct velo_expr *keys[1] = {col(0)};
    const char *kn[1] = {"auction"};
    struct velo_agg_call calls[3] = {agg("COUNT", NULL, "n"),
                                     agg("SUM", col(2), "total"),
                                     agg("AVG", col(2), "avg")};
    struct velo_window_spec w = {.kind = VELO_WINDOW_TUMBLING,
                                 .size_us = INT64_C(10000000)};
    struct velo_op *a = velo_op_aggregate(&env, schema, keys, kn, 1, calls, 3,
                                          &w, VELO_EMIT_FINAL);
    k = velo_op_callback(&env, a->out_schema, count_rows, NULL, NULL, "count");
    velo_op_connect(a, k);
    run("q5", a, total, 1);
    velo_op_destroy(a);
    velo_op_destroy(k);

    /* q5 with EMIT CHANGES (a row out per row in) */
    struct velo_expr *keys2[1] = {col(0)};
    struct velo_agg_call calls2[3] = {agg("COUNT", NULL, "n"),
                                      agg("SUM", col(2), "total"),
                                      agg("AVG", col(2), "avg")};
    a = velo_op_aggregate(&env, schema, keys2, kn, 1, calls2, 3, &w,
                          VELO_EMIT_CHANGES);
    k = velo_op_callback(&env, a->out_schema, count_rows, NULL, NULL, "count");
    velo_op_connect(a, k);
    run("q5-chg", a, total, 1);
    velo_op_destroy(a);
    velo_op_destroy(k);

    /* q7: tumbling 10 s max(price), one group per window */
    struct velo_agg_call c7 = agg("MAX", col(2), "maxprice");
    a = velo_op_aggregate(&env, schema, NULL, NULL, 0, &c7, 1, &w,
                          VELO_EMIT_FINAL);
    k = velo_op_callback(&env, a->out_schema, count_rows, NULL, NULL, "count");
    velo_op_connect(a, k);
    run("q7", a, total, 1);
    velo_op_destroy(a);
    velo_op_destroy(k);

    /* Row windows (op-over.c), dedup and top-N (op-dedup.c, op-topn.c). */
    over_cases(&env, total);

    for (int b = 0; b < NBATCHES; b++) {
        velo_batch_destroy(batches[b]);
    }
    velo_schema_destroy(schema);
    velo_funcs_destroy(funcs);
    return 0;
}
