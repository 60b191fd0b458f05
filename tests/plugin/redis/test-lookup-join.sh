#!/usr/bin/env bash
# A stream-table join whose table lives in Redis hashes
# ('<name>.lookup'='true', key.prefix): the rows a hash sink wrote are
# read by key as stream rows arrive; across a server restart the lookups
# reconnect, and with the server gone a lookup fails the run after
# connect.timeout with a clear error.
source "$(dirname "${BASH_SOURCE[0]}")/redis-lib.sh"
redis_start
cd "$SCRATCH"
rcli HSET cust:1 name Ann tier gold >/dev/null
rcli HSET cust:2 name Bob tier silver >/dev/null
printf 'order_id,customer_id\n1,1\n2,2\n3,3\n4,1\n' >orders.csv
"$VELO_BIN" run "${P[@]}" --format csv -e "SELECT o.order_id, c.id, c.name, c.tier
  FROM 'file://orders.csv' o LEFT JOIN customers c ON o.customer_id = c.id
  WITH ('customers.type'='redis_source', 'customers.url'='$REDIS_URL',
        'customers.key.prefix'='cust:', 'customers.lookup'='true',
        'customers.schema'='id BIGINT, name STRING, tier STRING')" >out.csv 2>run.log
check "each order with its customer from Redis, NULLs for a missing one" \
  test "$(tail -n +2 out.csv | sort | tr '\n' ';')" = "1,1,Ann,gold;2,2,Bob,silver;3,,,;4,1,Ann,gold;"

# A running join (orders from a FIFO) across a server restart.
J="SELECT o.order_id, c.id, c.name FROM 'file://feed' o
  LEFT JOIN customers c ON o.customer_id = c.id
  WITH ('customers.type'='redis_source', 'customers.url'='$REDIS_URL',
        'customers.key.prefix'='cust:', 'customers.lookup'='true',
        'customers.connect.timeout'='500ms',
        'customers.schema'='id BIGINT, name STRING')"
mkfifo feed
velo_bg live.csv live.err --format csv -e "$J"
exec 7>feed
echo '{"order_id":1,"customer_id":1}' >&7
wait_for "order 1 joined" 20 grep -qx '1,1,Ann' live.csv
redis_restart # no persistence: the hashes are gone
rcli HSET cust:3 name Cy >/dev/null
echo '{"order_id":2,"customer_id":3}' >&7
wait_for "order 2 joined after the restart" 20 grep -qx '2,3,Cy' live.csv
exec 7>&-
st=0; wait "$VPID" || st=$?
check "a join goes on across a server restart (exit 0)" test "$st" = 0
check "the order after the restart is joined with the new hash" \
  grep -qx '2,3,Cy' live.csv

# The server gone for good: the next lookup fails the run, saying why.
rm -f feed; mkfifo feed
velo_bg gone.csv gone.err --format csv -e "$J"
exec 7>feed
echo '{"order_id":1,"customer_id":3}' >&7
wait_for "order 1 joined" 20 grep -qx '1,3,Cy' gone.csv
redis_stop
echo '{"order_id":2,"customer_id":4}' >&7
st=0; wait "$VPID" || st=$?
exec 7>&-
check "a lookup without a server fails the run (exit 1)" test "$st" = 1
check "saying it cannot reach the server within connect.timeout" \
  grep -q "lookup: cannot reach redis://127.0.0.1:$REDIS_PORT within connect.timeout (500 ms): Connection refused" gone.err
finish
