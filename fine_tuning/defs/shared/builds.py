"""Rebuild a table only when what it is built from has changed.

Each build target (a table, or the training files with the splits they were written from) is
recorded in DuckDB, in `build_fingerprints`, with a fingerprint of everything it was built from
(the input files' versions, the fingerprints of the tables it reads, its run configuration, its
SQL) and the metadata it reported. A step whose fingerprint matches the record keeps what it
built and reports the recorded metadata again: an unchanged scheduled run costs a few lookups
instead of the whole prep.

The record is forgotten before a rebuild starts and written after it succeeds, so a run that
fails or crashes half-way leaves no record and the next run builds again. Editing the tables
by hand is outside this contract: drop `build_fingerprints` (or the DuckDB file) to force a
rebuild.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

import dagster as dg
import duckdb as duckdb_lib

from fine_tuning.defs.shared.sql import sql_statements
from fine_tuning.defs.shared.warehouse import missing_tables

SQL = sql_statements(__package__, "builds")
REBUILT = "rebuilt"  # metadata key: False when the step kept what an identical earlier build made


def build_fingerprint(target: str, *inputs: Any) -> str | None:
    """sha256 of the target's name and its inputs (JSON); None when any input is unknown (None).

    A build with an unknown input (a table written outside the pipeline has no fingerprint) is
    never kept: there is no telling what it was built from.
    """
    if any(value is None for value in inputs):
        return None
    text = json.dumps([target, *inputs], sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def recorded_fingerprint(con: duckdb_lib.DuckDBPyConnection, target: str) -> str | None:
    """The fingerprint `target` was last built from, or None when there is no record."""
    con.execute(SQL["create"])
    row = con.execute(SQL["recorded"], {"target": target}).fetchone()
    return row[0] if row else None


def kept_build(
    con: duckdb_lib.DuckDBPyConnection, target: str, fingerprint: str | None, tables: Iterable[str]
) -> dict[str, Any] | None:
    """The metadata recorded for `target` if it was built from exactly `fingerprint` and its
    tables are still there; None when it has to be built."""
    if fingerprint is None:
        return None
    con.execute(SQL["create"])
    row = con.execute(SQL["recorded"], {"target": target}).fetchone()
    if row is None or row[0] != fingerprint or missing_tables(con, tables):
        return None
    metadata = dg.deserialize_value(row[1], dict)
    return {**metadata, REBUILT: False}


def forget_build(con: duckdb_lib.DuckDBPyConnection, target: str) -> None:
    """Drop the record before a rebuild: if the rebuild dies half-way, nothing claims the result."""
    con.execute(SQL["create"])
    con.execute(SQL["forget"], {"target": target})


def record_build(
    con: duckdb_lib.DuckDBPyConnection, target: str, fingerprint: str | None, metadata: dict[str, Any]
) -> dict[str, Any]:
    """Record a finished build (nothing when an input was unknown); returns the metadata to report."""
    reported = {**metadata, REBUILT: True}
    if fingerprint is not None:
        con.execute(SQL["create"])
        con.execute(SQL["record"], {"target": target, "fingerprint": fingerprint,
                                    "metadata": dg.serialize_value(metadata)})
    return reported
