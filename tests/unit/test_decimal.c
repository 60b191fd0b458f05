/*
 * Exact decimals: parsing and formatting, rescaling with HALF_EVEN,
 * arithmetic that reports overflow instead of wrapping, the result
 * scale rules, comparison with DOUBLE, and SUM over millions of values
 * checked against an independent 128-bit loop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "exectest.h"
#include "testutil.h"

static struct velo_funcs *funcs;

static void test_parse_format(void)
{
    static const struct {
        const char *text;
        int p, s;
        int ok;
        int64_t v;
    } cases[] = {
        {"123.45", 10, 2, 1, 12345},
        {"-0.05", 10, 2, 1, -5},
        {"  7  ", 10, 0, 1, 7},
        {"+1.5", 10, 1, 1, 15},
        {".5", 10, 1, 1, 5},
        {"1.", 10, 0, 1, 1},
        {"1e3", 10, 0, 1, 1000},
        {"1.5E-1", 10, 2, 1, 15},
        {"0.125", 10, 2, 1, 12},   /* HALF_EVEN: 12.5 -> 12 */
        {"0.135", 10, 2, 1, 14},   /* 13.5 -> 14 */
        {"-0.125", 10, 2, 1, -12}, /* -12.5 -> -12 */
        {"0.1251", 10, 2, 1, 13},  /* past the half: up */
        {"000123", 3, 0, 1, 123},
        {"999999999999999999", 18, 0, 1, INT64_C(999999999999999999)},
        {"1000000000000000000", 18, 0, 0, 0},
        {"12345", 4, 0, 0, 0},
        {"99.995", 4, 2, 0, 0}, /* rounds to 100.00: too many digits */
        {"abc", 10, 2, 0, 0},
        {"", 10, 2, 0, 0},
        {"-", 10, 2, 0, 0},
        {"1.2.3", 10, 2, 0, 0},
        {"1e", 10, 2, 0, 0},
        {"1 2", 10, 2, 0, 0},
        {"0.000000000000000000000000000000000000001", 18, 2, 1, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t v = -999;
        int rc = velo_dec_parse(cases[i].text, strlen(cases[i].text),
                                cases[i].p, cases[i].s, &v);
        if ((rc == VELO_OK) != cases[i].ok ||
            (cases[i].ok && v != cases[i].v)) {
            fprintf(stderr, "  parse '%s' (%d,%d): rc %d v %lld\n",
                    cases[i].text, cases[i].p, cases[i].s, rc, (long long)v);
        }
        CU_ASSERT_EQUAL(rc == VELO_OK, cases[i].ok);
        if (cases[i].ok) {
            CU_ASSERT_EQUAL(v, cases[i].v);
        }
    }
    char buf[64];
    static const struct {
        int64_t v;
        int s;
        const char *want;
    } fm[] = {
        {12345, 2, "123.45"}, {-5, 2, "-0.05"},   {0, 2, "0.00"},
        {5, 3, "0.005"},      {-123, 0, "-123"},  {100, 2, "1.00"},
        {INT64_C(999999999999999999), 18, "0.999999999999999999"},
        {INT64_MIN, 0, "-9223372036854775808"},
    };
    for (size_t i = 0; i < sizeof(fm) / sizeof(fm[0]); i++) {
        size_t n = velo_dec_format(fm[i].v, fm[i].s, buf, sizeof(buf));
        CU_ASSERT_STRING_EQUAL(buf, fm[i].want);
        CU_ASSERT_EQUAL(n, strlen(fm[i].want));
    }
    /* Round trip. */
    for (int64_t v = -2000; v <= 2000; v += 7) {
        int64_t back;
        velo_dec_format(v, 3, buf, sizeof(buf));
        CU_ASSERT_EQUAL(velo_dec_parse(buf, strlen(buf), 18, 3, &back),
                        VELO_OK);
        CU_ASSERT_EQUAL(back, v);
    }
    /* Truncation keeps the buffer terminated. */
    char small[4];
    velo_dec_format(12345, 2, small, sizeof(small));
    CU_ASSERT_EQUAL(strlen(small), 3);
}

