-- Statements every asset group uses: the table probe, table schemas and the configured categories.

-- name: tables
-- Tables and views this connection reads by unqualified name: main's (a published prep table is
-- a view there), and those of the schemas on its search path in a prep step.
SELECT table_name FROM duckdb_tables()
WHERE schema_name = 'main' OR list_contains(current_schemas(false), schema_name)
UNION ALL
SELECT view_name FROM duckdb_views() WHERE NOT internal AND schema_name = 'main';

-- name: table_columns
SELECT column_name, data_type
FROM information_schema.columns
WHERE table_name = $table AND table_schema = current_schema()
ORDER BY ordinal_position;

-- name: categories
-- Written by book_category; position is the configured order (prompts, tie-breaking).
SELECT category FROM categories ORDER BY position;
