#!/usr/bin/env bash
# Exactly once, Kafka to Kafka: a consume-transform-produce job whose sink
# is a transactional producer ('out.exactly.once') and whose source reads
# read_committed ('src.exactly.once').
#
# What librdkafka's mock cluster (the peer of these tests) can and cannot
# show, read from its source (rdkafka_mock_handlers.c, librdkafka 2.x):
#  - it runs the whole transactional protocol (InitProducerId,
#    AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit, EndTxn), so the
#    plugin's calls, their order and their error paths are exercised;
#  - it does NOT store the offsets of TxnOffsetCommit, writes no commit or
#    abort markers, ignores the fetch's isolation.level (read_committed sees
#    everything) and never fences an older producer of the same
#    transactional.id (each InitProducerId gets a fresh producer id).
# So the test asserts, on the mock: each transaction carries exactly the
# positions read so far and the source commits nothing on its own; a clean
# run delivers every input exactly once; kill -9 at random moments followed
# by restarts loses nothing and every restart takes over the
# transactional.id; the fenced and abortable error paths (the broker's
# answers injected into the mock) fail the job with a clear message. That
# read_committed hides the duplicates of aborted transactions after a kill
# is checked only when the peer implements it (it is reported otherwise).
source "$(dirname "${BASH_SOURCE[0]}")/lib-kafka.sh"
start_mock -b 1 -t in:3 -t out:3 -t feed:3 -t out2:3 -t in3:1 -t out3:1
cd "$SCRATCH"

# job FILE SRC_TOPIC OUT_TOPIC GROUP [extra properties]: the job's SQL
job() {
  cat >"$1" <<SQL
CREATE STREAM out AS SELECT id, id * 2 AS twice FROM src
WITH ('src.type'='kafka_source', 'src.bootstrap.servers'='$ADDR',
      'src.topic'='$2', 'src.group.id'='$4', 'src.session.timeout'='6s',
      'src.exactly.once'='true',
      'out.type'='kafka_sink', 'out.bootstrap.servers'='$ADDR',
      'out.topic'='$3', 'out.exactly.once'='true'${5:-});
SQL
}
# want N: the expected output for ids 1..N, computed here, not by velo
want() { awk -v n="$1" 'BEGIN {for (i = 1; i <= n; i++) printf "{\"id\":%d,\"twice\":%d}\n", i, 2 * i}' | sort; }
# last_txn_sum LOG: the sum of the next offsets the last transaction carried
last_txn_sum() {
  grep "committed with .* and the offsets of" "$1" | tail -1 |
    sed 's/.*(partition:next)//' | tr ' ' '\n' | awk -F: 'NF == 2 {s += $2} END {print s + 0}'
}
uniq_ids() { consume "$1" | sed 's/.*"id":\([0-9]*\).*/\1/' | sort -un | wc -l; }
# output_has TOPIC N: the topic holds at least N distinct ids
output_has() { [[ "$(uniq_ids "$1")" -ge "$2" ]]; }

# ---- 1. A clean run: every input once, offsets only in the transaction --
for i in $(seq 1 3000); do echo "{\"id\":$i}"; done | produce in
job eos.sql in out g1
"$VELO_BIN" run "${P[@]}" --log-level debug eos.sql >eos.out 2>eos.log &
pid=$!; BG_PIDS+=("$pid")
check "the job transforms the 3000 inputs" wait_for output_has out 3000
sleep 1.5 # a stray second copy would be there by now
stop_bg "$pid"
check "and stops cleanly" test "$BG_STATUS" = 0
check "the sink is transactional, its id derived from job and sink" \
  grep -q "producing to 3 partitions (lz4, acks=all, idempotent, exactly once, transactional.id velo-eos-out)" eos.log
check "the source reads read_committed" grep -q "(read_committed)" eos.log
check "read_committed reader: each input exactly once" \
  diff <(want 3000) <(kcat -C -b "$ADDR" -t out -e -q -X isolation.level=read_committed | sort)
check "the last transaction carried next offsets covering all 3000" \
  test "$(last_txn_sum eos.log)" = 3000
check "the source committed no offsets of its own" \
  bash -c "! grep -q 'committed offsets (partition:next)' eos.log"

