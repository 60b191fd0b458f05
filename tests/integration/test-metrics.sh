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
  '{"symbol":"GOOG","price":5,"qty":50}' | tee "$SCRATCH/in1.jsonl" >&7
IN_BYTES="$(wc -c <"$SCRATCH/in1.jsonl")"

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
check "engine: operator rows, the source's Tee shared by both statements" \
  grep -qx 'velo_operator_rows_out_total{query="trades",statement="shared",op_id="0",operator="Tee"} 4' "$S"
check "engine: an operator labelled with its statement" \
  grep -Eq '^velo_operator_rows_in_total\{query="trades",statement="priced",op_id="[0-9]+",operator="Project"\} 4$' "$S"
check "engine: rows out" grep -qx 'velo_job_records_out_total{query="trades"} 8' "$S"
check "engine: bytes per source" \
  grep -qx "velo_source_bytes_total{query=\"trades\",source=\"trades\"} $IN_BYTES" "$S"
check "engine: nothing dead-lettered" grep -qx 'velo_job_dead_lettered_total{query="trades"} 0' "$S"
check "engine: no watermark without event time (NaN)" \
  grep -qx 'velo_job_watermark_delay_seconds{query="trades"} NaN' "$S"
check "engine: batch latency histogram" \
  grep -qx '# TYPE velo_job_batch_latency_seconds histogram' "$S"
lat_count="$(sed -n 's/^velo_job_batch_latency_seconds_count{query="trades"} //p' "$S")"
lat_inf="$(sed -n 's/^velo_job_batch_latency_seconds_bucket{query="trades",le="+Inf"} //p' "$S")"
check "engine: batches observed ($lat_count), +Inf bucket = count" \
  test -n "$lat_count" -a "${lat_count:-0}" -ge 1 -a "$lat_inf" = "$lat_count"
check "engine: checkpoint age" \
  grep -Eq '^velo_job_last_checkpoint_age_seconds\{query="trades"\} [0-9.e+-]+$' "$S"
check "engine: job state gauge" grep -qx 'velo_job_state_rows{query="trades"} 0' "$S"
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

# metrics_port ERRFILE: waits for the port `velo run` printed
metrics_port() {
  local p=""
  for _ in $(seq 1 200); do
    p="$(sed -n 's/.*http:\/\/127\.0\.0\.1:\([0-9][0-9]*\)\/metrics.*/\1/p' "$1" | head -1)"
    [[ -n "$p" ]] && break
    sleep 0.05
  done
  echo "$p"
}
# scrape_until PORT LINE: scrapes into $S until it holds LINE (10 s)
scrape_until() {
  for _ in $(seq 1 200); do
    curl -sf "http://127.0.0.1:$1/metrics" >"$S" || true
    grep -qx "$2" "$S" && return 0
    sleep 0.05
  done
  return 1
}

# ---- label cardinality cap ------------------------------------------------
# Five symbols under a cap of two label sets: two series per labelled
# metric, three updates dropped and counted, the rest undisturbed.
"$VELO_BIN" run "$Q" --metrics-port 0 --metrics-series-cap 2 --no-progress \
  <"$SCRATCH/in.fifo" >"$SCRATCH/cap.out" 2>"$SCRATCH/cap.err" &
RUN_PID=$!
exec 7>"$SCRATCH/in.fifo"
for sym in A B C D E; do
  printf '{"symbol":"%s","price":1,"qty":1}\n' "$sym" >&7
done
MPORT="$(metrics_port "$SCRATCH/cap.err")"
scrape_until "$MPORT" 'velo_job_records_in_total{query="trades"} 5' || true
check "cap: two series kept" test "$(grep -c '^trades_total{' "$S")" -eq 2
check "cap: the first two label sets" grep -qx 'trades_total{symbol="B"} 1' "$S"
check "cap: dropped updates counted per family" \
  grep -qx 'velo_metrics_dropped_series_total{family="trades_total"} 3' "$S"
check "cap: the gauge capped the same way" \
  grep -qx 'velo_metrics_dropped_series_total{family="last_price"} 3' "$S"
check "cap: the unlabelled histogram unaffected" \
  grep -qx 'velo_metrics_dropped_series_total{family="big_qty"} 0' "$S"
check "cap: promtool still accepts the scrape" bash -c "promtool check metrics <'$S'"
exec 7>&-
st=0; wait "$RUN_PID" || st=$?
check "cap: run ends cleanly" test "$st" -eq 0

# ---- checkpoints ------------------------------------------------------------
"$VELO_BIN" run "$Q" --metrics-port 0 --no-progress \
  --state-dir "$SCRATCH/state" --checkpoint-interval 200ms \
  <"$SCRATCH/in.fifo" >"$SCRATCH/ck.out" 2>"$SCRATCH/ck.err" &
RUN_PID=$!
exec 7>"$SCRATCH/in.fifo"
printf '%s\n' '{"symbol":"AAPL","price":1,"qty":1}' >&7
MPORT="$(metrics_port "$SCRATCH/ck.err")"
ck=""
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$MPORT/metrics" >"$S" || true
  ck="$(sed -n 's/^velo_job_checkpoints_total{query="trades"} //p' "$S")"
  [[ -n "$ck" && "$ck" -ge 2 ]] && break
  sleep 0.1
