/*
 * Windows of SQL engine II in the Aggregate operator: hopping windows
 * (assignment of a row to its size/advance windows, closing, EMIT
 * CHANGES order), the bounded out-of-orderness watermark and GRACE (the
 * per-row late rule, and a property: any arrival order within the
 * allowed disorder gives exactly the FINAL rows of the sorted input), and
 * the late-data strategies drop and update.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "exectest.h"
#include "testutil.h"

static struct velo_funcs *funcs;

#define SEC INT64_C(1000000)

static struct velo_agg_call wagg(const struct velo_schema *s, const char *name,
                                 const char *arg, const char *out)
{
    return xagg(funcs, s, name, arg, NULL, NULL, 0, out);
}

/* COUNT(*), SUM(v) per key k over (k STRING, v BIGINT, _timestamp). */
static struct velo_op *wrig_op(struct xrig *r, size_t cap,
                               const struct velo_window_spec *w, int emit)
{
    memset(r, 0, sizeof(*r));
    xenv_init(&r->x, funcs, cap);
    r->in = xschema("k:STRING;v:BIGINT;_timestamp:TIMESTAMP");
    struct velo_expr *keys[1] = {xparse(funcs, r->in, "$0")};
    const char *kn[1] = {"k"};
    struct velo_agg_call calls[2] = {wagg(r->in, "COUNT", NULL, "n"),
                                     wagg(r->in, "SUM", "$1", "s")};
    r->op = velo_op_aggregate(&r->x.env, r->in, keys, kn, 1, calls, 2, w, emit);
    if (r->op != NULL) {
        xrig_attach(r);
    }
    return r->op;
}

static void wadd(struct xrig *r, const char *k, int64_t v, int64_t t_us,
                 int64_t line)
{
    struct velo_batch *b = r->b;
    size_t row = b->nrows++;
    xset_str(b, 0, row, k);
    xset_i64(b, 1, row, v);
    xset_i64(b, 2, row, t_us);
    b->origin[row].source = 0;
    b->origin[row].line = line;
    b->origin[row].position = line;
}

/* The bounds of a window within the first minute, in seconds ("05"), as
 * the output's first two columns; WNEG: the window [-5 s, b). */
#define WIN(a, b) "1970-01-01T00:00:" a ".000Z|1970-01-01T00:00:" b ".000Z"
#define WNEG(b) "1969-12-31T23:59:55.000Z|1970-01-01T00:00:" b ".000Z"

static void test_hopping_assignment_final(void)
{
    struct xrig r;
    struct velo_window_spec w = {.kind = VELO_WINDOW_HOPPING,
                                 .size_us = 10 * SEC,
                                 .advance_us = 5 * SEC,
                                 .late_strategy = VELO_LATE_DROP};
    CU_ASSERT_PTR_NOT_NULL_FATAL(wrig_op(&r, 8, &w, VELO_EMIT_FINAL));
    /* Each row is in size/advance = 2 windows. */
    wadd(&r, "a", 1, 1 * SEC, 1);
    wadd(&r, "a", 2, 6 * SEC, 2);
    wadd(&r, "b", 4, 7 * SEC, 3);
    xrig_push(&r);
    /* The watermark is 7 s: [-5,5) has closed. */
    CU_ASSERT_STRING_EQUAL(xsink_text(&r.out),
                           WNEG("05") "|a|1|1\n");
    xsink_reset(&r.out);
    wadd(&r, "a", 8, 12 * SEC, 4);
    xrig_push(&r);
    CU_ASSERT_STRING_EQUAL(xsink_text(&r.out),
                           WIN("00", "10") "|a|2|3\n"
                           WIN("00", "10") "|b|1|4\n");
    xsink_reset(&r.out);
    CU_ASSERT_EQUAL(velo_op_finish(r.op), VELO_OK);
    CU_ASSERT_STRING_EQUAL(xsink_text(&r.out),
                           WIN("05", "15") "|a|2|10\n"
                           WIN("05", "15") "|b|1|4\n"
                           WIN("10", "20") "|a|1|8\n");
    CU_ASSERT_EQUAL(r.op->stats.state_rows, 0);
    CU_ASSERT_EQUAL(r.op->stats.rows_late, 0);
    char buf[512];
    r.op->ops->explain(r.op, buf, sizeof(buf));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "window: HOPPING 10 SECONDS "
                                       "advancing 5 SECONDS on _timestamp"));
    xrig_free(&r);
}

