#!/usr/bin/env bash
# Headers on the Kafka sink: a statement whose output has a `_headers`
# column (a JSON object) sends it as each message's headers, not in the
# payload. Passed through from a Kafka source whose messages kcat produced
# with headers; built per row from a string column and with JSON_OBJECT;
# through the transactional (exactly-once) producer; and a value that is
# not an object fails the job naming the sink and the record. kcat reads
# every message back as JSON (-J), independently of velo, and python3
# compares.
source "$(dirname "${BASH_SOURCE[0]}")/lib-kafka.sh"
start_mock -b 1 -t in:1 -t out:1 -t rows:1 -t obj:1 -t txn:1 -t bad:1
cd "$SCRATCH"

# headers_of TOPIC [KCAT ARGS]: one line per message, "payload <TAB>
# headers as a JSON list [name, value, ...]" ([] for none).
headers_of() {
  kcat -C -b "$ADDR" -t "$1" -e -q -J "${@:2}" | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    print(m["payload"] + "\t" + json.dumps(m.get("headers", [])))'
}

# 1. Kafka source with headers -> SELECT id, _headers -> Kafka sink.
printf '{"id":1}\n' | produce in -H trace=abc-1 -H 'tenant=ac"me' -H 'empty='
printf '{"id":2}\n' | produce in
printf '{"id":3}\n' | produce in -H trace=abc-3 -H trace=again
"$VELO_BIN" run "${P[@]}" -e "CREATE STREAM out AS SELECT id, _headers
  FROM src LIMIT 3
  WITH ('src.type'='kafka_source', 'src.bootstrap.servers'='$ADDR',
        'src.topic'='in', 'src.group.id'='h1',
        'out.type'='kafka_sink', 'out.bootstrap.servers'='$ADDR',
        'out.topic'='out')" >pass.out 2>pass.log; st=$?
check "Kafka source headers into a Kafka sink: exit 0" test "$st" = 0
headers_of out >pass.txt
cat >pass.want <<'EOF'
{"id":1}	["trace", "abc-1", "tenant", "ac\"me", "empty", ""]
{"id":2}	[]
{"id":3}	["trace", "abc-3", "trace", "again"]
EOF
check "kcat reads each message's headers as produced, _headers not in the payload" \
  diff pass.want pass.txt

# 2. Headers built per row: a string column holding a JSON object. Numbers
# and booleans go as their JSON text, null as a header without value,
# {} and a NULL column as no headers; escapes are decoded.
cat >rows.jsonl <<'EOF'
{"id":1,"h":"{\"k\":\"v1\",\"n\":5,\"ok\":true,\"nul\":null}"}
{"id":2,"h":"{}"}
{"id":3,"h":null}
{"id":4,"h":" { \"q\" : \"a\\\"b\\u00e9\" , \"o\": {\"x\": [1, 2]} } "}
EOF
"$VELO_BIN" run "${P[@]}" -e "CREATE STREAM rows AS
  SELECT id, h AS _headers FROM 'file://rows.jsonl' AS r
  WITH ('rows.type'='kafka_sink', 'rows.bootstrap.servers'='$ADDR',
        'rows.topic'='rows')" >rows.out 2>rows.log; st=$?
check "headers from a string column: exit 0" test "$st" = 0
headers_of rows >rows.txt
cat >rows.want <<'EOF'
{"id":1}	["k", "v1", "n", "5", "ok", "true", "nul", null]
{"id":2}	[]
{"id":3}	[]
{"id":4}	["q", "a\"b\u00e9", "o", "{\"x\": [1, 2]}"]
EOF
check "kcat reads the per-row headers" diff rows.want rows.txt

# 2b. The same built with JSON_OBJECT: a NULL value is a header without
# value, a number its text.
cat >obj.jsonl <<'EOF'
{"id":1,"t":"acme","n":3}
{"id":2,"t":null,"n":4}
EOF
"$VELO_BIN" run "${P[@]}" -e "CREATE STREAM obj AS
  SELECT id, JSON_OBJECT('tenant', t, 'n', n) AS _headers
  FROM 'file://obj.jsonl' AS r
  WITH ('obj.type'='kafka_sink', 'obj.bootstrap.servers'='$ADDR',
        'obj.topic'='obj')" >obj.out 2>obj.log; st=$?
check "headers from JSON_OBJECT: exit 0" test "$st" = 0
headers_of obj >obj.txt
cat >obj.want <<'EOF'
{"id":1}	["tenant", "acme", "n", "3"]
{"id":2}	["tenant", null, "n", "4"]
EOF
check "kcat reads the JSON_OBJECT headers" diff obj.want obj.txt

# 3. The transactional producer takes the same path.
"$VELO_BIN" run "${P[@]}" -e "CREATE STREAM txn AS
  SELECT id, h AS _headers FROM 'file://rows.jsonl' AS r WHERE id = 1
  WITH ('txn.type'='kafka_sink', 'txn.bootstrap.servers'='$ADDR',
        'txn.topic'='txn', 'txn.exactly.once'='true')" >txn.out 2>txn.log
st=$?
check "exactly-once sink with headers: exit 0" test "$st" = 0
check "a read_committed reader sees the message with its headers" \
  test "$(headers_of txn -X isolation.level=read_committed)" = \
  "$(head -1 rows.want)"

# 4. A value that is not a JSON object fails the job, naming the sink and
# the record, without showing the value (headers often carry tokens).
cat >bad.jsonl <<'EOF'
{"id":1,"h":"{\"a\":\"1\"}"}
{"id":2,"h":"Bearer s3cr3t"}
EOF
set +e
"$VELO_BIN" run "${P[@]}" -e "CREATE STREAM bad AS
  SELECT id, h AS _headers FROM 'file://bad.jsonl' AS r
  WITH ('bad.type'='kafka_sink', 'bad.bootstrap.servers'='$ADDR',
        'bad.topic'='bad')" >bad.out 2>bad.log; st=$?
set -e
check "headers that are not an object fail the job (exit 1)" test "$st" = 1
check "the error names the sink and the record and says what to write" \
  grep -q "\[kafka:bad\] kafka://$ADDR/bad: the _headers of output record 2 are not a flat JSON object: expected '{' (the headers must be one JSON object) at byte 0; write them as" bad.log
check "the value itself is not in the log" \
  bash -c '! grep -q s3cr3t bad.log'
finish
