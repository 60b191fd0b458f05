#!/usr/bin/env bash
# PostgreSQL lookups through the engine's adapter (core/connectors/
# lookup.c): velo-ut-lookup, given this server's URL, opens the postgres
# plugin for keyed reads of lk_customers and checks the decoded rows
# (hits, a miss, a repeated key, NULLs, booleans, a timestamp, a name with
# quotes; a key that is no integer is an error; a missing table is refused
# at open). The statement is checked too: keys travel as one text[]
# parameter, so the server's log shows no key in any statement text.
source "$(dirname "${BASH_SOURCE[0]}")/pg-lib.sh"
: "${VELO_BUILD_DIR:?run through ctest}"
pg_start
cd "$SCRATCH"
psql_su -c "ALTER SYSTEM SET log_statement = 'all'" -c "SELECT pg_reload_conf()" >/dev/null

psql_db <<'SQL'
CREATE TABLE lk_customers (id integer PRIMARY KEY, name text, vip boolean,
  credit numeric(8,2), since timestamp);
INSERT INTO lk_customers VALUES
  (1, 'Ann', true, 10.5, '2024-01-02 03:04:05'),
  (2, 'Bob "B"', false, NULL, NULL),
  (3, 'Cy', NULL, -1, NULL);
SQL

st=0
VELO_LOOKUP_PG_URL="$PG_URL" "$VELO_BUILD_DIR/tests/velo-ut-lookup" >ut.out 2>ut.err || st=$?
grep -E "Test:|FAIL|^ +[0-9]+\. |asserts" ut.out || true
check "the adapter's PostgreSQL lookups pass (velo-ut-lookup)" test "$st" = 0
check "and the PostgreSQL part ran to its end" grep -q "postgres lookups checked" ut.out
check "keys are a parameter: no statement carries a key" \
  bash -c "grep -q 'unnest(\$1::text\[\])' '$PG_LOG' && ! grep -E 'statement:.*(Bob|7\",)' '$PG_LOG' | grep -q ."
finish