/* size 10 s, advance 4 s: t = 9 s is in the windows starting at 0, 4
 * and 8 (not -4: it ends at 6). */
static void test_hopping_uneven(void)
{
    struct xrig r;
    struct velo_window_spec w = {.kind = VELO_WINDOW_HOPPING,
                                 .size_us = 10 * SEC,
                                 .advance_us = 4 * SEC,
                                 .late_strategy = VELO_LATE_DROP};
    CU_ASSERT_PTR_NOT_NULL_FATAL(wrig_op(&r, 8, &w, VELO_EMIT_FINAL));
    wadd(&r, "a", 1, 9 * SEC, 1);
    xrig_push(&r);
    CU_ASSERT_EQUAL(velo_op_finish(r.op), VELO_OK);
    CU_ASSERT_STRING_EQUAL(xsink_text(&r.out),
                           WIN("00", "10") "|a|1|1\n"
                           WIN("04", "14") "|a|1|1\n"
                           WIN("08", "18") "|a|1|1\n");
    xrig_free(&r);
}

/* EMIT CHANGES: every input row's updates, oldest window first, before
 * the next row's. */
static void test_hopping_changes(void)
{
    struct xrig r;
    struct velo_window_spec w = {.kind = VELO_WINDOW_HOPPING,
                                 .size_us = 10 * SEC,
                                 .advance_us = 5 * SEC,
                                 .late_strategy = VELO_LATE_DROP};
    CU_ASSERT_PTR_NOT_NULL_FATAL(wrig_op(&r, 4, &w, VELO_EMIT_CHANGES));
    wadd(&r, "a", 1, 6 * SEC, 1);
    wadd(&r, "a", 2, 7 * SEC, 2);
    xrig_push(&r);
    CU_ASSERT_STRING_EQUAL(xsink_text(&r.out),
                           WIN("00", "10") "|a|1|1 +I\n"
                           WIN("05", "15") "|a|1|1 +I\n"
                           WIN("00", "10") "|a|2|3 +U\n"
                           WIN("05", "15") "|a|2|3 +U\n");
    /* More items than a batch holds (3 rows x 2 windows > 4). */
    xsink_reset(&r.out);
    wadd(&r, "a", 1, 8 * SEC, 3);
    wadd(&r, "b", 1, 8 * SEC, 4);
    wadd(&r, "a", 1, 9 * SEC, 5);
    xrig_push(&r);
    CU_ASSERT_EQUAL(r.out.rows, 6);
    xrig_free(&r);
}

/* The late rule with out-of-orderness and grace, row by row. */
static void test_ooo_and_grace_late_rule(void)
{
    struct xrig r;
    /* Tumbling 10 s, watermark = max - 3 s, grace 2 s: [0,10) closes when
     * the watermark reaches 12 s, i.e. after a row at 15 s. */
    struct velo_window_spec w = {.kind = VELO_WINDOW_TUMBLING,
                                 .size_us = 10 * SEC,
                                 .grace_us = 2 * SEC,
                                 .max_ooo_us = 3 * SEC,
                                 .late_strategy = VELO_LATE_DROP};
    CU_ASSERT_PTR_NOT_NULL_FATAL(wrig_op(&r, 16, &w, VELO_EMIT_FINAL));
    wadd(&r, "a", 1, 1 * SEC, 1);
    wadd(&r, "a", 2, 14 * SEC, 2); /* watermark 11 s */
    wadd(&r, "a", 4, 9 * SEC, 3);  /* in time: 12 > 11 */
    wadd(&r, "a", 8, 15 * SEC, 4); /* watermark 12 s */
    wadd(&r, "a", 16, 9 * SEC, 5); /* late: 12 <= 12 */
    wadd(&r, "a", 32, 2 * SEC, 6); /* late */
    xrig_push(&r);
    CU_ASSERT_EQUAL(r.op->stats.rows_late, 2);
    CU_ASSERT_EQUAL(r.x.late, 2);
    CU_ASSERT_EQUAL(r.x.last_late_wm, 12 * SEC);
    CU_ASSERT_EQUAL(r.x.last_origin.line, 6);
    CU_ASSERT_STRING_EQUAL(xsink_text(&r.out),
                           WIN("00", "10") "|a|2|5\n");
    xsink_reset(&r.out);
    CU_ASSERT_EQUAL(velo_op_finish(r.op), VELO_OK);
    CU_ASSERT_STRING_EQUAL(xsink_text(&r.out),
                           WIN("10", "20") "|a|2|10\n");
    char buf[512];
    r.op->ops->explain(r.op, buf, sizeof(buf));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "grace 2 SECONDS"));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "watermark: highest event time - "
                                       "3 SECONDS"));
    xrig_free(&r);
}

