-- PARSE_TIMESTAMP(text, pattern): strptime-style patterns, zones, fractions,
-- day of year, epoch seconds; an impossible date fails the row.
SELECT PARSE_TIMESTAMP('2026-01-01T10:00:00.5+02:00', '%Y-%m-%dT%H:%M:%S.%f%z') AS t,
       PARSE_TIMESTAMP('12/Feb/2026:10:00:00 +0100', '%d/%b/%Y:%T %z') AS t2,
       PARSE_TIMESTAMP('1700000000', '%s') AS t3,
       PARSE_TIMESTAMP('2024-060', '%Y-%j') AS t4,
       PARSE_TIMESTAMP("when", '%d/%m/%Y %H:%M:%S') AS t5
FROM 'file://data/pattern_times.csv' LIMIT 1;
