/*
 * Joins: the lookup join against a table changelog (INNER, LEFT, updates
 * and deletes between stream rows, NULL keys, residual predicates) and
 * against an external provider through its cache (hits, misses, negative
 * answers, TTL, LRU bound, one call per batch); the interval join (bounds
 * inclusive at both ends, several matches, expiry on the watermark, outer
 * rows on expiry and at finish, late rows); the window join (tumbling,
 * hopping, outer); output split over several batches; snapshot/restore
 * equal to an uninterrupted run; corrupt snapshots rejected.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "exec/join-internal.h"
#include "exec/state.h"
#include "exectest.h"
#include "testutil.h"

static struct velo_funcs *funcs;

#define SEC INT64_C(1000000)
#define NK INT64_MIN /* a NULL key */
#define NT INT64_MIN /* a NULL time */

/* ---- A sink that renders rows with times in seconds, sorted ---------- */

struct jsink {
    char **lines;
    size_t n, cap;
    size_t batches;
    size_t max_batch;
    int finished;
};

static int jsink_fn(void *arg, struct velo_batch *b)
{
    struct jsink *s = arg;
    size_t n = velo_batch_live(b);
    s->batches++;
    if (n > s->max_batch) {
        s->max_batch = n;
    }
    for (size_t i = 0; i < n; i++) {
        size_t r = b->sel != NULL ? b->sel[i] : i;
        char line[1024];
        xrender_row(b, r, SEC, line, sizeof(line));
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 16;
            s->lines = realloc(s->lines, s->cap * sizeof(*s->lines));
        }
        s->lines[s->n++] = strdup(line);
    }
    return VELO_OK;
}

static int jsink_finish(void *arg)
{
    ((struct jsink *)arg)->finished++;
    return VELO_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted lines, each ending in '\n'; malloc'd. */
static char *jsink_text(struct jsink *s)
{
    if (s->n > 1) {
        qsort(s->lines, s->n, sizeof(*s->lines), cmp_str);
    }
    size_t len = 1;
    for (size_t i = 0; i < s->n; i++) {
        len += strlen(s->lines[i]) + 1;
    }
    char *t = malloc(len), *p = t;
    *p = '\0';
    for (size_t i = 0; i < s->n; i++) {
        p += sprintf(p, "%s\n", s->lines[i]);
    }
    return t;
}

static void jsink_clear(struct jsink *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->lines[i]);
    }
    s->n = 0;
}

static void jsink_free(struct jsink *s)
{
    jsink_clear(s);
    free(s->lines);
    memset(s, 0, sizeof(*s));
}

/* Sort the expected lines too, so cases can be written in any order. */
static int same_rows(struct jsink *s, const char *want)
{
    struct jsink w;
    memset(&w, 0, sizeof(w));
    char *copy = strdup(want), *save = NULL;
    for (char *l = strtok_r(copy, "\n", &save); l != NULL;
         l = strtok_r(NULL, "\n", &save)) {
        if (w.n == w.cap) {
            w.cap = w.cap ? w.cap * 2 : 16;
            w.lines = realloc(w.lines, w.cap * sizeof(*w.lines));
        }
        w.lines[w.n++] = strdup(l);
    }
    free(copy);
    char *got = jsink_text(s), *exp = jsink_text(&w);
    int ok = strcmp(got, exp) == 0;
    if (!ok) {
        fprintf(stderr, "\n--- got:\n%s--- want:\n%s", got, exp);
    }
    free(got);
    free(exp);
    jsink_free(&w);
    return ok;
}

/* ---- Rig: a join between two inputs "k|v|_timestamp" ------------------ */

struct jrig {
    struct xenv x;
    struct velo_schema *ls, *rs;
    struct velo_op *op, *sink;
    struct jsink out;
    struct velo_batch *lb, *rb;
    uint8_t rops[64];
};

static void jrig_init(struct jrig *g, size_t cap)
{
    memset(g, 0, sizeof(*g));
    xenv_init(&g->x, funcs, cap);
    g->ls = xschema("k:BIGINT;lv:STRING;_timestamp:TIMESTAMP");
    g->rs = xschema("k:BIGINT;rv:STRING;_timestamp:TIMESTAMP");
    g->lb = velo_batch_create(g->ls, 64);
    g->rb = velo_batch_create(g->rs, 64);
}

static void jrig_attach(struct jrig *g)
{
    CU_ASSERT_PTR_NOT_NULL_FATAL(g->op);
    g->sink = velo_op_callback(&g->x.env, g->op->out_schema, jsink_fn,
                               jsink_finish, &g->out, "test");
    velo_op_connect(g->op, g->sink);
}

static void jrig_free(struct jrig *g)
{
    velo_op_destroy(g->op);
    velo_op_destroy(g->sink);
    velo_batch_destroy(g->lb);
    velo_batch_destroy(g->rb);
    velo_schema_destroy(g->ls);
    velo_schema_destroy(g->rs);
    jsink_free(&g->out);
}

static struct velo_join_keys mkkeys(struct jrig *g, int type,
                                    const char *residual)
{
    static struct velo_expr *lk[1], *rk[1];
    struct velo_join_keys k;
    memset(&k, 0, sizeof(k));
    lk[0] = xparse(funcs, g->ls, "$0");
    rk[0] = xparse(funcs, g->rs, "$0");
    k.lkeys = lk;
    k.rkeys = rk;
    k.nkeys = 1;
    k.type = type;
    if (residual != NULL) {
        /* Over the output: left k lv ts, then right k rv ts. */
        struct velo_schema *o = velo_join_schema(g->ls, g->rs, 0);
        k.residual = xparse(funcs, o, residual);
        velo_schema_destroy(o);
    }
    return k;
}

