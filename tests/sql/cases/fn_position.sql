SELECT POSITION('b' IN 'abc') AS p, POSITION('z' IN 'abc') AS none, POSITION('' IN 'abc') AS empty FROM 'file://data/one.csv';
