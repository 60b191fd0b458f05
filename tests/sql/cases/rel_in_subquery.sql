-- IN (SELECT ...): trades of technology companies only.
SELECT symbol, qty, price FROM 'file://data/trades.csv'
WHERE symbol IN (SELECT symbol FROM 'file://data/sectors.csv' WHERE sector = 'Tech')
  AND qty >= 100
ORDER BY symbol, qty, price;
