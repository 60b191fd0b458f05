#!/usr/bin/env bash
# A Redis stream read through a consumer group: JSON entries (one "data"
# field) and entries spread over fields, the entry ID as the event time, a
# GROUP BY over the stream, and XACK only once the run has flushed.
source "$(dirname "${BASH_SOURCE[0]}")/redis-lib.sh"
redis_start
cd "$SCRATCH"

syms=(A B C)
for i in $(seq 1 20); do
  rcli XADD orders '*' data "{\"id\":$i,\"sym\":\"${syms[$((i % 3))]}\",\"qty\":$((i * 10))}" >/dev/null
done
seq 1 20 | sed '1i id' >want.csv

velo_redis --format csv -e "SELECT id FROM 'redis://127.0.0.1:$REDIS_PORT/orders' LIMIT 20" >ids.csv 2>err.txt
check "FROM redis://host:port/stream reads the 20 entries in order" diff want.csv ids.csv
check "the default group is velo-<stream>" bash -c "redis-cli -p $REDIS_PORT XINFO GROUPS orders | grep -qx velo-orders"

# Entries with several fields become one JSON object; numbers stay numbers.
for i in $(seq 1 6); do
  rcli XADD trades '*' sym "${syms[$((i % 3))]}" qty "$i" note "n\"$i" >/dev/null
done
velo_redis --format csv -e "SELECT sym, qty, note FROM t LIMIT 6 WITH ('t.type'='redis_source', 't.url'='$REDIS_URL', 't.key'='trades')" >fields.csv 2>err.txt
check "fields become columns (six rows)" test "$(wc -l <fields.csv)" = 7
check "a field value with a quote survives" grep -q 'n""1' fields.csv
out="$(velo_redis --format csv -e "SELECT SUM(qty) AS s FROM t LIMIT 6 WITH ('t.type'='redis_source', 't.url'='$REDIS_URL', 't.key'='trades', 't.group'='sum')" 2>err.txt)"
# An aggregate without a window is a changelog: its last value is 21.
check "numeric fields add up (SUM(qty) = 21)" \
  test "$(tail -n 1 <<<"$out")" = "update,21"

# The entry ID's milliseconds are the record's event time.
rcli XADD clock 1700000000123-4 data '{"v":1}' >/dev/null
out="$(velo_redis --format csv -e "SELECT v, _timestamp FROM c LIMIT 1 WITH ('c.type'='redis_source', 'c.url'='$REDIS_URL/clock')" 2>err.txt)"
check "_timestamp is the entry ID's time" bash -c "grep -q '1,2023-11-14T22:13:20.123Z' <<<'$out'"

# 'field' names the one field that holds the record; format raw.
rcli XADD lines '*' line 'hello, world' >/dev/null
out="$(velo_redis --format csv -e "SELECT * FROM l LIMIT 1 WITH ('l.type'='redis_source', 'l.url'='$REDIS_URL', 'l.key'='lines', 'l.field'='line', 'l.format'='raw')" 2>err.txt)"
check "'field' with format raw gives the value as is" bash -c "grep -qx '\"hello, world\"' <<<'$out'"

# GROUP BY over the stream (a changelog: EMIT CHANGES), stopped with
# SIGTERM: its state is flushed, then the entries are acknowledged.
velo_bg agg.csv agg.err --format csv -e "SELECT sym, COUNT(*) AS n, SUM(qty) AS q FROM o GROUP BY sym EMIT CHANGES WITH ('o.type'='redis_source', 'o.url'='$REDIS_URL/orders', 'o.group'='agg', 'o.consumer'='c1')"
vpid=$VPID
wait_for "20 entries delivered to group agg" 20 \
  bash -c "[ \"\$(redis-cli -p $REDIS_PORT XPENDING orders agg | head -1)\" = 20 ]"
check "while the run holds state nothing is acknowledged (20 pending)" \
  test "$(rcli XPENDING orders agg | head -1)" = 20
kill -TERM "$vpid"
st=0; wait "$vpid" || st=$?
check "the stopped run exits 0" test "$st" = 0
# The last change of each symbol is its total.
awk -F, 'NR > 1 { last[$2] = $3 "," $4 } END { for (s in last) print s "," last[s] }' agg.csv | sort >final.csv
check "GROUP BY gives per-symbol counts and sums" \
  diff <(printf 'A,6,630\nB,7,700\nC,7,770\n') final.csv
check "after the final flush every entry is acknowledged (0 pending)" \
  test "$(rcli XPENDING orders agg | head -1)" = 0
finish
