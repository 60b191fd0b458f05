#!/usr/bin/env bash
# The Kafka source's own metrics on `velo run --metrics-port`: records and
# bytes read, and the lag behind the partitions' ends (0 once caught up).
source "$(dirname "${BASH_SOURCE[0]}")/lib-kafka.sh"
start_mock -b 1 -t orders:2
cd "$SCRATCH"
for i in $(seq 1 50); do echo "{\"id\":$i}"; done | produce orders
"$VELO_BIN" run "${P[@]}" --metrics-port 0 --format csv -e "SELECT COUNT(*) AS n FROM o
  WITH ('o.type'='kafka_source', 'o.bootstrap.servers'='$ADDR',
        'o.topic'='orders', 'o.group.id'='m')" >count.csv 2>run.log &
pid=$!; BG_PIDS+=("$pid")
metrics_ready() {
  local port
  port="$(sed -n 's|.*metrics on http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' run.log | head -1)"
  [[ -n "$port" ]] || return 1
  curl -s "http://127.0.0.1:$port/metrics" >metrics.txt || return 1
  grep -q '^velo_connector_records_in_total{connector="kafka",source="o"} 50$' metrics.txt &&
    grep -q '^velo_connector_lag{connector="kafka",source="o"} 0$' metrics.txt
}
check "records read reach 50 and the lag reaches 0" wait_for metrics_ready
check "bytes read are counted" \
  grep -q '^velo_connector_bytes_in_total{connector="kafka",source="o"} [1-9]' metrics.txt
stop_bg "$pid"
finish