/* ---- The shuffle property ------------------------------------------------ */

static uint64_t rng_state;

static uint64_t rng(void)
{
    /* xorshift64*: the same sequence on every platform. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * UINT64_C(2685821657736338717);
}

struct ev {
    int k;
    int64_t v, t, arrive;
};

static int by_arrival(const void *a, const void *b)
{
    const struct ev *x = a, *y = b;
    if (x->arrive != y->arrive) {
        return x->arrive < y->arrive ? -1 : 1;
    }
    return x->t < y->t ? -1 : x->t > y->t;
}

static int by_line(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The FINAL rows of evs (in array order), sorted, as one text. */
static char *final_rows(const struct ev *evs, size_t n,
                        const struct velo_window_spec *w, size_t cap,
                        uint64_t *late)
{
    struct xrig r;
    if (wrig_op(&r, cap, w, VELO_EMIT_FINAL) == NULL) {
        return NULL;
    }
    static const char *const keys[] = {"a", "b", "c", "d", "e"};
    for (size_t i = 0; i < n; i++) {
        wadd(&r, keys[evs[i].k], evs[i].v, evs[i].t, (int64_t)i + 1);
        if (r.b->nrows == cap) {
            xrig_push(&r);
        }
    }
    xrig_push(&r);
    velo_op_finish(r.op);
    *late = r.op->stats.rows_late;
    /* Sort the lines: only the order of groups inside a window may
     * differ between arrival orders. */
    char *text = strdup(xsink_text(&r.out));
    size_t nl = 0;
    for (char *p = text; *p; p++) {
        nl += *p == '\n';
    }
    char **lines = calloc(nl + 1, sizeof(*lines));
    size_t k = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l != NULL;
         l = strtok_r(NULL, "\n", &save)) {
        lines[k++] = l;
    }
    qsort(lines, k, sizeof(*lines), by_line);
    size_t len = 1;
    for (size_t i = 0; i < k; i++) {
        len += strlen(lines[i]) + 1;
    }
    char *res = calloc(1, len);
    for (size_t i = 0; i < k; i++) {
        strcat(res, lines[i]);
        strcat(res, "\n");
    }
    free(lines);
    free(text);
    xrig_free(&r);
    return res;
}

/* Rows arrive each at most `disorder` after its event time (a random
 * delay), so when a row arrives no row seen before is more than
 * `disorder` ahead of it: within the allowed out-of-orderness (or
 * grace), never late, and the FINAL rows equal the sorted input's. */
