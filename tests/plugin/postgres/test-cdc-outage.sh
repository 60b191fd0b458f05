#!/usr/bin/env bash
# PostgreSQL CDC: while the database is unreachable, the source's
# reconnects do not stall the job. One job reads a CDC source and a
# watched file (UNION ALL). The server is stopped and a silent listener
# takes its port (connections are accepted, never answered): every
# reconnect attempt waits connect.timeout (2 s). They run on the event
# loop (nonblocking connect, backoff on a timer), so lines appended to the
# file keep arriving promptly, the idle job does not spin, and /metrics
# counts the failed attempts. Then the server comes back: the stream
# resumes and every change arrives exactly once.
source "$(dirname "${BASH_SOURCE[0]}")/pg-lib.sh"
pg_start
cd "$SCRATCH"
psql_db -c "CREATE TABLE ev (id integer PRIMARY KEY)"
: >f.jsonl
velo_bg out.csv out.err --format csv --metrics-port 0 -e "SELECT id FROM (SELECT id FROM s UNION ALL SELECT id FROM f) u
  WITH ('s.type'='postgres_source', 's.url'='$PG_URL', 's.table'='ev',
        's.mode'='cdc', 's.slot'='velo_ev', 's.snapshot'='false',
        's.connect.timeout'='2s',
        'f.type'='file_source', 'f.path'='f.jsonl', 'f.watch'='true',
        'f.poll.interval'='50ms', 'f.format'='json')"
slot_active() {
  [[ "$(pg_val "SELECT active FROM pg_replication_slots WHERE slot_name = 'velo_ev'")" == t ]]
}
check "the walsender is up" wait_for "the walsender" 30 slot_active
has_id() { grep -qx "$1" out.csv; }
psql_db -c "INSERT INTO ev SELECT g FROM generate_series(1, 10) g"
echo '{"id":1000001}' >>f.jsonl
check "before the outage: changes and file lines flow" \
  wait_for "ids 10 and 1000001" 20 bash -c "grep -qx 10 out.csv && grep -qx 1000001 out.csv"

# The outage: the server stopped, a silent listener on its port.
pg_stop
python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $PGPORT)); s.listen(64); time.sleep(60)" &
SILENT_PID=$!
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$PGPORT") 2>/dev/null; }
check "the silent listener is up" wait_for "the silent listener" 10 listening
check "the stream loss is logged" \
  wait_for "the loss" 10 grep -q 'replication stream lost' out.err

# Lines appended during the outage arrive within a second each (a
# blocking reconnect would hold the job for connect.timeout, 2 s).
worst=0
for i in $(seq 1 12); do
  id=$((2000000 + i))
  t0=$(date +%s%N)
  echo "{\"id\":$id}" >>f.jsonl
  for _ in $(seq 1 100); do has_id "$id" && break; sleep 0.02; done
  ms=$((($(date +%s%N) - t0) / 1000000))
  has_id "$id" || ms=99999
  [[ $ms -gt $worst ]] && worst=$ms
  sleep 0.25
done
echo "slowest file line during the outage: $worst ms"
check "the file source keeps flowing during the outage (worst ${worst} ms)" \
  test "$worst" -lt 1000
check "attempts against the silent server are bounded by connect.timeout" \
  wait_for "connect timeout" 15 grep -q 'no answer within 2000 ms (connect.timeout)' out.err
hz="$(getconf CLK_TCK)"
t0="$(awk '{ print $14 + $15 }' "/proc/$VPID/stat")"; sleep 2
t1="$(awk '{ print $14 + $15 }' "/proc/$VPID/stat")"
check "idle during the outage: no spinning ($((t1 - t0)) ticks in 2 s)" \
  test $((t1 - t0)) -lt $((hz * 3 / 10))
scrape() {
  local port
  port="$(sed -n 's|.*metrics on http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' out.err | head -1)"
  [[ -n "$port" ]] || return 1
  curl -s -m 2 "http://127.0.0.1:$port/metrics" >metrics.txt
}
metric() { # metric NAME: the CDC source's value
  sed -n "s/^$1{connector=\"postgres\",source=\"s\"} //p" metrics.txt
}
check "/metrics counts the loss and the failed attempts" \
  bash -c "$(declare -f scrape metric); scrape && [ \"\$(metric velo_connector_errors_total)\" -ge 2 ]"

kill "$SILENT_PID" 2>/dev/null || true; wait "$SILENT_PID" 2>/dev/null || true
pg_start
check "the stream resumes" \
  wait_for "resumed" 30 grep -q 'replication stream resumed' out.err
psql_db -c "INSERT INTO ev SELECT g FROM generate_series(11, 20) g"
echo '{"id":1000002}' >>f.jsonl
check "after the outage: new changes and lines arrive" \
  wait_for "ids 20 and 1000002" 30 bash -c "grep -qx 20 out.csv && grep -qx 1000002 out.csv"
sleep 1 # a duplicate would arrive now
check "a reconnect is counted" \
  bash -c "$(declare -f scrape metric); scrape && [ \"\$(metric velo_connector_reconnects_total)\" -ge 1 ]"
kill -TERM "$VPID"; wait "$VPID" || true
(seq 1 20; echo 1000001; echo 1000002; seq 2000001 2000012) | sort -n >expected.txt
tail -n +2 out.csv | sort -n >got.txt
check "every change and line exactly once" cmp -s expected.txt got.txt
check "no password in the log" bash -c "! grep -q -- '$PG_PASS' out.err"
[[ $FAILS -gt 0 ]] && { cat out.csv | tr '\n' ' '; echo; tail -30 out.err; grep connector metrics.txt; } || true
finish
