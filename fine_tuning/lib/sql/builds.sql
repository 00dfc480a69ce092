-- What each build target was built from (builds.py), one row per target and state:
-- 'published' (beside the published tables), 'staged' (a build of load_id waiting to be
-- published with its tables) and 'kept' (load_id keeps the published tables, inputs unchanged).

-- name: create
CREATE TABLE IF NOT EXISTS main.build_fingerprints (
    target VARCHAR NOT NULL,
    state VARCHAR NOT NULL,
    load_id VARCHAR,
    fingerprint VARCHAR,
    metadata VARCHAR,
    built_at TIMESTAMPTZ NOT NULL
);

-- name: effective
-- The record as a step of load $load_id sees it: its own staged build, else the published one.
SELECT fingerprint, metadata, state FROM main.build_fingerprints
WHERE target = $target AND (state = 'published' OR (state = 'staged' AND load_id = $load_id))
ORDER BY state = 'staged' DESC
LIMIT 1;

-- name: published
SELECT fingerprint FROM main.build_fingerprints WHERE target = $target AND state = 'published';

-- name: forget
DELETE FROM main.build_fingerprints WHERE target = $target AND state = $state;

-- name: insert
INSERT INTO main.build_fingerprints VALUES ($target, $state, $load_id, $fingerprint, $metadata, now());

-- name: publish
-- Inside the transaction that publishes the target's tables, after the published row is forgotten.
INSERT INTO main.build_fingerprints
SELECT target, 'published', load_id, fingerprint, metadata, built_at FROM main.build_fingerprints
WHERE target = $target AND state = 'staged' AND load_id = $load_id;

-- name: kept
SELECT target FROM main.build_fingerprints WHERE state = 'kept' AND load_id = $load_id;

-- name: forget_kept
DELETE FROM main.build_fingerprints WHERE state = 'kept' AND load_id = $load_id;

-- name: forget_load
DELETE FROM main.build_fingerprints WHERE state IN ('staged', 'kept') AND load_id = $load_id;

-- name: tables_in_schema
-- Tables and views: a published prep table is a view in main.
SELECT table_name FROM duckdb_tables() WHERE schema_name = $schema
UNION ALL
SELECT view_name FROM duckdb_views() WHERE schema_name = $schema AND NOT internal;
