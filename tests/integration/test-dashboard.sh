#!/usr/bin/env bash
# `velo run --dashboard`: the live page served by the running job, loaded
# in a real headless Chromium (Debian's `chromium`). The job reads a FIFO
# kept open; the DOM Chromium dumps after running the page's script must
# hold what only the script can put there from /api/job: the records
# counter, one table row per operator, the last output rows, a chart per
# @metric. Then more input arrives and a second load shows the new
# values: the page follows the running job.
source "$(dirname "$0")/lib.sh"

CHROMIUM="$(command -v chromium || command -v chromium-browser || true)"

RUN_PID=""
dash_cleanup() {
  local st=$?
  if [[ $st -ne 0 && -f "$SCRATCH/run.err" ]]; then
    echo "--- exit $st; velo run stderr ---"; tail -n 30 "$SCRATCH/run.err"
  fi
  exec 7>&- 2>/dev/null || true
  if [[ -n "$RUN_PID" ]] && kill -0 "$RUN_PID" 2>/dev/null; then
    kill -KILL "$RUN_PID" 2>/dev/null || true
  fi
  cleanup
}
trap dash_cleanup EXIT

cd "$SCRATCH"
Q="$SCRATCH/trades.sql"
cat >"$Q" <<'EOF'
CREATE STREAM trades (symbol STRING, price DOUBLE, qty BIGINT)
WITH ('trades.type'='stdin_source', 'trades.format'='json');

-- @metric: trades_total
-- @metric_help: "Trades seen, by symbol"
-- @metric_labels: symbol
SELECT symbol, price, qty FROM trades;

-- @metric: big_trade_qty
-- @metric_type: gauge
-- @metric_field: qty
CREATE STREAM big AS SELECT symbol, qty * 2 AS double_qty, qty FROM trades
WHERE qty >= 100
WITH ('big.type'='file_sink', 'big.path'='big.jsonl', 'big.format'='json');
EOF

mkfifo "$SCRATCH/in.fifo"
"$VELO_BIN" run "$Q" --dashboard --no-progress <"$SCRATCH/in.fifo" \
  >"$SCRATCH/run.out" 2>"$SCRATCH/run.err" &
RUN_PID=$!
exec 7>"$SCRATCH/in.fifo"
printf '%s\n' \
  '{"symbol":"AAPL","price":10.5,"qty":100}' \
  '{"symbol":"MSFT","price":20,"qty":5}' \
  '{"symbol":"AAPL","price":11,"qty":300}' \
  '{"symbol":"GOOG","price":5,"qty":50}' >&7

URL=""
for _ in $(seq 1 200); do
  URL="$(sed -n 's/.*dashboard on \(http:\/\/127\.0\.0\.1:[0-9]*\/dashboard\).*/\1/p' "$SCRATCH/run.err" | head -1)"
  [[ -n "$URL" ]] && break
  sleep 0.05
done
check "run prints the dashboard URL" test -n "$URL"
BASE="${URL%/dashboard}"

# /api/job: wait until the four records went through.
for _ in $(seq 1 200); do
  curl -sf "$BASE/api/job" >"$SCRATCH/job.json" 2>/dev/null || true
  [[ "$(jq -r '.stats.records_in' "$SCRATCH/job.json" 2>/dev/null)" == 4 ]] && break
  sleep 0.05
done
J="$SCRATCH/job.json"
jqc() { jq -e "$1" "$J" >/dev/null 2>&1; }
check "api: records in" jqc '.stats.records_in == 4'
check "api: rows out (4 selected + 2 big)" jqc '.stats.records_out == 6'
check "api: the query's name and state" jqc '.query == "trades" and .state == "running"'
check "api: both statements, named" \
  jqc '[.statements[].name] == ["select-1", "big"]'
check "api: last output rows of the SELECT, oldest first" \
  jqc '[.statements[0].rows[].values[0]] == ["AAPL","MSFT","AAPL","GOOG"]'
check "api: output columns with their kinds" \
  jqc '.statements[1].columns == [{"name":"symbol","numeric":false,"time":false},{"name":"double_qty","numeric":true,"time":false},{"name":"qty","numeric":true,"time":false}]'
check "api: computed output values" \
  jqc '[.statements[1].rows[].values[1]] == [200, 600]'
check "api: the filter operator counted 4 in, 2 out" \
  jqc '[.operators[] | select(.name == "Filter")][0] | .rows_in == 4 and .rows_out == 2'
check "api: every operator has its statement" \
  jqc '[.operators[].statement] | all(. == "select-1" or . == "big" or . == "shared")'
check "api: @metric values by label" \
  jqc '.metrics[0] | .name == "trades_total" and .labels == ["symbol"] and ([.series[] | select(.labels == ["AAPL"]) | .value] == [2])'
check "api: gauge follows the last row" \
  jqc '.metrics[1] | .name == "big_trade_qty" and .series[0].value == 300'
