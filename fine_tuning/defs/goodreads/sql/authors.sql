-- The authors table, loaded from the authors file with its ratings cast to numbers.

-- name: load
-- Into a staging table committed on its own (see graphic_novels.sql: why not one transaction).
-- Malformed lines become all-NULL rows (ignore_errors); rows without an author_id are dropped
-- before the table is published.
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

-- name: publish
-- Inside the caller's transaction: the previous table is replaced only when the load is usable.
DROP TABLE IF EXISTS authors;
ALTER TABLE authors_loading RENAME TO authors;

-- name: drop_staging
DROP TABLE IF EXISTS authors_loading;
