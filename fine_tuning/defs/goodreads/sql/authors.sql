-- The authors table, loaded from the authors file with its ratings cast to numbers.

-- name: load
-- Into staging.authors_loading, committed on its own (graphic_novels.sql says why). Malformed lines
-- become all-NULL rows (ignore_errors); rows without an author_id are dropped before the table
-- takes its name.
CREATE OR REPLACE TABLE staging.authors_loading AS
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
SELECT count(*) FROM staging.authors_loading;

-- name: drop_rows_without_key
DELETE FROM staging.authors_loading WHERE nullif(trim(author_id), '') IS NULL;

-- name: take_name
-- Inside the load's transaction, once rows are usable (schema-qualified: the connection's search
-- path would otherwise find the published table).
DROP TABLE IF EXISTS staging.authors;
ALTER TABLE staging.authors_loading RENAME TO authors;

-- name: drop_loading
DROP TABLE IF EXISTS staging.authors_loading;
