#!/usr/bin/env bash
# velo inspect against PostgreSQL: list (every table, view and column with
# its type and nullability, compared with information_schema as psql sees
# it), describe (one table with its primary key; schema-qualified), text
# and JSON output; a missing table and a wrong password exit 1 with the
# URL redacted; a verb the connector lacks is a usage error.
source "$(dirname "${BASH_SOURCE[0]}")/pg-lib.sh"
pg_start
cd "$SCRATCH"

psql_db <<'SQL'
CREATE TABLE orders (id integer PRIMARY KEY, customer text NOT NULL,
  amount numeric(10,2), placed timestamptz);
CREATE SCHEMA sales;
CREATE TABLE sales.items (order_id integer, line smallint, sku varchar(12),
  PRIMARY KEY (order_id, line));
CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 100;
SQL
inspect() { "$VELO_BIN" inspect "${P[@]}" "$@"; }

inspect "$PG_URL" list --format json >list.json 2>list.err
# The same facts from information_schema, independently.
psql_db -A -t -F '|' -c "SELECT table_schema, table_name, column_name, CASE WHEN data_type = 'USER-DEFINED' THEN udt_name ELSE data_type END, is_nullable, character_maximum_length, numeric_precision, numeric_scale FROM information_schema.columns WHERE table_schema IN ('public', 'sales') ORDER BY table_schema, table_name, ordinal_position" >expected.txt
check "list: every table and view with its columns, types and nullability" \
  python3 - list.json expected.txt <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
got = [(t["schema"], t["table"], c["name"], c["type"], c["nullable"])
       for t in doc for c in t["columns"]]
norm = {"integer": "integer", "text": "text", "smallint": "smallint",
        "numeric": "numeric", "character varying": "character varying",
        "timestamp with time zone": "timestamp with time zone"}
want = []
for line in open(sys.argv[2]).read().split("\n"):
    if not line:
        continue
    s, t, c, ty, nullable, maxlen, prec, scale = line.split("|")
    if ty == "numeric" and prec:
        ty = "numeric(%s,%s)" % (prec, scale)
    if ty == "character varying" and maxlen:
        ty = "character varying(%s)" % maxlen
    want.append((s, t, c, ty, nullable == "YES"))
assert got == want, (got, want)
kinds = {(t["schema"], t["table"]): t["kind"] for t in doc}
assert kinds[("public", "big_orders")] == "view", kinds
assert kinds[("public", "orders")] == "table", kinds
PY

out="$(inspect "$PG_URL" describe sales.items 2>/dev/null)"
expected='sales.items
  order_id  integer NOT NULL
  line      smallint NOT NULL
  sku       character varying(12)
  primary key: order_id, line'
check "describe (text): columns, NOT NULL and the two-column primary key" \
  test "$out" = "$expected"
inspect "$PG_URL" describe orders --format json >d.json 2>/dev/null
check "describe (json): the documented object" python3 - d.json <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["schema"] == "public" and d["table"] == "orders", d
assert d["primary_key"] == ["id"], d
assert [c["name"] for c in d["columns"]] == ["id", "customer", "amount", "placed"]
assert d["columns"][1] == {"name": "customer", "type": "text", "nullable": False}
PY

set +e
inspect "$PG_URL" describe nope >/dev/null 2>e1.txt; st1=$?
inspect "postgres://$PG_USER:Wrong-Pw5@127.0.0.1:$PGPORT/$PG_DB" list >/dev/null 2>e2.txt; st2=$?
inspect "$PG_URL" groups >/dev/null 2>e3.txt; st3=$?
inspect "$PG_URL" describe >/dev/null 2>e4.txt; st4=$?
set -e
check "describe of a missing table: exit 1, named" \
  bash -c "test $st1 = 1 && grep -q 'no table, view or foreign table named nope' e1.txt"
check "wrong password: exit 1, the reason, the URL redacted, no secret" \
  bash -c "test $st2 = 1 && grep -q 'password authentication failed' e2.txt && grep -q '$PG_USER:\*\*\*@' e2.txt && ! grep -q Wrong-Pw5 e2.txt"
check "the password of a good URL appears in no message" \
  bash -c "! grep -q -- '$PG_PASS' e1.txt e3.txt"
check "an unsupported verb is a usage error" \
  bash -c "test $st3 = 2 && grep -q \"not 'groups'\" e3.txt"
check "describe without a name is a usage error" test "$st4" = 2
finish
