# Helpers for the Redis plugin tests: a real redis-server (Debian's) on
# 127.0.0.1 and a free port with a scratch dir, stopped at exit.
# Sourced by tests/plugin/redis/test-*.sh after tests/integration/lib.sh.
#
#   redis_start [extra redis-server args...]   sets REDIS_PORT, REDIS_URL
#   redis_restart                              same port, dir and args
#   redis_stop                                 SIGTERM and wait
#   rcli args...                               redis-cli against it
#   velo_redis args...                         velo run with the plugin dir
source "${VELO_SOURCE_DIR:?run through ctest}/tests/integration/lib.sh"
: "${VELO_PLUGIN_BUILD_DIR:?run through ctest}"

REDIS_PID=""
REDIS_PORT=""
REDIS_URL=""
REDIS_DIR="$SCRATCH/redis"
REDIS_ARGS=()
REDIS_AUTH=()
REDIS_LOG="$SCRATCH/redis.log"
mkdir -p "$REDIS_DIR"

redis_cleanup() {
  local p
  for p in "${VPIDS[@]}"; do
    kill -KILL "$p" 2>/dev/null || true
  done
  if [[ -n "$REDIS_PID" ]] && kill -0 "$REDIS_PID" 2>/dev/null; then
    kill -KILL "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
  fi
  cleanup # lib.sh's: stops a velo server and removes $SCRATCH
}
trap redis_cleanup EXIT

# A port nobody listens on (checked again by redis itself at bind).
redis_free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 40000))
    if ! ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then
      echo "$p"; return 0
    fi
  done
  return 1
}

rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "${REDIS_AUTH[@]}" "$@"; }

# redis_launch: start on $REDIS_PORT with $REDIS_ARGS, wait for PING. It
# keeps none of the test's descriptors (a FIFO's writer must be able to
# close it).
redis_launch() {
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$REDIS_DIR" \
    --save '' --appendonly no --daemonize no --logfile "$REDIS_LOG" \
    "${REDIS_ARGS[@]}" 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &
  REDIS_PID=$!
  for _ in $(seq 1 200); do
    if rcli PING 2>/dev/null | grep -q PONG; then return 0; fi
    if ! kill -0 "$REDIS_PID" 2>/dev/null; then
      wait "$REDIS_PID" 2>/dev/null || true
      REDIS_PID=""; return 1
    fi
    sleep 0.05
  done
  echo "redis-server did not answer PING:"; tail -n 20 "$REDIS_LOG"
  return 1
}

redis_start() {
  REDIS_ARGS=("$@")
  REDIS_AUTH=()
  local i
  for ((i = 0; i < ${#REDIS_ARGS[@]}; i++)); do
    if [[ "${REDIS_ARGS[$i]}" == --requirepass ]]; then
      REDIS_AUTH=(--no-auth-warning -a "${REDIS_ARGS[$((i + 1))]}")
    fi
  done
  for _ in 1 2 3 4 5; do
    REDIS_PORT="$(redis_free_port)"
    if redis_launch; then
      REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
      return 0
    fi
  done
  echo "cannot start redis-server:"; tail -n 20 "$REDIS_LOG"; return 1
}

redis_stop() {
  if [[ -n "$REDIS_PID" ]]; then
    kill -TERM "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=""
  fi
}

# Stop and start again on the same port, dir and arguments (with
# --appendonly yes among them the data survives).
redis_restart() {
  redis_stop
  for _ in $(seq 1 100); do
    redis_launch && return 0
    sleep 0.1 # the port may linger a moment
  done
  return 1
}

P=(--set "plugins.dirs=$VELO_PLUGIN_BUILD_DIR")
velo_redis() { "$VELO_BIN" run "${P[@]}" "$@"; }
# velo_bg OUT ERR args...: velo run in the background; its pid in VPID
# (velo itself, not a subshell, so a signal reaches it). Killed at exit.
VPIDS=()
velo_bg() {
  local out="$1" err="$2"; shift 2
  "$VELO_BIN" run "${P[@]}" "$@" >"$out" 2>"$err" &
  VPID=$!
  VPIDS+=("$VPID")
}

# wait_for DESC SECONDS command...: polls until the command succeeds.
wait_for() {
  local what="$1" secs="$2"; shift 2
  local n=$((secs * 20))
  for _ in $(seq 1 "$n"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.05
  done
  echo "timed out waiting for: $what"; return 1
}
