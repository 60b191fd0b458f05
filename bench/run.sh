#!/usr/bin/env bash
# Nexmark benchmark for `velo run`: generates N bids (deterministic) as CSV
# and JSON Lines, runs each query on one worker thread with results written
# to a file, and prints records/s and peak RSS per query, plus the
# hand-written C baseline for q5 on the same input.
#
#   bash bench/run.sh                 # 5,000,000 records, 3 runs, best kept
#   RECORDS=1000000 RUNS=1 bash bench/run.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RECORDS="${RECORDS:-5000000}"
RUNS="${RUNS:-3}"
QUERIES="${QUERIES:-q0 q1 q2 q5 q7 q5h q7w q8 q11 q18}"
B="$ROOT/build/bench"
DATA="$B/data"

bash packaging/install-deps.sh --bench >/dev/null
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DVELO_TESTS=OFF >/dev/null
cmake --build "$B" -j"$(nproc)" >/dev/null
mkdir -p "$DATA"
# Nexmark's mix: 1 person and 3 auctions per 46 bids, on one time line.
PERSONS=$((RECORDS / 46))
AUCTIONS=$((RECORDS * 3 / 46))
for fmt in csv jsonl; do
  f="$DATA/bids-$RECORDS.$fmt"
  [[ -s "$f" ]] || "$B/bench/nexmark_gen" --records "$RECORDS" --format "$fmt" --seed 42 >"$f"
  f="$DATA/persons-$RECORDS.$fmt"
  [[ -s "$f" ]] || "$B/bench/nexmark_gen" --kind persons --records "$PERSONS" --format "$fmt" --seed 42 >"$f"
  f="$DATA/auctions-$RECORDS.$fmt"
  [[ -s "$f" ]] || "$B/bench/nexmark_gen" --kind auctions --records "$AUCTIONS" --format "$fmt" --seed 42 >"$f"
done

echo "machine: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores), $(date -u +%F)"
echo "records: $RECORDS; best of $RUNS runs; one worker thread"
printf '%-6s %-6s %14s %12s\n' query input "records/s" "peak RSS"
for fmt in csv jsonl; do
  in="$DATA/bids-$RECORDS.$fmt"
  format="$fmt"; [[ $fmt == jsonl ]] && format=json
  for q in $QUERIES; do
    sql="$B/$q-$fmt.sql"
    sed -e "s|\${INPUT}|$in|" -e "s|\${FORMAT}|$format|g" \
        -e "s|\${PERSONS}|$DATA/persons-$RECORDS.$fmt|" \
        -e "s|\${AUCTIONS}|$DATA/auctions-$RECORDS.$fmt|" \
        -e "s|\${OUTPUT}|$B/out-$q-$fmt.csv|" "bench/queries/$q.sql" >"$sql"
    best=0; rss=""
    for _ in $(seq 1 "$RUNS"); do
      line="$("$B/velo" run --no-progress --stats "$sql" 2>&1 >/dev/null | grep 'records/s')"
      rate="$(sed -n 's/.*s, \([0-9]*\) records\/s.*/\1/p' <<<"$line")"
      if [[ "$rate" -gt "$best" ]]; then
        best="$rate"; rss="$(sed -n 's/.*peak RSS \(.*\)$/\1/p' <<<"$line")"
      fi
    done
    printf '%-6s %-6s %14s %12s\n' "$q" "$fmt" "$best" "$rss"
  done
done
if [[ -x "$B/bench/baseline_q5" ]]; then
  echo "baseline (hand-written C loop, q5, csv):"
  "$B/bench/baseline_q5" "$DATA/bids-$RECORDS.csv"
fi
# SQLite on the same CSV and the same q5 (import plus query, as a user
# would run it), one thread.
if command -v sqlite3 >/dev/null; then
  start=$(date +%s%N)
  sqlite3 :memory: >/dev/null <<SQL
.mode csv
.import $DATA/bids-$RECORDS.csv bids
.output $B/out-q5-sqlite.csv
SELECT (CAST(strftime('%s', ts) AS INTEGER) / 10) * 10 AS window_start, auction,
       COUNT(*), SUM(CAST(price AS INTEGER)), AVG(CAST(price AS INTEGER))
FROM bids GROUP BY 1, 2;
SQL
  end=$(date +%s%N)
  echo "sqlite3 $(sqlite3 --version | cut -d' ' -f1) (import + q5, csv): $(( RECORDS * 1000000000 / (end - start) )) records/s"
fi