static void add(struct velo_batch *b, int64_t k, const char *v, int64_t t,
                int64_t line)
{
    size_t r = b->nrows++;
    if (k == NK) {
        xset_null(b, 0, r);
    } else {
        xset_i64(b, 0, r, k);
    }
    if (v == NULL) {
        xset_null(b, 1, r);
    } else {
        xset_str(b, 1, r, v);
    }
    if (t == NT) {
        xset_null(b, 2, r);
    } else {
        xset_i64(b, 2, r, t * SEC);
    }
    b->origin[r].source = 0;
    b->origin[r].line = line;
    b->origin[r].position = line * 10;
}

static int push(struct jrig *g, size_t port)
{
    struct velo_batch *b = port == 0 ? g->lb : g->rb;
    int rc = velo_op_push(velo_op_port(g->op, port), b);
    velo_batch_reset(b);
    b->op = NULL;
    return rc;
}

static int wm(struct jrig *g, int64_t sec)
{
    int rc = velo_op_watermark(velo_op_port(g->op, 0), sec * SEC);
    if (rc == VELO_OK) {
        rc = velo_op_watermark(velo_op_port(g->op, 1), sec * SEC);
    }
    return rc;
}

static int finish(struct jrig *g)
{
    int rc = VELO_OK;
    for (size_t p = 0; p < velo_op_nports(g->op) && rc == VELO_OK; p++) {
        rc = velo_op_finish(velo_op_port(g->op, p));
    }
    return rc;
}

/* ---- Lookup join against a table changelog ---------------------------- */

static void lookup_run(struct jrig *g, int type, const char *residual)
{
    jrig_init(g, 64);
    struct velo_join_keys k = mkkeys(g, type, residual);
    g->op = velo_op_lookup_join(&g->x.env, g->ls, g->rs, &k, NULL);
    jrig_attach(g);
    CU_ASSERT_EQUAL(velo_op_nports(g->op), 2);
    add(g->rb, 1, "ann", NT, 1);
    add(g->rb, 2, "bob", NT, 2);
    add(g->rb, NK, "nobody", NT, 3);
    CU_ASSERT_EQUAL(push(g, 1), VELO_OK);
    CU_ASSERT_EQUAL(g->op->stats.state_rows, 2); /* a NULL key is not kept */
    add(g->lb, 1, "a", 10, 1);
    add(g->lb, 2, "b", 11, 2);
    add(g->lb, 3, "c", 12, 3);
    add(g->lb, NK, "d", 13, 4);
    CU_ASSERT_EQUAL(push(g, 0), VELO_OK);
    /* Changelog between stream rows: bob renamed, ann deleted. */
    add(g->rb, 2, "bobby", NT, 4);
    add(g->rb, 1, "ann", NT, 5);
    add(g->rb, 9, "never", NT, 6);
    g->rops[0] = VELO_ROW_UPDATE;
    g->rops[1] = VELO_ROW_DELETE;
    g->rops[2] = VELO_ROW_DELETE; /* deleting a missing key: no-op */
    g->rb->op = g->rops;
    CU_ASSERT_EQUAL(push(g, 1), VELO_OK);
    CU_ASSERT_EQUAL(g->op->stats.state_rows, 1);
    add(g->lb, 1, "e", 20, 5);
    add(g->lb, 2, "f", 21, 6);
    CU_ASSERT_EQUAL(push(g, 0), VELO_OK);
    /* Re-inserting a deleted key. */
    add(g->rb, 1, "ann2", NT, 7);
    CU_ASSERT_EQUAL(push(g, 1), VELO_OK);
    add(g->lb, 1, "g", 22, 7);
    CU_ASSERT_EQUAL(push(g, 0), VELO_OK);
    CU_ASSERT_EQUAL(finish(g), VELO_OK);
    CU_ASSERT_EQUAL(g->out.finished, 1);
}

static void test_lookup_table(void)
{
    struct jrig g;
    lookup_run(&g, VELO_JOIN_INNER, NULL);
    CU_ASSERT(same_rows(&g.out, "1|a|10|1|ann|NULL\n"
                                "2|b|11|2|bob|NULL\n"
                                "2|f|21|2|bobby|NULL\n"
                                "1|g|22|1|ann2|NULL\n"));
    CU_ASSERT_EQUAL(g.op->stats.state_rows, 2);
    CU_ASSERT(g.op->stats.state_bytes > 0);
    char buf[512];
    g.op->ops->explain(g.op, buf, sizeof(buf));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "INNER lookup join on 1 key"));
    /* Output schema: left fields, then right fields, hidden kept. */
    const struct velo_schema *o = g.op->out_schema;
    CU_ASSERT_EQUAL(o->n, 6);
    CU_ASSERT_STRING_EQUAL(o->fields[4].name, "rv");
    CU_ASSERT(o->fields[2].hidden && o->fields[5].hidden);
    jrig_free(&g);

    lookup_run(&g, VELO_JOIN_LEFT, NULL);
    CU_ASSERT(same_rows(&g.out, "1|a|10|1|ann|NULL\n"
                                "2|b|11|2|bob|NULL\n"
                                "3|c|12|NULL|NULL|NULL\n"
                                "NULL|d|13|NULL|NULL|NULL\n"
                                "1|e|20|NULL|NULL|NULL\n"
                                "2|f|21|2|bobby|NULL\n"
                                "1|g|22|1|ann2|NULL\n"));
    jrig_free(&g);
}

