#!/usr/bin/env bash
# velo test and velo generate end to end: a join query with schemas and a
# spec passes (exit 0, the report with observed values, an aggregate whose
# expected value Python computes from the kept input); the same query with
# keys that never match fails (exit 1) with the failed assertion, its
# observed value and the join evidence; a filter that removes every row is
# explained by each predicate's selectivity; NULLs by the expression that
# made them; JUnit output is valid against the JUnit schema and its counts
# are right; JSON parses; velo generate is deterministic by seed and its
# distributions hold over 100k rows; gen:// works as a FROM source; usage
# and setup errors exit 2 with a clear message.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SCRATCH"

cat >customers.schema.yaml <<'EOF'
schema:
  name: customers
  records: 50
fields:
  - name: customer_id
    type: integer
    constraints: { sequence: true, min: 1 }
  - name: tier
    type: string
    constraints: { enum: [gold, silver, bronze], weights: [1, 2, 7] }
EOF
cat >orders.schema.yaml <<'EOF'
schema:
  name: orders
fields:
  - name: order_id
    type: integer
    constraints: { sequence: true, min: 1 }
  - name: customer_id
    type: integer
    references: { source: customers, field: customer_id, match_rate: 0.9 }
  - name: amount
    type: decimal
    precision: 10
    scale: 2
    constraints: { min: 1, max: 1000, distribution: log_normal, mean: 4, stddev: 1 }
  - name: discount
    type: float
    null_rate: 0.2
    constraints: { min: 0, max: 0.3 }
  - name: ts
    type: timestamp
    constraints: { start: "2026-01-01T00:00:00Z", rate: 50, out_of_order: 0.05 }
EOF
sed 's/match_rate: 0.9/match_rate: 0/' orders.schema.yaml >orders-nomatch.schema.yaml
cat >enrich.sql <<'EOF'
-- Orders joined with their customers.
CREATE STREAM enriched AS
SELECT o.order_id, o.customer_id, c.tier, o.amount, o.amount * o.discount AS saving
FROM orders o JOIN customers c ON o.customer_id = c.customer_id
WITH ('orders.type' = 'file_source', 'orders.path' = 'orders.jsonl',
      'customers.type' = 'file_source', 'customers.path' = 'customers.jsonl');
EOF
cat >enrich.test.yaml <<'EOF'
queries:
  - name: enriched
    inputs:
      - source: orders
        records: 1000
    assertions:
      - type: record_count
        operator: greater_than
        expected: 0
      - type: join_coverage
        left_source: orders
        right_source: customers
        join_key: customer_id
        min_match_rate: 0.8
      - type: schema_contains
        fields: [order_id, tier, amount]
      - type: no_nulls
        fields: [order_id, tier]
      - type: field_in_set
        field: tier
        values: [gold, silver, bronze]
      - type: field_range
        field: amount
        min: 1
        max: 1000
      - type: no_duplicates
        key: order_id
      - type: execution_time
        max_ms: 60000
      - type: throughput
        min_records_per_second: 1
      - type: memory
        max_mb: 4096
      - type: dlq_count
        operator: equals
        expected: 0
EOF

set +e
"$VELO_BIN" test enrich.sql --seed 42 --keep-data kept >pass.txt 2>pass.err; st=$?
set -e
check "a passing spec exits 0" test "$st" = 0
check "the report lists each assertion with its observed value" \
  grep -q 'PASS  join_coverage orders -> customers on customer_id .*observed 0\.[89]' pass.txt
check "it says where each input came from" grep -q 'orders .* 1000 records  from ./orders.schema.yaml' pass.txt
check "it ends with time and rate" grep -q 'Execution time: .* s   Throughput: .* records/s' pass.txt
check "and the verdict" grep -q 'Result: PASSED (11 passed, 0 failed)' pass.txt
check "--keep-data keeps the inputs and the captured output" \
  test -s kept/out/enriched.jsonl -a "$(ls kept/source-*.jsonl | wc -l)" = 2

# The join result and an aggregate over it, computed independently.
python3 - kept >expected.txt <<'EOF'
import json, sys, glob
srcs = {}
for f in glob.glob(sys.argv[1] + "/source-*.jsonl"):
    rows = [json.loads(l) for l in open(f)]
    srcs["orders" if "order_id" in rows[0] else "customers"] = rows
