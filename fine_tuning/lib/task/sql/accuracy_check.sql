-- The held-out books the accuracy check asks the models about.

-- name: split_examples
-- The books of one split of book_splits ('test' for the contest, 'validation' to choose among
-- checkpoints), by book_id; a NULL limit means all of them.
SELECT e.book_id, e.title, e.author, e.description, e.category
FROM book_splits AS s
JOIN enriched_graphic_novels AS e USING (book_id)
WHERE s.split = $split
ORDER BY e.book_id
LIMIT $limit;
