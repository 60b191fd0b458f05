#!/usr/bin/env bash
# Checkpoints and restart (velo run --state-dir): a stateful statement (a
# windowed GROUP BY into a file sink) and a stateless one (a filter into
# another file sink) over one big CSV, killed with SIGKILL at random
# moments and restarted with the same state dir until it ends. The sinks
# must then hold exactly what one uninterrupted run writes: no row twice,
# none lost. Also: a checkpoint of another query is refused (V8001),
# --reset-state starts over, a damaged checkpoint is refused (V8003)
# without a crash, a finished query does nothing when run again, and
# SIGTERM keeps an open window open for the restart to complete.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

D="$SCRATCH"
ROWS=1500000
# 1000 keys in 1 minute windows: the aggregate holds hundreds of groups at
# any moment, so snapshots carry real state. Rows come up to 3 s out of
# order (the watermark allows 5 s).
awk -v n=$ROWS 'BEGIN { srand(42); print "ts_ms,sym,qty";
  t = 1767225600000;
  for (i = 0; i < n; i++) {
    t += int(rand() * 40);
    printf "%.0f,S%d,%d\n", t - int(rand() * 3000), int(rand() * 1000),
           1 + int(rand() * 100) } }' >"$D/in.csv"

query() { # query QTY_THRESHOLD > file
  cat <<EOF
CREATE STREAM agg AS
SELECT _window_start AS ws, sym, COUNT(*) AS n, SUM(qty) AS total
FROM ev WINDOW TUMBLING(INTERVAL '1' MINUTE) GROUP BY sym EMIT FINAL
WITH ('ev.type' = 'file_source', 'ev.path' = '$D/in.csv',
      'ev.format' = 'csv', 'ev.read.chunk' = '4KiB',
      'ev.event.time.field' = 'ts_ms',
      'ev.event.time.format' = 'epoch_millis',
      'ev.watermark.max_out_of_orderness' = '5s',
      'agg.type' = 'file_sink', 'agg.path' = '$D/agg.jsonl',
      'agg.format' = 'json');
CREATE STREAM big AS SELECT ts_ms, sym, qty FROM ev WHERE qty > $1
WITH ('big.type' = 'file_sink', 'big.path' = '$D/big.csv',
      'big.format' = 'csv');
EOF
}
query 90 >"$D/q.sql"

now_ms() { date +%s%3N; }

# The reference: one uninterrupted run, no state dir.
t0=$(now_ms)
"$VELO_BIN" run "$D/q.sql" --no-progress 2>"$D/ref.err"
T=$(($(now_ms) - t0))
cp "$D/agg.jsonl" "$D/agg.first"
sort "$D/agg.jsonl" >"$D/agg.ref"
cp "$D/big.csv" "$D/big.ref"
# The filter's output checked independently of velo (awk): input order.
{ echo "ts_ms,sym,qty"; awk -F, 'NR > 1 && $3 > 90' "$D/in.csv"; } \
  >"$D/big.awk"
check "the reference filter output matches awk" cmp -s "$D/big.ref" "$D/big.awk"
check "the reference aggregate has rows" test "$(wc -l <"$D/agg.ref")" -gt 10000
# Every row lands in one window: the counts add up to the input (no row
# is late: out of order by 3 s at most, the watermark allows 5 s).
sum=$(sed 's/.*"n":\([0-9]*\).*/\1/' "$D/agg.ref" | awk '{ s += $1 } END { print s }')
check "the reference counts add up to the $ROWS rows" test "$sum" = "$ROWS"

# Checkpoints every ~200 ms; on a fast machine a run is short, so the
# interval shrinks to keep several checkpoints inside one run.
CI=200
if [[ $T -lt 1600 ]]; then CI=$((T / 8)); fi
if [[ $CI -lt 10 ]]; then CI=10; fi
echo "# uninterrupted run: ${T} ms; checkpoint interval ${CI} ms"