# ---- 2. kill -9 at random moments, restart each time ---------------------
# 4000 inputs arrive over ~40 s while the job is killed four times, each
# at a random moment (printed, to replay a failure) once it has taken over
# the transactional.id and is producing, so mostly inside an open
# transaction; a fifth run finishes. A killed member stays in the group
# until its session times out (6 s): the next run waits for that.
job eos2.sql feed out2 g2
(for c in $(seq 0 39); do
   for i in $(seq $((c * 100 + 1)) $((c * 100 + 100))); do echo "{\"id\":$i}"; done |
     produce feed
   sleep 1
 done) &
feeder=$!; BG_PIDS+=("$feeder")
started=0
for k in 1 2 3 4; do
  "$VELO_BIN" run "${P[@]}" --log-level debug eos2.sql >"kill$k.out" 2>"kill$k.log" &
  pid=$!; BG_PIDS+=("$pid")
  if wait_for grep -q "exactly once, transactional.id velo-eos2-out" "kill$k.log"; then
    started=$((started + 1))
  fi
  delay="$((RANDOM % 3)).$((RANDOM % 10))"
  echo "# run $k: kill -9 ${delay}s after it started producing"
  sleep "$delay"
  kill -KILL "$pid"; wait "$pid" 2>/dev/null || true
done
wait "$feeder"
check "every restart took over the transactional.id (4 of 4)" test "$started" = 4
"$VELO_BIN" run "${P[@]}" --log-level debug eos2.sql >final.out 2>final.log &
pid=$!; BG_PIDS+=("$pid")
check "after the kills nothing is lost: all 4000 inputs are in the output" \
  wait_for output_has out2 4000
# The killed runs' aborted output is visible to this peer's readers (see
# the top): wait for the last run's own transaction to cover everything
# (it may first wait out a killed member's session) before stopping it.
final_covers_all() { [[ "$(last_txn_sum final.log)" == 4000 ]]; }
check "its last transaction carried next offsets covering all 4000" \
  wait_for final_covers_all
stop_bg "$pid"
check "the last run stops cleanly" test "$BG_STATUS" = 0
check "no run committed source offsets outside a transaction" \
  bash -c "! grep -q 'committed offsets (partition:next)' kill*.log final.log"
committed="$(kcat -C -b "$ADDR" -t out2 -e -q -X isolation.level=read_committed | wc -l)"
uncommitted="$(consume out2 | wc -l)"
if [[ "$committed" = 4000 ]]; then
  pass "read_committed sees each input once ($uncommitted messages in the log)"
else
  echo "# read_committed sees $committed messages for 4000 inputs, read_uncommitted" \
    "$uncommitted: this peer keeps no transactional offsets and ignores" \
    "isolation.level (see the top of this file), so it cannot show the difference"
fi
check "read_committed sees no more than read_uncommitted" \
  test "$committed" -le "$uncommitted"

# ---- 3. Fenced: a newer producer with the same transactional.id ----------
# The mock never fences by itself; a broker answers the old instance's
# EndTxn with PRODUCER_FENCED (90), injected here.
for i in $(seq 1 20); do echo "{\"id\":$i}"; done | produce in3
job fence.sql in3 out3 g3 ", 'out.transactional.id'='fence-id'"
"$VELO_BIN" run "${P[@]}" fence.sql >fence.out 2>fence.log &
pid=$!; BG_PIDS+=("$pid")
check "a job with transactional.id fence-id runs" wait_for output_has out3 20
sleep 1.5 # its first transaction is committed
check "the mock takes the injected answer" mock_cmd "error 26 90"
for i in $(seq 21 30); do echo "{\"id\":$i}"; done | produce in3
BG_STATUS=0; wait "$pid" || BG_STATUS=$?
check "the fenced job fails (exit 1)" test "$BG_STATUS" = 1
check "saying it was fenced off, naming the id" \
  grep -q "fenced off: another producer with transactional.id 'fence-id' has started" fence.log

