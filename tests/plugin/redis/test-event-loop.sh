#!/usr/bin/env bash
# The stream source runs on the worker's event loop: an idle job asks the
# server once per block.ms (XREADGROUP ... BLOCK) and uses almost no CPU,
# yet an entry added to either of two streams arrives within a second. A
# source that polled (XREADGROUP without BLOCK every turn) would send
# hundreds of commands here; one that blocked the thread in XREADGROUP
# BLOCK would hold the other stream's entry for up to 5 s.
source "$(dirname "${BASH_SOURCE[0]}")/redis-lib.sh"
redis_start
cd "$SCRATCH"
rcli XADD a '*' data '{"id":1}' >/dev/null
rcli XADD b '*' data '{"id":2}' >/dev/null
velo_bg run.csv run.err --format csv -e "SELECT id FROM (SELECT id FROM a UNION ALL SELECT id FROM b) u WITH ('a.type'='redis_source', 'a.url'='$REDIS_URL/a', 'a.block.ms'='1000', 'b.type'='redis_source', 'b.url'='$REDIS_URL/b')"
wait_for "the first two entries" 20 bash -c "[ \$(wc -l < run.csv) -ge 3 ]"
# Both sources now wait in a BLOCKed XREADGROUP on the server.
blocked() { rcli CLIENT LIST | grep -c 'flags=b .*cmd=xreadgroup' || true; }
wait_for "two blocked readers" 10 bash -c "[ \"\$(redis-cli -p $REDIS_PORT CLIENT LIST | grep -c 'flags=b .*cmd=xreadgroup')\" = 2 ]" || true
check "both sources wait on the server in XREADGROUP BLOCK" test "$(blocked)" = 2

cpu() { awk '{ print $14 + $15 }' "/proc/$VPID/stat"; }
rcli CONFIG RESETSTAT >/dev/null
c0="$(cpu)"
sleep 3
c1="$(cpu)"
calls="$(rcli INFO commandstats | sed -n 's/^cmdstat_xreadgroup:calls=\([0-9]*\),.*/\1/p')"
calls="${calls:-0}"
ticks=$((c1 - c0))
echo "idle 3 s: $ticks CPU ticks, $calls XREADGROUP calls"
check "idle for 3 s the job uses almost no CPU ($ticks ticks of 1/$(getconf CLK_TCK) s)" \
  test "$ticks" -le 15
# a: BLOCK 1000 runs out about 3 times and is asked again; b: BLOCK 5000
# at most once.
check "idle, XREADGROUP is sent once per block.ms ($calls calls in 3 s)" \
  bash -c "[ $calls -ge 2 ] && [ $calls -le 6 ]"

# arrives ID STREAM: add {"id":ID} to STREAM, print the ms until it is out.
arrives() {
  local t0 t1
  t0="$(date +%s%3N)"
  rcli XADD "$2" '*' data "{\"id\":$1}" >/dev/null
  for _ in $(seq 1 250); do
    if grep -qx "$1" run.csv; then
      t1="$(date +%s%3N)"; echo $((t1 - t0)); return 0
    fi
    sleep 0.02
  done
  echo 99999
}
lb="$(arrives 3 b)"
la="$(arrives 4 a)"
echo "latency: b $lb ms, a $la ms"
check "an entry added to stream b is in the output within 1 s ($lb ms)" \
  test "$lb" -lt 1000
check "and one added to stream a after its BLOCK ran out ($la ms)" \
  test "$la" -lt 1000
kill -TERM "$VPID"; st=0; wait "$VPID" || st=$?
check "the run stops cleanly on SIGTERM" test "$st" = 0
check "each entry once" diff <(printf 'id\n1\n2\n3\n4\n') <(sed -n 1p run.csv; sed 1d run.csv | sort -n)
check "and all acknowledged at the stop" \
  test "$(rcli XPENDING a velo-a | head -1)$(rcli XPENDING b velo-b | head -1)" = 00
finish
