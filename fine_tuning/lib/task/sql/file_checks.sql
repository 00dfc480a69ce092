-- What the splits-disjoint check reads back from DuckDB.

-- name: books_in_several_splits
SELECT count(*) FROM (SELECT book_id FROM book_splits GROUP BY book_id HAVING count(*) > 1);

-- name: split_books
-- The books of one split with the fields their prompt is built from.
SELECT s.book_id, coalesce(e.title, ''), coalesce(e.author, ''), coalesce(e.description, '')
FROM book_splits s JOIN enriched_graphic_novels e USING (book_id)
WHERE s.split = $split;
