SELECT symbol, ROW_NUMBER() OVER (PARTITION BY symbol ORDER BY ts) AS rn,
       RANK() OVER (PARTITION BY symbol ORDER BY ts), LAG(qty, 2, 0) OVER (PARTITION BY symbol ORDER BY ts),
       SUM(qty) OVER (PARTITION BY symbol ORDER BY ts ROWS BETWEEN 3 PRECEDING AND CURRENT ROW),
       AVG(amount) OVER (PARTITION BY symbol ORDER BY ts RANGE BETWEEN INTERVAL '10' SECOND PRECEDING AND CURRENT ROW)
FROM 'file://stream_t.csv' AS t WITH ('t.event.time.field'='ts');
SELECT * FROM (SELECT symbol, qty, ROW_NUMBER() OVER (PARTITION BY symbol ORDER BY qty DESC) AS rn FROM 'file://t.csv') x WHERE rn <= 3;
SELECT * FROM (SELECT symbol, qty, ROW_NUMBER() OVER (PARTITION BY symbol ORDER BY ts DESC) AS rn FROM 'file://stream_t.csv' AS t WITH ('t.event.time.field'='ts')) x WHERE rn = 1;
SELECT symbol, COUNT(*) FROM 'file://stream_t.csv' WINDOW SESSION(ts, INTERVAL '30' SECOND) GRACE INTERVAL '5' SECOND GROUP BY symbol EMIT CHANGES;
CREATE STREAM k AS SELECT symbol, qty FROM 'file://t.csv' PRIMARY KEY (symbol);
SELECT HEADER('x'), PARSE_TIMESTAMP(symbol, '%Y-%m-%d') FROM k;
