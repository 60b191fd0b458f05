#!/usr/bin/env bash
# The CLI surface: help for every verb, exit codes 0/1/2, config errors that
# name the key and line, and VELO_* environment overrides.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

out="$("$VELO_BIN" --help)"
for v in server version plugins license user apikey; do
  check "velo --help lists $v" grep -qw "$v" <<<"$out"
  check "velo $v --help exits 0" "$VELO_BIN" "$v" --help
done
set +e
"$VELO_BIN" frobnicate >/dev/null 2>&1; st=$?
check "an unknown verb exits 2" test "$st" = 2
"$VELO_BIN" >/dev/null 2>&1; st=$?
check "no verb exits 2" test "$st" = 2
"$VELO_BIN" server --no-such-flag >/dev/null 2>&1; st=$?
check "an unknown server flag exits 2" test "$st" = 2
"$VELO_BIN" version --format yaml >/dev/null 2>&1; st=$?
check "a bad --format exits 2" test "$st" = 2
set -e
check "velo version prints the ABI" bash -c "'$VELO_BIN' version | grep -q 'plugin ABI 1.2'"

CONF="$SCRATCH/bad.yaml"
printf 'server:\n  listen: "127.0.0.1:0"\n  workerz: 4\nhttp:\n  max_body_size: lots\n' >"$CONF"
set +e
"$VELO_BIN" server --config "$CONF" >"$SCRATCH/out" 2>&1; st=$?
set -e
check "a bad config stops the server with exit 1" test "$st" = 1
check "the unknown key is named with its line" grep -q "bad.yaml:3.*workerz" "$SCRATCH/out"
check "a did-you-mean hint is given" grep -q "server.workers" "$SCRATCH/out"
check "the bad value is named with its line" grep -q "bad.yaml:5.*max_body_size" "$SCRATCH/out"

set +e
VELO_HTTP_MAX_BODY_SIZE=nonsense "$VELO_BIN" server --listen 127.0.0.1:0 \
  --data-dir "$SCRATCH/d" >"$SCRATCH/out" 2>&1; st=$?
set -e
check "a bad VELO_* variable is refused naming it" \
  bash -c "test $st = 1 && grep -q VELO_HTTP_MAX_BODY_SIZE '$SCRATCH/out'"

# Flags beat the environment, which beats the file.
GOOD="$SCRATCH/good.yaml"
write_config "$GOOD"
VELO_SERVER_LISTEN=127.0.0.1:1 start_server "$GOOD" --listen 127.0.0.1:0
check "--listen beats VELO_SERVER_LISTEN" test -n "$PORT"
stop_server TERM
check "and the server stops with 0" test "$STOP_STATUS" = 0
finish
