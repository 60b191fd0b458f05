#!/usr/bin/env bash
# A dropped connection mid-stream: while the sink writes 200000 rows, its
# backend is terminated (pg_terminate_backend) twice, and in a second run
# the whole server is stopped and started again. The sink reconnects,
# writes the lost transaction's rows again, and every row ends up in the
# table exactly once.
source "$(dirname "${BASH_SOURCE[0]}")/pg-lib.sh"
pg_start
cd "$SCRATCH"
N=200000
awk -v n=$N 'BEGIN { for (i = 1; i <= n; i++)
  printf "{\"id\":%d,\"grp\":%d,\"val\":\"v%d\"}\n", i, i % 13, i }' >in.jsonl
psql_db -c "CREATE TABLE big (id bigint, grp int, val text)" \
        -c "CREATE TABLE big2 (id bigint, grp int, val text)"
# COPY writes 200000 rows in well under a second: a statement trigger that
# sleeps keeps every batch's transaction open long enough for the backend
# to be terminated (or the server stopped) in the middle of it.
psql_db <<'SQL'
CREATE FUNCTION slow_batch() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN PERFORM pg_sleep(0.3); RETURN NULL; END $$;
CREATE TRIGGER slow AFTER INSERT ON big FOR EACH STATEMENT
  EXECUTE FUNCTION slow_batch();
CREATE TRIGGER slow AFTER INSERT ON big2 FOR EACH STATEMENT
  EXECUTE FUNCTION slow_batch();
SQL
APP=velo-reconnect-test

# backend_pid: the sink's backend once it is inside a transaction.
backend_pid() {
  pg_val "SELECT pid FROM pg_stat_activity WHERE application_name = '$APP' AND xact_start IS NOT NULL LIMIT 1" 2>/dev/null || true
}

# Run 1: kill the sink's backend twice while it writes (small batches make
# several transactions).
velo_run -e "INSERT INTO b SELECT * FROM 'file://in.jsonl' WITH ('b.type'='postgres_sink', 'b.url'='$PG_URL', 'b.table'='big', 'b.application.name'='$APP', 'b.max.transaction.rows'='60000', 'b.insert.rows'='100')" 2>run1.txt &
VPID=$!
killed=0
last=""
for _ in $(seq 1 2000); do
  pid="$(backend_pid)"
  if [[ -n "$pid" && "$pid" != "$last" ]]; then
    sleep 0.2
    if [[ "$(pg_val "SELECT pg_terminate_backend($pid)" 2>/dev/null)" == t ]]; then
      killed=$((killed + 1))
      last=$pid
      [[ $killed -ge 2 ]] && break
    fi
  fi
  kill -0 $VPID 2>/dev/null || break
  sleep 0.02
done
st=0; wait $VPID || st=$?
check "run 1: two backends terminated mid-write" test "$killed" = 2
check "run 1: the run completes (exit 0)" test "$st" = 0
check "run 1: every row present exactly once" \
  test "$(pg_val "SELECT count(*) || '/' || count(DISTINCT id) || '/' || sum(id) FROM big")" = "$N/$N/$((N * (N + 1) / 2))"
check "run 1: the loss and the reconnection are logged" \
  bash -c "grep -q 'lost while' run1.txt && grep -q 'reconnected to postgres://$PG_USER:\*\*\*@' run1.txt"
check "run 1: no password in the log" bash -c "! grep -q -- '$PG_PASS' run1.txt"

# Run 2: the server goes away for a second, then comes back.
velo_run -e "INSERT INTO b SELECT * FROM 'file://in.jsonl' WITH ('b.type'='postgres_sink', 'b.url'='$PG_URL', 'b.table'='big2', 'b.application.name'='$APP', 'b.max.transaction.rows'='5000')" 2>run2.txt &
VPID=$!
restarted=0
for _ in $(seq 1 600); do
  if [[ -n "$(backend_pid)" ]]; then
    sleep 0.3
    pg_stop
    sleep 1
    pg_start
    restarted=1
    break
  fi
  kill -0 $VPID 2>/dev/null || break
  sleep 0.05
done
st=0; wait $VPID || st=$?
check "run 2: the server restarted mid-write" test "$restarted" = 1
check "run 2: the run completes (exit 0)" test "$st" = 0
check "run 2: every row present exactly once" \
  test "$(pg_val "SELECT count(*) || '/' || count(DISTINCT id) || '/' || sum(id) FROM big2")" = "$N/$N/$((N * (N + 1) / 2))"
check "run 2: retried while the server was down, then reconnected" \
  bash -c "grep -q 'cannot reconnect' run2.txt && grep -q 'reconnected to' run2.txt"
[[ $FAILS -gt 0 ]] && { echo "--- run1"; tail -20 run1.txt; echo "--- run2"; tail -30 run2.txt; } || true
finish
