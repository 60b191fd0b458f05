#!/usr/bin/env bash
# A server that keeps the connection open and stops answering: every
# PostgreSQL process is stopped (SIGSTOP) while the sink writes. The batch
# in flight gets no answer; past statement.timeout + connect.timeout
# (2 s + 2 s here) the sink treats the connection as lost, logs and counts
# the error, and retries (each attempt bounded by connect.timeout). After
# SIGCONT it reconnects and every row lands exactly once (the lost batch
# is replayed, or found committed by txid_status).
source "$(dirname "${BASH_SOURCE[0]}")/pg-lib.sh"
pg_start
cd "$SCRATCH"
psql_db -c "CREATE TABLE t (id bigint, v text)"
# A statement trigger that sleeps keeps each batch's transaction open, so
# the stop comes while one is in flight.
psql_db <<'SQL'
CREATE FUNCTION slow_batch() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN PERFORM pg_sleep(0.2); RETURN NULL; END $$;
CREATE TRIGGER slow AFTER INSERT ON t FOR EACH STATEMENT
  EXECUTE FUNCTION slow_batch();
SQL
N=3000
awk -v n=$N 'BEGIN { for (i = 1; i <= n; i++)
  printf "{\"id\":%d,\"v\":\"v%d\"}\n", i, i }' >in.jsonl
# A watched file never ends: the run stays up to be scraped.
velo_bg out.txt run.log --metrics-port 0 -e "INSERT INTO o SELECT * FROM i
  WITH ('i.type'='file_source', 'i.path'='in.jsonl', 'i.watch'='true',
        'i.poll.interval'='50ms', 'i.format'='json',
        'o.type'='postgres_sink', 'o.url'='$PG_URL', 'o.table'='t',
        'o.insert.rows'='100', 'o.max.transaction.rows'='100',
        'o.statement.timeout'='2s', 'o.connect.timeout'='2s')"
scrape() {
  local port
  port="$(sed -n 's|.*metrics on http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' run.log | head -1)"
  [[ -n "$port" ]] || return 1
  curl -s -m 2 "http://127.0.0.1:$port/metrics" >metrics.txt
}
metric() { # metric NAME: the sink's value
  sed -n "s/^$1{connector=\"postgres\",sink=\"o\"} //p" metrics.txt
}
some_rows() { [[ "$(pg_val 'SELECT count(*) FROM t')" -ge 300 ]]; }
check "the sink is writing" wait_for "300 rows" 30 some_rows

# pg_procs: the postmaster and its children, by pid.
pg_procs() { echo "$PG_PID"; ps -o pid= --ppid "$PG_PID"; }
stopped_at="$(pg_val 'SELECT count(*) FROM t')"
mapfile -t PROCS < <(pg_procs)
kill -STOP "${PROCS[@]}"
t0=$(date +%s.%N)
check "the silent batch is given up after the limit (logged)" \
  wait_for "the timeout" 20 grep -q 'no answer from the server for [0-9]* ms (statement.timeout + connect.timeout)' run.log
t1=$(date +%s.%N)
waited="$(python3 -c "print(round($t1 - $t0, 1))")"
echo "rows when stopped: $stopped_at; timeout noticed after $waited s"
check "not before the 4 s limit, well before TCP would notice" \
  python3 -c "import sys; sys.exit(0 if 3.0 <= $waited <= 12 else 1)"
check "/metrics answers while the server is stopped; the error is counted" \
  bash -c "$(declare -f scrape metric); scrape && [ \"\$(metric velo_connector_errors_total)\" -ge 1 ]"
sleep 3 # reconnect attempts against the stopped server time out meanwhile
kill -CONT "${PROCS[@]}"
all_rows() {
  scrape && [[ "$(metric velo_connector_records_out_total)" == "$N" ]] &&
    [[ "$(metric velo_connector_pending_rows)" == 0 ]]
}
check "after SIGCONT every row is committed" wait_for "all rows" 60 all_rows
check "every row exactly once" \
  test "$(pg_val "SELECT count(*) || '/' || count(DISTINCT id) || '/' || sum(id) FROM t")" = "$N/$N/$((N * (N + 1) / 2))"
check "a reconnect is counted" test "$(metric velo_connector_reconnects_total)" -ge 1
check "the reconnection is logged" grep -q 'reconnected to' run.log
check "no password in the log" bash -c "! grep -q -- '$PG_PASS' run.log"
kill -INT "$VPID" 2>/dev/null || true
wait "$VPID" || true
[[ $FAILS -gt 0 ]] && { grep connector metrics.txt; tail -30 run.log; tail -20 "$PG_LOG"; } || true
finish
