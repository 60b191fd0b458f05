#!/usr/bin/env bash
# `velo inspect` on Kafka: topics with partition and message counts, a
# topic described by sampling its messages (fields, types, examples), and
# a consumer group's lag after a `velo run` committed its offsets.
source "$(dirname "${BASH_SOURCE[0]}")/lib-kafka.sh"
start_mock -b 1 -t orders:3 -t empty:2 -t sparse:2
cd "$SCRATCH"

for i in $(seq 1 30); do
  echo "{\"id\":$i,\"amt\":$i.5,\"who\":\"u$i\",\"at\":\"2026-01-01T10:00:0$((i % 10))Z\",\"ok\":true,\"meta\":{\"a\":1}}"
done | produce orders

"$VELO_BIN" inspect "${P[@]}" "kafka://$ADDR" list --format json >list.json 2>list.log
check "list: both topics with partition and message counts" python3 - list.json <<'PY'
import json, sys
d = {t["topic"]: t for t in json.load(open(sys.argv[1]))}
ok = d["orders"]["partitions"] == 3 and d["orders"]["messages"] == 30
ok &= d["empty"]["partitions"] == 2 and d["empty"]["messages"] == 0
sys.exit(0 if ok else 1)
PY

"$VELO_BIN" inspect "${P[@]}" "kafka://$ADDR" describe orders --format json \
  >desc.json 2>desc.log
check "describe: fields inferred from sampled messages, with examples" \
  python3 - desc.json <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
f = {x["field"]: x for x in d["fields"]}
want = {"id": "BIGINT", "amt": "DOUBLE", "who": "STRING", "at": "TIMESTAMP",
        "ok": "BOOLEAN", "meta": "JSON"}
ok = d["sampled"] == 30 and d["messages"] == 30
ok &= all(f[k]["type"] == v for k, v in want.items())
# Examples are values of the sample (which message comes first depends on
# the partitions the producer spread them over).
ok &= 1 <= f["id"]["example"] <= 30 and f["who"]["example"].startswith("u")
if not ok:
    print("describe answered:", d, file=sys.stderr)
sys.exit(0 if ok else 1)
PY
st=0
"$VELO_BIN" inspect "${P[@]}" "kafka://$ADDR" describe nosuch >nosuch.out 2>&1 || st=$?
check "describe of a missing topic fails naming it" \
  bash -c "test $st != 0 && grep -q 'nosuch: no such topic' nosuch.out"

# A group that committed after reading everything, then 10 new messages.
"$VELO_BIN" run "${P[@]}" --format csv -e "SELECT COUNT(*) AS n FROM o
  WITH ('o.type'='kafka_source', 'o.bootstrap.servers'='$ADDR',
        'o.topic'='orders', 'o.group.id'='readers')" >count.csv 2>count.log &
pid=$!; BG_PIDS+=("$pid")
read_all() { [[ -f count.csv ]] && tail -n 1 count.csv | grep -q ',30$'; }
check "the reader sees all 30 messages" wait_for read_all
stop_bg "$pid"
for i in $(seq 31 40); do echo "{\"id\":$i}"; done | produce orders
"$VELO_BIN" inspect "${P[@]}" "kafka://$ADDR" groups readers --format json \
  >groups.json 2>groups.log
check "groups NAME: the group's lag is the 10 new messages" \
  python3 - groups.json <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))[0]
t = {x["topic"]: x for x in g["topics"]}
ok = g["group"] == "readers" and "orders" in t and t["orders"]["lag"] == 10
if not ok:
    print("groups answered:", g, file=sys.stderr)
sys.exit(0 if ok else 1)
PY
# A partition that never had a message for the group has no commit of its
# own: all of it is lag (the group would read it from its start).
for i in 1 2 3 4 5; do echo "{\"id\":$i}"; done | produce sparse -p 0
"$VELO_BIN" run "${P[@]}" --format csv -e "SELECT COUNT(*) AS n FROM s
  WITH ('s.type'='kafka_source', 's.bootstrap.servers'='$ADDR',
        's.topic'='sparse', 's.group.id'='sparse-readers')" >sparse.csv 2>sparse.log &
pid=$!; BG_PIDS+=("$pid")
read_five() { [[ -f sparse.csv ]] && tail -n 1 sparse.csv | grep -q ',5$'; }
check "the sparse reader sees the 5 messages of partition 0" wait_for read_five
stop_bg "$pid"
for i in 6 7 8 9; do echo "{\"id\":$i}"; done | produce sparse -p 1
"$VELO_BIN" inspect "${P[@]}" "kafka://$ADDR" groups sparse-readers --format json \
  >sparse.json 2>sparse-groups.log
check "a partition without a commit counts whole: lag 4, committed null" \
  python3 - sparse.json <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))[0]
t = {x["topic"]: x for x in g["topics"]}["sparse"]
p = {x["partition"]: x for x in t["partitions"]}
ok = (t["lag"] == 4 and p[0]["committed"] == 5 and p[0]["lag"] == 0
      and p[1]["committed"] is None and p[1]["lag"] == 4)
if not ok:
    print("groups answered:", g, file=sys.stderr)
sys.exit(0 if ok else 1)
PY
st=0
"$VELO_BIN" inspect "${P[@]}" "kafka://127.0.0.1:1" list >down.out 2>&1 || st=$?
check "unreachable brokers: an error naming them, no hang" \
  bash -c "test $st != 0 && grep -q 'kafka://127.0.0.1:1: no answer' down.out"
finish
