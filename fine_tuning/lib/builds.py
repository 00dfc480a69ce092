"""Rebuild only what changed: each build target records what it was built from.

A target (a prep asset's tables, or the training files with their splits) is recorded in DuckDB,
in `build_fingerprints`, with a fingerprint of everything it was built from (the input files'
versions, the fingerprints and loads of the targets it reads, its run configuration, its SQL)
and the metadata it reported. A step whose fingerprint matches the record, with its tables (and
files) still there, keeps them and reports the recorded metadata again (`rebuilt: false`): an
unchanged scheduled run costs a few lookups instead of the whole prep.

Prep targets are staged like their tables (`fine_tuning.lib.staged_build`): a new build's record waits
as `staged` (with its load) and becomes `published` in the transaction that publishes its
tables, so a published record always describes the published tables beside it, and a build
that fails leaves the published pair as it was. A step that keeps its published tables marks
them `kept` for its load, which counts as done when the load's last prep step publishes. The
training files are recorded as published once both are written; their record is dropped before
they are rewritten, so a write that dies half-way is never trusted. Editing the tables by hand
is outside this contract: drop `build_fingerprints` (or the DuckDB file) to force a rebuild.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import dagster as dg
import duckdb as duckdb_lib

from fine_tuning.lib.sql import sql_statements

SQL = sql_statements(__package__, "builds")
REBUILT = "rebuilt"  # metadata key: False when the step kept what an identical earlier build made
PUBLISHED, STAGED, KEPT = "published", "staged", "kept"


def build_fingerprint(target: str, *inputs: Any) -> str | None:
    """sha256 of the target's name and its inputs (JSON); None when any input is unknown (None).

    A build with an unknown input (a table written outside the pipeline has no fingerprint) is
    never kept: there is no telling what it was built from.
    """
    if any(value is None for value in inputs):
        return None
    text = json.dumps([target, *inputs], sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Record:
    """A target's record as a step sees it: staged by its own load, or published."""

    fingerprint: str
    metadata: dict[str, Any]
    staged: bool


def _replace(con: duckdb_lib.DuckDBPyConnection, target: str, state: str, load_id: str | None,
             fingerprint: str | None = None, metadata: dict[str, Any] | None = None) -> None:
    con.execute(SQL["create"])
    con.execute(SQL["forget"], {"target": target, "state": state})
    con.execute(SQL["insert"], {"target": target, "state": state, "load_id": load_id, "fingerprint": fingerprint,
                                "metadata": None if metadata is None else dg.serialize_value(metadata)})


def effective_record(con: duckdb_lib.DuckDBPyConnection, target: str, load_id: str | None = None) -> Record | None:
    """The record of `target` built by `load_id` and not published yet, else the published one."""
    con.execute(SQL["create"])
    row = con.execute(SQL["effective"], {"target": target, "load_id": load_id}).fetchone()
    if row is None or row[0] is None:
        return None
    return Record(row[0], dg.deserialize_value(row[1], dict), row[2] == STAGED)


def effective_fingerprint(con: duckdb_lib.DuckDBPyConnection, target: str, load_id: str) -> str | None:
    """What `target` was last built from, as a step of `load_id` reads it (None when nothing says)."""
    record = effective_record(con, target, load_id)
    return record.fingerprint if record else None


def published_fingerprint(con: duckdb_lib.DuckDBPyConnection, target: str) -> str | None:
    """What the published tables of `target` were built from (a staged build is not published yet)."""
    con.execute(SQL["create"])
    row = con.execute(SQL["published"], {"target": target}).fetchone()
    return row[0] if row else None


def kept_build(
    con: duckdb_lib.DuckDBPyConnection, target: str, fingerprint: str | None, tables: Iterable[str],
    load_id: str | None = None, staged_schema: str | None = None,
) -> Record | None:
    """The record of `target` if it was built from exactly `fingerprint` and its tables exist
    (staged ones in `staged_schema`, published ones in main)."""
    if fingerprint is None:
        return None
    record = effective_record(con, target, load_id)
    if record is None or record.fingerprint != fingerprint:
        return None
    schema = staged_schema if record.staged else "main"
    present = {row[0] for row in con.execute(SQL["tables_in_schema"], {"schema": schema}).fetchall()}
    return record if set(tables) <= present else None


def kept_metadata(record: Record) -> dict[str, Any]:
    """What a step that kept its target reports: the recorded metadata, rebuilt false."""
    return {**record.metadata, REBUILT: False}


def mark_kept(con: duckdb_lib.DuckDBPyConnection, target: str, load_id: str) -> None:
    """`load_id` keeps the published tables of `target`: done, for publishing, without staging."""
    _replace(con, target, KEPT, load_id)


def kept_targets(con: duckdb_lib.DuckDBPyConnection, load_id: str) -> set[str]:
    """The targets `load_id` keeps as published."""
    con.execute(SQL["create"])
    return {row[0] for row in con.execute(SQL["kept"], {"load_id": load_id}).fetchall()}


def begin_staged_build(con: duckdb_lib.DuckDBPyConnection, target: str) -> None:
    """Before a prep target is rebuilt: a staged record of an earlier attempt must not describe the new table."""
    con.execute(SQL["create"])
    con.execute(SQL["forget"], {"target": target, "state": STAGED})


def stage_build(
    con: duckdb_lib.DuckDBPyConnection, target: str, load_id: str, fingerprint: str | None, metadata: dict[str, Any]
) -> dict[str, Any]:
    """Record a staged prep build (published with its tables); returns the metadata to report."""
    if fingerprint is not None:
        _replace(con, target, STAGED, load_id, fingerprint, metadata)
    return {**metadata, REBUILT: True}


def publish_build(con: duckdb_lib.DuckDBPyConnection, target: str, load_id: str) -> None:
    """Inside the transaction publishing `target`'s tables: its staged record replaces the published one.

    A table published without a staged record loses the published record too: nothing then
    claims to know what it was built from.
    """
    con.execute(SQL["create"])
    con.execute(SQL["forget"], {"target": target, "state": PUBLISHED})
    con.execute(SQL["publish"], {"target": target, "load_id": load_id})
    con.execute(SQL["forget"], {"target": target, "state": STAGED})


def forget_kept(con: duckdb_lib.DuckDBPyConnection, load_id: str) -> None:
    """After `load_id` published: it keeps nothing any more (a later load decides again)."""
    con.execute(SQL["create"])
    con.execute(SQL["forget_kept"], {"load_id": load_id})


def forget_load(con: duckdb_lib.DuckDBPyConnection, load_id: str) -> None:
    """A load that died before publishing: its staged and kept records go with its staged tables."""
    con.execute(SQL["create"])
    con.execute(SQL["forget_load"], {"load_id": load_id})


def forget_build(con: duckdb_lib.DuckDBPyConnection, target: str) -> None:
    """Drop the records of a target that is rebuilt outside staging (before it is rewritten)."""
    for state in (STAGED, PUBLISHED):
        con.execute(SQL["create"])
        con.execute(SQL["forget"], {"target": target, "state": state})


def record_build(
    con: duckdb_lib.DuckDBPyConnection, target: str, fingerprint: str | None, metadata: dict[str, Any]
) -> dict[str, Any]:
    """Record a finished build outside staging (nothing when an input was unknown); the metadata to report."""
    if fingerprint is not None:
        _replace(con, target, PUBLISHED, None, fingerprint, metadata)
    return {**metadata, REBUILT: True}
