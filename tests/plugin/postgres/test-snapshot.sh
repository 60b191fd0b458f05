#!/usr/bin/env bash
# PostgreSQL snapshot source: a table of ints, numerics, text, booleans,
# timestamps and NULLs read through a cursor (in small FETCH batches) and
# queried with velo run; a 'x.query' source with GROUP BY in its SQL; the
# URI form with ?table=; a missing table is a clear error.
source "$(dirname "${BASH_SOURCE[0]}")/pg-lib.sh"
pg_start
cd "$SCRATCH"

psql_db <<'SQL'
CREATE TABLE trades (
  id integer PRIMARY KEY, big bigint, qty smallint, price numeric(10,2),
  ratio double precision, symbol text, note varchar(20), active boolean,
  at timestamp, seen timestamptz);
INSERT INTO trades VALUES
  (1, 9000000000, 10, 101.25, 0.5, 'AAPL', 'first "quoted"', true,
   '2024-01-02 03:04:05', '2024-01-02 03:04:05+00'),
  (2, -7, 20, 99.50, 1.25, 'MSFT', NULL, false,
   '2024-01-02 03:04:06', '2024-01-02 04:04:06+01'),
  (3, 0, 30, 100.00, NULL, 'AAPL', E'tab\there', NULL,
   '2024-01-02 03:04:07', NULL),
  (4, NULL, 40, NULL, -2, 'GOOG', 'x', true, NULL, NULL);
CREATE TABLE nums AS SELECT g AS n, g % 7 AS bucket FROM generate_series(1, 25000) g;
SQL

# Every column, every type, as the engine sees it.
out="$(velo_run --format csv -e "SELECT id, big, qty, price, ratio, symbol, note, active, at, seen FROM $PG_URL?table=trades AS t ORDER BY id")"
expected='id,big,qty,price,ratio,symbol,note,active,at,seen
1,9000000000,10,101.25,0.5,AAPL,"first ""quoted""",true,2024-01-02T03:04:05.000Z,2024-01-02T03:04:05.000Z
2,-7,20,99.5,1.25,MSFT,,false,2024-01-02T03:04:06.000Z,2024-01-02T03:04:06.000Z
3,0,30,100,,AAPL,tab	here,,2024-01-02T03:04:07.000Z,
4,,40,,-2,GOOG,x,true,,'
if [[ "$out" == "$expected" ]]; then pass "every type read exactly (URI form)"; else
  fail "every type read exactly (URI form)"; diff <(echo "$expected") <(echo "$out") || true; fi

# The JSON each row becomes (the engine's json decoding of it).
out="$(velo_run --format json -e "SELECT id, price, active, note FROM src WHERE id = 2 WITH ('src.type'='postgres_source', 'src.url'='$PG_URL', 'src.table'='trades')")"
check "named form with 'src.url' and 'src.table'; NULL is null" \
  test "$out" = '{"id":2,"price":99.5,"active":false,"note":null}'

# Filters and aggregates over the snapshot, read in FETCHes of 1000 rows.
out="$(velo_run --format csv -e "SELECT COUNT(*) AS c, SUM(n) AS s, MIN(n) AS lo, MAX(n) AS hi FROM src EMIT FINAL WITH ('src.type'='postgres_source', 'src.url'='$PG_URL', 'src.table'='nums', 'src.batch.size'='1000')")"
check "25000 rows over 25 FETCHes: count and sum exact" \
  test "$out" = $'c,s,lo,hi\n25000,312512500,1,25000'
# FETCHes of 7000: the fourth is short and the last (no empty FETCH after).
out="$(velo_run --format csv -e "SELECT COUNT(*) AS c, SUM(n) AS s FROM src EMIT FINAL WITH ('src.type'='postgres_source', 'src.url'='$PG_URL', 'src.table'='nums', 'src.batch.size'='7000')")"
check "25000 rows in FETCHes of 7000 (the last one short): exact" \
  test "$out" = $'c,s\n25000,312512500'
# An empty result: the source ends at once, with no rows.
out="$(velo_run --format csv -e "SELECT n FROM src WITH ('src.type'='postgres_source', 'src.url'='$PG_URL', 'src.query'='SELECT n FROM nums WHERE n < 0', 'src.schema'='n BIGINT')")"
check "an empty result: no rows, the run ends" test -z "$(echo "$out" | tail -n +2)"

# A query with GROUP BY in PostgreSQL, then more SQL in velo over it.
out="$(velo_run --format csv -e "SELECT bucket, c FROM g WHERE c > 3571 ORDER BY bucket WITH ('g.type'='postgres_source', 'g.url'='$PG_URL', 'g.query'='SELECT bucket, count(*) AS c FROM nums GROUP BY bucket')")"
check "'x.query' with GROUP BY: per-bucket counts" \
  test "$out" = $'bucket,c\n1,3572\n2,3572\n3,3572'

out="$(velo_run --format csv -e "SELECT symbol, COUNT(*) AS n, SUM(qty) AS q FROM q GROUP BY symbol ORDER BY symbol EMIT FINAL WITH ('q.type'='postgres_source', 'q.url'='$PG_URL', 'q.query'='SELECT symbol, qty FROM trades WHERE qty >= 20')")"
check "'x.query' with a WHERE, GROUP BY in velo" \
  test "$out" = $'symbol,n,q\nAAPL,1,30\nGOOG,1,40\nMSFT,1,20'

# A missing table: exit 1, the table and the URI named, no password.
set +e
velo_run -e "SELECT * FROM m WITH ('m.type'='postgres_source', 'm.url'='$PG_URL', 'm.table'='nope')" >out.txt 2>err.txt; st=$?
set -e
check "missing table: exit 1" test "$st" = 1
check "missing table: names the table and the redacted URI" \
  bash -c "grep -q 'nope' err.txt && grep -q 'postgres://$PG_USER:\*\*\*@127.0.0.1:$PGPORT/$PG_DB' err.txt"
# The engine quotes the statement (with its URI) under a planning error;
# the plugin's own lines must not carry the password.
check "missing table: the plugin logs no password" \
  bash -c "grep -q 'postgres:m' err.txt && ! grep 'postgres:m' err.txt | grep -q -- '$PG_PASS'"

# Neither table nor query.
set +e
velo_run -e "SELECT * FROM m WITH ('m.type'='postgres_source', 'm.url'='$PG_URL')" >/dev/null 2>err.txt; st=$?
set -e
check "no table or query: exit 1 with a hint" \
  bash -c "test $st = 1 && grep -q \"m.table\" err.txt"
finish
