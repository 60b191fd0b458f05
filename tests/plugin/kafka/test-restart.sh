#!/usr/bin/env bash
# Restart from committed offsets: run 1 reads the 40 messages there are and
# is stopped with SIGINT (a clean stop: final flush, then the engine calls
# source_commit and the plugin commits the next offsets); 60 more are
# produced, and run 2 in the same group reads exactly those 60: no
# duplicates, no gaps. A run ended by LIMIT commits nothing (the engine
# treats it as a peek), which is checked too.
source "$(dirname "${BASH_SOURCE[0]}")/lib-kafka.sh"
start_mock -b 1 -t ledger:3
cd "$SCRATCH"

query() { # query [LIMIT n]
  echo "SELECT id FROM l $*
  WITH ('l.type'='kafka_source', 'l.bootstrap.servers'='$ADDR',
        'l.topic'='ledger', 'l.group.id'='resume', 'l.session.timeout'='6s')"
}
ids() { tail -n +2 "$1" | sort -n | tr '\n' ' '; }

for i in $(seq 1 40); do echo "{\"id\":$i}"; done | produce ledger

# A LIMIT run first: it reads but acknowledges nothing.
"$VELO_BIN" run "${P[@]}" --log-level debug --format csv -e "$(query LIMIT 5)" \
  >peek.csv 2>peek.log
check "a LIMIT run reads 5" test "$(tail -n +2 peek.csv | wc -l)" = 5
check "and commits no offsets" bash -c "! grep -q 'committed offsets (partition' peek.log"

"$VELO_BIN" run "${P[@]}" --log-level debug --format csv -e "$(query)" \
  >run1.csv 2>run1.log &
pid=$!; BG_PIDS+=("$pid")
check "run 1 reads the 40 there are" wait_for lines_at_least run1.csv 41
stop_bg "$pid"
check "run 1 stops cleanly" test "$BG_STATUS" = 0
check "run 1 read 1..40 once each (from the start: the peek committed nothing)" \
  test "$(ids run1.csv)" = "$(seq -s ' ' 1 40) "
# The last commit covers exactly what was read: the next offsets of the
# partitions sum to the 40 messages.
committed_sum() {
  grep "committed offsets (partition:next)" run1.log | tail -1 |
    sed 's/.*(partition:next)//' | tr ' ' '\n' | awk -F: 'NF == 2 {s += $2} END {print s + 0}'
}
check "run 1 committed next offsets covering all 40" test "$(committed_sum)" = 40

for i in $(seq 41 100); do echo "{\"id\":$i}"; done | produce ledger
"$VELO_BIN" run "${P[@]}" --format csv -e "$(query)" >run2.csv 2>run2.log &
pid=$!; BG_PIDS+=("$pid")
check "run 2 reads the 60 new ones" wait_for lines_at_least run2.csv 61
sleep 1 # anything re-read would show up by now
stop_bg "$pid"
check "run 2 continues at 41: exactly 41..100, no duplicates, no gaps" \
  test "$(ids run2.csv)" = "$(seq -s ' ' 41 100) "

# A new group has no committed offsets: earliest reads all 100 again.
"$VELO_BIN" run "${P[@]}" --format csv -e "SELECT id FROM l LIMIT 100
  WITH ('l.type'='kafka_source', 'l.bootstrap.servers'='$ADDR',
        'l.topic'='ledger', 'l.group.id'='fresh')" >fresh.csv 2>fresh.log
check "another group starts from the earliest offsets" \
  test "$(tail -n +2 fresh.csv | sort -nu | wc -l)" = 100
finish