cust = {c["customer_id"]: c for c in srcs["customers"]}
matched = [o for o in srcs["orders"] if o["customer_id"] in cust]
total = round(sum(o["amount"] for o in matched), 2)
print(len(matched), total)
EOF
read -r nmatched total <expected.txt
check "the captured output has the rows Python's join finds" \
  test "$(wc -l <kept/out/enriched.jsonl)" = "$nmatched"
check "the reported match rate is Python's" \
  grep -q "observed $(python3 -c "print('%.3f' % ($nmatched/1000))") ($nmatched of 1000 left rows matched)" pass.txt
lo=$(python3 -c "print($total - 0.01)"); hi=$(python3 -c "print($total + 0.01)")
cat >agg.test.yaml <<EOF
queries:
  - name: enriched
    assertions:
      - type: aggregate_check
        expression: SUM(amount)
        operator: between
        expected: [$lo, $hi]
      - type: aggregate_check
        expression: COUNT(*)
        operator: equals
        expected: $((nmatched + 1))
EOF
set +e
"$VELO_BIN" test enrich.sql --seed 42 --spec agg.test.yaml >agg.txt 2>&1; st=$?
set -e
check "aggregate_check runs SQL over the output (pass and fail)" test "$st" = 1
check "SUM(amount) equals Python's sum" grep -q 'PASS  aggregate_check SUM(amount) between' agg.txt
check "COUNT(*) off by one fails with the observed count" \
  grep -q "FAIL  aggregate_check COUNT(\*) equals $((nmatched + 1)) *observed $nmatched\$" agg.txt

# Keys that never match: exit 1, the failure, the evidence.
cat >nomatch.test.yaml <<'EOF'
queries:
  - name: enriched
    inputs:
      - source: orders
        records: 300
        schema: orders-nomatch.schema.yaml
    assertions:
      - type: record_count
        operator: greater_than
        expected: 0
      - type: join_coverage
        left_source: orders
        right_source: customers
        join_key: customer_id
        min_match_rate: 0.8
      - type: no_nulls
        fields: [saving]
EOF
set +e
"$VELO_BIN" test enrich.sql --spec nomatch.test.yaml >fail.txt 2>fail.err; st=$?
set -e
check "a failing assertion exits 1" test "$st" = 1
check "the failed assertion shows its observed value" \
  grep -q 'FAIL  join_coverage orders -> customers on customer_id .*observed 0.000 (0 of 300 left rows matched)' fail.txt
check "the analysis names the join and the overlap" \
  grep -q 'analysis (join_no_matches): orders.customer_id and customers.customer_id share 0 of 300 distinct left keys' fail.txt
check "with sample keys of both sides" grep -q 'sample customers.customer_id: 1, 10, 11' fail.txt
check "and the overlap" grep -q 'overlap: 0 key(s)' fail.txt
check "the verdict counts the failures" grep -q 'Result: FAILED (1 passed, 2 failed)' fail.txt

# NULLs: which expression made them.
cat >nulls.test.yaml <<'EOF'
queries:
  - name: enriched
    assertions:
      - type: no_nulls
        fields: [saving]
EOF
set +e
"$VELO_BIN" test enrich.sql --spec nulls.test.yaml >nulls.txt 2>&1; st=$?
set -e
check "NULLs in an output fail no_nulls" test "$st" = 1
check "the analysis shows the expression" grep -q "column 'saving' is produced by: o.amount \* o.discount" nulls.txt
check "and the input that held NULLs" grep -q 'input orders.discount is NULL in [0-9]* of 1000 generated rows (null_rate 0.2)' nulls.txt

# A filter that removes everything: each predicate's selectivity.
cat >trades.schema.yaml <<'EOF'
fields:
  - name: symbol
    type: string
    constraints: { enum: [AAPL, MSFT, GOOG] }
  - name: price
    type: float
    constraints: { min: 10, max: 20 }
