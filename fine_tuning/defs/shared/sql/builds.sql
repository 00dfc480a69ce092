-- What each table the pipeline builds was built from (builds.py): one row per build target.

-- name: create
CREATE TABLE IF NOT EXISTS build_fingerprints (
    target VARCHAR PRIMARY KEY,
    fingerprint VARCHAR NOT NULL,
    metadata VARCHAR NOT NULL,
    built_at TIMESTAMPTZ NOT NULL
);

-- name: recorded
SELECT fingerprint, metadata FROM build_fingerprints WHERE target = $target;

-- name: record
INSERT OR REPLACE INTO build_fingerprints VALUES ($target, $fingerprint, $metadata, now());

-- name: forget
DELETE FROM build_fingerprints WHERE target = $target;
