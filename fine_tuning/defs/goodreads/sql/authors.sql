-- The authors table, loaded from the authors file with its ratings cast to numbers.

-- name: load
-- Into authors_loading in the load's staging schema (first on the search path), committed
-- on its own (graphic_novels.sql says why). Malformed lines
-- become all-NULL rows (ignore_errors); rows without an author_id are dropped before the table
-- takes its name.
CREATE OR REPLACE TABLE authors_loading AS
SELECT
    author_id,
    name,
    TRY_CAST(average_rating AS DOUBLE) AS average_rating,
    TRY_CAST(ratings_count AS BIGINT) AS ratings_count,
    TRY_CAST(text_reviews_count AS BIGINT) AS text_reviews_count
FROM read_json(
    $path, format = 'newline_delimited', records = true, ignore_errors = true,
    compression = $compression, columns = $columns
);

-- name: count_rows
SELECT count(*) FROM authors_loading;

-- name: drop_rows_without_key
DELETE FROM authors_loading WHERE nullif(trim(author_id), '') IS NULL;

-- name: take_name
-- Inside the load's transaction, once rows are usable. The load's schema holds no authors here
-- (staged_build drops an earlier attempt's before rebuilding); the rename keeps the schema.
ALTER TABLE authors_loading RENAME TO authors;

-- name: drop_loading
DROP TABLE IF EXISTS authors_loading;