EOF
cat >filter.sql <<'EOF'
CREATE STREAM picked AS SELECT symbol, price FROM trades
WHERE price > 15 AND symbol = 'IBM'
WITH ('trades.type' = 'file_source', 'trades.path' = 'trades.jsonl');
EOF
set +e
"$VELO_BIN" test filter.sql --records 400 >filter.txt 2>&1; st=$?
set -e
check "no spec: an empty output fails the default" test "$st" = 1
check "the filter analysis measures each predicate" grep -q "price > 15: [0-9]* of 400 rows pass" filter.txt
check "and names the one that removes every row" \
  grep -q "symbol = 'IBM': 0 of 400 rows pass (0.0%) <- removes every row" filter.txt

# JUnit: valid against the JUnit schema, counts right.
set +e
"$VELO_BIN" test enrich.sql --spec nomatch.test.yaml --output junit >junit.xml 2>/dev/null; st=$?
set -e
check "junit output keeps the exit code" test "$st" = 1
check "junit counts match its testcases and failures" python3 - junit.xml <<'EOF'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites", root.tag
cases = root.findall("./testsuite/testcase")
fails = root.findall("./testsuite/testcase/failure")
assert int(root.get("tests")) == len(cases) == 3, root.attrib
assert int(root.get("failures")) == len(fails) == 2, root.attrib
suite = root.find("testsuite")
assert suite.get("name") == "enriched" and int(suite.get("tests")) == 3
assert "overlap: 0 key(s)" in fails[0].text or "overlap: 0 key(s)" in fails[1].text
EOF
cat >junit.xsd <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<!-- The structure of the JUnit XML report as CI systems read it
     (Jenkins' junit schema): testsuites > testsuite > testcase with
     failure / error / skipped. -->
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" elementFormDefault="qualified">
  <xs:complexType name="problem" mixed="true">
    <xs:attribute name="type" type="xs:string"/>
    <xs:attribute name="message" type="xs:string"/>
  </xs:complexType>
  <xs:element name="testcase">
    <xs:complexType>
      <xs:sequence>
        <xs:element name="skipped" type="problem" minOccurs="0"/>
        <xs:element name="error" type="problem" minOccurs="0" maxOccurs="unbounded"/>
        <xs:element name="failure" type="problem" minOccurs="0" maxOccurs="unbounded"/>
        <xs:element name="system-out" type="xs:string" minOccurs="0"/>
        <xs:element name="system-err" type="xs:string" minOccurs="0"/>
      </xs:sequence>
      <xs:attribute name="name" type="xs:string" use="required"/>
      <xs:attribute name="classname" type="xs:string"/>
      <xs:attribute name="time" type="xs:decimal"/>
      <xs:attribute name="assertions" type="xs:string"/>
      <xs:attribute name="status" type="xs:string"/>
    </xs:complexType>
  </xs:element>
  <xs:element name="testsuite">
    <xs:complexType>
      <xs:sequence>
        <xs:element ref="testcase" minOccurs="0" maxOccurs="unbounded"/>
        <xs:element name="system-out" type="xs:string" minOccurs="0"/>
        <xs:element name="system-err" type="xs:string" minOccurs="0"/>
      </xs:sequence>
      <xs:attribute name="name" type="xs:string" use="required"/>
      <xs:attribute name="tests" type="xs:nonNegativeInteger" use="required"/>
      <xs:attribute name="failures" type="xs:nonNegativeInteger"/>
      <xs:attribute name="errors" type="xs:nonNegativeInteger"/>
      <xs:attribute name="skipped" type="xs:nonNegativeInteger"/>
      <xs:attribute name="time" type="xs:decimal"/>
      <xs:attribute name="timestamp" type="xs:string"/>
      <xs:attribute name="hostname" type="xs:string"/>
    </xs:complexType>
  </xs:element>
  <xs:element name="testsuites">
    <xs:complexType>
      <xs:sequence>
        <xs:element ref="testsuite" minOccurs="0" maxOccurs="unbounded"/>
      </xs:sequence>
      <xs:attribute name="name" type="xs:string"/>
      <xs:attribute name="tests" type="xs:nonNegativeInteger"/>
      <xs:attribute name="failures" type="xs:nonNegativeInteger"/>
      <xs:attribute name="errors" type="xs:nonNegativeInteger"/>
      <xs:attribute name="time" type="xs:decimal"/>
    </xs:complexType>
  </xs:element>
</xs:schema>
EOF
if command -v xmllint >/dev/null; then
  check "junit output validates against the JUnit schema" \
    xmllint --noout --schema junit.xsd junit.xml
else
  echo "skip - xmllint (libxml2-utils) not installed: schema validation"
fi

# JSON.
"$VELO_BIN" test enrich.sql --seed 42 --output json >report.json 2>/dev/null
check "json output parses and carries observed values" python3 - report.json <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["failed"] == 0 and r["passed"] == 11, (r["passed"], r["failed"])
a = r["outputs"][0]["assertions"]
assert r["outputs"][0]["name"] == "enriched"
assert all(x["observed"] for x in a)
assert r["stats"]["records_in"] == 1050, r["stats"]
assert {i["source"] for i in r["inputs"]} == {"orders", "customers"}
EOF

# velo generate: same seed, same bytes; another seed, other bytes.
"$VELO_BIN" generate orders.schema.yaml --records 500 --seed 7 >g1.jsonl
"$VELO_BIN" generate orders.schema.yaml --records 500 --seed 7 >g2.jsonl
"$VELO_BIN" generate orders.schema.yaml --records 500 --seed 8 >g3.jsonl
check "generate: the same seed writes identical bytes" cmp -s g1.jsonl g2.jsonl
check "generate: another seed writes other data" bash -c '! cmp -s g1.jsonl g3.jsonl'
check "generate: 500 records" test "$(wc -l <g1.jsonl)" = 500
"$VELO_BIN" generate orders.schema.yaml --records 5 --format csv --output g.csv
check "generate: csv with a header" test "$(head -1 g.csv)" = "order_id,customer_id,amount,discount,ts"
check "generate: references resolved from the sibling schema" python3 - g1.jsonl <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
inside = sum(1 for r in rows if 1 <= r["customer_id"] <= 50)
assert abs(inside / len(rows) - 0.9) < 0.05, inside
EOF

# Distributions over 100k rows.
cat >dist.schema.yaml <<'EOF'
fields:
  - name: n
    type: float
    constraints: { distribution: normal, mean: 100, stddev: 15 }
  - name: e
    type: string
    constraints: { enum: [a, b, c, d], weights: [0.4, 0.3, 0.2, 0.1] }
  - name: z
    type: integer
    constraints: { min: 1, max: 100, distribution: zipf, s: 1.2 }
  - name: ts
    type: timestamp
    constraints: { start: "2026-01-01T00:00:00Z", rate: 1000, out_of_order: 0.1, max_delay: 1s }
EOF
"$VELO_BIN" generate dist.schema.yaml --records 100000 --seed 1 >dist.jsonl
check "distributions hold statistically" python3 - dist.jsonl <<'EOF'
import json, sys, statistics, collections
from datetime import datetime
rows = [json.loads(l) for l in open(sys.argv[1])]
n = [r["n"] for r in rows]
assert abs(statistics.mean(n) - 100) < 0.3, statistics.mean(n)
assert abs(statistics.pstdev(n) - 15) < 0.3, statistics.pstdev(n)
e = collections.Counter(r["e"] for r in rows)
for k, w in zip("abcd", (0.4, 0.3, 0.2, 0.1)):
    assert abs(e[k] / len(rows) - w) < 0.01, (k, e[k])
z = collections.Counter(r["z"] for r in rows)
H = sum(k ** -1.2 for k in range(1, 101))
assert abs(z[1] / len(rows) - 1 / H) < 0.01, z[1]
assert z[1] > z[2] > z[5] > z[50]
mx, ooo = None, 0
for r in rows:
    t = datetime.fromisoformat(r["ts"].replace("Z", "+00:00"))
    if mx is not None and t < mx:
        ooo += 1
    mx = t if mx is None or t > mx else mx
assert abs(ooo / len(rows) - 0.1) < 0.01, ooo
EOF

# gen:// as a FROM source.
out="$("$VELO_BIN" run --format csv -e "SELECT COUNT(*) AS n, COUNT(DISTINCT tier) AS t FROM 'gen://$SCRATCH/customers.schema.yaml?records=321&seed=3' EMIT FINAL")"
check "gen:// is a FROM source" test "$out" = $'n,t\n321,3'
cat >genq.sql <<EOF
SELECT tier, COUNT(*) AS n FROM 'gen://$SCRATCH/customers.schema.yaml?records=200' GROUP BY tier EMIT FINAL;
EOF
set +e
"$VELO_BIN" test genq.sql >genq.txt 2>&1; st=$?
set -e
check "velo test generates a gen:// source from its schema" test "$st" = 0
check "with the default assertions" grep -q 'PASS  no_nulls tier' genq.txt

# metric: an @metric annotation's value after the run; late_count from
# out-of-order event time against a window.
cat >ticks.schema.yaml <<'EOF'
fields:
  - name: sym
    type: string
    constraints: { enum: [A, B] }
  - name: ts
    type: timestamp
    constraints: { start: "2026-01-01T00:00:00Z", rate: 10, out_of_order: 0.2, max_delay: 30s }
EOF
cat >ticks.sql <<'EOF'
-- @metric: ticks_windows_total
-- @metric_labels: sym
SELECT sym, COUNT(*) AS n FROM ticks WINDOW TUMBLING(INTERVAL '10' SECOND)
GROUP BY sym EMIT FINAL
WITH ('ticks.type' = 'file_source', 'ticks.path' = 'ticks.jsonl',
      'ticks.event.time.field' = 'ts');
EOF
# 2000 records at 10 per second span 200 s: 20 windows of 10 s for each of
# the 2 symbols (one more when the very first record was moved back).
cat >ticks.test.yaml <<'EOF'
queries:
  - name: select-1
    inputs:
      - source: ticks
        records: 2000
    assertions:
      - type: metric
        name: ticks_windows_total
        operator: between
        expected: [40, 42]
      - type: metric
        name: ticks_windows_total
        labels: { sym: A }
        operator: in
        expected: [20, 21]
      - type: late_count
        operator: greater_than
        expected: 0
      - type: late_count
        operator: equals
        expected: 0
EOF
set +e
"$VELO_BIN" test ticks.sql >ticks.txt 2>ticks.err; st=$?
set -e
check "metric and late_count: one failing assertion exits 1" test "$st" = 1
check "metric reads the annotated counter after the run" \
  grep -q 'PASS  metric ticks_windows_total between \[40, 42\] *observed 4[012]$' ticks.txt
check "metric filters by label" grep -q 'PASS  metric ticks_windows_total in \[20, 21\] *observed 2[01]$' ticks.txt
check "late rows are counted" grep -q 'PASS  late_count greater_than 0' ticks.txt
check "and a late_count of 0 fails with the count" grep -q 'FAIL  late_count equals 0 *observed [1-9]' ticks.txt

# No schema file: declared columns, or the source's own file as a sample.
cat >declared.sql <<'EOF'
CREATE STREAM ev (id BIGINT, kind STRING, score DOUBLE)
WITH ('ev.type' = 'file_source', 'ev.path' = 'not-there.jsonl');
SELECT kind, COUNT(*) AS n FROM ev GROUP BY kind;
EOF
set +e
"$VELO_BIN" test declared.sql --records 50 >declared.txt 2>&1; st=$?
set -e
check "declared columns are generated" test "$st" = 0
check "from the query's declaration" grep -q 'from the columns declared in the query' declared.txt
printf 'city,temp\nOslo,-3.5\nRome,18\nOslo,2\nLima,21.25\n' >sample.csv
cat >sampled.sql <<'EOF'
CREATE STREAM w AS SELECT city, temp FROM 'file://sample.csv';
EOF
cat >sampled.test.yaml <<'EOF'
queries:
  - name: w
    inputs:
      - source: file://sample.csv
        records: 300
    assertions:
      - type: field_in_set
        field: city
        values: [Oslo, Rome, Lima]
      - type: field_range
        field: temp
        min: -3.5
        max: 21.25
      - type: record_count
        operator: equals
        expected: 300
EOF
set +e
"$VELO_BIN" test sampled.sql >sampled.txt 2>&1; st=$?
set -e
check "a sample file gives types, values and ranges" test "$st" = 0
check "and the report names it" grep -q 'from sample.csv' sampled.txt

# A table's changelog is checked as its final state (one row per key).
cat >volume.sql <<'EOF'
CREATE TABLE volume AS SELECT symbol, COUNT(*) AS n FROM trades GROUP BY symbol
WITH ('trades.type' = 'file_source', 'trades.path' = 'trades.jsonl');
EOF
cat >volume.test.yaml <<'EOF'
queries:
  - name: volume
    inputs:
      - source: trades
        records: 400
    assertions:
      - type: record_count
        operator: equals
        expected: 3
      - type: no_duplicates
        key: symbol
      - type: aggregate_check
        expression: SUM(n)
        operator: equals
        expected: 400
EOF
set +e
"$VELO_BIN" test volume.sql >volume.txt 2>&1; st=$?
set -e
check "a table is checked as its final state" test "$st" = 0
check "one row per key" grep -q 'PASS  record_count equals 3 *observed 3 rows' volume.txt
sed 's/source: trades/source: tardes/' volume.test.yaml >typo-input.test.yaml
set +e
"$VELO_BIN" test volume.sql --spec typo-input.test.yaml >typo-input.txt 2>&1; st=$?
set -e
check "a spec input the query does not read: exit 2 naming the sources" \
  bash -c "test $st = 2 && grep -q \"input for 'tardes', which the query does not read; its sources are: trades\" typo-input.txt"

# Usage and setup errors exit 2 and say what to do.
set +e
"$VELO_BIN" test >u1.txt 2>&1; s1=$?
"$VELO_BIN" test enrich.sql --output xml >u2.txt 2>&1; s2=$?
"$VELO_BIN" test enrich.sql --records many >u3.txt 2>&1; s3=$?
"$VELO_BIN" test missing.sql >u4.txt 2>&1; s4=$?
printf 'queries:\n  - name: enriched\n    assertions:\n      - type: row_count\n' >typo.test.yaml
"$VELO_BIN" test enrich.sql --spec typo.test.yaml >u5.txt 2>&1; s5=$?
printf 'queries:\n  - name: nosuch\n    assertions:\n      - type: record_count\n' >wrong.test.yaml
"$VELO_BIN" test enrich.sql --spec wrong.test.yaml >u6.txt 2>&1; s6=$?
printf 'SELECT * FROM things WITH (%s);\n' "'things.type' = 'file_source', 'things.path' = 'x.jsonl'" >noschema.sql
"$VELO_BIN" test noschema.sql >u7.txt 2>&1; s7=$?
"$VELO_BIN" generate >u8.txt 2>&1; s8=$?
printf 'fields:\n  - name: a\n    type: integer\n    constraints: { distrbution: normal }\n' >bad.schema.yaml
"$VELO_BIN" generate bad.schema.yaml >u9.txt 2>&1; s9=$?
set -e
check "no query: exit 2" test "$s1" = 2
check "bad --output: exit 2, names the choices" bash -c "test $s2 = 2 && grep -q 'use text, json or junit' u2.txt"
check "bad --records: exit 2" bash -c "test $s3 = 2 && grep -q 'records needs a number' u3.txt"
check "missing query file: exit 2" bash -c "test $s4 = 2 && grep -q 'cannot open missing.sql' u4.txt"
check "unknown assertion type: exit 2 with the line and the types" \
  bash -c "test $s5 = 2 && grep -q \"typo.test.yaml:4: unknown assertion type 'row_count'; types are record_count\" u5.txt"
check "a spec naming an unknown output: exit 2 listing the outputs" \
  bash -c "test $s6 = 2 && grep -q \"names output 'nosuch', but the query's outputs are: enriched\" u6.txt"
check "a source without any schema: exit 2 saying how to give one" \
  bash -c "test $s7 = 2 && grep -q \"no schema to generate source 'things' from: write ./things.schema.yaml\" u7.txt"
check "generate without a schema: exit 2" test "$s8" = 2
check "a schema typo: exit 2 naming the line and the key" \
  bash -c "test $s9 = 2 && grep -q \"bad.schema.yaml:4: field 'a': unknown constraint 'distrbution'\" u9.txt"

finish
