SELECT ts, UNIX_TIMESTAMP(ts) AS u, FROM_UNIXTIME(UNIX_TIMESTAMP(ts) + 60) AS later FROM 'file://data/trades.csv' LIMIT 3;
