SELECT ROUND(LN(10), 6) AS ln10, LOG10(1000) AS l, ROUND(EXP(1), 6) AS e FROM 'file://data/one.csv';
