SELECT qty >= 100 AS big, COUNT(*) AS n FROM 'file://data/trades.csv' GROUP BY qty >= 100 EMIT FINAL ORDER BY big;
