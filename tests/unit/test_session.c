/*
 * SESSION windows and checkpoints of the Aggregate operator, and the
 * aggregate functions' merge/save/load they rest on:
 *   - for every built-in aggregate, merge(update(A), update(B)) gives the
 *     result of update(A then B), save/load round-trips a state, and a
 *     truncated or damaged state is refused or read without a crash;
 *   - sessions per key: extension, a late row bridging two sessions
 *     (merge, with DELETE rows under EMIT CHANGES), grace, late rows,
 *     state freed when sessions close;
 *   - snapshot/restore of the operator in every window mode: half the
 *     input, snapshot, a fresh operator restored, the rest of the input
 *     gives the output of an uninterrupted run.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "exec/state.h"
#include "exectest.h"
#include "testutil.h"

static struct velo_funcs *funcs;

#define SEC INT64_C(1000000)

/* ---- Aggregate functions: merge, save, load --------------------------- */

/* Input columns: i BIGINT, d DOUBLE, s STRING, m DECIMAL(10,2), sep STRING,
 * b BOOLEAN, t TIMESTAMP. Rows vary with some NULLs and repeats. */
#define AG_SCHEMA                                                            \
    "i:BIGINT;d:DOUBLE;s:STRING;m:DECIMAL(10,2);sep:STRING;b:BOOLEAN;"      \
    "t:TIMESTAMP"

static struct velo_batch *ag_batch(const struct velo_schema *sc, size_t n)
{
    struct velo_batch *b = velo_batch_create(sc, n < 8 ? 8 : n);
    for (size_t r = 0; r < n; r++) {
        char s[32];
        /* Many distinct values in big inputs (HLL goes dense past 256),
         * repeats and NULLs in small ones. */
        int64_t i = n > 300 ? (int64_t)(r * 7919 % 100003) - 500
                            : (int64_t)(r * 37 % 11) - 3;
        if (r % 7 == 3) {
            xset_null(b, 0, r);
        } else {
            xset_i64(b, 0, r, i);
        }
        if (r % 5 == 4) {
            xset_null(b, 1, r);
        } else {
            xset_f64(b, 1, r, (double)i * 0.37 + 1000.0);
        }
        snprintf(s, sizeof(s), "v%lld", (long long)(r * 13 % 9));
        if (r % 6 == 2) {
            xset_null(b, 2, r);
        } else {
            xset_str(b, 2, r, r % 11 == 5 ? "" : s);
        }
        xset_i64(b, 3, r, i * 101);
        if (r % 4 == 1) {
            xset_null(b, 4, r);
        } else {
            xset_str(b, 4, r, r % 3 == 0 ? ";" : "--");
        }
        b->cols[5].v.u8[r] = (uint8_t)(r % 3 == 0);
        b->cols[5].nulls[r] = 0;
        xset_i64(b, 6, r, (int64_t)r * SEC);
    }
    b->nrows = n;
    return b;
}

struct ag_case {
    const char *name;
    int distinct;
    int args[2]; /* column indexes; -1: none */
};

static const struct ag_case ag_cases[] = {
    {"COUNT", 0, {-1, -1}},         {"COUNT", 0, {2, -1}},
    {"COUNT", 1, {0, -1}},          {"COUNT", 1, {2, -1}},
    {"COUNT", 1, {1, -1}},          {"SUM", 0, {0, -1}},
    {"SUM", 0, {1, -1}},            {"SUM", 0, {3, -1}},
    {"AVG", 0, {0, -1}},            {"AVG", 0, {1, -1}},
    {"AVG", 0, {3, -1}},            {"MIN", 0, {0, -1}},
    {"MIN", 0, {2, -1}},            {"MAX", 0, {2, -1}},
    {"MAX", 0, {1, -1}},            {"MAX", 0, {5, -1}},
    {"MIN", 0, {6, -1}},            {"FIRST_VALUE", 0, {2, -1}},
    {"FIRST_VALUE", 0, {0, -1}},    {"LAST_VALUE", 0, {2, -1}},
    {"LAST_VALUE", 0, {3, -1}},     {"STDDEV_SAMP", 0, {1, -1}},
    {"STDDEV", 0, {1, -1}},         {"STDDEV_POP", 0, {1, -1}},
    {"VAR_SAMP", 0, {1, -1}},       {"VARIANCE", 0, {1, -1}},
    {"VAR_POP", 0, {1, -1}},        {"APPROX_COUNT_DISTINCT", 0, {0, -1}},
    {"APPROX_COUNT_DISTINCT", 0, {2, -1}},
    {"STRING_AGG", 0, {2, 4}},      {"LISTAGG", 0, {2, 4}},
    {"COLLECT_LIST", 0, {2, -1}},   {"ARRAY_AGG", 0, {0, -1}},
};

struct ag_rig {
    const struct velo_agg *agg;
    const struct velo_column *args[2];
    struct velo_datatype rt;
    struct velo_eval_ctx ev;
};

static int ag_rig_init(struct ag_rig *g, const struct ag_case *c,
                       const struct velo_batch *b)
{
    memset(g, 0, sizeof(*g));
    struct velo_datatype at[2], cast[2];
    size_t n = 0;
    for (size_t k = 0; k < 2; k++) {
        if (c->args[k] >= 0) {
            g->args[n] = &b->cols[c->args[k]];
            at[n] = b->cols[c->args[k]].type;
            n++;
        }
    }
    int known = 0;
    g->agg = velo_funcs_resolve_agg(funcs, c->name, at, n, cast, &known);
    if (g->agg == NULL) {
        return -1;
    }
    if (c->distinct) {
        g->agg = velo_agg_count_distinct();
    }
    g->rt = g->agg->ret_type != NULL ? g->agg->ret_type(at, n) : g->agg->ret;
    if (g->rt.id == VELO_TYPE_NULL) {
        g->rt = at[0];
    }
    velo_eval_ctx_init(&g->ev, 8, 1);
    return 0;
}

/* Update a fresh state with rows [from, to) of b. */
static void *ag_state(struct ag_rig *g, struct velo_arena *arena,
                      size_t from, size_t to)
{
    void *st = calloc(1, g->agg->state_size + 8);
    g->agg->init(st);
    struct velo_agg_ctx ctx = {arena, &g->ev};
    uint16_t rows[1024];
    uint32_t gid[1024] = {0};
    size_t n = 0;
    for (size_t r = from; r < to; r++) {
        rows[n++] = (uint16_t)r;
    }
    if (n > 0) {
        g->agg->update(&ctx, st, g->agg->state_size, gid, g->args, rows, n);
    }
    return st;
}

