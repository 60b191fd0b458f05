#!/usr/bin/env bash
# A Connector plugin is used from SQL by its URI scheme and by its
# '<name>.type', through the registry, exactly like a built-in: the seq
# fixture yields 1..N as CSV in 7-byte payloads, so records span payloads.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
mkdir -p "$SCRATCH/plugins"
cp "$VELO_FIXTURE_DIR/connector_seq.so" "$SCRATCH/plugins/"
cd "$SCRATCH"
P=(--set "plugins.dirs=$SCRATCH/plugins")

out="$("$VELO_BIN" run "${P[@]}" --format csv -e "SELECT COUNT(*) AS c, SUM(n) AS s FROM seq://1000 AS q EMIT FINAL WITH ('q.format' = 'csv')")"
check "seq://1000 is read through the plugin" test "$out" = $'c,s\n1000,500500'
out="$("$VELO_BIN" run "${P[@]}" --format csv -e "SELECT n FROM nums WHERE n % 4 = 0 WITH ('nums.type' = 'seq_source', 'nums.format' = 'csv', 'nums.count' = '12')")"
check "'nums.type'='seq_source' with its own property" test "$out" = $'n\n4\n8\n12'
set +e
"$VELO_BIN" run "${P[@]}" -e "SELECT n FROM nums WITH ('nums.type' = 'seq_source', 'nums.cuont' = '3')" >/dev/null 2>err.txt; st=$?
set -e
check "an unknown plugin property is an error naming it" \
  bash -c "test $st = 1 && grep -q 'cuont' err.txt && grep -q 'count' err.txt"
set +e
"$VELO_BIN" run --format csv -e "SELECT n FROM seq://3" >/dev/null 2>err.txt; st=$?
set -e
check "without the plugin the scheme is unknown (exit 1)" test "$st" = 1
check "and the error says so" grep -qi "seq" err.txt
"$VELO_BIN" plugins "${P[@]}" >plugins.txt
check "velo plugins lists it loaded" bash -c "grep seq plugins.txt | grep -q loaded"
finish
