#!/usr/bin/env bash
# velo run / validate / explain end to end: SQL from a file, -e and stdin;
# data from stdin equal to the same data from a file; exit codes; every
# error reported by validate (text and JSON); the plan from explain; and a
# clean stop on Ctrl-C over endless input (final results, flushed output).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DATA="$VELO_SOURCE_DIR/tests/sql/data"
cd "$SCRATCH"

# SQL three ways.
out="$("$VELO_BIN" run --format csv -e "SELECT COUNT(*) AS n FROM 'file://$DATA/trades.csv' EMIT FINAL")"
check "-e runs SQL" test "$out" = $'n\n40'
echo "SELECT COUNT(*) AS n FROM 'file://$DATA/trades.csv' EMIT FINAL;" >q.sql
check "a file runs SQL" test "$("$VELO_BIN" run --format csv q.sql)" = $'n\n40'
check "SQL on stdin runs" test "$("$VELO_BIN" run --format csv <q.sql)" = $'n\n40'
check "JSON Lines is the default off a terminal" \
  test "$("$VELO_BIN" run q.sql)" = '{"n":40}'

# Data on stdin equals the same data from a file.
"$VELO_BIN" run --format csv -e "SELECT symbol, price, venue FROM 'file://$DATA/trades.csv'" >file.csv
"$VELO_BIN" run --format csv -e "SELECT symbol, price, venue FROM stdin WITH ('stdin.format' = 'csv')" \
  <"$DATA/trades.csv" >stdin.csv
check "stdin data gives the same rows as the file" cmp -s file.csv stdin.csv
check "and there are 40 of them" test "$(wc -l <stdin.csv)" = 41

# Exit codes.
set +e
"$VELO_BIN" run --format csv -e "SELECT pirce FROM 'file://$DATA/trades.csv'" >/dev/null 2>err.txt; st=$?
check "an SQL error exits 1" test "$st" = 1
check "it names the column, line and column with a hint" \
  bash -c "grep -q \"1:8: error V3001: unknown column 'pirce'\" err.txt && grep -q \"did you mean 'price'\" err.txt"
"$VELO_BIN" run --no-such-option q.sql >/dev/null 2>&1; st=$?
check "a bad option exits 2" test "$st" = 2
"$VELO_BIN" run does-not-exist.sql >/dev/null 2>&1; st=$?
check "a missing SQL file exits 1" test "$st" = 1
"$VELO_BIN" run --format csv -e "SELECT * FROM 'file:///nonexistent/x.csv'" >/dev/null 2>err.txt; st=$?
check "a missing data file exits 1 naming it" \
  bash -c "test $st = 1 && grep -q '/nonexistent/x.csv' err.txt"
set -e

# Credentials in the SQL never reach the diagnostics: a URI's password and
# secret-looking properties are masked (same length, so the caret aligns).
set +e
"$VELO_BIN" validate -e "SELECT nope FROM 'file://u:hunter2@$DATA/trades.csv' AS t WITH ('t.password' = 's3cr3t-value')" >sec.txt 2>&1
set -e
check "a URI password is masked in diagnostics" \
  bash -c "! grep -q hunter2 sec.txt && grep -q 'u:\*\*\*\*\*\*\*@' sec.txt"
check "a password property is masked in diagnostics" \
  bash -c "! grep -q s3cr3t-value sec.txt"

# validate: every error, text and JSON.
cat >bad.sql <<SQL
SELECT symbl, COUNT(*) FROM 'file://$DATA/trades.csv' GROUP BY symbol;
SELECT UPPER(side, 1) FROM 'file://$DATA/trades.csv';
SELECT qty + 'x' FROM 'file://$DATA/trades.csv' WHERE;
SQL
set +e
"$VELO_BIN" validate bad.sql >val.txt 2>&1; st=$?
set -e
check "validate exits 1 on errors" test "$st" = 1
check "validate reports the unknown column on line 1" grep -q "bad.sql:1:8: error V3" val.txt
check "validate reports the wrong arguments on line 2" grep -q "bad.sql:2:" val.txt
check "validate reports the syntax error on line 3" grep -q "bad.sql:3:.*error V2" val.txt
check "validate shows a caret" grep -q '\^' val.txt
set +e
"$VELO_BIN" validate --format json bad.sql >val.json 2>/dev/null
set -e
check "validate --format json is a JSON array with codes and lines" \
  bash -c "head -c1 val.json | grep -q '\[' && grep -q '\"code\"' val.json && grep -q '\"line\": *3' val.json"
check "validate of good SQL exits 0 and says OK" \
  bash -c "'$VELO_BIN' validate q.sql | grep -q 'OK (1 statement)'"

# explain.
"$VELO_BIN" explain -e "SELECT symbol, COUNT(*) AS n FROM 'file://$DATA/trades.csv' WINDOW TUMBLING(ts, INTERVAL '5' MINUTE) GROUP BY symbol" >plan.txt
check "explain shows the aggregate" grep -q "Aggregate" plan.txt
check "explain shows the output schema" grep -qi "n BIGINT" plan.txt
check "explain says when it emits" grep -qi "final" plan.txt
"$VELO_BIN" explain --format json -e "SELECT 1 AS x FROM 'file://$DATA/one.csv'" >plan.json
check "explain --format json is JSON" bash -c "head -c1 plan.json | grep -q '[{[]'"

# The README's main job: the sample pipeline from the repository root.
(cd "$VELO_SOURCE_DIR" && "$VELO_BIN" run --format csv examples/vwap.sql) >vwap.csv
check "the sample pipeline emits 60 windows x symbols" test "$(wc -l <vwap.csv)" = 61
check "with exact decimals (a known row)" \
  grep -qx "2026-11-20T14:30:00.000Z,AAPL,48,6285,189.4206,188.88,189.67" vwap.csv

# Ctrl-C over endless input: a FIFO that stays open.
mkfifo feed
( printf 'ts,v\n'; for i in 1 2 3 4 5; do printf '2026-01-01T00:00:0%dZ,%d\n' "$i" "$i"; done; sleep 30 ) >feed &
WRITER=$!
"$VELO_BIN" run --format csv -e "SELECT COUNT(*) AS n, SUM(v) AS s FROM stdin EMIT CHANGES WITH ('stdin.format' = 'csv')" <feed >live.csv 2>live.err &
RUN=$!
for _ in $(seq 1 100); do [[ $(wc -l <live.csv) -ge 6 ]] && break; sleep 0.05; done
check "rows stream out while the input stays open" test "$(tail -1 live.csv)" = "update,5,15"
kill -INT "$RUN"
st=0; wait "$RUN" || st=$?
kill "$WRITER" 2>/dev/null || true
check "Ctrl-C stops the run cleanly with exit 0" test "$st" = 0
check "the stop is reported" grep -q "stopping" live.err
finish
