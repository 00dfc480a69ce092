"""`book_category`: the one category label per book, from readers' shelves, and the `categories` table.

All work happens in DuckDB SQL (`sql/book_category.sql`; no Python loop over rows);
configuration reaches SQL only as parameters.
"""

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from fine_tuning.core.markdown import markdown_table
from fine_tuning.core.settings import DEFAULT_CATEGORIES
from fine_tuning.defs.goodreads import GROUP
from fine_tuning.defs.goodreads.graphic_novels import SQL as BOOKS_SQL
from fine_tuning.defs.goodreads.graphic_novels import create_canonical_rows_view, distinct_book_ids, graphic_novels
from fine_tuning.defs.shared.builds import build_fingerprint, forget_build, kept_build, record_build, recorded_fingerprint
from fine_tuning.defs.shared.sql import sql_statements
from fine_tuning.defs.shared.warehouse import connection, table_schema, transaction

SQL = sql_statements(__package__, "book_category")


class BookCategoryConfig(dg.Config):
    """Which shelves are categories, and how many readers must use a shelf for it to count."""

    categories: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CATEGORIES),
        description="Category shelf names in priority order (ties go to the earlier one).",
    )
    min_shelf_count_exclusive: int = Field(
        default=3, description="A shelf counts only when its count is strictly greater."
    )


def normalized_categories(categories: list[str]) -> list[str]:
    """Trimmed, lower-case category names; dg.Failure on an empty list, blanks or duplicates."""
    names = [name.strip().lower() for name in categories]
    if not names or any(not name for name in names):
        raise dg.Failure(description=f"categories must be non-empty names, got {categories!r}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise dg.Failure(description=f"duplicate categories (case-insensitive): {duplicates}")
    return names


def category_distribution_markdown(rows: list[tuple[str, int]]) -> str:
    """A markdown table of (category, books) rows with each category's share."""
    total = sum(count for _, count in rows) or 1
    shares = [(category, count, f"{count / total:.1%}") for category, count in rows]
    return markdown_table(("category", "books", "share"), shares, align="lrr")


@dg.asset(
    deps=[graphic_novels],
    kinds={"duckdb"},
    group_name=GROUP,
    description=(
        "The category label per book: among popular_shelves whose name (case-insensitive) is a "
        "configured category and whose count (cast from string) is > min_shelf_count_exclusive, "
        "the one with the highest count; ties go to the category listed first. Books without "
        "such a shelf get no row. Also writes `categories(position, category)`."
    ),
)
def book_category(
    context: dg.AssetExecutionContext, config: BookCategoryConfig, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    """Write the `categories` and `book_category` tables (kept when books, configuration and SQL are unchanged)."""
    categories = normalized_categories(config.categories)
    with connection(duckdb) as con:
        fingerprint = build_fingerprint(
            "book_category", recorded_fingerprint(con, "graphic_novels"), categories,
            config.min_shelf_count_exclusive, dict(SQL), dict(BOOKS_SQL),
        )
        kept = kept_build(con, "book_category", fingerprint, ["book_category", "categories"])
        if kept is not None:
            context.log.info("book_category: books and configuration unchanged since the table was built; kept it")
            return dg.MaterializeResult(metadata=kept)
        forget_build(con, "book_category")
        create_canonical_rows_view(con)
        with transaction(con):
            con.execute(SQL["categories"], {"categories": categories})
            con.execute(SQL["book_category"], {"min_shelf_count_exclusive": config.min_shelf_count_exclusive})
        labeled = con.execute(SQL["labeled_books"]).fetchone()[0]
        books = distinct_book_ids(con)
        distribution = con.execute(SQL["distribution"]).fetchall()
        metadata = {
            "dagster/row_count": labeled,
            "dagster/column_schema": table_schema(con, "book_category"),
            "books": books,
            "books_without_category": books - labeled,
            "categories": ", ".join(categories),
            "min_shelf_count_exclusive": config.min_shelf_count_exclusive,
            "category_distribution": dg.MetadataValue.md(category_distribution_markdown(distribution)),
        }
        metadata = record_build(con, "book_category", fingerprint, metadata)
    context.log.info(f"book_category: {labeled} of {books} books labeled")
    return dg.MaterializeResult(metadata=metadata)
