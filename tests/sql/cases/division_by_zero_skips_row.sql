SELECT x, 100 / x AS y FROM 'file://data/divide.csv';
