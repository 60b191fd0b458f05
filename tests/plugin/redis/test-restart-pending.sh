#!/usr/bin/env bash
# Restart with pending entries: what a run was handed but did not
# acknowledge is read again first by the same consumer, then new entries;
# what a run acknowledged is never read again. Nothing lost, nothing twice.
source "$(dirname "${BASH_SOURCE[0]}")/redis-lib.sh"
redis_start
cd "$SCRATCH"
add() { # add FROM TO: entries {"id":n}
  local i
  for i in $(seq "$1" "$2"); do rcli XADD s '*' data "{\"id\":$i}" >/dev/null; done
}
pending() { rcli XPENDING s g | head -1; }
W="WITH ('s.type'='redis_source', 's.url'='$REDIS_URL/s', 's.group'='g', 's.consumer'='c1', 's.count'='10')"

add 1 30
# Run 1 peeks with LIMIT: it reads 10 (count 10) and, as the engine treats
# a LIMIT run as a peek, acknowledges none of them.
velo_redis --format csv -e "SELECT id FROM s LIMIT 10 $W" >run1.csv 2>run1.err
check "run 1 (LIMIT 10) returns ids 1..10" diff <(seq 1 10 | sed '1i id') run1.csv
check "run 1 leaves its 10 entries pending to consumer c1" \
  bash -c "[ \"\$(redis-cli -p $REDIS_PORT XPENDING s g - + 100 c1 | wc -l)\" = 40 ] && [ \"\$(redis-cli -p $REDIS_PORT XPENDING s g | head -1)\" = 10 ]"

# Run 2, same group and consumer, until stopped: first its 10 pending
# entries, then the 20 never delivered, then 10 added while it runs.
velo_bg run2.csv run2.err --format csv -e "SELECT id FROM s $W"
wait_for "run 2 reads 30 rows" 30 bash -c "[ \$(wc -l < run2.csv) -ge 31 ]"
add 31 40
wait_for "run 2 reads 40 rows" 30 bash -c "[ \$(wc -l < run2.csv) -ge 41 ]"
# A stateless run acknowledges as it goes (about once a second).
wait_for "run 2 acknowledges" 20 bash -c "[ \"\$(redis-cli -p $REDIS_PORT XPENDING s g | head -1)\" = 0 ]"
kill -TERM "$VPID"; st=0; wait "$VPID" || st=$?
check "run 2 stops cleanly on SIGTERM" test "$st" = 0
check "run 2 reads each of 1..40 exactly once, pending ones first" \
  diff <(seq 1 40 | sed '1i id') run2.csv
check "nothing is pending after run 2" test "$(pending)" = 0

# Run 3, same group: only what was added since. Acknowledged entries are
# never delivered again, even to a new consumer of the group.
add 41 45
velo_redis --format csv -e "SELECT id FROM s LIMIT 5 WITH ('s.type'='redis_source', 's.url'='$REDIS_URL/s', 's.group'='g', 's.consumer'='c2')" >run3.csv 2>run3.err
check "run 3 (another consumer) gets only the new 41..45" \
  diff <(seq 41 45 | sed '1i id') run3.csv

check "run 3 was a peek too: 41..45 stay pending to c2" test "$(pending)" = 5

# A run killed outright (no flush, no acknowledgement) leaves what it read
# pending; the next run of that consumer reads it all again, pending first:
# at least once.
add 46 50
velo_bg run4.csv run4.err --format csv -e "SELECT id FROM s WITH ('s.type'='redis_source', 's.url'='$REDIS_URL/s', 's.group'='g', 's.consumer'='c2')"
# Killed as soon as it holds 46..50 too: a stateless run acknowledges only
# after about a second.
wait_for "run 4 holds 41..50" 10 bash -c "[ \"\$(redis-cli -p $REDIS_PORT XPENDING s g | head -1)\" = 10 ]"
kill -KILL "$VPID"; wait "$VPID" 2>/dev/null || true
check "the killed run acknowledged nothing (10 pending)" test "$(pending)" = 10
velo_bg run5.csv run5.err --format csv -e "SELECT id FROM s WITH ('s.type'='redis_source', 's.url'='$REDIS_URL/s', 's.group'='g', 's.consumer'='c2')"
wait_for "run 5 reads 10 rows" 20 bash -c "[ \$(wc -l < run5.csv) -ge 11 ]"
wait_for "run 5 acknowledges" 20 bash -c "[ \"\$(redis-cli -p $REDIS_PORT XPENDING s g | head -1)\" = 0 ]"
kill -TERM "$VPID"; wait "$VPID" || true
check "run 5 reads the killed run's 41..50 again, once each" \
  diff <(seq 41 50 | sed '1i id') run5.csv
check "and acknowledges them (0 pending)" test "$(pending)" = 0
finish
