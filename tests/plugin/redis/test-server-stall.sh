#!/usr/bin/env bash
# A server that keeps the connection open but never answers (redis-server
# stopped with SIGSTOP: TCP is fine, no reply comes): after command.timeout
# with replies outstanding and none arriving, the connection is taken as
# lost, counted in velo_connector_errors_total, reopened with backoff once
# the server answers again (velo_connector_reconnects_total), and nothing
# is lost: the sink resends what was unconfirmed, the source reads on.
# A blocking XREADGROUP that legitimately waits block.ms (longer than
# command.timeout here) is not a stall.
source "$(dirname "${BASH_SOURCE[0]}")/redis-lib.sh"
redis_start
cd "$SCRATCH"

metrics_port() {
  sed -n 's|.*metrics on http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' "$1" | head -1
}
# metric FILE NAME LABELS: the value, or 0 when absent.
metric() {
  local v
  v="$(sed -n "s/^$2{$3} \([0-9.]*\)$/\1/p" "$1" | head -1)"
  echo "${v:-0}"
}
resume() {
  if [[ -n "$REDIS_PID" ]]; then kill -CONT "$REDIS_PID" 2>/dev/null || true; fi
}

# ---- Source: XREADGROUP BLOCK 3000 with command.timeout 1s ----
for i in $(seq 1 10); do rcli XADD s '*' data "{\"id\":$i}" >/dev/null; done
velo_bg src.csv src.err --metrics-port 0 --format csv -e "SELECT id FROM s WITH ('s.type'='redis_source', 's.url'='$REDIS_URL/s', 's.group'='g', 's.block.ms'='3000', 's.command.timeout'='1s', 's.connect.timeout'='500ms')"
SPID="$VPID"
wait_for "the first 10 entries" 20 bash -c "[ \$(wc -l < src.csv) -ge 11 ]"
sport="$(metrics_port src.err)"
sleep 4 # longer than command.timeout, within block.ms + command.timeout
curl -s "http://127.0.0.1:$sport/metrics" >src-idle.txt || true
check "an idle read blocked for block.ms (3 s > command.timeout) is no stall" \
  bash -c "! grep -q 'no reply within' src.err"
check "and counts no error" \
  test "$(metric src-idle.txt velo_connector_errors_total 'connector="redis",source="s"')" = 0

kill -STOP "$REDIS_PID"
trap 'resume; redis_cleanup' EXIT
wait_for "the stalled read to time out" 15 grep -q "lost: no reply within command.timeout (1000 ms + block.ms)" src.err
curl -s "http://127.0.0.1:$sport/metrics" >src-stalled.txt || true
sleep 1 # an attempt or two against the stopped server
kill -CONT "$REDIS_PID"
wait_for "the source reconnects" 20 grep -q "reconnected to" src.err
for i in $(seq 11 20); do rcli XADD s '*' data "{\"id\":$i}" >/dev/null; done
wait_for "entries added after the stall" 20 bash -c "[ \$(wc -l < src.csv) -ge 21 ]"
curl -s "http://127.0.0.1:$sport/metrics" >src-after.txt || true
kill -TERM "$SPID"; st=0; wait "$SPID" || st=$?
check "the source run stops cleanly (exit 0)" test "$st" = 0
check "the stall is logged as a lost connection with the URI" \
  grep -q "connection to redis://127.0.0.1:$REDIS_PORT/s lost: no reply within command.timeout" src.err
check "velo_connector_errors_total counts the stall (1)" \
  test "$(metric src-stalled.txt velo_connector_errors_total 'connector="redis",source="s"')" = 1
check "velo_connector_reconnects_total counts the reconnection (1)" \
  test "$(metric src-after.txt velo_connector_reconnects_total 'connector="redis",source="s"')" = 1
check "every entry 1..20 read exactly once" \
  diff <(seq 1 20 | sed '1i id') <(sed -n 1p src.csv; sed 1d src.csv | sort -n)
check "and all acknowledged at the stop" test "$(rcli XPENDING s g | head -1)" = 0

# ---- Sink: XADDs outstanding while the server is stopped ----
mkfifo feed
velo_bg sink.out sink.err --metrics-port 0 -e "CREATE STREAM out AS SELECT id FROM 'file://feed' WITH ('out.type'='redis_sink', 'out.url'='$REDIS_URL/copy', 'out.field'='data', 'out.command.timeout'='1s', 'out.connect.timeout'='500ms')"
KPID="$VPID"
exec 7>feed
for i in $(seq 1 50); do echo "{\"id\":$i}" >&7; done
wait_for "the first 50 rows in Redis" 20 bash -c "[ \"\$(redis-cli -p $REDIS_PORT XLEN copy)\" = 50 ]"
kport="$(metrics_port sink.err)"
kill -STOP "$REDIS_PID"
for i in $(seq 51 100); do echo "{\"id\":$i}" >&7; done
wait_for "the sink's stalled replies to time out" 15 grep -q "lost: no reply within command.timeout (1000 ms)" sink.err
curl -s "http://127.0.0.1:$kport/metrics" >sink-stalled.txt || true
sleep 1
kill -CONT "$REDIS_PID"
wait_for "the sink reconnects" 20 grep -q "reconnected to" sink.err
wait_for "rows 51..100 resent" 20 bash -c "[ \"\$(redis-cli -p $REDIS_PORT XLEN copy)\" -ge 100 ]"
# The last replies may still be on their way to the sink.
wait_for "records_out at 100" 10 bash -c "curl -s http://127.0.0.1:$kport/metrics | grep -q '^velo_connector_records_out_total{connector=\"redis\",sink=\"out\"} 100$'" || true
curl -s "http://127.0.0.1:$kport/metrics" >sink-after.txt || true
exec 7>&-
st=0; wait "$KPID" || st=$?
check "the sink run ends cleanly after the stall (exit 0)" test "$st" = 0
check "the sink logged the stall" \
  grep -q "connection to redis://127.0.0.1:$REDIS_PORT/copy lost: no reply within command.timeout (1000 ms)" sink.err
check "and resent what was unconfirmed" grep -q "resending [0-9]* unconfirmed commands" sink.err
check "velo_connector_errors_total counts the sink's stall (1)" \
  test "$(metric sink-stalled.txt velo_connector_errors_total 'connector="redis",sink="out"')" = 1
check "velo_connector_reconnects_total counts its reconnection (1)" \
  test "$(metric sink-after.txt velo_connector_reconnects_total 'connector="redis",sink="out"')" = 1
got="$(rcli XRANGE copy - + | grep '^{' | sed 's/{"id":\([0-9]*\)}/\1/' | sort -n | uniq | wc -l)"
check "all 100 rows are in the stream (at least once: $got distinct)" test "$got" = 100
check "records_out counts each row once confirmed (100)" \
  test "$(metric sink-after.txt velo_connector_records_out_total 'connector="redis",sink="out"')" = 100
finish
