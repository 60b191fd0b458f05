# Shared by tests/plugin/kafka/test-*.sh: the mock Kafka cluster
# (velo-kafka-mock, librdkafka's built-in mock) on loopback, kcat as an
# independent client, and velo run with the built plugins.
source "${VELO_SOURCE_DIR:?run through ctest}/tests/integration/lib.sh"

MOCK_BIN="$VELO_BUILD_DIR/bin/velo-kafka-mock"
MOCK_PID=""
ADDR=""
P=(--set "plugins.dirs=$VELO_PLUGIN_BUILD_DIR")
BG_PIDS=()

kafka_cleanup() {
  if [[ $FAILS -gt 0 ]]; then # what velo said, for the failure report
    for f in "$SCRATCH"/*.log; do
      [[ -f "$f" ]] && { echo "--- $(basename "$f")"; tail -n 15 "$f"; }
    done
  fi
  for p in "${BG_PIDS[@]}"; do
    kill -KILL "$p" 2>/dev/null || true
  done
  if [[ -n "$MOCK_PID" ]]; then
    exec 7>&- || true
    kill -TERM "$MOCK_PID" 2>/dev/null || true
  fi
  cleanup
}
trap kafka_cleanup EXIT

command -v kcat >/dev/null || { echo "kcat not installed (apt-get install kcat)"; exit 1; }
[[ -x "$MOCK_BIN" ]] || { echo "no $MOCK_BIN: build velo-plugin-kafka"; exit 1; }

# start_mock ARGS...: starts the cluster, sets ADDR; commands go to fd 7
start_mock() {
  mkfifo "$SCRATCH/mock.ctl"
  "$MOCK_BIN" "$@" <"$SCRATCH/mock.ctl" >"$SCRATCH/mock.out" \
    2>"$SCRATCH/mock.err" &
  MOCK_PID=$!
  exec 7>"$SCRATCH/mock.ctl"
  for _ in $(seq 1 100); do
    ADDR="$(head -1 "$SCRATCH/mock.out" 2>/dev/null || true)"
    [[ -n "$ADDR" ]] && return 0
    sleep 0.05
  done
  echo "mock cluster did not start:"; cat "$SCRATCH/mock.err"; return 1
}

# mock_cmd "down 1": sends a control line, waits for its answer
mock_cmd() {
  local before
  before="$(wc -l <"$SCRATCH/mock.out")"
  echo "$1" >&7
  for _ in $(seq 1 100); do
    if [[ "$(wc -l <"$SCRATCH/mock.out")" -gt "$before" ]]; then
      tail -1 "$SCRATCH/mock.out" | grep -q '^ok$'
      return
    fi
    sleep 0.05
  done
  return 1
}

# produce TOPIC: stdin lines become messages (kcat -P); KEY|value with -K
produce() {
  kcat -P -b "$ADDR" -t "$1" "${@:2}"
}

# consume TOPIC [FORMAT]: every message now in the topic, one per line
consume() {
  kcat -C -b "$ADDR" -t "$1" -e -q -f "${2:-%s\n}"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for CMD...: retries for up to 60 s
wait_for() {
  for _ in $(seq 1 600); do
    if "$@"; then return 0; fi
    sleep 0.1
  done
  return 1
}

# lines_at_least FILE N: the file has N lines or more
lines_at_least() {
  [[ -f "$1" && "$(wc -l <"$1")" -ge "$2" ]]
}

# stop_bg PID: SIGINT (final emits, flush, commit), wait; sets BG_STATUS
stop_bg() {
  kill -INT "$1" 2>/dev/null || true
  BG_STATUS=0
  wait "$1" || BG_STATUS=$?
}
