SELECT ts, EXTRACT(DOW FROM ts) AS dow, EXTRACT(DOY FROM ts) AS doy, EXTRACT(EPOCH FROM ts) AS epoch FROM 'file://data/trades.csv' LIMIT 2;
