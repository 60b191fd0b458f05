SELECT qty, CASE WHEN qty >= 100 THEN 'large' WHEN qty >= 25 THEN 'medium' ELSE 'small' END AS size FROM 'file://data/trades.csv' LIMIT 8;
