/*
 * Operators: Aggregate (keys, no keys, tumbling windows closing on the
 * watermark, late rows, EMIT CHANGES and FINAL, every aggregate, FILTER,
 * COUNT DISTINCT, HyperLogLog accuracy, memory released as windows
 * close), Sort and top-N, Limit, Table upserts, Tee, Project, and failed
 * rows reported with their origins.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "exectest.h"
#include "testutil.h"

static struct velo_funcs *funcs;

#define SEC INT64_C(1000000)

/* An aggregate call as the binder builds it. */
static struct velo_agg_call mkagg(const struct velo_schema *s,
                                  const char *name, const char *arg,
                                  const char *arg2, const char *filter,
                                  int distinct, const char *out)
{
    return xagg(funcs, s, name, arg, arg2, filter, distinct, out);
}

/* Append a row "k|v|t" to the rig's batch: sym (STRING), price (BIGINT),
 * t seconds (the hidden _timestamp). NULL price when v < -999. */
static void add_trade(struct xrig *r, const char *sym, int64_t price,
                      int64_t t_sec, int64_t line)
{
    struct velo_batch *b = r->b;
    size_t row = b->nrows++;
    if (sym != NULL) {
        xset_str(b, 0, row, sym);
    } else {
        xset_null(b, 0, row);
    }
    if (price < -999) {
        xset_null(b, 1, row);
    } else {
        xset_i64(b, 1, row, price);
    }
    xset_i64(b, 2, row, t_sec * SEC);
    b->origin[row].source = 0;
    b->origin[row].line = line;
    b->origin[row].position = line * 10;
}

static int push_reset(struct xrig *r)
{
    int rc = velo_op_push(r->op, r->b);
    velo_batch_reset(r->b);
    return rc;
}

static void trades_rig(struct xrig *r, size_t cap, const char **aggnames,
                       const char **aggargs, size_t naggs, int with_key,
                       int64_t window_sec, int emit)
{
    memset(r, 0, sizeof(*r));
    xenv_init(&r->x, funcs, cap);
    r->in = xschema("sym:STRING;price:BIGINT;_timestamp:TIMESTAMP");
    struct velo_expr *keys[1];
    const char *knames[1] = {"sym"};
    if (with_key) {
        keys[0] = xparse(funcs, r->in, "$0");
    }
    struct velo_agg_call calls[16];
    for (size_t i = 0; i < naggs; i++) {
        calls[i] = mkagg(r->in, aggnames[i], aggargs[i], NULL, NULL, 0,
                         aggnames[i]);
    }
    struct velo_window_spec w = {.kind = VELO_WINDOW_TUMBLING,
                                 .size_us = window_sec * SEC};
    r->op = velo_op_aggregate(&r->x.env, r->in, with_key ? keys : NULL,
                              with_key ? knames : NULL, with_key ? 1 : 0,
                              calls, naggs, window_sec > 0 ? &w : NULL, emit);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r->op);
    xrig_attach(r);
}

static void test_aggregate_keys_final(void)
{
    struct xrig r;
    const char *names[] = {"COUNT", "SUM", "AVG", "MIN", "MAX"};
    const char *args[] = {NULL, "$1", "$1", "$1", "$1"};
    trades_rig(&r, 4, names, args, 5, 1, 0, VELO_EMIT_FINAL);
    CU_ASSERT_EQUAL(r.op->out_schema->n, 6);
    CU_ASSERT_STRING_EQUAL(r.op->out_schema->fields[0].name, "sym");
    CU_ASSERT_EQUAL(r.op->out_schema->fields[2].type.id, VELO_TYPE_BIGINT);
    CU_ASSERT_EQUAL(r.op->out_schema->fields[3].type.id, VELO_TYPE_DOUBLE);
    /* Batches of 4 rows; keys repeat across batches; a NULL key groups. */
    const char *syms[] = {"AAA", "BBB", "AAA", NULL, "CCC", "AAA", NULL,
                          "BBB", "DDD"};
    int64_t prices[] = {10, 20, 30, 5, 7, -1000, 6, 40, 1};
    for (size_t i = 0; i < 9; i++) {
        add_trade(&r, syms[i], prices[i], 0, (int64_t)i + 1);
        if (r.b->nrows == 4) {
            CU_ASSERT_EQUAL(push_reset(&r), VELO_OK);
        }
    }
    CU_ASSERT_EQUAL(push_reset(&r), VELO_OK);
    CU_ASSERT_EQUAL(r.out.rows, 0); /* FINAL: nothing before the end */
    CU_ASSERT_EQUAL(r.op->stats.state_rows, 5);
    CU_ASSERT_EQUAL(velo_op_finish(r.op), VELO_OK);
    CU_ASSERT_STRING_EQUAL(xsink_text(&r.out),
                           "AAA|3|40|20|10|30\n"
                           "BBB|2|60|30|20|40\n"
                           "NULL|2|11|5.5|5|6\n"
                           "CCC|1|7|7|7|7\n"
                           "DDD|1|1|1|1|1\n");
    CU_ASSERT_EQUAL(r.out.finished, 1);
    CU_ASSERT_EQUAL(r.op->stats.rows_in, 9);
    CU_ASSERT_EQUAL(r.op->stats.rows_out, 5);
    CU_ASSERT_EQUAL(r.op->stats.state_rows, 0);
    char buf[512];
    r.op->ops->explain(r.op, buf, sizeof(buf));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "keys: sym"));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "emits FINAL rows when the input "
                                       "ends"));
    xrig_free(&r);
}

static void test_aggregate_no_keys(void)
{
    struct xrig r;
    const char *names[] = {"COUNT", "SUM", "MAX"};
    const char *args[] = {NULL, "$1", "$0"};
    /* No input at all: FINAL still emits the one group (SQL). */
    trades_rig(&r, 8, names, args, 3, 0, 0, VELO_EMIT_FINAL);
    CU_ASSERT_EQUAL(velo_op_finish(r.op), VELO_OK);
    CU_ASSERT_STRING_EQUAL(xsink_text(&r.out), "0|NULL|NULL\n");
    xrig_free(&r);

    trades_rig(&r, 8, names, args, 3, 0, 0, VELO_EMIT_FINAL);
    add_trade(&r, "x", 5, 0, 1);
    add_trade(&r, "zz", 6, 0, 2);
    add_trade(&r, "y", -1000, 0, 3);
    push_reset(&r);
    velo_op_finish(r.op);
    CU_ASSERT_STRING_EQUAL(xsink_text(&r.out), "3|11|zz\n");
    xrig_free(&r);

    /* CHANGES without keys: the one group after every row. */
    trades_rig(&r, 8, names, args, 3, 0, 0, VELO_EMIT_CHANGES);
    add_trade(&r, "b", 5, 0, 1);
    add_trade(&r, "a", 6, 0, 2);
    push_reset(&r);
    CU_ASSERT_STRING_EQUAL(xsink_text(&r.out),
                           "1|5|b +I\n"
                           "2|11|b +U\n");
    velo_op_finish(r.op);
    CU_ASSERT_EQUAL(r.out.rows, 2); /* nothing more at the end */
    xrig_free(&r);
}