static void test_lookup_residual(void)
{
    struct jrig g;
    /* ON o.k = c.k AND c.rv <> 'bob' */
    lookup_run(&g, VELO_JOIN_INNER, "(<> $4 'bob')");
    CU_ASSERT(same_rows(&g.out, "1|a|10|1|ann|NULL\n"
                                "2|f|21|2|bobby|NULL\n"
                                "1|g|22|1|ann2|NULL\n"));
    jrig_free(&g);
    lookup_run(&g, VELO_JOIN_LEFT, "(<> $4 'bob')");
    CU_ASSERT(same_rows(&g.out, "1|a|10|1|ann|NULL\n"
                                "2|b|11|NULL|NULL|NULL\n"
                                "3|c|12|NULL|NULL|NULL\n"
                                "NULL|d|13|NULL|NULL|NULL\n"
                                "1|e|20|NULL|NULL|NULL\n"
                                "2|f|21|2|bobby|NULL\n"
                                "1|g|22|1|ann2|NULL\n"));
    jrig_free(&g);
    /* A residual that fails to evaluate is reported and does not match. */
    lookup_run(&g, VELO_JOIN_INNER, "(= (/ $0 (- $3 $3)) 1)");
    CU_ASSERT(same_rows(&g.out, ""));
    CU_ASSERT_EQUAL(g.op->stats.rows_failed, 4);
    CU_ASSERT(g.x.errors == 4);
    CU_ASSERT_EQUAL(g.x.last_origin.line, 7); /* the stream row's origin */
    jrig_free(&g);
}

/* ---- Lookup join against a provider ------------------------------------ */

static int64_t fake_clock;
static int64_t fake_now(void)
{
    return fake_clock;
}

struct fakep {
    int calls;
    char asked[32][64]; /* per call: keys joined with ',' */
    int fail;
};

static int fake_get(void *arg, const struct velo_str *keys, size_t n,
                    struct velo_batch *out, uint8_t *found, char *err,
                    size_t errlen)
{
    struct fakep *p = arg;
    if (p->fail) {
        snprintf(err, errlen, "connection refused");
        return VELO_ERR;
    }
    char *a = p->calls < 32 ? p->asked[p->calls] : NULL;
    p->calls++;
    for (size_t i = 0; i < n; i++) {
        if (a != NULL) {
            size_t l = strlen(a);
            snprintf(a + l, 64 - l, "%s%.*s", i ? "," : "", (int)keys[i].len,
                     keys[i].ptr);
        }
        /* Known: "1" -> ann 1.50, "2" -> bob 2.25, "1.50" -> dec. */
        const char *name = NULL;
        int64_t score = 0;
        if (keys[i].len == 1 && keys[i].ptr[0] == '1') {
            name = "ann";
            score = 150;
        } else if (keys[i].len == 1 && keys[i].ptr[0] == '2') {
            name = "bob";
            score = 225;
        } else if (keys[i].len == 4 && memcmp(keys[i].ptr, "1.50", 4) == 0) {
            name = "dec";
            score = 1;
        }
        found[i] = name != NULL;
        if (name != NULL) {
            xset_str(out, 0, i, name);
            xset_i64(out, 1, i, score);
        }
    }
    return VELO_OK;
}

static void keys_batch(struct jrig *g, const int64_t *ks, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        add(g->lb, ks[i], "x", (int64_t)i, (int64_t)i + 1);
    }
}

