#!/usr/bin/env bash
# PostgreSQL sink: multi-row INSERT (values as parameters, never spliced),
# upsert with ON CONFLICT on the 'key' columns (repeated keys within one
# batch, and a GROUP BY changelog), create.table, and its errors.
source "$(dirname "${BASH_SOURCE[0]}")/pg-lib.sh"
pg_start
cd "$SCRATCH"

psql_db <<'SQL'
CREATE TABLE orders (id integer, sym text, qty integer, price numeric(12,2),
                     ok boolean, at timestamptz, note text);
CREATE TABLE pos (sym text PRIMARY KEY, qty bigint, last_id bigint);
INSERT INTO pos VALUES ('S0', -1, -1), ('OTHER', 5, 5);
SQL

# 3000 rows: id 1..3000, sym S0..S9, qty = id % 100, price id/4.
awk 'BEGIN { for (i = 1; i <= 3000; i++)
  printf "{\"id\":%d,\"sym\":\"S%d\",\"qty\":%d,\"price\":%.2f,\"ok\":%s,\"at\":\"2024-03-01T10:%02d:%02dZ\"}\n",
         i, i % 10, i % 100, i / 4, (i % 2 ? "true" : "false"), (i / 60) % 60, i % 60 }' >in.jsonl
# A value that would break spliced SQL.
echo '{"id":9999,"sym":"x'"'"'); DROP TABLE orders; --","qty":1,"price":0.5,"ok":null,"at":null,"note":"line\nbreak \"q\" \\ back"}' >>in.jsonl

velo_run -e "INSERT INTO o SELECT * FROM 'file://in.jsonl' WITH ('o.type'='postgres_sink', 'o.url'='$PG_URL', 'o.table'='orders', 'o.format'='json')" 2>err.txt
check "insert: 3001 rows" test "$(pg_val 'SELECT count(*) FROM orders')" = 3001
check "insert: sums exact" \
  test "$(pg_val "SELECT sum(id) || ',' || sum(qty) || ',' || sum(price) || ',' || count(*) FILTER (WHERE ok) FROM orders WHERE id < 9999")" = \
  "4501500,148500,1125375.00,1500"
check "insert: timestamps land as UTC instants" \
  test "$(pg_val "SELECT at FROM orders WHERE id = 61")" = "2024-03-01 10:01:01+00"
check "insert: a quote-laden value is stored as written, nothing executed" \
  test "$(pg_val "SELECT sym FROM orders WHERE id = 9999")" = "x'); DROP TABLE orders; --"
check "insert: newline, quotes, backslash survive" \
  test "$(pg_val "SELECT note = E'line\\nbreak \"q\" \\\\ back' FROM orders WHERE id = 9999")" = t
check "insert: JSON null is SQL NULL" \
  test "$(pg_val "SELECT count(*) FROM orders WHERE id = 9999 AND ok IS NULL AND at IS NULL")" = 1

# Upsert: 3000 rows over 10 keys; the last row of each key wins (repeated
# keys inside one 500-row batch are split across statements, in order).
velo_run -e "INSERT INTO p SELECT sym, qty, id AS last_id FROM 'file://in.jsonl' WHERE id < 9999 WITH ('p.type'='postgres_sink', 'p.url'='$PG_URL', 'p.table'='pos', 'p.mode'='upsert', 'p.key'='sym', 'p.format'='json')" 2>err.txt
check "upsert: 10 keys plus the untouched one" test "$(pg_val 'SELECT count(*) FROM pos')" = 11
check "upsert: last row per key wins" \
  test "$(pg_val "SELECT string_agg(sym || '=' || qty || '/' || last_id, ' ' ORDER BY sym) FROM pos")" = \
  "OTHER=5/5 S0=0/3000 S1=91/2991 S2=92/2992 S3=93/2993 S4=94/2994 S5=95/2995 S6=96/2996 S7=97/2997 S8=98/2998 S9=99/2999"

# Upsert a GROUP BY changelog (EMIT CHANGES): the table ends at the final
# totals; create.table makes it, with the key as primary key.
velo_run -e "INSERT INTO tot SELECT sym, SUM(qty) AS total, COUNT(*) AS n FROM 'file://in.jsonl' WHERE id < 9999 GROUP BY sym EMIT CHANGES WITH ('tot.type'='postgres_sink', 'tot.url'='$PG_URL', 'tot.table'='totals', 'tot.mode'='upsert', 'tot.key'='sym', 'tot.create.table'='true')" 2>err.txt
check "create.table: made the table" test "$(pg_val "SELECT to_regclass('totals') IS NOT NULL")" = t
check "create.table: TEXT and NUMERIC columns, sym primary key" \
  test "$(pg_val "SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = 'totals'")/$(pg_val "SELECT count(*) FROM information_schema.table_constraints WHERE table_name = 'totals' AND constraint_type = 'PRIMARY KEY'")" = \
  "sym:text,total:numeric,n:numeric/1"
