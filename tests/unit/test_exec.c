/*
 * Executor basics: types and schemas, arenas, batches (selection vectors,
 * compaction, row copies), the evaluator's contract (column pass-through,
 * filters narrowing the selection, per-row errors and messages), and the
 * operator plumbing (emit restores the selection between children).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "exectest.h"
#include "testutil.h"

static struct velo_funcs *funcs;

static void test_types(void)
{
    static const struct {
        const char *text;
        int ok;
        int id, p, s;
        const char *name;
    } cases[] = {
        {"bigint", 1, VELO_TYPE_BIGINT, 0, 0, "BIGINT"},
        {"INT", 1, VELO_TYPE_INTEGER, 0, 0, "INTEGER"},
        {"decimal(12, 2)", 1, VELO_TYPE_DECIMAL, 12, 2, "DECIMAL(12,2)"},
        {"NUMERIC(5)", 1, VELO_TYPE_DECIMAL, 5, 0, "DECIMAL(5,0)"},
        {"decimal", 1, VELO_TYPE_DECIMAL, 18, 0, "DECIMAL(18,0)"},
        {"varchar(20)", 1, VELO_TYPE_STRING, 0, 0, "STRING"},
        {" Double  Precision ", 1, VELO_TYPE_DOUBLE, 0, 0, "DOUBLE"},
        {"timestamp(3)", 1, VELO_TYPE_TIMESTAMP, 0, 0, "TIMESTAMP"},
        {"timestamp with time zone", 1, VELO_TYPE_TIMESTAMP, 0, 0,
         "TIMESTAMP"},
        {"bool", 1, VELO_TYPE_BOOLEAN, 0, 0, "BOOLEAN"},
        {"bytea", 1, VELO_TYPE_BYTES, 0, 0, "BYTES"},
        {"jsonb", 1, VELO_TYPE_JSON, 0, 0, "JSON"},
        {"interval", 1, VELO_TYPE_INTERVAL, 0, 0, "INTERVAL"},
        {"date", 1, VELO_TYPE_DATE, 0, 0, "DATE"},
        {"decimal(19,2)", 0, 0, 0, 0, NULL},
        {"decimal(5,6)", 0, 0, 0, 0, NULL},
        {"decimal(0)", 0, 0, 0, 0, NULL},
        {"bigint(3)", 0, 0, 0, 0, NULL},
        {"varchar(", 0, 0, 0, 0, NULL},
        {"strin", 0, 0, 0, 0, NULL},
        {"", 0, 0, 0, 0, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct velo_datatype t = {0, 0, 0};
        int rc = velo_type_parse(cases[i].text, &t);
        CU_ASSERT_EQUAL(rc == VELO_OK, cases[i].ok);
        if (!cases[i].ok || rc != VELO_OK) {
            continue;
        }
        CU_ASSERT_EQUAL(t.id, cases[i].id);
        char buf[32];
        CU_ASSERT_STRING_EQUAL(velo_type_name(t, buf, sizeof(buf)),
                               cases[i].name);
        if (t.id == VELO_TYPE_DECIMAL) {
            CU_ASSERT_EQUAL(t.precision, cases[i].p);
            CU_ASSERT_EQUAL(t.scale, cases[i].s);
        }
    }
    CU_ASSERT(velo_type_equal(velo_type_decimal(10, 2),
                              velo_type_decimal(10, 2)));
    CU_ASSERT(!velo_type_equal(velo_type_decimal(10, 2),
                               velo_type_decimal(10, 3)));
    CU_ASSERT(velo_type_is_numeric(velo_type_decimal(3, 1)));
    CU_ASSERT(!velo_type_is_numeric(velo_type_of(VELO_TYPE_STRING)));
    /* velo_type_decimal clamps instead of building an invalid type. */
    struct velo_datatype d = velo_type_decimal(40, 50);
    CU_ASSERT_EQUAL(d.precision, 18);
    CU_ASSERT_EQUAL(d.scale, 18);
}