static void test_lookup_provider(void)
{
    struct jrig g;
    jrig_init(&g, 64);
    g.x.env.now_us = fake_now;
    fake_clock = 1000 * SEC;
    struct velo_schema *ps = xschema("name:STRING;score:DECIMAL(5,2)");
    struct fakep fp;
    memset(&fp, 0, sizeof(fp));
    struct velo_lookup_provider prov = {ps, fake_get, &fp, 2, 10 * SEC};
    struct velo_join_keys k = mkkeys(&g, VELO_JOIN_LEFT, NULL);
    g.op = velo_op_lookup_join(&g.x.env, g.ls, NULL, &k, &prov);
    jrig_attach(&g);
    CU_ASSERT_EQUAL(velo_op_nports(g.op), 1);
    CU_ASSERT_EQUAL(g.op->out_schema->n, 5);

    /* One call for the batch's distinct non-NULL keys. */
    keys_batch(&g, (int64_t[]){1, 2, 1, 3, NK}, 5);
    CU_ASSERT_EQUAL(push(&g, 0), VELO_OK);
    CU_ASSERT_EQUAL(fp.calls, 1);
    CU_ASSERT_STRING_EQUAL(fp.asked[0], "1,2,3");
    CU_ASSERT(same_rows(&g.out, "1|x|0|ann|1.50\n"
                                "2|x|1|bob|2.25\n"
                                "1|x|2|ann|1.50\n"
                                "3|x|3|NULL|NULL\n"
                                "NULL|x|4|NULL|NULL\n"));
    /* Bounded: three answers, two entries (1 was least recent). */
    CU_ASSERT_EQUAL(g.op->stats.state_rows, 2);
    jsink_clear(&g.out);

    /* Hits, the negative answer for 3 included: no call. */
    keys_batch(&g, (int64_t[]){2, 3}, 2);
    CU_ASSERT_EQUAL(push(&g, 0), VELO_OK);
    CU_ASSERT_EQUAL(fp.calls, 1);
    CU_ASSERT(same_rows(&g.out, "2|x|0|bob|2.25\n3|x|1|NULL|NULL\n"));

    /* 1 was evicted: asked again; its entry evicts 2 (3 is more recent). */
    keys_batch(&g, (int64_t[]){1}, 1);
    CU_ASSERT_EQUAL(push(&g, 0), VELO_OK);
    CU_ASSERT_EQUAL(fp.calls, 2);
    CU_ASSERT_STRING_EQUAL(fp.asked[1], "1");
    keys_batch(&g, (int64_t[]){2}, 1);
    CU_ASSERT_EQUAL(push(&g, 0), VELO_OK);
    CU_ASSERT_EQUAL(fp.calls, 3);
    CU_ASSERT_STRING_EQUAL(fp.asked[2], "2");
    /* ... which evicted 3, not 1. */
    keys_batch(&g, (int64_t[]){1}, 1);
    CU_ASSERT_EQUAL(push(&g, 0), VELO_OK);
    CU_ASSERT_EQUAL(fp.calls, 3);
    CU_ASSERT_EQUAL(g.op->stats.state_rows, 2);

    /* TTL: answers older than 10 s are asked again. */
    fake_clock += 9 * SEC;
    keys_batch(&g, (int64_t[]){1}, 1);
    CU_ASSERT_EQUAL(push(&g, 0), VELO_OK);
    CU_ASSERT_EQUAL(fp.calls, 3);
    fake_clock += 1 * SEC;
    keys_batch(&g, (int64_t[]){1, 2}, 2);
    CU_ASSERT_EQUAL(push(&g, 0), VELO_OK);
    CU_ASSERT_EQUAL(fp.calls, 4);
    CU_ASSERT_STRING_EQUAL(fp.asked[3], "1,2");

    /* A failing provider fails the batch (the job stops). */
    fp.fail = 1;
    keys_batch(&g, (int64_t[]){7}, 1);
    CU_ASSERT_EQUAL(push(&g, 0), VELO_ERR);
    fp.fail = 0;
    char buf[512];
    g.op->ops->explain(g.op, buf, sizeof(buf));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "cache 2 entries"));
    jrig_free(&g);

    /* No cache: every batch asks; a DECIMAL key is asked as "1.50"; INNER
     * drops rows without an answer. */
    jrig_init(&g, 64);
    g.x.env.now_us = fake_now;
    memset(&fp, 0, sizeof(fp));
    prov.cache_entries = 0;
    k = mkkeys(&g, VELO_JOIN_INNER, NULL);
    velo_expr_free(k.lkeys[0]);
    k.lkeys[0] = xparse(funcs, g.ls, "(CASE (= $0 1) 1.50 2.00)");
    g.op = velo_op_lookup_join(&g.x.env, g.ls, NULL, &k, &prov);
    jrig_attach(&g);
    keys_batch(&g, (int64_t[]){1, 5, 1}, 3);
    CU_ASSERT_EQUAL(push(&g, 0), VELO_OK);
    keys_batch(&g, (int64_t[]){1}, 1);
    CU_ASSERT_EQUAL(push(&g, 0), VELO_OK);
    CU_ASSERT_EQUAL(fp.calls, 2);
    CU_ASSERT_STRING_EQUAL(fp.asked[0], "1.50,2.00");
    CU_ASSERT_STRING_EQUAL(fp.asked[1], "1.50");
    CU_ASSERT(same_rows(&g.out, "1|x|0|dec|0.01\n"
                                "1|x|2|dec|0.01\n"
                                "1|x|0|dec|0.01\n"));
    CU_ASSERT_EQUAL(g.op->stats.state_rows, 0);
    jrig_free(&g);
    velo_schema_destroy(ps);
}

/* ---- Interval join ------------------------------------------------------ */

/* b.ts BETWEEN a.ts AND a.ts + 10 s. */
static void interval_setup(struct jrig *g, int type, const char *residual,
                           size_t cap)
{
    jrig_init(g, cap);
    struct velo_join_keys k = mkkeys(g, type, residual);
    g->op = velo_op_interval_join(&g->x.env, g->ls, g->rs, &k, NULL, NULL, 0,
                                  10 * SEC, 0);
    jrig_attach(g);
}

static void interval_part1(struct jrig *g)
{
    add(g->lb, 1, "a", 100, 1);
    add(g->lb, 1, "b", 105, 2);
    add(g->lb, 2, "c", 100, 3);
    add(g->lb, NK, "n", 100, 4);
    CU_ASSERT_EQUAL(push(g, 0), VELO_OK);
    add(g->rb, 1, "x", 100, 1);  /* a: lower bound, inclusive */
    add(g->rb, 1, "y", 110, 2);  /* a: upper bound, inclusive; b */
    add(g->rb, 1, "z", 116, 3);  /* none: past b's 115 */
    add(g->rb, 2, "w", 99, 4);   /* none: before c */
    add(g->rb, 2, "v", 110, 5);  /* c */
    add(g->rb, NK, "q", 100, 6); /* never */
    CU_ASSERT_EQUAL(push(g, 1), VELO_OK);
    CU_ASSERT_EQUAL(wm(g, 105), VELO_OK);
}

static void interval_part2(struct jrig *g)
{
    CU_ASSERT_EQUAL(wm(g, 112), VELO_OK);
    add(g->lb, 1, "late", 100, 5); /* kept until 110 <= 112: late */
    CU_ASSERT_EQUAL(push(g, 0), VELO_OK);
    add(g->rb, 1, "r2", 111, 7);   /* kept until 111: late */
    add(g->rb, 1, "ok", 114, 8);   /* b */
    add(g->rb, 1, "edge", 112, 9); /* kept while wm <= 112: b */
    CU_ASSERT_EQUAL(push(g, 1), VELO_OK);
    CU_ASSERT_EQUAL(finish(g), VELO_OK);
}

