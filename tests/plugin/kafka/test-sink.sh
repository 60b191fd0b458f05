#!/usr/bin/env bash
# Kafka sink: `velo run` writes a query's rows into a topic through the
# kafka plugin (one message per row); kcat reads them back. Also Kafka to
# Kafka, and each compression codec.
source "$(dirname "${BASH_SOURCE[0]}")/lib-kafka.sh"
start_mock -b 1 -t out:2 -t in:3 -t z:1
cd "$SCRATCH"

for i in $(seq 1 50); do
  echo "{\"id\":$i,\"amt\":$((i * 10))}"
done >in.jsonl
cat >to-kafka.sql <<SQL
CREATE STREAM out AS SELECT id, amt * 2 AS dbl FROM 'file://in.jsonl' AS i
WHERE id > 10
WITH ('out.type'='kafka_sink', 'out.bootstrap.servers'='$ADDR',
      'out.topic'='out', 'out.format'='json');
SQL
"$VELO_BIN" run "${P[@]}" to-kafka.sql >run.out 2>run.log; st=$?
check "a file into kafka_sink exits 0" test "$st" = 0
consume out >got.txt
for i in $(seq 11 50); do echo "{\"id\":$i,\"dbl\":$((i * 20))}"; done >want.txt
check "kcat reads the 40 rows back, one message each" \
  diff <(sort want.txt) <(sort got.txt)
check "exactly 40 messages (none holds two rows)" \
  test "$(consume out '%o\n' | wc -l)" = 40
check "the log says where it produces and how" \
  grep -q "kafka://$ADDR/out: producing to 2 partitions (lz4, acks=all, idempotent)" run.log

# Kafka to Kafka: read `in`, write `out2`-style into topic z, LIMIT ends it.
for i in $(seq 1 30); do echo "{\"id\":$i,\"name\":\"n$i\"}"; done | produce in
"$VELO_BIN" run "${P[@]}" -e "CREATE STREAM z AS SELECT id, name FROM src
  WHERE id % 2 = 0 LIMIT 15
  WITH ('src.type'='kafka_source', 'src.bootstrap.servers'='$ADDR',
        'src.topic'='in', 'src.group.id'='k2k',
        'z.type'='kafka_sink', 'z.bootstrap.servers'='$ADDR', 'z.topic'='z',
        'z.compression'='zstd', 'z.linger.ms'='0')" >k2k.out 2>k2k.log; st=$?
check "Kafka to Kafka exits 0 after LIMIT" test "$st" = 0
for i in $(seq 2 2 30); do echo "{\"id\":$i,\"name\":\"n$i\"}"; done >want2.txt
check "kcat reads the 15 even rows from z (zstd)" \
  diff <(sort want2.txt) <(consume z | sort)

# Every codec librdkafka was built with round-trips through kcat.
for codec in none gzip snappy lz4 zstd; do
  "$VELO_BIN" run "${P[@]}" -e "CREATE STREAM c AS SELECT id FROM
    'file://in.jsonl' AS i WHERE id <= 3
    WITH ('c.type'='kafka_sink', 'c.bootstrap.servers'='$ADDR',
          'c.topic'='z', 'c.compression'='$codec')" >/dev/null 2>codec.log
done
check "five codecs wrote 3 rows each into z" \
  test "$(consume z | grep -c '^{"id":[123]}$')" = 15

set +e
"$VELO_BIN" run "${P[@]}" -e "CREATE STREAM c AS SELECT id FROM
  'file://in.jsonl' AS i WITH ('c.type'='kafka_sink',
  'c.bootstrap.servers'='$ADDR', 'c.topic'='z', 'c.compression'='brotli')" \
  >/dev/null 2>bad.log; st=$?
set -e
check "an unknown codec is an error (exit 1)" test "$st" = 1
check "naming the value and the choices" \
  grep -q "compression is 'brotli'; write none, gzip, snappy, lz4 or zstd" bad.log
finish
