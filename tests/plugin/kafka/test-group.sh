#!/usr/bin/env bash
# Consumer-group rebalance across two `velo run` processes: with the same
# group.id on a 4-partition topic, the second member's arrival takes two
# partitions from the first, and together they see every message once.
# Messages are produced only after both hold their partitions, so the
# result is deterministic (a rebalance in the middle of the stream is
# at-least-once: the next owner re-reads what was not committed).
source "$(dirname "${BASH_SOURCE[0]}")/lib-kafka.sh"
start_mock -b 1 -t work:4
cd "$SCRATCH"

member() { # member NAME: one velo run in group "shared", in the background
  "$VELO_BIN" run "${P[@]}" --format csv -e "SELECT id FROM w
    WITH ('w.type'='kafka_source', 'w.bootstrap.servers'='$ADDR',
          'w.topic'='work', 'w.group.id'='shared', 'w.schema'='id BIGINT',
          'w.session.timeout'='6s')" >"$1.csv" 2>"$1.log" &
  BG_PIDS+=("$!")
}
two_partitions() { grep -q "assigned partitions \[[0-9],[0-9]\]$" "$1.log"; }

member a
check "the first member gets all 4 partitions" \
  wait_for grep -q "assigned partitions \[0,1,2,3\]" a.log
member b
check "the second member joins with 2 of them" wait_for two_partitions b
check "the first keeps the other 2" wait_for two_partitions a

# 100 messages into each partition (kcat -p), so each member's share is
# known whatever the partitioner would do with keyless messages.
for p in 0 1 2 3; do
  for i in $(seq $((p * 100 + 1)) $((p * 100 + 100))); do
    echo "{\"id\":$i}"
  done | produce work -p "$p"
done
both_have_all() {
  [[ -f a.csv && -f b.csv ]] &&
    [[ $(( $(tail -n +2 a.csv | wc -l) + $(tail -n +2 b.csv | wc -l) )) -ge 400 ]]
}
check "together they read all 400" wait_for both_have_all
stop_bg "${BG_PIDS[0]}"; sa=$BG_STATUS
stop_bg "${BG_PIDS[1]}"; sb=$BG_STATUS
check "both stop cleanly" test "$sa:$sb" = "0:0"
check "each read exactly its 2 partitions' 200" \
  test "$(tail -n +2 a.csv | wc -l):$(tail -n +2 b.csv | wc -l)" = "200:200"
check "every message exactly once across the two" \
  test "$(tail -q -n +2 a.csv b.csv | sort -n | uniq | wc -l):$(tail -q -n +2 a.csv b.csv | wc -l)" = "400:400"
finish
