SELECT DATE_FORMAT(ts, '%Y/%m/%d %H:%M') AS f FROM 'file://data/trades.csv' LIMIT 3;