done
check "checkpoints: counted while running ($ck)" test -n "$ck" -a "${ck:-0}" -ge 2
age="$(sed -n 's/^velo_job_last_checkpoint_age_seconds{query="trades"} //p' "$S")"
check "checkpoints: age below a few intervals ($age s)" \
  python3 -c "import sys; sys.exit(not (0 <= float('$age' or 'nan') < 5))"
dur="$(sed -n 's/^velo_job_checkpoint_duration_seconds{query="trades"} //p' "$S")"
check "checkpoints: last duration measured ($dur s)" \
  python3 -c "import sys; sys.exit(not (0 <= float('$dur' or 'nan') < 5))"
size="$(sed -n 's/^velo_job_checkpoint_size_bytes{query="trades"} //p' "$S")"
real="$(stat -c %s "$SCRATCH/state/checkpoint" 2>/dev/null || echo missing)"
check "checkpoints: size of the last one ($size bytes; the file has $real)" \
  python3 -c "import sys; sys.exit(not (float('$size' or 'nan') > 0))"
exec 7>&-
st=0; wait "$RUN_PID" || st=$?
check "checkpoints: run ends cleanly" test "$st" -eq 0

# ---- event time: watermark gauges ---------------------------------------
cat >"$SCRATCH/ev.sql" <<'SQL'
CREATE STREAM ev (id BIGINT, ts TIMESTAMP)
WITH ('ev.type'='stdin_source', 'ev.format'='json',
      'ev.event.time.field'='ts');
SELECT id FROM ev;
SQL
"$VELO_BIN" run "$SCRATCH/ev.sql" --metrics-port 0 --no-progress \
  <"$SCRATCH/in.fifo" >"$SCRATCH/ev.out" 2>"$SCRATCH/ev.err" &
RUN_PID=$!
exec 7>"$SCRATCH/in.fifo"
printf '%s\n' '{"id":1,"ts":"2024-01-01T00:00:10Z"}' \
  '{"id":2,"ts":"2024-01-01T00:00:40Z"}' \
  '{"id":3,"ts":"2024-01-01T00:00:20Z"}' >&7
MPORT="$(metrics_port "$SCRATCH/ev.err")"
scrape_until "$MPORT" 'velo_job_records_in_total{query="ev"} 3' || true
# The engine keeps event time inside each statement's operators; the job
# reports a watermark once it tracks one. Until then the gauges are NaN
# (never a wrong number); once it does, they must agree with the input:
# 2024-01-01T00:00:40Z is 1704067240 (date -u -d 2024-01-01T00:00:40Z +%s).
for g in velo_job_watermark_seconds velo_job_watermark_delay_seconds \
         velo_job_max_event_time_seconds velo_source_watermark_delay_seconds; do
  check "event time: $g is a gauge" grep -qx "# TYPE $g gauge" "$S"
done
maxev="$(sed -n 's/^velo_job_max_event_time_seconds{query="ev"} //p' "$S")"
wm="$(sed -n 's/^velo_job_watermark_seconds{query="ev"} //p' "$S")"
delay="$(sed -n 's/^velo_job_watermark_delay_seconds{query="ev"} //p' "$S")"
now="$(date +%s)"
if [[ "$wm" == NaN ]]; then
  echo "note: the job reports no watermark yet; checking that it says so"
  check "event time: no watermark, no delay" test "$delay" = NaN
else
  check "event time: highest seen ($maxev)" test "$maxev" = 1704067240
  check "event time: a watermark within the events seen ($wm)" \
    python3 -c "import sys; w = float('$wm'); sys.exit(not (1704067200 <= w <= 1704067240))"
  check "event time: delay = now - watermark ($delay)" \
    python3 -c "import sys; sys.exit(not (abs(float('$delay') - ($now - float('$wm'))) < 30))"
fi
exec 7>&-
st=0; wait "$RUN_PID" || st=$?
check "event time: run ends cleanly" test "$st" -eq 0

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
check "dashboard: batch latency quantiles" \
  grep -qF 'histogram_quantile(0.99, sum by (query, le) (rate(velo_job_batch_latency_seconds_bucket[$__rate_interval])))' "$D"
check "dashboard: operators by statement" \
  grep -qF '"legendFormat": "{{statement}}: {{operator}} #{{op_id}}"' "$D"
# Every engine metric a panel queries is one the job really exposes (the
# last scrape above, of a running job).
missing=""
for n in $(grep -o 'velo_[a-z_]*' "$D" | sed 's/_bucket$//' | sort -u); do
  grep -qx "# TYPE $n [a-z]*" "$S" || missing="$missing $n"
done
check "dashboard: every engine metric queried is exposed (missing:${missing:- none})" \
  test -z "$missing"
check "dashboard: legend from the labels" grep -qF '"legendFormat": "{{symbol}}"' "$D"

finish
