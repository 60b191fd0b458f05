#!/usr/bin/env bash
# Kafka connector throughput against kcat, on librdkafka's mock cluster.
#
#   bash bench/connectors/kafka.sh              # 1,000,000 messages
#   N=200000 PARTITIONS=1 RUNS=1 bash bench/connectors/kafka.sh
#
# N JSON messages of about 100 bytes are produced once into topic `in`
# (kcat -P). Then, best of RUNS:
#   read:  velo run, every message of `in` into a file sink, vs
#          kcat -C -e of the same topic into /dev/null;
#   write: velo run, the same N lines from a file into topic `w-velo-R`, vs
#          kcat -P of the N lines into topic `w-kcat-R` (fresh topics per
#          run; each is checked to hold N messages afterwards);
#   kafka to kafka: velo run, every message of `in` through the kafka sink
#          into topic `k-velo-R` (SELECT * ... LIMIT N), vs kcat -C -e of
#          `in` alone (the read above), and vs kcat -C -e piped into
#          kcat -P into `k-kcat-R` (both topics checked to hold N).
# Messages per second = N / wall time of the command. velo's source is a
# consumer group: joining it costs a fixed wait (the mock's group
# coordinator holds the first join ~3 s), which kcat -C (no group) does
# not pay, so the read figure is also given from the partitions' assignment
# (the plugin's "assigned partitions" log line) to the end.
#
# The mock cluster runs inside one process on loopback with no disk and no
# replication: the figures measure the client path (librdkafka, the plugin,
# the engine), not a real broker.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${BUILD:-$ROOT/build/bench-kafka}"
N="${N:-1000000}"
RUNS="${RUNS:-3}"
# The mock keeps a bounded log per partition (about 5 MB: ~42,000 of these
# messages) and drops older messages like retention would. The producers'
# default sticky partitioner fills one partition per batch run and
# overflowed some (1,000,000 into 64 partitions kept 879,618), so both
# producers here spread keyless messages one by one
# (sticky.partitioning.linger.ms=0) over 64 partitions: ~15,600 each.
PARTITIONS="${PARTITIONS:-64}"
SPREAD=(-X sticky.partitioning.linger.ms=0)

command -v kcat >/dev/null || { echo "kcat not installed (apt-get install kcat)"; exit 1; }
if [[ ! -x "$BUILD/velo" || ! -x "$BUILD/bin/velo-kafka-mock" ]]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j2 --target velo velo-plugin-kafka >/dev/null
fi
BUILD="$(cd "$BUILD" && pwd)" # the runs below happen in a scratch dir
VELO=("$BUILD/velo" run --set "plugins.dirs=$BUILD/plugins")
WORK="$(mktemp -d "${TMPDIR:-/tmp}/velo-bench-kafka-XXXXXX")"
MOCK_PID=""
cleanup() {
  exec 7>&- || true # the mock exits at EOF on its stdin
  [[ -n "$MOCK_PID" ]] && kill -TERM "$MOCK_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"

now() { date +%s.%N; }
rate() { awk -v n="$N" -v s="$1" 'BEGIN {printf "%.0f", n / s}'; }
best() { sort -g | head -1; } # the shortest of the runs' times

# ~100-byte messages: fixed-width fields so every line has the same size.
awk -v n="$N" 'BEGIN {
  for (i = 1; i <= n; i++)
    printf "{\"id\":%d,\"user\":\"user-%05d\",\"amount\":%d.%02d,\"ts\":\"2026-11-21T10:00:%02d.000Z\",\"pad\":\"abcdefghijklmnop\"}\n",
           i, i % 50000, i % 1000, i % 100, i % 60
}' >data.jsonl
BYTES="$(stat -c %s data.jsonl)"

mkfifo mock.ctl
topics=(-t "in:$PARTITIONS")
for r in $(seq 1 "$RUNS"); do # a fresh pair of topics per run
  topics+=(-t "w-velo-$r:$PARTITIONS" -t "w-kcat-$r:$PARTITIONS"
    -t "k-velo-$r:$PARTITIONS" -t "k-kcat-$r:$PARTITIONS")