static void test_emit_changes(void)
{
    struct xrig r;
    const char *names[] = {"SUM", "COUNT"};
    const char *args[] = {"$1", NULL};
    trades_rig(&r, 16, names, args, 2, 1, 0, VELO_EMIT_CHANGES);
    /* a repeats inside one batch: each row shows its own effect. */
    add_trade(&r, "a", 1, 0, 1);
    add_trade(&r, "b", 2, 0, 2);
    add_trade(&r, "a", 3, 0, 3);
    add_trade(&r, "a", 4, 0, 4);
    add_trade(&r, "c", -1000, 0, 5);
    push_reset(&r);
    add_trade(&r, "b", 10, 0, 6);
    push_reset(&r);
    CU_ASSERT_STRING_EQUAL(xsink_text(&r.out),
                           "a|1|1 +I\n"
                           "b|2|1 +I\n"
                           "a|4|2 +U\n"
                           "a|8|3 +U\n"
                           "c|NULL|1 +I\n"
                           "b|12|2 +U\n");
    xrig_free(&r);
}

static void test_windows_watermark_late(void)
{
    struct xrig r;
    const char *names[] = {"COUNT", "SUM"};
    const char *args[] = {NULL, "$1"};
    trades_rig(&r, 8, names, args, 2, 1, 10, VELO_EMIT_FINAL);
    CU_ASSERT_EQUAL(r.op->out_schema->n, 5);
    CU_ASSERT_STRING_EQUAL(r.op->out_schema->fields[0].name,
                           VELO_COL_WINDOW_START);
    CU_ASSERT_EQUAL(r.op->out_schema->fields[0].hidden, 1);
    CU_ASSERT_EQUAL(r.op->out_schema->fields[1].hidden, 1);
    /* The watermark is the highest event time seen, row by row: once the
     * row at 12 s arrives, window [0,10) is complete, so the later rows at
     * 9 s and -1 s are late (counted, reported, dropped) wherever the
     * batch boundaries fall. */
    add_trade(&r, "a", 1, 1, 1);
    add_trade(&r, "b", 2, 3, 2);
    add_trade(&r, "a", 3, 12, 3);
    add_trade(&r, "a", 4, 9, 4);
    add_trade(&r, "b", 5, -1, 5);
    push_reset(&r);
    CU_ASSERT_EQUAL(r.op->stats.rows_late, 2);
    CU_ASSERT_EQUAL(r.x.late, 2);
    CU_ASSERT_EQUAL(r.x.last_late_t, -1 * SEC);
    CU_ASSERT_EQUAL(r.x.last_late_wm, 12 * SEC);
    CU_ASSERT_EQUAL(r.x.last_origin.line, 5);
    /* [0,10) closed at the end of the batch; [10,20) is still open. */
    CU_ASSERT_STRING_EQUAL(xsink_text(&r.out),
                           "1970-01-01T00:00:00.000Z|1970-01-01T00:00:10.000Z"
                           "|a|1|1\n"
                           "1970-01-01T00:00:00.000Z|1970-01-01T00:00:10.000Z"
                           "|b|1|2\n");
    xsink_reset(&r.out);
    CU_ASSERT_EQUAL(r.op->stats.state_rows, 1);
    /* An older watermark from outside does not move time back or emit. */
    CU_ASSERT_EQUAL(velo_op_watermark(r.op, 3 * SEC), VELO_OK);
    CU_ASSERT_EQUAL(r.out.rows, 0);
    /* Another late row in a later batch, then one for the open window. */
    add_trade(&r, "a", 100, 8, 42);
    add_trade(&r, "a", 6, 15, 43);
    push_reset(&r);
    CU_ASSERT_EQUAL(r.op->stats.rows_late, 3);
    CU_ASSERT_EQUAL(r.x.last_late_t, 8 * SEC);
    CU_ASSERT_EQUAL(r.x.last_late_wm, 12 * SEC);
    CU_ASSERT_EQUAL(r.x.last_origin.line, 42);
    CU_ASSERT_EQUAL(r.out.rows, 0);
    /* A watermark from outside closes windows too. */
    CU_ASSERT_EQUAL(velo_op_watermark(r.op, 20 * SEC), VELO_OK);
    CU_ASSERT_STRING_EQUAL(xsink_text(&r.out),
                           "1970-01-01T00:00:10.000Z|1970-01-01T00:00:20.000Z"
                           "|a|2|9\n");
    xsink_reset(&r.out);
    CU_ASSERT_EQUAL(r.op->stats.state_rows, 0);
    /* The end of the input has nothing left to close. */
    CU_ASSERT_EQUAL(velo_op_finish(r.op), VELO_OK);
    CU_ASSERT_EQUAL(r.out.rows, 0);
    char buf[512];
    r.op->ops->explain(r.op, buf, sizeof(buf));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "window: TUMBLING 10 SECONDS on "
                                       "_timestamp"));
    xrig_free(&r);
}

static void test_windows_changes(void)
{
    struct xrig r;
    const char *names[] = {"COUNT"};
    const char *args[] = {NULL};
    trades_rig(&r, 8, names, args, 1, 1, 60, VELO_EMIT_CHANGES);
    add_trade(&r, "a", 1, 1, 1);
    add_trade(&r, "a", 1, 2, 2);
    add_trade(&r, "a", 1, 61, 3);
    add_trade(&r, "a", 1, 5, 4); /* late: 61 s already closed [0,60) */
    push_reset(&r);
    CU_ASSERT_STRING_EQUAL(xsink_text(&r.out),
                           "1970-01-01T00:00:00.000Z|1970-01-01T00:01:00.000Z"
                           "|a|1 +I\n"
                           "1970-01-01T00:00:00.000Z|1970-01-01T00:01:00.000Z"
                           "|a|2 +U\n"
                           "1970-01-01T00:01:00.000Z|1970-01-01T00:02:00.000Z"
                           "|a|1 +I\n");
    CU_ASSERT_EQUAL(r.op->stats.rows_late, 1);
    /* Closing a window in CHANGES mode emits nothing more; its state is
     * released. */
    CU_ASSERT_EQUAL(r.op->stats.state_rows, 1);
    xsink_reset(&r.out);
    velo_op_watermark(r.op, 120 * SEC);
    CU_ASSERT_EQUAL(r.out.rows, 0);
    CU_ASSERT_EQUAL(r.op->stats.state_rows, 0);
    xrig_free(&r);
}

