SELECT venue, venue = 'XNAS' AS eq, venue <> 'XNAS' AS ne, venue IS NULL AS isnull FROM 'file://data/trades.csv' LIMIT 6;
