#!/usr/bin/env bash
# Event time on unbounded input: the watermark moves results out while the
# input is still open. Rows are written into a FIFO in steps; what velo has
# written is checked between steps, before the input ends.
#  - OVER ordered by event time releases rows as the watermark passes them;
#  - a windowed aggregation closes windows as the watermark passes them;
#  - a LEFT interval join emits an unmatched row once it can no longer
#    match, after the other, silent, input went idle
#    ('<src>.watermark.idle_timeout').
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SCRATCH"
PIDS=()
stream_cleanup() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  cleanup
}
trap stream_cleanup EXIT

# waits until FILE has exactly N lines (up to 10 s)
lines_become() {
  local f="$1" n="$2"
  for _ in $(seq 1 100); do
    [[ -f "$f" && "$(wc -l <"$f")" -eq "$n" ]] && return 0
    sleep 0.1
  done
  return 1
}

SCHEMA="'s.format'='csv', 's.csv.header'='false', 's.schema'='ts TIMESTAMP, k STRING, v BIGINT', 's.event.time.field'='ts'"

# OVER, allowing 1 s of disorder: a row waits until the watermark (the
# highest time - 1 s) passes it.
mkfifo over.fifo
"$VELO_BIN" run --format csv --no-progress -e "SELECT k, v,
  ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts) AS n,
  SUM(v) OVER (PARTITION BY k ORDER BY ts) AS run
  FROM stdin AS s WITH ($SCHEMA, 's.watermark.max_out_of_orderness'='1s')" \
  <over.fifo >over.csv 2>over.err &
PIDS+=($!)
exec 3>over.fifo
printf '2026-01-01T10:00:00Z,a,1\n2026-01-01T10:00:01Z,a,2\n2026-01-01T10:00:02Z,b,3\n' >&3
check "OVER: the row behind the watermark comes out while the input is open" \
  lines_become over.csv 2
check "OVER: ... numbered and summed" test "$(tail -n 1 over.csv)" = "a,1,1,1"
# 01.5 is out of order but within the allowance: it takes its place.
printf '2026-01-01T10:00:01.500Z,a,10\n2026-01-01T10:00:05Z,a,4\n' >&3
check "OVER: the next rows once the watermark passes them" \
  lines_become over.csv 5
check "OVER: ... in event-time order within each key" \
  test "$(tail -n +2 over.csv | sort | tr '\n' ';')" = "a,1,1,1;a,10,3,13;a,2,2,3;b,3,1,3;"
exec 3>&-
wait "${PIDS[0]}"
check "OVER: the last row at the end of input" \
  test "$(tail -n 1 over.csv)" = "a,4,4,17"

# A windowed aggregation on an open input.
mkfifo win.fifo
"$VELO_BIN" run --format csv --no-progress -e "SELECT _window_start AS ws, k,
  SUM(v) AS s FROM stdin AS s WINDOW TUMBLING(INTERVAL '10' SECOND)
  GROUP BY k EMIT FINAL WITH ($SCHEMA)" <win.fifo >win.csv 2>win.err &
PIDS+=($!)
exec 4>win.fifo
printf '2026-01-01T10:00:01Z,a,1\n2026-01-01T10:00:03Z,a,2\n2026-01-01T10:00:12Z,a,5\n' >&4
check "window: closed by the watermark before the input ends" lines_become win.csv 2
check "window: its sum" test "$(tail -n 1 win.csv)" = "2026-01-01T10:00:00.000Z,a,3"
exec 4>&-
wait "${PIDS[1]}"
check "window: the last one at the end" test "$(tail -n 1 win.csv)" = "2026-01-01T10:00:10.000Z,a,5"

# A LEFT interval join whose right input is a watched file with no data.
printf 'ts,k,w\n' >right.csv
mkfifo join.fifo
"$VELO_BIN" run --format csv --no-progress -e "SELECT s.k, s.v, r.w
  FROM stdin AS s LEFT JOIN r WITHIN INTERVAL '5' SECOND ON s.k = r.k
  WITH ($SCHEMA, 'r.type'='file_source', 'r.path'='right.csv',
        'r.watch'='true', 'r.schema'='ts TIMESTAMP, k STRING, w BIGINT',
        'r.event.time.field'='ts', 'r.watermark.idle_timeout'='1s')" \
  <join.fifo >join.csv 2>join.err &
PIDS+=($!)
exec 5>join.fifo
printf '2026-01-01T10:00:00Z,a,1\n' >&5
sleep 0.5
printf '2026-01-01T10:00:10Z,b,2\n' >&5
check "join: the unmatched row comes out once the idle side stops holding the watermark" \
  lines_become join.csv 2
check "join: NULL-padded" test "$(tail -n 1 join.csv)" = "a,1,"
check "join: the idle source is reported" grep -q "source r: idle for 1000 ms" join.err
exec 5>&-
finish
