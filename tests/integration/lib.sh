# Shared helpers for the integration tests: start the real velo binary on a
# free loopback port with a scratch data dir, talk to it with curl, stop it.
# Sourced by tests/integration/test-*.sh; ctest sets VELO_BIN and friends.
set -euo pipefail

: "${VELO_BIN:?run through ctest (VELO_BIN unset)}"
SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/velo-it-XXXXXX")"
SERVER_PID=""
SERVER_LOG="$SCRATCH/server.log"
PORT=""
FAILS=0
PASSES=0

cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$SCRATCH"
}
trap cleanup EXIT

pass() { PASSES=$((PASSES + 1)); echo "ok   - $*"; }
fail() { FAILS=$((FAILS + 1)); echo "FAIL - $*"; }
check() { # check "description" command...
  local what="$1"; shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
finish() {
  if [[ $FAILS -gt 0 && -f "$SERVER_LOG" ]]; then
    echo "--- server log ---"; tail -n 60 "$SERVER_LOG"
  fi
  echo "$PASSES passed, $FAILS failed"
  [[ $FAILS -eq 0 ]]
}

# write_config FILE [extra yaml...]: a config on port 0 in the scratch dir
write_config() {
  local file="$1"; shift
  {
    echo "server:"
    echo "  listen: \"127.0.0.1:0\""
    echo "  data_dir: \"$SCRATCH/data\""
    echo "  shutdown_timeout: 10s"
    echo "auth:"
    echo "  pbkdf2_iterations: 1000"
    echo "plugins:"
    echo "  dirs: [\"$SCRATCH/plugins\"]"
    printf '%s\n' "$@"
  } >"$file"
  mkdir -p "$SCRATCH/plugins"
}

# start_server CONFIG [args...]: runs velo server, waits for its port
start_server() {
  local conf="$1"; shift
  : >"$SERVER_LOG"
  "$VELO_BIN" server --config "$conf" "$@" >>"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 200); do
    PORT="$(sed -n 's/.*listening on https\{0,1\}:\/\/[^ ]*:\([0-9][0-9]*\).*/\1/p' "$SERVER_LOG" | head -1)"
    if [[ -n "$PORT" ]]; then return 0; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "server exited early:"; cat "$SERVER_LOG"; return 1
    fi
    sleep 0.05
  done
  echo "server did not report its port:"; cat "$SERVER_LOG"; return 1
}

# stop_server SIGNAL: sends it and waits; sets STOP_STATUS
stop_server() {
  local sig="${1:-TERM}"
  kill "-$sig" "$SERVER_PID"
  local st=0
  for _ in $(seq 1 300); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
    sleep 0.05
  done
  wait "$SERVER_PID" || st=$?
  STOP_STATUS=$st
  SERVER_PID=""
}

# http_status METHOD PATH [curl args...]: prints the status code
http_status() {
  local method="$1" path="$2"; shift 2
  curl -s -o "$SCRATCH/body" -D "$SCRATCH/headers" -w '%{http_code}' \
       -X "$method" "$@" "http://127.0.0.1:$PORT$path" || true
}
body() { cat "$SCRATCH/body"; }
header() { grep -i "^$1:" "$SCRATCH/headers" | head -1 | cut -d' ' -f2- | tr -d '\r'; }

# log_waits PATTERN: waits up to 5 s for the server log to match
log_waits() {
  for _ in $(seq 1 100); do
    grep -q -- "$1" "$SERVER_LOG" && return 0
    sleep 0.05
  done
  return 1
}

# wait_server: the server was already signalled; wait for it, set STOP_STATUS
wait_server() {
  local st=0
  for _ in $(seq 1 600); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
    sleep 0.05
  done
  wait "$SERVER_PID" || st=$?
  STOP_STATUS=$st
  SERVER_PID=""
}
