/*
 * Invalid queries (sql_invalid_cases.h): each must fail with its code at
 * its line and column, saying the expected phrase, with the source line
 * and a caret in the text form. Bound against the real function and
 * connector registries; the sources' schemas come from a fixed table, as
 * a caller that inferred them would hand them over.
 *
 * Also: every error of a file is reported (not only the first), and the
 * warnings that do not stop a plan.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/registry.h"
#include "exec/expr.h"
#include "exec/operator.h"
#include "sql/sql.h"
#include "sql_invalid_cases.h"
#include "testutil.h"

/* ---- A plan environment with fixed source schemas ----------------------- */

struct test_source {
    const char *match; /* a substring of the source's name or URI */
    const char *cols;  /* "name TYPE;name TYPE" */
    int bounded;
};

static const struct test_source test_sources[] = {
    {"trades",
     "ts TIMESTAMP;symbol STRING;price DECIMAL(10,2);qty BIGINT;"
     "side STRING;venue STRING",
     1},
    {"events", "ts TIMESTAMP;user_id BIGINT;event STRING;amount DOUBLE;"
               "meta JSON",
     1},
    {"ticks", "ts TIMESTAMP;symbol STRING;price DOUBLE", 0},
    {"stdin", "line STRING", 0},
};

static struct velo_schema *schema_of(const char *cols)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", cols);
    size_t n = 1;
    for (char *p = buf; *p; p++) {
        n += *p == ';';
    }
    struct velo_schema *s = velo_schema_create(n);
    size_t i = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ";", &save); tok != NULL;
         tok = strtok_r(NULL, ";", &save)) {
        char *sp = strchr(tok, ' ');
        *sp = '\0';
        struct velo_datatype t;
        CU_ASSERT_EQUAL(velo_type_parse(sp + 1, &t), VELO_OK);
        velo_schema_set(s, i++, tok, t, 1, 0);
    }
    return s;
}

static int fixed_schema(void *arg, const struct velo_plan_source *src,
                        struct velo_schema **out, int *bounded, char *err,
                        size_t errlen)
{
    (void)arg;
    if (strstr(src->name, "missing") != NULL) {
        snprintf(err, errlen, "cannot open %s: No such file or directory",
                 src->name);
        return VELO_ERR;
    }
    for (size_t i = 0; i < sizeof(test_sources) / sizeof(*test_sources);
         i++) {
        if (strstr(src->name, test_sources[i].match) != NULL) {
            *out = schema_of(test_sources[i].cols);
            *bounded = test_sources[i].bounded;
            return VELO_OK;
        }
    }
    snprintf(err, errlen, "unknown test source %s", src->name);
    return VELO_ERR;
}

struct env {
    struct velo_funcs *funcs;
    struct velo_connectors *conns;
    struct velo_exec_env exec;
    struct velo_plan_env plan;
};

static void env_init(struct env *e)
{
    memset(e, 0, sizeof(*e));
    e->funcs = velo_funcs_create();
    e->conns = velo_connectors_create(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e->funcs);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e->conns);
    e->exec.funcs = e->funcs;
    e->exec.batch_cap = VELO_BATCH_ROWS;
    e->plan.funcs = e->funcs;
    e->plan.connectors = e->conns;
    e->plan.exec = &e->exec;
    e->plan.source_schema = fixed_schema;
    e->plan.stdout_format = VELO_FORMAT_JSON;
}

static void env_free(struct env *e)
{
    velo_connectors_destroy(e->conns);
    velo_funcs_destroy(e->funcs);
}