check "changelog upsert: final totals per key" \
  test "$(pg_val "SELECT string_agg(sym || '=' || total || '/' || n, ' ' ORDER BY sym) FROM totals")" = \
  "$(pg_val "SELECT string_agg(sym || '=' || total || '/' || n, ' ' ORDER BY sym) FROM (SELECT sym, sum(qty) AS total, count(*) AS n FROM orders WHERE id < 9999 GROUP BY sym) s")"

# Changelog rows: in upsert mode an "_op" of delete deletes the key's row;
# _op is never a column.
printf '%s\n' '{"_op":"insert","sym":"S1","qty":1,"last_id":1}' \
  '{"_op":"delete","sym":"S2","qty":0,"last_id":0}' \
  '{"_op":"update","sym":"S3","qty":333,"last_id":3}' >ops.jsonl
velo_run -e "INSERT INTO p SELECT * FROM 'file://ops.jsonl' WITH ('p.type'='postgres_sink', 'p.url'='$PG_URL', 'p.table'='pos', 'p.mode'='upsert', 'p.key'='sym')" 2>err.txt
check "upsert: _op delete removes the row, update and insert upsert" \
  test "$(pg_val "SELECT string_agg(sym || '=' || qty, ' ' ORDER BY sym) FROM pos WHERE sym IN ('S1', 'S2', 'S3')")" = "S1=1 S3=333"

# The URI form with ?table= and &mode=, and a schema-qualified table.
psql_db -c "CREATE SCHEMA app" -c "CREATE TABLE app.small (id int PRIMARY KEY, sym text)"
velo_run -e "INSERT INTO s SELECT id, sym FROM 'file://in.jsonl' WHERE id <= 5 WITH ('s.type'='postgres_sink', 's.url'='$PG_URL?table=app.small&mode=upsert&key=id')" 2>err.txt
check "URI parameters and schema.table" test "$(pg_val 'SELECT count(*) FROM app.small')" = 5

# Errors: a missing table, an unknown mode, upsert without key.
set +e
velo_run -e "INSERT INTO m SELECT id FROM 'file://in.jsonl' WITH ('m.type'='postgres_sink', 'm.url'='$PG_URL', 'm.table'='missing')" >/dev/null 2>err.txt; st=$?
set -e
check "missing table: exit 1, names it and the create.table way out" \
  bash -c "test $st = 1 && grep -q 'table missing does not exist at postgres://$PG_USER:\*\*\*@' err.txt && grep -q 'create.table' err.txt"
set +e
velo_run -e "INSERT INTO m SELECT id FROM 'file://in.jsonl' WITH ('m.type'='postgres_sink', 'm.url'='$PG_URL', 'm.table'='orders', 'm.mode'='upsert')" >/dev/null 2>err.txt; st=$?
set -e
check "upsert without key: exit 1 and says 'm.key'" \
  bash -c "test $st = 1 && grep -q \"m.key\" err.txt"
set +e
velo_run -e "INSERT INTO m SELECT id FROM 'file://in.jsonl' WITH ('m.type'='postgres_sink', 'm.url'='$PG_URL', 'm.table'='orders', 'm.mode'='merge')" >/dev/null 2>err.txt; st=$?
set -e
check "unknown mode: exit 1 naming it" bash -c "test $st = 1 && grep -q \"mode 'merge'\" err.txt"
# A type the column refuses: the server's message, the run fails.
set +e
velo_run -e "INSERT INTO m SELECT sym AS id FROM 'file://in.jsonl' WITH ('m.type'='postgres_sink', 'm.url'='$PG_URL', 'm.table'='orders')" >/dev/null 2>err.txt; st=$?
set -e
check "bad value for the column: exit 1 with the server's reason" \
  bash -c "test $st = 1 && grep -q 'invalid input syntax for type integer' err.txt"
check "bad value: nothing of it committed" \
  test "$(pg_val 'SELECT count(*) FROM orders')" = 3001
finish
