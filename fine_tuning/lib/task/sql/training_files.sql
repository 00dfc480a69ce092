-- The seeded, stratified train / validation / test split of enriched_graphic_novels.

-- name: split_examples
-- One row per labelled book and one book per distinct prompt: editions that share title, author and
-- description would otherwise land in different splits and leak the test set into training.
CREATE OR REPLACE TEMP TABLE split_examples AS
WITH labeled AS (
    SELECT e.book_id,
           coalesce(e.title, '') AS title,
           coalesce(e.author, '') AS author,
           coalesce(e.description, '') AS description,
           e.category
    FROM enriched_graphic_novels e
    WHERE e.book_id IS NOT NULL AND e.category IN (SELECT category FROM categories)
    QUALIFY row_number() OVER (PARTITION BY e.book_id ORDER BY e.category) = 1
),
one_per_prompt AS (
    SELECT * FROM labeled
    QUALIFY row_number() OVER (PARTITION BY title, author, description ORDER BY book_id) = 1
),
keyed AS (
    -- md5 rather than hash(): stable across DuckDB versions, so a seed means the same split forever
    SELECT *, md5(book_id || '#' || CAST($seed AS VARCHAR)) AS split_key FROM one_per_prompt
),
ranked AS (
    SELECT *,
           row_number() OVER (PARTITION BY category ORDER BY split_key, book_id) - 1 AS category_rank,
           count(*) OVER (PARTITION BY category) AS category_size
    FROM keyed
),
assigned AS (
    SELECT *,
           CASE WHEN category_rank < round(category_size * $test_fraction) THEN 'test'
                WHEN category_rank < round(category_size * ($test_fraction + $validation_fraction)) THEN 'validation'
                ELSE 'train' END AS split
    FROM ranked
),
within AS (
    SELECT *,
           row_number() OVER (PARTITION BY split, category ORDER BY split_key, book_id) AS stratum_rank,
           count(*) OVER (PARTITION BY split, category) AS stratum_size
    FROM assigned
),
spread AS (
    -- position inside its split that interleaves categories proportionally, so a cap keeps strata
    SELECT *,
           row_number() OVER (
               PARTITION BY split ORDER BY (stratum_rank - 0.5) / stratum_size, split_key, book_id
           ) AS split_position
    FROM within
)
SELECT book_id, title, author, description, category, split, split_key
FROM spread
WHERE split_position <= coalesce(
    CASE split WHEN 'train' THEN $max_train WHEN 'validation' THEN $max_validation ELSE $max_test END,
    split_position);

-- name: book_splits
-- The split of every book, kept for evaluation and for the disjointness check.
CREATE OR REPLACE TABLE book_splits AS
SELECT book_id, split FROM split_examples ORDER BY split, book_id;

-- name: split_sizes
SELECT split, count(*) FROM split_examples GROUP BY split;

-- name: split_rows
-- One split's books in file order.
SELECT title, author, description, category FROM split_examples
WHERE split = $split ORDER BY split_key, book_id;

-- name: split_counts
-- Examples per category and split.
SELECT category, split, count(*) FROM split_examples GROUP BY ALL;

-- name: labeled_books
-- Labelled books, in a split or not (the difference is reported as books_not_in_a_split).
SELECT count(DISTINCT book_id) FROM enriched_graphic_novels
WHERE category IN (SELECT category FROM categories);