static void test_interval_inner(void)
{
    struct jrig g;
    interval_setup(&g, VELO_JOIN_INNER, NULL, 64);
    interval_part1(&g);
    CU_ASSERT(same_rows(&g.out, "1|a|100|1|x|100\n"
                                "1|a|110|1|y|110\n"
                                "1|b|110|1|y|110\n"
                                "2|c|110|2|v|110\n"));
    /* x, w expired at 105 (kept while wm < rtime); NULL keys never kept
     * by an inner join. */
    CU_ASSERT_EQUAL(g.op->stats.state_rows, 6);
    CU_ASSERT_EQUAL(wm(&g, 112), VELO_OK);
    CU_ASSERT_EQUAL(g.op->stats.state_rows, 2); /* b (115), z (116) */
    jsink_clear(&g.out);
    interval_part2(&g);
    CU_ASSERT(same_rows(&g.out, "1|b|114|1|ok|114\n1|b|112|1|edge|112\n"));
    CU_ASSERT_EQUAL(g.op->stats.rows_late, 2);
    CU_ASSERT_EQUAL(g.x.late, 2);
    CU_ASSERT_EQUAL(g.x.last_late_t, 111 * SEC);
    CU_ASSERT_EQUAL(g.x.last_late_wm, 112 * SEC);
    CU_ASSERT_EQUAL(g.x.last_origin.line, 7);
    CU_ASSERT_EQUAL(g.op->stats.state_rows, 0);
    CU_ASSERT_EQUAL(g.out.finished, 1);
    char buf[512];
    g.op->ops->explain(g.op, buf, sizeof(buf));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "INNER interval join on 1 key"));
    jrig_free(&g);

    /* The residual drops the y pairs. */
    interval_setup(&g, VELO_JOIN_INNER, "(<> $4 'y')", 64);
    interval_part1(&g);
    CU_ASSERT(same_rows(&g.out, "1|a|100|1|x|100\n2|c|110|2|v|110\n"));
    jrig_free(&g);
}

static void test_interval_outer(void)
{
    struct jrig g;
    interval_setup(&g, VELO_JOIN_FULL, NULL, 64);
    interval_part1(&g);
    /* w and q (NULL key) left at 105 without a partner (x matched a). */
    CU_ASSERT(same_rows(&g.out, "1|a|100|1|x|100\n"
                                "1|a|110|1|y|110\n"
                                "1|b|110|1|y|110\n"
                                "2|c|110|2|v|110\n"
                                "NULL|NULL|99|2|w|99\n"
                                "NULL|NULL|100|NULL|q|100\n"));
    jsink_clear(&g.out);
    CU_ASSERT_EQUAL(wm(&g, 112), VELO_OK);
    /* The NULL-key left row leaves at 110, unmatched. */
    CU_ASSERT(same_rows(&g.out, "NULL|n|100|NULL|NULL|NULL\n"));
    jsink_clear(&g.out);
    interval_part2(&g);
    /* z never matched: out at finish, with its own time. */
    CU_ASSERT(same_rows(&g.out, "1|b|114|1|ok|114\n"
                                "1|b|112|1|edge|112\n"
                                "NULL|NULL|116|1|z|116\n"));
    jrig_free(&g);

    interval_setup(&g, VELO_JOIN_LEFT, NULL, 64);
    interval_part1(&g);
    interval_part2(&g);
    CU_ASSERT(same_rows(&g.out, "1|a|100|1|x|100\n"
                                "1|a|110|1|y|110\n"
                                "1|b|110|1|y|110\n"
                                "2|c|110|2|v|110\n"
                                "NULL|n|100|NULL|NULL|NULL\n"
                                "1|b|114|1|ok|114\n"
                                "1|b|112|1|edge|112\n"));
    jrig_free(&g);

    interval_setup(&g, VELO_JOIN_RIGHT, NULL, 64);
    interval_part1(&g);
    interval_part2(&g);
    CU_ASSERT(same_rows(&g.out, "1|a|100|1|x|100\n"
                                "1|a|110|1|y|110\n"
                                "1|b|110|1|y|110\n"
                                "2|c|110|2|v|110\n"
                                "NULL|NULL|99|2|w|99\n"
                                "NULL|NULL|100|NULL|q|100\n"
                                "1|b|114|1|ok|114\n"
                                "1|b|112|1|edge|112\n"
                                "NULL|NULL|116|1|z|116\n"));
    jrig_free(&g);

    /* A LEFT row whose only pair fails the residual is padded at expiry. */
    interval_setup(&g, VELO_JOIN_LEFT, "(<> $4 'v')", 64);
    interval_part1(&g);
    CU_ASSERT_EQUAL(wm(&g, 112), VELO_OK);
    CU_ASSERT(same_rows(&g.out, "1|a|100|1|x|100\n"
                                "1|a|110|1|y|110\n"
                                "1|b|110|1|y|110\n"
                                "2|c|100|NULL|NULL|NULL\n"
                                "NULL|n|100|NULL|NULL|NULL\n"));
    jrig_free(&g);
}

static void test_interval_many_matches(void)
{
    struct jrig g;
    interval_setup(&g, VELO_JOIN_INNER, NULL, 4); /* output batches of 4 */
    for (int i = 0; i < 10; i++) {
        add(g.rb, 7, "r", 100 + i, i + 1);
        if (g.rb->nrows == 4 || i == 9) { /* input batches fit the cap */
            CU_ASSERT_EQUAL(push(&g, 1), VELO_OK);
        }
    }
    add(g.lb, 7, "l", 95, 1);  /* matches r at 100..105 */
    add(g.lb, 7, "m", 100, 2); /* matches all ten */
    CU_ASSERT_EQUAL(push(&g, 0), VELO_OK);
    CU_ASSERT_EQUAL(g.out.n, 16);
    CU_ASSERT_EQUAL(g.out.max_batch, 4);
    CU_ASSERT(g.out.batches >= 4);
    CU_ASSERT_EQUAL(g.op->stats.rows_out, 16);
    jrig_free(&g);
}