/* The final value of a state as text. */
static void ag_render(struct ag_rig *g, const void *st,
                      struct velo_arena *arena, char *buf, size_t len)
{
    struct velo_schema *sc = velo_schema_create(1);
    velo_schema_set(sc, 0, "x", g->rt, 1, 0);
    struct velo_batch *out = velo_batch_create(sc, 4);
    struct velo_agg_ctx ctx = {arena, &g->ev};
    g->agg->final(&ctx, st, &out->cols[0], 0, out->arena);
    if (g->ev.row_error[0]) {
        snprintf(buf, len, "ERR %s", g->ev.first_msg);
        velo_eval_ctx_clear(&g->ev, 8);
    } else {
        xrender(&out->cols[0], 0, buf, len);
    }
    velo_batch_destroy(out);
    velo_schema_destroy(sc);
}

/* Doubles computed in another order may differ in the last bits. */
static int ag_same(const char *a, const char *b)
{
    if (strcmp(a, b) == 0) {
        return 1;
    }
    char *ea, *eb;
    double x = strtod(a, &ea), y = strtod(b, &eb);
    return *ea == '\0' && *eb == '\0' && ea != a && eb != b &&
           fabs(x - y) <= 1e-9 * (fabs(x) + fabs(y));
}

static void ag_check_case(const struct ag_case *c, size_t n, size_t split)
{
    struct velo_schema *sc = xschema(AG_SCHEMA);
    struct velo_batch *b = ag_batch(sc, n);
    struct ag_rig g;
    CU_ASSERT_EQUAL_FATAL(ag_rig_init(&g, c, b), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g.agg->merge);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g.agg->save);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g.agg->load);
    struct velo_arena *a1 = velo_arena_create(1024);
    struct velo_arena *a2 = velo_arena_create(1024);
    struct velo_arena *a3 = velo_arena_create(1024);
    void *sa = ag_state(&g, a1, 0, split);
    void *sb = ag_state(&g, a2, split, n);
    void *su = ag_state(&g, a3, 0, n);
    struct velo_agg_ctx ctx = {a1, &g.ev};
    g.agg->merge(&ctx, sa, sb);
    char want[4096], got[4096];
    ag_render(&g, su, a3, want, sizeof(want));
    ag_render(&g, sa, a1, got, sizeof(got));
    if (!ag_same(got, want)) {
        fprintf(stderr, "\n  %s%s merge (%zu rows split at %zu): got [%s] "
                "want [%s]\n", c->name, c->distinct ? " DISTINCT" : "", n,
                split, got, want);
    }
    CU_ASSERT(ag_same(got, want));
    /* The source of a merge is left intact. */
    void *sb2 = ag_state(&g, a3, split, n);
    char b1[4096], b2[4096];
    ag_render(&g, sb, a2, b1, sizeof(b1));
    ag_render(&g, sb2, a3, b2, sizeof(b2));
    CU_ASSERT_STRING_EQUAL(b1, b2);

    /* save/load: the loaded state gives the same result, reads exactly
     * what was written, and goes on updating like the original. */
    struct velo_state_writer w;
    velo_sw_init(&w);
    CU_ASSERT_EQUAL(g.agg->save(su, &w), VELO_OK);
    struct velo_arena *a4 = velo_arena_create(1024);
    void *sl = calloc(1, g.agg->state_size + 8);
    g.agg->init(sl);
    struct velo_state_reader r;
    velo_sr_init(&r, w.buf, w.len);
    struct velo_agg_ctx lctx = {a4, &g.ev};
    CU_ASSERT_EQUAL(g.agg->load(sl, &r, &lctx), VELO_OK);
    CU_ASSERT(velo_sr_ok(&r, 1));
    ag_render(&g, sl, a4, got, sizeof(got));
    CU_ASSERT_STRING_EQUAL(got, want);
    /* Merging into a loaded state works too (its buffers are its own). */
    g.agg->merge(&lctx, sl, sb);
    g.agg->merge(&ctx, su, sb);
    ag_render(&g, sl, a4, got, sizeof(got));
    ag_render(&g, su, a3, want, sizeof(want));
    CU_ASSERT(ag_same(got, want));

    /* Every proper prefix is refused; damaged bytes never crash. */
    size_t bad_ok = 0;
    for (size_t len = 0; len < w.len; len++) {
        void *st = calloc(1, g.agg->state_size + 8);
        g.agg->init(st);
        velo_sr_init(&r, w.buf, len);
        int rc = g.agg->load(st, &r, &lctx);
        bad_ok += rc == VELO_OK && velo_sr_ok(&r, 1);
        free(st);
    }
    CU_ASSERT_EQUAL(bad_ok, 0);
    for (size_t pos = 0; pos < w.len && pos < 64; pos++) {
        uint8_t *copy = malloc(w.len);
        memcpy(copy, w.buf, w.len);
        copy[pos] ^= 0xa5;
        void *st = calloc(1, g.agg->state_size + 8);
        g.agg->init(st);
        velo_sr_init(&r, copy, w.len);
        if (g.agg->load(st, &r, &lctx) == VELO_OK) {
            ag_render(&g, st, a4, got, sizeof(got)); /* must not crash */
        }
        free(st);
        free(copy);
    }
    velo_sw_free(&w);
    free(sa);
    free(sb);
    free(sb2);
    free(su);
    free(sl);
    velo_arena_destroy(a1);
    velo_arena_destroy(a2);
    velo_arena_destroy(a3);
    velo_arena_destroy(a4);
    velo_eval_ctx_free(&g.ev);
    velo_batch_destroy(b);
    velo_schema_destroy(sc);
}

static void test_agg_merge_save_load(void)
{
    static const size_t sizes[][2] = {
        {20, 9}, {20, 0}, {20, 20}, {0, 0}, {3, 1}, {700, 350}, {700, 40}};
    for (size_t i = 0; i < sizeof(ag_cases) / sizeof(ag_cases[0]); i++) {
        for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
            ag_check_case(&ag_cases[i], sizes[k][0], sizes[k][1]);
        }
    }
}

/* Spot checks with known answers, so the property above cannot pass on
 * two equally wrong paths. */
