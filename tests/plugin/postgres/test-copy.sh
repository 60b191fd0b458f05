#!/usr/bin/env bash
# The COPY sink with values that COPY's text format must escape: tabs,
# newlines, carriage returns, backslashes (and a literal \N, which is not
# NULL), control characters, JSON \u escapes and raw UTF-8, NULL next to the
# empty string, nested JSON into a jsonb column. The expected text of every
# value is computed by Python from the input, not by the sink. Then upsert
# with keys repeated and deleted inside one batch (the last row of a key
# wins), back-pressure while a batch is in flight (max.transaction.rows),
# and a value of the wrong type: a clear error naming the sink and the
# column, nothing committed, no crash.
source "$(dirname "${BASH_SOURCE[0]}")/pg-lib.sh"
pg_start
cd "$SCRATCH"

psql_db <<'SQL'
CREATE TABLE vals (id integer, s text, doc jsonb, n numeric);
CREATE TABLE kv (k text PRIMARY KEY, v integer, note text);
INSERT INTO kv VALUES ('gone', 1, 'deleted by the batch'),
                      ('kept', 2, 'untouched');
SQL

python3 - <<'PY'
import hashlib, json
strings = [
    "tab\there", "nl\nhere", "cr\rhere", "crlf\r\nend", "back\\slash",
    "\\N", "\\", "trailing\\", "\\t is not a tab", "quote\"s and 'single'",
    "", " ", "ctrl\x01\x07\x1fchars", "héllo 日本 😀", "\u00e9\u65e5\U0001F600",
    "col1\tcol2\nrow2", "x'); DROP TABLE vals; --", None,
]
docs = [{"a": "x\\y\n", "b": [1, 2, {"c": None}]}, [1, "t\tab"], None,
        {"s": "\\N"}]
with open("in.jsonl", "w") as f, open("expected.txt", "w") as e:
    for i, s in enumerate(strings, 1):
        doc = docs[i % len(docs)]
        n = [1.5, -0.25, 1000, None][i % 4]
        # ensure_ascii alternates: \u escapes on odd rows, raw UTF-8 on even
        f.write(json.dumps({"id": i, "s": s, "doc": doc, "n": n},
                           ensure_ascii=(i % 2 == 1)) + "\n")
        md5 = "NULL" if s is None else hashlib.md5(s.encode()).hexdigest()
        ln = "NULL" if s is None else str(len(s))
        # jsonb's text form: ", " and ": " separators (keys here are sorted
        # already, as jsonb orders them)
        dj = "NULL" if doc is None else json.dumps(doc, ensure_ascii=False)
        nn = "NULL" if n is None else {1.5: "1.5", -0.25: "-0.25",
                                        1000: "1000"}[n]
        e.write(f"{i}|{md5}|{ln}|{dj}|{nn}\n")
# Upsert: a key repeated in one batch takes its last row; a delete then a
# new row of the same key leaves the new row; a trailing delete removes it.
ops = [("a", 1), ("b", 1), ("a", 2), ("c", 1), ("a", 3), ("b", "del"),
       ("b", 7), ("c", 2), ("c", "del"), ("gone", "del"), ("d\t\\", 4)]
state = {"gone": (1, "deleted by the batch"), "kept": (2, "untouched")}
with open("ops.jsonl", "w") as f:
    for n, (k, v) in enumerate(ops):
        if v == "del":
            f.write(json.dumps({"_op": "delete", "k": k, "v": None,
                                "note": None}) + "\n")
            state.pop(k, None)
        else:
            note = f"row {n}"
            f.write(json.dumps({"_op": "insert", "k": k, "v": v,
                                "note": note}) + "\n")
            state[k] = (v, note)
with open("kv-expected.txt", "w") as e:
    for k in sorted(state, key=lambda s: s.encode()):
        e.write(f"{k}|{state[k][0]}|{state[k][1]}\n")
PY

velo_run -e "INSERT INTO o SELECT * FROM 'file://in.jsonl' WITH ('o.type'='postgres_sink', 'o.url'='$PG_URL', 'o.table'='vals')" 2>err.txt
pg_val "SELECT id || '|' || coalesce(md5(s), 'NULL') || '|' || coalesce(length(s)::text, 'NULL') || '|' || coalesce(doc::text, 'NULL') || '|' || coalesce(n::text, 'NULL') FROM vals ORDER BY id" >got.txt
check "every awkward value lands exactly as written (md5, length, jsonb)" \
  diff expected.txt got.txt
check "the literal \\N is text, the JSON null is NULL" \
  test "$(pg_val "SELECT count(*) FILTER (WHERE s = E'\\\\N') || '/' || count(*) FILTER (WHERE s IS NULL) || '/' || count(*) FILTER (WHERE s = '') FROM vals")" = "1/1/1"

# Upsert, all in one batch (insert.rows past the row count).
velo_run -e "INSERT INTO p SELECT * FROM 'file://ops.jsonl' WITH ('p.type'='postgres_sink', 'p.url'='$PG_URL', 'p.table'='kv', 'p.mode'='upsert', 'p.key'='k', 'p.insert.rows'='1000')" 2>err.txt
pg_val "SELECT k || '|' || v || '|' || note FROM kv ORDER BY k COLLATE \"C\"" >kv-got.txt
check "upsert in one batch: last row per key wins, deletes apply in order" \
  diff kv-expected.txt kv-got.txt

