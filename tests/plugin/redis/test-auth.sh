#!/usr/bin/env bash
# Authentication: the right password (in the URL or 'password') works, a
# wrong or missing one fails with a clear error, and the password never
# appears in the plugin's log lines; an unreachable server is named with the
# password redacted. A reconnection sends AUTH and SELECT again, and one
# refused (the password changed meanwhile) fails the run.
source "$(dirname "${BASH_SOURCE[0]}")/redis-lib.sh"
SECRET='s3cr:t@pass'
redis_start --requirepass "$SECRET"
cd "$SCRATCH"
rcli XADD s '*' data '{"id":1}' >/dev/null
URLPASS='s3cr%3At%40pass' # %-encoded in a URL

out="$(velo_redis --format csv -e "SELECT id FROM 'redis://:$URLPASS@127.0.0.1:$REDIS_PORT/s' LIMIT 1" 2>err1.txt)"
check "the right password in the URL (%-encoded) reads the stream" test "$out" = $'id\n1'
check "the log shows the URL with the password as ***" \
  grep -q "redis://\*\*\*@127.0.0.1:$REDIS_PORT/s" err1.txt
out="$(velo_redis --format csv -e "SELECT id FROM s LIMIT 1 WITH ('s.type'='redis_source', 's.url'='$REDIS_URL/s', 's.password'='$SECRET', 's.group'='g2')" 2>err2.txt)"
check "the right password in 'password' reads the stream" test "$out" = $'id\n1'
printf '{"id":7}\n' >in.json
velo_redis -e "CREATE STREAM o AS SELECT id FROM 'file://in.json' WITH ('o.type'='redis_sink', 'o.url'='$REDIS_URL', 'o.mode'='string', 'o.key.column'='id', 'o.password'='$SECRET')" 2>err3.txt
check "a sink authenticates too (GET 7)" test "$(rcli GET 7)" = '{"id":7}'

set +e
velo_redis -e "SELECT id FROM s LIMIT 1 WITH ('s.type'='redis_source', 's.url'='$REDIS_URL/s', 's.password'='wrong-$SECRET')" >/dev/null 2>err4.txt; st=$?
set -e
check "a wrong password fails the run (exit 1)" test "$st" = 1
check "with a clear error naming the server" \
  grep -q "cannot connect to redis://127.0.0.1:$REDIS_PORT/s: authentication failed" err4.txt
# The text after the "[redis:<name>]" label: the label itself is the
# engine's (for a URI source it is the URI; see docs/connectors/redis.md).
said() { grep -h '\[redis:' "$@" | sed 's/^[^]]*\] //'; }
check "the plugin's messages never show the password" \
  bash -c "! { $(declare -f said); said err1.txt err2.txt err3.txt err4.txt; } | grep -qE 's3cr|pass@'"
set +e
velo_redis -e "SELECT id FROM s LIMIT 1 WITH ('s.type'='redis_source', 's.url'='$REDIS_URL/s')" >/dev/null 2>err5.txt; st=$?
set -e
check "no password when one is required: exit 1 and says so" \
  bash -c "[ $st = 1 ] && grep -q 'the server requires a password' err5.txt"

# A sink into database 3 across a server restart: the reconnection sends
# AUTH and SELECT again, so rows written after it land in database 3 too.
is_db() { [ "$(rcli -n 3 GET "db:$1")" = "{\"id\":$1}" ]; }
mkfifo feed
velo_bg db.out db.err -e "CREATE STREAM o AS SELECT id FROM 'file://feed' WITH ('o.type'='redis_sink', 'o.url'='$REDIS_URL', 'o.mode'='string', 'o.key.column'='id', 'o.key.prefix'='db:', 'o.password'='$SECRET', 'o.db'='3')"
exec 7>feed
echo '{"id":1}' >&7
wait_for "row 1 in database 3" 20 is_db 1
redis_restart
wait_for "the sink reconnects" 20 grep -q "reconnected to" db.err
echo '{"id":2}' >&7
wait_for "row 2 in database 3" 20 is_db 2 || true
check "after the restart the sink authenticates and selects database 3" is_db 2
check "(and nothing went to database 0)" test -z "$(rcli -n 0 GET db:2)"
# The password changes while the server is away: the reconnection is
# refused, and the run fails saying why (retrying cannot help).
REDIS_ARGS=(--requirepass other-pass)
REDIS_AUTH=(--no-auth-warning -a other-pass)
redis_restart
echo '{"id":3}' >&7
st=0
for _ in $(seq 1 200); do kill -0 "$VPID" 2>/dev/null || break; sleep 0.05; done
wait "$VPID" || st=$?
exec 7>&-
check "a refused reconnection fails the sink's run (exit 1)" test "$st" = 1
check "saying the authentication failed" \
  grep -q "redis://127.0.0.1:$REDIS_PORT: authentication failed (WRONGPASS)" db.err
check "and never showing either password" \
  bash -c "! { $(declare -f said); said db.err; } | grep -qE 's3cr|pass@|other-pass'"

# Unreachable: a port nobody listens on.
dead="$(redis_free_port)"
set +e
velo_redis -e "SELECT id FROM s LIMIT 1 WITH ('s.type'='redis_source', 's.url'='redis://:hunter2@127.0.0.1:$dead/s')" >/dev/null 2>err6.txt; st=$?
set -e
check "an unreachable server fails the run (exit 1)" test "$st" = 1
check "naming the URI with the password redacted" \
  grep -q "cannot connect to redis://\*\*\*@127.0.0.1:$dead/s: Connection refused" err6.txt
check "the plugin's messages never show that password" \
  bash -c "! { $(declare -f said); said err6.txt; } | grep -q hunter2"
finish
