#!/usr/bin/env bash
# Message columns and keys: _key, _partition, _offset and HEADER('name')
# read what kcat produced (keys and headers set with -K and -H); a keyed
# output (PRIMARY KEY, or the GROUP BY columns) writes each record's key,
# which kcat reads back with %k.
source "$(dirname "${BASH_SOURCE[0]}")/lib-kafka.sh"
start_mock -b 1 -t events:2 -t keyed:1 -t grouped:1
cd "$SCRATCH"

for i in $(seq 1 20); do
  echo "user$((i % 4))|{\"id\":$i,\"amt\":$((i * 10))}"
done | produce events -K '|' -H "trace=t-fixed" -H "src=a\"b"

"$VELO_BIN" run "${P[@]}" --format json -e "SELECT id, _key AS k, _partition AS p,
  _offset AS o, HEADER('trace') AS trace, HEADER('src') AS src,
  HEADER('missing') AS missing FROM e LIMIT 20
  WITH ('e.type'='kafka_source', 'e.bootstrap.servers'='$ADDR',
        'e.topic'='events', 'e.group.id'='cols', 'e.format'='json')" \
  >cols.jsonl 2>cols.log
consume events '%p %o %k %s\n' | sed 's/{"id":\([0-9]*\),.*/\1/' \
  | sort -k4,4n >kcat.txt
python3 - kcat.txt cols.jsonl >cols-check.txt <<'PY'
import json, sys
want = {}
for line in open(sys.argv[1]):
    p, o, k, i = line.split()
    want[int(i)] = (int(p), int(o), k)
rows = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
bad = [r for r in rows
       if want.get(r["id"]) != (r["p"], r["o"], r["k"])
       or r["trace"] != "t-fixed" or r["src"] != 'a"b'
       or r["missing"] is not None]
print("rows", len(rows), "bad", len(bad))
for r in bad[:3]:
    print(r, want.get(r["id"]))
PY
check "_key, _partition, _offset equal kcat's, headers read by name" \
  grep -qx "rows 20 bad 0" cols-check.txt
printf 'a\n1\n' >x.csv
"$VELO_BIN" validate -e "SELECT HEADER('x') AS h FROM 'file://x.csv'" >hdr.out 2>&1 || true
check "HEADER() on a file: V3001, no message headers" \
  grep -q "V3001.*no message headers" hdr.out

# PRIMARY KEY names the records' key of a stream.
"$VELO_BIN" run "${P[@]}" -e "CREATE STREAM keyed AS SELECT id, amt,
  'u' || CAST(id % 3 AS VARCHAR) AS uid FROM e
  PRIMARY KEY (uid)
  WITH ('e.type'='kafka_source', 'e.bootstrap.servers'='$ADDR',
        'e.topic'='events', 'e.group.id'='keyed', 'e.format'='json',
        'keyed.type'='kafka_sink', 'keyed.bootstrap.servers'='$ADDR',
        'keyed.topic'='keyed', 'keyed.format'='json');
  SELECT COUNT(*) AS n FROM keyed LIMIT 1" >keyed.out 2>keyed.log &
pid=$!; BG_PIDS+=("$pid")
keyed_all() { [[ "$(consume keyed '%k\n' 2>/dev/null | wc -l)" -ge 20 ]]; }
check "the keyed stream reaches the topic" wait_for keyed_all
stop_bg "$pid"
consume keyed '%k %s\n' >keyed.txt
check "every record's key is its uid column" python3 - keyed.txt <<'PY'
import json, sys
rows = [l.split(" ", 1) for l in open(sys.argv[1]) if l.strip()]
ok = len(rows) >= 20 and all(json.loads(s)["uid"] == k for k, s in rows)
sys.exit(0 if ok else 1)
PY

# GROUP BY columns key a changelog: two keys make a JSON object key.
"$VELO_BIN" run "${P[@]}" -e "CREATE TABLE totals AS SELECT _key AS usr,
  id % 2 AS par, SUM(amt) AS total FROM e GROUP BY _key, id % 2
  WITH ('e.type'='kafka_source', 'e.bootstrap.servers'='$ADDR',
        'e.topic'='events', 'e.group.id'='grouped', 'e.format'='json',
        'totals.type'='kafka_sink', 'totals.bootstrap.servers'='$ADDR',
        'totals.topic'='grouped', 'totals.format'='json')" >grouped.out 2>grouped.log &
pid=$!; BG_PIDS+=("$pid")
grouped_some() { [[ "$(consume grouped '%k\n' 2>/dev/null | wc -l)" -ge 20 ]]; }
check "the grouped changelog reaches the topic" wait_for grouped_some
stop_bg "$pid"
consume grouped '%k\t%s\n' >grouped.txt
check "each update's key is {usr, par} of its row" python3 - grouped.txt <<'PY'
import json, sys
rows = [l.rstrip("\n").split("\t", 1) for l in open(sys.argv[1]) if l.strip()]
ok = len(rows) >= 20
for k, s in rows:
    key, row = json.loads(k), json.loads(s)
    ok &= key == {"usr": row["usr"], "par": row["par"]}
sys.exit(0 if ok else 1)
PY
finish