# The same operations one row per batch must give the same table.
psql_db -c "TRUNCATE kv" -c "INSERT INTO kv VALUES ('gone', 1, 'deleted by the batch'), ('kept', 2, 'untouched')"
velo_run -e "INSERT INTO p SELECT * FROM 'file://ops.jsonl' WITH ('p.type'='postgres_sink', 'p.url'='$PG_URL', 'p.table'='kv', 'p.mode'='upsert', 'p.key'='k', 'p.insert.rows'='1')" 2>err.txt
pg_val "SELECT k || '|' || v || '|' || note FROM kv ORDER BY k COLLATE \"C\"" >kv-got1.txt
check "upsert one row per batch: the same table" diff kv-expected.txt kv-got1.txt

# A value the column refuses: exit 1 (not a crash: ASan exits 86), the
# sink's name, the server's reason and the column in one message.
psql_db -c "CREATE TABLE typed (id integer, s text)"
printf '%s\n' '{"id":1,"s":"a"}' '{"id":2,"s":"b"}' '{"id":"three","s":"c"}' >bad.jsonl
set +e
velo_run -e "INSERT INTO typed_out SELECT * FROM 'file://bad.jsonl' WITH ('typed_out.type'='postgres_sink', 'typed_out.url'='$PG_URL', 'typed_out.table'='typed')" >/dev/null 2>err.txt; st=$?
set -e
check "wrong type: exit 1" test "$st" = 1
check "wrong type: names the sink, the reason and the column" \
  bash -c "grep 'sink typed_out' err.txt | grep 'invalid input syntax for type integer' | grep -q 'column id'"
check "wrong type: the URI is redacted, no password" \
  bash -c "grep -q 'postgres://$PG_USER:\*\*\*@' err.txt && ! grep -v '^  ' err.txt | grep -q -- '$PG_PASS'"
check "wrong type: nothing of the batch committed" \
  test "$(pg_val 'SELECT count(*) FROM typed')" = 0
# A column the table does not have: the server's message, exit 1.
printf '%s\n' '{"id":1,"nope":"x"}' >cols.jsonl
set +e
velo_run -e "INSERT INTO typed_out SELECT * FROM 'file://cols.jsonl' WITH ('typed_out.type'='postgres_sink', 'typed_out.url'='$PG_URL', 'typed_out.table'='typed', 'typed_out.mode'='upsert', 'typed_out.key'='id')" >/dev/null 2>err.txt; st=$?
set -e
check "unknown column in upsert: exit 1 naming it" \
  bash -c "test $st = 1 && grep -q 'column \"nope\" does not exist' err.txt"
# Back-pressure: a trigger makes each batch's transaction last 0.2 s and
# logs its row count (a transition table); while one is in flight the next
# takes at most max.transaction.rows (5000) plus one engine batch (1024
# rows), so no batch can be bigger, and every row lands once.
psql_db <<'SQL'
CREATE TABLE bp (id integer, v text);
CREATE TABLE bp_batches (n bigint);
CREATE FUNCTION bp_log() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN INSERT INTO bp_batches SELECT count(*) FROM new_rows;
     PERFORM pg_sleep(0.2); RETURN NULL; END $$;
CREATE TRIGGER bp_log AFTER INSERT ON bp REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION bp_log();
SQL
seq 1 40000 | awk '{ printf "{\"id\":%d,\"v\":\"v%d\"}\n", $1, $1 }' >bp.jsonl
velo_run -e "INSERT INTO b SELECT * FROM 'file://bp.jsonl' WITH ('b.type'='postgres_sink', 'b.url'='$PG_URL', 'b.table'='bp', 'b.max.transaction.rows'='5000')" 2>err.txt
check "back-pressure: all 40000 rows once" \
  test "$(pg_val 'SELECT count(*) || $$/$$ || count(DISTINCT id) FROM bp')" = 40000/40000
echo "batches: $(pg_val "SELECT count(*) || ' of at most ' || max(n) || ' rows' FROM bp_batches")"
check "back-pressure: no batch above 5000 + 1024 rows, at least 7 of them" \
  test "$(pg_val 'SELECT max(n) <= 6024 AND count(*) >= 7 AND sum(n) = 40000 FROM bp_batches')" = t

# Rows in another format than JSON: exit 1 saying which property to set.
set +e
velo_run -e "INSERT INTO typed_out SELECT * FROM 'file://bad.jsonl' WITH ('typed_out.type'='postgres_sink', 'typed_out.url'='$PG_URL', 'typed_out.table'='typed', 'typed_out.format'='csv')" >/dev/null 2>err.txt; st=$?
set -e
check "CSV rows: exit 1 asking for 'typed_out.format' = 'json'" \
  bash -c "test $st = 1 && grep -q \"a row is not a JSON object\" err.txt && grep -q \"'typed_out.format' = 'json'\" err.txt"
[[ $FAILS -gt 0 ]] && { tail -20 err.txt; } || true
finish