static void test_agg_merge_values(void)
{
    struct velo_schema *sc = xschema(AG_SCHEMA);
    struct velo_batch *b = velo_batch_create(sc, 8);
    const double xs[] = {2, 4, 4, 4, 5, 5, 7, 9};
    const char *ss[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    for (size_t r = 0; r < 8; r++) {
        xset_i64(b, 0, r, (int64_t)xs[r]);
        xset_f64(b, 1, r, xs[r]);
        xset_str(b, 2, r, ss[r]);
        xset_i64(b, 3, r, 0);
        xset_str(b, 4, r, r == 5 ? "+" : ",");
        b->cols[5].nulls[r] = 0;
        xset_i64(b, 6, r, 0);
    }
    b->nrows = 8;
    static const struct {
        struct ag_case c;
        const char *want;
    } cases[] = {
        {{"VAR_POP", 0, {1, -1}}, "4"},
        {{"STDDEV_POP", 0, {1, -1}}, "2"},
        {{"STRING_AGG", 0, {2, 4}}, "a,b,c,d,e+f,g,h"},
        {{"FIRST_VALUE", 0, {2, -1}}, "a"},
        {{"LAST_VALUE", 0, {2, -1}}, "h"},
        {{"COLLECT_LIST", 0, {0, -1}}, "[2,4,4,4,5,5,7,9]"},
        {{"COUNT", 1, {0, -1}}, "5"},
        {{"APPROX_COUNT_DISTINCT", 0, {1, -1}}, "5"},
        {{"SUM", 0, {0, -1}}, "40"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ag_rig g;
        CU_ASSERT_EQUAL_FATAL(ag_rig_init(&g, &cases[i].c, b), 0);
        struct velo_arena *a = velo_arena_create(256);
        /* Split at 5: the STRING_AGG separator of row 5 joins the halves. */
        void *x = ag_state(&g, a, 0, 5), *y = ag_state(&g, a, 5, 8);
        struct velo_agg_ctx ctx = {a, &g.ev};
        g.agg->merge(&ctx, x, y);
        char got[256];
        ag_render(&g, x, a, got, sizeof(got));
        if (!ag_same(got, cases[i].want)) {
            fprintf(stderr, "\n  %s: got [%s] want [%s]\n", cases[i].c.name,
                    got, cases[i].want);
        }
        CU_ASSERT(ag_same(got, cases[i].want));
        free(x);
        free(y);
        velo_arena_destroy(a);
        velo_eval_ctx_free(&g.ev);
    }
    velo_batch_destroy(b);
    velo_schema_destroy(sc);
}

/* ---- SESSION windows --------------------------------------------------- */

static struct velo_agg_call sagg(const struct velo_schema *s, const char *name,
                                 const char *arg, const char *arg2,
                                 const char *out)
{
    return xagg(funcs, s, name, arg, arg2, NULL, 0, out);
}

/* COUNT(*), SUM(v), STRING_AGG(s, ',') per key k over (k STRING, v BIGINT,
 * s STRING, _timestamp); with `more`, also MIN(s), COUNT(DISTINCT v),
 * AVG(v) and COLLECT_LIST(v) (checkpoint tests). */
static struct velo_op *srig_op(struct xrig *r, size_t cap,
                               const struct velo_window_spec *w, int emit,
                               int more)
{
    memset(r, 0, sizeof(*r));
    xenv_init(&r->x, funcs, cap);
    r->in = xschema("k:STRING;v:BIGINT;s:STRING;_timestamp:TIMESTAMP");
    struct velo_expr *keys[1] = {xparse(funcs, r->in, "$0")};
    const char *kn[1] = {"k"};
    struct velo_agg_call calls[7] = {
        sagg(r->in, "COUNT", NULL, NULL, "n"),
        sagg(r->in, "SUM", "$1", NULL, "s"),
        sagg(r->in, "STRING_AGG", "$2", "','", "l"),
        sagg(r->in, "MIN", "$2", NULL, "mn"),
        sagg(r->in, "COUNT", "$1", NULL, "nd"),
        sagg(r->in, "AVG", "$1", NULL, "av"),
        sagg(r->in, "COLLECT_LIST", "$1", NULL, "cl")};
    calls[4].distinct = 1;
    size_t ncalls = more ? 7 : 3;
    for (size_t j = ncalls; j < 7; j++) {
        velo_expr_free(calls[j].args[0]);
    }
    r->op = velo_op_aggregate(&r->x.env, r->in, keys, kn, 1, calls, ncalls, w,
                              emit);
    if (r->op != NULL) {
        xrig_attach(r);
    }
    return r->op;
}

static void sadd(struct xrig *r, const char *k, int64_t v, int64_t t_us,
                 int64_t line)
{
    struct velo_batch *b = r->b;
    size_t row = b->nrows++;
    char s[32];
    snprintf(s, sizeof(s), "%c%lld", k[0], (long long)v);
    xset_str(b, 0, row, k);
    xset_i64(b, 1, row, v);
    xset_str(b, 2, row, s);
    xset_i64(b, 3, row, t_us);
    b->origin[row].source = 0;
    b->origin[row].line = line;
    b->origin[row].position = line;
}

#define W(a, b) "1970-01-01T00:00:" a ".000Z|1970-01-01T00:00:" b ".000Z"

static void test_session_final_basic(void)
{
    struct xrig r;
    struct velo_window_spec w = {.kind = VELO_WINDOW_SESSION,
                                 .size_us = 10 * SEC,
                                 .late_strategy = VELO_LATE_DROP};
    CU_ASSERT_PTR_NOT_NULL_FATAL(srig_op(&r, 8, &w, VELO_EMIT_FINAL, 0));
    sadd(&r, "a", 1, 1 * SEC, 1);
    sadd(&r, "b", 2, 3 * SEC, 2);
    sadd(&r, "a", 4, 9 * SEC, 3);  /* within 10 s of 1 s: extends */
    sadd(&r, "a", 8, 18 * SEC, 4); /* within 10 s of 9 s */
    xrig_push(&r);
    /* Watermark 18 s: b's [3,13) has closed. */
    CU_ASSERT_STRING_EQUAL(xsink_text(&r.out), W("03", "13") "|b|1|2|b2\n");
    CU_ASSERT_EQUAL(r.op->stats.state_rows, 1);
    xsink_reset(&r.out);
    /* Watermark 30 s: a's [1,28) has closed. */
    sadd(&r, "a", 16, 30 * SEC, 5);
    xrig_push(&r);
    CU_ASSERT_STRING_EQUAL(xsink_text(&r.out),
                           W("01", "28") "|a|3|13|a1,a4,a8\n");
    CU_ASSERT_EQUAL(r.op->stats.state_rows, 1);
    xsink_reset(&r.out);
    CU_ASSERT_EQUAL(velo_op_finish(r.op), VELO_OK);
    CU_ASSERT_STRING_EQUAL(xsink_text(&r.out), W("30", "40") "|a|1|16|a16\n");
    CU_ASSERT_EQUAL(r.op->stats.state_rows, 0);
    char buf[512];
    r.op->ops->explain(r.op, buf, sizeof(buf));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "window: SESSION gap 10 SECONDS"));
    xrig_free(&r);
}

/* A row that arrives late but within the disorder bridges two sessions:
 * the later one is retracted and the merged row replaces the earlier. */
