#!/usr/bin/env bash
# A stream-table join whose table is read by key from PostgreSQL
# ('<name>.lookup'='true'): each order meets its customer's row as it is
# in the database; a LEFT join keeps orders without a customer; the keys
# reach the server as a parameter, batched, and the cache spares repeats.
source "$(dirname "${BASH_SOURCE[0]}")/pg-lib.sh"
pg_start
cd "$SCRATCH"
psql_su -c "ALTER SYSTEM SET log_statement = 'all'" -c "SELECT pg_reload_conf()" >/dev/null
psql_db <<'SQL'
CREATE TABLE customers (id bigint PRIMARY KEY, name text, tier text);
INSERT INTO customers VALUES (1, 'Ann', 'gold'), (2, 'Bob', 'silver'),
  (3, 'Cy', 'gold');
SQL
printf 'order_id,customer_id,amount\n' >orders.csv
for i in $(seq 1 200); do
  echo "$i,$(( (i % 4) + 1 )),$((i * 10))" >>orders.csv
done

run_join() { # JOIN-KIND OUT
  velo_run --format csv -e "SELECT o.order_id, o.customer_id, c.name, c.tier
    FROM 'file://orders.csv' o $1 JOIN customers c ON o.customer_id = c.id
    WITH ('customers.type'='postgres_source', 'customers.url'='$PG_URL',
          'customers.table'='customers', 'customers.lookup'='true',
          'customers.schema'='id BIGINT, name STRING, tier STRING')" \
    >"$2" 2>"$2.log"
}
run_join "" inner.csv
check "INNER: the 150 orders of existing customers" \
  test "$(tail -n +2 inner.csv | wc -l)" = 150
python3 - orders.csv inner.csv >inner-check.txt <<'PY'
import csv, sys
names = {1: ("Ann", "gold"), 2: ("Bob", "silver"), 3: ("Cy", "gold")}
want = sorted((int(r["order_id"]), int(r["customer_id"])) + names[int(r["customer_id"])]
              for r in csv.DictReader(open(sys.argv[1]))
              if int(r["customer_id"]) in names)
got = sorted((int(r["order_id"]), int(r["customer_id"]), r["name"], r["tier"])
             for r in csv.DictReader(open(sys.argv[2])))
print("same" if want == got else "differ")
PY
check "each order has its customer's name and tier" grep -qx same inner-check.txt
run_join LEFT left.csv
check "LEFT: all 200 orders, the 50 of customer 4 with NULLs" \
  bash -c "test \$(tail -n +2 left.csv | wc -l) = 200 && test \$(grep -c '^[0-9]*,4,,\$' left.csv) = 50"
check "keys travel as a parameter: no key in any statement text" \
  bash -c "grep -q 'unnest(\$1::text\[\])' '$PG_LOG' && ! grep -E 'statement:.*customer_id = [0-9]' '$PG_LOG' | grep -q ."
check "one batched ask per run: the 200 orders' 4 keys in one call (cached)" \
  bash -c "test \$(grep -c 'execute.*unnest(\$1::text\[\])' '$PG_LOG') = 2"

# A missing declaration and a missing table are clear errors.
velo_run -e "SELECT o.order_id FROM 'file://orders.csv' o JOIN customers c ON o.customer_id = c.id
  WITH ('customers.type'='postgres_source', 'customers.url'='$PG_URL',
        'customers.table'='customers', 'customers.lookup'='true')" >noschema.out 2>&1 || true
check "a lookup table without '<name>.schema' is V6009" grep -q "V6009.*needs its columns declared" noschema.out
velo_run -e "SELECT o.order_id FROM 'file://orders.csv' o JOIN customers c ON o.customer_id = c.id
  WITH ('customers.type'='postgres_source', 'customers.url'='$PG_URL',
        'customers.table'='nope', 'customers.lookup'='true',
        'customers.schema'='id BIGINT, name STRING')" >nope.out 2>&1 || true
check "a missing table is refused when the join opens (V6010)" \
  grep -q "V6010.*cannot open lookup table 'customers'" nope.out
check "the password is never shown" bash -c "! grep -q '$PG_PASS' nope.out noschema.out"
finish
