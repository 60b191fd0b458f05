SELECT id, note, LENGTH(note) AS n FROM 'file://data/quoted.csv';
