-- A subquery in FROM: its aggregation over a bounded file is one final result.
SELECT s, n FROM (
  SELECT symbol AS s, COUNT(*) AS n FROM 'file://data/trades.csv' GROUP BY symbol
) x WHERE n > 5 ORDER BY s;
