-- UNION ALL of two queries, ordered from outside; INTEGER and BIGINT meet.
SELECT * FROM (
  SELECT symbol, qty FROM 'file://data/trades.csv' WHERE qty = 1
  UNION ALL
  SELECT symbol, qty * 1000 FROM 'file://data/trades.csv' WHERE qty = 250
) u ORDER BY symbol, qty;