static void test_session_changes_merge(void)
{
    struct xrig r;
    struct velo_window_spec w = {.kind = VELO_WINDOW_SESSION,
                                 .size_us = 10 * SEC,
                                 .max_ooo_us = 20 * SEC,
                                 .late_strategy = VELO_LATE_DROP};
    CU_ASSERT_PTR_NOT_NULL_FATAL(srig_op(&r, 8, &w, VELO_EMIT_CHANGES, 0));
    sadd(&r, "a", 1, 1 * SEC, 1);
    sadd(&r, "a", 2, 15 * SEC, 2);
    sadd(&r, "b", 3, 16 * SEC, 3);
    sadd(&r, "a", 4, 8 * SEC, 4); /* 8 < 1 + 10 and 15 < 8 + 10 */
    sadd(&r, "a", 5, 20 * SEC, 5);
    xrig_push(&r);
    CU_ASSERT_STRING_EQUAL(xsink_text(&r.out),
                           W("01", "11") "|a|1|1|a1 +I\n"
                           W("15", "25") "|a|1|2|a2 +I\n"
                           W("16", "26") "|b|1|3|b3 +I\n"
                           W("15", "25") "|a|1|2|a2 -D\n"
                           W("01", "25") "|a|3|7|a1,a2,a4 +U\n"
                           W("01", "30") "|a|4|12|a1,a2,a4,a5 +U\n");
    CU_ASSERT_EQUAL(r.op->stats.state_rows, 2);
    xrig_free(&r);

    /* The same rows one per batch: batch boundaries change nothing. */
    CU_ASSERT_PTR_NOT_NULL_FATAL(srig_op(&r, 8, &w, VELO_EMIT_CHANGES, 0));
    const int64_t ts[] = {1, 15, 16, 8, 20};
    const char *ks[] = {"a", "a", "b", "a", "a"};
    for (int i = 0; i < 5; i++) {
        sadd(&r, ks[i], i + 1, ts[i] * SEC, i + 1);
        xrig_push(&r);
    }
    CU_ASSERT_EQUAL(r.out.rows, 6);
    CU_ASSERT_PTR_NOT_NULL(strstr(xsink_text(&r.out),
                                  W("15", "25") "|a|1|2|a2 -D\n"
                                  W("01", "25") "|a|3|7|a1,a2,a4 +U\n"));
    xrig_free(&r);
}

/* FINAL with a bridge: one merged row at the end; a row that would
 * extend a session only after it closed starts a new one (grace), a row
 * whose own session has closed is late. */
static void test_session_grace_and_late(void)
{
    struct xrig r;
    struct velo_window_spec w = {.kind = VELO_WINDOW_SESSION,
                                 .size_us = 5 * SEC,
                                 .grace_us = 2 * SEC,
                                 .late_strategy = VELO_LATE_DROP};
    CU_ASSERT_PTR_NOT_NULL_FATAL(srig_op(&r, 16, &w, VELO_EMIT_FINAL, 0));
    sadd(&r, "a", 1, 1 * SEC, 1);  /* [1,6) closes at 8 */
    sadd(&r, "b", 2, 7 * SEC, 2);  /* watermark 7: a still open */
    sadd(&r, "a", 3, 4 * SEC, 3);  /* extends a to [1,9), closes at 11 */
    sadd(&r, "b", 4, 11 * SEC, 4); /* watermark 11: a closes */
    sadd(&r, "a", 5, 3 * SEC, 5);  /* own session [3,8) +2 <= 11: late */
    sadd(&r, "a", 6, 9 * SEC, 6);  /* [9,14) +2 > 11: a new session */
    xrig_push(&r);
    CU_ASSERT_EQUAL(r.op->stats.rows_late, 1);
    CU_ASSERT_EQUAL(r.x.late, 1);
    CU_ASSERT_EQUAL(r.x.last_origin.line, 5);
    CU_ASSERT_EQUAL(r.x.last_late_wm, 11 * SEC);
    CU_ASSERT_STRING_EQUAL(xsink_text(&r.out), W("01", "09") "|a|2|4|a1,a3\n");
    xsink_reset(&r.out);
    CU_ASSERT_EQUAL(velo_op_watermark(r.op, 15 * SEC), VELO_OK);
    CU_ASSERT_STRING_EQUAL(xsink_text(&r.out), "");
    CU_ASSERT_EQUAL(velo_op_watermark(r.op, 16 * SEC), VELO_OK);
    CU_ASSERT_STRING_EQUAL(xsink_text(&r.out),
                           W("09", "14") "|a|1|6|a6\n");
    xsink_reset(&r.out);
    CU_ASSERT_EQUAL(velo_op_finish(r.op), VELO_OK);
    CU_ASSERT_STRING_EQUAL(xsink_text(&r.out),
                           W("07", "16") "|b|2|6|b2,b4\n");
    xrig_free(&r);
}

/* The update strategy: a closed session is held for max(grace, disorder)
 * and a late row still joins it. */
static void test_session_late_update(void)
{
    struct xrig r;
    struct velo_window_spec w = {.kind = VELO_WINDOW_SESSION,
                                 .size_us = 5 * SEC,
                                 .grace_us = 3 * SEC,
                                 .late_strategy = VELO_LATE_UPDATE};
    CU_ASSERT_PTR_NOT_NULL_FATAL(srig_op(&r, 16, &w, VELO_EMIT_CHANGES, 0));
    sadd(&r, "a", 1, 1 * SEC, 1);  /* [1,6): closes at 9, held until 12 */
    sadd(&r, "b", 2, 10 * SEC, 2); /* watermark 10 */
    sadd(&r, "a", 4, 2 * SEC, 3);  /* late, held: updates a */
    sadd(&r, "b", 8, 13 * SEC, 4); /* watermark 13: a released */
    sadd(&r, "a", 16, 3 * SEC, 5); /* dropped */
    xrig_push(&r);
    CU_ASSERT_STRING_EQUAL(xsink_text(&r.out),
                           W("01", "06") "|a|1|1|a1 +I\n"
                           W("10", "15") "|b|1|2|b2 +I\n"
                           W("01", "07") "|a|2|5|a1,a4 +U\n"
                           W("10", "18") "|b|2|10|b2,b8 +U\n");
    CU_ASSERT_EQUAL(r.op->stats.rows_late, 2);
    CU_ASSERT_EQUAL(r.op->stats.rows_late_updated, 1);
    CU_ASSERT_EQUAL(r.x.late, 1);
    CU_ASSERT_EQUAL(r.x.last_origin.line, 5);
    CU_ASSERT_EQUAL(r.op->stats.state_rows, 1);
    xrig_free(&r);
}

/* State follows the open sessions: many keys come and go, the key table
 * is rebuilt, and what is left still aggregates correctly. */
