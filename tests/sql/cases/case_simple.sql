SELECT side, CASE side WHEN 'BUY' THEN 1 WHEN 'SELL' THEN -1 END AS sign FROM 'file://data/trades.csv' LIMIT 5;
