-- The seeded, stratified train / validation / test split of a task's examples (the temp view
-- task_examples, sql/source.sql). {splits_table} and {id_column} are quoted identifiers: the
-- task's splits table and its id column's name there. $free_form: the label is a free-form
-- answer, so every non-empty one is kept and the split is one stratum (seeded, unstratified).

-- name: split_examples
-- One row per labelled example and one example per distinct prompt: rows that share every
-- template column (say, editions with one title, author and description) would otherwise land
-- in different splits and leak the test set into training.
CREATE OR REPLACE TEMP TABLE split_examples AS
WITH labeled AS (
    SELECT example_id, fields, label, CASE WHEN $free_form THEN '' ELSE label END AS stratum
    FROM task_examples
    WHERE example_id IS NOT NULL
      AND CASE WHEN $free_form THEN coalesce(label, '') <> '' ELSE list_contains($labels, label) END
    QUALIFY row_number() OVER (PARTITION BY example_id ORDER BY label) = 1
),
one_per_prompt AS (
    SELECT * FROM labeled
    QUALIFY row_number() OVER (PARTITION BY fields ORDER BY example_id) = 1
),
keyed AS (
    -- md5 rather than hash(): stable across DuckDB versions, so a seed means the same split forever
    SELECT *, md5(example_id || '#' || CAST($seed AS VARCHAR)) AS split_key FROM one_per_prompt
),
ranked AS (
    SELECT *,
           row_number() OVER (PARTITION BY stratum ORDER BY split_key, example_id) - 1 AS label_rank,
           count(*) OVER (PARTITION BY stratum) AS label_size
    FROM keyed
),
assigned AS (
    SELECT *,
           CASE WHEN label_rank < round(label_size * $test_fraction) THEN 'test'
                WHEN label_rank < round(label_size * ($test_fraction + $validation_fraction)) THEN 'validation'
                ELSE 'train' END AS split
    FROM ranked
),
within AS (
    SELECT *,
           row_number() OVER (PARTITION BY split, stratum ORDER BY split_key, example_id) AS stratum_rank,
           count(*) OVER (PARTITION BY split, stratum) AS stratum_size
    FROM assigned
),
spread AS (
    -- position inside its split that interleaves labels proportionally, so a cap keeps strata
    SELECT *,
           row_number() OVER (
               PARTITION BY split ORDER BY (stratum_rank - 0.5) / stratum_size, split_key, example_id
           ) AS split_position
    FROM within
)
SELECT example_id, fields, label, stratum, split, split_key
FROM spread
WHERE split_position <= coalesce(
    CASE split WHEN 'train' THEN $max_train WHEN 'validation' THEN $max_validation ELSE $max_test END,
    split_position);

-- name: record_splits
-- The split of every example, kept for evaluation and for the disjointness check.
CREATE OR REPLACE TABLE {splits_table} AS
SELECT example_id AS {id_column}, split FROM split_examples ORDER BY split, example_id;

-- name: split_sizes
SELECT split, count(*) FROM split_examples GROUP BY split;

-- name: split_rows
-- One split's examples in file order.
SELECT fields, label FROM split_examples
WHERE split = $split ORDER BY split_key, example_id;

-- name: split_counts
-- Examples per label (free-form: per split only, the stratum is '') and split.
SELECT stratum, split, count(*) FROM split_examples GROUP BY ALL;

-- name: labeled_examples
-- Labelled examples, in a split or not (the difference is reported as books_not_in_a_split).
SELECT count(DISTINCT example_id) FROM task_examples
WHERE CASE WHEN $free_form THEN coalesce(label, '') <> '' ELSE list_contains($labels, label) END;

-- name: split_rows_with_ids
-- One split's examples in file order, with their ids (DPO pairs need each example's own answer).
SELECT example_id, fields, label FROM split_examples
WHERE split = $split ORDER BY split_key, example_id;
