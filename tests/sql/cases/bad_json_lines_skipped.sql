-- Malformed JSON lines and values of the wrong type are skipped; the others
-- are read.
CREATE STREAM people (id BIGINT, name STRING)
WITH ('people.type' = 'file_source', 'people.path' = 'data/bad.jsonl', 'people.format' = 'json');
SELECT id, name FROM people;