static void shuffle_property(const struct velo_window_spec *w, int64_t disorder,
                             int rounds)
{
    enum { N = 400 };
    struct ev sorted[N], evs[N];
    rng_state = UINT64_C(0x5eed1234abcd);
    int64_t t = 0;
    for (size_t i = 0; i < N; i++) {
        t += (int64_t)(rng() % 700) * 1000; /* 0..0.7 s apart */
        sorted[i].k = (int)(rng() % 5);
        sorted[i].v = (int64_t)(rng() % 100);
        sorted[i].t = t;
        sorted[i].arrive = t;
    }
    uint64_t late = 0;
    char *want = final_rows(sorted, N, w, 64, &late);
    CU_ASSERT_PTR_NOT_NULL_FATAL(want);
    CU_ASSERT_EQUAL(late, 0);
    CU_ASSERT(strlen(want) > 100);
    int same = 0;
    for (int round = 0; round < rounds; round++) {
        memcpy(evs, sorted, sizeof(evs));
        for (size_t i = 0; i < N; i++) {
            evs[i].arrive =
                evs[i].t + (int64_t)(rng() % (uint64_t)(disorder + 1));
        }
        qsort(evs, N, sizeof(evs[0]), by_arrival);
        size_t cap = 1 + (size_t)(rng() % 100); /* any batch boundaries */
        char *got = final_rows(evs, N, w, cap, &late);
        CU_ASSERT_PTR_NOT_NULL_FATAL(got);
        same += strcmp(got, want) == 0 && late == 0;
        free(got);
    }
    CU_ASSERT_EQUAL(same, rounds);
    /* And the property has teeth: twice the disorder makes rows late. */
    memcpy(evs, sorted, sizeof(evs));
    for (size_t i = 0; i < N; i++) {
        evs[i].arrive =
            evs[i].t + (int64_t)(rng() % (uint64_t)(4 * disorder + 1));
    }
    qsort(evs, N, sizeof(evs[0]), by_arrival);
    char *got = final_rows(evs, N, w, 64, &late);
    CU_ASSERT(late > 0);
    CU_ASSERT(strcmp(got, want) != 0);
    free(got);
    free(want);
}

static void test_shuffle_within_ooo(void)
{
    struct velo_window_spec w = {.kind = VELO_WINDOW_TUMBLING,
                                 .size_us = 5 * SEC,
                                 .max_ooo_us = 2 * SEC,
                                 .late_strategy = VELO_LATE_DROP};
    shuffle_property(&w, 2 * SEC, 150);
}

static void test_shuffle_within_grace(void)
{
    struct velo_window_spec w = {.kind = VELO_WINDOW_TUMBLING,
                                 .size_us = 5 * SEC,
                                 .grace_us = 3 * SEC,
                                 .late_strategy = VELO_LATE_DROP};
    shuffle_property(&w, 3 * SEC, 100);
}

static void test_shuffle_hopping(void)
{
    struct velo_window_spec w = {.kind = VELO_WINDOW_HOPPING,
                                 .size_us = 6 * SEC,
                                 .advance_us = 2 * SEC,
                                 .grace_us = SEC,
                                 .max_ooo_us = 2 * SEC,
                                 .late_strategy = VELO_LATE_DROP};
    shuffle_property(&w, 3 * SEC, 100);
}

/* ---- Late strategies ----------------------------------------------------- */

static void test_late_update(void)
{
    struct xrig r;
    /* Tumbling 10 s, grace 5 s: [0,10) closes at watermark 15 s and is
     * held for max(grace, out-of-orderness) = 5 s more, until 20 s. */
    struct velo_window_spec w = {.kind = VELO_WINDOW_TUMBLING,
                                 .size_us = 10 * SEC,
                                 .grace_us = 5 * SEC,
                                 .late_strategy = VELO_LATE_UPDATE};
    CU_ASSERT_PTR_NOT_NULL_FATAL(wrig_op(&r, 16, &w, VELO_EMIT_CHANGES));
    wadd(&r, "a", 1, 1 * SEC, 1);
    wadd(&r, "a", 2, 16 * SEC, 2);
    wadd(&r, "a", 4, 2 * SEC, 3); /* late, held: updates [0,10) */
    xrig_push(&r);
    CU_ASSERT_STRING_EQUAL(xsink_text(&r.out),
                           WIN("00", "10") "|a|1|1 +I\n"
                           WIN("10", "20") "|a|1|2 +I\n"
                           WIN("00", "10") "|a|2|5 +U\n");
    CU_ASSERT_EQUAL(r.op->stats.rows_late, 1);
    CU_ASSERT_EQUAL(r.op->stats.rows_late_updated, 1);
    CU_ASSERT_EQUAL(r.x.late, 0); /* not dropped: not reported as such */
    CU_ASSERT_EQUAL(r.op->stats.state_rows, 2);
    xsink_reset(&r.out);
    /* At 20 s [0,10) is released: a row for it is dropped now. */
    wadd(&r, "a", 8, 20 * SEC, 4);
    wadd(&r, "a", 16, 3 * SEC, 5);
    xrig_push(&r);
    CU_ASSERT_STRING_EQUAL(xsink_text(&r.out),
                           WIN("20", "30") "|a|1|8 +I\n");
    CU_ASSERT_EQUAL(r.op->stats.rows_late, 2);
    CU_ASSERT_EQUAL(r.op->stats.rows_late_updated, 1);
    CU_ASSERT_EQUAL(r.x.late, 1);
    CU_ASSERT_EQUAL(r.x.last_origin.line, 5);
    CU_ASSERT_EQUAL(r.op->stats.state_rows, 2);
    char buf[512];
    r.op->ops->explain(r.op, buf, sizeof(buf));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "late rows update windows held "
                                       "5 SECONDS after closing"));
    xrig_free(&r);

    /* drop (the default) with the same input drops the row at 2 s. */
    w.late_strategy = VELO_LATE_DROP;
    CU_ASSERT_PTR_NOT_NULL_FATAL(wrig_op(&r, 16, &w, VELO_EMIT_CHANGES));
    wadd(&r, "a", 1, 1 * SEC, 1);
    wadd(&r, "a", 2, 16 * SEC, 2);
    wadd(&r, "a", 4, 2 * SEC, 3);
    xrig_push(&r);
    CU_ASSERT_EQUAL(r.out.rows, 2);
    CU_ASSERT_EQUAL(r.op->stats.rows_late, 1);
    CU_ASSERT_EQUAL(r.op->stats.rows_late_updated, 0);
    CU_ASSERT_EQUAL(r.x.late, 1);
    xrig_free(&r);
}

