-- NOT IN (SELECT ...): symbols with no sector on file.
SELECT symbol, COUNT(*) AS n FROM 'file://data/trades.csv'
WHERE symbol NOT IN (SELECT symbol FROM 'file://data/sectors.csv')
GROUP BY symbol ORDER BY symbol;
