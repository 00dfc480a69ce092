-- The authors table, loaded from the authors file with its ratings cast to numbers.

-- name: load
-- Malformed lines become all-NULL rows (ignore_errors); rows without an author_id are dropped afterwards.
CREATE OR REPLACE TABLE authors AS
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
SELECT count(*) FROM authors;

-- name: drop_rows_without_key
DELETE FROM authors WHERE nullif(trim(author_id), '') IS NULL;
