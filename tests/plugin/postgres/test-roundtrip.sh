#!/usr/bin/env bash
# Round trip: a PostgreSQL table read by the snapshot source and written by
# the sink into another table is the same table (EXCEPT both ways is
# empty), for ints, numerics, text, booleans, timestamps and NULLs; then an
# aggregate in velo over a source query, upserted into a created table.
source "$(dirname "${BASH_SOURCE[0]}")/pg-lib.sh"
pg_start
cd "$SCRATCH"

psql_db <<'SQL'
CREATE TABLE src (id bigint PRIMARY KEY, qty integer, price numeric(12,2),
                  name text, flag boolean, at timestamptz);
INSERT INTO src
SELECT g, g % 1000, (g % 10000) / 4.0,
       CASE WHEN g % 17 = 0 THEN NULL ELSE 'name ' || g || E' \u00e9"\\' END,
       CASE WHEN g % 3 = 0 THEN NULL ELSE g % 2 = 0 END,
       CASE WHEN g % 11 = 0 THEN NULL
            ELSE timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' END
FROM generate_series(1, 50000) g;
CREATE TABLE dst (LIKE src);
SQL

velo_run -e "INSERT INTO d SELECT * FROM s WITH ('s.type'='postgres_source', 's.url'='$PG_URL', 's.table'='src', 's.batch.size'='5000', 'd.type'='postgres_sink', 'd.url'='$PG_URL', 'd.table'='dst', 'd.format'='json')" 2>run.txt
check "round trip: 50000 rows" test "$(pg_val 'SELECT count(*) FROM dst')" = 50000
check "round trip: identical (EXCEPT both ways is empty)" \
  test "$(pg_val 'SELECT (SELECT count(*) FROM (SELECT * FROM src EXCEPT ALL SELECT * FROM dst) a) + (SELECT count(*) FROM (SELECT * FROM dst EXCEPT ALL SELECT * FROM src) b)')" = 0
check "round trip: NULLs kept per column" \
  test "$(pg_val "SELECT count(*) FILTER (WHERE name IS NULL) || ',' || count(*) FILTER (WHERE flag IS NULL) || ',' || count(*) FILTER (WHERE at IS NULL) FROM dst")" = \
       "$(pg_val "SELECT count(*) FILTER (WHERE name IS NULL) || ',' || count(*) FILTER (WHERE flag IS NULL) || ',' || count(*) FILTER (WHERE at IS NULL) FROM src")"

# A source query aggregated again in velo, upserted into a created table,
# twice: the second run updates in place (no duplicates).
for run in 1 2; do
  velo_run -e "INSERT INTO agg SELECT qty % 10 AS bucket, COUNT(*) AS n, SUM(price) AS total FROM q GROUP BY qty % 10 EMIT FINAL WITH ('q.type'='postgres_source', 'q.url'='$PG_URL', 'q.query'='SELECT qty, price FROM src WHERE qty < 500', 'agg.type'='postgres_sink', 'agg.url'='$PG_URL', 'agg.table'='buckets', 'agg.mode'='upsert', 'agg.key'='bucket', 'agg.create.table'='true')" 2>run.txt
done
check "aggregate upserted twice: one row per bucket" \
  test "$(pg_val 'SELECT count(*) FROM buckets')" = 10
check "aggregate: the same numbers as PostgreSQL computes" \
  test "$(pg_val "SELECT string_agg(bucket || ':' || n || ':' || round(total, 2), ' ' ORDER BY bucket) FROM buckets")" = \
       "$(pg_val "SELECT string_agg(b || ':' || n || ':' || round(t, 2), ' ' ORDER BY b) FROM (SELECT qty % 10 AS b, count(*) AS n, sum(price) AS t FROM src WHERE qty < 500 GROUP BY 1) x")"
finish
