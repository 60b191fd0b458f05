#!/usr/bin/env bash
# A real Prometheus scraping a running job: Debian's `prometheus` server on
# a free loopback port, configured to scrape `velo run --metrics-port`
# every second and to load the rules `velo rules` wrote. The job reads a
# FIFO kept open (an endless input) fed a few records at a time. Then
# Prometheus's HTTP API is asked for an @metric series and an engine
# metric (values checked), whether the alert rule is loaded, and whether
# it fires once its condition has held for its `for` duration.
source "$(dirname "$0")/lib.sh"

PROM="$(command -v prometheus || true)"
if [[ -z "$PROM" ]]; then
  echo "SKIP: the prometheus server binary is missing (apt-get install prometheus)"
  exit 0
fi

RUN_PID=""
PROM_PID=""
prom_cleanup() {
  local st=$?
  if [[ $st -ne 0 && -f "$SCRATCH/run.err" ]]; then
    echo "--- exit $st; velo run stderr ---"; tail -n 30 "$SCRATCH/run.err"
  fi
  exec 7>&- 2>/dev/null || true
  for p in "$PROM_PID" "$RUN_PID"; do
    if [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null; then
      kill -TERM "$p" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
      kill -KILL "$p" 2>/dev/null || true
    fi
  done
  cleanup
}
trap prom_cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cd "$SCRATCH"
Q="$SCRATCH/orders.sql"
cat >"$Q" <<'EOF'
CREATE STREAM orders (region STRING, amount DOUBLE)
WITH ('orders.type'='stdin_source', 'orders.format'='json');

-- @metric: orders_total
-- @metric_help: "Orders seen, by region"
-- @metric_labels: region
-- @metric: order_amount
-- @metric_type: histogram
-- @metric_field: amount
-- @metric_buckets: 10, 100, 1000
-- @alert: sum(orders_total) > 3
-- @alert_name: ManyOrders
-- @alert_for: 2s
-- @alert_severity: warning
-- @alert_summary: "{{ $value }} orders"
SELECT region, amount FROM orders;
EOF

check "velo rules writes the alerting rules" \
  "$VELO_BIN" rules "$Q" --output "$SCRATCH/rules.yml"

mkfifo "$SCRATCH/in.fifo"
"$VELO_BIN" run "$Q" --metrics-port 0 --no-progress <"$SCRATCH/in.fifo" \
  >"$SCRATCH/run.out" 2>"$SCRATCH/run.err" &
RUN_PID=$!
exec 7>"$SCRATCH/in.fifo"
printf '%s\n' '{"region":"eu","amount":12.5}' '{"region":"us","amount":250}' >&7

MPORT=""
for _ in $(seq 1 200); do
  MPORT="$(sed -n 's/.*http:\/\/127\.0\.0\.1:\([0-9][0-9]*\)\/metrics.*/\1/p' "$SCRATCH/run.err" | head -1)"
  [[ -n "$MPORT" ]] && break
  sleep 0.05
done
check "the job serves metrics" test -n "$MPORT"

PPORT="$(free_port)"
cat >"$SCRATCH/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - "$SCRATCH/rules.yml"
scrape_configs:
  - job_name: velo
    static_configs:
      - targets: ["127.0.0.1:$MPORT"]
EOF
check "promtool accepts the Prometheus config" \
  promtool check config "$SCRATCH/prometheus.yml"

"$PROM" --config.file="$SCRATCH/prometheus.yml" \
  --storage.tsdb.path="$SCRATCH/tsdb" \
  --web.listen-address="127.0.0.1:$PPORT" \
  >"$SCRATCH/prometheus.log" 2>&1 &
PROM_PID=$!
API="http://127.0.0.1:$PPORT"
ready=0
for _ in $(seq 1 300); do
  if curl -sf "$API/-/ready" >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$PROM_PID" 2>/dev/null || break
  sleep 0.1
done
check "prometheus starts" test "$ready" -eq 1
if [[ "$ready" -ne 1 ]]; then
  tail -n 30 "$SCRATCH/prometheus.log"
  finish
  exit 1
fi

# query EXPR: prints the first result's value ("" when no result)
query() {
  curl -sf -G "$API/api/v1/query" --data-urlencode "query=$1" |
    jq -r 'if .status == "success" and (.data.result | length) > 0
           then .data.result[0].value[1] else "" end' 2>/dev/null || true
}
# jq_ok FILTER JSON: the filter holds for the document
jq_ok() { jq -e "$1" <<<"$2" >/dev/null 2>&1; }
# wait_value EXPR WANT: polls until the query answers WANT (15 s)
wait_value() {
  local got=""
  for _ in $(seq 1 150); do
    got="$(query "$1")"
    [[ "$got" == "$2" ]] && return 0
    sleep 0.1
  done
  echo "  $1 = '$got', expected '$2'"
  return 1
}

check "the scrape target is up" wait_value 'up{job="velo"}' 1
check "@metric series scraped: orders_total{region=\"eu\"} = 1" \
  wait_value 'orders_total{job="velo",region="eu"}' 1
check "engine metric scraped: velo_job_records_in_total = 2" \
  wait_value 'velo_job_records_in_total{job="velo",query="orders"}' 2
check "operator metric scraped with its statement label" \
  wait_value 'velo_operator_rows_in_total{job="velo",statement="select-1",operator="Project"}' 2
check "histogram scraped: order_amount_bucket{le=\"100\"} = 1" \
  wait_value 'order_amount_bucket{job="velo",le="100"}' 1

rules="$(curl -sf "$API/api/v1/rules" || true)"
check "the alert rule is loaded" \
  jq_ok '.data.groups[].rules[] | select(.name == "ManyOrders" and .type == "alerting")' "$rules"
check "the rule is healthy and keeps its for duration" \
  jq_ok '.data.groups[].rules[] | select(.name == "ManyOrders") | select(.health != "err" and .duration == 2)' "$rules"
alerts="$(curl -sf "$API/api/v1/alerts" || true)"
check "no alert while the condition does not hold (2 orders)" \
  jq_ok '[.data.alerts[] | select(.labels.alertname == "ManyOrders")] | length == 0' "$alerts"

# Two more orders: sum(orders_total) = 4 > 3. The alert goes pending,
# then firing once the condition held for 2 s.
printf '%s\n' '{"region":"eu","amount":5}' '{"region":"ap","amount":2000}' >&7
check "the counter moves: sum(orders_total) = 4" wait_value 'sum(orders_total{job="velo"})' 4
state=""
for _ in $(seq 1 200); do
  state="$(curl -sf "$API/api/v1/alerts" |
    jq -r '[.data.alerts[] | select(.labels.alertname == "ManyOrders") | .state][0] // ""' 2>/dev/null || true)"
  [[ "$state" == "firing" ]] && break
  sleep 0.1
done
check "the alert fires (state '$state')" test "$state" = firing
fired="$(curl -sf "$API/api/v1/alerts" || true)"
check "the firing alert carries its severity and summary" \
  jq_ok '.data.alerts[] | select(.labels.alertname == "ManyOrders" and .labels.severity == "warning" and .annotations.summary == "4 orders")' "$fired"

# Stop: Prometheus first, then end the input (the job exits cleanly).
kill -TERM "$PROM_PID"
st=0; wait "$PROM_PID" || st=$?
PROM_PID=""
check "prometheus stops cleanly" test "$st" -eq 0
exec 7>&-
st=0; wait "$RUN_PID" || st=$?
RUN_PID=""
check "the job ends cleanly when its input closes" test "$st" -eq 0

if [[ $FAILS -gt 0 ]]; then
  echo "--- velo run stderr ---"; tail -n 20 "$SCRATCH/run.err"
  echo "--- prometheus log ---"; tail -n 20 "$SCRATCH/prometheus.log"
fi
finish
