"""Where things live: environment variables and generated-state paths (the README lists the variables)."""

from __future__ import annotations

import os
from pathlib import Path

from fine_tuning.core.catalog import DEFAULT_BASE_MODEL  # noqa: F401 - re-exported: callers import it from here

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DIR = PROJECT_ROOT / "data" / "sample"
SAMPLE_BOOKS_FILE = SAMPLE_DIR / "goodreads_books_comics_graphic.json.gz"
SAMPLE_AUTHORS_FILE = SAMPLE_DIR / "goodreads_book_authors.json.gz"

# The 12 categories of the public example; order matters only for tie-breaking and prompts.
DEFAULT_CATEGORIES: tuple[str, ...] = (
    "fantasy",
    "horror",
    "humor",
    "adventure",
    "action",
    "romance",
    "ya",
    "superheroes",
    "comedy",
    "mystery",
    "supernatural",
    "drama",
)


def workdir() -> Path:
    """Root of all generated state (DuckDB file, JSONL files, local backend store)."""
    path = Path(os.environ.get("FINE_TUNING_WORKDIR") or PROJECT_ROOT / "data").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def duckdb_path() -> Path:
    """The one DuckDB database every step reads and writes."""
    return workdir() / "goodreads.duckdb"


DUCKDB_DATABASE_ENV = "FINE_TUNING_DUCKDB_DATABASE"


def duckdb_database() -> str:
    """The database the `duckdb` resource opens: FINE_TUNING_DUCKDB_DATABASE (a file path, or a
    MotherDuck database such as `md:goodreads` for data shared by several machines), else
    duckdb_path().

    A MotherDuck token is only ever read by DuckDB from the environment (MOTHERDUCK_TOKEN): one
    written into the database string would be shown in the UI with the resource's config.
    """
    database = os.environ.get(DUCKDB_DATABASE_ENV) or str(duckdb_path())
    if "motherduck_token" in database.lower():
        raise ValueError(
            f"{DUCKDB_DATABASE_ENV} must not carry a MotherDuck token: set MOTHERDUCK_TOKEN in the environment instead"
        )
    return database


def files_dir() -> Path:
    """Where training and validation JSONL files are written."""
    path = workdir() / "files"
    path.mkdir(parents=True, exist_ok=True)
    return path


def local_openai_dir() -> Path:
    """Store of the local OpenAI-compatible backend (FINE_TUNING_PROVIDER=local, in-process)."""
    return workdir() / "local_openai"


def books_source() -> str:
    """Books file: local path or http(s) URL (GOODREADS_BOOKS_URL), else the shipped sample."""
    return os.environ.get("GOODREADS_BOOKS_URL") or str(SAMPLE_BOOKS_FILE)


def authors_source() -> str:
    """Authors file: local path or http(s) URL (GOODREADS_AUTHORS_URL), else the shipped sample."""
    return os.environ.get("GOODREADS_AUTHORS_URL") or str(SAMPLE_AUTHORS_FILE)

