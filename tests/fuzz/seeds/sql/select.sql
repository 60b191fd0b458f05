SELECT symbol, qty * 2 AS q2, price + 1 FROM 'file://trades.csv' WHERE qty >= 100 AND symbol <> 'MSFT' ORDER BY q2 DESC LIMIT 10;
