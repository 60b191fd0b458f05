WITH big AS (SELECT symbol, qty FROM 'file://t.csv' WHERE qty > 1),
     s AS (SELECT symbol FROM 'file://u.csv')
SELECT b.symbol, COUNT(*) AS n FROM big b LEFT JOIN s ON b.symbol = s.symbol
WHERE b.symbol IN (SELECT symbol FROM 'file://v.csv') AND b.symbol NOT IN (SELECT symbol FROM 'file://w.csv')
GROUP BY b.symbol ORDER BY n DESC LIMIT 3;
SELECT a.symbol, b.qty FROM 'file://stream_a.csv' a JOIN 'file://stream_b.csv' b
  ON a.symbol = b.symbol AND b.ts BETWEEN a.ts AND a.ts + INTERVAL '10' MINUTE;
SELECT * FROM 'file://stream_a.csv' a FULL JOIN 'file://stream_b.csv' b WITHIN INTERVAL '5' SECOND ON a.qty = b.qty AND a.amount > b.amount;
SELECT _window_start, a.symbol FROM 'file://stream_a.csv' a JOIN 'file://stream_b.csv' b ON a.symbol = b.symbol WINDOW TUMBLING(INTERVAL '1' MINUTE);
SELECT * FROM (SELECT symbol, qty FROM 'file://t.csv' UNION ALL SELECT symbol, 1 FROM 'file://u.csv') u ORDER BY symbol;