/* ---- Window join -------------------------------------------------------- */

static void window_setup(struct jrig *g, int type, int kind, size_t cap)
{
    jrig_init(g, cap);
    struct velo_join_keys k = mkkeys(g, type, NULL);
    struct velo_window_spec w = {.kind = kind, .size_us = 10 * SEC};
    if (kind == VELO_WINDOW_HOPPING) {
        w.advance_us = 5 * SEC;
    }
    g->op = velo_op_window_join(&g->x.env, g->ls, g->rs, &k, &w, NULL);
    jrig_attach(g);
}

static void window_part1(struct jrig *g)
{
    add(g->lb, 1, "a", 3, 1);
    add(g->lb, 1, "b", 12, 2);
    add(g->lb, 2, "c", 5, 3);
    CU_ASSERT_EQUAL(push(g, 0), VELO_OK);
    add(g->rb, 1, "x", 7, 1);
    add(g->rb, 1, "y", 9, 2);
    add(g->rb, 1, "z", 15, 3);
    add(g->rb, 2, "w", 11, 4);
    CU_ASSERT_EQUAL(push(g, 1), VELO_OK);
}

static void window_part2(struct jrig *g)
{
    CU_ASSERT_EQUAL(wm(g, 10), VELO_OK);
    add(g->lb, 1, "late", 8, 4);
    CU_ASSERT_EQUAL(push(g, 0), VELO_OK);
    CU_ASSERT_EQUAL(finish(g), VELO_OK);
}

static void test_window_join(void)
{
    struct jrig g;
    window_setup(&g, VELO_JOIN_INNER, VELO_WINDOW_TUMBLING, 64);
    CU_ASSERT_STRING_EQUAL(g.op->out_schema->fields[0].name, "_window_start");
    CU_ASSERT(g.op->out_schema->fields[1].hidden);
    window_part1(&g);
    CU_ASSERT_EQUAL(g.out.n, 0); /* nothing before a window closes */
    CU_ASSERT_EQUAL(g.op->stats.state_rows, 7);
    CU_ASSERT_EQUAL(wm(&g, 9), VELO_OK);
    CU_ASSERT_EQUAL(g.out.n, 0);
    CU_ASSERT_EQUAL(wm(&g, 10), VELO_OK);
    CU_ASSERT(same_rows(&g.out, "0|10|1|a|7|1|x|7\n"
                                "0|10|1|a|9|1|y|9\n"));
    CU_ASSERT_EQUAL(g.op->stats.state_rows, 3);
    jsink_clear(&g.out);
    window_part2(&g);
    CU_ASSERT(same_rows(&g.out, "10|20|1|b|15|1|z|15\n"));
    CU_ASSERT_EQUAL(g.op->stats.rows_late, 1);
    CU_ASSERT_EQUAL(g.x.late, 1);
    CU_ASSERT_EQUAL(g.op->stats.state_rows, 0);
    jrig_free(&g);

    window_setup(&g, VELO_JOIN_FULL, VELO_WINDOW_TUMBLING, 64);
    window_part1(&g);
    window_part2(&g);
    CU_ASSERT(same_rows(&g.out, "0|10|1|a|7|1|x|7\n"
                                "0|10|1|a|9|1|y|9\n"
                                "0|10|2|c|5|NULL|NULL|NULL\n"
                                "10|20|1|b|15|1|z|15\n"
                                "10|20|NULL|NULL|11|2|w|11\n"));
    char buf[512];
    g.op->ops->explain(g.op, buf, sizeof(buf));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "FULL window join on 1 key"));
    jrig_free(&g);

    /* A residual over the windowed output (ws we | k lv ts | k rv ts):
     * a-y fails it, so y leaves unmatched (a is matched through x). */
    jrig_init(&g, 64);
    struct velo_join_keys k = mkkeys(&g, VELO_JOIN_FULL, NULL);
    struct velo_schema *o = velo_join_schema(g.ls, g.rs, 1);
    k.residual = xparse(funcs, o, "(<> $6 'y')");
    velo_schema_destroy(o);
    struct velo_window_spec w = {.kind = VELO_WINDOW_TUMBLING,
                                 .size_us = 10 * SEC};
    g.op = velo_op_window_join(&g.x.env, g.ls, g.rs, &k, &w, NULL);
    jrig_attach(&g);
    window_part1(&g);
    window_part2(&g);
    CU_ASSERT(same_rows(&g.out, "0|10|1|a|7|1|x|7\n"
                                "0|10|NULL|NULL|9|1|y|9\n"
                                "0|10|2|c|5|NULL|NULL|NULL\n"
                                "10|20|1|b|15|1|z|15\n"
                                "10|20|NULL|NULL|11|2|w|11\n"));
    jrig_free(&g);
}