# ---- 4. Abortable: the transaction fails, is aborted, the job fails ------
# AddPartitionsToTxn (24) answered with TOPIC_AUTHORIZATION_FAILED (29).
job abort.sql in3 out3 g4
"$VELO_BIN" run "${P[@]}" abort.sql >abort.out 2>abort.log &
pid=$!; BG_PIDS+=("$pid")
check "a second job starts" wait_for grep -q "exactly once, transactional.id velo-abort-out" abort.log
sleep 5 # assigned, and the 30 inputs committed
check "the mock takes the injected answer" mock_cmd "error 24 29"
for i in $(seq 31 40); do echo "{\"id\":$i}"; done | produce in3
BG_STATUS=0; wait "$pid" || BG_STATUS=$?
check "the job with a failed transaction fails (exit 1)" test "$BG_STATUS" = 1
check "giving the broker's reason" grep -q "the transaction failed: .*Topic authorization failed" abort.log
check "and saying the transaction is aborted, invisible to read_committed" \
  grep -q "is aborted: read_committed readers never see it, and a restart resumes from the offsets of the last committed one" abort.log

# ---- 5. One exactly-once sink per job ------------------------------------
cat >two.sql <<SQL
CREATE STREAM a AS SELECT id FROM src
WITH ('src.type'='kafka_source', 'src.bootstrap.servers'='$ADDR',
      'src.topic'='in3', 'a.type'='kafka_sink', 'a.bootstrap.servers'='$ADDR',
      'a.topic'='out3', 'a.exactly.once'='true');
CREATE STREAM b AS SELECT id FROM src
WITH ('b.type'='kafka_sink', 'b.bootstrap.servers'='$ADDR',
      'b.topic'='out3', 'b.exactly.once'='true');
SQL
set +e
timeout 60 "$VELO_BIN" run "${P[@]}" two.sql >two.out 2>two.log; st=$?
set -e
check "two exactly-once sinks in one job are refused (exit 1)" test "$st" = 1
check "saying one transaction covers one sink" \
  grep -q "already has an exactly-once Kafka sink (kafka://$ADDR/out3); one transaction can cover one sink" two.log

# ---- 6. A stateful plan without --state-dir never checkpoints ------------
# Its transaction would stay open until the broker aborts it: the sink
# fails the job first, saying why (transaction.timeout = delivery.timeout).
"$VELO_BIN" run "${P[@]}" -e "CREATE STREAM out AS SELECT id % 3 AS g,
  COUNT(*) AS n FROM src GROUP BY id % 3 EMIT CHANGES
  WITH ('src.type'='kafka_source', 'src.bootstrap.servers'='$ADDR',
        'src.topic'='in3', 'src.group.id'='g6', 'src.session.timeout'='6s',
        'out.type'='kafka_sink', 'out.bootstrap.servers'='$ADDR',
        'out.topic'='out3', 'out.exactly.once'='true',
        'out.delivery.timeout'='3s')" >stateful.out 2>stateful.log &
pid=$!; BG_PIDS+=("$pid")
check "a GROUP BY job starts, with an id derived for -e" \
  wait_for grep -q "exactly once, transactional.id velo-command_line-out" stateful.log
for i in $(seq 41 50); do echo "{\"id\":$i}" | produce in3; sleep 0.6; done
BG_STATUS=0; wait "$pid" || BG_STATUS=$?
check "its never-committed transaction fails the job (exit 1)" test "$BG_STATUS" = 1
check "saying exactly once needs checkpoints" \
  grep -q "without a checkpoint (transaction.timeout.ms is 3000): exactly once needs a job that checkpoints regularly" stateful.log

# ---- 7. The transactional id cannot sneak in through the passthrough ----
set +e
"$VELO_BIN" run "${P[@]}" -e "CREATE STREAM c AS SELECT id FROM src
  WITH ('src.type'='kafka_source', 'src.bootstrap.servers'='$ADDR',
        'src.topic'='in3', 'c.type'='kafka_sink',
        'c.bootstrap.servers'='$ADDR', 'c.topic'='out3',
        'c.kafka.transactional.id'='x')" >pass.out 2>pass.log; st=$?
set -e
check "'c.kafka.transactional.id' is refused (exit 1)" test "$st" = 1
check "pointing at 'c.transactional.id'" \
  grep -q "write 'c.transactional.id' (without 'kafka.'): it turns on exactly once" pass.log
finish
