-- What the splits-disjoint check reads back from DuckDB. {splits_table} and {id_column} are
-- quoted identifiers: the task's splits table and its id column there.

-- name: examples_in_several_splits
SELECT count(*) FROM (SELECT {id_column} FROM {splits_table} GROUP BY {id_column} HAVING count(*) > 1);

-- name: split_examples
-- The examples of one split with the fields their prompt is built from.
SELECT s.{id_column}, e.fields
FROM {splits_table} s JOIN task_examples e ON e.example_id = CAST(s.{id_column} AS VARCHAR)
WHERE s.split = $split;
