-- Staging and publishing the Goodreads tables, and the record of which load built each one.
-- A prep run builds its tables in schema `staging` and publishes them to `main` together, in one
-- transaction, once every prep step of the run has staged; `table_loads` records, per table,
-- the load (root run id) that built it and the loads of the tables it was built from.

-- name: prepare
CREATE SCHEMA IF NOT EXISTS staging;
CREATE TABLE IF NOT EXISTS main.table_loads (
    table_name VARCHAR, load_id VARCHAR, run_id VARCHAR, built_from VARCHAR, built_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS staging.table_loads (
    table_name VARCHAR, load_id VARCHAR, run_id VARCHAR, built_from VARCHAR, built_at TIMESTAMP
);

-- name: other_loads_staged
-- Staged tables of another load: left by a run that failed before publishing.
SELECT count(*) FROM staging.table_loads WHERE load_id <> $load_id;

-- name: discard_staging
DROP SCHEMA staging CASCADE;

-- name: use_staging
-- Unqualified names now create in staging and read staging first, then main.
SET search_path = 'staging,main';

-- name: use_main
SET search_path = 'main';

-- name: forget_staged
DELETE FROM staging.table_loads WHERE table_name = $table_name;

-- name: record_staged
INSERT INTO staging.table_loads VALUES ($table_name, $load_id, $run_id, $built_from, current_timestamp);

-- name: effective_loads
-- The load of each table as the prep steps see it: staged if staged, else published.
SELECT table_name, load_id, built_from FROM staging.table_loads
UNION ALL
SELECT table_name, load_id, built_from FROM main.table_loads AS m
WHERE NOT EXISTS (SELECT 1 FROM staging.table_loads AS s WHERE s.table_name = m.table_name);

-- name: published_loads
SELECT table_name, load_id, built_from FROM main.table_loads;

-- name: staged_tables
SELECT table_name FROM staging.table_loads WHERE load_id = $load_id;

-- name: has_load_records
SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = 'table_loads';

-- name: forget_published
DELETE FROM main.table_loads WHERE table_name = $table_name;

-- name: publish_record
INSERT INTO main.table_loads SELECT * FROM staging.table_loads WHERE table_name = $table_name;

-- name: publish_graphic_novels
CREATE OR REPLACE TABLE main.graphic_novels AS FROM staging.graphic_novels;
DROP TABLE staging.graphic_novels;

-- name: publish_authors
CREATE OR REPLACE TABLE main.authors AS FROM staging.authors;
DROP TABLE staging.authors;

-- name: publish_categories
CREATE OR REPLACE TABLE main.categories AS FROM staging.categories;
DROP TABLE staging.categories;

-- name: publish_book_category
CREATE OR REPLACE TABLE main.book_category AS FROM staging.book_category;
DROP TABLE staging.book_category;

-- name: publish_enriched_graphic_novels
CREATE OR REPLACE TABLE main.enriched_graphic_novels AS FROM staging.enriched_graphic_novels;
DROP TABLE staging.enriched_graphic_novels;

-- name: declare_external
INSERT INTO main.table_loads VALUES ($table_name, $load_id, NULL, '{}', current_timestamp);