rm -f "$D/agg.jsonl" "$D/big.csv"
ST="$D/state"
S=$(stat -c %s "$D/big.ref")
size_of() { stat -c %s "$1" 2>/dev/null || echo 0; }
killed=0
resumed=0
RANDOM=7
# Each run is killed once its filter output has grown by a random 20-70%
# of what is left to write: a moment chosen by progress, not by the
# clock, so the kills land mid-run however fast or loaded the machine is.
# The first kill also waits for that run's first checkpoint, so that
# every later run resumes from one however loaded the machine is.
ck_time() { stat -c %y "$ST/checkpoint" 2>/dev/null || echo none; }
for i in 1 2 3 4 5 6; do
  pre=$(size_of "$D/big.csv")
  target=$((pre + (S - pre) * (20 + RANDOM % 51) / 100))
  ck0=$(ck_time)
  "$VELO_BIN" run "$D/q.sql" --no-progress --state-dir "$ST" \
    --checkpoint-interval "${CI}ms" 2>"$D/run$i.err" &
  pid=$!
  while kill -0 "$pid" 2>/dev/null &&
        { [[ $(size_of "$D/big.csv") -lt $target ]] ||
          { [[ $i == 1 ]] && [[ "$(ck_time)" == "$ck0" ]]; }; }; do
    sleep 0.01
  done
  kill -KILL "$pid" 2>/dev/null && killed=$((killed + 1)) || true
  wait "$pid" 2>/dev/null || true
  if grep -q "resuming from the checkpoint" "$D/run$i.err"; then
    resumed=$((resumed + 1))
  fi
done
"$VELO_BIN" run "$D/q.sql" --no-progress --state-dir "$ST" \
  --checkpoint-interval "${CI}ms" 2>"$D/last.err"
check "the last run completes" test $? = 0
echo "# $killed runs killed mid-run, $resumed resumed from a checkpoint"
check "kills landed mid-run" test "$killed" -ge 4
check "runs resumed from checkpoints" test "$resumed" -ge 3
# Both outputs equal the uninterrupted run's line for line: the filter's
# rows come in input order, and a window's groups in the order their keys
# first came (a snapshot keeps that order).
check "the filter sink equals the uninterrupted run (byte for byte)" \
  cmp -s "$D/big.csv" "$D/big.ref"
check "the aggregate sink equals the uninterrupted run (byte for byte)" \
  cmp -s "$D/agg.jsonl" "$D/agg.first"
sort "$D/agg.jsonl" >"$D/agg.sorted"
check "... and so does its sorted content" cmp -s "$D/agg.sorted" "$D/agg.ref"

# A finished query run again: nothing to do, outputs untouched.
cp "$D/big.csv" "$D/big.before"
"$VELO_BIN" run "$D/q.sql" --no-progress --state-dir "$ST" 2>"$D/again.err"
check "a finished query exits 0 when run again" test $? = 0
check "and says there is nothing to do" grep -q "nothing to do" "$D/again.err"
check "and leaves its outputs as they were" cmp -s "$D/big.csv" "$D/big.before"

# Another query over the same state dir: refused, naming both
# fingerprints and --reset-state.
query 80 >"$D/q2.sql"
st=0
"$VELO_BIN" run "$D/q2.sql" --no-progress --state-dir "$ST" \
  2>"$D/fp.err" || st=$?
check "a changed query is refused" test "$st" = 1
check "with V8001 naming --reset-state" \
  grep -q "V8001.*different query (fingerprint [0-9a-f]*, this query [0-9a-f]*); run with --reset-state" "$D/fp.err"
check "and the old outputs untouched" cmp -s "$D/big.csv" "$D/big.before"

# --reset-state: starts over with the new query.
"$VELO_BIN" run "$D/q2.sql" --no-progress --state-dir "$ST" --reset-state \
  2>"$D/reset.err"
check "--reset-state runs the new query" test $? = 0
{ echo "ts_ms,sym,qty"; awk -F, 'NR > 1 && $3 > 80' "$D/in.csv"; } \
  >"$D/big80.awk"
check "from the beginning of the input" cmp -s "$D/big.csv" "$D/big80.awk"

