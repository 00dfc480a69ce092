"""`authors`: the Goodreads authors, one row per line of the authors file."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from fine_tuning.core import settings
from fine_tuning.defs.goodreads import GROUP, TABLES_POOL
from fine_tuning.defs.goodreads.goodreads_source_dataset import goodreads_source_dataset
from fine_tuning.defs.goodreads.loads import GOODREADS_TABLES
from fine_tuning.defs.goodreads.source_files import JsonLinesTable, load_json_lines, load_metadata, source_version
from fine_tuning.lib.run_settings import require_valid_run_settings
from fine_tuning.lib.sql import sql_statements
from fine_tuning.lib.staged_build import StagedStep, StagingConnection, record_staged, run_staged_build

AUTHOR_COLUMNS: dict[str, str] = {
    "author_id": "VARCHAR",
    "name": "VARCHAR",
    "average_rating": "VARCHAR",
    "ratings_count": "VARCHAR",
    "text_reviews_count": "VARCHAR",
}
AUTHORS_TABLE = JsonLinesTable(
    name="authors", what="authors", key="author_id", columns=AUTHOR_COLUMNS, sql=sql_statements(__package__, "authors")
)


@dg.asset(
    deps=[goodreads_source_dataset],
    kinds={"duckdb"},
    group_name=GROUP,
    pool=TABLES_POOL,
    description=(
        "Goodreads authors (author_id, name; ratings cast to numbers, NULL when not numeric), "
        "rebuilt when the authors file (or the loading SQL) changed, else kept (rebuilt=false). "
        "Malformed lines and rows without an author_id are skipped "
        "and counted (rows_skipped)."
    ),
)
def authors(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    """Load the authors file into the `authors` table (kept when the file and the SQL are unchanged)."""
    require_valid_run_settings(context)
    source = settings.authors_source()
    version = source_version(source, "authors")  # before the DuckDB file is opened: a missing file fails here

    def build(staging: StagingConnection) -> dict[str, object]:
        stats = load_json_lines(staging.con, AUTHORS_TABLE, source, record=lambda: record_staged(staging, "authors", {}))
        context.log.info(f"authors: {stats}")
        return load_metadata(staging.con, AUTHORS_TABLE, stats)

    step = StagedStep(
        target="authors",
        inputs=lambda staging: (version, AUTHOR_COLUMNS, dict(AUTHORS_TABLE.sql)),
        build=build,
    )
    return run_staged_build(context, duckdb, GOODREADS_TABLES, step)
