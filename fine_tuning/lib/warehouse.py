"""DuckDB access shared by every step: connections that always close, transactions, table facts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from typing import Any

import dagster as dg
import duckdb as duckdb_lib
from dagster_duckdb import DuckDBResource

from fine_tuning.lib.sql import sql_statements

SQL = sql_statements(__package__, "warehouse")
FETCH_BATCH = 1000


@contextmanager
def connection(duckdb: DuckDBResource) -> Iterator[duckdb_lib.DuckDBPyConnection]:
    """The resource's connection, closed even when the step fails.

    DuckDBResource closes its connection only on success; a leaked read-write connection
    would keep the file locked for the rest of the process (tests, in-process executor).
    """
    with duckdb.get_connection() as con, closing(con):
        yield con


@contextmanager
def transaction(con: duckdb_lib.DuckDBPyConnection) -> Iterator[duckdb_lib.DuckDBPyConnection]:
    """BEGIN; COMMIT when the block ends normally, ROLLBACK when anything (even an interrupt) escapes.

    A step that rebuilds tables inside one transaction leaves the previous tables in place
    when it fails half-way.
    """
    con.begin()
    try:
        yield con
    except BaseException:
        con.rollback()
        raise
    con.commit()


def table_schema(con: duckdb_lib.DuckDBPyConnection, table: str) -> dg.TableSchema:
    """The table's columns and DuckDB types as a Dagster TableSchema."""
    rows = con.execute(SQL["table_columns"], {"table": table}).fetchall()
    return dg.TableSchema(columns=[dg.TableColumn(name=name, type=kind) for name, kind in rows])


def missing_tables(con: duckdb_lib.DuckDBPyConnection, tables: Iterable[str]) -> list[str]:
    """Those of `tables` the database does not hold, in the order asked."""
    present = {row[0] for row in con.execute(SQL["tables"]).fetchall()}
    return [table for table in tables if table not in present]


def configured_categories(con: duckdb_lib.DuckDBPyConnection) -> list[str]:
    """The categories `book_category` wrote, in their configured order (empty when none)."""
    return [row[0] for row in con.execute(SQL["categories"]).fetchall()]


def stream_rows(cursor: duckdb_lib.DuckDBPyConnection, batch: int = FETCH_BATCH) -> Iterator[tuple[Any, ...]]:
    """The rows of an executed query, fetched `batch` at a time so no result sits whole in memory."""
    while rows := cursor.fetchmany(batch):
        yield from rows