static void test_session_state_bounded(void)
{
    struct xrig r;
    struct velo_window_spec w = {.kind = VELO_WINDOW_SESSION,
                                 .size_us = 2 * SEC,
                                 .late_strategy = VELO_LATE_DROP};
    CU_ASSERT_PTR_NOT_NULL_FATAL(srig_op(&r, 256, &w, VELO_EMIT_FINAL, 0));
    size_t peak = 0;
    for (int round = 0; round < 40; round++) {
        for (int i = 0; i < 256; i++) {
            char k[16];
            snprintf(k, sizeof(k), "k%d", round * 256 + i);
            sadd(&r, k, 1, (int64_t)round * 10 * SEC + i, i);
        }
        xrig_push(&r);
        if (r.op->stats.state_bytes > peak) {
            peak = r.op->stats.state_bytes;
        }
        CU_ASSERT(r.op->stats.state_rows <= 256);
    }
    CU_ASSERT_EQUAL(r.out.rows, 39 * 256);
    /* 10240 keys seen; state stays at a few rounds' worth. */
    CU_ASSERT(r.op->stats.state_bytes < (size_t)2 << 20);
    sadd(&r, "k10239", 5, 391 * SEC, 1); /* extends the last round's */
    xrig_push(&r);
    xsink_reset(&r.out);
    CU_ASSERT_EQUAL(velo_op_finish(r.op), VELO_OK);
    CU_ASSERT_EQUAL(r.out.rows, 256);
    CU_ASSERT_PTR_NOT_NULL(strstr(xsink_text(&r.out), "|k10239|2|6|"));
    xrig_free(&r);
}

/* Keeps the STRING_AGG column (5) of key y's last row, whole. */
static int capture_y_text(void *arg, struct velo_batch *b)
{
    char **keep = arg;
    size_t n = velo_batch_live(b);
    for (size_t i = 0; i < n; i++) {
        size_t r = b->sel != NULL ? b->sel[i] : i;
        const struct velo_str *k = &b->cols[2].v.str[r];
        if (k->len == 1 && k->ptr[0] == 'y') {
            const struct velo_str *t = &b->cols[5].v.str[r];
            free(*keep);
            *keep = malloc(t->len + 1);
            memcpy(*keep, t->ptr, t->len);
            (*keep)[t->len] = '\0';
        }
    }
    return VELO_OK;
}

/* Sessions with large STRING_AGG texts: the arena's dead data is dropped
 * by moving the live states (save/load) to a fresh arena, and the live
 * sessions' texts survive the move intact. */
static void test_session_arena_moves(void)
{
    struct xrig r;
    struct velo_window_spec w = {.kind = VELO_WINDOW_SESSION,
                                 .size_us = 1 * SEC,
                                 .late_strategy = VELO_LATE_DROP};
    CU_ASSERT_PTR_NOT_NULL_FATAL(srig_op(&r, 64, &w, VELO_EMIT_FINAL, 0));
    char big[1001];
    size_t peak = 0;
    for (int round = 0; round < 120; round++) {
        for (int i = 0; i < 40; i++) {
            memset(big, 'a' + (round + i) % 26, 1000);
            big[1000] = '\0';
            const char *k = i % 2 ? "x" : "y";
            sadd(&r, k, 1, (int64_t)round * 10 * SEC + i * 1000, i);
            xset_str(r.b, 2, r.b->nrows - 1, big);
            if (r.b->nrows == 40) {
                xrig_push(&r);
            }
        }
        if (r.op->stats.state_bytes > peak) {
            peak = r.op->stats.state_bytes;
        }
    }

    /* 4.8 MB of text went through; the arena is moved once past 4 MB
     * (and twice its live size), so it never holds it all. */
    CU_ASSERT(peak < 4600000);
    char *got = NULL;
    struct velo_op *cap = velo_op_callback(&r.x.env, r.op->out_schema,
                                           capture_y_text, NULL, &got, "y");
    velo_op_connect(r.op, cap);
    xsink_reset(&r.out);
    CU_ASSERT_EQUAL(velo_op_finish(r.op), VELO_OK);
    CU_ASSERT_EQUAL(r.out.rows, 2);
    /* Round 119's session of y: rows 0, 2, ..., 38. */
    size_t want_len = 20 * 1000 + 19;
    char *want = malloc(want_len + 1), *p = want;
    for (int i = 0; i < 40; i += 2) {
        if (i > 0) {
            *p++ = ',';
        }
        memset(p, 'a' + (119 + i) % 26, 1000);
        p += 1000;
    }
    *p = '\0';
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    CU_ASSERT_EQUAL(strlen(got), want_len);
    CU_ASSERT_STRING_EQUAL(got, want);
    free(got);
    free(want);
    velo_op_destroy(cap);
    xrig_free(&r);
}

static void test_session_bad_spec(void)
{
    struct xrig r;
    struct velo_window_spec w = {.kind = VELO_WINDOW_SESSION,
                                 .size_us = 0,
                                 .late_strategy = VELO_LATE_DROP};
    CU_ASSERT_PTR_NULL(srig_op(&r, 8, &w, VELO_EMIT_FINAL, 0));
    xrig_free(&r);
    w.size_us = SEC;
    w.late_strategy = VELO_LATE_UPDATE;
    CU_ASSERT_PTR_NULL(srig_op(&r, 8, &w, VELO_EMIT_FINAL, 0));
    xrig_free(&r);
}

/* ---- The pending golden cases, through the operator -------------------- */

/* tests/sql/pending/session_*.sql run SESSION windows through the planner
 * (being wired); their expected outputs were computed by a Python model
 * (session_expected.py). Here the same data goes straight into the
 * operator with the cases' window specs, so the operator and the model
 * are checked against each other now. */

#define SQL_DIR_FROM_THIS_FILE "/../sql/"

static char *sql_path(const char *rel)
{
    const char *self = __FILE__;
    const char *slash = strrchr(self, '/');
    size_t dir = slash != NULL ? (size_t)(slash - self) : 0;
    size_t len = dir + strlen(SQL_DIR_FROM_THIS_FILE) + strlen(rel) + 1;
    char *p = malloc(len);
    snprintf(p, len, "%.*s%s%s", (int)dir, self, SQL_DIR_FROM_THIS_FILE,
             rel);
    return p;
}

static int line_cmp_final(const void *x, const void *y)
{
    /* ORDER BY user_id, ws: fields 3 and 1 of "ws,we,user,..." */
    const char *a = *(const char *const *)x, *b = *(const char *const *)y;
    const char *ua = strchr(strchr(a, ',') + 1, ',') + 1;
    const char *ub = strchr(strchr(b, ',') + 1, ',') + 1;
    size_t la = strcspn(ua, ","), lb = strcspn(ub, ",");
    int c = strncmp(ua, ub, la < lb ? la : lb);
    if (c == 0 && la != lb) {
        c = la < lb ? -1 : 1;
    }
    return c != 0 ? c : strncmp(a, b, 24);
}

