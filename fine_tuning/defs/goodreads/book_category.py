"""`book_category`: the one category label per book, from readers' shelves, and the `categories` table.

All work happens in DuckDB SQL (`sql/book_category.sql`; no Python loop over rows);
configuration reaches SQL only as parameters.
"""

from typing import ClassVar

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field, model_validator

from fine_tuning.core.markdown import markdown_table
from fine_tuning.core.settings import DEFAULT_CATEGORIES
from fine_tuning.defs.goodreads import GROUP, TABLES_POOL
from fine_tuning.defs.goodreads.graphic_novels import SQL as BOOKS_SQL
from fine_tuning.defs.goodreads.graphic_novels import create_canonical_rows_view, distinct_book_ids, graphic_novels
from fine_tuning.defs.goodreads.loads import GOODREADS_TABLES
from fine_tuning.lib.builds import effective_fingerprint
from fine_tuning.lib.run_settings import CheckedConfig, SettingProblem, SettingsError, require_valid_run_settings
from fine_tuning.lib.sql import sql_statements
from fine_tuning.lib.staged_build import (
    StagedStep,
    StagingConnection,
    input_loads,
    record_staged,
    run_staged_build,
)
from fine_tuning.lib.warehouse import table_schema, transaction

SQL = sql_statements(__package__, "book_category")
MAX_CATEGORY_CHARS = 64


class BookCategoryConfig(CheckedConfig):
    """Which shelves are categories, and how many readers must use a shelf for it to count."""

    run_config_path: ClassVar[str] = "ops.book_category.config"

    categories: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CATEGORIES), min_length=2, max_length=100,
        description="2-100 category shelf names in priority order (ties go to the earlier one); "
        "non-blank, at most 64 characters, no duplicates (case-insensitive).",
    )
    min_shelf_count_exclusive: int = Field(
        default=3, ge=0, le=1_000_000, description="A shelf counts only when its count is strictly greater (0-1000000)."
    )

    @model_validator(mode="after")
    def _names_are_usable(self) -> "BookCategoryConfig":
        names = [name.strip().lower() for name in self.categories]
        bad = [name for name in self.categories if not name.strip() or len(name.strip()) > MAX_CATEGORY_CHARS]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if bad or duplicates:
            reason = (f"blank or longer than {MAX_CATEGORY_CHARS} characters: {bad}" if bad
                      else f"duplicate categories (case-insensitive): {duplicates}")
            raise SettingsError([SettingProblem(
                self.setting("categories"), self.categories,
                f"{reason}; allowed: non-blank names of at most {MAX_CATEGORY_CHARS} characters, each once (case-insensitive)",
            )])
        return self


def normalized_categories(categories: list[str]) -> list[str]:
    """Trimmed, lower-case category names (the config has already refused blanks and duplicates)."""
    return [name.strip().lower() for name in categories]


def category_distribution_markdown(rows: list[tuple[str, int]]) -> str:
    """A markdown table of (category, books) rows with each category's share."""
    total = sum(count for _, count in rows) or 1
    shares = [(category, count, f"{count / total:.1%}") for category, count in rows]
    return markdown_table(("category", "books", "share"), shares, align="lrr")


@dg.asset(
    deps=[graphic_novels],
    kinds={"duckdb"},
    group_name=GROUP,
    pool=TABLES_POOL,
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
    require_valid_run_settings(context)
    categories = normalized_categories(config.categories)

    def inputs(staging: StagingConnection) -> tuple[object, ...]:
        return (
            effective_fingerprint(staging.con, "graphic_novels", staging.load.load_id),
            input_loads(staging, ["graphic_novels"]),
            categories, config.min_shelf_count_exclusive, dict(SQL), dict(BOOKS_SQL),
        )

    def build(staging: StagingConnection) -> dict[str, object]:
        con = staging.con
        create_canonical_rows_view(con)
        with transaction(con):
            sources = input_loads(staging, ["graphic_novels"])
            con.execute(SQL["categories"], {"categories": categories})
            con.execute(SQL["book_category"], {"min_shelf_count_exclusive": config.min_shelf_count_exclusive})
            record_staged(staging, "categories", {})
            record_staged(staging, "book_category", {**sources, "categories": staging.load.load_id})
        labeled = con.execute(SQL["labeled_books"]).fetchone()[0]
        books = distinct_book_ids(con)
        distribution = con.execute(SQL["distribution"]).fetchall()
        context.log.info(f"book_category: {labeled} of {books} books labeled")
        return {
            "dagster/row_count": labeled,
            "dagster/column_schema": table_schema(con, "book_category"),
            "books": books,
            "books_without_category": books - labeled,
            "categories": ", ".join(categories),
            "min_shelf_count_exclusive": config.min_shelf_count_exclusive,
            "category_distribution": dg.MetadataValue.md(category_distribution_markdown(distribution)),
        }

    return run_staged_build(context, duckdb, GOODREADS_TABLES, StagedStep("book_category", inputs, build))
