SELECT venue, venue IN ('XNAS', NULL) AS in_with_null, venue NOT IN ('XNAS', NULL) AS not_in_with_null FROM 'file://data/trades.csv' LIMIT 5;
