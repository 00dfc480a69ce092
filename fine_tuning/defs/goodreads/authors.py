"""`authors`: the Goodreads authors, one row per line of the authors file."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from fine_tuning.core import settings
from fine_tuning.defs.goodreads import GROUP
from fine_tuning.defs.goodreads.goodreads_source_dataset import goodreads_source_dataset
from fine_tuning.defs.goodreads.loads import Load, publish_when_complete, published_metadata, record_staged, staging_connection
from fine_tuning.defs.goodreads.source_files import JsonLinesTable, load_json_lines, load_metadata
from fine_tuning.defs.shared.run_settings import require_valid_run_settings
from fine_tuning.defs.shared.sql import sql_statements

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
    description=(
        "Goodreads authors (author_id, name; ratings cast to numbers, NULL when not numeric), "
        "replaced on every run. Malformed lines and rows without an author_id are skipped "
        "and counted (rows_skipped)."
    ),
)
def authors(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    """Load the authors file into the `authors` table."""
    require_valid_run_settings(context)
    load = Load.of(context)
    with staging_connection(duckdb, load) as con:
        stats = load_json_lines(
            con, AUTHORS_TABLE, settings.authors_source(), record=lambda: record_staged(con, "authors", load, {})
        )
        metadata = load_metadata(con, AUTHORS_TABLE, stats)
        metadata.update(published_metadata(load, publish_when_complete(con, context, load)))
    context.log.info(f"authors: {stats}")
    return dg.MaterializeResult(metadata=metadata)
