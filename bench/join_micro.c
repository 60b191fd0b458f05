/*
 * Join micro-benchmark: input rows per second of the join operators alone,
 * over synthetic Nexmark-like batches already in memory (no decoding):
 *
 *   lookup   q7-like stream-table join: bids JOIN auctions ON auction = id,
 *            a table of 100,000 auctions loaded through port 1 first
 *   window   q8-like window join: two bid streams ON auction, TUMBLING 10 s
 *   interval two bid streams ON auction, right within -5 s..+5 s of left
 *
 * Bids: auction BIGINT (10,000 distinct), bidder BIGINT, price BIGINT,
 * channel STRING (100 distinct), url STRING (~70 bytes), one millisecond
 * of event time per bid on each input. The watermark follows the data
 * after every batch.
 *
 * Build: cmake --build <dir> --target join_micro (bench/CMakeLists.txt).
 * Run:   <dir>/bench/join_micro [million rows per case, default 10]
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
#define TABLE_ROWS 100000

static struct velo_funcs *funcs;
static struct velo_schema *bids, *auctions;
static struct velo_batch *batches[NBATCHES];

static struct velo_expr *col(const struct velo_schema *s, int i)
{
    struct velo_expr *e = velo_expr_new(VELO_EXPR_COLUMN, s->fields[i].type, 0);
    e->u.column = i;
    return e;
}

static void make_data(void)
{
    bids = bids_schema();
    auctions = velo_schema_create(4);
    velo_schema_set(auctions, 0, "id", velo_type_of(VELO_TYPE_BIGINT), 0, 0);
    velo_schema_set(auctions, 1, "seller", velo_type_of(VELO_TYPE_BIGINT), 0,
                    0);
    velo_schema_set(auctions, 2, "category", velo_type_of(VELO_TYPE_BIGINT), 0,
                    0);
    velo_schema_set(auctions, 3, "item", velo_type_of(VELO_TYPE_STRING), 0, 0);
    make_bid_batches(bids, batches, NBATCHES, CAP);
}

/* CPU time of this process: the machine the figures come from may be
 * shared, and wall time then measures the neighbours too. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void load_table(struct velo_op *op)
{
    struct velo_batch *t = velo_batch_create(auctions, CAP);
    char item[32];
    for (int64_t id = 1000; id < 1000 + TABLE_ROWS;) {
        velo_batch_reset(t);
        for (size_t r = 0; r < CAP && id < 1000 + TABLE_ROWS; r++, id++) {
            t->cols[0].v.i64[r] = id;
            t->cols[1].v.i64[r] = id % 7919;
            t->cols[2].v.i64[r] = id % 31;
            int n = snprintf(item, sizeof(item), "item-%lld", (long long)id);
            t->cols[3].v.str[r].ptr =
                velo_arena_strdup(t->arena, item, (size_t)n);
            t->cols[3].v.str[r].len = (size_t)n;
            t->nrows = r + 1;
        }
        if (velo_op_push(velo_op_port(op, 1), t) != VELO_OK) {
            fprintf(stderr, "table load failed\n");
            exit(1);
        }
    }
    velo_op_finish(velo_op_port(op, 1));
    velo_batch_destroy(t);
}

/* Push `total` rows per input; with two inputs the right one reads the
 * batches from another offset so the keys differ. */
static void run(const char *label, struct velo_op *op, uint64_t total, int two)
{
    sink_rows = 0;
    int64_t t = 0;
    uint64_t done = 0, in = 0;
    double start = now_s(), cpu0 = cpu_s();
    for (size_t i = 0; done < total; i++) {
        int64_t t0 = t;
        for (int side = 0; side < (two ? 2 : 1); side++) {
            struct velo_batch *b = batches[(i + (size_t)side * 17) % NBATCHES];
            b->sel = NULL;
            int64_t *ts = b->cols[5].v.i64;
            t = t0;
            for (size_t r = 0; r < CAP; r++) {
                ts[r] = t;
                t += 1000;
            }
            if (velo_op_push(velo_op_port(op, (size_t)side), b) != VELO_OK) {
                fprintf(stderr, "%s: push failed\n", label);
                exit(1);
            }
            in += CAP;
        }
        velo_op_watermark(velo_op_port(op, 0), t);
        if (two) {
            velo_op_watermark(velo_op_port(op, 1), t);
        }
        done += CAP;
    }
    velo_op_finish(velo_op_port(op, 0));
    if (two) {
        velo_op_finish(velo_op_port(op, 1));
    }
    double el = now_s() - start, cpu = cpu_s() - cpu0;
    printf("%-8s %6.2f M input rows/s of CPU time, %6.2f of wall time  "
           "(%llu rows, %.3f s CPU, %llu out, state %zu bytes)\n",
           label, (double)in / cpu / 1e6, (double)in / el / 1e6,
           (unsigned long long)in, cpu, (unsigned long long)sink_rows,
           op->stats.state_bytes);
}

static struct velo_join_keys keys_of(const struct velo_schema *r, int type)
{
    static struct velo_expr *lk[1], *rk[1];
    lk[0] = col(bids, 0);
    rk[0] = col(r, 0);
    struct velo_join_keys k = {lk, rk, 1, NULL, type};
    return k;
}

int main(int argc, char **argv)
{
    uint64_t total = (uint64_t)(argc > 1 ? atof(argv[1]) : 10) * 1000000;
    funcs = velo_funcs_create();
    make_data();
    struct velo_exec_env env;
    micro_env(&env, funcs, CAP);

    struct velo_join_keys k = keys_of(auctions, VELO_JOIN_INNER);
    struct velo_op *j = velo_op_lookup_join(&env, bids, auctions, &k, NULL);
    struct velo_op *c =
        velo_op_callback(&env, j->out_schema, count_rows, NULL, NULL, "n");
    velo_op_connect(j, c);
    load_table(j);
    run("lookup", j, total, 0);
    velo_op_destroy(j);
    velo_op_destroy(c);

    k = keys_of(bids, VELO_JOIN_INNER);
    struct velo_window_spec w = {.kind = VELO_WINDOW_TUMBLING,
                                 .size_us = INT64_C(10000000)};
    j = velo_op_window_join(&env, bids, bids, &k, &w, NULL);
    c = velo_op_callback(&env, j->out_schema, count_rows, NULL, NULL, "n");
    velo_op_connect(j, c);
    run("window", j, total, 1);
    velo_op_destroy(j);
    velo_op_destroy(c);

    k = keys_of(bids, VELO_JOIN_INNER);
    j = velo_op_interval_join(&env, bids, bids, &k, NULL, NULL,
                              -INT64_C(5000000), INT64_C(5000000), 0);
    c = velo_op_callback(&env, j->out_schema, count_rows, NULL, NULL, "n");
    velo_op_connect(j, c);
    run("interval", j, total, 1);
    velo_op_destroy(j);
    velo_op_destroy(c);

    for (int b = 0; b < NBATCHES; b++) {
        velo_batch_destroy(batches[b]);
    }
    velo_schema_destroy(bids);
    velo_schema_destroy(auctions);
    velo_funcs_destroy(funcs);
    return 0;
}