done
"$BUILD/bin/velo-kafka-mock" -b 1 "${topics[@]}" <mock.ctl >mock.out 2>mock.err &
MOCK_PID=$!
exec 7>mock.ctl
for _ in $(seq 1 100); do
  ADDR="$(head -1 mock.out 2>/dev/null || true)"
  [[ -n "$ADDR" ]] && break
  sleep 0.05
done
[[ -n "$ADDR" ]] || { echo "mock cluster did not start"; cat mock.err; exit 1; }

count() { kcat -C -b "$ADDR" -t "$1" -e -q -o beginning | wc -l; }
kcat -P -b "$ADDR" -t in "${SPREAD[@]}" -l data.jsonl
have="$(count in)"
[[ "$have" = "$N" ]] || {
  echo "topic in holds $have of $N messages: the mock keeps a bounded log per partition; raise PARTITIONS"
  exit 1
}
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(. /etc/os-release; echo "$PRETTY_NAME"), librdkafka $(pkg-config --modversion rdkafka 2>/dev/null || echo '?'), kcat $(kcat -V 2>&1 | awk '/^Version/ {print $2}')"
echo "date: $(date -u +%Y-%m-%d), N=$N messages of $((BYTES / N)) bytes, $PARTITIONS partitions, best of $RUNS"

