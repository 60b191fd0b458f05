#!/usr/bin/env bash
# PostgreSQL CDC: the replication connection dropped in the middle of a
# large transaction. The server replays that transaction from its start
# on the new connection (the slot was not confirmed past it); the source
# skips the changes of it that it had already handed out, so every row
# arrives exactly once. Also a smaller transaction before it, already
# handed out but not yet acknowledged when the connection drops, is
# skipped whole on the replay.
source "$(dirname "${BASH_SOURCE[0]}")/pg-lib.sh"
pg_start
cd "$SCRATCH"
psql_db -c "CREATE TABLE big (id integer PRIMARY KEY, pad text)"
slot_active() {
  [[ "$(pg_val "SELECT active FROM pg_replication_slots WHERE slot_name = 'velo_big'")" == t ]]
}
# A LIMIT run acknowledges nothing before its end: everything it reads is
# replayed by the server after the drop, and must be skipped by the source.
velo_bg out.csv out.err --format csv -e "SELECT id FROM s LIMIT 10000000 WITH ('s.type'='postgres_source', 's.url'='$PG_URL', 's.table'='big', 's.mode'='cdc', 's.slot'='velo_big', 's.snapshot'='false')"
wait_for "the walsender is up" 30 slot_active
# An idle stream: its socket is watched on the loop, which must not spin
# (under 0.3 s of CPU in 2 s).
hz="$(getconf CLK_TCK)"
t0="$(awk '{ print $14 + $15 }' "/proc/$VPID/stat")"; sleep 2
t1="$(awk '{ print $14 + $15 }' "/proc/$VPID/stat")"
check "an idle stream does not spin ($((t1 - t0)) ticks in 2 s)" \
  test $((t1 - t0)) -lt $((hz * 3 / 10))
psql_db -c "INSERT INTO big SELECT g, 'small' FROM generate_series(1, 100) g"
psql_db -c "INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(101, 300100) g"
# Cut the stream once part of the big transaction has been read.
wait_for "part of the big transaction arrived" 120 bash -c "[ \$(wc -l < out.csv) -ge 20000 ]"
n_at_cut=$(($(wc -l < out.csv) - 1))
psql_su -d "$PG_DB" -A -t -c "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'velo_big'" >/dev/null
wait_for "all 300100 rows" 240 bash -c "[ \$(wc -l < out.csv) -ge 300101 ]"
sleep 1 # a duplicate would arrive now
kill -TERM "$VPID"; wait "$VPID" || true
echo "rows read when the connection was cut: $n_at_cut"
check "the cut came inside the big transaction" \
  bash -c "[ $n_at_cut -gt 100 ] && [ $n_at_cut -lt 300100 ]"
check "the stream was lost and resumed" \
  bash -c "grep -q 'replication stream lost' out.err && grep -q 'replication stream resumed' out.err"
check "every id 1..300100 exactly once, in order" \
  bash -c "tail -n +2 out.csv | cmp -s - <(seq 1 300100)"
finish
