#!/usr/bin/env bash
# Observability end to end: `velo run --metrics-port` on an annotated query
# reading a FIFO kept open (an endless input), /metrics scraped with curl
# and checked by value and by Debian's promtool; `velo rules` checked by
# promtool check rules; `velo dashboard` checked for its panels and
# queries; annotation errors through `velo validate`.
source "$(dirname "$0")/lib.sh"

command -v promtool >/dev/null || { echo "promtool missing (apt-get install prometheus)"; exit 1; }

Q="$SCRATCH/trades.sql"
cat >"$Q" <<'EOF'
CREATE STREAM trades (symbol STRING, price DOUBLE, qty BIGINT)
WITH ('trades.type'='stdin_source', 'trades.format'='json');

-- @metric: trades_total
-- @metric_help: "Trades seen, by symbol"
-- @metric_labels: symbol
-- @alert: sum(rate(trades_total[5m])) > 100
-- @alert_name: HighTradeRate
-- @alert_for: 5m
-- @alert_severity: critical
-- @alert_summary: "Trade rate is {{ $value }} per second"
SELECT symbol, price, qty FROM trades;

-- @metric: big_qty
-- @metric_type: histogram
-- @metric_field: qty
-- @metric_buckets: 10, 100, 1000
-- @metric_condition: qty >= 50 AND symbol <> 'GOOG'
-- @metric: last_price
-- @metric_type: gauge
-- @metric_field: price
-- @metric_labels: symbol
CREATE STREAM priced AS SELECT symbol, price, qty FROM trades
WITH ('priced.type'='file_sink', 'priced.path'='priced.jsonl',
      'priced.format'='json');
EOF

# ---- validate -----------------------------------------------------------
cd "$SCRATCH"
# validate opens stdin as a run would: give it a record to look at.
ONE='{"symbol":"AAPL","price":1,"qty":1}'
check "validate accepts the annotated query" \
  bash -c "echo '$ONE' | \"$VELO_BIN\" validate '$Q' >/dev/null 2>&1"

cat >"$SCRATCH/bad.sql" <<'EOF'
CREATE STREAM trades (symbol STRING, qty BIGINT)
WITH ('trades.type'='stdin_source', 'trades.format'='json');
-- @metric: t
-- @metric_labels: symbl
-- @metric_conditon: qty > 1
SELECT symbol, qty FROM trades;
EOF
st=0; echo "$ONE" | "$VELO_BIN" validate "$SCRATCH/bad.sql" >"$SCRATCH/bad.out" 2>&1 || st=$?
check "validate fails on bad annotations" test "$st" -eq 1
check "label not an output column: V7008 at line 4, column 20" \
  grep -q "bad.sql:4:20: error V7008: label 'symbl' is not an output column" "$SCRATCH/bad.out"
check "unknown key: V7003 with a did-you-mean" \
  grep -q "did you mean '@metric_condition'" "$SCRATCH/bad.out"
st=0; echo "$ONE" | "$VELO_BIN" run "$SCRATCH/bad.sql" >"$SCRATCH/bad-run.out" 2>&1 || st=$?
check "run refuses a query with annotation errors" test "$st" -eq 1
check "run says why" grep -q "error V7008" "$SCRATCH/bad-run.out"

# ---- run with --metrics-port over a FIFO kept open ----------------------
mkfifo "$SCRATCH/in.fifo"
"$VELO_BIN" run "$Q" --metrics-port 0 --no-progress <"$SCRATCH/in.fifo" \
  >"$SCRATCH/run.out" 2>"$SCRATCH/run.err" &
RUN_PID=$!
exec 7>"$SCRATCH/in.fifo"
printf '%s\n' \
  '{"symbol":"AAPL","price":10.5,"qty":100}' \
  '{"symbol":"MSFT","price":20,"qty":5}' \
  '{"symbol":"AAPL","price":11,"qty":300}' \
  '{"symbol":"GOOG","price":5,"qty":50}' >&7

MPORT=""
for _ in $(seq 1 200); do
  MPORT="$(sed -n 's/.*http:\/\/127\.0\.0\.1:\([0-9][0-9]*\)\/metrics.*/\1/p' "$SCRATCH/run.err" | head -1)"
  [[ -n "$MPORT" ]] && break
  sleep 0.05
done
check "run prints the metrics URL" test -n "$MPORT"

