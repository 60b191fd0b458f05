#!/usr/bin/env bash
# SIGHUP: a good file is applied and the change logged; a broken file is
# rejected with the key and line named, and the old configuration stays.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONF="$SCRATCH/velo.yaml"
mkdir -p "$SCRATCH/plugins"
# auth.enabled is false explicitly, so /api/* needs no credentials here.
cat >"$CONF" <<YAML
server:
  listen: "127.0.0.1:0"
  data_dir: "$SCRATCH/data"
http:
  max_body_size: 64KiB
auth:
  enabled: false
plugins:
  dirs: ["$SCRATCH/plugins"]
YAML
start_server "$CONF"

big="$(head -c 100000 /dev/zero | tr '\0' 'a')"
st="$(http_status POST /api/apikeys -H 'Content-Type: application/json' --data-binary "{\"name\":\"$big\"}")"
check "a 100 KB body is refused under max_body_size 64KiB" test "$st" = 413

# A good change: raise the body limit and the log level.
sed -i 's/max_body_size: 64KiB/max_body_size: 1MiB/' "$CONF"
printf 'log:\n  level: debug\n' >>"$CONF"
kill -HUP "$SERVER_PID"
check "the reload is logged with the changed keys" log_waits "http.max_body_size"
check "log.level change is logged" log_waits "log.level"
st="$(http_status POST /api/apikeys -H 'Content-Type: application/json' --data-binary "{\"name\":\"$big\",\"roles\":[\"viewer\"]}")"
check "after reload the 100 KB body passes the size limit" test "$st" != 413

# A broken change: an unknown key and a bad value; nothing of it applies.
cp "$CONF" "$SCRATCH/good.yaml"
sed -i 's/max_body_size: 1MiB/max_body_size: 12 parsecs/' "$CONF"
sed -i 's/^  data_dir:/  listn: nowhere\n  data_dir:/' "$CONF"
kill -HUP "$SERVER_PID"
check "a broken file is rejected" log_waits "reload rejected"
check "the rejection names the bad key" log_waits "max_body_size"
check "the rejection names the line" bash -c "grep -A5 'reload rejected' '$SERVER_LOG' | grep -q 'velo.yaml:[0-9]'"
st="$(http_status POST /api/apikeys -H 'Content-Type: application/json' --data-binary "{\"name\":\"$big\",\"roles\":[\"viewer\"]}")"
check "the old limit (1MiB) is still in force" test "$st" != 413
check "the server still answers" test "$(http_status GET /healthz)" = 200

stop_server TERM
check "SIGTERM exits 0 after reloads" test "$STOP_STATUS" = 0
finish
