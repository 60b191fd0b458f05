#!/usr/bin/env bash
# velo server end to end: health, readiness, auth on /api/*, API keys made
# by the CLI while the server runs, Prometheus metrics checked by promtool,
# and a clean SIGTERM shutdown with exit 0.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONF="$SCRATCH/velo.yaml"
write_config "$CONF"
start_server "$CONF"

check "/healthz answers 200 without credentials" \
  test "$(http_status GET /healthz)" = 200
check "/readyz answers 200 while serving" test "$(http_status GET /readyz)" = 200

st="$(http_status GET /api/version)"
check "/api/version without credentials is 401" test "$st" = 401
check "401 carries WWW-Authenticate Basic" \
  bash -c "grep -qi '^WWW-Authenticate: Basic realm=' '$SCRATCH/headers'"
check "401 body is a JSON error" \
  bash -c "grep -q '\"error\"' '$SCRATCH/body' && grep -q '\"code\"' '$SCRATCH/body'"

st="$(http_status GET /api/version -H 'X-API-Key: velo_000000000000_forged')"
check "a forged API key is 401" test "$st" = 401

KEYJSON="$("$VELO_BIN" apikey create --config "$CONF" --name it-admin --role admin --format json)"
KEY="$(printf '%s' "$KEYJSON" | sed -n 's/.*"key": *"\([^"]*\)".*/\1/p')"
check "velo apikey create prints a key" test -n "$KEY"

st="$(http_status GET /api/version -H "X-API-Key: $KEY")"
check "a key made by the CLI while the server runs is accepted" test "$st" = 200
check "/api/version reports the version" bash -c "grep -q '\"version\"' '$SCRATCH/body'"
st="$(http_status GET /api/plugins -H "Authorization: Bearer $KEY")"
check "/api/plugins with a Bearer key is 200 and a JSON array" \
  bash -c "test '$st' = 200 && grep -q '^\[' '$SCRATCH/body'"

printf 'correct horse\n' | "$VELO_BIN" user add alice --role viewer \
  --password-stdin --config "$CONF" >/dev/null
st="$(http_status GET /api/version -u alice:wrong)"
check "wrong password is 401" test "$st" = 401
st="$(http_status GET /api/version -u 'alice:correct horse')"
check "right password is 200" test "$st" = 200
st="$(http_status POST /api/apikeys -u 'alice:correct horse' \
      -H 'Content-Type: application/json' -d '{"name":"x","roles":["viewer"]}')"
check "a viewer may not create keys (403)" test "$st" = 403

st="$(http_status GET /metrics)"
check "/metrics answers 200 without credentials by default" test "$st" = 200
cp "$SCRATCH/body" "$SCRATCH/metrics.txt"
for m in velo_build_info process_cpu_seconds_total process_resident_memory_bytes \
         process_open_fds velo_http_requests_total \
         velo_http_request_duration_seconds_bucket; do
  check "/metrics has $m" grep -q "^$m" "$SCRATCH/metrics.txt"
done
check "/metrics passes promtool check metrics" \
  bash -c "promtool check metrics <'$SCRATCH/metrics.txt' 2>&1 | grep -v -i 'counter metrics should have' | (! grep -qi 'error')"

st="$(http_status GET /nope -H "X-API-Key: $KEY")"
check "unknown path is 404 JSON" bash -c "test '$st' = 404 && grep -q not_found '$SCRATCH/body'"

stop_server TERM
check "SIGTERM exits 0" test "$STOP_STATUS" = 0
check "shutdown is logged" grep -q "shutdown" "$SERVER_LOG"
finish
