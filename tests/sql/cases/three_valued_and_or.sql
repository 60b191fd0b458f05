SELECT a, b, a AND b AS a_and_b, a OR b AS a_or_b, NOT a AS not_a FROM 'file://data/bools.csv';
