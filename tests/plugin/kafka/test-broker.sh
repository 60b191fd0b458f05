#!/usr/bin/env bash
# Broker down and back: a running `velo run` over a Kafka source keeps
# going after its broker is unreachable for a while (librdkafka reconnects
# with backoff; the source returns "nothing now" meanwhile), says so in
# its log, and reads what is produced after the broker is back. The same
# for a sink, whose deliveries wait for the broker. Both count the outage
# on /metrics: errors, and one reconnect when traffic flows again.
source "$(dirname "${BASH_SOURCE[0]}")/lib-kafka.sh"
start_mock -b 1 -t events:2 -t out:1
cd "$SCRATCH"

# metric LOG FAMILY LABELS: its value on the job's /metrics, or "none"
metric() {
  local port
  port="$(sed -n 's|.*metrics on http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' "$1" | head -1)"
  curl -s "http://127.0.0.1:$port/metrics" |
    awk -v k="$2{$3}" '$1 == k { v = $2 } END { print v == "" ? "none" : v }'
}

for i in $(seq 1 20); do echo "{\"id\":$i}"; done | produce events
"$VELO_BIN" run "${P[@]}" --metrics-port 0 --format csv -e "SELECT id FROM e
  WITH ('e.type'='kafka_source', 'e.bootstrap.servers'='$ADDR',
        'e.topic'='events')" >rows.csv 2>run.log &
pid=$!; BG_PIDS+=("$pid")
check "the first 20 arrive" wait_for lines_at_least rows.csv 21

check "the mock takes its broker down" mock_cmd "down 1"
sleep 3
check "the job is still running while the broker is down" kill -0 "$pid"
check "and its log says the broker is unreachable, retrying" \
  wait_for grep -q "retrying" run.log
check "the mock brings the broker back" mock_cmd "up 1"

# kcat retries until the broker answers again
for i in $(seq 21 40); do echo "{\"id\":$i}"; done | produce events
check "the 20 produced after the outage arrive" wait_for lines_at_least rows.csv 41
check "the log says it is connected again" \
  wait_for grep -q "connected again" run.log
src='connector="kafka",source="e"'
check "the outage counts one reconnect on /metrics" \
  test "$(metric run.log velo_connector_reconnects_total "$src")" = 1
check "and its transport errors as errors" \
  test "$(metric run.log velo_connector_errors_total "$src")" -ge 1
stop_bg "$pid"
check "it stops cleanly (exit 0)" test "$BG_STATUS" = 0
check "40 distinct ids, none lost" \
  test "$(tail -n +2 rows.csv | sort -nu | wc -l)" = 40

# A sink: rows from stdin (a FIFO kept open) into topic out; the broker
# goes away between two rows and comes back.
mkfifo rows.fifo
"$VELO_BIN" run "${P[@]}" --metrics-port 0 -e "CREATE STREAM o AS
  SELECT id FROM stdin
  WITH ('stdin.format'='json', 'o.type'='kafka_sink',
        'o.bootstrap.servers'='$ADDR', 'o.topic'='out', 'o.linger.ms'='0')" \
  <rows.fifo >sink.out 2>sink.log &
spid=$!; BG_PIDS+=("$spid")
exec 8>rows.fifo
echo '{"id":1}' >&8
check "the sink delivers the first row" \
  wait_for bash -c "[[ \$(kcat -C -b '$ADDR' -t out -e -q | wc -l) -ge 1 ]]"
check "the broker goes down under the sink" mock_cmd "down 1"
echo '{"id":2}' >&8
check "the sink's log says the broker is unreachable" \
  wait_for grep -q "retrying" sink.log
check "the broker comes back" mock_cmd "up 1"
check "the row written meanwhile is delivered" \
  wait_for bash -c "[[ \$(kcat -C -b '$ADDR' -t out -e -q | wc -l) -ge 2 ]]"
snk='connector="kafka",sink="o"'
sink_reconnected() {
  test "$(metric sink.log velo_connector_reconnects_total "$snk")" = 1
}
check "the sink counts one reconnect" wait_for sink_reconnected
check "and errors" \
  test "$(metric sink.log velo_connector_errors_total "$snk")" -ge 1
exec 8>&-
wait "$spid"; st=$?
check "the sink's job ends at the end of its input (exit 0)" test "$st" = 0
check "each row is in the topic once" \
  test "$(kcat -C -b "$ADDR" -t out -e -q | sort | tr -d '\n')" = '{"id":1}{"id":2}'
finish
