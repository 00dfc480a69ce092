"""`authors`: the Goodreads authors, one row per line of the authors file."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from fine_tuning.core import settings
from fine_tuning.defs.goodreads import GROUP
from fine_tuning.defs.goodreads.goodreads_source_dataset import goodreads_source_dataset
from fine_tuning.defs.goodreads.loads import (
    PREP_TABLES,
    Load,
    kept_result,
    publish_when_complete,
    published_metadata,
    record_staged,
    staging_connection,
)
from fine_tuning.defs.goodreads.source_files import JsonLinesTable, load_json_lines, load_metadata, source_version
from fine_tuning.lib.builds import begin_staged_build, build_fingerprint, kept_build, stage_build
from fine_tuning.lib.run_settings import require_valid_run_settings
from fine_tuning.lib.sql import sql_statements

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
        "rebuilt when the authors file (or the loading SQL) changed, else kept (rebuilt=false). "
        "Malformed lines and rows without an author_id are skipped "
        "and counted (rows_skipped)."
    ),
)
def authors(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    """Load the authors file into the `authors` table (kept when the file and the SQL are unchanged)."""
    require_valid_run_settings(context)
    load = Load.of(context)
    source = settings.authors_source()
    fingerprint = build_fingerprint("authors", source_version(source, "authors"), AUTHOR_COLUMNS, dict(AUTHORS_TABLE.sql))
    with staging_connection(duckdb, load) as con:
        kept = kept_build(con, "authors", fingerprint, PREP_TABLES["authors"], load.load_id)
        if kept is not None:
            return dg.MaterializeResult(metadata=kept_result(con, context, load, "authors", kept))
        begin_staged_build(con, "authors")
        stats = load_json_lines(
            con, AUTHORS_TABLE, source, record=lambda: record_staged(con, "authors", load, {})
        )
        metadata = stage_build(con, "authors", load.load_id, fingerprint, load_metadata(con, AUTHORS_TABLE, stats))
        metadata.update(published_metadata(load, publish_when_complete(con, context, load)))
    context.log.info(f"authors: {stats}")
    return dg.MaterializeResult(metadata=metadata)
