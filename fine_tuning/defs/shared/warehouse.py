"""DuckDB access shared by every step: connections that always close, and table schemas."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager

import dagster as dg
import duckdb as duckdb_lib
from dagster_duckdb import DuckDBResource


@contextmanager
def connection(duckdb: DuckDBResource) -> Iterator[duckdb_lib.DuckDBPyConnection]:
    """The resource's connection, closed even when the step fails.

    DuckDBResource closes its connection only on success; a leaked read-write connection
    would keep the file locked for the rest of the process (tests, in-process executor).
    """
    with duckdb.get_connection() as con, closing(con):
        yield con


def table_schema(con: duckdb_lib.DuckDBPyConnection, table: str) -> dg.TableSchema:
    """The table's columns and DuckDB types as a Dagster TableSchema."""
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = ? AND table_schema = current_schema() ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return dg.TableSchema(columns=[dg.TableColumn(name=name, type=kind) for name, kind in rows])