static void test_window_hopping(void)
{
    struct jrig g;
    window_setup(&g, VELO_JOIN_INNER, VELO_WINDOW_HOPPING, 64);
    window_part1(&g);
    /* Windows [-5,5) [0,10) [5,15) [10,20) [15,25): every row is in two. */
    CU_ASSERT_EQUAL(g.op->stats.state_rows, 14);
    window_part2(&g);
    CU_ASSERT(same_rows(&g.out, "0|10|1|a|7|1|x|7\n"
                                "0|10|1|a|9|1|y|9\n"
                                "5|15|1|b|12|1|x|7\n"
                                "5|15|1|b|12|1|y|9\n"
                                "5|15|2|c|11|2|w|11\n"
                                "5|15|1|late|8|1|x|7\n"
                                "5|15|1|late|9|1|y|9\n"
                                "10|20|1|b|15|1|z|15\n"));
    /* "late" at 8 belongs to [0,10) (closed) and [5,15) (open): kept. */
    CU_ASSERT_EQUAL(g.op->stats.rows_late, 0);
    jrig_free(&g);

    window_setup(&g, VELO_JOIN_LEFT, VELO_WINDOW_HOPPING, 64);
    window_part1(&g);
    window_part2(&g);
    CU_ASSERT(same_rows(&g.out, "-5|5|1|a|3|NULL|NULL|NULL\n"
                                "0|10|1|a|7|1|x|7\n"
                                "0|10|1|a|9|1|y|9\n"
                                "0|10|2|c|5|NULL|NULL|NULL\n"
                                "5|15|1|b|12|1|x|7\n"
                                "5|15|1|b|12|1|y|9\n"
                                "5|15|2|c|11|2|w|11\n"
                                "5|15|1|late|8|1|x|7\n"
                                "5|15|1|late|9|1|y|9\n"
                                "10|20|1|b|15|1|z|15\n"));
    jrig_free(&g);
}

/* Long runs: expired rows give their slots and strings back, so state
 * follows the rows held, not the rows seen. */
