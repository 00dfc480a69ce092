"""`graphic_novels`: the raw Goodreads books, one row per line of the books file.

Also the one rule for duplicate book ids that the downstream assets share (`canonical_book_rows`).
"""

import dagster as dg
import duckdb as duckdb_lib
from dagster_duckdb import DuckDBResource

from fine_tuning.core import settings
from fine_tuning.defs.goodreads import GROUP, TABLES_POOL
from fine_tuning.defs.goodreads.goodreads_source_dataset import goodreads_source_dataset
from fine_tuning.defs.goodreads.loads import GOODREADS_TABLES
from fine_tuning.defs.goodreads.source_files import JsonLinesTable, load_json_lines, load_metadata, source_version
from fine_tuning.lib.run_settings import require_valid_run_settings
from fine_tuning.lib.sql import sql_statements
from fine_tuning.lib.staged_build import StagedStep, StagingConnection, record_staged, run_staged_build

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
    pool=TABLES_POOL,
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
    source = settings.books_source()
    version = source_version(source, "books")  # before the DuckDB file is opened: a missing file fails here

    def build(staging: StagingConnection) -> dict[str, object]:
        stats = load_json_lines(
            staging.con, BOOKS_TABLE, source, record=lambda: record_staged(staging, "graphic_novels", {})
        )
        distinct_ids = distinct_book_ids(staging.con)
        metadata = load_metadata(staging.con, BOOKS_TABLE, stats)
        metadata["distinct_book_ids"] = distinct_ids
        metadata["duplicate_book_id_rows"] = stats.rows_loaded - distinct_ids
        context.log.info(f"graphic_novels: {stats}")
        return metadata

    step = StagedStep(
        target="graphic_novels", inputs=lambda staging: (version, BOOK_COLUMNS, dict(SQL)), build=build
    )
    return run_staged_build(context, duckdb, GOODREADS_TABLES, step)
