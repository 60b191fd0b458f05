#!/usr/bin/env bash
# A stream-table join whose table lives in Redis hashes
# ('<name>.lookup'='true', key.prefix): the rows a hash sink wrote are
# read by key as stream rows arrive.
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
finish
