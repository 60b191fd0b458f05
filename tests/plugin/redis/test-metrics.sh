#!/usr/bin/env bash
# A connector's own metrics reach `velo run --metrics-port`: the Redis
# stream source counts the records and bytes it read, labelled with the
# connector and the source's name; after a server restart, the lost
# connection (an error) and the reconnection.
source "$(dirname "${BASH_SOURCE[0]}")/redis-lib.sh"
redis_start
cd "$SCRATCH"
for i in $(seq 1 25); do
  rcli XADD orders '*' data "{\"id\":$i}" >/dev/null
done
"$VELO_BIN" run "${P[@]}" --metrics-port 0 --format csv -e "SELECT COUNT(*) AS n FROM o
  WITH ('o.type'='redis_source', 'o.url'='$REDIS_URL', 'o.key'='orders')" \
  >count.csv 2>run.log &
pid=$!
port=""
for _ in $(seq 1 100); do
  port="$(sed -n 's|.*metrics on http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' run.log | head -1)"
  [[ -n "$port" ]] && tail -n 1 count.csv 2>/dev/null | grep -q ',25$' && break
  sleep 0.1
done
curl -s "http://127.0.0.1:$port/metrics" >metrics.txt || true
kill -INT "$pid" 2>/dev/null || true
wait "$pid" || true
check "the source's records: velo_connector_records_in_total = 25" \
  grep -q '^velo_connector_records_in_total{connector="redis",source="o"} 25$' metrics.txt
check "and its bytes" \
  grep -q '^velo_connector_bytes_in_total{connector="redis",source="o"} [1-9]' metrics.txt

# metrics_port LOG: the port a run prints.
metrics_port() {
  sed -n 's|.*metrics on http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' "$1" | head -1
}
# A server restart (without persistence: the group is made again) under a
# running source: one outage, one reconnection, and it reads on.
rcli XADD s '*' data '{"id":1}' >/dev/null
"$VELO_BIN" run "${P[@]}" --metrics-port 0 --format csv -e "SELECT id FROM s
  WITH ('s.type'='redis_source', 's.url'='$REDIS_URL/s')" >s.csv 2>s.log &
pid=$!
VPIDS+=("$pid")
wait_for "the first entry" 20 grep -qx 1 s.csv
port="$(metrics_port s.log)"
curl -s "http://127.0.0.1:$port/metrics" >before.txt || true
redis_restart
wait_for "the source reconnects" 20 grep -q "reconnected to" s.log
rcli XADD s '*' data '{"id":2}' >/dev/null
wait_for "an entry added after the restart" 20 grep -qx 2 s.csv
curl -s "http://127.0.0.1:$port/metrics" >after.txt || true
kill -INT "$pid" 2>/dev/null || true
wait "$pid" || true
check "no reconnection or error before the restart" \
  bash -c "! grep -q '^velo_connector_\(reconnects\|errors\)_total{connector=\"redis\",source=\"s\"} [1-9]' before.txt"
check "velo_connector_reconnects_total counts the reconnection" \
  grep -q '^velo_connector_reconnects_total{connector="redis",source="s"} 1$' after.txt
check "velo_connector_errors_total counts the lost connection" \
  grep -q '^velo_connector_errors_total{connector="redis",source="s"} 1$' after.txt
check "and records_in goes on (2)" \
  grep -q '^velo_connector_records_in_total{connector="redis",source="s"} 2$' after.txt
finish