static void test_state_memory_bounded(void)
{
    char text[120];
    memset(text, 'x', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    for (int kind = 0; kind < 2; kind++) {
        struct jrig g;
        if (kind == 0) {
            interval_setup(&g, VELO_JOIN_LEFT, NULL, 64);
        } else {
            window_setup(&g, VELO_JOIN_LEFT, VELO_WINDOW_HOPPING, 64);
        }
        size_t peak_rows = 0, peak_bytes = 0;
        int64_t t = 0;
        for (int b = 0; b < 800; b++) {
            for (int r = 0; r < 64; r++, t++) {
                text[r % 100] = (char)('a' + b % 26); /* distinct strings */
                add(g.lb, t % 50, text, t, t);
                add(g.rb, t % 50, text, t, t);
            }
            CU_ASSERT_EQUAL(push(&g, 0), VELO_OK);
            CU_ASSERT_EQUAL(push(&g, 1), VELO_OK);
            CU_ASSERT_EQUAL(wm(&g, t), VELO_OK);
            if (b >= 400) { /* past warm-up: nothing should keep growing */
                if (g.op->stats.state_rows > peak_rows) {
                    peak_rows = g.op->stats.state_rows;
                }
                if (g.op->stats.state_bytes > peak_bytes) {
                    peak_bytes = g.op->stats.state_bytes;
                }
            }
        }
        /* 51,200 rows a side went through; a few dozen are held. */
        CU_ASSERT(peak_rows < 200);
        CU_ASSERT(peak_bytes < 4 * 1024 * 1024);
        CU_ASSERT(g.out.n > 50000);
        CU_ASSERT_EQUAL(finish(&g), VELO_OK);
        CU_ASSERT_EQUAL(g.op->stats.state_rows, 0);
        jrig_free(&g);
    }
}

/* ---- Checkpoints -------------------------------------------------------- */

typedef void (*setup_fn)(struct jrig *g);
typedef void (*part_fn)(struct jrig *g);

static void interval_full(struct jrig *g)
{
    interval_setup(g, VELO_JOIN_FULL, NULL, 64);
}

static void window_left_hop(struct jrig *g)
{
    window_setup(g, VELO_JOIN_LEFT, VELO_WINDOW_HOPPING, 64);
}

static void lookup_left(struct jrig *g)
{
    jrig_init(g, 64);
    struct velo_join_keys k = mkkeys(g, VELO_JOIN_LEFT, NULL);
    g->op = velo_op_lookup_join(&g->x.env, g->ls, g->rs, &k, NULL);
    jrig_attach(g);
}

static void lookup_part1(struct jrig *g)
{
    add(g->rb, 1, "ann", NT, 1);
    add(g->rb, 2, "bob", NT, 2);
    add(g->rb, 3, "cy", NT, 3);
    CU_ASSERT_EQUAL(push(g, 1), VELO_OK);
    add(g->rb, 3, "cy", NT, 4);
    g->rops[0] = VELO_ROW_DELETE;
    g->rb->op = g->rops;
    CU_ASSERT_EQUAL(push(g, 1), VELO_OK);
    add(g->lb, 1, "a", 1, 1);
    CU_ASSERT_EQUAL(push(g, 0), VELO_OK);
}

static void lookup_part2(struct jrig *g)
{
    add(g->lb, 2, "b", 2, 2);
    add(g->lb, 3, "c", 3, 3);
    CU_ASSERT_EQUAL(push(g, 0), VELO_OK);
    CU_ASSERT_EQUAL(finish(g), VELO_OK);
}

static void check_restore(setup_fn setup, part_fn p1, part_fn p2)
{
    /* Uninterrupted. */
    struct jrig a;
    setup(&a);
    p1(&a);
    p2(&a);
    char *want = jsink_text(&a.out);

    /* Interrupted after part 1: snapshot, a fresh operator, restore. */
    struct jrig b, c;
    setup(&b);
    p1(&b);
    struct velo_state_writer w;
    velo_sw_init(&w);
    CU_ASSERT_EQUAL_FATAL(b.op->ops->snapshot(b.op, &w), VELO_OK);
    setup(&c);
    struct velo_state_reader r;
    velo_sr_init(&r, w.buf, w.len);
    CU_ASSERT_EQUAL(c.op->ops->restore(c.op, &r), VELO_OK);
    CU_ASSERT_EQUAL(c.op->stats.state_rows, b.op->stats.state_rows);
    p2(&c);
    /* What b emitted before the snapshot plus what c emitted after. */
    for (size_t i = 0; i < c.out.n; i++) {
        if (b.out.n == b.out.cap) {
            b.out.cap = b.out.cap ? b.out.cap * 2 : 16;
            b.out.lines = realloc(b.out.lines, b.out.cap * sizeof(char *));
        }
        b.out.lines[b.out.n++] = strdup(c.out.lines[i]);
    }
    char *got = jsink_text(&b.out);
    CU_ASSERT_STRING_EQUAL(got, want);
    CU_ASSERT(strlen(want) > 0);

    /* Corrupt: every truncation is rejected; a wrong version too; flipped
     * bytes never crash (run under ASan). */
    for (size_t len = 0; len < w.len; len++) {
        struct jrig d;
        setup(&d);
        velo_sr_init(&r, w.buf, len);
        CU_ASSERT_EQUAL(d.op->ops->restore(d.op, &r), VELO_ERR);
        jrig_free(&d);
    }
    static const uint8_t flips[] = {0xa5, 0x80, 0x01, 0xff};
    for (size_t i = 0; i < w.len; i++) {
        for (size_t f = 0; f < sizeof(flips); f++) {
            struct jrig d;
            setup(&d);
            w.buf[i] ^= flips[f];
            velo_sr_init(&r, w.buf, w.len);
            int rc = d.op->ops->restore(d.op, &r);
            if (i < 4) {
                CU_ASSERT_EQUAL(rc, VELO_ERR); /* the version */
            }
            w.buf[i] ^= flips[f];
            /* Whatever was accepted must run on without harm. */
            if (rc == VELO_OK) {
                wm(&d, 1000);
                finish(&d);
            }
            jrig_free(&d);
        }
    }
    velo_sw_free(&w);
    free(want);
    free(got);
    jrig_free(&a);
    jrig_free(&b);
    jrig_free(&c);
}

static void interval_p1_only(struct jrig *g)
{
    interval_part1(g);
}

static void test_snapshot_restore(void)
{
    check_restore(interval_full, interval_p1_only, interval_part2);
    check_restore(window_left_hop, window_part1, window_part2);
    check_restore(lookup_left, lookup_part1, lookup_part2);
}

/* ---- Construction errors ------------------------------------------------ */

static void test_bad_construction(void)
{
    struct jrig g;
    jrig_init(&g, 64);
    /* RIGHT is not a lookup join type. */
    struct velo_join_keys k = mkkeys(&g, VELO_JOIN_RIGHT, NULL);
    CU_ASSERT_PTR_NULL(velo_op_lookup_join(&g.x.env, g.ls, g.rs, &k, NULL));
    /* Keys of different physical types cannot hash alike. */
    k = mkkeys(&g, VELO_JOIN_INNER, NULL);
    velo_expr_free(k.rkeys[0]);
    k.rkeys[0] = xparse(funcs, g.rs, "$1");
    CU_ASSERT_PTR_NULL(
        velo_op_interval_join(&g.x.env, g.ls, g.rs, &k, NULL, NULL, 0, SEC, 0));
    /* lower > upper */
    k = mkkeys(&g, VELO_JOIN_INNER, NULL);
    CU_ASSERT_PTR_NULL(
        velo_op_interval_join(&g.x.env, g.ls, g.rs, &k, NULL, NULL, SEC, 0, 0));
    /* No event time: a schema without _timestamp and no time expression. */
    struct velo_schema *nots = xschema("k:BIGINT;v:STRING");
    k = mkkeys(&g, VELO_JOIN_INNER, NULL);
    struct velo_window_spec w = {.kind = VELO_WINDOW_TUMBLING, .size_us = SEC};
    CU_ASSERT_PTR_NULL(velo_op_window_join(&g.x.env, nots, g.rs, &k, &w, NULL));
    /* A hopping advance larger than the size. */
    k = mkkeys(&g, VELO_JOIN_INNER, NULL);
    w.kind = VELO_WINDOW_HOPPING;
    w.advance_us = 2 * SEC;
    CU_ASSERT_PTR_NULL(velo_op_window_join(&g.x.env, g.ls, g.rs, &k, &w, NULL));
    velo_schema_destroy(nots);
    jrig_free(&g);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 1;
    }
    funcs = velo_funcs_create();
    CU_pSuite s = CU_add_suite("joins", NULL, NULL);
    CU_add_test(s, "lookup join: table changelog, INNER and LEFT",
                test_lookup_table);
    CU_add_test(s, "lookup join: residual predicate", test_lookup_residual);
    CU_add_test(s, "lookup join: provider and its cache", test_lookup_provider);
    CU_add_test(s, "interval join: bounds, expiry, late rows",
                test_interval_inner);
    CU_add_test(s, "interval join: outer rows on expiry and at finish",
                test_interval_outer);
    CU_add_test(s, "interval join: many matches over several batches",
                test_interval_many_matches);
    CU_add_test(s, "state memory stays bounded", test_state_memory_bounded);
    CU_add_test(s, "window join: tumbling, outer", test_window_join);
    CU_add_test(s, "window join: hopping", test_window_hopping);
    CU_add_test(s, "snapshot/restore and corrupt snapshots",
                test_snapshot_restore);
    CU_add_test(s, "bad construction", test_bad_construction);
    int rc = tu_run_all();
    velo_funcs_destroy(funcs);
    return rc;
}