/* Parse and plan; returns the plan (NULL on errors), diags filled. */
static struct velo_plan *plan_sql(struct env *e, const char *sql,
                                  struct velo_sql_diags *d)
{
    struct velo_sql_program *p = velo_sql_parse(sql, strlen(sql), d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    struct velo_plan *plan = velo_sql_plan(p, &e->plan, d);
    velo_sql_program_free(p);
    return plan;
}

/* ---- The table ---------------------------------------------------------- */

static int diag_says(const struct velo_sql_diag *dg, const char *phrase)
{
    return (dg->message && strstr(dg->message, phrase)) ||
           (dg->detail && strstr(dg->detail, phrase)) ||
           (dg->hint && strstr(dg->hint, phrase));
}

static void test_invalid_table(void)
{
    struct env e;
    env_init(&e);
    size_t n = sizeof(sql_invalid_cases) / sizeof(*sql_invalid_cases);
    CU_ASSERT(n >= 60);
    size_t failed = 0;
    for (size_t i = 0; i < n; i++) {
        const struct sql_invalid_case *c = &sql_invalid_cases[i];
        struct velo_sql_diags d = {0};
        struct velo_plan *plan = plan_sql(&e, c->sql, &d);
        const struct velo_sql_diag *first = NULL;
        for (size_t k = 0; k < d.n && first == NULL; k++) {
            if (d.d[k].severity == 0) {
                first = &d.d[k];
            }
        }
        int ok = plan == NULL && d.errors >= 1 && first != NULL &&
                 strcmp(first->code, c->code) == 0 &&
                 first->line == c->line && first->col == c->col &&
                 diag_says(first, c->phrase) && first->message != NULL;
        char *text = velo_sql_diags_format(&d, "q.sql");
        /* The text form shows the line and a caret under the place. */
        if (ok && c->line > 0) {
            char head[64];
            snprintf(head, sizeof(head), "q.sql:%d:%d: error %s:", c->line,
                     c->col, c->code);
            ok = text != NULL && strstr(text, head) != NULL &&
                 strstr(text, "\n  ") != NULL && strchr(text, '^') != NULL &&
                 first->source_line != NULL;
        }
        if (!ok) {
            failed++;
            fprintf(stderr,
                    "\ncase %zu: want %s at %d:%d saying \"%s\"\n%s\ngot:\n%s",
                    i, c->code, c->line, c->col, c->phrase, c->sql,
                    text ? text : "(nothing)");
        }
        CU_ASSERT(ok);
        free(text);
        velo_plan_destroy(plan);
        velo_sql_diags_free(&d);
    }
    CU_ASSERT_EQUAL(failed, 0);
    env_free(&e);
}

/* Every code family is covered by the table. */
static void test_table_coverage(void)
{
    size_t n = sizeof(sql_invalid_cases) / sizeof(*sql_invalid_cases);
    int fam[8] = {0};
    for (size_t i = 0; i < n; i++) {
        int f = sql_invalid_cases[i].code[1] - '0';
        if (f >= 0 && f < 8) {
            fam[f]++;
        }
    }
    for (int f = 1; f <= 6; f++) {
        CU_ASSERT(fam[f] >= 5);
    }
}

/* ---- Every error of a file ---------------------------------------------- */

static void test_all_errors_reported(void)
{
    struct env e;
    env_init(&e);
    const char *sql =
        "CREATE STREAM big AS SELECT symbol, pirce FROM "
        "'file://trades.csv';\n"                                    /* 1 */
        "SELECT * FROM big;\n"            /* reads the failed one: quiet */
        "SELECT UPPPER(symbol) FROM 'file://trades.csv';\n"         /* 3 */
        "SELECT symbol FROM 'file://trades.csv' WHERE qty = 'x' AND "
        "price > 'y';\n"                                            /* 4 */
        "SELECT symbol, COUNT(*) FROM 'file://ticks.csv' GROUP BY "
        "symbol ORDER BY 2;\n"                                      /* 5 */
        "SELECT * FROM 'file://trades.csv' WITH ('x.y'='z');\n";    /* 6 */
    struct velo_sql_diags d = {0};
    struct velo_plan *plan = plan_sql(&e, sql, &d);
    CU_ASSERT_PTR_NULL(plan);
    char *text = velo_sql_diags_format(&d, "q.sql");
    static const struct {
        const char *code;
        int line;
    } want[] = {{"V3001", 1}, {"V3003", 3}, {"V4001", 4},
                {"V5005", 5}, {"V3007", 6}};
    size_t nwant = sizeof(want) / sizeof(*want);
    CU_ASSERT_EQUAL(d.errors, nwant);
    for (size_t i = 0; i < nwant; i++) {
        int found = 0;
        for (size_t k = 0; k < d.n; k++) {
            found |= strcmp(d.d[k].code, want[i].code) == 0 &&
                     d.d[k].line == want[i].line;
        }
        if (!found) {
            fprintf(stderr, "\nmissing %s on line %d in:\n%s", want[i].code,
                    want[i].line, text);
        }
        CU_ASSERT(found);
    }
    /* Line 2 reads the stream whose definition failed: no second error. */
    for (size_t k = 0; k < d.n; k++) {
        CU_ASSERT(d.d[k].line != 2);
    }
    free(text);
    velo_sql_diags_free(&d);

    /* A syntax error in one statement does not hide binding errors in
     * the others from validate. */
    const char *sql2 = "SELECT FROM;\n"
                       "SELECT nope FROM 'file://trades.csv';\n";
    d = (struct velo_sql_diags){0};
    plan = plan_sql(&e, sql2, &d);
    CU_ASSERT_PTR_NULL(plan);
    CU_ASSERT_EQUAL(d.errors, 2);
    CU_ASSERT_EQUAL_FATAL(d.n, 2);
    CU_ASSERT_STRING_EQUAL(d.d[0].code, "V2001");
    CU_ASSERT_STRING_EQUAL(d.d[1].code, "V3001");
    velo_sql_diags_free(&d);
    env_free(&e);
}

/* ---- Warnings ----------------------------------------------------------- */

static const struct velo_sql_diag *find_code(const struct velo_sql_diags *d,
                                             const char *code)
{
    for (size_t k = 0; k < d->n; k++) {
        if (strcmp(d->d[k].code, code) == 0) {
            return &d->d[k];
        }
    }
    return NULL;
}

static void test_warnings(void)
{
    struct env e;
    env_init(&e);
    /* A stream nothing reads and nothing stores. */
    struct velo_sql_diags d = {0};
    struct velo_plan *plan =
        plan_sql(&e, "CREATE STREAM lost AS SELECT symbol FROM "
                     "'file://trades.csv'",
                 &d);
    CU_ASSERT_PTR_NOT_NULL(plan);
    CU_ASSERT_EQUAL(d.errors, 0);
    const struct velo_sql_diag *w = find_code(&d, "V5022");
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    CU_ASSERT_EQUAL(w->severity, 1);
    CU_ASSERT_EQUAL(w->line, 1);
    CU_ASSERT_EQUAL(w->col, 15);
    CU_ASSERT_PTR_NOT_NULL(strstr(w->hint, "lost.type"));
    char *text = velo_sql_diags_format(&d, "q.sql");
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "q.sql:1:15: warning V5022:"));
    free(text);
    velo_plan_destroy(plan);
    velo_sql_diags_free(&d);

    /* csv options on a JSON source. */
    d = (struct velo_sql_diags){0};
    plan = plan_sql(&e, "SELECT * FROM events WITH ("
                        "'events.type'='file_source', "
                        "'events.path'='events.jsonl', "
                        "'events.csv.delimiter'=';')",
                    &d);
    CU_ASSERT_PTR_NOT_NULL(plan);
    CU_ASSERT_EQUAL(d.errors, 0);
    w = find_code(&d, "V6011");
    CU_ASSERT_PTR_NOT_NULL(w);
    velo_plan_destroy(plan);
    velo_sql_diags_free(&d);

    /* A constant that always fails is reported, not folded away. */
    d = (struct velo_sql_diags){0};
    plan = plan_sql(&e, "SELECT qty / 0 FROM 'file://trades.csv'", &d);
    CU_ASSERT_PTR_NOT_NULL(plan);
    CU_ASSERT_EQUAL(d.errors, 0);
    velo_plan_destroy(plan);
    velo_sql_diags_free(&d);
    d = (struct velo_sql_diags){0};
    plan = plan_sql(&e, "SELECT 1 / 0 FROM 'file://trades.csv'", &d);
    CU_ASSERT_PTR_NOT_NULL(plan);
    w = find_code(&d, "V4009");
    CU_ASSERT_PTR_NOT_NULL(w);
    if (w != NULL) {
        CU_ASSERT_EQUAL(w->severity, 1);
        CU_ASSERT_PTR_NOT_NULL(strstr(w->message, "fails on every row"));
    }
    velo_plan_destroy(plan);
    velo_sql_diags_free(&d);
    env_free(&e);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 1;
    }
    CU_pSuite s = CU_add_suite("sql_invalid", NULL, NULL);
    CU_add_test(s, "invalid queries table", test_invalid_table);
    CU_add_test(s, "table covers every family", test_table_coverage);
    CU_add_test(s, "every error of a file", test_all_errors_reported);
    CU_add_test(s, "warnings", test_warnings);
    return tu_run_all();
}
