-- A DECIMAL key meets a BIGINT key as DECIMAL (1.00 = 1, 2.50 <> 2), and a
-- UNION ALL of the two columns is DECIMAL with the larger scale.
SELECT d.k, d.v, i.w FROM d LEFT JOIN 'file://data/int_keys.csv' i ON d.k = i.k
WITH ('d.type'='file_source', 'd.path'='data/dec_keys.csv',
      'd.schema'='k DECIMAL(10,2), v STRING');
SELECT * FROM (SELECT k FROM d UNION ALL SELECT k FROM 'file://data/int_keys.csv') u
ORDER BY k;