/* Run data file `data` through a session aggregate and render the output
 * as `velo run --format csv` would print the case. */
static char *golden_run(const char *data, const struct velo_window_spec *w,
                        int emit, int parts, size_t per_batch)
{
    struct xrig r;
    memset(&r, 0, sizeof(r));
    xenv_init(&r.x, funcs, 16);
    r.in = xschema("user_id:STRING;amount:BIGINT;s:STRING;"
                   "_timestamp:TIMESTAMP");
    struct velo_expr *keys[1] = {xparse(funcs, r.in, "$0")};
    const char *kn[1] = {"user_id"};
    struct velo_agg_call calls[3] = {
        sagg(r.in, "COUNT", NULL, NULL, "n"),
        sagg(r.in, "SUM", "$1", NULL, "total"),
        sagg(r.in, "STRING_AGG", "$2", "'+'", "parts")};
    if (!parts) {
        velo_expr_free(calls[2].args[0]);
        velo_expr_free(calls[2].args[1]);
    }
    r.op = velo_op_aggregate(&r.x.env, r.in, keys, kn, 1, calls,
                             parts ? 3 : 2, w, emit);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r.op);
    r.sink = velo_op_callback(&r.x.env, r.op->out_schema, xsink_fn,
                              xsink_finish, &r.out, "test");
    velo_op_connect(r.op, r.sink);
    r.b = velo_batch_create(r.in, 16);
    char *path = sql_path(data);
    char *csv = tu_read_file(path, NULL);
    free(path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(csv);
    char *save = NULL;
    int64_t line = 0;
    for (char *l = strtok_r(csv, "\n", &save); l != NULL;
         l = strtok_r(NULL, "\n", &save)) {
        if (line++ == 0) {
            continue; /* header */
        }
        char *c1 = strchr(l, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
        CU_ASSERT_PTR_NOT_NULL_FATAL(c2);
        int64_t ts;
        CU_ASSERT_EQUAL_FATAL(velo_parse_timestamp(l, (size_t)(c1 - l), &ts),
                              VELO_OK);
        *c2 = '\0';
        size_t row = r.b->nrows++;
        xset_str(r.b, 0, row, c1 + 1);
        xset_i64(r.b, 1, row, atoll(c2 + 1));
        xset_str(r.b, 2, row, c2 + 1);
        xset_i64(r.b, 3, row, ts);
        r.b->origin[row].line = line;
        if (r.b->nrows == per_batch) {
            xrig_push(&r);
        }
    }
    free(csv);
    if (r.b->nrows > 0) {
        xrig_push(&r);
    }
    CU_ASSERT_EQUAL(velo_op_finish(r.op), VELO_OK);
    /* "ws|we|user|n|total[|parts][ +I]" -> CSV lines. */
    char *text = strdup(xsink_text(&r.out));
    char *lines[256];
    size_t n = 0;
    for (char *l = strtok_r(text, "\n", &save); l != NULL && n < 256;
         l = strtok_r(NULL, "\n", &save)) {
        lines[n++] = l;
    }
    size_t cap = strlen(xsink_text(&r.out)) + 4096, used = 0;
    char *out = malloc(cap);
    used += (size_t)snprintf(out, cap, "%sws,we,user_id,n,total%s\n",
                             emit == VELO_EMIT_CHANGES ? "_op," : "",
                             parts ? ",parts" : "");
    for (size_t i = 0; i < n; i++) {
        for (char *p = lines[i]; *p; p++) {
            *p = *p == '|' ? ',' : *p;
        }
    }
    if (emit == VELO_EMIT_FINAL) {
        qsort(lines, n, sizeof(*lines), line_cmp_final);
    }
    for (size_t i = 0; i < n; i++) {
        const char *op = "";
        char *mark = strrchr(lines[i], ' ');
        if (emit == VELO_EMIT_CHANGES && mark != NULL) {
            op = strcmp(mark, " +I") == 0   ? "insert,"
                 : strcmp(mark, " +U") == 0 ? "update,"
                                            : "delete,";
            *mark = '\0';
        }
        used += (size_t)snprintf(out + used, cap - used, "%s%s\n", op,
                                 lines[i]);
    }
    free(text);
    xrig_free(&r);
    return out;
}

/* The expected output of a case: under pending/ until the planner runs
 * SESSION windows, under expected/ once the cases have moved to cases/. */
static char *golden_expected(const char *name)
{
    char rel[256];
    snprintf(rel, sizeof(rel), "pending/expected/%s.out", name);
    char *path = sql_path(rel);
    char *text = tu_read_file(path, NULL);
    free(path);
    if (text == NULL) {
        snprintf(rel, sizeof(rel), "expected/%s.out", name);
        path = sql_path(rel);
        text = tu_read_file(path, NULL);
        free(path);
    }
    return text;
}

static void golden_check(const char *data, const char *expected,
                         const struct velo_window_spec *w, int emit,
                         int parts)
{
    char *want = golden_expected(expected);
    CU_ASSERT_PTR_NOT_NULL_FATAL(want);
    /* All rows in one batch, then one row per batch: the same output. */
    const size_t per[] = {16, 1, 3};
    for (size_t i = 0; i < 3; i++) {
        char *got = golden_run(data, w, emit, parts, per[i]);
        if (strcmp(got, want) != 0) {
            fprintf(stderr, "\n  %s (%zu rows per batch):\ngot:\n%s\n"
                    "want:\n%s\n", expected, per[i], got, want);
        }
        CU_ASSERT_STRING_EQUAL(got, want);
        free(got);
    }
    free(want);
}

static void test_session_golden_cases(void)
{
    struct velo_window_spec plain = {.kind = VELO_WINDOW_SESSION,
                                     .size_us = 30 * SEC};
    struct velo_window_spec ooo = plain, grace = plain;
    ooo.max_ooo_us = 60 * SEC;
    grace.grace_us = 60 * SEC;
    golden_check("data/session_clicks.csv", "session_basic_final", &plain,
                 VELO_EMIT_FINAL, 0);
    golden_check("data/session_clicks.csv", "session_basic_changes", &plain,
                 VELO_EMIT_CHANGES, 0);
    golden_check("data/session_ooo.csv", "session_merge_changes", &ooo,
                 VELO_EMIT_CHANGES, 0);
    golden_check("data/session_ooo.csv", "session_merge_final", &ooo,
                 VELO_EMIT_FINAL, 1);
    golden_check("data/session_ooo.csv", "session_grace", &grace,
                 VELO_EMIT_FINAL, 0);
    golden_check("data/session_ooo.csv", "session_late_dropped", &plain,
                 VELO_EMIT_FINAL, 0);
}

/* ---- Checkpoints ------------------------------------------------------- */

struct sev {
    const char *k;
    int64_t v, t;
};

/* Feed evs in batches of `per` rows; with snap_at >= 0, after that many
 * rows snapshot, destroy, rebuild, restore and go on. Returns the output
 * text (malloc'd). */
static char *run_snap(const struct velo_window_spec *w, int emit,
                      const struct sev *evs, size_t n, size_t per,
                      long snap_at, int grouped)
{
    struct xrig r;
    struct velo_window_spec spec = *w;
    if (srig_op(&r, 16, &spec, emit, 1) == NULL) {
        return NULL;
    }
    if (!grouped) {
        /* Rebuild as a global aggregate without keys. */
        xrig_free(&r);
        memset(&r, 0, sizeof(r));
        xenv_init(&r.x, funcs, 16);
        r.in = xschema("k:STRING;v:BIGINT;s:STRING;_timestamp:TIMESTAMP");
        struct velo_agg_call calls[2] = {
            sagg(r.in, "COUNT", NULL, NULL, "n"),
            sagg(r.in, "STRING_AGG", "$2", "','", "l")};
        r.op = velo_op_aggregate(&r.x.env, r.in, NULL, NULL, 0, calls, 2,
                                 w->kind ? &spec : NULL, emit);
        r.sink = velo_op_callback(&r.x.env, r.op->out_schema, xsink_fn,
                                  xsink_finish, &r.out, "test");
        velo_op_connect(r.op, r.sink);
        r.b = velo_batch_create(r.in, 16);
    }
    for (size_t i = 0; i < n; i++) {
        sadd(&r, evs[i].k, evs[i].v, evs[i].t, (int64_t)i + 1);
        if (r.b->nrows == per || i + 1 == n || (long)i + 1 == snap_at) {
            xrig_push(&r);
        }
        if ((long)i + 1 == snap_at) {
            struct velo_state_writer sw;
            velo_sw_init(&sw);
            CU_ASSERT_EQUAL(r.op->ops->snapshot(r.op, &sw), VELO_OK);
            /* A fresh operator of the same plan. */
            struct velo_op *old = r.op;
            r.op = NULL;
            struct xrig f;
            char *text = r.out.text;
            size_t len = r.out.len, cap = r.out.cap, rows = r.out.rows;
            r.out.text = NULL;
            velo_op_destroy(old);
            velo_op_destroy(r.sink);
            velo_batch_destroy(r.b);
            velo_schema_destroy(r.in);
            if (grouped) {
                srig_op(&f, 16, &spec, emit, 1);
            } else {
                memset(&f, 0, sizeof(f));
                xenv_init(&f.x, funcs, 16);
                f.in = xschema("k:STRING;v:BIGINT;s:STRING;"
                               "_timestamp:TIMESTAMP");
                struct velo_agg_call calls[2] = {
                    sagg(f.in, "COUNT", NULL, NULL, "n"),
                    sagg(f.in, "STRING_AGG", "$2", "','", "l")};
                f.op = velo_op_aggregate(&f.x.env, f.in, NULL, NULL, 0, calls,
                                         2, w->kind ? &spec : NULL, emit);
                f.sink = velo_op_callback(&f.x.env, f.op->out_schema, xsink_fn,
                                          xsink_finish, &f.out, "test");
                velo_op_connect(f.op, f.sink);
                f.b = velo_batch_create(f.in, 16);
            }
            /* Corrupt and truncated sections are refused. */
            struct velo_state_reader rd;
            if (sw.len > 1) {
                velo_sr_init(&rd, sw.buf, sw.len - 1);
                CU_ASSERT_EQUAL(f.op->ops->restore(f.op, &rd), VELO_ERR);
                xrig_free(&f);
                if (grouped) {
                    srig_op(&f, 16, &spec, emit, 1);
                } else {
                    /* Global: rebuilt below the same way. */
                    memset(&f, 0, sizeof(f));
                    xenv_init(&f.x, funcs, 16);
                    f.in = xschema("k:STRING;v:BIGINT;s:STRING;"
                                   "_timestamp:TIMESTAMP");
                    struct velo_agg_call calls[2] = {
                        sagg(f.in, "COUNT", NULL, NULL, "n"),
                        sagg(f.in, "STRING_AGG", "$2", "','", "l")};
                    f.op = velo_op_aggregate(&f.x.env, f.in, NULL, NULL, 0,
                                             calls, 2, w->kind ? &spec : NULL,
                                             emit);
                    f.sink = velo_op_callback(&f.x.env, f.op->out_schema,
                                              xsink_fn, xsink_finish, &f.out,
                                              "test");
                    velo_op_connect(f.op, f.sink);
                    f.b = velo_batch_create(f.in, 16);
                }
            }
            velo_sr_init(&rd, sw.buf, sw.len);
            CU_ASSERT_EQUAL(f.op->ops->restore(f.op, &rd), VELO_OK);
            velo_sw_free(&sw);
            r = f;
            free(r.out.text);
            r.out.text = text;
            r.out.len = len;
            r.out.cap = cap;
            r.out.rows = rows;
            /* The sink's arg pointed at f.out: rebuild it for r.out. */
            velo_op_destroy(r.sink);
            r.sink = velo_op_callback(&r.x.env, r.op->out_schema, xsink_fn,
                                      xsink_finish, &r.out, "test");
            r.op->nchildren = 0;
            velo_op_connect(r.op, r.sink);
            /* r.x moved: point the env of the operator at it again. */
            r.op->env = &r.x.env;
            r.x.env.cb_arg = &r.x;
        }
    }
    CU_ASSERT_EQUAL(velo_op_finish(r.op), VELO_OK);
    char *text = strdup(xsink_text(&r.out));
    xrig_free(&r);
    return text;
}

static void test_checkpoint_every_mode(void)
{
    struct sev evs[64];
    static const char *keys[] = {"a", "b", "c"};
    uint64_t x = 12345;
    int64_t t = 0;
    for (size_t i = 0; i < 64; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        /* Forward mostly, sometimes back within 4 s; gaps make sessions
         * end and bridges happen. */
        t += (int64_t)((x >> 33) % 5) * SEC / 2;
        int64_t back = (x >> 40) % 7 == 0 ? 3 * SEC : 0;
        evs[i].k = keys[(x >> 20) % 3];
        evs[i].v = (int64_t)((x >> 45) % 100);
        evs[i].t = t - back;
    }
    struct {
        struct velo_window_spec w;
        int emit;
    } modes[] = {
        {{.kind = VELO_WINDOW_NONE}, VELO_EMIT_CHANGES},
        {{.kind = VELO_WINDOW_NONE}, VELO_EMIT_FINAL},
        {{.kind = VELO_WINDOW_TUMBLING, .size_us = 5 * SEC,
          .max_ooo_us = 4 * SEC}, VELO_EMIT_FINAL},
        {{.kind = VELO_WINDOW_TUMBLING, .size_us = 5 * SEC,
          .grace_us = 2 * SEC, .late_strategy = VELO_LATE_UPDATE},
         VELO_EMIT_CHANGES},
        {{.kind = VELO_WINDOW_HOPPING, .size_us = 6 * SEC,
          .advance_us = 2 * SEC, .max_ooo_us = 3 * SEC}, VELO_EMIT_FINAL},
        {{.kind = VELO_WINDOW_HOPPING, .size_us = 6 * SEC,
          .advance_us = 2 * SEC}, VELO_EMIT_CHANGES},
        {{.kind = VELO_WINDOW_SESSION, .size_us = 2 * SEC,
          .max_ooo_us = 4 * SEC}, VELO_EMIT_FINAL},
        {{.kind = VELO_WINDOW_SESSION, .size_us = 2 * SEC,
          .max_ooo_us = 4 * SEC}, VELO_EMIT_CHANGES},
        {{.kind = VELO_WINDOW_SESSION, .size_us = 2 * SEC, .grace_us = SEC,
          .late_strategy = VELO_LATE_UPDATE}, VELO_EMIT_CHANGES},
    };
    for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        for (int grouped = 1; grouped >= 0; grouped--) {
            char *want = run_snap(&modes[m].w, modes[m].emit, evs, 64, 5, -1,
                                  grouped);
            CU_ASSERT_PTR_NOT_NULL_FATAL(want);
            CU_ASSERT(strlen(want) > 0);
            const long cuts[] = {5, 20, 35, 60};
            for (size_t c = 0; c < 4; c++) {
                char *got = run_snap(&modes[m].w, modes[m].emit, evs, 64, 5,
                                     cuts[c], grouped);
                int same = got != NULL && strcmp(got, want) == 0;
                if (!same) {
                    fprintf(stderr, "\n  mode %zu grouped %d cut %ld:\n"
                            "got:\n%s\nwant:\n%s\n", m, grouped, cuts[c],
                            got ? got : "(null)", want);
                }
                CU_ASSERT(same);
                free(got);
            }
            free(want);
        }
    }
}

