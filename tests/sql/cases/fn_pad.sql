SELECT LPAD('7', 3, '0') AS a, RPAD('ab', 5, '.') AS b, LPAD('abcdef', 3, '*') AS c FROM 'file://data/one.csv';
