#!/usr/bin/env bash
# Dead letters ('<name>.dlq.path'): records that cannot be decoded (CSV,
# JSON Lines), rows whose evaluation fails (division by zero, a failed
# cast) and late rows under 'late.data.strategy'='dead_letter' go to one
# JSON Lines file with their source, position, line, error, message and
# original record (base64 when it is not UTF-8); the job goes on. The
# expected file below was worked out by hand from the inputs.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

D="$SCRATCH"
cd "$D"
printf 'id,amount\n1,10.5\n2,abc\n3,7\n5,2.25\n6,\n4,"unterminated\n' >bad.csv
cat >bad.jsonl <<'EOF'
{"id": 1, "name": "ok"}
{"id": 2, "name": "broken"
not json at all
{"id": "three", "name": "wrong type"}
{"id": 4, "name": "fine"}
EOF
# Line 5's last field is two bytes that are not UTF-8 (0xff 0xfe).
printf 'a,b,s\n10,2,5\n7,0,6\n9,3,x1\n8,4,\377\376\n' >div.csv
cat >late.csv <<'EOF'
ts,v
2026-01-01T00:00:10Z,1
2026-01-01T00:00:50Z,2
2026-01-01T00:01:05Z,3
2026-01-01T00:00:30Z,4
2026-01-01T00:01:40Z,5
2026-01-01T00:02:01Z,6
2026-01-01T00:01:59Z,7
2026-01-01T00:02:30Z,8
EOF

cat >q.sql <<'EOF'
CREATE STREAM pay AS SELECT id, amount FROM payments
WITH ('payments.type' = 'file_source', 'payments.path' = 'bad.csv',
      'payments.format' = 'csv',
      'payments.schema' = 'id BIGINT, amount DOUBLE',
      'pay.type' = 'file_sink', 'pay.path' = 'pay.jsonl',
      'pay.format' = 'json', 'pay.dlq.path' = 'dlq.jsonl');
CREATE STREAM ppl AS SELECT id, name FROM people
WITH ('people.type' = 'file_source', 'people.path' = 'bad.jsonl',
      'people.format' = 'json', 'people.schema' = 'id BIGINT, name STRING',
      'ppl.type' = 'file_sink', 'ppl.path' = 'ppl.jsonl',
      'ppl.format' = 'json');
CREATE STREAM calc AS
SELECT a / b AS q, CAST(s AS BIGINT) AS si FROM 'file://div.csv'
WITH ('calc.type' = 'file_sink', 'calc.path' = 'calc.jsonl',
      'calc.format' = 'json');
CREATE STREAM win AS SELECT _window_start AS ws, COUNT(*) AS n FROM lt
WINDOW TUMBLING(ts, INTERVAL '1' MINUTE) EMIT FINAL
WITH ('lt.type' = 'file_source', 'lt.path' = 'late.csv', 'lt.format' = 'csv',
      'lt.late.data.strategy' = 'dead_letter',
      'win.type' = 'file_sink', 'win.path' = 'win.jsonl',
      'win.format' = 'json');
EOF

st=0
"$VELO_BIN" run q.sql --no-progress --stats 2>run.err || st=$?
check "the job runs to the end despite the bad input" test "$st" = 0

# Byte offsets and lines of each rejected record, from the inputs above:
#   bad.csv  "2,abc" at 17 (line 3); '4,"unterminated' at 37 (line 7)
#   bad.jsonl line 2 at 24, line 3 at 51, line 4 at 67
#   div.csv  "7,0,6" at 13 (line 3), "9,3,x1" at 19 (line 4), line 5 at 26
#            ("8,4," + ff fe = base64 OCw0LP/+)
#   late.csv: 00:00:30 arrives after 00:01:05 closed [00:00, 00:01)
#            (line 5, offset 74); 00:01:59 after 00:02:01 (line 8, 143)
cat >dlq.expected <<'EOF'
{"source":"payments","position":17,"line":3,"error":"decode_error","message":"column amount: \"abc\" is not a DOUBLE (write a number such as 1.5)","record":"2,abc","time":"T"}
{"source":"payments","position":37,"line":7,"error":"decode_error","message":"field 2 (column amount): a quoted field is not closed before the end of the input (a missing closing quote?)","record":"4,\"unterminated","time":"T"}
{"source":"people","position":24,"line":2,"error":"decode_error","message":"invalid JSON at column 27: expected ',' or '}' after a value","record":"{\"id\": 2, \"name\": \"broken\"","time":"T"}
{"source":"people","position":51,"line":3,"error":"decode_error","message":"invalid JSON at column 1: a JSON Lines record is one object per line ({\"key\": value, ...})","record":"not json at all","time":"T"}
{"source":"people","position":67,"line":4,"error":"decode_error","message":"column id: \"three\" is not a BIGINT (write a whole number)","record":"{\"id\": \"three\", \"name\": \"wrong type\"}","time":"T"}
{"source":"file://div.csv","position":13,"line":3,"error":"division_by_zero","message":"division by zero in a / b","record":"7,0,6","time":"T"}
{"source":"file://div.csv","position":19,"line":4,"error":"cast_failed","message":"cannot cast 'x1' to BIGINT in CAST(s AS BIGINT)","record":"9,3,x1","time":"T"}
{"source":"file://div.csv","position":26,"line":5,"error":"cast_failed","message":"cannot cast '\ufffd\ufffd' to BIGINT in CAST(s AS BIGINT)","record_base64":"OCw0LP/+","time":"T"}
{"source":"lt","position":74,"line":5,"error":"late_row","message":"event time 2026-01-01T00:00:30.000Z is before the watermark 2026-01-01T00:01:05.000Z (its window already closed)","record":"2026-01-01T00:00:30Z,4","time":"T"}
{"source":"lt","position":143,"line":8,"error":"late_row","message":"event time 2026-01-01T00:01:59.000Z is before the watermark 2026-01-01T00:02:01.000Z (its window already closed)","record":"2026-01-01T00:01:59Z,7","time":"T"}
EOF
# "time" is when the letter was written: checked for its form, then
# masked. Sources interleave, so lines are compared sorted.
ISO='"time":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z"'
check "every dead letter has an ISO-8601 time" \
  test "$(grep -cE "$ISO}\$" dlq.jsonl)" = 10
