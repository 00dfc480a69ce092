-- The held-out examples the accuracy check asks the models about. {splits_table} and
-- {id_column} are quoted identifiers: the task's splits table and its id column there.

-- name: split_examples
-- The examples of one split ('test' for the contest, 'validation' to choose among
-- checkpoints), by id; a NULL limit means all of them.
SELECT e.example_id, e.fields, e.label
FROM {splits_table} AS s
JOIN task_examples AS e ON e.example_id = CAST(s.{id_column} AS VARCHAR)
WHERE s.split = $split
ORDER BY e.example_id
LIMIT $limit;
