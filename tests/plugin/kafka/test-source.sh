#!/usr/bin/env bash
# Kafka source: messages produced by kcat are read by `velo run` through
# the kafka plugin (consumer group, all partitions), one JSON record per
# message, with the Kafka timestamp as _timestamp.
source "$(dirname "${BASH_SOURCE[0]}")/lib-kafka.sh"
start_mock -b 1 -t orders:3
cd "$SCRATCH"

for i in $(seq 1 100); do
  echo "{\"id\":$i,\"amt\":$i,\"grp\":\"g$((i % 3))\"}"
done | produce orders

"$VELO_BIN" run "${P[@]}" --format csv \
  -e "SELECT id, amt FROM kafka://$ADDR/orders LIMIT 100" >rows.csv 2>run.log
check "LIMIT 100 ends the endless source with 100 rows" \
  test "$(tail -n +2 rows.csv | wc -l)" = 100
check "every message once, from all 3 partitions" \
  test "$(tail -n +2 rows.csv | cut -d, -f1 | sort -nu | wc -l)" = 100
check "the values are the produced ones (sum 5050)" \
  test "$(tail -n +2 rows.csv | awk -F, '{s += $2} END {print s}')" = 5050
check "the log names the URI and the 3 partitions" \
  grep -q "kafka://$ADDR/orders: consuming 3 partitions" run.log

# A named source with properties, its own group: reads everything again.
"$VELO_BIN" run "${P[@]}" --format csv -e "SELECT id FROM o WHERE amt > 90 LIMIT 10
  WITH ('o.type'='kafka_source', 'o.bootstrap.servers'='$ADDR',
        'o.topic'='orders', 'o.group.id'='named', 'o.format'='json')" \
  >named.csv 2>named.log
check "'o.type'='kafka_source' with its own group.id" \
  test "$(tail -n +2 named.csv | sort -n | tr '\n' ' ')" = \
       "91 92 93 94 95 96 97 98 99 100 "
check "the group id is the one given" grep -q "as group 'named'" named.log

# The Kafka timestamp is the event time: _timestamp equals kcat's %T.
consume orders '%T %s\n' | sed 's/ {"id":\([0-9]*\),.*/ \1/' \
  | sort -k2,2n >kcat-ts.txt
"$VELO_BIN" run "${P[@]}" --format json -e "SELECT id, _timestamp AS ts
  FROM o LIMIT 100 WITH ('o.type'='kafka_source', 'o.topic'='orders',
  'o.bootstrap.servers'='$ADDR', 'o.group.id'='ts')" >ts.jsonl 2>ts.log
python3 - kcat-ts.txt ts.jsonl >ts-check.txt <<'PY'
import json, sys, datetime
want = {}
for line in open(sys.argv[1]):
    ms, i = line.split()
    want[int(i)] = int(ms)
bad = 0
rows = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
for r in rows:
    t = r["ts"]
    if isinstance(t, str):
        d = datetime.datetime.fromisoformat(t.replace("Z", "+00:00"))
        ms = round(d.timestamp() * 1000)
    else:
        ms = int(t) // 1000
    if want.get(r["id"]) != ms:
        bad += 1
print("rows", len(rows), "bad", bad)
PY
check "_timestamp is the message's Kafka timestamp" \
  grep -qx "rows 100 bad 0" ts-check.txt

# GROUP BY over the endless stream: stopped with SIGINT once it has seen
# everything, it ends cleanly with the final counts.
"$VELO_BIN" run "${P[@]}" --format csv -e "SELECT grp, COUNT(*) AS n,
  SUM(amt) AS s FROM o GROUP BY grp
  WITH ('o.type'='kafka_source', 'o.bootstrap.servers'='$ADDR',
        'o.topic'='orders', 'o.group.id'='grouped')" >grouped.csv 2>grouped.log &
pid=$!; BG_PIDS+=("$pid")
seen_all() {
  # a changelog: _op,grp,n,s; the latest line per group counts
  [[ -f grouped.csv ]] && tail -n +2 grouped.csv | awk -F, '{n[$2] = $3}
    END {t = 0; for (k in n) t += n[k]; exit !(t == 100)}'
}
check "the grouped counts reach 100 while running" wait_for seen_all
stop_bg "$pid"
check "SIGINT stops it cleanly (exit 0)" test "$BG_STATUS" = 0
final="$(tail -n +2 grouped.csv | awk -F, '{n[$2] = $3; s[$2] = $4}
  END {for (k in n) print k, n[k], s[k]}' | sort | tr '\n' ';')"
check "final counts and sums per group" \
  test "$final" = "g0 33 1683;g1 34 1717;g2 33 1650;"

# librdkafka settings pass through as '<name>.kafka.<property>'; a bad one
# is refused by librdkafka with its own message.
"$VELO_BIN" run "${P[@]}" --format csv -e "SELECT grp FROM o LIMIT 1
  WITH ('o.type'='kafka_source', 'o.bootstrap.servers'='$ADDR',
        'o.topic'='orders', 'o.group.id'='passthrough',
        'o.kafka.client.id'='velo-passthrough', 'o.kafka.fetch.wait.max.ms'='50')" \
  >pt-ok.out 2>pt-ok.err
check "'o.kafka.<property>' passes through to librdkafka" \
  test "$(head -1 pt-ok.out)" = grp -a "$(wc -l <pt-ok.out)" = 2
set +e
"$VELO_BIN" run "${P[@]}" --format csv -e "SELECT n FROM o LIMIT 1
  WITH ('o.type'='kafka_source', 'o.bootstrap.servers'='$ADDR',
        'o.topic'='orders', 'o.kafka.no.such.setting'='1')" >pt.out 2>&1; st=$?
set -e
check "an unknown librdkafka property is refused" \
  bash -c "test $st = 1 && grep -q 'no.such.setting' pt.out"
finish
