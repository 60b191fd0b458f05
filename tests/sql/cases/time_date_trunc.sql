SELECT ts, DATE_TRUNC('minute', ts) AS m, DATE_TRUNC('hour', ts) AS h, DATE_TRUNC('day', ts) AS d FROM 'file://data/trades.csv' LIMIT 3;