/* Specs the operator refuses (the planner reports them first). */
static void test_bad_specs(void)
{
    struct xrig r;
    struct velo_window_spec w = {.kind = VELO_WINDOW_HOPPING,
                                 .size_us = 5 * SEC,
                                 .advance_us = 10 * SEC,
                                 .late_strategy = VELO_LATE_DROP};
    CU_ASSERT_PTR_NULL(wrig_op(&r, 8, &w, VELO_EMIT_FINAL)); /* adv > size */
    xrig_free(&r);
    w.advance_us = 0;
    CU_ASSERT_PTR_NULL(wrig_op(&r, 8, &w, VELO_EMIT_FINAL));
    xrig_free(&r);
    struct velo_window_spec u = {.kind = VELO_WINDOW_TUMBLING,
                                 .size_us = 5 * SEC,
                                 .late_strategy = VELO_LATE_UPDATE};
    CU_ASSERT_PTR_NULL(wrig_op(&r, 8, &u, VELO_EMIT_FINAL));
    xrig_free(&r);
    u.late_strategy = 7;
    CU_ASSERT_PTR_NULL(wrig_op(&r, 8, &u, VELO_EMIT_CHANGES));
    xrig_free(&r);
    u.late_strategy = VELO_LATE_DROP;
    u.grace_us = -1;
    CU_ASSERT_PTR_NULL(wrig_op(&r, 8, &u, VELO_EMIT_CHANGES));
    xrig_free(&r);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 1;
    }
    funcs = velo_funcs_create();
    CU_pSuite s = CU_add_suite("windows", NULL, NULL);
    CU_add_test(s, "hopping: assignment and closing",
                test_hopping_assignment_final);
    CU_add_test(s, "hopping: size not a multiple of advance",
                test_hopping_uneven);
    CU_add_test(s, "hopping: EMIT CHANGES order", test_hopping_changes);
    CU_add_test(s, "out-of-orderness and grace: the late rule",
                test_ooo_and_grace_late_rule);
    CU_add_test(s, "shuffled within out-of-orderness = sorted",
                test_shuffle_within_ooo);
    CU_add_test(s, "shuffled within grace = sorted", test_shuffle_within_grace);
    CU_add_test(s, "hopping shuffled within disorder = sorted",
                test_shuffle_hopping);
    CU_add_test(s, "late data: update and drop", test_late_update);
    CU_add_test(s, "refused window specs", test_bad_specs);
    int rc = tu_run_all();
    velo_funcs_destroy(funcs);
    return rc;
}
