-- A task's examples as every step reads them. The placeholders in braces are identifiers only
-- (the source relation, the id, label and template columns), checked against the source's
-- columns and quoted before they are put in; values always go in as parameters.

-- name: examples_view
-- One row per source row: its id and label as text and the template's columns as a list of
-- text (NULL as ''), in the template's order.
CREATE OR REPLACE TEMP VIEW task_examples AS
SELECT CAST({id_column} AS VARCHAR) AS example_id,
       CAST({label_column} AS VARCHAR) AS label,
       [{fields}] AS fields
FROM {relation};

-- name: source_columns
-- The columns of the task's source (zero rows: only the schema is read).
DESCRIBE SELECT * FROM {relation};

-- name: labels_in_data
-- The label set when the task names none: every distinct label of the source, sorted.
SELECT DISTINCT label FROM task_examples WHERE label IS NOT NULL AND label <> '' ORDER BY label;

-- name: content_fingerprint
-- What the examples are, for sources no build of this project recorded (a user's own table).
SELECT count(*), coalesce(bit_xor(hash(example_id, label, fields)), 0) FROM task_examples;