read_velo=() read_velo_assigned=() read_deep_assigned=() read_kcat=() write_velo=() write_kcat=()
k2k_velo=() k2k_velo_assigned=() k2k_kcat=()
for r in $(seq 1 "$RUNS"); do
  t0="$(now)"
  kcat -C -b "$ADDR" -t in -e -q -o beginning >/dev/null
  read_kcat+=("$(awk -v a="$t0" -v b="$(now)" 'BEGIN {print b - a}')")

  t0="$(now)"
  timeout 600 "${VELO[@]}" -e "CREATE STREAM o AS SELECT * FROM src LIMIT $N
    WITH ('src.type'='kafka_source', 'src.bootstrap.servers'='$ADDR',
          'src.topic'='in', 'src.group.id'='bench-$r',
          'o.type'='file_sink', 'o.path'='read.jsonl')" >/dev/null 2>read.log
  t1="$(now)"
  got="$(wc -l <read.jsonl)"
  [[ "$got" = "$N" ]] || { echo "velo read $got of $N messages"; tail read.log; exit 1; }
  read_velo+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')")
  # From the assignment (log time, UTC) to the end of the run.
  at="$(grep -m1 'assigned partitions' read.log | cut -c12-23)"
  end="$(date -u -d "@$t1" +%H:%M:%S.%N | cut -c1-12)"
  read_velo_assigned+=("$(awk -v a="$at" -v b="$end" 'BEGIN {
    split(a, x, ":"); split(b, y, ":");
    print (y[1] * 3600 + y[2] * 60 + y[3]) - (x[1] * 3600 + x[2] * 60 + x[3]) }')")
  rm -f read.jsonl

  # The same with a deeper prefetch (librdkafka's queued.min.messages is
  # per partition, 100000 by default, bounded by queued.max.messages.kbytes
  # in total): the plugin's defaults are librdkafka's.
  t0="$(now)"
  timeout 600 "${VELO[@]}" -e "CREATE STREAM o AS SELECT * FROM src LIMIT $N
    WITH ('src.type'='kafka_source', 'src.bootstrap.servers'='$ADDR',
          'src.topic'='in', 'src.group.id'='bench-deep-$r',
          'src.kafka.queued.min.messages'='1000000',
          'o.type'='file_sink', 'o.path'='read.jsonl')" >/dev/null 2>read.log
  t1="$(now)"
  got="$(wc -l <read.jsonl)"
  [[ "$got" = "$N" ]] || { echo "velo read $got of $N messages"; tail read.log; exit 1; }
  at="$(grep -m1 'assigned partitions' read.log | cut -c12-23)"
  end="$(date -u -d "@$t1" +%H:%M:%S.%N | cut -c1-12)"
  read_deep_assigned+=("$(awk -v a="$at" -v b="$end" 'BEGIN {
    split(a, x, ":"); split(b, y, ":");
    print (y[1] * 3600 + y[2] * 60 + y[3]) - (x[1] * 3600 + x[2] * 60 + x[3]) }')")
  rm -f read.jsonl

  t0="$(now)"
  kcat -P -b "$ADDR" -t "w-kcat-$r" "${SPREAD[@]}" -l data.jsonl
  write_kcat+=("$(awk -v a="$t0" -v b="$(now)" 'BEGIN {print b - a}')")

  t0="$(now)"
  "${VELO[@]}" -e "CREATE STREAM w AS SELECT * FROM 'file://data.jsonl' AS d
    WITH ('w.type'='kafka_sink', 'w.bootstrap.servers'='$ADDR',
          'w.topic'='w-velo-$r',
          'w.kafka.sticky.partitioning.linger.ms'='0')" >/dev/null 2>write.log
  write_velo+=("$(awk -v a="$t0" -v b="$(now)" 'BEGIN {print b - a}')")
  for t in "w-velo-$r" "w-kcat-$r"; do
    got="$(count "$t")"
    [[ "$got" = "$N" ]] || { echo "$t holds $got of $N messages"; tail write.log; exit 1; }
  done

  # Kafka to Kafka: the source's records straight into the kafka sink.
  t0="$(now)"
  timeout 600 "${VELO[@]}" -e "CREATE STREAM k AS SELECT * FROM src LIMIT $N
    WITH ('src.type'='kafka_source', 'src.bootstrap.servers'='$ADDR',
          'src.topic'='in', 'src.group.id'='bench-k2k-$r',
          'k.type'='kafka_sink', 'k.bootstrap.servers'='$ADDR',
          'k.topic'='k-velo-$r',
          'k.kafka.sticky.partitioning.linger.ms'='0')" >/dev/null 2>k2k.log \
    || { tail k2k.log; exit 1; }
  t1="$(now)"
  k2k_velo+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')")
  at="$(grep -m1 'assigned partitions' k2k.log | cut -c12-23)"
  end="$(date -u -d "@$t1" +%H:%M:%S.%N | cut -c1-12)"
  k2k_velo_assigned+=("$(awk -v a="$at" -v b="$end" 'BEGIN {
    split(a, x, ":"); split(b, y, ":");
    print (y[1] * 3600 + y[2] * 60 + y[3]) - (x[1] * 3600 + x[2] * 60 + x[3]) }')")

  t0="$(now)"
  kcat -C -b "$ADDR" -t in -e -q -o beginning |
    kcat -P -b "$ADDR" -t "k-kcat-$r" "${SPREAD[@]}"
  k2k_kcat+=("$(awk -v a="$t0" -v b="$(now)" 'BEGIN {print b - a}')")
  for t in "k-velo-$r" "k-kcat-$r"; do
    got="$(count "$t")"
    [[ "$got" = "$N" ]] || { echo "$t holds $got of $N messages"; tail k2k.log; exit 1; }
  done
done

row() { # row WHAT TIMES...
  local what="$1"; shift
  local s; s="$(printf '%s\n' "$@" | best)"
  printf '| %s | %.2f s | %s msg/s |\n' "$what" "$s" "$(rate "$s")"
}
echo
echo "| run | best time | messages/s |"
echo "|---|---:|---:|"
row "read: kcat -C -e > /dev/null" "${read_kcat[@]}"
row "read: velo run → file sink (whole run)" "${read_velo[@]}"
row "read: velo run → file sink (from assignment)" "${read_velo_assigned[@]}"
row "read: velo run → file sink, queued.min.messages=1000000 (from assignment)" "${read_deep_assigned[@]}"
row "write: kcat -P" "${write_kcat[@]}"
row "write: velo run file → kafka sink" "${write_velo[@]}"
row "kafka → kafka: kcat -C -e > /dev/null (read only)" "${read_kcat[@]}"
row "kafka → kafka: kcat -C -e | kcat -P" "${k2k_kcat[@]}"
row "kafka → kafka: velo run kafka source → kafka sink (whole run)" "${k2k_velo[@]}"
row "kafka → kafka: velo run kafka source → kafka sink (from assignment)" "${k2k_velo_assigned[@]}"