static void test_rescale_half_even(void)
{
    static const struct {
        int64_t v;
        int from, to;
        int64_t want;
    } cases[] = {
        {25, 1, 0, 2},   {35, 1, 0, 4},   {-25, 1, 0, -2}, {-35, 1, 0, -4},
        {15, 1, 0, 2},   {-15, 1, 0, -2}, {26, 1, 0, 3},   {24, 1, 0, 2},
        {-26, 1, 0, -3}, {1250, 3, 1, 12}, {1350, 3, 1, 14},
        {1251, 3, 1, 13}, {12, 0, 2, 1200}, {7, 0, 0, 7},
        {INT64_C(5), 19, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t out = -1;
        CU_ASSERT_EQUAL(velo_dec_rescale(cases[i].v, cases[i].from,
                                         cases[i].to, &out),
                        VELO_OK);
        CU_ASSERT_EQUAL(out, cases[i].want);
    }
    int64_t out;
    CU_ASSERT_EQUAL(velo_dec_rescale(1, 0, 18, &out), VELO_OK);
    CU_ASSERT_EQUAL(out, INT64_C(1000000000000000000));
    errno = 0;
    CU_ASSERT_EQUAL(velo_dec_rescale(10, 0, 18, &out), VELO_ERR);
    CU_ASSERT_EQUAL(errno, ERANGE);
    CU_ASSERT_EQUAL(velo_dec_rescale(INT64_MAX, 0, 1, &out), VELO_ERR);
}

static void test_arithmetic(void)
{
    int64_t r;
    /* 1.5 + 2.25 = 3.75; at scale 1: 3.8 (37.5 -> 38, HALF_EVEN) */
    CU_ASSERT_EQUAL(velo_dec_add(15, 1, 225, 2, 2, &r), VELO_OK);
    CU_ASSERT_EQUAL(r, 375);
    CU_ASSERT_EQUAL(velo_dec_add(15, 1, 225, 2, 1, &r), VELO_OK);
    CU_ASSERT_EQUAL(r, 38);
    CU_ASSERT_EQUAL(velo_dec_add(-15, 1, 5, 1, 1, &r), VELO_OK);
    CU_ASSERT_EQUAL(r, -10);
    /* Overflow is an error, never a wrap. */
    r = 0;
    CU_ASSERT_EQUAL(velo_dec_add(INT64_MAX, 0, 1, 0, 0, &r), VELO_ERR);
    CU_ASSERT_EQUAL(r, 0);
    CU_ASSERT_EQUAL(velo_dec_add(INT64_MIN, 0, -1, 0, 0, &r), VELO_ERR);
    /* Different scales that do not fit once aligned. */
    CU_ASSERT_EQUAL(velo_dec_add(INT64_MAX / 10, 0, 1, 1, 1, &r), VELO_OK);
    CU_ASSERT_EQUAL(velo_dec_add(INT64_MAX, 0, 1, 1, 1, &r), VELO_ERR);

    /* 1.5 * 1.5 = 2.25; at scale 1: 2.2 (22.5 -> 22) */
    CU_ASSERT_EQUAL(velo_dec_mul(15, 1, 15, 1, 2, &r), VELO_OK);
    CU_ASSERT_EQUAL(r, 225);
    CU_ASSERT_EQUAL(velo_dec_mul(15, 1, 15, 1, 1, &r), VELO_OK);
    CU_ASSERT_EQUAL(r, 22);
    CU_ASSERT_EQUAL(velo_dec_mul(-15, 1, 15, 1, 1, &r), VELO_OK);
    CU_ASSERT_EQUAL(r, -22);
    CU_ASSERT_EQUAL(velo_dec_mul(INT64_C(10000000000), 0,
                                 INT64_C(10000000000), 0, 0, &r),
                    VELO_ERR);
    /* The 128-bit product is exact before the result is scaled down. */
    CU_ASSERT_EQUAL(velo_dec_mul(INT64_C(4000000000000000000), 18,
                                 INT64_C(2000000000), 9, 9, &r),
                    VELO_OK);
    CU_ASSERT_EQUAL(r, INT64_C(8000000000));

    /* Division: rs is the result scale, HALF_EVEN. */
    CU_ASSERT_EQUAL(velo_dec_div(1, 0, 3, 0, 6, &r), VELO_OK);
    CU_ASSERT_EQUAL(r, 333333);
    CU_ASSERT_EQUAL(velo_dec_div(2, 0, 3, 0, 6, &r), VELO_OK);
    CU_ASSERT_EQUAL(r, 666667);
    CU_ASSERT_EQUAL(velo_dec_div(10, 0, 4, 0, 0, &r), VELO_OK);
    CU_ASSERT_EQUAL(r, 2); /* 2.5 -> 2 */
    CU_ASSERT_EQUAL(velo_dec_div(14, 0, 4, 0, 0, &r), VELO_OK);
    CU_ASSERT_EQUAL(r, 4); /* 3.5 -> 4 */
    CU_ASSERT_EQUAL(velo_dec_div(-10, 0, 4, 0, 0, &r), VELO_OK);
    CU_ASSERT_EQUAL(r, -2);
    CU_ASSERT_EQUAL(velo_dec_div(100, 2, 3, 0, 2, &r), VELO_OK);
    CU_ASSERT_EQUAL(r, 33);
    CU_ASSERT_EQUAL(velo_dec_div(1, 0, 1000, 3, 0, &r), VELO_OK);
    CU_ASSERT_EQUAL(r, 1);
    errno = 0;
    CU_ASSERT_EQUAL(velo_dec_div(1, 0, 0, 0, 0, &r), VELO_ERR);
    CU_ASSERT_EQUAL(errno, EDOM);
    CU_ASSERT_EQUAL(velo_dec_div(INT64_MAX, 0, 1, 0, 1, &r), VELO_ERR);
    /* A huge numerator scaled past 128 bits is an overflow, not a crash. */
    CU_ASSERT_EQUAL(velo_dec_div(INT64_MAX, 0, 1, 18, 18, &r), VELO_ERR);
}

/* The same rules through SQL expressions: result types and errors. */
static void test_sql_rules(void)
{
    static const struct xcase cases[] = {
        {"(+ 12.34 0.001)", "12.341"},
        {"(- 0.1 0.3)", "-0.2"},
        {"(* 12.34 0.5)", "6.170"},
        {"(/ 1.0 3.0)", "0.333333"},
        {"(/ 1.0000000 3)", "0.3333333"},
        {"(/ 5.00 2)", "2.500000"},
        {"(* 0.5 0.5)", "0.25"},
        {"(ROUND 2.5)", "2"},
        {"(ROUND 3.5)", "4"},
        {"(ROUND -2.5)", "-2"},
        {"(CAST 2.5 BIGINT)", "2"},
        {"(CAST 0.125 DECIMAL(3,2))", "0.12"},
        {"(CAST 0.135 DECIMAL(3,2))", "0.14"},
        {"(+ 999999999999999.99 0.01)", "1000000000000000.00"},
        {"(* 99999999999999999.9 10)", "ERR3: numeric overflow"},
        {"(= 1.10 1.1e0)", "true"},
        {"(< 1.10 1.1000001e0)", "true"},
        {"(> 2.5 2.4999999999e0)", "true"},
        {"(= 0.3 (+ 0.1 0.2))", "true"},
        {"(= 0.3e0 (+ 0.1e0 0.2e0))", "false"},
    };
    xrun_cases(funcs, cases, sizeof(cases) / sizeof(cases[0]));

    /* Result types of the operators. */
    struct velo_expr *e = xparse(funcs, NULL, "(* 12.34 0.5)");
    CU_ASSERT_EQUAL(e->type.scale, 3);
    CU_ASSERT_EQUAL(e->type.precision, 7);
    velo_expr_free(e);
    e = xparse(funcs, NULL, "(+ 12.34 0.001)");
    CU_ASSERT_EQUAL(e->type.scale, 3);
    CU_ASSERT_EQUAL(e->type.precision, 6);
    velo_expr_free(e);
    e = xparse(funcs, NULL, "(/ 1.0 3.0)");
    CU_ASSERT_EQUAL(e->type.scale, 6);
    CU_ASSERT_EQUAL(e->type.precision, 18);
    velo_expr_free(e);
}

static void test_compare_double(void)
{
    struct velo_datatype d2 = velo_type_decimal(10, 2);
    struct velo_datatype dbl = velo_type_of(VELO_TYPE_DOUBLE);
    struct velo_datatype big = velo_type_of(VELO_TYPE_BIGINT);
    union velo_slot a, b;
    a.i = 110; /* 1.10 */
    b.d = 1.1;
    CU_ASSERT_EQUAL(velo_value_cmp(d2, a, dbl, b), 0);
    b.d = 1.11;
    CU_ASSERT(velo_value_cmp(d2, a, dbl, b) < 0);
    b.i = 1;
    CU_ASSERT(velo_value_cmp(d2, a, big, b) > 0);
    b.i = 2;
    CU_ASSERT(velo_value_cmp(d2, a, big, b) < 0);
    struct velo_datatype d1 = velo_type_decimal(10, 1);
    b.i = 11; /* 1.1 */
    CU_ASSERT_EQUAL(velo_value_cmp(d2, a, d1, b), 0);
    CU_ASSERT_EQUAL(velo_dec_cmp(INT64_C(999999999999999999), 0,
                                 INT64_C(999999999999999999), 18),
                    1);
    CU_ASSERT_DOUBLE_EQUAL(velo_dec_to_double(-12345, 2), -123.45, 1e-12);
    int64_t v;
    CU_ASSERT_EQUAL(velo_dec_from_double(2.675, 18, 2, &v), VELO_OK);
    CU_ASSERT_EQUAL(v, 268);
    CU_ASSERT_EQUAL(velo_dec_from_double(0.1, 18, 17, &v), VELO_OK);
    CU_ASSERT_EQUAL(v, INT64_C(10000000000000000));
    CU_ASSERT_EQUAL(velo_dec_from_double(1e20, 18, 0, &v), VELO_ERR);
    CU_ASSERT_EQUAL(velo_dec_from_double(0.0 / 0.0, 18, 0, &v), VELO_ERR);
}

/* A deterministic generator (xorshift) for the long sums. */
static uint64_t rng_state = 88172645463325252ULL;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

struct sum_result {
    char text[64];
    int rows;
};

static int capture_sum(void *arg, struct velo_batch *b)
{
    struct sum_result *r = arg;
    for (size_t i = 0; i < velo_batch_live(b); i++) {
        size_t row = b->sel != NULL ? b->sel[i] : i;
        xrender(&b->cols[0], row, r->text, sizeof(r->text));
        r->rows++;
    }
    return VELO_OK;
}

/* SUM(DECIMAL(18,2)) over 3 million values against an __int128 loop. */
static void test_exact_sum(void)
{
    const size_t total = 3000000, cap = 1024;
    struct velo_schema *s = xschema("amount:DECIMAL(18,2)");
    struct xenv x;
    xenv_init(&x, funcs, cap);
    struct velo_datatype at = s->fields[0].type, cast;
    int known;
    struct velo_agg_call call = {0};
    call.agg = velo_funcs_resolve_agg(funcs, "SUM", &at, 1, &cast, &known);
    call.nargs = 1;
    call.args[0] = xparse(funcs, s, "$0");
    call.name = "total";
    struct velo_op *agg = velo_op_aggregate(&x.env, s, NULL, NULL, 0, &call,
                                            1, NULL, VELO_EMIT_FINAL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(agg);
    CU_ASSERT_EQUAL(agg->out_schema->fields[0].type.scale, 2);
    CU_ASSERT_EQUAL(agg->out_schema->fields[0].type.precision, 18);
    struct sum_result res = {"", 0};
    struct velo_op *sink =
        velo_op_callback(&x.env, agg->out_schema, capture_sum, NULL, &res,
                         "test");
    velo_op_connect(agg, sink);
    struct velo_batch *b = velo_batch_create(s, cap);
    __int128 want = 0;
    for (size_t done = 0; done < total;) {
        velo_batch_reset(b);
        size_t n = total - done < cap ? total - done : cap;
        for (size_t r = 0; r < n; r++) {
            /* +-10^12 with cents: large enough that a double sum would
             * lose the cents. */
            int64_t v = (int64_t)(rng() % UINT64_C(200000000000000)) -
                        INT64_C(100000000000000);
            b->cols[0].v.i64[r] = v;
            want += v;
        }
        b->nrows = n;
        CU_ASSERT_EQUAL(velo_op_push(agg, b), VELO_OK);
        done += n;
    }
    CU_ASSERT_EQUAL(velo_op_finish(agg), VELO_OK);
    char wbuf[64];
    velo_dec_format((int64_t)want, 2, wbuf, sizeof(wbuf));
    CU_ASSERT_EQUAL(res.rows, 1);
    CU_ASSERT_STRING_EQUAL(res.text, wbuf);
    fprintf(stderr, "  sum of %zu decimals: %s\n", total, res.text);
    velo_op_destroy(agg);
    velo_op_destroy(sink);

    /* A total past 18 digits is an error row, never a wrapped value. */
    struct velo_agg_call c2 = {0};
    c2.agg = call.agg;
    c2.nargs = 1;
    c2.args[0] = xparse(funcs, s, "$0");
    c2.name = "total";
    agg = velo_op_aggregate(&x.env, s, NULL, NULL, 0, &c2, 1, NULL,
                            VELO_EMIT_FINAL);
    struct sum_result res2 = {"", 0};
    sink = velo_op_callback(&x.env, agg->out_schema, capture_sum, NULL, &res2,
                            "test");
    velo_op_connect(agg, sink);
    velo_batch_reset(b);
    for (size_t r = 0; r < 20; r++) {
        b->cols[0].v.i64[r] = INT64_C(900000000000000000);
    }
    b->nrows = 20;
    velo_op_push(agg, b);
    CU_ASSERT_EQUAL(velo_op_finish(agg), VELO_OK);
    CU_ASSERT_EQUAL(res2.rows, 0);
    CU_ASSERT_EQUAL(agg->stats.rows_failed, 1);
    CU_ASSERT_EQUAL(x.errors, 1);
    CU_ASSERT_EQUAL(x.last_code, VELO_EVAL_OVERFLOW);
    CU_ASSERT_PTR_NOT_NULL(strstr(x.last_msg, "SUM overflow"));
    velo_op_destroy(agg);
    velo_op_destroy(sink);
    velo_batch_destroy(b);
    velo_schema_destroy(s);
}

/* AVG(DECIMAL) is exact and rounds HALF_EVEN at scale max(s, 6). */
static void test_exact_avg(void)
{
    struct velo_schema *s = xschema("amount:DECIMAL(10,2)");
    struct xenv x;
    xenv_init(&x, funcs, 16);
    struct velo_datatype at = s->fields[0].type, cast;
    int known;
    struct velo_agg_call call = {0};
    call.agg = velo_funcs_resolve_agg(funcs, "AVG", &at, 1, &cast, &known);
    call.nargs = 1;
    call.args[0] = xparse(funcs, s, "$0");
    call.name = "avg";
    struct velo_op *agg = velo_op_aggregate(&x.env, s, NULL, NULL, 0, &call,
                                            1, NULL, VELO_EMIT_FINAL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(agg);
    struct sum_result res = {"", 0};
    struct velo_op *sink =
        velo_op_callback(&x.env, agg->out_schema, capture_sum, NULL, &res,
                         "test");
    velo_op_connect(agg, sink);
    struct velo_batch *b = velo_batch_create(s, 16);
    /* (0.01 + 0.02 + 0.02) / 3 = 0.01666666.. -> 0.016667 */
    b->cols[0].v.i64[0] = 1;
    b->cols[0].v.i64[1] = 2;
    b->cols[0].v.i64[2] = 2;
    b->nrows = 3;
    velo_op_push(agg, b);
    velo_op_finish(agg);
    CU_ASSERT_STRING_EQUAL(res.text, "0.016667");
    velo_op_destroy(agg);
    velo_op_destroy(sink);
    velo_batch_destroy(b);
    velo_schema_destroy(s);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 1;
    }
    funcs = velo_funcs_create();
    CU_pSuite s = CU_add_suite("decimal", NULL, NULL);
    CU_add_test(s, "parse and format", test_parse_format);
    CU_add_test(s, "rescale HALF_EVEN", test_rescale_half_even);
    CU_add_test(s, "add, mul, div without wrapping", test_arithmetic);
    CU_add_test(s, "SQL scale rules", test_sql_rules);
    CU_add_test(s, "comparison with DOUBLE", test_compare_double);
    CU_add_test(s, "exact SUM of 3 million values", test_exact_sum);
    CU_add_test(s, "exact AVG", test_exact_avg);
    int rc = tu_run_all();
    velo_funcs_destroy(funcs);
    return rc;
}
