#!/usr/bin/env bash
# Bad Kafka input gives a clear error naming the URI, within a bounded
# time, and never a hang or a crash: unreachable brokers, unknown topics
# (source and sink), credentials in a URI, bad property values.
source "$(dirname "${BASH_SOURCE[0]}")/lib-kafka.sh"
start_mock -b 1 -t orders:1
cd "$SCRATCH"
echo '{"id":1}' >in.jsonl

# run_err NAME SQL: runs velo, expecting failure; sets ST, ELAPSED
run_err() {
  local start end
  start=$(date +%s%N)
  set +e
  timeout 60 "$VELO_BIN" run "${P[@]}" -e "$2" >"$1.out" 2>"$1.err"
  ST=$?
  set -e
  end=$(date +%s%N)
  ELAPSED=$(( (end - start) / 1000000 ))
}

port=$(free_port)
run_err down "SELECT * FROM k WITH ('k.type'='kafka_source',
  'k.bootstrap.servers'='127.0.0.1:$port', 'k.topic'='orders',
  'k.connect.timeout'='2s')"
check "unreachable brokers: exit 1" test "$ST" = 1
check "within the connect timeout, not a hang (${ELAPSED} ms)" \
  test "$ELAPSED" -lt 10000
check "the error names the URI and what to check" \
  grep -q "kafka://127.0.0.1:$port/orders: no answer from the brokers within 2000 ms" down.err
check "no retry noise after the error" bash -c "! grep -q retrying down.err"

run_err downsink "CREATE STREAM s AS SELECT id FROM 'file://in.jsonl' AS i
  WITH ('s.type'='kafka_sink', 's.bootstrap.servers'='127.0.0.1:$port',
        's.topic'='t', 's.connect.timeout'='1s')"
check "unreachable brokers for a sink: exit 1 with the URI" \
  bash -c "test $ST = 1 && grep -q 'kafka://127.0.0.1:$port/t: no answer' downsink.err"

run_err notopic "SELECT * FROM kafka://$ADDR/nosuch"
check "unknown topic (source): exit 1" test "$ST" = 1
check "saying the topic does not exist, with the URI" \
  grep -q "kafka://$ADDR/nosuch: topic 'nosuch' does not exist" notopic.err
check "and not auto-created by the check" \
  bash -c "! kcat -L -b '$ADDR' | grep -q nosuch"

run_err notopicsink "CREATE STREAM s AS SELECT id FROM 'file://in.jsonl' AS i
  WITH ('s.type'='kafka_sink', 's.bootstrap.servers'='$ADDR',
        's.topic'='missing')"
check "unknown topic (sink): exit 1 naming it" \
  bash -c "test $ST = 1 && grep -q \"topic 'missing' does not exist\" notopicsink.err"

run_err creds "SELECT * FROM 'kafka://alice:s3cr3t@$ADDR/orders'"
check "credentials in a URI are refused (exit 1)" test "$ST" = 1
check "with the properties to use instead" grep -q "kafka.sasl.password" creds.err
check "and the password appears nowhere in the output" \
  bash -c "! grep -q s3cr3t creds.err creds.out"

run_err reset "SELECT * FROM k WITH ('k.type'='kafka_source',
  'k.bootstrap.servers'='$ADDR', 'k.topic'='orders',
  'k.auto.offset.reset'='middle')"
check "a bad auto.offset.reset names the choices" \
  bash -c "test $ST = 1 && grep -q \"auto.offset.reset is 'middle'; write earliest or latest\" reset.err"

run_err notopicprop "SELECT * FROM k WITH ('k.type'='kafka_source',
  'k.bootstrap.servers'='$ADDR')"
check "a source without a topic says how to give one" \
  bash -c "test $ST = 1 && grep -q \"no topic: write kafka://$ADDR/<topic> or set 'k.topic'\" notopicprop.err"

run_err typo "SELECT * FROM k WITH ('k.type'='kafka_source',
  'k.bootstrap.servers'='$ADDR', 'k.topic'='orders', 'k.gruop.id'='x')"
check "a misspelt property is an error listing the known ones" \
  bash -c "test $ST = 1 && grep -q gruop typo.err && grep -q group.id typo.err"
finish
