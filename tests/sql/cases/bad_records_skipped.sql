-- A value that does not parse as its declared type skips the record (with a
-- warning naming the line); the job goes on.
CREATE STREAM payments (id BIGINT, amount DOUBLE)
WITH ('payments.type' = 'file_source', 'payments.path' = 'data/bad.csv', 'payments.format' = 'csv');
SELECT id, amount FROM payments;
