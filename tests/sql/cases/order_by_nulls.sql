SELECT ts, venue FROM 'file://data/trades.csv' ORDER BY venue NULLS FIRST, ts LIMIT 6;
