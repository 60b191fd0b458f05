#!/usr/bin/env bash
# PostgreSQL CDC: the initial snapshot and the stream meet without a gap or
# an overlap. Rows are inserted (one transaction each) while velo creates
# the slot and reads the snapshot; every row of the table must arrive
# exactly once, whichever side of the slot's consistent point it fell on.
# Also: a table with more rows than one FETCH (batch.size) and a
# multi-row transaction bigger than one engine batch.
source "$(dirname "${BASH_SOURCE[0]}")/pg-lib.sh"
pg_start
cd "$SCRATCH"

psql_db -c "CREATE TABLE t (id integer PRIMARY KEY, v text)" \
  -c "INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 3000) g"

# Writers in the background: 3001..3600, each its own transaction.
(for i in $(seq 3001 3600); do echo "INSERT INTO t VALUES ($i, 'live $i');"; done |
  PGPASSWORD="$PG_PASS" "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PGPORT" -U "$PG_USER" -d "$PG_DB" >/dev/null) &
WPID=$!
velo_bg out.csv out.err --format csv -e "SELECT id, _op FROM s WITH ('s.type'='postgres_source', 's.url'='$PG_URL', 's.table'='t', 's.mode'='cdc', 's.batch.size'='700')"
wait "$WPID"
# One transaction of 5000 rows: more than an engine batch.
psql_db -c "INSERT INTO t SELECT g, 'bulk' FROM generate_series(3601, 8600) g"
total="$(pg_val "SELECT count(*) FROM t")"
check "the table holds 8600 rows" test "$total" = 8600
wait_for "all 8600 rows arrive" 60 bash -c "[ \$(wc -l < out.csv) -ge 8601 ]"
sleep 1 # anything doubled would arrive now
kill -TERM "$VPID"; wait "$VPID" || true
check "every id 1..8600 exactly once, all as inserts" \
  python3 - out.csv <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
ids = sorted(int(r["id"]) for r in rows)
assert ids == list(range(1, 8601)), (len(ids), len(set(ids)))
assert all(r["_op"] == "insert" for r in rows)
PY
check "the log reports the snapshot's size (3000 plus what committed before the slot)" \
  grep -q "initial snapshot of t: [0-9]* rows" out.err
finish