/* Damaged sections: every single-byte change and every truncation is
 * refused or at least restores without a crash; a plan mismatch is
 * refused. */
static void test_checkpoint_corrupt(void)
{
    struct xrig r;
    struct velo_window_spec w = {.kind = VELO_WINDOW_SESSION,
                                 .size_us = 10 * SEC,
                                 .late_strategy = VELO_LATE_DROP};
    CU_ASSERT_PTR_NOT_NULL_FATAL(srig_op(&r, 8, &w, VELO_EMIT_CHANGES, 1));
    sadd(&r, "a", 1, 1 * SEC, 1);
    sadd(&r, "b", 2, 3 * SEC, 2);
    sadd(&r, "a", 3, 5 * SEC, 3);
    xrig_push(&r);
    struct velo_state_writer sw;
    velo_sw_init(&sw);
    CU_ASSERT_EQUAL_FATAL(r.op->ops->snapshot(r.op, &sw), VELO_OK);
    xrig_free(&r);
    int refused = 0;
    for (size_t len = 0; len < sw.len; len++) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(srig_op(&r, 8, &w, VELO_EMIT_CHANGES, 1));
        struct velo_state_reader rd;
        velo_sr_init(&rd, sw.buf, len);
        refused += r.op->ops->restore(r.op, &rd) == VELO_ERR;
        xrig_free(&r);
    }
    CU_ASSERT_EQUAL(refused, (int)sw.len);
    for (size_t pos = 0; pos < sw.len; pos++) {
        uint8_t *copy = malloc(sw.len);
        memcpy(copy, sw.buf, sw.len);
        copy[pos] ^= 0x5a;
        CU_ASSERT_PTR_NOT_NULL_FATAL(srig_op(&r, 8, &w, VELO_EMIT_CHANGES, 1));
        struct velo_state_reader rd;
        velo_sr_init(&rd, copy, sw.len);
        if (r.op->ops->restore(r.op, &rd) == VELO_OK) {
            sadd(&r, "a", 1, 6 * SEC, 4); /* still usable */
            xrig_push(&r);
            velo_op_finish(r.op);
        }
        xrig_free(&r);
        free(copy);
    }
    /* The same bytes into another plan (FINAL, or tumbling): refused. */
    CU_ASSERT_PTR_NOT_NULL_FATAL(srig_op(&r, 8, &w, VELO_EMIT_FINAL, 1));
    struct velo_state_reader rd;
    velo_sr_init(&rd, sw.buf, sw.len);
    CU_ASSERT_EQUAL(r.op->ops->restore(r.op, &rd), VELO_ERR);
    xrig_free(&r);
    struct velo_window_spec tw = {.kind = VELO_WINDOW_TUMBLING,
                                  .size_us = 10 * SEC};
    CU_ASSERT_PTR_NOT_NULL_FATAL(srig_op(&r, 8, &tw, VELO_EMIT_CHANGES, 1));
    velo_sr_init(&rd, sw.buf, sw.len);
    CU_ASSERT_EQUAL(r.op->ops->restore(r.op, &rd), VELO_ERR);
    xrig_free(&r);
    velo_sw_free(&sw);
}


