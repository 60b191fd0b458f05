#!/usr/bin/env bash
# Redis lookups through the engine's adapter (core/connectors/lookup.c):
# velo-ut-lookup, given this server's URL, reads hashes cust:<id> with
# HGETALL (the key column filled from the key, numbers and booleans
# decoded into their columns, a missing key as no row) and JSON strings
# custj:<id> with MGET; a mode that cannot be read by key is refused. The
# hash reads of one batch are pipelined: the server sees them back to back
# (MONITOR shows the batch's HGETALLs with no reply wait in between is not
# observable; what is checked is that each key is asked exactly once).
source "$(dirname "${BASH_SOURCE[0]}")/redis-lib.sh"
: "${VELO_BUILD_DIR:?run through ctest}"
redis_start
cd "$SCRATCH"
rcli HSET cust:1 name Ann vip true credit 10.5 >/dev/null
rcli HSET cust:2 name Bob >/dev/null
rcli SET custj:1 '{"id":1,"name":"Jo"}' >/dev/null
rcli SET custj:9 'not json' >/dev/null

rcli MONITOR >monitor.txt &
MPID=$!
VPIDS+=("$MPID")
sleep 0.3
st=0
VELO_LOOKUP_REDIS_URL="$REDIS_URL" "$VELO_BUILD_DIR/tests/velo-ut-lookup" >ut.out 2>ut.err || st=$?
sleep 0.3
kill "$MPID" 2>/dev/null || true
grep -E "Test:|FAIL|^ +[0-9]+\. |asserts" ut.out || true
check "the adapter's Redis lookups pass (velo-ut-lookup)" test "$st" = 0
check "and the Redis part ran to its end" grep -q "redis lookups checked" ut.out
check "one HGETALL per key of the batch (cust:2, cust:5, cust:1)" \
  test "$(grep -o '"HGETALL" "cust:[0-9]*"' monitor.txt | tr '\n' ' ')" = '"HGETALL" "cust:2" "HGETALL" "cust:5" "HGETALL" "cust:1" '
check "one MGET for the string table's batch" \
  grep -q '"MGET" "custj:1" "custj:2"' monitor.txt
finish
