#!/usr/bin/env bash
# PostgreSQL sink throughput against psql's \copy, on a throwaway server.
#
#   bash bench/connectors/postgres.sh           # 1,000,000 Nexmark bids
#   N=200000 RUNS=1 BUILD=build bash bench/connectors/postgres.sh
#
# Starts Debian's PostgreSQL 15 (initdb in a temporary directory, loopback
# on a free port, fsync=off like the plugin tests: the figures are about the
# client path, not the disk), generates N Nexmark bids as CSV
# (nexmark_gen --seed 42), then, best of RUNS, into a fresh table of the
# same definition each time:
#   copy:   psql \copy bids FROM bids.csv (CSV, one COPY statement);
#   insert: velo run, the CSV through the postgres sink, mode insert
#           (COPY ... FROM STDIN into the table, one transaction per
#           batch, on the worker's event loop);
#   upsert: the same, mode upsert keyed by ts (unique per bid: one
#           millisecond apart), so the table has a primary key on ts and
#           every batch is COPY into a TEMP staging table, then INSERT ...
#           SELECT DISTINCT ON (ts) ... ON CONFLICT (ts) DO UPDATE.
# EXTRA='...' adds sink properties to both velo runs (e.g.
# EXTRA=", 'o.insert.rows'='20000'").
# Each table is checked to hold N rows afterwards. Rows per second =
# N / wall time of the command (velo's includes its start, reading and
# parsing the CSV, and the final commit). The server is stopped and its
# directory removed at exit.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${BUILD:-$ROOT/build/bench-postgres}"
N="${N:-1000000}"
RUNS="${RUNS:-3}"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"

[[ -x "$PG_BIN/initdb" ]] || {
  echo "PostgreSQL 15 not found in $PG_BIN (apt-get install postgresql-15, or set PG_BIN)"
  exit 1
}
if [[ ! -x "$BUILD/velo" || ! -x "$BUILD/bench/nexmark_gen" ||
  ! -e "$BUILD/plugins/postgres.so" ]]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j2 --target velo velo-plugin-postgres nexmark_gen >/dev/null
fi
BUILD="$(cd "$BUILD" && pwd)" # the runs below happen in a scratch dir
VELO=("$BUILD/velo" run --set "plugins.dirs=$BUILD/plugins")
WORK="$(mktemp -d "${TMPDIR:-/tmp}/velo-bench-pg-XXXXXX")"
PG_DATA="$WORK/pg/data"
PG_SOCK="$WORK/pg/sock"
PG_USER=velo_bench
PG_PASS='bench-Pw7'
PG_DB=bench
PGPORT=""
STARTED=""

