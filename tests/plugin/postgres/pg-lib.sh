# Helpers for the PostgreSQL plugin tests: a throwaway cluster from Debian's
# PostgreSQL 15 (initdb in the scratch dir, wal_level=logical, loopback on a
# free port, scram-sha-256 for the test role), stopped and removed at exit.
# Source after tests/integration/lib.sh. Sets PGPORT, PGHOST, PG_SOCK,
# PG_USER, PG_PASS, PG_DB, PG_URL (postgres://user:pass@127.0.0.1:port/db).
# shellcheck shell=bash
source "${VELO_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}/tests/integration/lib.sh"

: "${VELO_PLUGIN_BUILD_DIR:?run through ctest (VELO_PLUGIN_BUILD_DIR unset)}"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_DIR="$SCRATCH/pg"
PG_DATA="$PG_DIR/data"
PG_SOCK="$PG_DIR/sock"
PG_LOG="$PG_DIR/server.log"
PG_USER=velo_test
PG_PASS='s3cret-Pw9'
PG_DB=velo
PGHOST=127.0.0.1
PGPORT=""
PG_PID=""
P=(--set "plugins.dirs=$VELO_PLUGIN_BUILD_DIR")
# Under ASan, a sanitizer report must not pass for the expected exit 1.
export ASAN_OPTIONS="${ASAN_OPTIONS:-exitcode=86}"

# as_pg CMD...: PostgreSQL refuses to run as root; run as the postgres user.
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_free_port() {
  local port
  for _ in $(seq 1 100); do
    port=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"; return 0
    fi
  done
  return 1
}

pg_stop() {
  if [[ -n "$PG_PID" ]]; then
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
    PG_PID=""
  fi
}

pg_cleanup() {
  pg_stop
  cleanup # lib.sh: removes $SCRATCH
}
trap pg_cleanup EXIT

# pg_start: initdb (once) and start the server; waits until it accepts.
pg_start() {
  if [[ ! -d "$PG_DATA" ]]; then
    mkdir -p "$PG_DATA" "$PG_SOCK"
    # The postgres user must reach the scratch dir and own the cluster.
    chmod 755 "$SCRATCH" "$PG_DIR"
    [[ $(id -u) -eq 0 ]] && chown -R postgres "$PG_DIR"
    # local socket: trust (the harness's psql); TCP: passwords only.
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust \
      --auth-host=scram-sha-256 -E UTF8 --locale=C >"$PG_DIR/initdb.log" 2>&1 \
      || { cat "$PG_DIR/initdb.log"; return 1; }
  fi
  # A free port may be taken between the probe and the bind (other tests
  # run in parallel): try another. A restart keeps its port, and retries.
  local tries
  for tries in 1 2 3 4 5; do
    if [[ -z "$PG_URL_SET" ]]; then PGPORT="$(pg_free_port)"; fi
    if as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 30 start -o \
      "-c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10 -c listen_addresses=127.0.0.1 -p $PGPORT -k $PG_SOCK -c fsync=off -c max_connections=50" \
      >/dev/null; then
      break
    fi
    if [[ $tries -eq 5 ]]; then cat "$PG_LOG"; return 1; fi
    sleep 0.5
  done
  PG_PID="$(head -1 "$PG_DATA/postmaster.pid")"
  for _ in $(seq 1 100); do
    if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT"; then break; fi
    sleep 0.1
  done
  if [[ -z "$PG_URL_SET" ]]; then
    # REPLICATION: the CDC tests create slots and stream changes.
    psql_su -c "CREATE ROLE $PG_USER LOGIN REPLICATION PASSWORD '$PG_PASS'" >/dev/null
    psql_su -c "CREATE DATABASE $PG_DB OWNER $PG_USER" >/dev/null
    PG_URL_SET=1
  fi
  PG_URL="postgres://$PG_USER:$PG_PASS@127.0.0.1:$PGPORT/$PG_DB"
}
PG_URL_SET=""

# psql_su ARGS...: superuser over the socket (trust), database postgres.
psql_su() {
  as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PGPORT" \
    -U postgres -d postgres "$@"
}
# psql_db ARGS...: the test role over TCP with its password, in $PG_DB.
psql_db() {
  PGPASSWORD="$PG_PASS" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
    -h 127.0.0.1 -p "$PGPORT" -U "$PG_USER" -d "$PG_DB" "$@"
}
# pg_val SQL: one value, unaligned.
pg_val() {
  psql_db -A -t -c "$1"
}

# velo_run ARGS...: velo run with the plugin dir
velo_run() {
  "$VELO_BIN" run "${P[@]}" "$@"
}

# velo_bg OUT ERR args...: velo run in the background; its pid in VPID
# (velo itself, not a subshell, so a signal reaches it). Killed at exit.
VPIDS=()
velo_bg() {
  local out="$1" err="$2"; shift 2
  "$VELO_BIN" run "${P[@]}" "$@" >"$out" 2>"$err" &
  VPID=$!
  VPIDS+=("$VPID")
}
velo_bg_cleanup() {
  local p
  for p in "${VPIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  pg_cleanup
}
trap velo_bg_cleanup EXIT

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