# A damaged checkpoint: one byte flipped, then cut short, then garbage.
# Each is refused with a clear error, and never a crash (exit 1, not a
# signal).
CK="$ST/checkpoint"
size=$(stat -c %s "$CK")
cp "$CK" "$D/ck.good"
damage_run() { # damage_run NAME: run q2 against the damaged file
  local st=0
  "$VELO_BIN" run "$D/q2.sql" --no-progress --state-dir "$ST" \
    2>"$D/$1.err" || st=$?
  check "$1: refused with exit 1" test "$st" = 1
  check "$1: V8003 says why and how to start over" \
    grep -q "V8003.*checkpoint .* cannot be used" "$D/$1.err"
}
printf '\xff' | dd of="$CK" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
damage_run "flipped byte"
head -c $((size - 7)) "$D/ck.good" >"$CK"
damage_run "truncated"
printf 'VELOCKPT\001\000\000\000garbage' >"$CK"
damage_run "garbage"
: >"$CK"
damage_run "empty"
cp "$D/ck.good" "$CK"
"$VELO_BIN" run "$D/q2.sql" --no-progress --state-dir "$ST" 2>"$D/good.err"
check "the intact checkpoint is accepted again" test $? = 0

# SIGTERM on endless input (a watched file) with a state dir: the open
# window is saved, not emitted early, and the restart completes it with
# the rows appended meanwhile.
mkdir -p "$D/w"
printf 'ts,v\n2026-01-01T00:00:10Z,1\n2026-01-01T00:00:50Z,2\n2026-01-01T00:01:05Z,3\n' \
  >"$D/w/in.csv"
cat >"$D/w/q.sql" <<EOF
CREATE STREAM w AS SELECT _window_start AS ws, COUNT(*) AS n, SUM(v) AS s
FROM src WINDOW TUMBLING(ts, INTERVAL '1' MINUTE) EMIT FINAL
WITH ('src.type' = 'file_source', 'src.path' = '$D/w/in.csv',
      'src.format' = 'csv', 'src.watch' = 'true',
      'src.poll.interval' = '20ms',
      'w.type' = 'file_sink', 'w.path' = '$D/w/w.jsonl', 'w.format' = 'json');
EOF
term_after() { # term_after PATTERN: run, wait for PATTERN in the sink, TERM
  "$VELO_BIN" run "$D/w/q.sql" --no-progress --state-dir "$D/w/st" \
    --checkpoint-interval 50ms 2>>"$D/w/err" &
  local pid=$! st=0
  for _ in $(seq 1 250); do
    grep -q "$1" "$D/w/w.jsonl" 2>/dev/null && break
    sleep 0.02
  done
  sleep 0.1
  kill -TERM "$pid"
  wait "$pid" || st=$?
  return $st
}
st=0
term_after '"n":2,"s":3' || st=$?
check "SIGTERM with a state dir exits 0" test "$st" = 0
check "the open window is not emitted at the stop" \
  test "$(cat "$D/w/w.jsonl")" = '{"ws":"2026-01-01T00:00:00.000Z","n":2,"s":3}'
printf '2026-01-01T00:01:30Z,4\n2026-01-01T00:02:10Z,5\n' >>"$D/w/in.csv"
st=0
term_after '"s":7' || st=$?
check "the restart completes it with the new rows" \
  test "$(cat "$D/w/w.jsonl")" = '{"ws":"2026-01-01T00:00:00.000Z","n":2,"s":3}
{"ws":"2026-01-01T00:01:00.000Z","n":2,"s":7}'

# Flags need a state dir; a bad interval is a usage error.
st=0
"$VELO_BIN" run "$D/q.sql" --reset-state 2>"$D/usage.err" || st=$?
check "--reset-state without --state-dir is a usage error" test "$st" = 2
st=0
"$VELO_BIN" run "$D/q.sql" --state-dir "$ST" --checkpoint-interval soon \
  2>"$D/usage2.err" || st=$?
check "a bad --checkpoint-interval is a usage error" test "$st" = 2

finish
