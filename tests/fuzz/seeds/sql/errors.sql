SELECT pirce FORM trades;
SELECT 'abc FROM t;
SELECT a FROM t1 JOIN t2 ON a = b;
SELECT FROM ;
SELECT x FROM stream WHERE SUM(x) > 1 ORDER BY x;
SELECT * FROM fiel://x WITH ('x.y'='z', 'q'=1);
CREATE TABLE t AS SELECT a FROM 'file://x.csv';
/* unterminated