# Wait until all four rows went through, then scrape once more to check.
for _ in $(seq 1 200); do
  curl -sf "http://127.0.0.1:$MPORT/metrics" >"$SCRATCH/scrape.txt" || true
  grep -q '^velo_job_records_in_total{query="trades"} 4$' "$SCRATCH/scrape.txt" && break
  sleep 0.05
done
S="$SCRATCH/scrape.txt"
check "content type is the Prometheus text format" \
  bash -c "curl -sfI 'http://127.0.0.1:$MPORT/metrics' | grep -qi '^content-type: text/plain; version=0.0.4'"
check "promtool check metrics accepts the scrape" \
  bash -c "promtool check metrics <'$S'"
check "engine: records in" grep -qx 'velo_job_records_in_total{query="trades"} 4' "$S"
check "engine: records per source" grep -qx 'velo_source_records_total{query="trades",source="trades"} 4' "$S"
check "engine: operator rows" grep -q '^velo_operator_rows_out_total{query="trades",op_id="0",operator="Tee"} 4$' "$S"
check "engine: operator state gauge" grep -q '^velo_operator_state_bytes{query="trades"' "$S"
check "counter by label: AAPL 2" grep -qx 'trades_total{symbol="AAPL"} 2' "$S"
check "counter by label: GOOG 1" grep -qx 'trades_total{symbol="GOOG"} 1' "$S"
check "counter help from @metric_help" grep -qx '# HELP trades_total Trades seen, by symbol' "$S"
check "gauge: last price of AAPL" grep -qx 'last_price{symbol="AAPL"} 11' "$S"
check "histogram with condition: count 2" grep -qx 'big_qty_count 2' "$S"
check "histogram with condition: sum 400" grep -qx 'big_qty_sum 400' "$S"
check "histogram buckets" grep -qx 'big_qty_bucket{le="100"} 1' "$S"
check "404 off /metrics" \
  bash -c "test \"\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$MPORT/other)\" = 404"

# More input: the values move.
printf '%s\n' '{"symbol":"AAPL","price":12,"qty":7}' >&7
for _ in $(seq 1 200); do
  curl -sf "http://127.0.0.1:$MPORT/metrics" >"$S" || true
  grep -qx 'trades_total{symbol="AAPL"} 3' "$S" && break
  sleep 0.05
done
check "counter grows with new rows" grep -qx 'trades_total{symbol="AAPL"} 3' "$S"
check "gauge follows the last row" grep -qx 'last_price{symbol="AAPL"} 12' "$S"

exec 7>&-
st=0; wait "$RUN_PID" || st=$?
check "run ends cleanly when the FIFO closes" test "$st" -eq 0

# ---- rules ----------------------------------------------------------------
check "velo rules writes a file" "$VELO_BIN" rules "$Q" --output "$SCRATCH/rules.yml"
check "promtool check rules accepts it" promtool check rules "$SCRATCH/rules.yml"
check "rule named by @alert_name" grep -q 'alert: "HighTradeRate"' "$SCRATCH/rules.yml"
check "rule expression" grep -qF 'expr: "sum(rate(trades_total[5m])) > 100"' "$SCRATCH/rules.yml"
check "rule for" grep -qx '        for: 5m' "$SCRATCH/rules.yml"
check "rule severity" grep -qx '          severity: "critical"' "$SCRATCH/rules.yml"

# ---- dashboard ------------------------------------------------------------
D="$SCRATCH/dash.json"
check "velo dashboard writes a file" "$VELO_BIN" dashboard "$Q" -o "$D"
check "dashboard: counter as a rate by its labels" \
  grep -qF '"expr": "sum by (symbol) (rate(trades_total[$__rate_interval]))"' "$D"
check "dashboard: histogram heatmap" grep -qF '"type": "heatmap"' "$D"
check "dashboard: histogram quantiles" \
  grep -qF '"expr": "histogram_quantile(0.95, sum by (le) (rate(big_qty_bucket[$__rate_interval])))"' "$D"
check "dashboard: gauge by label" grep -qF '"expr": "max by (symbol) (last_price)"' "$D"
check "dashboard: engine panels" grep -qF 'velo_job_records_in_total' "$D"
check "dashboard: legend from the labels" grep -qF '"legendFormat": "{{symbol}}"' "$D"

finish
