/*
 * The SQL lexer and parser: statement shapes, precedence, every expression
 * form (checked on the AST, dumped as S-expressions), URIs, annotations,
 * error recovery across statements, lexical errors, the limits that keep
 * hostile input from exhausting the stack, and the diagnostic formats.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sql/ast.h"
#include "sql/sql.h"
#include "testutil.h"

/* Parse and dump; the diagnostics stay in *d (caller frees). */
static char *parse_dump(const char *sql, struct velo_sql_diags *d)
{
    struct velo_sql_program *p = velo_sql_parse(sql, strlen(sql), d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    char *s = sql_ast_dump(p);
    velo_sql_program_free(p);
    return s;
}

/* One statement, no diagnostics, dumped exactly as expected. */
static void check_ast(const char *sql, const char *expected)
{
    struct velo_sql_diags d = {0};
    char *got = parse_dump(sql, &d);
    char want[4096];
    snprintf(want, sizeof(want), "%s\n", expected);
    if (d.n != 0 || strcmp(got, want) != 0) {
        char *f = velo_sql_diags_format(&d, "t.sql");
        fprintf(stderr, "\nSQL:  %s\nwant: %sgot:  %s%s", sql, want, got,
                f ? f : "");
        free(f);
    }
    CU_ASSERT_EQUAL(d.n, 0);
    CU_ASSERT_STRING_EQUAL(got, want);
    free(got);
    velo_sql_diags_free(&d);
}

/* Exactly one error with this code at line:col. */
static void check_error(const char *sql, const char *code, int line, int col)
{
    struct velo_sql_diags d = {0};
    char *got = parse_dump(sql, &d);
    int ok = d.errors == 1 && d.n >= 1 && strcmp(d.d[0].code, code) == 0 &&
             d.d[0].line == line && d.d[0].col == col;
    if (!ok) {
        char *f = velo_sql_diags_format(&d, "t.sql");
        fprintf(stderr, "\nSQL: %s\nwant %s at %d:%d, got:\n%s", sql, code,
                line, col, f ? f : "");
        free(f);
    }
    CU_ASSERT(ok);
    free(got);
    velo_sql_diags_free(&d);
}

/* The first diagnostic's text contains `phrase` (message or hint). */
static void check_error_says(const char *sql, const char *code,
                             const char *phrase)
{
    struct velo_sql_diags d = {0};
    char *got = parse_dump(sql, &d);
    char *f = velo_sql_diags_format(&d, "t.sql");
    int ok = d.n >= 1 && strcmp(d.d[0].code, code) == 0 && f != NULL &&
             strstr(f, phrase) != NULL;
    if (!ok) {
        fprintf(stderr, "\nSQL: %s\nwant %s saying '%s', got:\n%s", sql, code,
                phrase, f ? f : "");
    }
    CU_ASSERT(ok);
    free(f);
    free(got);
    velo_sql_diags_free(&d);
}

/* ---- Statements --------------------------------------------------------- */

static void test_statements(void)
{
    check_ast("SELECT a, b FROM t",
              "(select (query (items a b) (from t)))");
    check_ast("SELECT * FROM t;",
              "(select (query (items *) (from t)))");
    check_ast("SELECT t.*, x AS y, z w FROM trades AS t",
              "(select (query (items t.* (as x y) (as z w)) "
              "(from trades as t)))");
    check_ast("SELECT DISTINCT symbol FROM trades",
              "(select (query distinct (items symbol) (from trades)))");
    /* Joins, subqueries, WITH, UNION ALL, IN (SELECT), OVER, SESSION. */
    check_ast("SELECT a.x, b.y FROM s a JOIN t b ON a.k = b.k",
              "(select (query (items a.x b.y) (from (join inner (s as a) "
              "(t as b) (on (= a.k b.k))))))");
    check_ast("SELECT * FROM s LEFT OUTER JOIN t ON s.k = t.k "
              "FULL JOIN 'file://u.csv' u WITHIN INTERVAL '5' MINUTE "
              "ON s.k = u.k",
              "(select (query (items *) (from (join full (join left (s) (t) "
              "(on (= s.k t.k))) (uri 'file://u.csv' as u) (within "
              "(interval '5' MINUTE)) (on (= s.k u.k))))))");
    check_ast("SELECT n FROM (SELECT COUNT(*) AS n FROM t) x WHERE n > 1",
              "(select (query (items n) (from (subquery (query (items (as "
              "(COUNT *) n)) (from t)) as x)) (where (> n 1))))");
    check_ast("WITH a AS (SELECT x FROM t), b AS (SELECT x FROM a) "
              "SELECT x FROM b",
              "(select (with (a (query (items x) (from t))) (b (query "
              "(items x) (from a))) (query (items x) (from b))))");
    check_ast("SELECT x FROM t UNION ALL SELECT y FROM u UNION ALL "
              "SELECT z FROM v",
              "(select (query (items x) (from t)) (union-all (query (items "
              "y) (from u)) (union-all (query (items z) (from v)))))");
    check_ast("SELECT x FROM t WHERE k NOT IN (SELECT k FROM u) AND y > 1",
              "(select (query (items x) (from t) (where (and (not-in k "
              "(query (items k) (from u))) (> y 1)))))");
    check_ast("SELECT ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts DESC) "
              "AS rn, SUM(x) OVER (PARTITION BY k ORDER BY ts ROWS BETWEEN "
              "2 PRECEDING AND CURRENT ROW), AVG(x) OVER (ORDER BY ts "
              "RANGE BETWEEN INTERVAL '1' MINUTE PRECEDING AND CURRENT ROW), "
              "LAG(x, 1, 0) OVER (ORDER BY ts) FROM t",
              "(select (query (items (as (ROW_NUMBER (over (partition k) "
              "(order (ts desc)))) rn) (SUM x (over (partition k) (order "
              "(ts asc)) (rows 2))) (AVG x (over (order (ts asc)) (range "
              "(interval '1' MINUTE)))) (LAG x 1 0 (over (order (ts "
              "asc))))) (from t)))");
    check_ast("SELECT COUNT(*) FROM t WINDOW SESSION(ts, INTERVAL '30' "
              "SECOND) GROUP BY k",
              "(select (query (items (COUNT *)) (from t) (group k) (session "
              "ts (interval '30' SECOND))))");
    check_ast("CREATE STREAM s AS WITH a AS (SELECT x FROM t) SELECT x "
              "FROM a WITH ('s.type'='stdout')",
              "(create-stream s (with (a (query (items x) (from t))) (query "
              "(items x) (from a))) (with ('s.type' 'stdout')))");
    check_ast("CREATE STREAM big AS SELECT * FROM trades WHERE qty > 100 "
              "WITH ('big.type'='file_sink', 'big.path'='out.csv')",
              "(create-stream big (query (items *) (from trades) "
              "(where (> qty 100))) (with ('big.type' 'file_sink') "
              "('big.path' 'out.csv')))");
    check_ast("CREATE TABLE last AS SELECT symbol, LAST_VALUE(price) p "
              "FROM trades GROUP BY symbol",
              "(create-table last (query (items symbol (as (LAST_VALUE "
              "price) p)) (from trades) (group symbol)))");
    check_ast("CREATE TABLE t PRIMARY KEY (a, b) AS SELECT a, b FROM s",
              "(create-table t (query (items a b) (from s)) (pk a b))");
    check_ast("CREATE TABLE t AS SELECT a FROM s PRIMARY KEY (a) WITH "
              "('t.type'='file_sink')",
              "(create-table t (query (items a) (from s)) (pk a) (with "
              "('t.type' 'file_sink')))");
    check_ast("INSERT INTO out SELECT a FROM s",
              "(insert out (query (items a) (from s)))");
    check_ast("CREATE STREAM trades (ts TIMESTAMP NOT NULL, symbol "
              "VARCHAR(8), price DECIMAL(10,2), qty BIGINT NULL) WITH "
              "('trades.type'='file_source', 'trades.path'='t.csv', "
              "'trades.format'='csv')",
              "(create-source trades (cols (ts TIMESTAMP not-null) "
              "(symbol VARCHAR(8)) (price DECIMAL(10,2)) (qty BIGINT)) "
              "(with ('trades.type' 'file_source') ('trades.path' 't.csv') "
              "('trades.format' 'csv')))");
    check_ast("CREATE STREAM s (k STRING PRIMARY KEY, v DOUBLE PRECISION) "
              "WITH ('s.type'='file_source')",
              "(create-source s (cols (k STRING) (v DOUBLE)) (pk k) (with "
              "('s.type' 'file_source')))");
    /* Values other than strings, and a trailing comma. */
    check_ast("SELECT a FROM s WITH ('s.csv.header'=false, "
              "'s.record.max_bytes'=4096, 's.format'=csv,)",
              "(select (query (items a) (from s)) (with ('s.csv.header' "
              "'false') ('s.record.max_bytes' '4096') ('s.format' 'csv')))");
}

static void test_clauses(void)
{
    check_ast("SELECT symbol, COUNT(*) FROM trades WHERE price > 0 GROUP BY "
              "symbol HAVING COUNT(*) > 2 ORDER BY 2 DESC, symbol NULLS "
              "FIRST LIMIT 10 OFFSET 5",
              "(select (query (items symbol (COUNT *)) (from trades) (where "
              "(> price 0)) (group symbol) (having (> (COUNT *) 2)) (order "
              "(2 desc) (symbol asc nulls-first)) (limit 10) (offset 5)))");
    check_ast("SELECT s, SUM(q) FROM t GROUP BY s WINDOW "
              "TUMBLING(INTERVAL '5' MINUTE) EMIT CHANGES",
              "(select (query (items s (SUM q)) (from t) (group s) "
              "(tumbling (interval '5' MINUTE)) (emit changes)))");
    check_ast("SELECT COUNT(*) FROM t WINDOW TUMBLING(ts, INTERVAL '1 "
              "hour') EMIT FINAL",
              "(select (query (items (COUNT *)) (from t) (tumbling ts "
              "(interval '1 hour')) (emit final)))");
    check_ast("SELECT COUNT(*) FROM t GROUP BY k TUMBLING(5m)",
              "(select (query (items (COUNT *)) (from t) (group k) "
              "(tumbling (duration 5m))))");
    check_ast("SELECT COUNT(*) FROM t WINDOW TUMBLING(ts, 250ms)",
              "(select (query (items (COUNT *)) (from t) (tumbling ts "
              "(duration 250ms))))");
    check_ast("SELECT COUNT(*) FROM t WINDOW TUMBLING (SIZE 5 MINUTES)",
              "(select (query (items (COUNT *)) (from t) (tumbling "
              "(interval '5' MINUTES))))");
    /* The vision's order: WINDOW before GROUP BY works too. */
    check_ast("SELECT COUNT(*) FROM t WINDOW TUMBLING('1 minute') GROUP BY "
              "k EMIT CHANGES",
              "(select (query (items (COUNT *)) (from t) (group k) "
              "(tumbling '1 minute') (emit changes)))");
    check_ast("SELECT a FROM t LIMIT 3",
              "(select (query (items a) (from t) (limit 3)))");
    check_ast("SELECT a FROM t ORDER BY a ASC NULLS LAST",
              "(select (query (items a) (from t) (order (a asc "
              "nulls-last))))");
    check_ast("SELECT a FROM t GROUP BY 1, a + 1",
              "(select (query (items a) (from t) (group 1 (+ a 1))))");
}

/* ---- Expressions -------------------------------------------------------- */

static void check_expr(const char *expr, const char *expected)
{
    char sql[2048], want[2048];
    snprintf(sql, sizeof(sql), "SELECT %s FROM t", expr);
    snprintf(want, sizeof(want), "(select (query (items %s) (from t)))",
             expected);
    check_ast(sql, want);
}

static void test_precedence(void)
{
    check_expr("a + b * c", "(+ a (* b c))");
    check_expr("a * b + c", "(+ (* a b) c)");
    check_expr("a - b - c", "(- (- a b) c)");
    check_expr("a / b % c", "(% (/ a b) c)");
    check_expr("(a + b) * c", "(* (+ a b) c)");
    check_expr("-a * b", "(* (neg a) b)");
    check_expr("- - a", "(neg (neg a))");
    check_expr("+a", "a");
    check_expr("a || b = c", "(= (|| a b) c)");
    check_expr("a + b || c", "(|| (+ a b) c)");
    check_expr("a = 1 OR b = 2 AND c = 3",
               "(or (= a 1) (and (= b 2) (= c 3)))");
    check_expr("a AND b AND c", "(and a b c)");
    check_expr("a OR b OR c AND d", "(or a b (and c d))");
    check_expr("(a AND b) AND c", "(and (and a b) c)");
    check_expr("NOT a = b AND c", "(and (not (= a b)) c)");
    check_expr("NOT NOT a", "(not (not a))");
    check_expr("a < b = TRUE", "(= (< a b) true)");
    check_expr("x BETWEEN 1 AND 2 AND y", "(and (between x 1 2) y)");
    check_expr("x NOT BETWEEN a + 1 AND b * 2",
               "(not-between x (+ a 1) (* b 2))");
    check_expr("a IS NULL OR b IS NOT NULL",
               "(or (is-null a) (is-not-null b))");
    check_expr("x::BIGINT + 1", "(+ (cast x BIGINT) 1)");
    check_expr("-x::DOUBLE", "(neg (cast x DOUBLE))");
    check_expr("a <> b", "(<> a b)");
    check_expr("a != b", "(<> a b)");
    check_expr("a <= b", "(<= a b)");
    check_expr("a >= b", "(>= a b)");
}

static void test_expression_forms(void)
{
    check_expr("1, 42, 3000000000, 1.25, 0.5, 1e3, 1.5E-2, .5",
               "1 42 3000000000 1.25 0.5 1e3 1.5E-2 .5");
    check_expr("'it''s', ''", "'it''s' ''");
    check_expr("TRUE, FALSE, NULL", "true false null");
    check_expr("DATE '2026-01-01', TIMESTAMP '2026-01-01T10:00:00Z'",
               "(DATE '2026-01-01') (TIMESTAMP '2026-01-01T10:00:00Z')");
    check_expr("INTERVAL '5' MINUTE, INTERVAL '1 hour', INTERVAL 90 "
               "SECONDS, INTERVAL -2 DAY",
               "(interval '5' MINUTE) (interval '1 hour') (interval '90' "
               "SECONDS) (interval '-2' DAY)");
    check_expr("x IN (1, 2, 3), x NOT IN ('a')",
               "(in x 1 2 3) (not-in x 'a')");
    check_expr("s LIKE 'A%', s NOT LIKE '_b', s ILIKE 'x', s NOT ILIKE 'y'",
               "(like s 'A%') (not-like s '_b') (ilike s 'x') "
               "(not-ilike s 'y')");
    check_expr("CASE WHEN a > 1 THEN 'x' WHEN a > 0 THEN 'y' ELSE 'z' END",
               "(case (when (> a 1) 'x') (when (> a 0) 'y') (else 'z'))");
    check_expr("CASE side WHEN 'BUY' THEN 1 ELSE -1 END",
               "(case side (when 'BUY' 1) (else (neg 1)))");
    check_expr("CASE WHEN a THEN 1 END", "(case (when a 1))");
    check_expr("CAST(x AS DECIMAL(12, 2)), TRY_CAST(y AS INT), z::STRING",
               "(cast x DECIMAL(12,2)) (try-cast y INT) (cast z STRING)");
    check_expr("COALESCE(a, b, 0), NULLIF(a, 0)",
               "(COALESCE a b 0) (NULLIF a 0)");
    check_expr("meta.device, meta.a.b, meta['k'], meta['k'].x, tags[0]",
               "meta.device meta.a.b ([] meta 'k') (. ([] meta 'k') x) "
               "([] tags 0)");
    check_expr("t.col, \"Mixed Case\", `back tick`",
               "t.col \"Mixed Case\" \"back tick\"");
    check_expr("COUNT(*), COUNT(DISTINCT x), SUM(q) FILTER (WHERE q > 0)",
               "(COUNT *) (COUNT distinct x) (SUM q (filter (> q 0)))");
    check_expr("upper(s), now(), CURRENT_TIMESTAMP, CURRENT_TIMESTAMP()",
               "(UPPER s) (NOW) (NOW) (NOW)");
    check_expr("EXTRACT(hour FROM ts), EXTRACT('year' FROM ts)",
               "(EXTRACT 'HOUR' ts) (EXTRACT 'YEAR' ts)");
    check_expr("POSITION('a' IN s), POSITION('a', s)",
               "(POSITION 'a' s) (POSITION 'a' s)");
    check_expr("SUBSTRING(s FROM 2 FOR 3), SUBSTRING(s FROM 2), "
               "SUBSTRING(s, 1, 2), SUBSTRING(s FOR 4)",
               "(SUBSTRING s 2 3) (SUBSTRING s 2) (SUBSTRING s 1 2) "
               "(SUBSTRING s 1 4)");
    check_expr("TRIM(s), TRIM(BOTH FROM s), TRIM(LEADING 'x' FROM s), "
               "TRIM(TRAILING FROM s), TRIM(s, 'x')",
               "(TRIM:both s) (TRIM:both s) (TRIM:leading s 'x') "
               "(TRIM:trailing s) (TRIM:both s 'x')");
    check_expr("DATE_TRUNC('hour', ts)", "(DATE_TRUNC 'hour' ts)");
    check_expr("LEFT(s, 2), RIGHT(s, 1)", "(LEFT s 2) (RIGHT s 1)");
    /* Keywords that are also ordinary column names. */
    check_expr("date, timestamp, key, value, first, last, size, left",
               "date timestamp key value first last size left");
    check_expr("5m", "(duration 5m)");
    check_expr("s LIKE 'a!%' ESCAPE '!'", "(like s 'a!%' '!')");
}

/* ---- Sources ------------------------------------------------------------ */

static void test_uris(void)
{
    check_ast("SELECT * FROM 'file:///data/t.csv'",
              "(select (query (items *) (from uri 'file:///data/t.csv')))");
    check_ast("SELECT * FROM file:///data/t.csv WHERE a > 1",
              "(select (query (items *) (from uri 'file:///data/t.csv') "
              "(where (> a 1))))");
    check_ast("SELECT * FROM file://data/trades.csv;",
              "(select (query (items *) (from uri 'file://data/trades.csv')"
              "))");
    check_ast("SELECT * FROM kafka://user@broker:9092/trades?group=g1&x=%20 "
              "AS k",
              "(select (query (items *) (from uri "
              "'kafka://user@broker:9092/trades?group=g1&x=%20' as k)))");
    check_ast("SELECT * FROM 'file://my data/t-1_x.csv' t",
              "(select (query (items *) (from uri 'file://my "
              "data/t-1_x.csv' as t)))");
    check_ast("SELECT line FROM stdin",
              "(select (query (items line) (from stdin)))");
    check_ast("SELECT * FROM kafka://trades GROUP BY a",
              "(select (query (items *) (from uri 'kafka://trades') (group "
              "a)))");
}

static void test_annotations(void)
{
    const char *sql = "-- @metric: trade_volume\n"
                      "-- @metric_type:counter\n"
                      "-- a plain comment\n"
                      "SELECT symbol FROM trades;\n"
                      "\n"
                      "--   @alert: volume > 1000000   \n"
                      "/* block */ CREATE STREAM s AS SELECT a FROM t;\n"
                      "-- @orphan: x\n";
    struct velo_sql_diags d = {0};
    struct velo_sql_program *p = velo_sql_parse(sql, strlen(sql), &d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(velo_sql_program_statements(p), 2);
    const struct velo_sql_annotation *a;
    size_t n = velo_sql_annotations(p, &a);
    CU_ASSERT_EQUAL_FATAL(n, 3);
    CU_ASSERT_STRING_EQUAL(a[0].key, "metric");
    CU_ASSERT_STRING_EQUAL(a[0].value, "trade_volume");
    CU_ASSERT_EQUAL(a[0].statement, 0);
    CU_ASSERT_EQUAL(a[0].line, 1);
    CU_ASSERT_EQUAL(a[0].col, 4);
    CU_ASSERT_STRING_EQUAL(a[1].key, "metric_type");
    CU_ASSERT_STRING_EQUAL(a[1].value, "counter");
    CU_ASSERT_EQUAL(a[1].statement, 0);
    CU_ASSERT_STRING_EQUAL(a[2].key, "alert");
    CU_ASSERT_STRING_EQUAL(a[2].value, "volume > 1000000");
    CU_ASSERT_EQUAL(a[2].statement, 1);
    CU_ASSERT_EQUAL(a[2].line, 6);
    /* The one with no statement after it is a warning, not an error. */
    CU_ASSERT_EQUAL(d.errors, 0);
    CU_ASSERT_EQUAL_FATAL(d.n, 1);
    CU_ASSERT_STRING_EQUAL(d.d[0].code, "V7001");
    CU_ASSERT_EQUAL(d.d[0].severity, 1);
    CU_ASSERT_EQUAL(d.d[0].line, 8);
    velo_sql_program_free(p);
    velo_sql_diags_free(&d);

    /* "-- @" with no key: kept as a comment, with a warning. */
    d = (struct velo_sql_diags){0};
    p = velo_sql_parse("-- @: x\nSELECT a FROM t", 23, &d);
    CU_ASSERT_EQUAL(velo_sql_annotations(p, &a), 0);
    CU_ASSERT_EQUAL(d.errors, 0);
    CU_ASSERT_EQUAL_FATAL(d.n, 1);
    CU_ASSERT_STRING_EQUAL(d.d[0].code, "V7002");
    velo_sql_program_free(p);
    velo_sql_diags_free(&d);
}

/* ---- Errors ------------------------------------------------------------- */

static void test_lexical_errors(void)
{
    check_error("SELECT 'abc FROM t", "V1001", 1, 8);
    check_error("SELECT \"abc FROM t", "V1002", 1, 8);
    check_error("SELECT a FROM t /* never closed", "V1003", 1, 17);
    check_error("SELECT a # b FROM t", "V1004", 1, 10);
    check_error("SELECT 12abc FROM t", "V1005", 1, 8);
    check_error("SELECT 1e+ FROM t", "V1005", 1, 8);
    check_error("SELECT \"\" FROM t", "V1009", 1, 8);
    check_error_says("SELECT a | b FROM t", "V1004", "'||'");
    check_error_says("SELECT 5min FROM t", "V1005", "5m");
    /* Columns count characters, not bytes. */
    check_error("SELECT 'é', # FROM t", "V1004", 1, 13);
}

static void test_syntax_errors(void)
{
    check_error("SELECT FROM t", "V2001", 1, 8);
    check_error_says("SELECT FROM t", "V2001", "an expression");
    check_error("SELECT a FROM", "V2002", 1, 14);
    check_error_says("SELECT a FROM", "V2002", "a name");
    check_error("SELECT a b c FROM t", "V2001", 1, 12);
    check_error_says("SELECT a b c FROM t", "V2001",
                     "expected one of: ',', FROM");
    check_error("SELECT pirce FORM trades", "V2001", 1, 14);
    check_error_says("SELECT pirce FORM trades", "V2001",
                     "did you mean FROM?");
    check_error_says("SELECT a FROM t WHER a > 1", "V2001",
                     "did you mean WHERE?");
    check_error("SELECT end FROM t", "V2001", 1, 8);
    check_error_says("SELECT end FROM t", "V2001", "reserved word");
    check_error("SELECT CAST(a AS) FROM t", "V2001", 1, 17);
    check_error_says("SELECT CAST(a AS) FROM t", "V2001", "a type");
    check_error("SELECT a FROM t WHERE a = (1 + 2", "V2002", 1, 33);
    check_error_says("SELECT a FROM t WHERE a = (1 + 2", "V2002", "')'");
    check_error("SELEC a FROM t", "V2001", 1, 1);
    check_error_says("SELEC a FROM t", "V2001", "SELECT, CREATE, INSERT");
    check_error("CREATE VIEW v AS SELECT a FROM t", "V2001", 1, 8);
    check_error("SELECT a FROM t WHERE a IS 3", "V2001", 1, 28);
    check_error("SELECT a FROM t EMIT SOON", "V2001", 1, 22);
    check_error("SELECT a FROM t WITH ('a.b')", "V2001", 1, 28);
    check_error_says("SELECT a FROM t WITH (path='x')", "V2001",
                     "a string");
    check_error("SELECT a FROM t WHERE x = 1 WHERE y = 2", "V2004", 1, 29);
    check_error("SELECT a FROM t LIMIT 1 LIMIT 2", "V2004", 1, 25);
    check_error("SELECT CASE END FROM t", "V2001", 1, 13);
    check_error("SELECT COUNT(*) FROM t WINDOW TUMBLING 5m", "V2001", 1, 40);
    check_error("SELECT INTERVAL 5 FROM t", "V2001", 1, 19);
    check_error("SELECT a FROM t1, t2", "V5016", 1, 17);
    check_error("SELECT a FROM t1 CROSS JOIN t2", "V5016", 1, 18);
    check_error("SELECT a FROM t1 NATURAL JOIN t2", "V5016", 1, 18);
    check_error("SELECT a FROM t1 JOIN t2", "V2002", 1, 25);
    check_error("SELECT a FROM t1 LEFT t2 ON a = b", "V2001", 1, 23);
    check_error("SELECT a FROM t UNION SELECT a FROM u", "V5016", 1, 17);
    check_error("SELECT a FROM t ORDER BY a UNION ALL SELECT a FROM u",
                "V5016", 1, 28);
    check_error("SELECT a FROM t UNION ALL SELECT a FROM u LIMIT 3",
                "V5016", 1, 49);
    check_error("SELECT a FROM t INTERSECT SELECT a FROM u", "V5016", 1, 17);
    check_error("SELECT a FROM (t)", "V2001", 1, 16);
    check_error("SELECT COUNT(*) FROM t WINDOW HOPPING(5m)", "V5016", 1, 31);
    check_error("SELECT SUM(a) OVER (ORDER BY a ROWS BETWEEN 1 PRECEDING "
                "AND 1 FOLLOWING) FROM t",
                "V5016", 1, 63);
    check_error("SELECT SUM(a) OVER (ORDER BY a ROWS 1 FOLLOWING) FROM t",
                "V5016", 1, 39);
    check_error("CREATE TABLE t (a INT) WITH ('t.type'='file_source')",
                "V5016", 1, 16);
    check_error("INSERT INTO t (a) SELECT a FROM s", "V5016", 1, 15);
    check_error("CREATE STREAM s (a INT)", "V2002", 1, 24);
}

static void test_recovery(void)
{
    /* Three broken statements and two good ones: every error reported,
     * the good ones parsed, in the order of the text. */
    const char *sql = "SELECT a FROM t WHERE;\n"
                      "SELECT b FROM u;\n"
                      "SELECT 'x FROM v\n;\n"
                      "SELECT c + FROM w;\n"
                      "CREATE STREAM s AS SELECT d FROM x;\n";
    struct velo_sql_diags d = {0};
    struct velo_sql_program *p = velo_sql_parse(sql, strlen(sql), &d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(d.errors, 3);
    CU_ASSERT_EQUAL_FATAL(d.n, 3);
    CU_ASSERT_STRING_EQUAL(d.d[0].code, "V2001");
    CU_ASSERT_EQUAL(d.d[0].line, 1);
    CU_ASSERT_EQUAL(d.d[0].col, 22);
    CU_ASSERT_STRING_EQUAL(d.d[1].code, "V1001");
    CU_ASSERT_EQUAL(d.d[1].line, 3);
    CU_ASSERT_STRING_EQUAL(d.d[2].code, "V2001");
    CU_ASSERT_EQUAL(d.d[2].line, 5);
    CU_ASSERT_EQUAL(d.d[2].col, 12);
    char *dump = sql_ast_dump(p);
    CU_ASSERT_PTR_NOT_NULL(strstr(dump, "(select (query (items b) (from "
                                        "u)))"));
    CU_ASSERT_PTR_NOT_NULL(strstr(dump, "(create-stream s (query (items d) "
                                        "(from x)))"));
    free(dump);
    velo_sql_program_free(p);
    velo_sql_diags_free(&d);

    /* A forgotten ';' between statements is one error; both parse. */
    const char *sql2 = "SELECT a FROM t\nSELECT b FROM u\nINSERT INTO x "
                       "SELECT c FROM v";
    d = (struct velo_sql_diags){0};
    p = velo_sql_parse(sql2, strlen(sql2), &d);
    CU_ASSERT_EQUAL(d.errors, 2);
    CU_ASSERT_EQUAL(velo_sql_program_statements(p), 3);
    CU_ASSERT_STRING_EQUAL(d.d[0].code, "V2001");
    CU_ASSERT_PTR_NOT_NULL(strstr(d.d[0].message, "missing ';'"));
    CU_ASSERT_EQUAL(d.d[0].line, 1);
    CU_ASSERT_EQUAL(d.d[0].col, 16);
    velo_sql_program_free(p);
    velo_sql_diags_free(&d);

    /* Empty input and comments only. */
    check_error_says("", "V2005", "no SQL statement");
    check_error_says("-- nothing\n/* here */ ;;", "V2005",
                     "no SQL statement");
}

/* ---- Limits ------------------------------------------------------------- */

static char *repeat(const char *head, const char *unit, size_t n,
                    const char *tail)
{
    size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
    char *s = malloc(hl + ul * n + tl + 1);
    memcpy(s, head, hl);
    for (size_t i = 0; i < n; i++) {
        memcpy(s + hl + i * ul, unit, ul);
    }
    memcpy(s + hl + ul * n, tail, tl + 1);
    return s;
}

static void expect_code(const char *sql, const char *code)
{
    struct velo_sql_diags d = {0};
    struct velo_sql_program *p = velo_sql_parse(sql, strlen(sql), &d);
    CU_ASSERT_PTR_NOT_NULL(p);
    int found = 0;
    for (size_t i = 0; i < d.n; i++) {
        found |= strcmp(d.d[i].code, code) == 0;
    }
    CU_ASSERT(found);
    CU_ASSERT(d.errors >= 1);
    velo_sql_program_free(p);
    velo_sql_diags_free(&d);
}

static void test_limits(void)
{
    /* 100000 nested parentheses: an error, not a stack overflow. */
    char *open = repeat("SELECT ", "(", 100000, "1");
    char *deep = repeat(open, ")", 100000, " FROM t");
    expect_code(deep, "V2003");
    free(open);
    free(deep);
    /* A left-deep chain built by a loop is limited by its depth too. */
    char *chain = repeat("SELECT 1", " + 1", 50000, " FROM t");
    expect_code(chain, "V2003");
    free(chain);
    char *nots = repeat("SELECT a FROM t WHERE ", "NOT ", 50000, "a");
    expect_code(nots, "V2003");
    free(nots);
    char *negs = repeat("SELECT ", "- ", 50000, "1 FROM t");
    expect_code(negs, "V2003");
    free(negs);
    char *cases = repeat("SELECT ", "CASE WHEN a THEN ", 20000, "1");
    expect_code(cases, "V2003");
    free(cases);
    /* Within the limit: 150 levels parse. */
    char *o2 = repeat("SELECT ", "(", 150, "1");
    char *ok = repeat(o2, ")", 150, " FROM t");
    struct velo_sql_diags d = {0};
    struct velo_sql_program *p = velo_sql_parse(ok, strlen(ok), &d);
    CU_ASSERT_EQUAL(d.n, 0);
    CU_ASSERT_EQUAL(velo_sql_program_statements(p), 1);
    velo_sql_program_free(p);
    velo_sql_diags_free(&d);
    free(o2);
    free(ok);
    /* Long but flat: 20000 ANDs and a 20000-value IN list are fine. */
    char *ands = repeat("SELECT a FROM t WHERE a = 1", " AND a = 1", 20000,
                        "");
    d = (struct velo_sql_diags){0};
    p = velo_sql_parse(ands, strlen(ands), &d);
    CU_ASSERT_EQUAL(d.n, 0);
    velo_sql_program_free(p);
    velo_sql_diags_free(&d);
    free(ands);
    /* Over 1 MiB of text: one clean error. */
    size_t big = 1024 * 1024 + 10;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    memcpy(huge, "SELECT a FROM t", 15);
    huge[big] = '\0';
    d = (struct velo_sql_diags){0};
    p = velo_sql_parse(huge, big, &d);
    CU_ASSERT_PTR_NOT_NULL(p);
    CU_ASSERT_EQUAL(d.errors, 1);
    CU_ASSERT_STRING_EQUAL(d.d[0].code, "V1007");
    CU_ASSERT_EQUAL(velo_sql_program_statements(p), 0);
    velo_sql_program_free(p);
    velo_sql_diags_free(&d);
    free(huge);
    /* Just under the limit, many statements, all parsed. */
    char *many = repeat("", "SELECT a FROM t;\n", 60000, "");
    d = (struct velo_sql_diags){0};
    p = velo_sql_parse(many, strlen(many), &d);
    CU_ASSERT_EQUAL(d.n, 0);
    CU_ASSERT_EQUAL(velo_sql_program_statements(p), 60000);
    velo_sql_program_free(p);
    velo_sql_diags_free(&d);
    free(many);
    /* Thousands of errors: capped, with a note, still counted. */
    char *bad = repeat("", "SELECT FROM;\n", 5000, "");
    d = (struct velo_sql_diags){0};
    p = velo_sql_parse(bad, strlen(bad), &d);
    CU_ASSERT_EQUAL(d.errors, 5000);
    CU_ASSERT(d.n <= 101);
    CU_ASSERT_STRING_EQUAL(d.d[d.n - 1].code, "V2099");
    velo_sql_program_free(p);
    velo_sql_diags_free(&d);
    free(bad);
    /* NUL bytes and binary garbage. */
    const char garbage[] = "SELECT \0\x01\xff\xfe a FROM t";
    d = (struct velo_sql_diags){0};
    p = velo_sql_parse(garbage, sizeof(garbage) - 1, &d);
    CU_ASSERT_PTR_NOT_NULL(p);
    CU_ASSERT(d.errors >= 1);
    CU_ASSERT_STRING_EQUAL(d.d[0].code, "V1004");
    velo_sql_program_free(p);
    velo_sql_diags_free(&d);
    /* A name longer than the limit. */
    char *longname = repeat("SELECT ", "x", 300, " FROM t");
    expect_code(longname, "V1010");
    free(longname);
}

/* ---- Diagnostic formats ------------------------------------------------- */

static void test_format(void)
{
    const char *sql = "SELECT a,\n\tb c d\nFROM t";
    struct velo_sql_diags d = {0};
    struct velo_sql_program *p = velo_sql_parse(sql, strlen(sql), &d);
    char *txt = velo_sql_diags_format(&d, "q.sql");
    CU_ASSERT_PTR_NOT_NULL_FATAL(txt);
    CU_ASSERT_STRING_EQUAL(txt,
                           "q.sql:2:6: error V2001: syntax error at or near "
                           "'d'\n"
                           "   b c d\n"
                           "       ^\n"
                           "  hint: expected one of: ',', FROM, WHERE, "
                           "GROUP, WINDOW, TUMBLING, HAVING, EMIT, ORDER, "
                           "LIMIT, OFFSET, WITH, ';'\n");
    free(txt);
    char *js = velo_sql_diags_json(&d, "q.sql");
    CU_ASSERT_PTR_NOT_NULL_FATAL(js);
    json_error_t je;
    json_t *root = json_loads(js, 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    CU_ASSERT_EQUAL(json_array_size(root), 1);
    json_t *o = json_array_get(root, 0);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "code")),
                           "V2001");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "severity")),
                           "error");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "line")), 2);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "column")), 6);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "length")), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(
        json_string_value(json_object_get(o, "hint")), "expected one of"));
    CU_ASSERT(json_is_null(json_object_get(o, "detail")));
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "file")),
                           "q.sql");
    json_decref(root);
    free(js);
    velo_sql_program_free(p);
    velo_sql_diags_free(&d);

    /* A long line is shown as a window around the caret. */
    char *longline = repeat("SELECT a", ", a", 200, " # FROM t");
    d = (struct velo_sql_diags){0};
    p = velo_sql_parse(longline, strlen(longline), &d);
    txt = velo_sql_diags_format(&d, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(txt);
    CU_ASSERT_PTR_NOT_NULL(strstr(txt, "<sql>:1:610: error V1004"));
    CU_ASSERT_PTR_NOT_NULL(strstr(txt, "\n  ... a, a, a"));
    /* The caret sits under the '#': count its column in the window. */
    const char *l2 = strstr(txt, "\n  ...");
    const char *l3 = l2 ? strchr(l2 + 1, '\n') : NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(l3);
    const char *hash = strchr(l2 + 1, '#');
    const char *caret = strchr(l3 + 1, '^');
    CU_ASSERT_PTR_NOT_NULL_FATAL(hash);
    CU_ASSERT_PTR_NOT_NULL_FATAL(caret);
    CU_ASSERT_EQUAL(hash - (l2 + 1), caret - (l3 + 1));
    free(txt);
    free(longline);
    velo_sql_program_free(p);
    velo_sql_diags_free(&d);

    /* An empty list formats to an empty string, JSON to []. */
    d = (struct velo_sql_diags){0};
    txt = velo_sql_diags_format(&d, "x");
    CU_ASSERT_STRING_EQUAL(txt, "");
    free(txt);
    js = velo_sql_diags_json(&d, NULL);
    CU_ASSERT_STRING_EQUAL(js, "[]\n");
    free(js);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 1;
    }
    CU_pSuite s = CU_add_suite("sql_parse", NULL, NULL);
    CU_add_test(s, "statements", test_statements);
    CU_add_test(s, "clauses", test_clauses);
    CU_add_test(s, "precedence", test_precedence);
    CU_add_test(s, "expression forms", test_expression_forms);
    CU_add_test(s, "URIs quoted and bare", test_uris);
    CU_add_test(s, "annotations", test_annotations);
    CU_add_test(s, "lexical errors", test_lexical_errors);
    CU_add_test(s, "syntax errors", test_syntax_errors);
    CU_add_test(s, "recovery across statements", test_recovery);
    CU_add_test(s, "limits", test_limits);
    CU_add_test(s, "diagnostic formats", test_format);
    return tu_run_all();
}
