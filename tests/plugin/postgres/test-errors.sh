#!/usr/bin/env bash
# Connection errors: a wrong password (in the URI, or the 'password'
# property over a right URI), a server that refuses, a server that never
# answers (connect.timeout), an unknown database, an unsupported mode.
# Each exits 1 with a message naming the URI with the password masked, and
# the password never shows in what the plugin logs.
source "$(dirname "${BASH_SOURCE[0]}")/pg-lib.sh"
pg_start
cd "$SCRATCH"
psql_db -c "CREATE TABLE t (id int)" -c "INSERT INTO t VALUES (1)"
echo '{"a":1}' >in.jsonl
BAD='WrongPw-777'
BAD_URL="postgres://$PG_USER:$BAD@127.0.0.1:$PGPORT/$PG_DB"
REDACTED="postgres://$PG_USER:\*\*\*@127.0.0.1:$PGPORT/$PG_DB"

# run_err SQL: velo run expected to fail; status in st, stderr in err.txt
run_err() {
  set +e
  velo_run -e "$1" >out.txt 2>err.txt
  st=$?
  set -e
}
# plugin_lines: what the plugin and the engine's runtime logged (the
# planner also quotes the statement itself under an error; that line is
# the user's own text and is left out here).
plugin_lines() { grep -v '^  ' err.txt || true; }

run_err "SELECT * FROM $BAD_URL?table=t"
check "wrong password (source, URI): exit 1" test "$st" = 1
check "wrong password: the server's reason and the redacted URI" \
  bash -c "grep -q 'password authentication failed for user \"$PG_USER\"' err.txt && grep -q '$REDACTED' err.txt"
check "wrong password: not in the plugin's messages" \
  bash -c "! (grep -v '^  ' err.txt | grep -q -- '$BAD'); ! grep -q -- '$BAD' out.txt"

run_err "SELECT * FROM s WITH ('s.type'='postgres_source', 's.url'='$PG_URL', 's.password'='$BAD', 's.table'='t')"
check "the password property wins over the URI's (and is wrong): exit 1" \
  bash -c "test $st = 1 && grep -q 'password authentication failed' err.txt"
check "the property's password is not logged" \
  bash -c "! (grep -v '^  ' err.txt | grep -q -- '$BAD')"

run_err "INSERT INTO o SELECT 1 AS id FROM 'file://in.jsonl' WITH ('o.type'='postgres_sink', 'o.url'='$BAD_URL', 'o.table'='t')"
check "wrong password (sink): exit 1, redacted URI, no password anywhere" \
  bash -c "test $st = 1 && grep -q 'password authentication failed' err.txt && grep -q '$REDACTED' err.txt && ! grep -q -- '$BAD' err.txt"

# A libpq key=value string: its password is masked too.
run_err "SELECT * FROM s WITH ('s.type'='postgres_source', 's.url'='host=127.0.0.1 port=$PGPORT dbname=$PG_DB user=$PG_USER password=$BAD', 's.table'='t')"
check "key=value conninfo with a wrong password: exit 1, password=*** in the message" \
  bash -c "test $st = 1 && grep -q 'port=$PGPORT dbname=$PG_DB user=$PG_USER password=\*\*\*' err.txt && ! (grep -v '^  ' err.txt | grep -q -- '$BAD')"

# Nothing listens on this port.
FREE="$(pg_free_port)"
run_err "SELECT * FROM s WITH ('s.type'='postgres_source', 's.url'='postgres://$PG_USER:$PG_PASS@127.0.0.1:$FREE/$PG_DB', 's.table'='t')"
check "refused: exit 1 naming host and port, password masked" \
  bash -c "test $st = 1 && grep -q 'cannot connect to postgres://$PG_USER:\*\*\*@127.0.0.1:$FREE/$PG_DB' err.txt && grep -qi 'refused' err.txt && ! (grep -v '^  ' err.txt | grep -q -- '$PG_PASS')"

# A server that accepts the TCP connection and never answers.
SILENT="$(pg_free_port)"
python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $SILENT)); s.listen(8); time.sleep(30)" &
SILENT_PID=$!
for _ in $(seq 1 100); do # until it listens (python starts slowly under load)
  if (exec 3<>"/dev/tcp/127.0.0.1/$SILENT") 2>/dev/null; then break; fi
  sleep 0.05
done
t0=$SECONDS
run_err "INSERT INTO o SELECT 1 AS id FROM 'file://in.jsonl' WITH ('o.type'='postgres_sink', 'o.url'='postgres://$PG_USER@127.0.0.1:$SILENT/$PG_DB', 'o.table'='t', 'o.connect.timeout'='2s')"
took=$((SECONDS - t0))
kill "$SILENT_PID" 2>/dev/null || true; wait "$SILENT_PID" 2>/dev/null || true
check "silent server: connect.timeout bounds the wait (exit 1, ${took}s)" \
  bash -c "test $st = 1 && test $took -le 6 && grep -qi 'timeout' err.txt"

run_err "SELECT * FROM postgres://$PG_USER:$PG_PASS@127.0.0.1:$PGPORT/nodb?table=t"
check "unknown database: exit 1 with the server's reason" \
  bash -c "test $st = 1 && grep -q 'database \"nodb\" does not exist' err.txt"

run_err "SELECT * FROM s WITH ('s.type'='postgres_source', 's.url'='$PG_URL', 's.query'='SELECT 1', 's.mode'='cdc')"
check "mode cdc over a query: exit 1, asks for a table" \
  bash -c "test $st = 1 && grep -q \"mode 'cdc' captures a table's changes\" err.txt"
run_err "SELECT * FROM s WITH ('s.type'='postgres_source', 's.url'='$PG_URL', 's.table'='t', 's.mode'='changes')"
check "an unknown source mode: exit 1, names both modes" \
  bash -c "test $st = 1 && grep -q \"unknown source mode 'changes'\" err.txt && grep -q cdc err.txt"

run_err "SELECT * FROM s WITH ('s.type'='postgres_source', 's.url'='$PG_URL', 's.tabel'='t')"
check "a misspelt property: exit 1 naming it and 'table'" \
  bash -c "test $st = 1 && grep -q 'tabel' err.txt && grep -q 'table' err.txt"

"$VELO_BIN" plugins "${P[@]}" >plugins.txt 2>&1
check "velo plugins lists postgres loaded" bash -c "grep postgres plugins.txt | grep -q loaded"
finish
