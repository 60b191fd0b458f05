SELECT qty::STRING AS s, '7'::INTEGER * 2 AS i, price::DECIMAL(8, 1) AS p FROM 'file://data/trades.csv' LIMIT 3;
