#!/usr/bin/env bash
# key.format: binary keys written by Kafka's Long/Integer/Double serializers
# read as `_key` text (a key of the wrong length goes to the dead letters),
# and a sink writes its key column as those bytes, or always as a JSON
# object with 'json'. kcat produces and reads the raw bytes independently.
source "$(dirname "${BASH_SOURCE[0]}")/lib-kafka.sh"
start_mock -b 1 -t longs:1 -t ints:1 -t out_long:1 -t out_json:1 -t out_int:1
cd "$SCRATCH"

# KEY|value lines with binary keys (no byte is '|' or a newline).
python3 - >longs.in <<'PY'
import struct, sys
out = sys.stdout.buffer
for v in (1000, -2, 42, 1 << 40):
    out.write(struct.pack(">q", v) + b'|{"id":%d}\n' % v)
out.write(b'abc|{"id":7}\n')  # 3 bytes: not a long
PY
produce longs -K '|' <longs.in
python3 - >ints.in <<'PY'
import struct, sys
for v in (5, -300):
    sys.stdout.buffer.write(struct.pack(">i", v) + b'|{"id":%d}\n' % v)
PY
produce ints -K '|' <ints.in

"$VELO_BIN" run "${P[@]}" --format json -e "SELECT id, _key AS k FROM e LIMIT 4
  WITH ('e.type'='kafka_source', 'e.bootstrap.servers'='$ADDR',
        'e.topic'='longs', 'e.group.id'='kl', 'e.format'='json',
        'e.key.format'='long', 'e.auto.offset.reset'='earliest',
        'e.dlq.path'='$SCRATCH/dlq.jsonl')" >longs.out 2>longs.log
check "8-byte big-endian keys read as their numbers" python3 - longs.out <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ok = sorted((r["id"], r["k"]) for r in rows) == sorted(
    (v, str(v)) for v in (1000, -2, 42, 1 << 40))
sys.exit(0 if ok else 1)
PY

"$VELO_BIN" run "${P[@]}" --format json -e "SELECT id, _key AS k FROM e
  WITH ('e.type'='kafka_source', 'e.bootstrap.servers'='$ADDR',
        'e.topic'='longs', 'e.group.id'='kl2', 'e.format'='json',
        'e.key.format'='long', 'e.auto.offset.reset'='earliest',
        'e.dlq.path'='$SCRATCH/dlq.jsonl')" >all.out 2>all.log &
pid=$!; BG_PIDS+=("$pid")
check "the well-keyed records arrive" wait_for lines_at_least all.out 4
stop_bg "$pid"
check "a 3-byte key goes to the dead letters with the record" \
  grep -qF '"record":"{\"id\":7}"' dlq.jsonl
check "... and the reason names the length and key.format" \
  grep -q "the key is 3 bytes; key.format 'long' reads 8-byte" dlq.jsonl
check "... and it is not in the output" bash -c "! grep -q '\"id\":7' all.out"

"$VELO_BIN" run "${P[@]}" --format json -e "SELECT id, _key AS k FROM e LIMIT 2
  WITH ('e.type'='kafka_source', 'e.bootstrap.servers'='$ADDR',
        'e.topic'='ints', 'e.group.id'='ki', 'e.format'='json',
        'e.key.format'='int', 'e.auto.offset.reset'='earliest')" \
  >ints.out 2>ints.log
check "4-byte big-endian keys read as their numbers (negative too)" \
  python3 - ints.out <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
sys.exit(0 if sorted((r["id"], r["k"]) for r in rows) ==
         [(-300, "-300"), (5, "5")] else 1)
PY

# Sinks: the key column as 8 bytes, and as a JSON object.
for kf in long json; do
  "$VELO_BIN" run "${P[@]}" -e "CREATE STREAM o AS SELECT id, id * 2 AS twice
    FROM e PRIMARY KEY (id)
    WITH ('e.type'='kafka_source', 'e.bootstrap.servers'='$ADDR',
          'e.topic'='longs', 'e.group.id'='ks-$kf', 'e.format'='json',
          'e.auto.offset.reset'='earliest',
          'o.type'='kafka_sink', 'o.bootstrap.servers'='$ADDR',
          'o.topic'='out_$kf', 'o.format'='json', 'o.key.format'='$kf')" \
    >"sink-$kf.out" 2>"sink-$kf.log" &
  pid=$!; BG_PIDS+=("$pid")
  have5() { [[ "$(consume "out_$kf" '%s\n' 2>/dev/null | wc -l)" -ge 5 ]]; }
  check "key.format $kf: the stream reaches the topic" wait_for have5
  stop_bg "$pid"
done
kcat -C -b "$ADDR" -t out_long -e -q -f '%K%k%s\n' >out_long.bin
check "key.format long: each key is the id as 8 big-endian bytes" \
  python3 - out_long.bin <<'PY'
import json, struct, sys
data = open(sys.argv[1], "rb").read()
ok, n, i = True, 0, 0
# kcat's %K is the key length as text, then the key, then the value.
import re
while i < len(data):
    m = re.match(rb"(\d+)", data[i:])
    klen = int(m.group(1)); i += len(m.group(1))
    key = data[i:i + klen]; i += klen
    j = data.index(b"\n", i); val = json.loads(data[i:j]); i = j + 1
    ok &= klen == 8 and struct.unpack(">q", key)[0] == val["id"]
    n += 1
sys.exit(0 if ok and n >= 5 else 1)
PY
consume out_json '%k\t%s\n' >out_json.txt
check "key.format json: a one-column key is still an object" \
  python3 - out_json.txt <<'PY'
import json, sys
rows = [l.rstrip("\n").split("\t", 1) for l in open(sys.argv[1]) if l.strip()]
ok = len(rows) >= 5 and all(json.loads(k) == {"id": json.loads(s)["id"]}
                            for k, s in rows)
sys.exit(0 if ok else 1)
PY

# Mistakes: a key.format nobody knows; 'int' for a BIGINT key.
"$VELO_BIN" validate "${P[@]}" -e "SELECT id FROM e WITH ('e.type'='kafka_source',
  'e.bootstrap.servers'='$ADDR', 'e.topic'='longs', 'e.format'='json',
  'e.key.format'='avro', 'e.schema'='id BIGINT')" >bad.out 2>&1 || true
check "an unknown key.format is V6005 naming the choices" \
  grep -q "V6005.*not a key format: 'avro'" bad.out
check "... with the hint" grep -q "write text, json, long, int or double" bad.out
rc=0
"$VELO_BIN" run "${P[@]}" -e "CREATE STREAM o AS SELECT CAST(id AS BIGINT) AS id
  FROM e PRIMARY KEY (id)
  WITH ('e.type'='kafka_source', 'e.bootstrap.servers'='$ADDR',
        'e.topic'='longs', 'e.group.id'='kbad', 'e.format'='json',
        'e.auto.offset.reset'='earliest',
        'o.type'='kafka_sink', 'o.bootstrap.servers'='$ADDR',
        'o.topic'='out_int', 'o.format'='json', 'o.key.format'='int')" \
  >int.out 2>int.log || rc=$?
check "key.format int on a BIGINT key is refused, saying how to fix it" \
  grep -q "key.format 'int' writes an INTEGER key column (4 bytes); CAST it AS INTEGER" int.log
check "... and the run fails" test "$rc" -ne 0
finish
