"""The Goodreads prep tables as one staged family (`fine_tuning.lib.staged_build`) and their load records.

The four prep assets stage their tables per load and publish them together; `table_loads`
records, per table, the load (root run id) that built it and the loads of the tables it was built
from. The training files refuse tables whose record does not match (`same_load_problems`): for
instance an `enriched_graphic_novels` built before `book_category` was replaced.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb as duckdb_lib

from fine_tuning.lib import staged_build
from fine_tuning.lib.staged_build import StagedTables, published_loads, stale_tables

__all__ = ["GOODREADS_TABLES", "PREP_TABLES", "declare_external_load", "published_loads", "same_load_problems",
           "stale_tables"]

# Each prep asset and the tables it writes, in build order.
PREP_TABLES: dict[str, tuple[str, ...]] = {
    "graphic_novels": ("graphic_novels",),
    "authors": ("authors",),
    "book_category": ("categories", "book_category"),
    "enriched_graphic_novels": ("enriched_graphic_novels",),
}
GOODREADS_TABLES = StagedTables(family="goodreads", targets=PREP_TABLES)


def same_load_problems(con: duckdb_lib.DuckDBPyConnection, table: str = "enriched_graphic_novels") -> list[str]:
    """Why the published `table` and what it was built from do not come from one load (empty: they do)."""
    return staged_build.same_load_problems(con, table)


def declare_external_load(con: duckdb_lib.DuckDBPyConnection, tables: Iterable[str]) -> str:
    """Record tables written outside the goodreads assets (e.g. by hand) as one load; returns its id."""
    return staged_build.declare_external_load(con, tables)