# PostgreSQL refuses to run as root: run the server as user postgres.
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
cleanup() {
  if [[ -n "$STARTED" ]]; then
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"

free_port() {
  local port
  for _ in $(seq 1 100); do
    port=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"; return 0
    fi
  done
  return 1
}

mkdir -p "$PG_DATA" "$PG_SOCK"
chmod 755 "$WORK" "$WORK/pg"
[[ $(id -u) -eq 0 ]] && chown -R postgres "$WORK/pg"
# Local socket: trust (psql as superuser); TCP: the bench role's password.
as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust \
  --auth-host=scram-sha-256 -E UTF8 --locale=C >"$WORK/initdb.log" 2>&1 ||
  { cat "$WORK/initdb.log"; exit 1; }
for tries in 1 2 3 4 5; do # the probed port may be taken before the bind
  PGPORT="$(free_port)"
  if as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$WORK/pg/server.log" -w -t 30 start -o \
    "-c listen_addresses=127.0.0.1 -p $PGPORT -k $PG_SOCK -c fsync=off" >/dev/null; then
    STARTED=1; break
  fi
  [[ $tries -eq 5 ]] && { cat "$WORK/pg/server.log"; exit 1; }
  sleep 0.5
done
psql_su() {
  as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PGPORT" \
    -U postgres -d postgres "$@"
}
# The bench role over TCP with its password, like velo connects.
psql_db() {
  PGPASSWORD="$PG_PASS" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
    -h 127.0.0.1 -p "$PGPORT" -U "$PG_USER" -d "$PG_DB" "$@"
}
psql_su -c "CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASS'" >/dev/null
psql_su -c "CREATE DATABASE $PG_DB OWNER $PG_USER" >/dev/null
URL="postgres://$PG_USER:$PG_PASS@127.0.0.1:$PGPORT/$PG_DB"

"$BUILD/bench/nexmark_gen" --records "$N" --format csv --seed 42 >bids.csv
BYTES="$(stat -c %s bids.csv)"

now() { date +%s.%N; }
# cpu CMD...: run it; its user+system CPU seconds go to cpu.txt.
cpu() {
  local st=0
  /usr/bin/time -f '%U %S' -o cpu.time "$@" || st=$?
  awk '{ print $1 + $2 }' cpu.time >cpu.txt
  return "$st"
}
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {print b - a}'; }
rate() { awk -v n="$N" -v s="$1" 'BEGIN {printf "%.0f", n / s}'; }

# fresh TABLE [KEY]: (re)create the bids table, with a primary key on KEY.
fresh() {
  local pk=""
  [[ -n "${2:-}" ]] && pk=", PRIMARY KEY ($2)"
  psql_db -c "SET client_min_messages = warning" \
    -c "DROP TABLE IF EXISTS $1" \
    -c "CREATE TABLE $1 (auction BIGINT, bidder BIGINT, price BIGINT,
          channel TEXT, url TEXT, ts TIMESTAMP$pk)" >/dev/null
}
check() { # check TABLE: N rows, and the same as the \copy's on a sample
  local got
  got="$(psql_db -A -t -c "SELECT count(*) FROM $1")"
  [[ "$got" = "$N" ]] || { echo "$1 holds $got of $N rows"; tail velo.log; exit 1; }
  got="$(psql_db -A -t -c "SELECT count(*) FROM $1 a JOIN copy_ref c
           USING (auction, bidder, price, channel, url, ts)")"
  [[ "$got" = "$N" ]] || { echo "$1: only $got of $N rows equal to \\copy's"; exit 1; }
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(. /etc/os-release; echo "$PRETTY_NAME"), $("$PG_BIN/postgres" -V)"
echo "date: $(date -u +%Y-%m-%d), N=$N bids ($((BYTES / N)) bytes per CSV line), best of $RUNS"

copy=() ins=() ups=()
for _ in $(seq 1 "$RUNS"); do
  fresh copy_ref
  t0="$(now)"
  psql_db -c "\\copy copy_ref FROM 'bids.csv' WITH (FORMAT csv, HEADER true)"
  copy+=("$(since "$t0")")
  got="$(psql_db -A -t -c "SELECT count(*) FROM copy_ref")"
  [[ "$got" = "$N" ]] || { echo "\\copy loaded $got of $N rows"; exit 1; }

  fresh bids_ins
  t0="$(now)"
  cpu "${VELO[@]}" -e "INSERT INTO o SELECT * FROM 'file://bids.csv'
    WITH ('o.type'='postgres_sink', 'o.url'='$URL', 'o.table'='bids_ins'${EXTRA:-})" \
    >/dev/null 2>velo.log || { tail velo.log; exit 1; }
  ins+=("$(since "$t0") $(cat cpu.txt)")
  check bids_ins
  psql_db -c "DROP TABLE bids_ins"

  fresh bids_ups ts
  t0="$(now)"
  cpu "${VELO[@]}" -e "INSERT INTO o SELECT * FROM 'file://bids.csv'
    WITH ('o.type'='postgres_sink', 'o.url'='$URL', 'o.table'='bids_ups',
          'o.mode'='upsert', 'o.key'='ts'${EXTRA:-})" \
    >/dev/null 2>velo.log || { tail velo.log; exit 1; }
  ups+=("$(since "$t0") $(cat cpu.txt)")
  check bids_ups
  psql_db -c "DROP TABLE bids_ups"
done

row() { # row WHAT "TIME [CPU]"...: the best time, and that run's velo CPU
  local what="$1"; shift
  local s c
  read -r s c < <(printf '%s\n' "$@" | sort -g | head -1)
  printf '| %s | %.2f s | %s rows/s | %s |\n' "$what" "$s" "$(rate "$s")" \
    "$([[ -n "$c" ]] && printf '%.2f s' "$c" || echo —)"
}
echo
echo "| run | best time | rows/s | velo CPU (user+sys) |"
echo "|---|---:|---:|---:|"
row "psql \\copy (CSV)" "${copy[@]}"
row "velo run → postgres sink, insert" "${ins[@]}"
row "velo run → postgres sink, upsert keyed by ts" "${ups[@]}"
