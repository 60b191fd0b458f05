SELECT APPROX_COUNT_DISTINCT(qty) AS approx, COUNT(DISTINCT qty) AS exact FROM 'file://data/trades.csv' EMIT FINAL;