check "api: sources" jqc '.sources | length == 1'
NOPS="$(jq '.operators | length' "$J")"
check "the page is HTML" \
  bash -c "curl -sfI '$URL' | grep -qi '^content-type: text/html'"
check "the page is self-contained (no external scripts or styles)" \
  bash -c "! curl -sf '$URL' | grep -Eq '<script[^>]+src=|<link[^>]+href=\"?https?:'"
check "/ redirects to the dashboard" \
  bash -c "test \"\$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' '$BASE/')\" = '302 $BASE/dashboard'"
check "/metrics still served" \
  bash -c "curl -sf '$BASE/metrics' | grep -q '^velo_job_records_in_total{query=\"trades\"} 4$'"

if [[ -z "$CHROMIUM" ]]; then
  echo "SKIP: chromium is missing (bash packaging/install-deps.sh --test); the browser checks did not run"
  exec 7>&-
  kill -INT "$RUN_PID" 2>/dev/null || true
  wait "$RUN_PID" || true
  RUN_PID=""
  finish
  exit $?
fi

# render FILE: the DOM after the page's script ran for 5 s of virtual time
render() {
  timeout 90 "$CHROMIUM" --headless=new --no-sandbox --disable-gpu \
    --disable-dev-shm-usage --no-first-run --disable-extensions \
    --user-data-dir="$SCRATCH/chromium" --virtual-time-budget=5000 \
    --dump-dom "$URL" >"$1" 2>"$SCRATCH/chromium.log"
}
check "chromium renders the page" render "$SCRATCH/dom1.html"
D="$SCRATCH/dom1.html"
count() { grep -o "$1" "$2" | wc -l; }
check "JS ran: connected to the job" grep -q '<span id="status" class="live">live</span>' "$D"
check "JS ran: records in filled from the job (4)" grep -q '<div class="v" id="records-in">4</div>' "$D"
check "JS ran: rows out (6)" grep -q '<div class="v" id="records-out">6</div>' "$D"
check "one table row per operator ($NOPS)" test "$(count 'class="op-row"' "$D")" -eq "$NOPS"
check "an operator row shows Filter with 4 in, 2 out" \
  grep -q '<td class="">Filter</td><td class="n">4</td><td class="n">2</td>' "$D"
check "live output rows (4 + 2)" test "$(count 'class="out-row"' "$D")" -eq 6
check "an output row with its values" \
  grep -q '<tr class="out-row"><td class="">GOOG</td><td class="n">5</td><td class="n">50</td></tr>' "$D"
check "a chart chosen for the output: bars of double_qty by symbol" \
  grep -q 'data-chart="bars:double_qty by symbol"' "$D"
check "a panel per @metric" test "$(count 'class="panel metric"' "$D")" -eq 2
check "a sparkline drawn for trades_total" \
  grep -Eq 'id="metric-trades_total".*<svg class="metric-spark"[^>]*><polyline points="[0-9.]+,[0-9.]+' "$D"
check "metric series values shown" \
  grep -q '<td>symbol=AAPL</td><td class="n metric-value">2</td>' "$D"

# More input: a second load shows the new counts.
printf '%s\n' '{"symbol":"IBM","price":100,"qty":1000}' >&7
for _ in $(seq 1 200); do
  [[ "$(curl -sf "$BASE/api/job" | jq -r '.stats.records_in' 2>/dev/null)" == 5 ]] && break
  sleep 0.05
done
check "chromium renders the page again" render "$SCRATCH/dom2.html"
check "the page follows the job: records in 5" \
  grep -q '<div class="v" id="records-in">5</div>' "$SCRATCH/dom2.html"
check "the new row is shown" grep -q '<td class="">IBM</td>' "$SCRATCH/dom2.html"

# The input ends: the job finishes but the page stays up with the final
# state until Ctrl-C.
exec 7>&-
ended=0
for _ in $(seq 1 200); do
  grep -q 'input ended; the dashboard stays up until Ctrl-C' "$SCRATCH/run.err" && { ended=1; break; }
  sleep 0.05
done
check "run says the dashboard stays up after the input ended" test "$ended" -eq 1
curl -sf "$BASE/api/job" >"$J" || true
check "api: the job is finished, final counts kept" \
  jqc '.state == "finished" and .stats.records_in == 5 and .statements[1].rows_total == 3'
check "chromium renders the finished job" render "$SCRATCH/dom3.html"
check "the page says finished" \
  grep -q '<span id="status" class="ended">finished</span>' "$SCRATCH/dom3.html"
kill -INT "$RUN_PID"
st=0; wait "$RUN_PID" || st=$?
RUN_PID=""
check "Ctrl-C then ends the run cleanly" test "$st" -eq 0

if [[ $FAILS -gt 0 ]]; then
  echo "--- velo run stderr ---"; tail -n 20 "$SCRATCH/run.err"
  echo "--- chromium ---"; tail -n 20 "$SCRATCH/chromium.log" 2>/dev/null || true
fi
finish
