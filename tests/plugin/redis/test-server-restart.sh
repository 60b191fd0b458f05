#!/usr/bin/env bash
# redis-server restarted mid-stream (with --appendonly yes, so the stream,
# the group and its pending list survive): the source reconnects with
# backoff and goes on where the group was; nothing lost, nothing twice.
# The sink side: rows written across the restart all arrive.
source "$(dirname "${BASH_SOURCE[0]}")/redis-lib.sh"
redis_start --appendonly yes --appendfsync always
cd "$SCRATCH"
add() {
  local i
  for i in $(seq "$1" "$2"); do rcli XADD s '*' data "{\"id\":$i}" >/dev/null; done
}
add 1 10
velo_bg run.csv run.err --format csv -e "SELECT id FROM s LIMIT 30 WITH ('s.type'='redis_source', 's.url'='$REDIS_URL/s', 's.group'='g', 's.consumer'='c1')"
wait_for "10 rows before the restart" 20 bash -c "[ \$(wc -l < run.csv) -ge 11 ]"
redis_restart
add 11 20
wait_for "the source reconnects" 20 grep -q "reconnected to" run.err
wait_for "20 rows after the restart" 20 bash -c "[ \$(wc -l < run.csv) -ge 21 ]"
redis_restart
add 21 30
st=0
for _ in $(seq 1 400); do kill -0 "$VPID" 2>/dev/null || break; sleep 0.05; done
wait "$VPID" || st=$?
check "the run survives two server restarts and ends at LIMIT 30 (exit 0)" test "$st" = 0
check "every id 1..30 exactly once, in order" diff <(seq 1 30 | sed '1i id') run.csv
check "the drop is logged with the URI" grep -q "connection to redis://127.0.0.1:$REDIS_PORT/s lost" run.err
check "and the reconnection too" grep -q "reconnected to redis://127.0.0.1:$REDIS_PORT/s" run.err

# Sink across a restart: rows from a FIFO into a stream; the server goes
# away between two halves and comes back; every row arrives.
mkfifo feed
velo_bg sink.out sink.err -e "CREATE STREAM out AS SELECT id FROM 'file://feed' WITH ('out.type'='redis_sink', 'out.url'='$REDIS_URL/copy', 'out.field'='data')"
exec 7>feed
for i in $(seq 1 50); do echo "{\"id\":$i}" >&7; done
wait_for "the first 50 rows in Redis" 20 bash -c "[ \"\$(redis-cli -p $REDIS_PORT XLEN copy)\" = 50 ]"
redis_stop
for i in $(seq 51 100); do echo "{\"id\":$i}" >&7; done
sleep 0.5 # the sink finds the server gone
redis_restart
exec 7>&-
st=0; wait "$VPID" || st=$?
check "the sink run ends cleanly after the restart (exit 0)" test "$st" = 0
got="$(rcli XRANGE copy - + | grep '^{' | sed 's/{"id":\([0-9]*\)}/\1/' | sort -n | uniq | wc -l)"
check "all 100 rows are in the stream (at least once: $got distinct)" test "$got" = 100
check "the sink logged the outage" grep -q "reconnect" sink.err
finish
