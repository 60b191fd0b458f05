-- WITH: a named query read by the rest of the statement.
WITH big AS (
  SELECT symbol, qty FROM 'file://data/trades.csv' WHERE qty >= 100
)
SELECT symbol, COUNT(*) AS n, SUM(qty) AS total
FROM big GROUP BY symbol ORDER BY symbol;