/* Event time from an expression instead of _timestamp. */
static void test_window_time_expr(void)
{
    struct xenv x;
    xenv_init(&x, funcs, 8);
    struct velo_schema *s = xschema("t:BIGINT;v:BIGINT");
    struct velo_agg_call c = mkagg(s, "SUM", "$1", NULL, NULL, 0, "total");
    struct velo_window_spec w = {
        .kind = VELO_WINDOW_TUMBLING, .size_us = 60 * SEC,
        .time = xparse(funcs, s, "(CAST $0 TIMESTAMP)")};
    struct velo_op *op = velo_op_aggregate(&x.env, s, NULL, NULL, 0, &c, 1,
                                           &w, VELO_EMIT_FINAL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    struct xsink out = {0};
    struct velo_op *k =
        velo_op_callback(&x.env, op->out_schema, xsink_fn, NULL, &out, "t");
    velo_op_connect(op, k);
    struct velo_batch *b = velo_batch_create(s, 8);
    int64_t ts_ms[] = {1000, 59999, 60000, 61000};
    for (size_t i = 0; i < 4; i++) {
        xset_i64(b, 0, i, ts_ms[i]);
        xset_i64(b, 1, i, (int64_t)i + 1);
    }
    xset_null(b, 0, 3); /* no event time: a failed row */
    b->nrows = 4;
    velo_op_push(op, b);
    CU_ASSERT_EQUAL(op->stats.rows_failed, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(x.last_msg, "event time is NULL"));
    velo_op_finish(op);
    CU_ASSERT_STRING_EQUAL(xsink_text(&out),
                           "1970-01-01T00:00:00.000Z|1970-01-01T00:01:00.000Z"
                           "|3\n"
                           "1970-01-01T00:01:00.000Z|1970-01-01T00:02:00.000Z"
                           "|3\n");
    velo_op_destroy(op);
    velo_op_destroy(k);
    velo_batch_destroy(b);
    velo_schema_destroy(s);
    free(out.text);
    /* A window without a time column or expression is refused. */
    struct velo_schema *s2 = xschema("v:BIGINT");
    struct velo_agg_call c2 = mkagg(s2, "COUNT", NULL, NULL, NULL, 0, "n");
    struct velo_window_spec w2 = {.kind = VELO_WINDOW_TUMBLING,
                                  .size_us = SEC};
    CU_ASSERT_PTR_NULL(velo_op_aggregate(&x.env, s2, NULL, NULL, 0, &c2, 1,
                                         &w2, VELO_EMIT_FINAL));
    velo_schema_destroy(s2);
}

/* Every aggregate function, with NULLs, FILTER and DISTINCT. */
static void test_every_aggregate(void)
{
    struct xenv x;
    xenv_init(&x, funcs, 8);
    struct velo_schema *s = xschema(
        "g:STRING;i:BIGINT;d:DECIMAL(10,2);f:DOUBLE;s:STRING;t:TIMESTAMP");
    static const struct {
        const char *name, *arg, *arg2, *filter;
        int distinct;
    } specs[] = {
        {"COUNT", NULL, NULL, NULL, 0},
        {"COUNT", "$1", NULL, NULL, 0},
        {"COUNT", "$4", NULL, NULL, 1},
        {"SUM", "$1", NULL, NULL, 0},
        {"SUM", "$2", NULL, NULL, 0},
        {"SUM", "$3", NULL, NULL, 0},
        {"AVG", "$1", NULL, NULL, 0},
        {"AVG", "$2", NULL, NULL, 0},
        {"MIN", "$4", NULL, NULL, 0},
        {"MAX", "$4", NULL, NULL, 0},
        {"MIN", "$5", NULL, NULL, 0},
        {"MAX", "$3", NULL, NULL, 0},
        {"MIN", "$2", NULL, NULL, 0},
        {"STDDEV_SAMP", "$3", NULL, NULL, 0},
        {"STDDEV_POP", "$3", NULL, NULL, 0},
        {"VAR_SAMP", "$3", NULL, NULL, 0},
        {"VAR_POP", "$3", NULL, NULL, 0},
        {"FIRST_VALUE", "$4", NULL, NULL, 0},
        {"LAST_VALUE", "$4", NULL, NULL, 0},
        {"STRING_AGG", "$4", "'-'", NULL, 0},
        {"COLLECT_LIST", "$1", NULL, NULL, 0},
        {"APPROX_COUNT_DISTINCT", "$4", NULL, NULL, 0},
        {"COUNT", NULL, NULL, "(> $1 1L)", 0},
        {"SUM", "$1", NULL, "(<> $4 'x')", 0},
        {"MAX", "$1", NULL, "(= 1 0)", 0},
        {"AVG", "$3", NULL, NULL, 0},
        {"COLLECT_LIST", "$4", NULL, NULL, 0},
    };
    size_t n = sizeof(specs) / sizeof(specs[0]);
    struct velo_agg_call calls[32];
    char names[32][16];
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), "a%zu", i);
        calls[i] = mkagg(s, specs[i].name, specs[i].arg, specs[i].arg2,
                         specs[i].filter, specs[i].distinct, names[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(calls[i].agg);
    }
    struct velo_expr *keys[] = {xparse(funcs, s, "$0")};
    const char *kn[] = {"g"};
    struct velo_op *op = velo_op_aggregate(&x.env, s, keys, kn, 1, calls, n,
                                           NULL, VELO_EMIT_FINAL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    struct xsink out = {0};
    struct velo_op *k =
        velo_op_callback(&x.env, op->out_schema, xsink_fn, NULL, &out, "t");
    velo_op_connect(op, k);
    struct velo_batch *b = velo_batch_create(s, 8);
    /* group g1: 4 rows; group g2: one row of NULLs (except the key). */
    int64_t iv[] = {1, 2, 3, 0};
    int64_t dv[] = {150, 225, 1, 0};
    double fv[] = {2.0, 4.0, 4.0, 0};
    const char *sv[] = {"pear", "apple", "pear", "x"};
    int64_t tv[] = {3, 1, 2, 0};
    for (size_t r = 0; r < 4; r++) {
        xset_str(b, 0, r, "g1");
        xset_i64(b, 1, r, iv[r]);
        xset_i64(b, 2, r, dv[r]);
        xset_f64(b, 3, r, fv[r]);
        xset_str(b, 4, r, sv[r]);
        xset_i64(b, 5, r, tv[r] * SEC);
    }
    /* Row 3: i, d, f, t NULL; s = 'x' */
    xset_null(b, 1, 3);
    xset_null(b, 2, 3);
    xset_null(b, 3, 3);
    xset_null(b, 5, 3);
    xset_str(b, 0, 4, "g2");
    for (size_t c = 1; c < 6; c++) {
        xset_null(b, c, 4);
    }
    b->nrows = 5;
    CU_ASSERT_EQUAL(velo_op_push(op, b), VELO_OK);
    /* Strings must survive the input batch being reused. */
    for (size_t r = 0; r < 5; r++) {
        if (!b->cols[4].nulls[r]) {
            memset((char *)b->cols[4].v.str[r].ptr, '#',
                   b->cols[4].v.str[r].len);
        }
    }
    velo_batch_reset(b);
    CU_ASSERT_EQUAL(velo_op_finish(op), VELO_OK);
    const char *want =
        "g1|4|3|3|6|3.76|10|2|1.253333|apple|x|1970-01-01T00:00:01.000Z|4|"
        "0.01|1.1547005383792515|0.9428090415820634|1.3333333333333333|"
        "0.8888888888888888|pear|x|pear-apple-pear-x|[1,2,3]|3|2|6|NULL|"
        "3.3333333333333335|[\"pear\",\"apple\",\"pear\",\"x\"]\n"
        "g2|1|0|0|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|"
        "NULL|NULL|NULL|NULL|NULL|NULL|NULL|0|0|NULL|NULL|NULL|NULL\n";
    if (strcmp(xsink_text(&out), want) != 0) {
        fprintf(stderr, "got:\n%swant:\n%s", xsink_text(&out), want);
    }
    CU_ASSERT_STRING_EQUAL(xsink_text(&out), want);
    velo_op_destroy(op);
    velo_op_destroy(k);
    velo_batch_destroy(b);
    velo_schema_destroy(s);
    free(out.text);
}

/* COUNT(DISTINCT) exactly, APPROX_COUNT_DISTINCT within 2% on 100k
 * distinct values (each seen twice), for integers and strings. */
static void test_distinct_and_hll(void)
{
    const size_t cap = 1024, distinct = 100000;
    struct xenv x;
    xenv_init(&x, funcs, cap);
    struct velo_schema *s = xschema("v:BIGINT;s:STRING");
    struct velo_agg_call calls[4] = {
        mkagg(s, "COUNT", "$0", NULL, NULL, 1, "exact"),
        mkagg(s, "APPROX_COUNT_DISTINCT", "$0", NULL, NULL, 0, "approx"),
        mkagg(s, "COUNT", "$1", NULL, NULL, 1, "exact_s"),
        mkagg(s, "APPROX_COUNT_DISTINCT", "$1", NULL, NULL, 0, "approx_s"),
    };
    struct velo_op *op = velo_op_aggregate(&x.env, s, NULL, NULL, 0, calls, 4,
                                           NULL, VELO_EMIT_FINAL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    struct xsink out = {0};
    struct velo_op *k =
        velo_op_callback(&x.env, op->out_schema, xsink_fn, NULL, &out, "t");
    velo_op_connect(op, k);
    struct velo_batch *b = velo_batch_create(s, cap);
    for (size_t pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < distinct;) {
            velo_batch_reset(b);
            size_t n = 0;
            for (; n < cap && i < distinct; n++, i++) {
                xset_i64(b, 0, n, (int64_t)(i * 7919 + 13));
                char key[32];
                snprintf(key, sizeof(key), "user-%zu@example.com", i);
                xset_str(b, 1, n, key);
            }
            b->nrows = n;
            velo_op_push(op, b);
        }
    }
    velo_op_finish(op);
    long long exact, approx, exact_s, approx_s;
    CU_ASSERT_EQUAL(sscanf(xsink_text(&out), "%lld|%lld|%lld|%lld", &exact,
                           &approx, &exact_s, &approx_s),
                    4);
    CU_ASSERT_EQUAL(exact, (long long)distinct);
    CU_ASSERT_EQUAL(exact_s, (long long)distinct);
    double e1 = fabs((double)approx - (double)distinct) / (double)distinct;
    double e2 = fabs((double)approx_s - (double)distinct) / (double)distinct;
    fprintf(stderr, "  HLL: %lld (%.2f%%), %lld (%.2f%%)\n", approx,
            e1 * 100, approx_s, e2 * 100);
    CU_ASSERT(e1 < 0.02);
    CU_ASSERT(e2 < 0.02);
    velo_op_destroy(op);
    velo_op_destroy(k);
    free(out.text);

    /* Small sets are exact. */
    struct velo_agg_call c1 =
        mkagg(s, "APPROX_COUNT_DISTINCT", "$0", NULL, NULL, 0, "a");
    op = velo_op_aggregate(&x.env, s, NULL, NULL, 0, &c1, 1, NULL,
                           VELO_EMIT_FINAL);
    struct xsink out2 = {0};
    k = velo_op_callback(&x.env, op->out_schema, xsink_fn, NULL, &out2, "t");
    velo_op_connect(op, k);
    velo_batch_reset(b);
    for (size_t i = 0; i < 200; i++) {
        xset_i64(b, 0, i, (int64_t)(i % 150));
    }
    b->nrows = 200;
    velo_op_push(op, b);
    velo_op_finish(op);
    CU_ASSERT_STRING_EQUAL(xsink_text(&out2), "150\n");
    velo_op_destroy(op);
    velo_op_destroy(k);
    free(out2.text);
    velo_batch_destroy(b);
    velo_schema_destroy(s);
}

/* Memory follows the open windows: 300 windows of 1000 groups each
 * through a moving watermark hold no more than the first few did. */
static void test_window_memory_released(void)
{
    const size_t cap = 1000;
    struct xenv x;
    xenv_init(&x, funcs, cap);
    struct velo_schema *s =
        xschema("k:BIGINT;name:STRING;v:BIGINT;_timestamp:TIMESTAMP");
    struct velo_agg_call calls[3] = {
        mkagg(s, "COUNT", NULL, NULL, NULL, 0, "n"),
        mkagg(s, "MAX", "$1", NULL, NULL, 0, "longest"),
        mkagg(s, "STRING_AGG", "$1", "','", NULL, 0, "names"),
    };
    struct velo_expr *keys[] = {xparse(funcs, s, "$0")};
    const char *kn[] = {"k"};
    struct velo_window_spec w = {.kind = VELO_WINDOW_TUMBLING,
                                 .size_us = SEC};
    struct velo_op *op = velo_op_aggregate(&x.env, s, keys, kn, 1, calls, 3,
                                           &w, VELO_EMIT_FINAL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    size_t emitted = 0;
    struct xsink out = {0};
    struct velo_op *k =
        velo_op_callback(&x.env, op->out_schema, xsink_fn, NULL, &out, "t");
    velo_op_connect(op, k);
    struct velo_batch *b = velo_batch_create(s, cap);
    size_t bytes_after_5 = 0, max_bytes = 0;
    for (int64_t win = 0; win < 300; win++) {
        velo_batch_reset(b);
        for (size_t i = 0; i < cap; i++) {
            xset_i64(b, 0, i, (int64_t)i);
            char name[48];
            snprintf(name, sizeof(name), "name-%zu-%lld-padding-padding",
                     i, (long long)win);
            xset_str(b, 1, i, name);
            xset_i64(b, 2, i, 1);
            xset_i64(b, 3, i, win * SEC + (int64_t)i * 100);
        }
        b->nrows = cap;
        CU_ASSERT_EQUAL(velo_op_push(op, b), VELO_OK);
        CU_ASSERT_EQUAL(op->stats.state_rows, 1000);
        velo_op_watermark(op, (win + 1) * SEC);
        CU_ASSERT_EQUAL(op->stats.state_rows, 0);
        emitted = out.rows;
        xsink_reset(&out);
        CU_ASSERT_EQUAL(emitted, 1000);
        if (op->stats.state_bytes > max_bytes) {
            max_bytes = op->stats.state_bytes;
        }
        if (win == 4) {
            bytes_after_5 = op->stats.state_bytes;
        }
    }
    fprintf(stderr, "  state after 5 windows %zu bytes, max over 300: %zu\n",
            bytes_after_5, max_bytes);
    CU_ASSERT(bytes_after_5 > 0);
    CU_ASSERT(max_bytes <= bytes_after_5 * 2);
    CU_ASSERT(op->stats.state_bytes <= bytes_after_5 * 2);
    velo_op_destroy(op);
    velo_op_destroy(k);
    velo_batch_destroy(b);
    velo_schema_destroy(s);
    free(out.text);
}

static void test_sort_and_topn(void)
{
    struct xenv x;
    xenv_init(&x, funcs, 4);
    struct velo_schema *s = xschema("name:STRING;v:BIGINT");
    const char *names[] = {"e", "b", "d", "a", "c", "b2", "f"};
    int64_t vals[] = {5, 2, -1000, 1, 3, 2, -1000};
    for (int topn = 0; topn < 3; topn++) {
        struct velo_sort_key key = {xparse(funcs, s, "$1"), 1, 1};
        int64_t limit = topn == 0 ? -1 : topn == 1 ? 3 : 2;
        int64_t offset = topn == 2 ? 1 : 0;
        struct velo_op *op = velo_op_sort(&x.env, s, &key, 1, limit, offset);
        CU_ASSERT_PTR_NOT_NULL_FATAL(op);
        struct xsink out = {0};
        struct velo_op *k = velo_op_callback(&x.env, op->out_schema, xsink_fn,
                                             NULL, &out, "t");
        velo_op_connect(op, k);
        struct velo_batch *b = velo_batch_create(s, 4);
        for (size_t i = 0; i < 7; i++) {
            size_t r = b->nrows++;
            xset_str(b, 0, r, names[i]);
            if (vals[i] < -999) {
                xset_null(b, 1, r);
            } else {
                xset_i64(b, 1, r, vals[i]);
            }
            if (b->nrows == 4 || i == 6) {
                velo_op_push(op, b);
                /* Scribble over the batch: the sort kept copies. */
                for (size_t q = 0; q < b->nrows; q++) {
                    memset((char *)b->cols[0].v.str[q].ptr, '#',
                           b->cols[0].v.str[q].len);
                }
                velo_batch_reset(b);
            }
        }
        CU_ASSERT_EQUAL(out.rows, 0);
        velo_op_finish(op);
        /* DESC NULLS FIRST; ties (b, b2) keep arrival order. */
        const char *want = topn == 0   ? "d|NULL\nf|NULL\ne|5\nc|3\nb|2\n"
                                         "b2|2\na|1\n"
                           : topn == 1 ? "d|NULL\nf|NULL\ne|5\n"
                                       : "f|NULL\ne|5\n";
        CU_ASSERT_STRING_EQUAL(xsink_text(&out), want);
        if (topn > 0) {
            CU_ASSERT(op->stats.state_rows == 0);
        }
        char buf[256];
        op->ops->explain(op, buf, sizeof(buf));
        CU_ASSERT_PTR_NOT_NULL(strstr(buf, "by v DESC"));
        velo_op_destroy(op);
        velo_op_destroy(k);
        velo_batch_destroy(b);
        free(out.text);
    }
    /* Ascending on strings, many rows over many batches, top 5 kept. */
    struct velo_sort_key key = {xparse(funcs, s, "(UPPER $0)"), 0, 0};
    struct velo_op *op = velo_op_sort(&x.env, s, &key, 1, 5, 0);
    struct xsink out = {0};
    struct velo_op *k =
        velo_op_callback(&x.env, op->out_schema, xsink_fn, NULL, &out, "t");
    velo_op_connect(op, k);
    struct velo_batch *b = velo_batch_create(s, 4);
    for (int i = 0; i < 4000; i++) {
        char nm[16];
        snprintf(nm, sizeof(nm), "n%05d", (i * 7919) % 4000);
        xset_str(b, 0, b->nrows, nm);
        xset_i64(b, 1, b->nrows, i);
        if (++b->nrows == 4) {
            velo_op_push(op, b);
            velo_batch_reset(b);
        }
    }
    CU_ASSERT_EQUAL(op->stats.state_rows, 5);
    velo_op_finish(op);
    CU_ASSERT_STRING_EQUAL(xsink_text(&out),
                           "n00000|0\nn00001|1679\nn00002|3358\nn00003|1037\n"
                           "n00004|2716\n");
    velo_op_destroy(op);
    velo_op_destroy(k);
    velo_batch_destroy(b);
    free(out.text);
    velo_schema_destroy(s);
}

/* A changelog through Sort keeps its marks. */
static void test_sort_keeps_marks(void)
{
    struct xenv x;
    xenv_init(&x, funcs, 4);
    struct velo_schema *s = xschema("v:BIGINT");
    struct velo_sort_key key = {xparse(funcs, s, "$0"), 0, 0};
    struct velo_op *op = velo_op_sort(&x.env, s, &key, 1, -1, 0);
    struct xsink out = {0};
    struct velo_op *k =
        velo_op_callback(&x.env, op->out_schema, xsink_fn, NULL, &out, "t");
    velo_op_connect(op, k);
    struct velo_batch *b = velo_batch_create(s, 4);
    b->op = velo_batch_op_buf(b);
    int64_t v[] = {3, 1, 2};
    uint8_t ops[] = {VELO_ROW_INSERT, VELO_ROW_UPDATE, VELO_ROW_DELETE};
    for (size_t r = 0; r < 3; r++) {
        xset_i64(b, 0, r, v[r]);
        b->op[r] = ops[r];
    }
    b->nrows = 3;
    velo_op_push(op, b);
    velo_op_finish(op);
    CU_ASSERT_STRING_EQUAL(xsink_text(&out), "1 +U\n2 -D\n3 +I\n");
    velo_op_destroy(op);
    velo_op_destroy(k);
    velo_batch_destroy(b);
    velo_schema_destroy(s);
    free(out.text);
}

static void test_limit(void)
{
    struct xenv x;
    xenv_init(&x, funcs, 4);
    struct velo_schema *s = xschema("v:BIGINT");
    struct velo_op *op = velo_op_limit(&x.env, s, 3, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    struct xsink out = {0};
    struct velo_op *k =
        velo_op_callback(&x.env, op->out_schema, xsink_fn, NULL, &out, "t");
    velo_op_connect(op, k);
    struct velo_batch *b = velo_batch_create(s, 4);
    for (int batch = 0; batch < 3; batch++) {
        velo_batch_reset(b);
        for (size_t r = 0; r < 3; r++) {
            xset_i64(b, 0, r, batch * 3 + (int64_t)r);
        }
        b->nrows = 3;
        CU_ASSERT_EQUAL(velo_op_limit_done(op), batch >= 2);
        velo_op_push(op, b);
    }
    CU_ASSERT_STRING_EQUAL(xsink_text(&out), "2\n3\n4\n");
    CU_ASSERT(velo_op_limit_done(op));
    CU_ASSERT(!velo_op_limit_done(k));
    velo_op_destroy(op);
    free(out.text);
    memset(&out, 0, sizeof(out));
    /* No limit, offset only. */
    op = velo_op_limit(&x.env, s, -1, 1);
    velo_op_destroy(k);
    k = velo_op_callback(&x.env, op->out_schema, xsink_fn, NULL, &out, "t");
    velo_op_connect(op, k);
    velo_op_push(op, b);
    CU_ASSERT_STRING_EQUAL(xsink_text(&out), "7\n8\n");
    CU_ASSERT(!velo_op_limit_done(op));
    velo_op_destroy(op);
    velo_op_destroy(k);
    velo_batch_destroy(b);
    velo_schema_destroy(s);
    free(out.text);
}

static void test_table_upserts(void)
{
    struct xenv x;
    xenv_init(&x, funcs, 8);
    struct velo_schema *s = xschema("id:BIGINT;region:STRING;qty:BIGINT");
    int keys[] = {0, 1};
    struct velo_op *op = velo_op_table(&x.env, s, keys, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    struct xsink out = {0};
    struct velo_op *k =
        velo_op_callback(&x.env, op->out_schema, xsink_fn, NULL, &out, "t");
    velo_op_connect(op, k);
    struct velo_batch *b = velo_batch_create(s, 8);
    int64_t ids[] = {1, 2, 1, 1, 2};
    const char *reg[] = {"eu", "eu", "us", "eu", "eu"};
    for (size_t r = 0; r < 5; r++) {
        xset_i64(b, 0, r, ids[r]);
        xset_str(b, 1, r, reg[r]);
        xset_i64(b, 2, r, (int64_t)r * 10);
    }
    b->nrows = 5;
    CU_ASSERT_EQUAL(velo_op_push(op, b), VELO_OK);
    CU_ASSERT_PTR_NULL(b->op); /* the input's marks are put back */
    CU_ASSERT_STRING_EQUAL(xsink_text(&out),
                           "1|eu|0 +I\n2|eu|10 +I\n1|us|20 +I\n1|eu|30 +U\n"
                           "2|eu|40 +U\n");
    CU_ASSERT_EQUAL(op->stats.state_rows, 3);
    CU_ASSERT(op->stats.state_bytes > 0);
    /* Upstream deletes remove keys; a key comes back as INSERT. */
    xsink_reset(&out);
    velo_batch_reset(b);
    b->op = velo_batch_op_buf(b);
    xset_i64(b, 0, 0, 2);
    xset_str(b, 1, 0, "eu");
    xset_i64(b, 2, 0, 0);
    b->op[0] = VELO_ROW_DELETE;
    xset_i64(b, 0, 1, 2);
    xset_str(b, 1, 1, "eu");
    xset_i64(b, 2, 1, 99);
    b->op[1] = VELO_ROW_INSERT;
    b->nrows = 2;
    velo_op_push(op, b);
    CU_ASSERT_STRING_EQUAL(xsink_text(&out), "2|eu|0 -D\n2|eu|99 +I\n");
    CU_ASSERT_EQUAL(op->stats.state_rows, 3);
    b->op = NULL;
    char buf[256];
    op->ops->explain(op, buf, sizeof(buf));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "latest row per key (id, region)"));
    velo_op_destroy(op);
    velo_op_destroy(k);
    velo_batch_destroy(b);
    velo_schema_destroy(s);
    free(out.text);

    /* Many updates of few keys: replaced strings are compacted away. */
    s = xschema("id:BIGINT;payload:STRING");
    int key0[] = {0};
    op = velo_op_table(&x.env, s, key0, 1);
    b = velo_batch_create(s, 8);
    for (int round = 0; round < 3000; round++) {
        velo_batch_reset(b);
        for (size_t r = 0; r < 8; r++) {
            char big[600];
            memset(big, 'a' + (round % 26), sizeof(big) - 1);
            big[sizeof(big) - 1] = '\0';
            xset_i64(b, 0, r, (int64_t)r);
            xset_str(b, 1, r, big);
        }
        b->nrows = 8;
        velo_op_push(op, b);
    }
    fprintf(stderr, "  table state after 24000 upserts of 8 keys: %zu bytes\n",
            op->stats.state_bytes);
    CU_ASSERT(op->stats.state_bytes < 4 * 1024 * 1024);
    CU_ASSERT_EQUAL(op->stats.state_rows, 8);
    velo_op_destroy(op);
    velo_batch_destroy(b);
    velo_schema_destroy(s);
}

static void test_tee_and_project(void)
{
    struct xenv x;
    xenv_init(&x, funcs, 8);
    struct velo_schema *s = xschema("price:BIGINT;name:STRING");
    struct velo_op *tee = velo_op_tee(&x.env, s);
    struct velo_expr *ex[] = {xparse(funcs, s, "$1"),
                              xparse(funcs, s, "(* $0 0.908)"),
                              xparse(funcs, s, "(UPPER $1)")};
    const char *nm[] = {"name", "net", "big"};
    uint8_t hidden[] = {0, 0, 1};
    struct velo_op *proj = velo_op_project(&x.env, s, ex, nm, hidden, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(proj);
    CU_ASSERT_EQUAL(proj->out_schema->fields[1].type.id, VELO_TYPE_DECIMAL);
    CU_ASSERT_EQUAL(proj->out_schema->fields[1].type.scale, 3);
    CU_ASSERT_EQUAL(proj->out_schema->fields[2].hidden, 1);
    struct xsink o1 = {0}, o2 = {0}, o3 = {0};
    struct velo_op *k1 =
        velo_op_callback(&x.env, proj->out_schema, xsink_fn, NULL, &o1, "a");
    struct velo_op *k2 = velo_op_callback(&x.env, s, xsink_fn, NULL, &o2, "b");
    struct velo_op *k3 = velo_op_callback(&x.env, s, xsink_fn, NULL, &o3, "c");
    velo_op_connect(tee, proj);
    velo_op_connect(proj, k1);
    velo_op_connect(tee, k2);
    velo_op_connect(tee, k3);
    struct velo_batch *b = velo_batch_create(s, 8);
    xset_i64(b, 0, 0, 100);
    xset_str(b, 1, 0, "ab");
    xset_i64(b, 0, 1, 5);
    xset_str(b, 1, 1, "cd");
    b->nrows = 2;
    CU_ASSERT_EQUAL(velo_op_push(tee, b), VELO_OK);
    CU_ASSERT_STRING_EQUAL(xsink_text(&o1), "ab|90.800|AB\ncd|4.540|CD\n");
    CU_ASSERT_STRING_EQUAL(xsink_text(&o2), "100|ab\n5|cd\n");
    CU_ASSERT_STRING_EQUAL(xsink_text(&o3), "100|ab\n5|cd\n");
    CU_ASSERT_EQUAL(tee->stats.rows_out, 2);
    char buf[256];
    proj->ops->explain(proj, buf, sizeof(buf));
    CU_ASSERT_STRING_EQUAL(buf, "name, (* $0 0.908) AS net, (UPPER $1) AS "
                                "big");
    velo_op_destroy(tee);
    velo_op_destroy(proj);
    velo_op_destroy(k1);
    velo_op_destroy(k2);
    velo_op_destroy(k3);
    velo_batch_destroy(b);
    velo_schema_destroy(s);
    free(o1.text);
    free(o2.text);
    free(o3.text);
}

/* Project passes column references through without copying. */
static const int64_t *seen_ptr;

static int grab_ptr(void *arg, struct velo_batch *b)
{
    (void)arg;
    seen_ptr = b->cols[0].v.i64;
    return VELO_OK;
}

static void test_project_zero_copy(void)
{
    struct xenv x;
    xenv_init(&x, funcs, 8);
    struct velo_schema *s = xschema("a:BIGINT;b:BIGINT");
    struct velo_expr *ex[] = {xparse(funcs, s, "$1")};
    const char *nm[] = {"b"};
    struct velo_op *proj = velo_op_project(&x.env, s, ex, nm, NULL, 1);
    struct velo_op *k =
        velo_op_callback(&x.env, proj->out_schema, grab_ptr, NULL, NULL, "t");
    velo_op_connect(proj, k);
    struct velo_batch *b = velo_batch_create(s, 8);
    xset_i64(b, 0, 0, 1);
    xset_i64(b, 1, 0, 2);
    b->nrows = 1;
    velo_op_push(proj, b);
    CU_ASSERT(seen_ptr == b->cols[1].v.i64);
    velo_op_destroy(proj);
    velo_op_destroy(k);
    velo_batch_destroy(b);
    velo_schema_destroy(s);
}

/* Rows that fail evaluation are dropped and reported with their origin
 * (source, line, position) and message; the rest go on. */
static void test_failed_rows_reported(void)
{
    struct xenv x;
    xenv_init(&x, funcs, 8);
    struct velo_schema *s = xschema("a:BIGINT;b:BIGINT;t:STRING");
    struct velo_expr *ex[] = {xparse(funcs, s, "(/ $0 $1)"),
                              xparse(funcs, s, "(CAST $2 BIGINT)")};
    ex[0]->text = realloc(ex[0]->text, 16);
    strcpy(ex[0]->text, "a / b");
    const char *nm[] = {"q", "n"};
    struct velo_op *proj = velo_op_project(&x.env, s, ex, nm, NULL, 2);
    struct xsink out = {0};
    struct velo_op *k =
        velo_op_callback(&x.env, proj->out_schema, xsink_fn, NULL, &out, "t");
    velo_op_connect(proj, k);
    struct velo_batch *b = velo_batch_create(s, 8);
    int64_t av[] = {10, 20, 30, 40};
    int64_t bv[] = {2, 0, 3, 4};
    const char *tv[] = {"1", "2", "x3", "4"};
    for (size_t r = 0; r < 4; r++) {
        xset_i64(b, 0, r, av[r]);
        xset_i64(b, 1, r, bv[r]);
        xset_str(b, 2, r, tv[r]);
        b->origin[r].source = 3;
        b->origin[r].line = (int64_t)r + 100;
        b->origin[r].position = (int64_t)r * 50;
    }
    b->nrows = 4;
    CU_ASSERT_EQUAL(velo_op_push(proj, b), VELO_OK);
    CU_ASSERT_STRING_EQUAL(xsink_text(&out), "5|1\n10|4\n");
    CU_ASSERT_EQUAL(proj->stats.rows_failed, 2);
    CU_ASSERT_EQUAL(x.errors, 2);
    CU_ASSERT_EQUAL(x.last_origin.source, 3);
    CU_ASSERT_EQUAL(x.last_origin.line, 102);
    CU_ASSERT_EQUAL(x.last_origin.position, 100);
    CU_ASSERT_EQUAL(x.last_code, VELO_EVAL_CAST);
    CU_ASSERT_STRING_EQUAL(x.last_msg, "cannot cast 'x3' to BIGINT in "
                                       "(CAST $2 BIGINT)");
    /* The next batch starts clean. */
    xsink_reset(&out);
    b->cols[1].v.i64[1] = 5;
    b->cols[2].v.str[2].ptr = "3";
    b->cols[2].v.str[2].len = 1;
    velo_op_push(proj, b);
    CU_ASSERT_STRING_EQUAL(xsink_text(&out), "5|1\n4|2\n10|3\n10|4\n");
    CU_ASSERT_EQUAL(x.errors, 2);

    /* Filters and aggregates report the same way. */
    struct velo_op *flt = velo_op_filter(&x.env, s,
                                         xparse(funcs, s, "(> (/ $0 $1) 1)"));
    b->cols[1].v.i64[1] = 0;
    x.errors = 0;
    velo_op_push(flt, b);
    CU_ASSERT_EQUAL(flt->stats.rows_failed, 1);
    CU_ASSERT_EQUAL(x.errors, 1);
    CU_ASSERT_EQUAL(x.last_origin.line, 101);
    CU_ASSERT_EQUAL(x.last_code, VELO_EVAL_DIV_ZERO);
    /* The filter narrowed b's selection in place (its parent would put
     * it back); start from all rows again. */
    CU_ASSERT_PTR_NOT_NULL(b->sel);
    b->sel = NULL;
    struct velo_agg_call c = mkagg(s, "SUM", "(/ $0 $1)", NULL, NULL, 0, "s");
    struct velo_op *agg = velo_op_aggregate(&x.env, s, NULL, NULL, 0, &c, 1,
                                            NULL, VELO_EMIT_FINAL);
    struct xsink out2 = {0};
    struct velo_op *k2 =
        velo_op_callback(&x.env, agg->out_schema, xsink_fn, NULL, &out2, "t");
    velo_op_connect(agg, k2);
    x.errors = 0;
    velo_op_push(agg, b);
    velo_op_finish(agg);
    CU_ASSERT_EQUAL(agg->stats.rows_failed, 1);
    CU_ASSERT_EQUAL(x.errors, 1);
    CU_ASSERT_STRING_EQUAL(xsink_text(&out2), "25\n");
    velo_op_destroy(agg);
    velo_op_destroy(k2);
    velo_op_destroy(flt);
    velo_op_destroy(proj);
    velo_op_destroy(k);
    velo_batch_destroy(b);
    velo_schema_destroy(s);
    free(out.text);
    free(out2.text);
}

/* Many groups: the table grows past its first sizes and keeps every
 * group apart, strings and NULL keys included. */
static void test_many_groups(void)
{
    const size_t cap = 1024, groups = 50000;
    struct xenv x;
    xenv_init(&x, funcs, cap);
    struct velo_schema *s = xschema("k:BIGINT;name:STRING;v:BIGINT");
    struct velo_agg_call calls[2] = {
        mkagg(s, "SUM", "$2", NULL, NULL, 0, "s"),
        mkagg(s, "COUNT", NULL, NULL, NULL, 0, "n"),
    };
    struct velo_expr *keys[] = {xparse(funcs, s, "$0"),
                                xparse(funcs, s, "$1")};
    const char *kn[] = {"k", "name"};
    struct velo_op *op = velo_op_aggregate(&x.env, s, keys, kn, 2, calls, 2,
                                           NULL, VELO_EMIT_FINAL);
    struct xsink out = {0};
    struct velo_op *k =
        velo_op_callback(&x.env, op->out_schema, xsink_fn, NULL, &out, "t");
    velo_op_connect(op, k);
    struct velo_batch *b = velo_batch_create(s, cap);
    for (size_t rep = 0; rep < 3; rep++) {
        for (size_t i = 0; i < groups;) {
            velo_batch_reset(b);
            size_t n = 0;
            for (; n < cap && i < groups; n++, i++) {
                xset_i64(b, 0, n, (int64_t)(i / 2));
                char nm[24];
                snprintf(nm, sizeof(nm), "n%zu", i % 2);
                if (i % 1000 == 999) {
                    xset_null(b, 1, n);
                } else {
                    xset_str(b, 1, n, nm);
                }
                xset_i64(b, 2, n, (int64_t)i);
            }
            b->nrows = n;
            velo_op_push(op, b);
        }
    }
    CU_ASSERT_EQUAL(op->stats.state_rows, groups);
    velo_op_finish(op);
    CU_ASSERT_EQUAL(out.rows, groups);
    /* Every group saw 3 rows of value i. */
    int ok = 1;
    const char *p = xsink_text(&out);
    for (size_t i = 0; i < groups && ok; i++) {
        long long kk, sum, cnt;
        char nm[32];
        if (sscanf(p, "%lld|%31[^|]|%lld|%lld", &kk, nm, &sum, &cnt) != 4) {
            ok = 0;
            break;
        }
        ok &= cnt == 3 && sum == (long long)i * 3 && kk == (long long)i / 2;
        p = strchr(p, '\n') + 1;
    }
    CU_ASSERT(ok);
    velo_op_destroy(op);
    velo_op_destroy(k);
    velo_batch_destroy(b);
    velo_schema_destroy(s);
    free(out.text);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 1;
    }
    funcs = velo_funcs_create();
    CU_pSuite s = CU_add_suite("operators", NULL, NULL);
    CU_add_test(s, "aggregate with keys, FINAL", test_aggregate_keys_final);
    CU_add_test(s, "aggregate without keys", test_aggregate_no_keys);
    CU_add_test(s, "EMIT CHANGES sequence", test_emit_changes);
    CU_add_test(s, "windows close on the watermark; late rows",
                test_windows_watermark_late);
    CU_add_test(s, "windows with EMIT CHANGES", test_windows_changes);
    CU_add_test(s, "window on a time expression", test_window_time_expr);
    CU_add_test(s, "every aggregate function", test_every_aggregate);
    CU_add_test(s, "COUNT DISTINCT and HyperLogLog", test_distinct_and_hll);
    CU_add_test(s, "memory released when windows close",
                test_window_memory_released);
    CU_add_test(s, "many groups", test_many_groups);
    CU_add_test(s, "sort and top-N", test_sort_and_topn);
    CU_add_test(s, "sort keeps changelog marks", test_sort_keeps_marks);
    CU_add_test(s, "limit", test_limit);
    CU_add_test(s, "table upserts", test_table_upserts);
    CU_add_test(s, "tee fan-out and project", test_tee_and_project);
    CU_add_test(s, "project passes columns through", test_project_zero_copy);
    CU_add_test(s, "failed rows reported with origins",
                test_failed_rows_reported);
    int rc = tu_run_all();
    velo_funcs_destroy(funcs);
    return rc;
}
