#!/usr/bin/env bash
# PostgreSQL CDC (mode 'cdc', logical replication with pgoutput) through
# velo run: the initial snapshot, then inserts, updates and deletes with
# _op, _before, _table and _lsn; REPLICA IDENTITY DEFAULT (the before-image
# holds the key only, also when an update changes it) and FULL; a
# restart after the engine acknowledged resumes with neither loss nor
# repetition; a run killed with -9 before acknowledging is replayed, exactly
# what it had read; a walsender terminated mid-stream is recovered without
# loss or repetition; a wrong password is a clear error without the secret.
source "$(dirname "${BASH_SOURCE[0]}")/pg-lib.sh"
pg_start
cd "$SCRATCH"

psql_db <<'SQL'
CREATE TABLE orders (id integer PRIMARY KEY, name text, qty integer);
INSERT INTO orders VALUES (1, 'apple', 10), (2, 'pear', 20);
SQL

W="WITH ('o.type'='postgres_source', 'o.url'='$PG_URL', 'o.table'='orders', 'o.mode'='cdc', 'o.slot'='velo_t1', 'o.publication'='velo_p1')"
Q="SELECT _op, id, name, qty, _before FROM o $W"
rows() { # rows FILE: data lines of a csv output
  tail -n +2 "$1"
}
slot_lsn() {
  pg_val "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'velo_t1'"
}
slot_at_least() { # slot_at_least LSN: the slot confirmed LSN or later
  [[ "$(pg_val "SELECT confirmed_flush_lsn >= '$1'::pg_lsn FROM pg_replication_slots WHERE slot_name = 'velo_t1'")" == t ]]
}
slot_active() {
  [[ "$(pg_val "SELECT active FROM pg_replication_slots WHERE slot_name = 'velo_t1'")" == t ]]
}

# --- run 1: snapshot, then changes -------------------------------------
velo_bg run1.csv run1.err --format csv -e "$Q"
wait_for "run 1: the snapshot's 2 rows" 30 bash -c "[ \$(wc -l < run1.csv) -ge 3 ]"
check "slot and publication were created" \
  test "$(pg_val "SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name='velo_t1' AND plugin='pgoutput') + (SELECT count(*) FROM pg_publication WHERE pubname='velo_p1')")" = 2
psql_db <<'SQL'
INSERT INTO orders VALUES (3, 'plum', 30);
UPDATE orders SET name = 'green apple' WHERE id = 1;
DELETE FROM orders WHERE id = 2;
UPDATE orders SET id = 33 WHERE id = 3;
ALTER TABLE orders REPLICA IDENTITY FULL;
UPDATE orders SET qty = 31 WHERE id = 33;
SQL
# An LSN before the last transaction: a confirmed LSN at or past it means
# that transaction (whose end is later) was acknowledged.
end1="$(pg_val "SELECT pg_current_wal_lsn()")"
psql_db <<'SQL'
BEGIN;
INSERT INTO orders VALUES (10, 'fig', 1), (11, 'kiwi', 2);
COMMIT;
SQL
wait_for "run 1: 9 rows" 30 bash -c "[ \$(wc -l < run1.csv) -ge 10 ]"
# A stateless run acknowledges about once a second: the slot's confirmed
# LSN moves past the last transaction.
wait_for "run 1 acknowledges its changes" 20 slot_at_least "$end1"
kill -TERM "$VPID"; st=0; wait "$VPID" || st=$?
check "run 1 stops cleanly on SIGTERM" test "$st" = 0
expected='insert,1,apple,10,
insert,2,pear,20,
insert,3,plum,30,
update,1,green apple,10,
delete,2,,,"{""id"":2}"
update,33,plum,30,"{""id"":3}"
update,33,plum,31,"{""id"":33,""name"":""plum"",""qty"":30}"
insert,10,fig,1,
insert,11,kiwi,2,'
if [[ "$(rows run1.csv)" == "$expected" ]]; then
  pass "snapshot then insert/update/delete with _op and _before (identity default, then full)"
else
  fail "snapshot then insert/update/delete with _op and _before"
  diff <(echo "$expected") <(rows run1.csv) || true; cat run1.err
fi

# _table and _lsn, as JSON
velo_bg run1b.json run1b.err --format json -e "SELECT id, _table, _lsn FROM o $W"
lsn11="$(pg_val "SELECT pg_current_wal_lsn()")"
psql_db -c "INSERT INTO orders VALUES (12, 'lime', 3)"
lsn12="$(pg_val "SELECT pg_current_wal_lsn()")"
wait_for "one row" 20 bash -c "[ \$(wc -l < run1b.json) -ge 1 ]"
wait_for "run 1b acknowledges" 20 slot_at_least "$lsn11"
kill -TERM "$VPID"; wait "$VPID" || true
check "_table is schema.table; _lsn an LSN below the current WAL position" \
  python3 - run1b.json "$lsn12" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 1 and rows[0]["id"] == 12, rows
assert rows[0]["_table"] == "public.orders", rows
def lsn(s):
    hi, lo = s.split("/"); return (int(hi, 16) << 32) | int(lo, 16)
assert 0 < lsn(rows[0]["_lsn"]) < lsn(sys.argv[2]), rows
PY

