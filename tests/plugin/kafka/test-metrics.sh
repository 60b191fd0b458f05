#!/usr/bin/env bash
# The Kafka source's own metrics on `velo run --metrics-port`: records and
# bytes read, the lag behind the partitions' ends (0 once caught up), and
# errors and reconnects (0 here; test-broker.sh makes an outage count);
# in a Kafka to Kafka job the sink's series stand beside the source's.
source "$(dirname "${BASH_SOURCE[0]}")/lib-kafka.sh"
start_mock -b 1 -t orders:2 -t copy:1
cd "$SCRATCH"
for i in $(seq 1 50); do echo "{\"id\":$i}"; done | produce orders
"$VELO_BIN" run "${P[@]}" --metrics-port 0 -e "CREATE STREAM c AS SELECT id FROM o
  WITH ('o.type'='kafka_source', 'o.bootstrap.servers'='$ADDR',
        'o.topic'='orders', 'o.group.id'='m',
        'c.type'='kafka_sink', 'c.bootstrap.servers'='$ADDR',
        'c.topic'='copy', 'c.format'='json')" >run.out 2>run.log &
pid=$!; BG_PIDS+=("$pid")
metrics_ready() {
  local port
  port="$(sed -n 's|.*metrics on http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' run.log | head -1)"
  [[ -n "$port" ]] || return 1
  curl -s "http://127.0.0.1:$port/metrics" >metrics.txt || return 1
  grep -q '^velo_connector_records_in_total{connector="kafka",source="o"} 50$' metrics.txt &&
    grep -q '^velo_connector_lag{connector="kafka",source="o"} 0$' metrics.txt &&
    grep -q '^velo_connector_records_out_total{connector="kafka",sink="c"} 50$' metrics.txt
}
check "records read and written reach 50 and the lag reaches 0" wait_for metrics_ready
check "bytes read are counted" \
  grep -q '^velo_connector_bytes_in_total{connector="kafka",source="o"} [1-9]' metrics.txt
check "no errors on a healthy run (the family is there, at 0)" \
  grep -q '^velo_connector_errors_total{connector="kafka",source="o"} 0$' metrics.txt
check "and no reconnects" \
  grep -q '^velo_connector_reconnects_total{connector="kafka",source="o"} 0$' metrics.txt
check "the sink's errors and reconnects are there too, at 0" \
  bash -c "grep -q '^velo_connector_errors_total{connector=\"kafka\",sink=\"c\"} 0$' metrics.txt &&
           grep -q '^velo_connector_reconnects_total{connector=\"kafka\",sink=\"c\"} 0$' metrics.txt"
stop_bg "$pid"
finish
