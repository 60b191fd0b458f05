#!/usr/bin/env bash
# A pub/sub source: SUBSCRIBE on its own connection, each message a record
# (at most once: Redis keeps nothing for an absent subscriber); a pattern
# subscribes with PSUBSCRIBE.
source "$(dirname "${BASH_SOURCE[0]}")/redis-lib.sh"
redis_start
cd "$SCRATCH"
publish() { # publish CHANNEL FROM TO, until the run has ended
  local i
  for i in $(seq "$2" "$3"); do rcli PUBLISH "$1" "{\"id\":$i,\"ch\":\"$1\"}" >/dev/null; done
}
velo_bg run.csv run.err --format csv -e "SELECT id, ch FROM t LIMIT 10 WITH ('t.type'='redis_source', 't.url'='$REDIS_URL', 't.key'='ticks', 't.mode'='pubsub')"
wait_for "subscribed" 10 bash -c "[ \"\$(redis-cli -p $REDIS_PORT PUBSUB NUMSUB ticks | tail -1)\" = 1 ]"
publish ticks 1 10
st=0; wait "$VPID" || st=$?
check "the run ends at LIMIT 10 (exit 0)" test "$st" = 0
check "it received messages 1..10 in order" \
  diff <(seq 1 10 | sed 's/$/,ticks/' | sed '1i id,ch') run.csv
check "the log says at most once" grep -q "at most once" run.err

velo_bg pat.csv pat.err --format csv -e "SELECT id, ch FROM p LIMIT 4 WITH ('p.type'='redis_source', 'p.url'='$REDIS_URL/px.*', 'p.mode'='pubsub')"
wait_for "psubscribed" 10 bash -c "[ \"\$(redis-cli -p $REDIS_PORT PUBSUB NUMPAT)\" = 1 ]"
publish px.a 1 2
publish other 3 3
publish px.b 4 5
st=0; wait "$VPID" || st=$?
check "a pattern reads every matching channel and no other" \
  diff <(printf 'id,ch\n1,px.a\n2,px.a\n4,px.b\n5,px.b\n') pat.csv
# A burst faster than the query reads (its output goes to a reader that
# starts late): the source stops reading the socket while four batches
# wait and reads on when the query catches up; nothing is lost or
# reordered.
python3 -c '
import sys
for i in range(1, 20001):
    m = "{\"id\":%d}" % i
    sys.stdout.write("*3\r\n$7\r\nPUBLISH\r\n$5\r\nburst\r\n$%d\r\n%s\r\n" % (len(m), m))
' >burst.resp
{
  "$VELO_BIN" run "${P[@]}" --log-level debug --format csv -e "SELECT id FROM t LIMIT 20000 WITH ('t.type'='redis_source', 't.url'='$REDIS_URL/burst', 't.mode'='pubsub')" 2>burst.err
  echo $? >burst.rc
} | (sleep 2; cat >burst.csv) &
bpid=$!
wait_for "subscribed to burst" 10 bash -c "[ \"\$(redis-cli -p $REDIS_PORT PUBSUB NUMSUB burst | tail -1)\" = 1 ]"
rcli --pipe <burst.resp >/dev/null
wait "$bpid" || true
check "the burst run ends at LIMIT 20000 (exit 0)" test "$(cat burst.rc)" = 0
check "all 20000 messages, in order" diff <(seq 1 20000 | sed '1i id') burst.csv
check "the source paused reading while the query was behind" \
  grep -q "messages waiting: not reading 'burst'" burst.err

set +e
velo_redis -e "SELECT * FROM t WITH ('t.type'='redis_source', 't.url'='$REDIS_URL/x', 't.mode'='hash')" >/dev/null 2>err.txt; st=$?
set -e
check "a sink-only mode on a source is refused" \
  bash -c "[ $st = 1 ] && grep -q 'write stream or pubsub' err.txt"
finish
