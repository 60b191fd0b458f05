SELECT COUNT(*) AS n FROM 'file://data/trades.csv' EMIT FINAL;
