/*
 * The planner: the operator DAGs it builds for representative queries,
 * sources and sinks with their properties and formats, an application of
 * several statements reading each other, explain (text and JSON), the
 * plan fingerprint, and rows pushed through planned DAGs end to end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "connectors/registry.h"
#include "exec/batch.h"
#include "exec/expr.h"
#include "exec/operator.h"
#include "sql/sql.h"
#include "testutil.h"

/* ---- Environment -------------------------------------------------------- */

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
    {"stdin", "data STRING", 0},
};

static int schema_calls;

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
        velo_type_parse(sp + 1, &t);
        velo_schema_set(s, i++, tok, t, 1, 0);
    }
    return s;
}

static int fixed_schema(void *arg, const struct velo_plan_source *src,
                        struct velo_schema **out, int *bounded, char *err,
                        size_t errlen)
{
    (void)arg;
    schema_calls++;
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

static int64_t fixed_now(void)
{
    return INT64_C(1767225600000000); /* 2026-01-01T00:00:00Z */
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
    e->exec.now_us = fixed_now;
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

static struct velo_plan *plan_ok(struct env *e, const char *sql)
{
    struct velo_sql_diags d = {0};
    struct velo_sql_program *p = velo_sql_parse(sql, strlen(sql), &d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    struct velo_plan *plan = velo_sql_plan(p, &e->plan, &d);
    if (plan == NULL || d.errors > 0) {
        char *t = velo_sql_diags_format(&d, "q.sql");
        fprintf(stderr, "\nunexpected errors for:\n%s\n%s", sql, t);
        free(t);
    }
    CU_ASSERT_PTR_NOT_NULL(plan);
    velo_sql_program_free(p);
    velo_sql_diags_free(&d);
    return plan;
}

/* The operator names along the single-child chain below `op`. */
static void chain(const struct velo_op *op, char *out, size_t len)
{
    size_t o = 0;
    out[0] = '\0';
    while (op != NULL && o < len) {
        int w = snprintf(out + o, len - o, "%s%s", o ? " > " : "",
                         op->ops->name);
        if (w < 0) {
            break;
        }
        o += (size_t)w;
        op = op->nchildren == 1 ? op->children[0] : NULL;
    }
}

static int field(const struct velo_schema *s, const char *name, int *hidden)
{
    int i = velo_schema_find(s, name);
    if (i >= 0 && hidden != NULL) {
        *hidden = s->fields[i].hidden;
    }
    return i;
}

/* ---- Shapes ------------------------------------------------------------- */

static void test_filter_project(void)
{
    struct env e;
    env_init(&e);
    struct velo_plan *p =
        plan_ok(&e, "SELECT symbol, qty * 2 AS dbl FROM 'file://trades.csv' "
                    "WHERE qty > 100");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(p->nsources, 1);
    CU_ASSERT_EQUAL(p->nsinks, 1);
    CU_ASSERT_EQUAL(p->nstatements, 1);
    const struct velo_plan_source *s = &p->sources[0];
    CU_ASSERT_STRING_EQUAL(s->name, "file://trades.csv");
    CU_ASSERT_STRING_EQUAL(s->uri, "file://trades.csv");
    CU_ASSERT_STRING_EQUAL(s->conn->name, "file");
    CU_ASSERT_EQUAL(s->format.kind, VELO_FORMAT_CSV);
    CU_ASSERT_EQUAL(s->bounded, 1);
    CU_ASSERT_EQUAL(s->nprops, 0);
    /* The hidden event time is last. */
    CU_ASSERT_EQUAL(s->schema->n, 7);
    CU_ASSERT_STRING_EQUAL(s->schema->fields[6].name, "_timestamp");
    CU_ASSERT_EQUAL(s->schema->fields[6].hidden, 1);
    /* Only the columns the query reads are decoded. */
    CU_ASSERT_EQUAL(s->needed[field(s->schema, "symbol", NULL)], 1);
    CU_ASSERT_EQUAL(s->needed[field(s->schema, "qty", NULL)], 1);
    CU_ASSERT_EQUAL(s->needed[field(s->schema, "price", NULL)], 0);
    CU_ASSERT_EQUAL(s->needed[field(s->schema, "venue", NULL)], 0);
    char c[256];
    chain(s->entry, c, sizeof(c));
    CU_ASSERT_STRING_EQUAL(c, "Tee > Filter > Project");
    const struct velo_plan_sink *k = &p->sinks[0];
    CU_ASSERT_STRING_EQUAL(k->name, "stdout");
    CU_ASSERT_STRING_EQUAL(k->conn->name, "stdout");
    CU_ASSERT_EQUAL(k->format.kind, VELO_FORMAT_JSON);
    CU_ASSERT_EQUAL(k->changelog, 0);
    CU_ASSERT_STRING_EQUAL(k->upstream->ops->name, "Project");
    CU_ASSERT_PTR_EQUAL(k->schema, k->upstream->out_schema);
    const struct velo_schema *out = k->schema;
    int hidden = 0;
    CU_ASSERT_EQUAL(field(out, "symbol", &hidden), 0);
    CU_ASSERT_EQUAL(hidden, 0);
    CU_ASSERT_EQUAL(field(out, "dbl", &hidden), 1);
    CU_ASSERT_EQUAL(out->fields[1].type.id, VELO_TYPE_BIGINT);
    /* Event time rides along hidden for later statements. */
    CU_ASSERT(field(out, "_timestamp", &hidden) >= 0);
    CU_ASSERT_EQUAL(hidden, 1);
    CU_ASSERT_STRING_EQUAL(p->statements[0].kind, "SELECT");
    CU_ASSERT_PTR_NULL(p->statements[0].target);
    CU_ASSERT_EQUAL(p->statements[0].emit, -1);
    CU_ASSERT_EQUAL(p->statements[0].line, 1);
    /* Every operator is listed for destroy and explain. */
    CU_ASSERT_EQUAL(p->nops, 3);
    velo_plan_destroy(p);
    env_free(&e);
}

static void test_aggregate_shapes(void)
{
    struct env e;
    env_init(&e);
    /* A window: FINAL by default, hidden window bounds. */
    struct velo_plan *p = plan_ok(
        &e, "SELECT symbol, SUM(qty) AS volume, COUNT(*)\n"
            "FROM 'file://trades.csv' WHERE price > 0 GROUP BY symbol\n"
            "WINDOW TUMBLING(ts, INTERVAL '5' MINUTE)");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    char c[256];
    chain(p->sources[0].entry, c, sizeof(c));
    /* The window closes on the Watermark in front of it. */
    CU_ASSERT_STRING_EQUAL(c, "Tee > Filter > Watermark > Aggregate > Project");
    CU_ASSERT_EQUAL(p->statements[0].emit, VELO_EMIT_FINAL);
    CU_ASSERT_EQUAL(p->sinks[0].changelog, 0);
    const struct velo_op *agg =
        p->sources[0].entry->children[0]->children[0]->children[0];
    int hidden = 0;
    CU_ASSERT_EQUAL(field(agg->out_schema, "_window_start", &hidden), 0);
    CU_ASSERT_EQUAL(hidden, 1);
    CU_ASSERT_EQUAL(field(agg->out_schema, "_window_end", &hidden), 1);
    CU_ASSERT_EQUAL(agg->out_schema->n, 5); /* 2 bounds, 1 key, 2 aggs */
    CU_ASSERT_EQUAL(agg->keeps_state, 1);
    const struct velo_schema *out = p->sinks[0].schema;
    CU_ASSERT_STRING_EQUAL(out->fields[0].name, "symbol");
    CU_ASSERT_STRING_EQUAL(out->fields[1].name, "volume");
    CU_ASSERT_STRING_EQUAL(out->fields[2].name, "count");
    CU_ASSERT(field(out, "_window_start", &hidden) >= 0 && hidden);
    CU_ASSERT(field(out, "_timestamp", &hidden) >= 0 && hidden);
    velo_plan_destroy(p);

    /* No window: CHANGES by default, so the sink gets a changelog. */
    p = plan_ok(&e, "SELECT symbol, AVG(price) FROM 'file://trades.csv' "
                    "GROUP BY symbol HAVING COUNT(*) > 1");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    chain(p->sources[0].entry, c, sizeof(c));
    CU_ASSERT_STRING_EQUAL(c, "Tee > Aggregate > Filter > Project");
    CU_ASSERT_EQUAL(p->statements[0].emit, VELO_EMIT_CHANGES);
    CU_ASSERT_EQUAL(p->sinks[0].changelog, 1);
    /* HAVING's COUNT(*) is computed but not shown. */
    agg = p->sources[0].entry->children[0];
    CU_ASSERT_EQUAL(agg->out_schema->n, 3);
    CU_ASSERT_EQUAL(p->sinks[0].schema->n, 2);
    velo_plan_destroy(p);

    /* EMIT FINAL on bounded input without a window; global aggregate. */
    p = plan_ok(&e, "SELECT COUNT(*), MAX(price) FROM 'file://trades.csv' "
                    "EMIT FINAL");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(p->statements[0].emit, VELO_EMIT_FINAL);
    CU_ASSERT_EQUAL(p->sinks[0].changelog, 0);
    velo_plan_destroy(p);

    /* DISTINCT is a grouping; ORDER BY with LIMIT sorts its output. */
    p = plan_ok(&e, "SELECT DISTINCT side FROM 'file://trades.csv' "
                    "ORDER BY side DESC LIMIT 1");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    chain(p->sources[0].entry, c, sizeof(c));
    CU_ASSERT_STRING_EQUAL(c, "Tee > Aggregate > Project > Sort");
    velo_plan_destroy(p);

    /* ORDER BY an expression not shown: a hidden sort column. */
    p = plan_ok(&e, "SELECT symbol FROM 'file://trades.csv' ORDER BY qty "
                    "* price DESC");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    const struct velo_schema *ps = p->sinks[0].schema;
    CU_ASSERT_STRING_EQUAL(ps->fields[0].name, "symbol");
    CU_ASSERT(field(ps, "_order1", &hidden) >= 0 && hidden);
    velo_plan_destroy(p);

    /* LIMIT without ORDER BY, also on an unbounded source. */
    p = plan_ok(&e, "SELECT * FROM 'file://ticks.csv' LIMIT 5 OFFSET 2");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    chain(p->sources[0].entry, c, sizeof(c));
    CU_ASSERT_STRING_EQUAL(c, "Tee > Project > Limit");
    CU_ASSERT_EQUAL(p->sources[0].bounded, 0);
    velo_plan_destroy(p);
    /* ORDER BY with LIMIT on unbounded input keeps the top rows. */
    p = plan_ok(&e, "SELECT * FROM 'file://ticks.csv' ORDER BY price DESC "
                    "LIMIT 3");
    CU_ASSERT_PTR_NOT_NULL(p);
    velo_plan_destroy(p);
    env_free(&e);
}

static void test_sources_and_sinks(void)
{
    struct env e;
    env_init(&e);
    schema_calls = 0;
    struct velo_plan *p = plan_ok(
        &e, "CREATE STREAM trades (ts TIMESTAMP NOT NULL, symbol STRING,\n"
            "  price DECIMAL(10,2), qty BIGINT)\n"
            "WITH ('trades.type'='file_source', 'trades.path'='t.tsv',\n"
            "      'trades.csv.header'='false', 'trades.csv.null'='NA');\n"
            "CREATE STREAM big AS SELECT * FROM trades WHERE qty > 10\n"
            "WITH ('big.type'='file_sink', 'big.path'='out/big.csv',\n"
            "      'big.rotate.bytes'='10MiB');\n"
            "SELECT symbol FROM trades;\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    /* The declared stream is one source read by both statements. */
    CU_ASSERT_EQUAL(p->nsources, 1);
    CU_ASSERT_EQUAL(schema_calls, 1);
    const struct velo_plan_source *s = &p->sources[0];
    CU_ASSERT_STRING_EQUAL(s->name, "trades");
    CU_ASSERT_PTR_NULL(s->uri);
    CU_ASSERT_EQUAL(s->entry->nchildren, 2);
    CU_ASSERT_EQUAL(s->line, 1);
    CU_ASSERT_EQUAL(s->col, 15);
    /* Declared columns win over inference; NOT NULL kept. */
    CU_ASSERT_EQUAL(s->schema->n, 5);
    CU_ASSERT_EQUAL(s->schema->fields[0].nullable, 0);
    CU_ASSERT_EQUAL(s->schema->fields[1].nullable, 1);
    CU_ASSERT_EQUAL(s->schema->fields[2].type.id, VELO_TYPE_DECIMAL);
    CU_ASSERT_EQUAL(s->schema->fields[2].type.scale, 2);
    /* Engine keys configure the format; the connector gets the rest. */
    CU_ASSERT_EQUAL(s->format.kind, VELO_FORMAT_CSV);
    CU_ASSERT_EQUAL(s->format.delimiter, '\t'); /* from .tsv */
    CU_ASSERT_EQUAL(s->format.header, 0);
    CU_ASSERT_STRING_EQUAL(s->format.null_text, "NA");
    CU_ASSERT_EQUAL_FATAL(s->nprops, 1);
    CU_ASSERT_STRING_EQUAL(s->props[0].key, "path");
    CU_ASSERT_STRING_EQUAL(s->props[0].value, "t.tsv");
    /* The sink of CREATE STREAM big. */
    CU_ASSERT_EQUAL_FATAL(p->nsinks, 2);
    const struct velo_plan_sink *k = &p->sinks[0];
    CU_ASSERT_STRING_EQUAL(k->name, "big");
    CU_ASSERT_STRING_EQUAL(k->conn->name, "file");
    CU_ASSERT_EQUAL(k->format.kind, VELO_FORMAT_CSV);
    CU_ASSERT_EQUAL(k->format.header, 1);
    CU_ASSERT_EQUAL(k->statement, 1);
    CU_ASSERT_EQUAL_FATAL(k->nprops, 2);
    CU_ASSERT_STRING_EQUAL(k->props[0].key, "path");
    CU_ASSERT_STRING_EQUAL(k->props[1].key, "rotate.bytes");
    CU_ASSERT_STRING_EQUAL(k->upstream->ops->name, "Tee");
    CU_ASSERT_STRING_EQUAL(p->sinks[1].name, "stdout");
    CU_ASSERT_EQUAL(p->sinks[1].statement, 2);
    CU_ASSERT_STRING_EQUAL(p->statements[0].kind, "CREATE STREAM");
    CU_ASSERT_STRING_EQUAL(p->statements[0].target, "trades");
    CU_ASSERT_STRING_EQUAL(p->statements[1].target, "big");
    CU_ASSERT_EQUAL(p->statements[1].line, 5);
    CU_ASSERT_EQUAL(p->statements[2].line, 8);
    velo_plan_destroy(p);

    /* Properties in a SELECT's WITH configure its FROM; stdin by word. */
    p = plan_ok(&e, "SELECT user_id FROM events WITH ("
                    "'events.type'='file_source', "
                    "'events.path'='data/events.jsonl', "
                    "'events.watch'='true', 'events.record.max_bytes'="
                    "'64KiB')");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    s = &p->sources[0];
    CU_ASSERT_EQUAL(s->format.kind, VELO_FORMAT_JSON);
    CU_ASSERT_EQUAL(s->format.max_record_bytes, 64 * 1024);
    CU_ASSERT_EQUAL(s->nprops, 2);
    velo_plan_destroy(p);

    /* A connector's own word; its alias's properties configure it. */
    p = plan_ok(&e, "SELECT data FROM stdin AS s WITH ('s.format'='raw', "
                    "'s.read.chunk'='64KiB')");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    s = &p->sources[0];
    CU_ASSERT_STRING_EQUAL(s->name, "stdin");
    CU_ASSERT_STRING_EQUAL(s->uri, "stdin");
    CU_ASSERT_STRING_EQUAL(s->conn->name, "stdin");
    CU_ASSERT_EQUAL(s->format.kind, VELO_FORMAT_RAW);
    CU_ASSERT_EQUAL(s->bounded, 0);
    CU_ASSERT_EQUAL_FATAL(s->nprops, 1);
    CU_ASSERT_STRING_EQUAL(s->props[0].key, "read.chunk");
    velo_plan_destroy(p);
    env_free(&e);
}

static void test_application(void)
{
    struct env e;
    env_init(&e);
    struct velo_plan *p = plan_ok(
        &e,
        "CREATE STREAM big AS SELECT ts, symbol, price * qty AS notional\n"
        "  FROM 'file://trades.csv' WHERE qty > 100;\n"
        "CREATE TABLE totals AS SELECT symbol, SUM(notional) AS total\n"
        "  FROM big GROUP BY symbol\n"
        "  WITH ('totals.type'='file_sink', 'totals.path'='totals.json');\n"
        "INSERT INTO big SELECT ts, symbol, price FROM "
        "'file://trades.csv';\n"
        "SELECT symbol, COUNT(*) FROM big GROUP BY symbol\n"
        "  WINDOW TUMBLING(INTERVAL '1' HOUR);\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    /* One source: the two reads of the same URI share it. */
    CU_ASSERT_EQUAL(p->nsources, 1);
    CU_ASSERT_EQUAL(p->sources[0].entry->nchildren, 2);
    CU_ASSERT_EQUAL(p->nstatements, 4);
    CU_ASSERT_STRING_EQUAL(p->statements[1].kind, "CREATE TABLE");
    CU_ASSERT_STRING_EQUAL(p->statements[2].kind, "INSERT");
    CU_ASSERT_STRING_EQUAL(p->statements[2].target, "big");
    /* The stream big is a Tee fed by statement 1 and by the INSERT, read
     * by the table and the windowed count. */
    char c[256];
    const struct velo_op *tee = NULL;
    for (size_t i = 0; i < p->nops; i++) {
        if (strcmp(p->ops[i]->ops->name, "Tee") == 0 &&
            p->ops[i] != p->sources[0].entry) {
            tee = p->ops[i];
        }
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(tee);
    CU_ASSERT_EQUAL(tee->nchildren, 2);
    int hidden = 0;
    CU_ASSERT(field(tee->out_schema, "_timestamp", &hidden) >= 0 && hidden);
    /* The table: keyed by its GROUP BY column, a changelog sink. */
    CU_ASSERT_EQUAL_FATAL(p->nsinks, 2);
    const struct velo_plan_sink *k = &p->sinks[0];
    CU_ASSERT_STRING_EQUAL(k->name, "totals");
    CU_ASSERT_EQUAL(k->changelog, 1);
    CU_ASSERT_STRING_EQUAL(k->upstream->ops->name, "Table");
    CU_ASSERT_EQUAL(k->format.kind, VELO_FORMAT_JSON);
    chain(tee->children[0], c, sizeof(c));
    CU_ASSERT_STRING_EQUAL(c, "Aggregate > Project > Table");
    /* The INSERT casts DECIMAL(10,2) to the stream's DECIMAL column. */
    const struct velo_op *second = p->sources[0].entry->children[1];
    chain(second, c, sizeof(c));
    CU_ASSERT_STRING_EQUAL(c, "Project > Project > Tee");
    CU_ASSERT_PTR_EQUAL(second->children[0]->children[0], tee);
    /* The window on a stream uses the event time carried along. */
    CU_ASSERT_EQUAL(p->statements[3].emit, VELO_EMIT_FINAL);
    velo_plan_destroy(p);

    /* Reading a table reads its changelog: the marks reach the sink. */
    p = plan_ok(&e, "CREATE TABLE t AS SELECT symbol, MAX(price) AS high "
                    "FROM 'file://trades.csv' GROUP BY symbol;\n"
                    "SELECT * FROM t WHERE high > 100;\n"
                    "CREATE STREAM s AS SELECT symbol FROM "
                    "'file://trades.csv';\n"
                    "SELECT * FROM s;\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL_FATAL(p->nsinks, 2);
    CU_ASSERT_EQUAL(p->sinks[0].changelog, 1);
    CU_ASSERT_EQUAL(p->sinks[1].changelog, 0);
    velo_plan_destroy(p);

    /* A sink named by INSERT INTO with properties, fed by two
     * statements. */
    p = plan_ok(&e, "INSERT INTO out SELECT symbol, qty FROM "
                    "'file://trades.csv' WITH ('out.type'='file_sink', "
                    "'out.path'='o.csv');\n"
                    "INSERT INTO out SELECT symbol, 1 FROM 'file://ticks.csv'");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(p->nsinks, 1);
    CU_ASSERT_EQUAL(p->nsources, 2);
    CU_ASSERT_STRING_EQUAL(p->sinks[0].upstream->ops->name, "Tee");
    velo_plan_destroy(p);
    env_free(&e);
}

/* ---- Explain ------------------------------------------------------------ */

static void test_explain(void)
{
    struct env e;
    env_init(&e);
    const char *sql =
        "SELECT symbol, SUM(qty) AS volume FROM 'file://trades.csv'\n"
        "WHERE price > 100 GROUP BY symbol\n"
        "WINDOW TUMBLING(ts, INTERVAL '5' MINUTE);\n"
        "SELECT symbol, COUNT(*) FROM 'file://ticks.csv' GROUP BY symbol;\n";
    struct velo_plan *p = plan_ok(&e, sql);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    char *t = velo_plan_explain(p, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    static const char *const want[] = {
        "Statement 1 (line 1): SELECT, EMIT FINAL",
        "Sink stdout [stdout, json]",
        "-> Project: symbol, SUM(qty) AS volume",
        "rows: symbol STRING, volume BIGINT; system: _window_start "
        "TIMESTAMP, _window_end TIMESTAMP, _timestamp TIMESTAMP",
        "-> Aggregate: keys: symbol; aggregates: SUM(qty); window: "
        "TUMBLING(INTERVAL '5' MINUTE) on ts",
        "state: kept across batches (0 rows,",
        "emits: FINAL: one row per group when the watermark passes the "
        "window end",
        "-> Filter: price > 100",
        "state: none",
        "-> Source file://trades.csv [file, csv, bounded]",
        "rows: ts TIMESTAMP, symbol STRING, price DECIMAL(10,2), qty "
        "BIGINT, side STRING, venue STRING; system: _timestamp TIMESTAMP",
        "Statement 2 (line 4): SELECT, EMIT CHANGES",
        "Sink stdout [stdout, json, changelog with _op]",
        "emits: CHANGES: the updated row of its group after each input row",
        "-> Source file://ticks.csv [file, csv, unbounded]",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++) {
        if (strstr(t, want[i]) == NULL) {
            fprintf(stderr, "\nexplain lacks \"%s\":\n%s", want[i], t);
        }
        CU_ASSERT_PTR_NOT_NULL(strstr(t, want[i]));
    }
    /* Output first: the sink comes before the source. */
    CU_ASSERT(strstr(t, "Sink stdout") < strstr(t, "-> Source"));
    free(t);

    char *js = velo_plan_explain(p, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(js);
    json_error_t je;
    json_t *root = json_loads(js, 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    char fp[24];
    snprintf(fp, sizeof(fp), "%016llx", (unsigned long long)p->fingerprint);
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_object_get(root, "fingerprint")), fp);
    json_t *stmts = json_object_get(root, "statements");
    CU_ASSERT_EQUAL(json_array_size(stmts), 2);
    json_t *s0 = json_array_get(stmts, 0);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(s0, "emit")),
                           "FINAL");
    json_t *n = json_object_get(s0, "plan");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(n, "kind")),
                           "sink");
    /* Walk down to the Aggregate: it keeps state and says when it emits. */
    int found_agg = 0, depth = 0;
    while (json_is_object(n) && depth++ < 10) {
        const char *op = json_string_value(json_object_get(n, "operator"));
        if (op != NULL && strcmp(op, "Aggregate") == 0) {
            found_agg = 1;
            CU_ASSERT(json_is_true(json_object_get(n, "keeps_state")));
            CU_ASSERT(json_is_integer(json_object_get(n, "state_bytes")));
            CU_ASSERT_PTR_NOT_NULL(strstr(
                json_string_value(json_object_get(n, "emits")), "FINAL"));
            json_t *sch = json_object_get(n, "schema");
            CU_ASSERT_EQUAL(json_array_size(sch), 4);
            CU_ASSERT(json_is_true(json_object_get(json_array_get(sch, 0),
                                                   "hidden")));
        }
        n = json_object_get(n, "input");
    }
    CU_ASSERT(found_agg);
    json_t *srcs = json_object_get(root, "sources");
    CU_ASSERT_EQUAL(json_array_size(srcs), 2);
    json_t *needed = json_object_get(json_array_get(srcs, 0), "needed");
    CU_ASSERT_EQUAL(json_array_size(needed), 4); /* ts symbol price qty */
    CU_ASSERT_EQUAL(json_array_size(json_object_get(root, "sinks")), 2);
    json_decref(root);
    free(js);
    velo_plan_destroy(p);
    env_free(&e);
}

/* ---- Fingerprint -------------------------------------------------------- */

static uint64_t fingerprint(struct env *e, const char *sql)
{
    struct velo_plan *p = plan_ok(e, sql);
    uint64_t f = p != NULL ? p->fingerprint : 0;
    velo_plan_destroy(p);
    return f;
}

static void test_fingerprint(void)
{
    struct env e;
    env_init(&e);
    const char *a = "SELECT symbol, SUM(qty) FROM 'file://trades.csv' GROUP "
                    "BY symbol";
    uint64_t fa = fingerprint(&e, a);
    CU_ASSERT(fa != 0);
    /* Stable: the same SQL, or the same plan written differently. */
    CU_ASSERT_EQUAL(fingerprint(&e, a), fa);
    CU_ASSERT_EQUAL(fingerprint(&e, "-- a comment\nselect SYMBOL,\n  sum(qty)"
                                    "\nfrom 'file://trades.csv' t group by "
                                    "t.symbol"),
                    fa);
    /* Anything that changes the plan changes it. */
    CU_ASSERT(fingerprint(&e, "SELECT symbol, SUM(price) FROM "
                              "'file://trades.csv' GROUP BY symbol") != fa);
    CU_ASSERT(fingerprint(&e, "SELECT symbol, SUM(qty) AS s FROM "
                              "'file://trades.csv' GROUP BY symbol") != fa);
    CU_ASSERT(fingerprint(&e, "SELECT symbol, SUM(qty) FROM "
                              "'file://trades.csv' GROUP BY symbol EMIT "
                              "FINAL") != fa);
    CU_ASSERT(fingerprint(&e, "SELECT symbol, SUM(qty) FROM "
                              "'file://trades.csv' WHERE qty > 1 GROUP BY "
                              "symbol") != fa);
    CU_ASSERT(fingerprint(&e, "SELECT symbol, SUM(qty) FROM "
                              "'file://trades.csv' WHERE qty > 2 GROUP BY "
                              "symbol") !=
              fingerprint(&e, "SELECT symbol, SUM(qty) FROM "
                              "'file://trades.csv' WHERE qty > 1 GROUP BY "
                              "symbol"));
    env_free(&e);
}

/* ---- Rows through a planned DAG ----------------------------------------- */

struct capture {
    char rows[64][160];
    size_t n;
    int finished;
};

static int capture_batch(void *arg, struct velo_batch *b)
{
    struct capture *c = arg;
    size_t live = velo_batch_live(b);
    for (size_t i = 0; i < live && c->n < 64; i++) {
        size_t r = b->sel != NULL ? b->sel[i] : i;
        char *o = c->rows[c->n];
        size_t len = sizeof(c->rows[0]), w = 0;
        for (size_t k = 0; k < b->ncols && w < len; k++) {
            if (b->schema->fields[k].hidden) {
                continue;
            }
            const struct velo_column *col = &b->cols[k];
            int n = 0;
            if (col->nulls[r]) {
                n = snprintf(o + w, len - w, "%sNULL", w ? "|" : "");
            } else if (col->type.id == VELO_TYPE_STRING) {
                n = snprintf(o + w, len - w, "%s%.*s", w ? "|" : "",
                             (int)col->v.str[r].len, col->v.str[r].ptr);
            } else if (col->type.id == VELO_TYPE_DECIMAL) {
                char db[40];
                velo_dec_format(col->v.i64[r], col->type.scale, db,
                                sizeof(db));
                n = snprintf(o + w, len - w, "%s%s", w ? "|" : "", db);
            } else if (col->type.id == VELO_TYPE_DOUBLE) {
                n = snprintf(o + w, len - w, "%s%g", w ? "|" : "",
                             col->v.f64[r]);
            } else {
                n = snprintf(o + w, len - w, "%s%lld", w ? "|" : "",
                             (long long)col->v.i64[r]);
            }
            w += n > 0 ? (size_t)n : 0;
        }
        if (b->op != NULL) {
            snprintf(o + w, len > w ? len - w : 0, "%s",
                     b->op[r] == VELO_ROW_UPDATE ? " (update)" : "");
        }
        c->n++;
    }
    return VELO_OK;
}

static int capture_finish(void *arg)
{
    ((struct capture *)arg)->finished = 1;
    return VELO_OK;
}

/* Fill a batch of the trades schema: symbol, price (cents), qty, ts. */
static void fill_trades(struct velo_batch *b, const char *const *sym,
                        const int64_t *cents, const int64_t *qty, size_t n)
{
    const struct velo_schema *s = b->schema;
    int cs = velo_schema_find(s, "symbol"), cp = velo_schema_find(s, "price");
    int cq = velo_schema_find(s, "qty"), ct = velo_schema_find(s, "ts");
    int c_ = velo_schema_find(s, "_timestamp");
    for (size_t i = 0; i < n; i++) {
        b->cols[cs].v.str[i].ptr = sym[i];
        b->cols[cs].v.str[i].len = strlen(sym[i]);
        b->cols[cp].v.i64[i] = cents[i];
        b->cols[cq].v.i64[i] = qty[i];
        b->cols[ct].v.i64[i] = fixed_now() + (int64_t)i * 60000000;
        b->cols[c_].v.i64[i] = fixed_now() + (int64_t)i * 60000000;
    }
    for (size_t k = 0; k < b->ncols; k++) {
        if ((int)k != cs && (int)k != cp && (int)k != cq && (int)k != ct &&
            (int)k != c_) {
            memset(b->cols[k].nulls, 1, n);
            b->cols[k].has_nulls = 1;
        }
    }
    b->nrows = n;
}

static void run_rows(const char *sql, struct capture *cap)
{
    struct env e;
    env_init(&e);
    memset(cap, 0, sizeof(*cap));
    struct velo_plan *p = plan_ok(&e, sql);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL_FATAL(p->nsinks, 1);
    struct velo_op *sink = velo_op_callback(&e.exec, p->sinks[0].schema,
                                            capture_batch, capture_finish,
                                            cap, "capture");
    CU_ASSERT_PTR_NOT_NULL_FATAL(sink);
    CU_ASSERT_EQUAL(velo_op_connect(p->sinks[0].upstream, sink), VELO_OK);
    struct velo_batch *b = velo_batch_create(p->sources[0].schema, 16);
    static const char *const sym[] = {"AAPL", "MSFT", "AAPL", "GOOG",
                                      "AAPL"};
    static const int64_t cents[] = {10125, 30050, 10200, 14000, 9900};
    static const int64_t qty[] = {100, 50, 300, 10, 200};
    fill_trades(b, sym, cents, qty, 5);
    CU_ASSERT_EQUAL(velo_op_push(p->sources[0].entry, b), VELO_OK);
    CU_ASSERT_EQUAL(velo_op_finish(p->sources[0].entry), VELO_OK);
    CU_ASSERT(cap->finished);
    velo_batch_destroy(b);
    velo_op_destroy(sink);
    velo_plan_destroy(p);
    env_free(&e);
}

static void expect_rows(const struct capture *cap, const char *const *want,
                        size_t n)
{
    int ok = cap->n == n;
    for (size_t i = 0; ok && i < n; i++) {
        ok = strcmp(cap->rows[i], want[i]) == 0;
    }
    if (!ok) {
        fprintf(stderr, "\nrows:\n");
        for (size_t i = 0; i < cap->n; i++) {
            fprintf(stderr, "  %s\n", cap->rows[i]);
        }
    }
    CU_ASSERT(ok);
}

static void test_rows(void)
{
    struct capture cap;
    run_rows("SELECT symbol, qty * 2 AS q2, price + 1 FROM "
             "'file://trades.csv' WHERE qty >= 100 AND symbol <> 'MSFT'",
             &cap);
    static const char *const w1[] = {"AAPL|200|102.25", "AAPL|600|103.00",
                                     "AAPL|400|100.00"};
    expect_rows(&cap, w1, 3);

    run_rows("SELECT symbol, SUM(qty), COUNT(*) n FROM 'file://trades.csv' "
             "GROUP BY symbol HAVING COUNT(*) > 1 EMIT FINAL",
             &cap);
    static const char *const w2[] = {"AAPL|600|3"};
    expect_rows(&cap, w2, 1);

    run_rows("SELECT symbol, price FROM 'file://trades.csv' ORDER BY price "
             "DESC LIMIT 2",
             &cap);
    static const char *const w3[] = {"MSFT|300.50", "GOOG|140.00"};
    expect_rows(&cap, w3, 2);

    run_rows("SELECT CASE WHEN qty > 100 THEN 'big' ELSE 'small' END AS k, "
             "COALESCE(venue, 'none'), NULLIF(symbol, 'AAPL') FROM "
             "'file://trades.csv' WHERE symbol IN ('MSFT', 'GOOG') OR qty "
             "BETWEEN 250 AND 350",
             &cap);
    static const char *const w4[] = {"small|none|MSFT", "big|none|NULL",
                                     "small|none|GOOG"};
    expect_rows(&cap, w4, 3);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 1;
    }
    CU_pSuite s = CU_add_suite("sql_plan", NULL, NULL);
    CU_add_test(s, "filter and project", test_filter_project);
    CU_add_test(s, "aggregates, windows, sorts", test_aggregate_shapes);
    CU_add_test(s, "sources and sinks", test_sources_and_sinks);
    CU_add_test(s, "an application of statements", test_application);
    CU_add_test(s, "explain", test_explain);
    CU_add_test(s, "fingerprint", test_fingerprint);
    CU_add_test(s, "rows through planned DAGs", test_rows);
    return tu_run_all();
}
