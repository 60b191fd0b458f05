SELECT DATE '2026-03-01' AS d, TIMESTAMP '2026-03-01 12:30:00' AS t, DATE '2026-03-01' + 1 AS next_day FROM 'file://data/one.csv';
