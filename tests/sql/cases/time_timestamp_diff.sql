SELECT ts, ts - TIMESTAMP '2026-01-01 09:00:00' AS since_open FROM 'file://data/trades.csv' LIMIT 3;