sed -E "s/$ISO/\"time\":\"T\"/" dlq.jsonl | sort >dlq.got
sort dlq.expected >dlq.want
if cmp -s dlq.got dlq.want; then
  pass "the dead-letter file holds exactly the expected letters"
else
  fail "the dead-letter file holds exactly the expected letters"
  diff dlq.want dlq.got || true
fi
check "every line is valid JSON" \
  python3 -c 'import json,sys; [json.loads(l) for l in open("dlq.jsonl")]'

# The good rows went on.
check "payments: the good rows" test "$(cat pay.jsonl)" = \
'{"id":1,"amount":10.5}
{"id":3,"amount":7}
{"id":5,"amount":2.25}
{"id":6,"amount":null}'
check "people: the good rows" test "$(cat ppl.jsonl)" = \
'{"id":1,"name":"ok"}
{"id":4,"name":"fine"}'
check "calc: the one row that evaluates" test "$(cat calc.jsonl)" = '{"q":5,"si":5}'
check "windows count only rows in time" test "$(cat win.jsonl)" = \
'{"ws":"2026-01-01T00:00:00.000Z","n":2}
{"ws":"2026-01-01T00:01:00.000Z","n":2}
{"ws":"2026-01-01T00:02:00.000Z","n":2}'
check "the summary counts them" \
  grep -q "skipped 5 bad record(s), 3 row(s) that failed evaluation, 2 late row(s)" run.err

# A second run replaces the file (it is an output like the sinks).
"$VELO_BIN" run q.sql --no-progress 2>/dev/null
check "a second run writes the letters once, not twice" \
  test "$(wc -l <dlq.jsonl)" = 10

# With a state dir the letters' file is part of the checkpoint: a run
# of the finished query again leaves it as it is.
"$VELO_BIN" run q.sql --no-progress --state-dir st 2>/dev/null
cp dlq.jsonl dlq.first
"$VELO_BIN" run q.sql --no-progress --state-dir st 2>again.err
check "a finished query run again has nothing to do" grep -q "nothing to do" again.err
check "and keeps its dead letters as they were" cmp -s dlq.jsonl dlq.first

# Without a dead-letter file, 'dead_letter' is refused at planning.
sed -e "s/, 'pay.dlq.path' = 'dlq.jsonl'//" q.sql >q2.sql
st=0
"$VELO_BIN" run q2.sql --no-progress 2>nodlq.err || st=$?
check "late.data.strategy 'dead_letter' needs a dead-letter file" \
  test "$st" != 0
check "and says so (V5016)" grep -q "V5016" nodlq.err

finish
