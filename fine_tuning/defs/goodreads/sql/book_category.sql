-- The configured categories and the one category label per book.

-- name: categories
-- position is 1-based: the order prompts list the categories in and the tie-breaker.
CREATE OR REPLACE TABLE categories AS
SELECT CAST(i AS INTEGER) AS position, CAST(list_extract($categories, i) AS VARCHAR) AS category
FROM range(1, len($categories) + 1) AS r(i)
ORDER BY position;

-- name: book_category
-- Every popular_shelves entry whose trimmed, lower-cased name is a configured category is a
-- candidate when its count (a string in the source) is a number > threshold. The candidate with
-- the highest count wins; equal counts go to the category listed first in the configuration.
-- Needs the temp view canonical_book_rows (graphic_novels.sql).
CREATE OR REPLACE TABLE book_category AS
WITH shelves AS (
    SELECT book_id, unnest(popular_shelves) AS shelf
    FROM graphic_novels WHERE rowid IN (SELECT row_id FROM canonical_book_rows)
),
candidates AS (
    SELECT s.book_id, c.category, c.position,
           TRY_CAST(trim(s.shelf['count']) AS INTEGER) AS shelf_count
    FROM shelves AS s
    JOIN categories AS c ON lower(trim(s.shelf['name'])) = c.category
)
SELECT book_id, category, shelf_count
FROM candidates
WHERE shelf_count > $min_shelf_count_exclusive
QUALIFY row_number() OVER (PARTITION BY book_id ORDER BY shelf_count DESC, position) = 1
ORDER BY book_id;

-- name: labeled_books
SELECT count(*) FROM book_category;

-- name: distribution
-- Books per configured category (zeros included), in configured order.
SELECT c.category, count(t.book_id) AS books
FROM categories AS c LEFT JOIN book_category AS t ON t.category = c.category
GROUP BY c.category, c.position ORDER BY c.position;
