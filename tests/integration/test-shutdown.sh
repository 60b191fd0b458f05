#!/usr/bin/env bash
# SIGTERM while a request is in flight: the server stops accepting, lets the
# request finish (here: a slow password hash on a worker), then exits 0.
# A second case: a request that outlives server.shutdown_timeout is cut and
# the server still exits 0 within the bound.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONF="$SCRATCH/velo.yaml"
write_config "$CONF"
# ~0.5-2 s per hash on this machine: long enough to be in flight.
sed -i 's/pbkdf2_iterations: 1000/pbkdf2_iterations: 3000000/' "$CONF"
printf 'bob-password\n' | "$VELO_BIN" user add bob --role admin --password-stdin \
  --config "$CONF" >/dev/null
start_server "$CONF"

curl -s -o "$SCRATCH/slow.body" -w '%{http_code}' -u bob:bob-password \
  "http://127.0.0.1:$PORT/api/version" >"$SCRATCH/slow.status" &
CURL_PID=$!
sleep 0.3
kill -TERM "$SERVER_PID"
check "shutdown waits for the request in flight" log_waits "request(s) in flight"
st_new="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$PORT/healthz" || true)"
check "no new connection is served while draining" test "$st_new" != 200
wait "$CURL_PID" || true
check "the in-flight request completed with 200" test "$(cat "$SCRATCH/slow.status")" = 200
wait_server
check "the server exited 0" test "$STOP_STATUS" = 0

# Past the timeout.
sed -i 's/shutdown_timeout: 10s/shutdown_timeout: 200ms/' "$CONF"
sed -i 's/pbkdf2_iterations: 3000000/pbkdf2_iterations: 30000000/' "$CONF"
start_server "$CONF"
curl -s -o /dev/null -u bob:bob-password --max-time 30 "http://127.0.0.1:$PORT/api/version" &
CURL_PID=$!
sleep 0.3
start_ts=$(date +%s%N)
stop_server TERM
end_ts=$(date +%s%N)
wait "$CURL_PID" 2>/dev/null || true
check "past shutdown_timeout the server still exits 0" test "$STOP_STATUS" = 0
check "and it does so within 5 s" test $(( (end_ts - start_ts) / 1000000 )) -lt 5000
check "the cut is logged" grep -q "still in flight" "$SERVER_LOG"
finish
