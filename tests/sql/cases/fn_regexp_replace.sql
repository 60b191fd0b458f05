SELECT s, REGEXP_REPLACE(s, '[aeiou]', '*') AS masked FROM 'file://data/strings.csv';
