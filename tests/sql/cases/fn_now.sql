-- NOW() and CURRENT_TIMESTAMP are one value per batch: equal to each other,
-- and after the date this test was written.
SELECT NOW() > TIMESTAMP '2026-11-01 00:00:00' AS after_writing,
       CURRENT_TIMESTAMP = NOW() AS same_value,
       NOW() - CURRENT_TIMESTAMP AS zero
FROM 'file://data/one.csv';
