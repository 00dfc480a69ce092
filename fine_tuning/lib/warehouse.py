"""DuckDB access shared by every step: connections that fail fast and always close, transactions, table facts.

DuckDB admits one read-write process per file. `connection` opens the file itself instead of
through `DuckDBResource.get_connection`, whose retries (10, with exponential backoff) make a
held file or a read-only workdir fail a step only after ~100 s, three times per job. Here:
- the file is held by another step of this pipeline (every step names its PID in
  `<database>.holders/` before it opens the file, and removes it after closing): wait for it, up
  to FINE_TUNING_DUCKDB_WAIT_SECONDS (steps release the file when they end);
- held by any other process (a DuckDB CLI, a notebook): fail within seconds naming its PID
  and program;
- the file or its folder cannot be written (read-only filesystem, permissions) or the disk is
  full: fail at once naming the path.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb as duckdb_lib
from dagster_duckdb import DuckDBResource

from fine_tuning.lib.failures import is_out_of_space, out_of_space_failure
from fine_tuning.lib.sql import sql_statements

SQL = sql_statements(__package__, "warehouse")
FETCH_BATCH = 1000
PIPELINE_WAIT_SECONDS_ENV = "FINE_TUNING_DUCKDB_WAIT_SECONDS"
DEFAULT_PIPELINE_WAIT_SECONDS = 300.0
# Another program's lock is only waited out briefly: it may be a quick script, not a session.
FOREIGN_WAIT_SECONDS = 2.0
RETRY_SECONDS = 0.1
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")
_UNWRITABLE = ("Read-only file system", "Permission denied", "read-only")


def _holder_file(database: str, pid: int) -> Path | None:
    """Where a pipeline process announces that it opens a local DuckDB file (None for md: databases).

    One file per process, written *before* it opens the database: whenever a pipeline process
    holds the lock, its announcement is already there (a single shared file written after
    opening left a window in which a racing step took a pipeline step for another program).
    """
    if database.startswith("md:") or database == ":memory:":
        return None
    return Path(database + ".holders") / str(pid)


def _is_pipeline_holder(database: str, pid: int) -> bool:
    """Whether `pid`, the process holding the file, is a step of this pipeline (else another program)."""
    path = _holder_file(database, pid)
    return path is not None and path.exists()


def _lock_failure(database: str, program: str, pid: int, waited: float, pipeline: bool) -> dg.Failure:
    if pipeline:
        holder = f"a step of another run of this pipeline, PID {pid} ({program}), still holds it"
        advice = f"Raise {PIPELINE_WAIT_SECONDS_ENV} or run the two one after the other (the run queue does)."
    else:
        holder = f"another program, PID {pid} ({program}), holds it read-write"
        advice = ("Close that program's connection (a DuckDB CLI or a notebook; reading while no run is in "
                  "progress needs read_only=True) and run again.")
    return dg.Failure(
        description=(
            f"DuckDB file {database} is locked: {holder} (DuckDB admits one writing process per file); "
            f"waited {waited:.1f} s. {advice} Nothing was changed."
        ),
        metadata={"database": database, "holder_pid": pid, "holder_program": program},
    )


def _unwritable_failure(database: str, error: Exception) -> dg.Failure:
    folder = Path(database).parent
    return dg.Failure(
        description=(
            f"cannot open DuckDB file {database} for writing: {error}. Its folder {folder} (FINE_TUNING_WORKDIR, "
            "or FINE_TUNING_DUCKDB_DATABASE) must be writable: the pipeline writes its tables there. Nothing was changed."
        ),
        metadata={"database": database},
    )


def open_database(duckdb: DuckDBResource) -> duckdb_lib.DuckDBPyConnection:
    """A read-write connection to the resource's database, or a dg.Failure that says why not (see the module)."""
    database = duckdb.database
    config = {"custom_user_agent": "dagster", **duckdb.connection_config}
    pipeline_wait = float(os.environ.get(PIPELINE_WAIT_SECONDS_ENV) or DEFAULT_PIPELINE_WAIT_SECONDS)
    started = time.monotonic()
    while True:
        try:
            con = duckdb_lib.connect(database, read_only=False, config=config)
        except duckdb_lib.IOException as error:
            text, waited = str(error), time.monotonic() - started
            lock = _LOCK_HOLDER.search(text)
            if lock is None:
                if is_out_of_space(error):
                    raise out_of_space_failure(Path(database), "the database as it was") from None
                if any(marker in text for marker in _UNWRITABLE):
                    raise _unwritable_failure(database, error) from None
                raise
            pid = int(lock["pid"])
            pipeline = _is_pipeline_holder(database, pid)
            if waited >= (pipeline_wait if pipeline else FOREIGN_WAIT_SECONDS):
                raise _lock_failure(database, lock["program"], pid, waited, pipeline) from None
            time.sleep(RETRY_SECONDS)
            continue
        return con


@contextmanager
def _announced(database: str) -> Iterator[None]:
    """Name this process as a pipeline step in `<database>.holders/` while it opens and holds the file,
    so that a step waiting for the file waits instead of failing."""
    path = _holder_file(database, os.getpid())
    try:
        if path is not None:
            path.parent.mkdir(exist_ok=True)
            path.touch()
    except OSError:
        path = None  # a read-only or full workdir: opening the database says so
    try:
        yield
    finally:
        if path is not None:
            path.unlink(missing_ok=True)


@contextmanager
def connection(duckdb: DuckDBResource) -> Iterator[duckdb_lib.DuckDBPyConnection]:
    """A read-write connection (`open_database`), closed even when the step fails.

    DuckDBResource closes its connection only on success; a leaked read-write connection
    would keep the file locked for the rest of the process (tests, in-process executor).
    DuckDB's out-of-space errors inside the block become a failure naming the file.
    """
    with _announced(duckdb.database), closing(open_database(duckdb)) as con:
        try:
            yield con
        except duckdb_lib.Error as error:
            if is_out_of_space(error):
                raise out_of_space_failure(Path(duckdb.database), "the published tables as they were") from error
            raise


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
