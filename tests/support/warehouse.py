"""The DuckDB tables the files step and the accuracy check read, written as the goodreads steps leave them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb

from fine_tuning.core.settings import duckdb_path
from fine_tuning.defs.goodreads.loads import declare_external_load

# (book_id, title, author, description, category); a None or unknown category is an unlabelled book.
BookRow = tuple[str, str, str, str, str | None]


def write_labelled_books(books: Sequence[BookRow], categories: Sequence[str], database: Path | None = None) -> None:
    """(Re)create `categories` (in configured order) and `enriched_graphic_novels` (default: this test's DuckDB file)."""
    with duckdb.connect(str(database or duckdb_path())) as conn:
        conn.execute("CREATE OR REPLACE TABLE categories (position INTEGER, category VARCHAR)")
        conn.executemany("INSERT INTO categories VALUES (?, ?)", list(enumerate(categories)))
        conn.execute(
            "CREATE OR REPLACE TABLE enriched_graphic_novels "
            "(book_id VARCHAR, title VARCHAR, author VARCHAR, description VARCHAR, category VARCHAR)"
        )
        conn.executemany("INSERT INTO enriched_graphic_novels VALUES (?, ?, ?, ?, ?)", [tuple(book) for book in books])
        # As one load, as the goodreads steps record theirs (the files step refuses mixed loads).
        declare_external_load(conn, ["categories", "enriched_graphic_novels"])