static void test_schema(void)
{
    struct velo_schema *s = velo_schema_create(3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(velo_schema_set(s, 0, "Price",
                                    velo_type_of(VELO_TYPE_BIGINT), 1, 0),
                    VELO_OK);
    CU_ASSERT_EQUAL(velo_schema_set(s, 1, "name",
                                    velo_type_of(VELO_TYPE_STRING), 0, 0),
                    VELO_OK);
    CU_ASSERT_EQUAL(velo_schema_set(s, 2, VELO_COL_TIMESTAMP,
                                    velo_type_of(VELO_TYPE_TIMESTAMP), 0, 1),
                    VELO_OK);
    CU_ASSERT_EQUAL(velo_schema_set(s, 3, "x", velo_type_of(1), 0, 0),
                    VELO_ERR);
    CU_ASSERT_EQUAL(velo_schema_find(s, "price"), 0);
    CU_ASSERT_EQUAL(velo_schema_find(s, "NAME"), 1);
    CU_ASSERT_EQUAL(velo_schema_find(s, "_TIMESTAMP"), 2);
    CU_ASSERT_EQUAL(velo_schema_find(s, "nope"), -1);
    struct velo_schema *c = velo_schema_copy(s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(c->fields[0].name, "Price");
    CU_ASSERT(c->fields[0].name != s->fields[0].name);
    CU_ASSERT_EQUAL(c->fields[2].hidden, 1);
    CU_ASSERT_EQUAL(c->fields[1].nullable, 0);
    /* Renaming frees the old name (ASan checks the leak). */
    CU_ASSERT_EQUAL(velo_schema_set(c, 0, "cost",
                                    velo_type_of(VELO_TYPE_BIGINT), 1, 0),
                    VELO_OK);
    CU_ASSERT_STRING_EQUAL(c->fields[0].name, "cost");
    velo_schema_destroy(c);
    velo_schema_destroy(s);
    velo_schema_destroy(NULL);
}

static void test_arena(void)
{
    struct velo_arena *a = velo_arena_create(1024);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    size_t base = velo_arena_bytes(a);
    CU_ASSERT(base >= 1024);
    /* Alignment and independence of allocations. */
    char *p1 = velo_arena_alloc(a, 3);
    char *p2 = velo_arena_alloc(a, 5);
    CU_ASSERT_EQUAL((uintptr_t)p1 % 8, 0);
    CU_ASSERT_EQUAL((uintptr_t)p2 % 8, 0);
    CU_ASSERT(p2 >= p1 + 3);
    char *s = velo_arena_strdup(a, "hello", 5);
    CU_ASSERT_STRING_EQUAL(s, "hello");
    /* Growth past the first chunk, and a request bigger than a chunk. */
    for (int i = 0; i < 100; i++) {
        char *q = velo_arena_alloc(a, 100);
        CU_ASSERT_PTR_NOT_NULL_FATAL(q);
        memset(q, i, 100);
    }
    char *big = velo_arena_alloc(a, 10000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    memset(big, 7, 10000);
    CU_ASSERT(velo_arena_bytes(a) > base + 10000);
    /* The current chunk's space is not wasted by the big request. */
    char *after = velo_arena_alloc(a, 8);
    CU_ASSERT_PTR_NOT_NULL(after);
    /* Reset keeps only the first chunk. */
    velo_arena_reset(a);
    CU_ASSERT_EQUAL(velo_arena_bytes(a), base);
    char *again = velo_arena_alloc(a, 16);
    CU_ASSERT_PTR_NOT_NULL(again);
    CU_ASSERT_PTR_NOT_NULL(velo_arena_alloc(a, 0));
    velo_arena_destroy(a);
    velo_arena_destroy(NULL);
}

static void test_batch_basics(void)
{
    struct velo_schema *s =
        xschema("a:BIGINT;b:STRING;c:DOUBLE;d:BOOLEAN;e:DECIMAL(10,2)");
    struct velo_batch *b = velo_batch_create(s, 16);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(b->cap, 16);
    CU_ASSERT_EQUAL(b->ncols, 5);
    CU_ASSERT_PTR_NOT_NULL(b->origin);
    CU_ASSERT_PTR_NULL(b->op);
    CU_ASSERT_PTR_NULL(b->sel);
    CU_ASSERT_EQUAL(b->cols[4].type.scale, 2);
    for (size_t c = 0; c < b->ncols; c++) {
        CU_ASSERT_EQUAL(b->cols[c].has_nulls, 0);
        for (size_t r = 0; r < 16; r++) {
            CU_ASSERT_EQUAL(b->cols[c].nulls[r], 0);
        }
    }
    for (size_t r = 0; r < 10; r++) {
        xset_i64(b, 0, r, (int64_t)r * 10);
        char tmp[16];
        snprintf(tmp, sizeof(tmp), "s%zu", r);
        xset_str(b, 1, r, tmp);
        xset_f64(b, 2, r, (double)r / 2);
        b->cols[3].v.u8[r] = r % 2;
        xset_i64(b, 4, r, (int64_t)r * 125);
        b->origin[r].source = 0;
        b->origin[r].line = (int64_t)r + 1;
    }
    xset_null(b, 2, 3);
    b->nrows = 10;
    CU_ASSERT_EQUAL(velo_batch_live(b), 10);

    /* A selection vector: live rows 1, 3, 4, 8. */
    uint16_t sel[] = {1, 3, 4, 8};
    b->sel = sel;
    b->nsel = 4;
    CU_ASSERT_EQUAL(velo_batch_live(b), 4);
    velo_batch_compact(b);
    CU_ASSERT_PTR_NULL(b->sel);
    CU_ASSERT_EQUAL(b->nrows, 4);
    CU_ASSERT_EQUAL(b->cols[0].v.i64[0], 10);
    CU_ASSERT_EQUAL(b->cols[0].v.i64[1], 30);
    CU_ASSERT_EQUAL(b->cols[0].v.i64[3], 80);
    CU_ASSERT_EQUAL(b->cols[1].v.str[2].len, 2);
    CU_ASSERT_EQUAL(memcmp(b->cols[1].v.str[2].ptr, "s4", 2), 0);
    CU_ASSERT_EQUAL(b->cols[2].nulls[1], 1); /* row 3's NULL moved */
    CU_ASSERT_EQUAL(b->cols[2].nulls[0], 0);
    CU_ASSERT_EQUAL(b->cols[3].v.u8[0], 1);
    CU_ASSERT_EQUAL(b->origin[3].line, 9);
    /* Compacting a batch without selection changes nothing. */
    velo_batch_compact(b);
    CU_ASSERT_EQUAL(b->nrows, 4);

    /* Deep and shallow row copies. */
    struct velo_batch *d = velo_batch_create(s, 4);
    d->op = velo_batch_op_buf(d);
    CU_ASSERT_EQUAL(velo_batch_copy_row(d, 0, b, 2, 1), VELO_OK);
    CU_ASSERT_EQUAL(velo_batch_copy_row(d, 1, b, 1, 0), VELO_OK);
    CU_ASSERT_EQUAL(d->nrows, 2);
    CU_ASSERT_EQUAL(d->cols[0].v.i64[0], 40);
    CU_ASSERT(d->cols[1].v.str[0].ptr != b->cols[1].v.str[2].ptr);
    CU_ASSERT_EQUAL(memcmp(d->cols[1].v.str[0].ptr, "s4", 2), 0);
    CU_ASSERT(d->cols[1].v.str[1].ptr == b->cols[1].v.str[1].ptr);
    CU_ASSERT(d->cols[2].has_nulls && d->cols[2].nulls[1]);
    CU_ASSERT_EQUAL(d->origin[0].line, 5);
    CU_ASSERT_EQUAL(d->op[0], VELO_ROW_INSERT);
    CU_ASSERT_EQUAL(velo_batch_copy_row(d, 9, b, 0, 0), VELO_ERR);
    /* Reset: rows gone, NULL flags cleared, strings released. */
    velo_batch_reset(d);
    CU_ASSERT_EQUAL(d->nrows, 0);
    CU_ASSERT_EQUAL(d->cols[2].has_nulls, 0);
    CU_ASSERT_EQUAL(d->cols[2].nulls[1], 0);
    velo_batch_destroy(d);

    /* Column types must match for a copy. */
    struct velo_schema *s2 = xschema("a:STRING;b:STRING;c:DOUBLE;d:BOOLEAN;"
                                     "e:DECIMAL(10,2)");
    struct velo_batch *w = velo_batch_create(s2, 4);
    CU_ASSERT_EQUAL(velo_batch_copy_row(w, 0, b, 0, 0), VELO_ERR);
    velo_batch_destroy(w);
    velo_schema_destroy(s2);
    CU_ASSERT_PTR_NULL(velo_batch_create(s, 0));
    CU_ASSERT_PTR_NULL(velo_batch_create(s, 70000));
    velo_batch_destroy(b);
    velo_schema_destroy(s);
}

static void test_evaluator_contract(void)
{
    struct velo_schema *s = xschema("a:BIGINT;b:BIGINT;n:STRING");
    struct velo_batch *b = velo_batch_create(s, 8);
    for (size_t r = 0; r < 6; r++) {
        xset_i64(b, 0, r, (int64_t)r);
        xset_i64(b, 1, r, (int64_t)(r % 3));
        xset_str(b, 2, r, r % 2 ? "odd" : "even");
    }
    xset_null(b, 0, 5);
    b->nrows = 6;
    struct velo_eval_ctx ctx;
    CU_ASSERT_EQUAL(velo_eval_ctx_init(&ctx, 8, 1), VELO_OK);
    struct velo_arena *arena = velo_arena_create(1024);
    ctx.arena = arena;

    /* A column reference returns the input column itself. */
    struct velo_expr *e = xparse(funcs, s, "$2");
    struct velo_evaluator *ev = velo_expr_compile(e, s, 8);
    CU_ASSERT(velo_evaluate(ev, &ctx, b) == &b->cols[2]);
    velo_evaluator_destroy(ev);
    velo_expr_free(e);
    /* So does a cast that keeps the representation. */
    e = xparse(funcs, s, "(CAST $2 BYTES)");
    ev = velo_expr_compile(e, s, 8);
    const struct velo_column *c = velo_evaluate(ev, &ctx, b);
    CU_ASSERT(c->v.str == b->cols[2].v.str);
    CU_ASSERT_EQUAL(c->type.id, VELO_TYPE_BYTES);
    velo_evaluator_destroy(ev);
    velo_expr_free(e);

    /* velo_filter narrows the selection: TRUE only, NULL and failed rows
     * out. a / b fails where b = 0 (rows 0 and 3); row 5 is NULL. */
    e = xparse(funcs, s, "(> (/ $0 $1) 0)");
    ev = velo_expr_compile(e, s, 8);
    velo_filter(ev, &ctx, b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b->sel);
    CU_ASSERT_EQUAL(b->nsel, 3);
    CU_ASSERT_EQUAL(b->sel[0], 1);
    CU_ASSERT_EQUAL(b->sel[1], 2);
    CU_ASSERT_EQUAL(b->sel[2], 4);
    CU_ASSERT_EQUAL(ctx.n_errors, 2);
    CU_ASSERT_EQUAL(ctx.row_error[0], VELO_EVAL_DIV_ZERO);
    CU_ASSERT_EQUAL(ctx.row_error[3], VELO_EVAL_DIV_ZERO);
    CU_ASSERT_STRING_EQUAL(velo_eval_row_msg(&ctx, 3),
                           "division by zero in (> (/ $0 $1) 0)");
    velo_eval_ctx_clear(&ctx, 8);
    CU_ASSERT_EQUAL(ctx.n_errors, 0);
    CU_ASSERT_EQUAL(ctx.row_error[3], 0);
    CU_ASSERT_EQUAL(ctx.first_msg[0], '\0');
    /* A second filter narrows further, from the current selection. */
    struct velo_expr *e2 = xparse(funcs, s, "(= $2 'even')");
    struct velo_evaluator *ev2 = velo_expr_compile(e2, s, 8);
    velo_filter(ev2, &ctx, b);
    CU_ASSERT_EQUAL(b->nsel, 2);
    CU_ASSERT_EQUAL(b->sel[0], 2);
    CU_ASSERT_EQUAL(b->sel[1], 4);
    b->sel = NULL;
    /* All rows pass: the batch stays dense. */
    struct velo_expr *e3 = xparse(funcs, s, "(ISNOTNULL $1)");
    struct velo_evaluator *ev3 = velo_expr_compile(e3, s, 8);
    velo_filter(ev3, &ctx, b);
    CU_ASSERT_PTR_NULL(b->sel);
    velo_evaluator_destroy(ev);
    velo_evaluator_destroy(ev2);
    velo_evaluator_destroy(ev3);
    velo_expr_free(e);
    velo_expr_free(e2);
    velo_expr_free(e3);

    /* Errors without per-row messages keep the first one only. */
    struct velo_eval_ctx plain;
    CU_ASSERT_EQUAL(velo_eval_ctx_init(&plain, 8, 0), VELO_OK);
    velo_eval_error(&plain, 2, VELO_EVAL_CAST, "first %d", 1);
    velo_eval_error(&plain, 4, VELO_EVAL_OVERFLOW, "second");
    velo_eval_error(&plain, 2, VELO_EVAL_OVERFLOW, "again");
    CU_ASSERT_EQUAL(plain.n_errors, 2);
    CU_ASSERT_EQUAL(plain.row_error[2], VELO_EVAL_CAST);
    CU_ASSERT_STRING_EQUAL(velo_eval_row_msg(&plain, 4), "first 1");
    velo_eval_ctx_free(&plain);

    /* Bad trees are refused at compile time, not at run time. */
    e = xparse(funcs, s, "$1");
    e->u.column = 7;
    CU_ASSERT_PTR_NULL(velo_expr_compile(e, s, 8));
    CU_ASSERT_EQUAL(errno, EINVAL);
    velo_expr_free(e);
    e = xparse(funcs, s, "(CAST $1 DATE)");
    CU_ASSERT_PTR_NULL(velo_expr_compile(e, s, 8));
    CU_ASSERT_EQUAL(errno, ENOTSUP);
    velo_expr_free(e);
    e = xparse(funcs, s, "$1");
    CU_ASSERT_PTR_NULL(velo_expr_compile(e, s, 0));
    CU_ASSERT_PTR_NULL(velo_expr_compile(e, s, 70000));
    velo_expr_free(e);

    velo_eval_ctx_free(&ctx);
    velo_arena_destroy(arena);
    velo_batch_destroy(b);
    velo_schema_destroy(s);
}

/* Wide batches: every row of a full batch, and NULL handling in the
 * dense fast paths. */
static void test_full_batches(void)
{
    const size_t cap = 1024;
    struct velo_schema *s = xschema("a:BIGINT;b:DOUBLE");
    struct velo_batch *b = velo_batch_create(s, cap);
    for (size_t r = 0; r < cap; r++) {
        xset_i64(b, 0, r, (int64_t)r);
        xset_f64(b, 1, r, (double)r * 0.5);
    }
    for (size_t r = 0; r < cap; r += 7) {
        xset_null(b, 0, r);
    }
    b->nrows = cap;
    struct velo_expr *e = xparse(funcs, s, "(+ (* $0 2L) (CAST $1 BIGINT))");
    struct velo_evaluator *ev = velo_expr_compile(e, s, cap);
    struct velo_eval_ctx ctx;
    velo_eval_ctx_init(&ctx, cap, 0);
    struct velo_arena *arena = velo_arena_create(1024);
    ctx.arena = arena;
    const struct velo_column *c = velo_evaluate(ev, &ctx, b);
    int ok = 1;
    for (size_t r = 0; r < cap; r++) {
        if (r % 7 == 0) {
            ok &= c->nulls[r] == 1;
        } else {
            double half = (double)r * 0.5;
            int64_t rounded = (int64_t)nearbyint(half);
            ok &= c->nulls[r] == 0 && c->v.i64[r] == (int64_t)r * 2 + rounded;
        }
    }
    CU_ASSERT(ok);
    CU_ASSERT_EQUAL(ctx.n_errors, 0);
    /* The same evaluator on the next batch, now without NULLs: the
     * output's NULL flags are clean again. */
    for (size_t r = 0; r < cap; r += 7) {
        b->cols[0].nulls[r] = 0;
    }
    b->cols[0].has_nulls = 0;
    c = velo_evaluate(ev, &ctx, b);
    CU_ASSERT_EQUAL(c->has_nulls, 0);
    for (size_t r = 0; r < cap; r++) {
        ok &= c->nulls[r] == 0;
    }
    CU_ASSERT(ok);
    velo_evaluator_destroy(ev);
    velo_expr_free(e);
    velo_eval_ctx_free(&ctx);
    velo_arena_destroy(arena);
    velo_batch_destroy(b);
    velo_schema_destroy(s);
}

struct order_log {
    char seen[64];
};

static int log_rows(void *arg, struct velo_batch *b)
{
    struct order_log *l = arg;
    size_t len = strlen(l->seen);
    for (size_t i = 0; i < velo_batch_live(b) && len + 3 < sizeof(l->seen);
         i++) {
        size_t r = b->sel != NULL ? b->sel[i] : i;
        len += (size_t)snprintf(l->seen + len, sizeof(l->seen) - len, "%lld ",
                                (long long)b->cols[0].v.i64[r]);
    }
    return VELO_OK;
}

/* A filter under a Tee must not hide rows from the Tee's next child. */
static void test_emit_restores_selection(void)
{
    struct velo_schema *s = xschema("a:BIGINT");
    struct xenv x;
    xenv_init(&x, funcs, 8);
    struct velo_op *tee = velo_op_tee(&x.env, s);
    struct velo_op *flt =
        velo_op_filter(&x.env, s, xparse(funcs, s, "(> $0 2L)"));
    struct order_log l1 = {""}, l2 = {""};
    struct velo_op *k1 =
        velo_op_callback(&x.env, s, log_rows, NULL, &l1, "one");
    struct velo_op *k2 =
        velo_op_callback(&x.env, s, log_rows, NULL, &l2, "two");
    CU_ASSERT_EQUAL(velo_op_connect(tee, flt), VELO_OK);
    CU_ASSERT_EQUAL(velo_op_connect(flt, k1), VELO_OK);
    CU_ASSERT_EQUAL(velo_op_connect(tee, k2), VELO_OK);
    struct velo_batch *b = velo_batch_create(s, 8);
    for (size_t r = 0; r < 5; r++) {
        xset_i64(b, 0, r, (int64_t)r);
    }
    b->nrows = 5;
    CU_ASSERT_EQUAL(velo_op_push(tee, b), VELO_OK);
    CU_ASSERT_STRING_EQUAL(l1.seen, "3 4 ");
    CU_ASSERT_STRING_EQUAL(l2.seen, "0 1 2 3 4 ");
    CU_ASSERT_PTR_NULL(b->sel);
    CU_ASSERT_EQUAL(tee->stats.rows_in, 5);
    CU_ASSERT_EQUAL(tee->stats.rows_out, 5);
    CU_ASSERT_EQUAL(flt->stats.rows_in, 5);
    CU_ASSERT_EQUAL(flt->stats.rows_out, 2);
    char buf[256];
    flt->ops->explain(flt, buf, sizeof(buf));
    CU_ASSERT_STRING_EQUAL(buf, "keeps rows where (a > 2)");
    tee->ops->explain(tee, buf, sizeof(buf));
    CU_ASSERT_STRING_EQUAL(buf, "fans out to 2 consumers");
    /* Children slots are bounded. */
    for (int i = 0; i < VELO_OP_MAX_CHILDREN - 2; i++) {
        CU_ASSERT_EQUAL(velo_op_connect(tee, k2), VELO_OK);
    }
    CU_ASSERT_EQUAL(velo_op_connect(tee, k2), VELO_ERR);
    velo_op_destroy(tee);
    velo_op_destroy(flt);
    velo_op_destroy(k1);
    velo_op_destroy(k2);
    velo_batch_destroy(b);
    velo_schema_destroy(s);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 1;
    }
    funcs = velo_funcs_create();
    CU_pSuite s = CU_add_suite("exec", NULL, NULL);
    CU_add_test(s, "types", test_types);
    CU_add_test(s, "schemas", test_schema);
    CU_add_test(s, "arenas", test_arena);
    CU_add_test(s, "batches, selections, compaction, copies",
                test_batch_basics);
    CU_add_test(s, "evaluator contract", test_evaluator_contract);
    CU_add_test(s, "full batches", test_full_batches);
    CU_add_test(s, "emit restores the selection", test_emit_restores_selection);
    int rc = tu_run_all();
    velo_funcs_destroy(funcs);
    return rc;
}
