#!/usr/bin/env bash
# Each sink mode, checked with redis-cli: stream (XADD, MAXLEN ~), hash
# (HSET per key), string (SET with TTL), pub/sub (PUBLISH); an error reply
# fails the run with the reason; many rows go through the pipeline.
source "$(dirname "${BASH_SOURCE[0]}")/redis-lib.sh"
redis_start
cd "$SCRATCH"
printf '%s\n' '{"id":1,"sym":"A","px":1.5}' '{"id":2,"sym":"B","px":2.25}' \
  '{"id":3,"sym":"C","px":null}' >in.json
sink() { # sink MODE extra-props...: in.json into a redis sink
  local mode="$1"; shift
  velo_redis -e "CREATE STREAM out AS SELECT id, sym, px FROM 'file://in.json' WITH ('out.type'='redis_sink', 'out.url'='$REDIS_URL', 'out.mode'='$mode'$*); SELECT COUNT(*) AS n FROM out EMIT FINAL"
}

# stream: a JSON row's columns become the entry's fields (null left out).
sink stream ", 'out.key'='prices'" >o.txt 2>e.txt
check "stream: the run reports 3 rows" grep -q '"n":3' o.txt
check "stream: XLEN is 3" test "$(rcli XLEN prices)" = 3
check "stream: fields per column (XRANGE)" \
  diff <(printf 'id\n1\nsym\nA\npx\n1.5\n') <(rcli XRANGE prices - + COUNT 1 | tail -n 6)
check "stream: a null column is left out" \
  diff <(printf 'id\n3\nsym\nC\n') <(rcli XREVRANGE prices + - COUNT 1 | tail -n 4)
# 'field': the whole row in one field, for a reader that wants the JSON.
sink stream ", 'out.key'='raw', 'out.field'='data'" >o.txt 2>e.txt
check "stream with 'field': the row in one field" \
  test "$(rcli XRANGE raw - + COUNT 1 | sed -n 3p)" = '{"id":1,"sym":"A","px":1.5}'
# The stream sink reads back through the stream source unchanged.
out="$(velo_redis --format csv -e "SELECT id, sym, px FROM r LIMIT 3 WITH ('r.type'='redis_source', 'r.url'='$REDIS_URL/prices')" 2>e.txt)"
check "what the stream sink wrote the source reads back" \
  test "$out" = $'id,sym,px\n1,A,1.5\n2,B,2.25\n3,C,'

# MAXLEN ~: many rows through the pipeline, the stream trimmed near 1000.
seq 1 20000 | awk '{ printf "{\"id\":%d,\"sym\":\"S%d\",\"px\":%d.5}\n", $1, $1 % 7, $1 }' >in.json
sink stream ", 'out.key'='capped', 'out.maxlen'='1000', 'out.pipeline'='500'" >o.txt 2>e.txt
check "pipelined: 20000 rows reported" grep -q '"n":20000' o.txt
len="$(rcli XLEN capped)"
check "MAXLEN ~ 1000 keeps about 1000 entries (got $len)" \
  bash -c "[ $len -ge 1000 ] && [ $len -lt 1200 ]"
check "the newest entry is the last row" \
  test "$(rcli XREVRANGE capped + - COUNT 1 | sed -n 3p)" = 20000

# hash: one hash per key column value, the other columns as fields.
printf '%s\n' '{"id":1,"sym":"A","px":1.5}' '{"id":2,"sym":"B","px":2.25}' \
  '{"id":1,"sym":"A2","px":null}' >in.json
sink hash ", 'out.key.column'='id', 'out.key.prefix'='px:'" >o.txt 2>e.txt
check "hash: HGETALL px:2 holds the row's other columns" \
  diff <(printf 'sym\nB\npx\n2.25\n') <(rcli HGETALL px:2)
check "hash: a later row updates its key's fields (null keeps the old)" \
  diff <(printf 'sym\nA2\npx\n1.5\n') <(rcli HGETALL px:1)
check "hash: the key column is not a field" test "$(rcli HEXISTS px:1 id)" = 0
# 'key' names the key column too, as the issue spells it.
sink hash ", 'out.key'='sym'" >o.txt 2>e.txt
check "hash with 'key' = column: HGET B px" test "$(rcli HGET B px)" = 2.25

# string: the row as the value, with a TTL.
sink string ", 'out.key.column'='sym', 'out.key.prefix'='last:', 'out.ttl'='90s'" >o.txt 2>e.txt
check "string: GET last:B is the row" test "$(rcli GET last:B)" = '{"id":2,"sym":"B","px":2.25}'
ttl="$(rcli TTL last:B)"
check "string: TTL is set from 'ttl' (got $ttl)" bash -c "[ $ttl -gt 80 ] && [ $ttl -le 90 ]"
sink string ", 'out.key.column'='sym', 'out.key.prefix'='keep:'" >o.txt 2>e.txt
check "string without ttl: no expiry" test "$(rcli TTL keep:A)" = -1

# pub/sub: a subscriber started first receives each row.
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" SUBSCRIBE ticks >sub.txt &
subpid=$!
wait_for "the subscriber is subscribed" 10 bash -c "[ \"\$(redis-cli -p $REDIS_PORT PUBSUB NUMSUB ticks | tail -1)\" = 1 ]"
sink pubsub ", 'out.key'='ticks'" >o.txt 2>e.txt
wait_for "3 messages received" 10 bash -c "[ \$(grep -c '\"sym\"' sub.txt) -ge 3 ]"
kill "$subpid" 2>/dev/null || true; wait "$subpid" 2>/dev/null || true
check "pubsub: the subscriber got the three rows in order" \
  diff <(cat in.json) <(grep '"sym"' sub.txt)

# An error reply fails the run and names the reason; the run exits 1.
rcli SET taken x >/dev/null
set +e; sink stream ", 'out.key'='taken'" >o.txt 2>e.txt; st=$?; set -e
check "an error reply (XADD on a string) fails the run" test "$st" = 1
check "and the log names the command, key and Redis' reason" \
  grep -q "XADD taken failed: WRONGTYPE" e.txt
# A hash sink needs JSON rows.
set +e
velo_redis -e "CREATE STREAM out AS SELECT id, sym FROM 'file://in.json' WITH ('out.type'='redis_sink', 'out.url'='$REDIS_URL', 'out.mode'='hash', 'out.key.column'='id', 'out.format'='csv'); SELECT COUNT(*) AS n FROM out EMIT FINAL" >o.txt 2>e.txt; st=$?
set -e
check "hash with format csv is refused with a hint" \
  bash -c "[ $st = 1 ] && grep -q \"set 'format' = 'json'\" e.txt"
set +e; sink hash "" >o.txt 2>e.txt; st=$?; set -e
check "hash without a key column says which property to set" \
  bash -c "[ $st = 1 ] && grep -q \"'out.key.column'\" e.txt"
set +e; sink sorted ", 'out.key'='x'" >o.txt 2>e.txt; st=$?; set -e
check "an unknown mode lists the modes" \
  bash -c "[ $st = 1 ] && grep -q 'stream, hash, string or pubsub' e.txt"
finish