int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 1;
    }
    funcs = velo_funcs_create();
    CU_pSuite s = CU_add_suite("session", NULL, NULL);
    CU_add_test(s, "aggregates: merge = update over the union; save/load",
                test_agg_merge_save_load);
    CU_add_test(s, "aggregates: merged values", test_agg_merge_values);
    CU_add_test(s, "session: per key, extension, FINAL at the watermark",
                test_session_final_basic);
    CU_add_test(s, "session: a bridging row merges (CHANGES, DELETE)",
                test_session_changes_merge);
    CU_add_test(s, "session: grace and late rows",
                test_session_grace_and_late);
    CU_add_test(s, "session: late update strategy", test_session_late_update);
    CU_add_test(s, "session: state follows the open sessions",
                test_session_state_bounded);
    CU_add_test(s, "session: live texts survive arena moves",
                test_session_arena_moves);
    CU_add_test(s, "session: refused specs", test_session_bad_spec);
    CU_add_test(s, "session: the pending golden cases' data and outputs",
                test_session_golden_cases);
    CU_add_test(s, "checkpoint: restore mid-stream = uninterrupted run",
                test_checkpoint_every_mode);
    CU_add_test(s, "checkpoint: corrupt or mismatched sections refused",
                test_checkpoint_corrupt);
    int rc = tu_run_all();
    velo_funcs_destroy(funcs);
    return rc;
}
