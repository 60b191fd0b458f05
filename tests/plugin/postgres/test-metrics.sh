#!/usr/bin/env bash
# The sink's own metrics on `velo run --metrics-port`: records and COPY
# bytes committed, rows pending, and after its backend is terminated, the
# error and the reconnection; rows written after that land too. Idle, the
# watched socket costs no CPU; a reconnect to a server that never answers
# is bounded by connect.timeout.
source "$(dirname "${BASH_SOURCE[0]}")/pg-lib.sh"
pg_start
cd "$SCRATCH"
psql_db -c "CREATE TABLE m (id integer, v text)"
APP=velo-metrics-test
for i in $(seq 1 40); do echo "{\"id\":$i,\"v\":\"v$i\"}"; done >in.jsonl
# A watched file never ends: the run stays up to be scraped.
velo_bg out.txt run.log --metrics-port 0 -e "INSERT INTO o SELECT * FROM i
  WITH ('i.type'='file_source', 'i.path'='in.jsonl', 'i.watch'='true',
        'i.poll.interval'='50ms', 'i.format'='json',
        'o.type'='postgres_sink', 'o.url'='$PG_URL', 'o.table'='m',
        'o.application.name'='$APP', 'o.insert.rows'='1',
        'o.connect.timeout'='2s')"
scrape() {
  local port
  port="$(sed -n 's|.*metrics on http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' run.log | head -1)"
  [[ -n "$port" ]] || return 1
  curl -s -m 2 "http://127.0.0.1:$port/metrics" >metrics.txt
}
# metric NAME VALUE-REGEX: the sink's series has that value.
has() {
  scrape && grep -Eq "^$1\{connector=\"postgres\",sink=\"o\"\} $2\$" metrics.txt
}
first_40() {
  has velo_connector_records_out_total 40 &&
    has velo_connector_pending_rows 0 &&
    test "$(pg_val 'SELECT count(*) FROM m')" = 40
}
check "records committed reach 40, nothing pending" wait_for "40 rows" 20 first_40
check "COPY bytes are counted" has velo_connector_bytes_out_total '[1-9][0-9]*'
check "no errors, no reconnects yet" \
  bash -c "grep -Eq '^velo_connector_errors_total\{connector=\"postgres\",sink=\"o\"\} 0$' metrics.txt && grep -Eq '^velo_connector_reconnects_total\{connector=\"postgres\",sink=\"o\"\} 0$' metrics.txt"

# cpu_ticks: velo's user+system CPU time so far, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$VPID/stat"; }
# idle_cpu_ok: over 2 s of no input, velo uses under 0.3 s of CPU (a
# socket watched on the loop must not make it spin).
idle_cpu_ok() {
  local t0 t1 hz
  hz="$(getconf CLK_TCK)"
  t0="$(cpu_ticks)"; sleep 2; t1="$(cpu_ticks)"
  echo "idle CPU: $((t1 - t0)) ticks in 2 s (CLK_TCK $hz)"
  test $((t1 - t0)) -lt $((hz * 3 / 10))
}
check "idle with the connection open: no spinning" idle_cpu_ok

check "the sink's backend is terminated" \
  test "$(pg_val "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '$APP'")" = 1
# The closed socket stays readable: it must be let go, not spun on.
check "idle with the connection closed by the server: no spinning" idle_cpu_ok
for i in $(seq 41 50); do echo "{\"id\":$i,\"v\":\"v$i\"}"; done >>in.jsonl
after_loss() {
  has velo_connector_records_out_total 50 &&
    has velo_connector_reconnects_total 1 &&
    has velo_connector_errors_total '[1-9][0-9]*' &&
    test "$(pg_val 'SELECT count(*) || $$/$$ || count(DISTINCT id) FROM m')" = 50/50
}
check "after the loss: 1 reconnect, the error counted, all 50 rows once" \
  wait_for "reconnect" 20 after_loss

# A server that accepts connections and never answers (the database is
# stopped, a silent listener takes its port): the sink's nonblocking
# reconnect gives up on that attempt after connect.timeout (2 s here) and
# tries again; once the server is back every row lands once.
pg_stop
python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $PGPORT)); s.listen(8); time.sleep(60)" &
SILENT_PID=$!
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$PGPORT") 2>/dev/null; }
wait_for "the silent listener" 10 listening
for i in $(seq 51 60); do echo "{\"id\":$i,\"v\":\"v$i\"}"; done >>in.jsonl
check "server silent: the attempt times out after connect.timeout" \
  wait_for "connect timeout" 20 grep -q 'no answer within 2000 ms (connect.timeout)' run.log
scrape_now() {
  scrape && grep -q '^velo_connector_pending_rows{connector="postgres",sink="o"} [1-9]' metrics.txt
}
check "/metrics answers (within 2 s) while rows wait for the server" scrape_now
kill "$SILENT_PID" 2>/dev/null || true; wait "$SILENT_PID" 2>/dev/null || true
pg_start
all_60() {
  has velo_connector_records_out_total 60 &&
    has velo_connector_pending_rows 0 &&
    test "$(pg_val 'SELECT count(*) || $$/$$ || count(DISTINCT id) FROM m')" = 60/60
}
check "the server back: all 60 rows once" wait_for "60 rows" 30 all_60
kill -INT "$VPID" 2>/dev/null || true
wait "$VPID" || true
[[ $FAILS -gt 0 ]] && { grep connector metrics.txt; tail -20 run.log; tail -20 "$PG_LOG"; } || true
finish
