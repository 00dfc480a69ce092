-- Staged builds (staged_build.py): each load stages its tables in a schema of its own, and
-- publishing points the views in `main` at them in one transaction, under a lease in DuckDB.
-- {schema}, {schemas} and {table} are identifiers the code made and checked (staged_build.identifier);
-- every value is a parameter.

-- name: prepare
CREATE TABLE IF NOT EXISTS main.table_loads (
    table_name VARCHAR, load_id VARCHAR, run_id VARCHAR, built_from VARCHAR, built_at TIMESTAMP
);
-- Where a published table physically lives (NULL: a table of its own in main, written before
-- staging schemas or outside the pipeline).
ALTER TABLE main.table_loads ADD COLUMN IF NOT EXISTS schema_name VARCHAR;
CREATE TABLE IF NOT EXISTS main.staged_tables (
    schema_name VARCHAR, table_name VARCHAR, load_id VARCHAR, run_id VARCHAR, built_from VARCHAR, built_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS main.staging_schemas (
    schema_name VARCHAR, load_id VARCHAR, run_id VARCHAR, created_at TIMESTAMPTZ
);
-- Per prep asset, the latest run whose view of its tables is published (it built or kept them):
-- what that run's materialization says about its inputs holds for the published tables.
CREATE TABLE IF NOT EXISTS main.published_runs (target VARCHAR PRIMARY KEY, run_id VARCHAR, published_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS main.prep_lease (
    family VARCHAR PRIMARY KEY, load_id VARCHAR, run_id VARCHAR, pid INTEGER, host VARCHAR,
    acquired_at TIMESTAMPTZ, expires_at TIMESTAMPTZ
);

-- name: lease_holder
SELECT load_id, run_id, pid, host, acquired_at, expires_at, expires_at < now() AS expired
FROM main.prep_lease WHERE family = $family;

-- name: take_lease
-- acquired_at stays when the same load renews its lease.
INSERT OR REPLACE INTO main.prep_lease
SELECT $family, $load_id, $run_id, $pid, $host,
       coalesce((SELECT acquired_at FROM main.prep_lease WHERE family = $family AND load_id = $load_id), now()),
       now() + to_seconds($lease_seconds);

-- name: release_lease
DELETE FROM main.prep_lease WHERE family = $family AND load_id = $load_id;

-- name: staging_schema_of_load
SELECT schema_name FROM main.staging_schemas WHERE load_id = $load_id;

-- name: new_staging_schema
INSERT INTO main.staging_schemas VALUES ($schema_name, $load_id, $run_id, now());

-- name: abandoned_schemas
-- Staging schemas of other loads: their runs failed or died before publishing (the lease holder
-- alone builds, so none of them is live).
SELECT schema_name, load_id FROM main.staging_schemas WHERE load_id <> $load_id;

-- name: forget_schema
DELETE FROM main.staging_schemas WHERE schema_name = $schema_name;

-- name: forget_schema_tables
DELETE FROM main.staged_tables WHERE schema_name = $schema_name;

-- name: unused_load_schemas
-- Load schemas that neither stage for a load nor hold a published table any more.
SELECT schema_name FROM duckdb_schemas()
WHERE (regexp_full_match(schema_name, 'load_[0-9a-f]{16}') OR schema_name = 'staging')
  AND schema_name NOT IN (SELECT schema_name FROM main.staging_schemas)
  AND schema_name NOT IN (SELECT schema_name FROM main.table_loads WHERE schema_name IS NOT NULL);

-- name: published_schemas
-- Where the published tables live, newest first (each published table name lives in one of them).
SELECT schema_name FROM main.table_loads WHERE schema_name IS NOT NULL
GROUP BY schema_name ORDER BY max(built_at) DESC;

-- name: create_schema
CREATE SCHEMA IF NOT EXISTS {schema};

-- name: drop_schema
DROP SCHEMA IF EXISTS {schema} CASCADE;

-- name: search_path
-- Unqualified names are created in the load's schema and read from it first, then from the
-- schemas of the published tables (their real tables: rowid works there), then from main.
SET search_path = '{schemas}';

-- name: use_main
SET search_path = 'main';

-- name: drop_table
DROP TABLE IF EXISTS {schema}.{table};

-- name: forget_staged
DELETE FROM main.staged_tables WHERE schema_name = $schema_name AND table_name = $table_name;

-- name: record_staged
INSERT INTO main.staged_tables VALUES ($schema_name, $table_name, $load_id, $run_id, $built_from, current_timestamp);

-- name: effective_loads
-- The load of each table as the load's steps see it: staged if staged, else published.
SELECT table_name, load_id, built_from FROM main.staged_tables WHERE schema_name = $schema_name
UNION ALL
SELECT table_name, load_id, built_from FROM main.table_loads AS m
WHERE NOT EXISTS (
    SELECT 1 FROM main.staged_tables AS s WHERE s.schema_name = $schema_name AND s.table_name = m.table_name
);

-- name: published_loads
SELECT table_name, load_id, built_from FROM main.table_loads;

-- name: published_runs
SELECT target, run_id FROM main.published_runs;

-- name: has_published_runs
SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = 'published_runs';

-- name: record_published_run
INSERT OR REPLACE INTO main.published_runs VALUES ($target, $run_id, now());

-- name: published_table
SELECT load_id, run_id, schema_name FROM main.table_loads WHERE table_name = $table_name;

-- name: staged_tables
SELECT table_name FROM main.staged_tables WHERE schema_name = $schema_name;

-- name: has_load_records
SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = 'table_loads';

-- name: main_object_type
-- 'BASE TABLE' for a table of its own in main (replaced by the view), 'VIEW', or no row.
SELECT table_type FROM information_schema.tables WHERE table_schema = 'main' AND table_name = $table_name;

-- name: drop_main_table
DROP TABLE main.{table};

-- name: publish_view
CREATE OR REPLACE VIEW main.{table} AS SELECT * FROM {schema}.{table};

-- name: forget_published
DELETE FROM main.table_loads WHERE table_name = $table_name;

-- name: publish_record
INSERT INTO main.table_loads (table_name, load_id, run_id, built_from, built_at, schema_name)
SELECT table_name, load_id, run_id, built_from, built_at, schema_name FROM main.staged_tables
WHERE schema_name = $schema_name AND table_name = $table_name;

-- name: declare_external
INSERT INTO main.table_loads (table_name, load_id, run_id, built_from, built_at)
VALUES ($table_name, $load_id, NULL, '{}', current_timestamp);
