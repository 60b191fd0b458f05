#!/usr/bin/env bash
# A connector's own metrics reach `velo run --metrics-port`: the Redis
# stream source counts the records and bytes it read, labelled with the
# connector and the source's name.
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
finish
