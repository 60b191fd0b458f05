SELECT venue, CASE WHEN venue = 'XNAS' THEN 'nasdaq' END AS v FROM 'file://data/trades.csv' LIMIT 6;
