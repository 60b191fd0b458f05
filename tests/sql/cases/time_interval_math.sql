SELECT ts, ts + INTERVAL '1' HOUR AS plus_hour, ts - INTERVAL '30' SECOND AS minus_30s FROM 'file://data/trades.csv' LIMIT 3;
