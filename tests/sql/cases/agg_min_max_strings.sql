SELECT MIN(symbol) AS first_symbol, MAX(venue) AS last_venue FROM 'file://data/trades.csv' EMIT FINAL;
