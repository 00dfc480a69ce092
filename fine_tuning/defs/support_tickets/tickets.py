"""`support_tickets/ticket_file` (the observed input file) and `support_tickets/tickets`, the table
the support_tickets task reads, in the task's own DuckDB file (resource `support_tickets_duckdb`,
added by its FineTuningTask: `task/defs.yaml`)."""

import os
import warnings
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from fine_tuning.core.checksums import file_sha256
from fine_tuning.core.markdown import markdown_table
from fine_tuning.core.settings import SAMPLE_DIR
from fine_tuning.defs.support_tickets import GROUP
from fine_tuning.lib.builds import build_fingerprint, forget_build, kept_build, kept_metadata, record_build
from fine_tuning.lib.sql import sql_statements
from fine_tuning.lib.warehouse import connection, table_schema, transaction
from fine_tuning.sample_tickets import TICKETS_FILE_NAME

SQL = sql_statements(__package__, "tickets")
# The table's build record (`lib.builds`); the training files read it as their source's fingerprint.
BUILD_TARGET = "tickets"
TICKETS_FILE_ENV = "SUPPORT_TICKETS_FILE"
PREFIX = ["support_tickets"]


def tickets_file() -> Path:
    """The ticket file: SUPPORT_TICKETS_FILE, else the shipped sample (`python -m fine_tuning.sample_tickets`)."""
    return Path(os.environ.get(TICKETS_FILE_ENV) or SAMPLE_DIR / TICKETS_FILE_NAME)


with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)

    @dg.observable_source_asset(
        key=[*PREFIX, "ticket_file"],
        group_name=GROUP,
        description=f"The support ticket file (JSON lines, optionally gzipped; {TICKETS_FILE_ENV}, default the "
        "shipped sample). Its data version is the sha256 of its content, so the task re-tunes when it changes.",
    )
    def ticket_file() -> dg.ObserveResult:
        """Observe the ticket file's content."""
        path = tickets_file()
        if not path.is_file():
            raise dg.Failure(description=f"ticket file {path} does not exist ({TICKETS_FILE_ENV})")
        return dg.ObserveResult(
            data_version=dg.DataVersion(file_sha256(path)[:32]), metadata={"path": str(path.resolve())}
        )


@dg.asset(
    key=[*PREFIX, "tickets"],
    deps=[ticket_file],
    group_name=GROUP,
    kinds={"duckdb"},
    pool="support_tickets_tables",  # dagster.yaml: one run at a time writes the task's tables
    description="The support tickets, one row per ticket id, loaded from the ticket file into the task's DuckDB "
    "file; what the support_tickets task routes to departments.",
)
def tickets(context: dg.AssetExecutionContext, support_tickets_duckdb: DuckDBResource) -> dg.MaterializeResult:
    """Load the ticket file into the `tickets` table (replaced in one transaction with its build record).

    The table is kept as it is when the file's content (sha256), its path and the SQL are those it
    was loaded from (`rebuilt: false`, as the Goodreads tables): an unchanged run reads no ticket.
    """
    path = tickets_file()
    if not path.is_file():
        raise dg.Failure(description=f"ticket file {path} does not exist ({TICKETS_FILE_ENV})")
    fingerprint = build_fingerprint(BUILD_TARGET, file_sha256(path), str(path.resolve()), dict(SQL))
    with connection(support_tickets_duckdb) as conn:
        record = kept_build(conn, BUILD_TARGET, fingerprint, ["tickets"])
        if record is not None:
            context.log.info(f"{path} is the file the tickets were loaded from; kept the table")
            return dg.MaterializeResult(metadata=kept_metadata(record))
        with transaction(conn):
            forget_build(conn, BUILD_TARGET)
            conn.execute(SQL["load_tickets"], {"path": str(path)})
            counts = conn.execute(SQL["departments"]).fetchall()
            rows = sum(count for _, count in counts)
            metadata = record_build(conn, BUILD_TARGET, fingerprint, {
                "dagster/row_count": rows,
                "dagster/column_schema": table_schema(conn, "tickets"),
                "path": str(path.resolve()),
                "departments": dg.MetadataValue.md(markdown_table(("department", "tickets"), counts, align="lr")),
            })
    context.log.info(f"loaded {rows} tickets from {path}")
    return dg.MaterializeResult(metadata=metadata)
