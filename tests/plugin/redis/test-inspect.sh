#!/usr/bin/env bash
# velo inspect against Redis: list (streams with their lengths, other keys
# grouped by pattern, as redis-cli --scan and TYPE see them; bounded by
# scan.limit), describe a stream (sampled entries: fields, inferred types,
# examples; a JSON 'data' field is described by its members) and a hash
# pattern; errors: nothing to describe, a wrong password (exit 1, no
# secret in the message).
source "$(dirname "${BASH_SOURCE[0]}")/redis-lib.sh"
redis_start --requirepass 'Redis-Pw3'
cd "$SCRATCH"
URL="redis://:Redis-Pw3@127.0.0.1:$REDIS_PORT"
for i in 1 2 3; do rcli XADD trades '*' sym "S$i" px "1$i.5" qty "$i" >/dev/null; done
rcli XADD trades '*' sym S4 px 20 qty 4 >/dev/null
rcli XADD events '*' data '{"user":7,"ok":true,"tags":["a"],"name":"x"}' >/dev/null
for i in 1 2 3 4 5; do rcli HSET "user:$i" name "u$i" age "$((20 + i))" >/dev/null; done
rcli HSET user:6 name u6 age unknown >/dev/null
rcli SET session:a 1 >/dev/null; rcli SET session:b 2 >/dev/null
rcli SET plain x >/dev/null
inspect() { "$VELO_BIN" inspect --set "plugins.dirs=$VELO_PLUGIN_BUILD_DIR" "$@"; }

inspect "$URL" list --format json >list.json 2>list.err
# Independently: every key with its type, and each stream's length.
for k in $(rcli --scan); do echo "$k $(rcli TYPE "$k") $( [ "$(rcli TYPE "$k")" = stream ] && rcli XLEN "$k")"; done >keys.txt
check "list: streams with lengths, patterns with counts, complete" \
  python3 - list.json keys.txt <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
streams, pats = {}, {}
for line in open(sys.argv[2]):
    parts = line.split()
    k, t = parts[0], parts[1]
    if t == "stream":
        streams[k] = int(parts[2])
    else:
        p = k[:k.rfind(":") + 1] + "*" if ":" in k else k
        pats[(p, t)] = pats.get((p, t), 0) + 1
assert {s["stream"]: s["length"] for s in d["streams"]} == streams, d
assert {(p["pattern"], p["type"]): p["count"] for p in d["keys"]} == pats, d
assert d["complete"] is True and d["scanned"] == 11, d
PY
inspect "$URL" list --prop scan.limit=3 --format json >lim.json 2>/dev/null
check "list with scan.limit=3 stops after 3 keys and says it is incomplete" \
  python3 -c "import json; d = json.load(open('lim.json')); assert d['scanned'] == 3 and d['complete'] is False, d"

inspect "$URL" describe trades --format json >t.json 2>/dev/null
check "describe a stream: sym string, px double (20 and 11.5 agree), qty integer" \
  python3 -c "
import json; d = json.load(open('t.json'))
got = {f['field']: f['type'] for f in d}
assert got == {'sym': 'string', 'px': 'double', 'qty': 'integer'}, d
assert [f['example'] for f in d if f['field'] == 'sym'] == ['S4'], d"
inspect "$URL" describe events --format json >e.json 2>/dev/null
check "describe a stream of JSON 'data': the object's members" \
  python3 -c "
import json; d = json.load(open('e.json'))
got = {f['field']: (f['type'], f['example']) for f in d}
assert got == {'user': ('integer', 7), 'ok': ('boolean', True), 'tags': ('json', ['a']), 'name': ('string', 'x')}, d"
out="$(inspect "$URL" describe 'user:*' 2>/dev/null)"
check "describe a hash pattern (text): age widens to string (one 'unknown')" \
  bash -c "echo '$out' | grep -Eq '^name +string +u[0-9]' && echo '$out' | grep -Eq '^age +string '"

set +e
inspect "$URL" describe 'nothing:*' >/dev/null 2>n.err; st1=$?
inspect "redis://:Bad-Pw8@127.0.0.1:$REDIS_PORT" list >/dev/null 2>p.err; st2=$?
set -e
check "nothing to describe: exit 1, said so" \
  bash -c "test $st1 = 1 && grep -q 'nothing to describe' n.err"
check "wrong password: exit 1, authentication named, no secret" \
  bash -c "test $st2 = 1 && grep -q 'authentication failed' p.err && ! grep -q Bad-Pw8 p.err && ! grep -q Redis-Pw3 n.err"
finish
