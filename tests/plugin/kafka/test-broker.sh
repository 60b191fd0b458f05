#!/usr/bin/env bash
# Broker down and back: a running `velo run` over a Kafka source keeps
# going after its broker is unreachable for a while (librdkafka reconnects
# with backoff; the source returns "nothing now" meanwhile), says so in
# its log, and reads what is produced after the broker is back.
source "$(dirname "${BASH_SOURCE[0]}")/lib-kafka.sh"
start_mock -b 1 -t events:2
cd "$SCRATCH"

for i in $(seq 1 20); do echo "{\"id\":$i}"; done | produce events
"$VELO_BIN" run "${P[@]}" --format csv -e "SELECT id FROM e
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
stop_bg "$pid"
check "it stops cleanly (exit 0)" test "$BG_STATUS" = 0
check "40 distinct ids, none lost" \
  test "$(tail -n +2 rows.csv | sort -nu | wc -l)" = 40
finish
