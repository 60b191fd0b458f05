SELECT COUNT(*) AS all_rows, COUNT(venue) AS with_venue FROM 'file://data/trades.csv' EMIT FINAL;
