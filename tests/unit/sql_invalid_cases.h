/*
 * Invalid queries, each with the error it must produce: the code, the
 * line and column of the place it points at, and a phrase of what it says
 * (message, detail or hint). Over lexing (V1), syntax (V2), names (V3),
 * types (V4), semantics (V5) and properties and connectors (V6).
 *
 * Sources: 'file://trades.csv' (ts TIMESTAMP, symbol STRING, price
 * DECIMAL(10,2), qty BIGINT, side STRING, venue STRING) and
 * 'file://events.jsonl' are bounded; 'file://ticks.csv' is unbounded;
 * 'file://missing.csv' cannot be read (see test_sql_invalid.c).
 */
#ifndef VELO_TEST_SQL_INVALID_CASES_H
#define VELO_TEST_SQL_INVALID_CASES_H

struct sql_invalid_case {
    const char *code;   /* the first error's code */
    const char *sql;
    const char *phrase; /* in its message, detail or hint */
    int line, col;      /* where it points; 0, 0: not tied to a place */
};

static const struct sql_invalid_case sql_invalid_cases[] = {
    {"V1001",
     "SELECT symbol FROM 'file://trades.csv'\nWHERE side = 'BUY",
     "unterminated string", 2, 14},
    {"V1002",
     "SELECT \"abc FROM 'file://trades.csv'",
     "unterminated quoted name", 1, 8},
    {"V1003",
     "SELECT symbol FROM 'file://trades.csv' /* note",
     "unterminated comment", 1, 40},
    {"V1004",
     "SELECT symbol # 1 FROM 'file://trades.csv'",
     "unexpected character '#'", 1, 15},
    {"V1004",
     "SELECT symbol | 'x' FROM 'file://trades.csv'",
     "'||'", 1, 15},
    {"V1005",
     "SELECT 12abc FROM 'file://trades.csv'",
     "invalid number '12abc'", 1, 8},
    {"V1005",
     "SELECT 1e+ FROM 'file://trades.csv'",
     "exponent without digits", 1, 8},
    {"V1009",
     "SELECT \"\" FROM 'file://trades.csv'",
     "empty quoted name", 1, 8},
    {"V1010",
     "SELECT xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx FROM 'fi"
     "le://trades.csv'",
     "longer than 128", 1, 8},
    {"V1005",
     "SELECT COUNT(*) FROM 'file://trades.csv' WINDOW TUMBLING(ts, 5min)",
     "5m", 1, 62},
    {"V2001",
     "SELECT FROM 'file://trades.csv'",
     "an expression", 1, 8},
    {"V2002",
     "SELECT symbol FROM",
     "unexpected end of input", 1, 19},
    {"V2001",
     "SELECT symbol FORM 'file://trades.csv'",
     "did you mean FROM?", 1, 15},
    {"V2001",
     "SELECT end FROM 'file://trades.csv'",
     "reserved word", 1, 8},
    {"V2001",
     "SELECT CAST(qty AS) FROM 'file://trades.csv'",
     "a type", 1, 19},
    {"V2001",
     "SELECT (price + 1 FROM 'file://trades.csv'",
     "')'", 1, 19},
    {"V2001",
     "SELEC symbol FROM 'file://trades.csv'",
     "SELECT, CREATE, INSERT", 1, 1},
    {"V2001",
     "SELECT symbol FROM 'file://trades.csv'\nEMIT SOON",
     "CHANGES, FINAL", 2, 6},
    {"V2004",
     "SELECT symbol FROM 'file://trades.csv'\nWHERE qty > 1\nWHERE qty < 9",
     "duplicate WHERE", 3, 1},
    {"V2003",
     "SELECT ((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((("
     "(((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((("
     "(((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((("
     "(((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((("
     "(((((((((((((((((((1))))))))))))))))))))))))))))))))))))))))))))))))))))"
     "))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))"
     "))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))"
     "))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))"
     ")))))))))))))))))))))))))))))))) FROM 'file://trades.csv'",
     "nested too deeply", 1, 208},
    {"V2001",
     "SELECT symbol FROM 'file://trades.csv' WITH (path='x')",
     "a string", 1, 46},
    {"V2001",
     "SELECT symbol FROM 'file://trades.csv'\nSELECT side FROM 'file://trades."
     "csv'",
     "missing ';'", 1, 39},
    {"V2001",
     "SELECT symbol FROM 'file://trades.csv' WHERE venue IS 3",
     "NULL", 1, 55},
    {"V2001",
     "SELECT CASE END FROM 'file://trades.csv'",
     "WHEN", 1, 13},
    {"V2005",
     "-- only a comment\n",
     "no SQL statement", 0, 0},
    {"V3001",
     "SELECT pirce FROM 'file://trades.csv'",
     "did you mean 'price'?", 1, 8},
    {"V3001",
     "SELECT t.pirce FROM 'file://trades.csv' AS t",
     "unknown column 't.pirce'", 1, 10},
    {"V3002",
     "CREATE STREAM trades (ts TIMESTAMP, price DOUBLE) WITH ('trades.type'='f"
     "ile_source', 'trades.path'='trades.csv');\nSELECT price FROM trdes",
     "did you mean 'trades'?", 2, 19},
    {"V3003",
     "SELECT UPPPER(symbol) FROM 'file://trades.csv'",
     "did you mean UPPER?", 1, 8},
    {"V3004",
     "SELECT * FROM trades WITH ('trades.type'='file_source',\n  'trades.pth'="
     "'trades.csv')",
     "did you mean 'trades.path'?", 2, 3},
    {"V3006",
     "SELECT CAST(qty AS STRNG) FROM 'file://trades.csv'",
     "did you mean STRING?", 1, 20},
    {"V3007",
     "SELECT * FROM trades WITH ('trades.type'='file_source', 'trdes.path'='x."
     "csv')",
     "did you mean 'trades.path'?", 1, 57},
    {"V3008",
     "CREATE STREAM s AS SELECT symbol FROM 'file://trades.csv';\nCREATE STREA"
     "M s AS SELECT side FROM 'file://trades.csv'",
     "already defined", 2, 15},
    {"V3009",
     "SELECT tt.price FROM 'file://trades.csv' t",
     "did you mean 't'?", 1, 8},
    {"V3010",
     "CREATE STREAM s (_timestamp TIMESTAMP, a INT) WITH ('s.type'='file_sourc"
     "e', 's.path'='trades.csv')",
     "system column", 1, 18},
    {"V3011",
     "CREATE STREAM s (a INT, A BIGINT) WITH ('s.type'='file_source', 's.path'"
     "='trades.csv')",
     "declared twice", 1, 25},
    {"V3011",
     "SELECT symbol AS x, side AS x FROM 'file://trades.csv'",
     "named twice", 1, 29},
    {"V3001",
     "SELECT qty * 2 AS dbl FROM 'file://trades.csv' WHERE dbl > 10",
     "alias of the SELECT list", 1, 54},
    {"V3001",
     "CREATE TABLE t AS SELECT symbol, COUNT(*) n FROM 'file://trades.csv' GRO"
     "UP BY symbol PRIMARY KEY (sym)",
     "not an output column", 1, 99},
    {"V3002",
     "INSERT INTO nowhere SELECT symbol FROM 'file://trades.csv'",
     "unknown stream 'nowhere'", 1, 13},
    {"V4001",
     "SELECT symbol FROM 'file://trades.csv' WHERE symbol = 5",
     "cannot compare STRING with INTEGER", 1, 46},
    {"V4002",
     "SELECT price + 'x' FROM 'file://trades.csv'",
     "join strings with ||", 1, 8},
    {"V4003",
     "SELECT UPPER(qty) FROM 'file://trades.csv'",
     "no function UPPER(BIGINT)", 1, 8},
    {"V4003",
     "SELECT JSON_OBJECT('a', qty, 'b') FROM 'file://trades.csv'",
     "JSON_OBJECT takes name, value pairs, not 3 argument(s)", 1, 8},
    {"V4004",
     "SELECT symbol FROM 'file://trades.csv' WHERE qty",
     "must be BOOLEAN, not BIGINT", 1, 46},
    {"V4005",
     "SELECT CAST(TRUE AS DATE) FROM 'file://trades.csv'",
     "cannot cast BOOLEAN to DATE", 1, 8},
    {"V4006",
     "SELECT symbol FROM 'file://trades.csv' WHERE ts > DATE '2026-13-45'",
     "invalid DATE literal", 1, 51},
    {"V4006",
     "SELECT symbol FROM 'file://trades.csv' WHERE ts > TIMESTAMP 'yesterday'",
     "invalid TIMESTAMP literal", 1, 51},
    {"V4006",
     "SELECT ts + INTERVAL '1' MONTH FROM 'file://trades.csv'",
     "MONTH and YEAR", 1, 13},
    {"V4007",
     "SELECT CASE WHEN qty > 1 THEN 'big' ELSE 0 END FROM 'file://trades.csv'",
     "incompatible types STRING and INTEGER", 1, 42},
    {"V4007",
     "SELECT symbol FROM 'file://trades.csv' WHERE qty IN (1, 'two')",
     "IN list", 1, 57},
    {"V4008",
     "SELECT qty.amount FROM 'file://trades.csv'",
     "cannot read field 'amount' of a BIGINT", 1, 12},
    {"V4010",
     "SELECT 1.2345678901234567890 FROM 'file://trades.csv'",
     "more than 18 digits", 1, 8},
    {"V4010",
     "SELECT 99999999999999999999 FROM 'file://trades.csv'",
     "out of range", 1, 8},
    {"V4010",
     "SELECT CAST(price AS DECIMAL(20,2)) FROM 'file://trades.csv'",
     "precision", 1, 22},
    {"V4011",
     "SELECT COUNT(*) FROM 'file://trades.csv' WINDOW TUMBLING(symbol, INTERVA"
     "L '1' MINUTE)",
     "must be a TIMESTAMP, not STRING", 1, 58},
    {"V4012",
     "CREATE STREAM s AS SELECT symbol, qty FROM 'file://trades.csv';\nINSERT "
     "INTO s SELECT symbol, side FROM 'file://trades.csv'",
     "is BIGINT, but the query gives STRING", 2, 15},
    {"V4013",
     "SELECT symbol FROM 'file://trades.csv' LIMIT 'ten'",
     "constant integer", 1, 46},
    {"V4004",
     "SELECT NOT qty FROM 'file://trades.csv'",
     "BOOLEAN", 1, 12},
    {"V4006",
     "SELECT EXTRACT(YEER FROM ts) FROM 'file://trades.csv'",
     "did you mean YEAR?", 1, 16},
    {"V3012",
     "SELECT ts FROM 'file://trades.csv' t JOIN 'file://events.jsonl' e ON t."
     "qty = e.user_id",
     "ambiguous", 1, 8},
    {"V5002",
     "SELECT symbol, side, COUNT(*) FROM 'file://trades.csv' GROUP BY symbol",
     "column 'side' must appear in GROUP BY", 1, 16},
    {"V5003",
     "SELECT symbol FROM 'file://trades.csv' WHERE SUM(qty) > 10",
     "HAVING", 1, 46},
    {"V5004",
     "SELECT SUM(MAX(qty)) FROM 'file://trades.csv'",
     "cannot be nested", 1, 12},
    {"V5005",
     "SELECT symbol FROM 'file://ticks.csv' ORDER BY price",
     "bounded input", 1, 39},
    {"V5006",
     "SELECT symbol, COUNT(*) FROM 'file://ticks.csv' GROUP BY symbol EMIT FIN"
     "AL",
     "never emits", 1, 65},
    {"V5007",
     "SELECT SUM(DISTINCT qty) FROM 'file://trades.csv'",
     "DISTINCT is not supported in SUM", 1, 8},
    {"V5008",
     "SELECT UPPER(symbol) FILTER (WHERE qty > 1) FROM 'file://trades.csv'",
     "not an aggregate", 1, 36},
    {"V5009",
     "SELECT COUNT(*) FROM 'file://trades.csv' GROUP BY SUM(qty)",
     "not allowed in GROUP BY", 1, 51},
    {"V5010",
     "SELECT symbol, COUNT(*) FROM 'file://trades.csv' GROUP BY 5",
     "out of range", 1, 59},
    {"V5011",
     "CREATE TABLE t AS SELECT symbol, price FROM 'file://trades.csv'",
     "needs a key", 1, 14},
    {"V5012",
     "CREATE STREAM s AS SELECT symbol, COUNT(*) n FROM 'file://trades.csv' GR"
     "OUP BY symbol;\nSELECT COUNT(*) FROM s WINDOW TUMBLING(INTERVAL '1' MINU"
     "TE)",
     "no event time", 2, 24},
    {"V5014",
     "SELECT symbol FROM 'file://trades.csv' EMIT FINAL",
     "needs an aggregation", 1, 40},
    {"V5016",
     "SELECT 1 + 1",
     "without FROM", 1, 1},
    {"V5033",
     "SELECT * FROM 'file://trades.csv' t JOIN 'file://events.jsonl' e ON t."
     "qty > 1",
     "at least one equality", 1, 69},
    {"V5033",
     "SELECT * FROM 'file://trades.csv' t JOIN 'file://ticks.csv' k ON t.sym"
     "bol = k.symbol",
     "needs a time bound", 1, 42},
    {"V5033",
     "SELECT * FROM 'file://trades.csv' t RIGHT JOIN 'file://events.jsonl' e "
     "ON t.qty = e.user_id",
     "RIGHT JOIN against a table", 1, 37},
    {"V5034",
     "SELECT symbol, ROW_NUMBER() OVER (ORDER BY ts), COUNT(*) FROM 'file://"
     "trades.csv' GROUP BY symbol",
     "together with GROUP BY", 1, 16},
    {"V5005",
     "SELECT symbol, ROW_NUMBER() OVER (PARTITION BY symbol ORDER BY price) F"
     "ROM 'file://ticks.csv'",
     "need ORDER BY the event time", 1, 64},
    {"V5034",
     "SELECT symbol FROM 'file://trades.csv' WHERE symbol IN (SELECT symbol, "
     "qty FROM 'file://trades.csv')",
     "returns 2 columns", 1, 57},
    {"V5036",
     "SELECT * FROM (SELECT symbol FROM 'file://trades.csv' UNION ALL SELECT "
     "symbol, qty FROM 'file://trades.csv') u",
     "has 2 columns, the first has 1", 1, 65},
    {"V5017",
     "CREATE STREAM trades (ts TIMESTAMP, price DOUBLE) WITH ('trades.type'='f"
     "ile_source', 'trades.path'='trades.csv');\nINSERT INTO trades SELECT ts,"
     " price FROM trades",
     "it is a source", 2, 13},
    {"V5018",
     "CREATE STREAM s AS SELECT symbol, qty FROM 'file://trades.csv';\nINSERT "
     "INTO s SELECT symbol FROM 'file://trades.csv'",
     "gives 1 columns", 2, 15},
    {"V5020",
     "SELECT COUNT(*) FROM 'file://trades.csv' WINDOW TUMBLING(ts, INTERVAL '0"
     "' SECOND)",
     "greater than zero", 1, 62},
    {"V5025",
     "CREATE STREAM s AS SELECT symbol FROM 'file://trades.csv';\nINSERT INTO "
     "s SELECT symbol FROM s",
     "cannot read from itself", 2, 34},
    {"V5026",
     "SELECT TUMBLE_START() FROM 'file://trades.csv'",
     "windowed aggregation", 1, 8},
    {"V5002",
     "SELECT symbol, COUNT(*) FROM 'file://trades.csv' GROUP BY symbol ORDER B"
     "Y qty",
     "column 'qty'", 1, 75},
    {"V5002",
     "SELECT DISTINCT symbol FROM 'file://trades.csv' ORDER BY qty",
     "'qty'", 1, 58},
    {"V6001",
     "SELECT * FROM trades WITH ('type'='file_source')",
     "does not name a source", 1, 28},
    {"V6002",
     "SELECT * FROM trades WITH ('trades.type'='file_sorce', 'trades.path'='tr"
     "ades.csv')",
     "did you mean 'file_source'?", 1, 42},
    {"V6003",
     "SELECT * FROM fiel://trades.csv",
     "did you mean file://?", 1, 15},
    {"V6003",
     "SELECT * FROM 'data/trades.csv'",
     "file://data/trades.csv", 1, 15},
    {"V6004",
     "SELECT * FROM trades WITH ('trades.type'='file_source', 'trades.path'='t"
     "rades.csv',\n 'trades.watch'='maybe')",
     "invalid value for 'trades.watch'", 2, 17},
    {"V6005",
     "SELECT * FROM trades WITH ('trades.type'='file_source', 'trades.path'='t"
     "rades.csv', 'trades.format'='cvs')",
     "did you mean 'csv'?", 1, 101},
    {"V6005",
     "SELECT * FROM trades WITH ('trades.type'='file_source', 'trades.path'='t"
     "rades.csv', 'trades.format'='csv', 'trades.csv.delimiter'=';;')",
     "one character", 1, 131},
    {"V6006",
     "SELECT * FROM trades WITH ('trades.type'='file_sink', 'trades.path'='tra"
     "des.csv')",
     "use 'file_source'", 1, 42},
    {"V6006",
     "CREATE STREAM out AS SELECT * FROM 'file://trades.csv' WITH ('out.type'="
     "'file_source')",
     "use 'file_sink'", 1, 73},
    {"V6007",
     "SELECT * FROM trades WITH ('trades.type'='file_source', 'trades.path'='a"
     ".csv', 'trades.path'='trades.csv')",
     "set twice", 1, 80},
    {"V6008",
     "SELECT * FROM trades WITH ('trades.path'='trades.csv')",
     "no type", 1, 28},
    {"V6008",
     "CREATE STREAM out AS SELECT * FROM 'file://trades.csv' WITH ('out.path'="
     "'o.csv')",
     "'out.type'='file_sink'", 1, 62},
    {"V6009",
     "SELECT * FROM trades WITH ('trades.type'='file_source', 'trades.path'='t"
     "rades.csv', 'trades.schema'='a INT,')",
     "columns", 1, 101},
    {"V6010",
     "SELECT * FROM 'file://missing.csv'",
     "cannot read source", 1, 15},
    {"V6012",
     "CREATE STREAM trades (ts TIMESTAMP, price DOUBLE) WITH ('trades.type'='f"
     "ile_source', 'trades.path'='trades.csv');\nSELECT * FROM trades WITH ('t"
     "rades.format'='csv')",
     "already defined", 2, 28},
    {"V3002",
     "SELECT * FROM stdout",
     "unknown source", 1, 15},
    /* SQL engine II: windows, watermarks, late data, event time. */
    {"V5020",
     "SELECT COUNT(*) FROM 'file://trades.csv' WINDOW HOPPING(ts, INTERVAL '"
     "10' SECOND, 'soon')",
     "invalid window advance", 1, 83},
    {"V5030",
     "SELECT COUNT(*) FROM 'file://trades.csv' WINDOW HOPPING(ts, INTERVAL '"
     "10' SECOND, INTERVAL '1' MINUTE)",
     "longer than its size", 1, 83},
    {"V5016",
     "SELECT COUNT(*) FROM 'file://trades.csv' WINDOW HOPPING(ts, INTERVAL '"
     "10' SECOND)",
     "without an advance", 1, 42},
    {"V5031",
     "SELECT symbol, COUNT(*) FROM 'file://trades.csv' GROUP BY symbol GRACE"
     " INTERVAL '5' SECOND",
     "GRACE without a window", 1, 66},
    {"V5020",
     "SELECT COUNT(*) FROM 'file://trades.csv' WINDOW TUMBLING(ts, INTERVAL "
     "'1' MINUTE) GRACE INTERVAL '-5' SECOND",
     "0 or more", 1, 89},
    {"V5032",
     "SELECT COUNT(*) FROM 'file://trades.csv' AS t WINDOW TUMBLING(ts, INTE"
     "RVAL '1' MINUTE) WITH ('t.late.data.strategy'='update')",
     "needs EMIT CHANGES", 1, 117},
    {"V5016",
     "SELECT COUNT(*) FROM 'file://trades.csv' AS t WINDOW TUMBLING(ts, INTE"
     "RVAL '1' MINUTE) WITH ('t.late.data.strategy'='dead_letter')",
     "needs a dead-letter file", 1, 117},
    {"V6005",
     "SELECT COUNT(*) FROM 'file://trades.csv' AS t WINDOW TUMBLING(ts, INTE"
     "RVAL '1' MINUTE) WITH ('t.late.data.strategy'='keep')",
     "drop, update or dead_letter", 1, 117},
    {"V6005",
     "SELECT COUNT(*) FROM 'file://trades.csv' AS t WINDOW TUMBLING(INTERVAL"
     " '1' MINUTE) WITH ('t.watermark.max_out_of_orderness'='soon')",
     "duration", 1, 125},
    {"V6013",
     "SELECT COUNT(*) FROM 'file://trades.csv' AS t WINDOW TUMBLING(INTERVAL"
     " '1' MINUTE) WITH ('t.event.time.field'='tss')",
     "not a column", 1, 111},
    {"V6013",
     "SELECT COUNT(*) FROM 'file://trades.csv' AS t WINDOW TUMBLING(INTERVAL"
     " '1' MINUTE) WITH ('t.event.time.field'='price', 't.event.time.format"
     "'='epoch_millis')",
     "cannot read", 1, 142},
    {"V6013",
     "SELECT COUNT(*) FROM 'file://trades.csv' AS t WINDOW TUMBLING(INTERVAL"
     " '1' MINUTE) WITH ('t.event.time.field'='ts', 't.event.time.format'='r"
     "fc2822')",
     "unknown event time format", 1, 139},
};

#endif /* VELO_TEST_SQL_INVALID_CASES_H */
