#!/usr/bin/env bash
# PostgreSQL CDC value mapping and the rarer messages: numbers, booleans,
# NULLs, text with quotes, tabs and newlines, timestamps (UTC session);
# an update that leaves a large TOASTed value untouched (the server does
# not send it: absent, NULL) while a small column changes; TRUNCATE as one
# _op=truncate record; changes to a table outside the publication never
# arrive.
source "$(dirname "${BASH_SOURCE[0]}")/pg-lib.sh"
pg_start
cd "$SCRATCH"
psql_db <<'SQL'
CREATE TABLE ty (id integer PRIMARY KEY, n numeric(8,3), f double precision,
  ok boolean, at timestamptz, note text, blob text);
-- out of line, uncompressed: an unchanged value is not sent on update
ALTER TABLE ty ALTER COLUMN blob SET STORAGE EXTERNAL;
CREATE TABLE other (id integer);
SQL
velo_bg out.json out.err --format json -e "SELECT _op, id, n, f, ok, at, note, blob IS NULL AS blob_null, _table FROM s WITH ('s.type'='postgres_source', 's.url'='$PG_URL', 's.table'='ty', 's.mode'='cdc', 's.snapshot'='false')"
slot_active() {
  [[ "$(pg_val "SELECT active FROM pg_replication_slots WHERE slot_name = 'velo_s'")" == t ]]
}
wait_for "the walsender is up" 30 slot_active
psql_db <<'SQL'
INSERT INTO ty VALUES (1, 12.5, -0.25, true, '2024-03-04 05:06:07.5+02',
  E'say "hi"\tand\nbye', NULL);
INSERT INTO ty VALUES (2, NULL, NULL, false, NULL, NULL, repeat(md5('x'), 4000));
INSERT INTO other VALUES (99);
UPDATE ty SET ok = true WHERE id = 2;
TRUNCATE ty;
SQL
wait_for "4 records" 30 bash -c "[ \$(wc -l < out.json) -ge 4 ]"
sleep 0.5
kill -TERM "$VPID"; wait "$VPID" || true
check "values, the untouched TOASTed value and TRUNCATE" python3 - out.json <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 4, rows
a, b, c, d = rows
assert a == {"_op": "insert", "id": 1, "n": 12.5, "f": -0.25, "ok": True,
             "at": "2024-03-04T03:06:07.500Z", "note": 'say "hi"\tand\nbye',
             "blob_null": True, "_table": "public.ty"}, a
assert b["_op"] == "insert" and b["id"] == 2 and b["ok"] is False, b
assert b["n"] is None and b["at"] is None and b["blob_null"] is False, b
# the update: ok changed; the 128 KB blob was not sent (unchanged TOAST)
assert c["_op"] == "update" and c["id"] == 2 and c["ok"] is True, c
assert c["blob_null"] is True, c
assert d["_op"] == "truncate" and d["id"] is None and d["_table"] == "public.ty", d
PY
finish
