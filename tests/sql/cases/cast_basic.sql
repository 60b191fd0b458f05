SELECT CAST(qty AS STRING) || 'x' AS s, CAST('42' AS BIGINT) + 1 AS i, CAST('3.5' AS DOUBLE) * 2 AS d, CAST('1.005' AS DECIMAL(10, 2)) AS dec FROM 'file://data/trades.csv' LIMIT 2;