# --- run 2: restart after acknowledgement: only what is new ------------
psql_db -c "INSERT INTO orders VALUES (4, 'kiwi', 40)"
velo_bg run2.csv run2.err --format csv -e "$Q"
wait_for "run 2: 1 row" 30 bash -c "[ \$(wc -l < run2.csv) -ge 2 ]"
lsn2="$(pg_val "SELECT pg_current_wal_lsn()")"
psql_db -c "UPDATE orders SET qty = 41 WHERE id = 4"
wait_for "run 2: 2 rows" 30 bash -c "[ \$(wc -l < run2.csv) -ge 3 ]"
wait_for "run 2 acknowledges" 20 slot_at_least "$lsn2"
kill -TERM "$VPID"; wait "$VPID" || true
check "restart: the change made while stopped, then a live one; nothing repeated" \
  test "$(rows run2.csv)" = $'insert,4,kiwi,40,\nupdate,4,kiwi,41,"{""id"":4,""name"":""kiwi"",""qty"":40}"'

# --- run 3: killed with -9 before acknowledging ------------------------
# A LIMIT run acknowledges nothing until its end, so the kill certainly
# comes before any acknowledgement of 5 and 6.
before="$(slot_lsn)"
velo_bg run3.csv run3.err --format csv -e "SELECT _op, id FROM o LIMIT 100 $W"
sleep 1
psql_db -c "INSERT INTO orders VALUES (5, 'lime', 50)" -c "INSERT INTO orders VALUES (6, 'date', 60)"
wait_for "run 3: 2 rows" 30 bash -c "[ \$(wc -l < run3.csv) -ge 3 ]"
kill -KILL "$VPID"; wait "$VPID" 2>/dev/null || true
check "run 3 read 5 and 6" test "$(rows run3.csv)" = $'insert,5\ninsert,6'
check "the killed run acknowledged nothing (slot LSN unchanged)" test "$(slot_lsn)" = "$before"
velo_bg run4.csv run4.err --format csv -e "SELECT _op, id FROM o $W"
wait_for "run 4: 2 rows" 30 bash -c "[ \$(wc -l < run4.csv) -ge 3 ]"
psql_db -c "INSERT INTO orders VALUES (7, 'yuzu', 70)"
wait_for "run 4: 3 rows" 30 bash -c "[ \$(wc -l < run4.csv) -ge 4 ]"
# --- dropped connection mid-stream: the walsender is terminated --------
wait_for "run 4's walsender is active" 20 slot_active
psql_su -d "$PG_DB" -A -t -c "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'velo_t1'" >/dev/null
psql_db -c "INSERT INTO orders VALUES (8, 'sloe', 80)"
lsn4="$(pg_val "SELECT pg_current_wal_lsn()")"
psql_db -c "DELETE FROM orders WHERE id = 8"
wait_for "run 4: 5 rows after the reconnect" 30 bash -c "[ \$(wc -l < run4.csv) -ge 6 ]"
wait_for "run 4 acknowledges after the reconnect" 30 slot_at_least "$lsn4"
sleep 0.5
kill -TERM "$VPID"; st=0; wait "$VPID" || st=$?
check "run 4 replays exactly the killed run's 5 and 6, then 7, 8 across the reconnect, once each" \
  test "$(rows run4.csv)" = $'insert,5\ninsert,6\ninsert,7\ninsert,8\ndelete,8'
check "run 4 logged the lost stream and its resumption" \
  bash -c "grep -q 'replication stream lost' run4.err && grep -q 'replication stream resumed' run4.err"
check "run 4 stops cleanly after the reconnect" test "$st" = 0

# --- errors ---------------------------------------------------------------
bad_url="postgres://$PG_USER:wrong-Pw7@127.0.0.1:$PGPORT/$PG_DB"
set +e
velo_run -e "SELECT id FROM o WITH ('o.type'='postgres_source', 'o.url'='$bad_url', 'o.table'='orders', 'o.mode'='cdc')" >/dev/null 2>bad.err; st=$?
set -e
check "wrong password: exit 1" test "$st" = 1
check "wrong password: names the redacted URL and the reason" \
  bash -c "grep -q 'postgres://$PG_USER:\*\*\*@127.0.0.1:$PGPORT/$PG_DB' bad.err && grep -q 'password authentication failed' bad.err"
check "wrong password: the password appears nowhere" bash -c "! grep -q 'wrong-Pw7' bad.err"

set +e
velo_run -e "SELECT id FROM o WITH ('o.type'='postgres_source', 'o.url'='$PG_URL', 'o.table'='orders', 'o.mode'='cdc', 'o.slot'='Bad-Slot')" >/dev/null 2>bad2.err; st=$?
velo_run -e "SELECT id FROM o WITH ('o.type'='postgres_source', 'o.url'='$PG_URL', 'o.mode'='cdc', 'o.slot'='velo_none', 'o.publication'='velo_none', 'o.create.slot'='false', 'o.snapshot'='false', 'o.create.publication'='false')" >/dev/null 2>bad3.err; st3=$?
set -e
check "a bad slot name: exit 1 naming the rule" \
  bash -c "test $st = 1 && grep -q \"Bad-Slot\" bad2.err && grep -q 'lower-case' bad2.err"
check "a missing publication with create.publication off: exit 1, named" \
  bash -c "test $st3 = 1 && grep -q 'publication velo_none does not exist' bad3.err"
finish
