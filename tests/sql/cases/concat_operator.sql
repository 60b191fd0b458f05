SELECT symbol || '-' || side AS tag, venue || '!' AS v FROM 'file://data/trades.csv' LIMIT 5;
