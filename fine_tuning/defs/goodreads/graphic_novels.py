"""`graphic_novels`: the raw Goodreads books, one row per line of the books file.

Also the one rule for duplicate book ids that the downstream assets share (`canonical_book_rows`).
"""

import dagster as dg
import duckdb as duckdb_lib
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

SQL = sql_statements(__package__, "graphic_novels")

# UCSD Book Graph books schema, in file order. Numbers stay strings, as in the source: the raw
# table mirrors the file, and downstream SQL casts only what it uses (shelf counts).
BOOK_COLUMNS: dict[str, str] = {
    "isbn": "VARCHAR",
    "text_reviews_count": "VARCHAR",
    "series": "VARCHAR[]",
    "country_code": "VARCHAR",
    "language_code": "VARCHAR",
    "popular_shelves": "STRUCT(count VARCHAR, name VARCHAR)[]",
    "asin": "VARCHAR",
    "is_ebook": "VARCHAR",
    "average_rating": "VARCHAR",
    "kindle_asin": "VARCHAR",
    "similar_books": "VARCHAR[]",
    "description": "VARCHAR",
    "format": "VARCHAR",
    "link": "VARCHAR",
    "authors": "STRUCT(author_id VARCHAR, role VARCHAR)[]",
    "publisher": "VARCHAR",
    "num_pages": "VARCHAR",
    "publication_day": "VARCHAR",
    "isbn13": "VARCHAR",
    "publication_month": "VARCHAR",
    "edition_information": "VARCHAR",
    "publication_year": "VARCHAR",
    "url": "VARCHAR",
    "image_url": "VARCHAR",
    "book_id": "VARCHAR",
    "ratings_count": "VARCHAR",
    "work_id": "VARCHAR",
    "title": "VARCHAR",
    "title_without_series": "VARCHAR",
}
BOOKS_TABLE = JsonLinesTable(name="graphic_novels", what="books", key="book_id", columns=BOOK_COLUMNS, sql=SQL)


def distinct_book_ids(con: duckdb_lib.DuckDBPyConnection) -> int:
    """How many different book ids `graphic_novels` holds."""
    return con.execute(SQL["distinct_book_ids"]).fetchone()[0]


def create_canonical_rows_view(con: duckdb_lib.DuckDBPyConnection) -> None:
    """The temp view `canonical_book_rows`: the rowid of the one row kept per book id."""
    con.execute(SQL["canonical_rows_view"])


@dg.asset(
    deps=[goodreads_source_dataset],
    kinds={"duckdb"},
    group_name=GROUP,
    description=(
        "Raw Goodreads comics & graphic novels (UCSD Book Graph columns; numbers stay strings), "
        "rebuilt when the books file (or the loading SQL) changed, else kept (rebuilt=false). "
        "Malformed lines and rows without a book_id are skipped and "
        "counted (rows_skipped); duplicate book ids are kept here and resolved downstream."
    ),
)
def graphic_novels(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    """Load the books file into the `graphic_novels` table (kept when the file and the SQL are unchanged)."""
    require_valid_run_settings(context)
    load = Load.of(context)
    source = settings.books_source()
    fingerprint = build_fingerprint("graphic_novels", source_version(source, "books"), BOOK_COLUMNS, dict(SQL))
    with staging_connection(duckdb, load) as con:
        kept = kept_build(con, "graphic_novels", fingerprint, PREP_TABLES["graphic_novels"], load.load_id)
        if kept is not None:
            return dg.MaterializeResult(metadata=kept_result(con, context, load, "graphic_novels", kept))
        begin_staged_build(con, "graphic_novels")
        stats = load_json_lines(
            con, BOOKS_TABLE, source, record=lambda: record_staged(con, "graphic_novels", load, {})
        )
        distinct_ids = distinct_book_ids(con)
        metadata = load_metadata(con, BOOKS_TABLE, stats)
        metadata["distinct_book_ids"] = distinct_ids
        metadata["duplicate_book_id_rows"] = stats.rows_loaded - distinct_ids
        metadata = stage_build(con, "graphic_novels", load.load_id, fingerprint, metadata)
        metadata.update(published_metadata(load, publish_when_complete(con, context, load)))
    context.log.info(f"graphic_novels: {stats}")
    return dg.MaterializeResult(metadata=metadata)
