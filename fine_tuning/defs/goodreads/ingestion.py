"""Goodreads inputs -> DuckDB: the observable source and the `graphic_novels` / `authors` tables.

Inputs come from `settings.books_source()` / `settings.authors_source()` (GOODREADS_BOOKS_URL,
GOODREADS_AUTHORS_URL; default: the shipped sample): a local path or an http(s) URL, JSON lines,
plain or gzip (detected from the file's first bytes, not its name). URLs are downloaded with
urllib to `workdir()/downloads` first so DuckDB only ever reads local files (no httpfs extension,
which would need a network install).

Tables are rebuilt with CREATE OR REPLACE on every materialization, inside one transaction:
a file with no usable rows fails the asset and leaves the previous table untouched.
"""

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from fine_tuning.core import settings
from fine_tuning.core.checksums import file_sha256
from fine_tuning.defs.shared.warehouse import connection, table_schema

GROUP = "goodreads"
HTTP_TIMEOUT_SECONDS = 60
_HASH_CHUNK = 1 << 20

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
AUTHOR_COLUMNS: dict[str, str] = {
    "author_id": "VARCHAR",
    "name": "VARCHAR",
    "average_rating": "VARCHAR",
    "ratings_count": "VARCHAR",
    "text_reviews_count": "VARCHAR",
}

# read_json with ignore_errors turns a malformed line into an all-NULL row instead of failing
# the whole file (measured: it does not skip it), so rows without a key are dropped afterwards.
_READ_JSON = (
    "read_json($path, format = 'newline_delimited', records = true, ignore_errors = true, "
    "compression = $compression, columns = $columns)"
)
_LOAD_BOOKS_SQL = f"CREATE OR REPLACE TABLE graphic_novels AS SELECT * FROM {_READ_JSON}"
_LOAD_AUTHORS_SQL = f"""
CREATE OR REPLACE TABLE authors AS
SELECT
    author_id,
    name,
    TRY_CAST(average_rating AS DOUBLE) AS average_rating,
    TRY_CAST(ratings_count AS BIGINT) AS ratings_count,
    TRY_CAST(text_reviews_count AS BIGINT) AS text_reviews_count
FROM {_READ_JSON}
"""


@dataclass(frozen=True)
class LoadStats:
    """What one load read and kept."""

    source: str
    rows_read: int
    rows_loaded: int

    @property
    def rows_skipped(self) -> int:
        """Malformed lines, non-object lines and rows without a key."""
        return self.rows_read - self.rows_loaded


def is_url(source: str) -> bool:
    """True for http(s) URLs; everything else is a local path."""
    return urllib.parse.urlsplit(source).scheme in ("http", "https")


def display_source(source: str) -> str:
    """The source as it may be logged and stored: a URL loses its user:password and query
    string (signed-URL tokens), a local path is shown as it is."""
    if not is_url(source):
        return source
    parts = urllib.parse.urlsplit(source)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    hidden = "?<query hidden>" if parts.query else ""
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", "")) + hidden


def _local_path(source: str, what: str) -> Path:
    """The local file for a non-URL source, or a dg.Failure naming it."""
    path = Path(source).expanduser()
    if not path.is_file():
        raise dg.Failure(
            description=f"{what} file not found: {path}",
            metadata={"source": source},
        )
    return path


def download(url: str, what: str) -> Path:
    """Download an http(s) source to workdir()/downloads (atomically); dg.Failure if unreachable."""
    target_dir = settings.workdir() / "downloads"
    target_dir.mkdir(parents=True, exist_ok=True)
    name = Path(urllib.parse.urlsplit(url).path).name or "download"
    url_key = hashlib.sha256(url.encode()).hexdigest()[:12]
    target = target_dir / f"{url_key}-{name}"
    partial = Path(tempfile.mkstemp(dir=target_dir, prefix=".partial-")[1])
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_SECONDS) as response:
            with open(partial, "wb") as out:
                shutil.copyfileobj(response, out, _HASH_CHUNK)
        os.replace(partial, target)  # never leave a half-written file under the final name
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise dg.Failure(
            description=f"cannot download {what} file {display_source(url)}: {error}",
            metadata={"source": display_source(url)},
        ) from error
    finally:
        partial.unlink(missing_ok=True)
    return target


def local_input(source: str, what: str) -> Path:
    """A local file with the source's content: the path itself, or a fresh download of a URL."""
    return download(source, what) if is_url(source) else _local_path(source, what)


def compression_of(path: Path) -> str:
    """'gzip' when the file starts with the gzip magic bytes, else 'none'."""
    with open(path, "rb") as handle:
        return "gzip" if handle.read(2) == b"\x1f\x8b" else "none"


def url_version(url: str, what: str) -> str:
    """Version of a remote file: ETag or Last-Modified (+ length) from HEAD, else content sha256.

    Servers that refuse HEAD or send no validators are hashed over a GET, which is always right
    though it costs one download per observation.
    """
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
            headers = response.headers
        etag, modified = headers.get("ETag"), headers.get("Last-Modified")
        if etag or modified:
            length = headers.get("Content-Length", "")
            return f"etag={etag or ''};last-modified={modified or ''};length={length}"
    except urllib.error.HTTPError as error:
        if error.code not in (403, 405, 501):  # HEAD not allowed: fall back to GET below
            raise dg.Failure(
                description=f"cannot reach {what} file {display_source(url)}: HTTP {error.code}",
                metadata={"source": display_source(url)},
            ) from error
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise dg.Failure(
            description=f"cannot reach {what} file {display_source(url)}: {error}", metadata={"source": display_source(url)}
        ) from error
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_SECONDS) as response:
            while chunk := response.read(_HASH_CHUNK):
                digest.update(chunk)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise dg.Failure(
            description=f"cannot download {what} file {display_source(url)}: {error}", metadata={"source": display_source(url)}
        ) from error
    return f"sha256={digest.hexdigest()}"


def source_version(source: str, what: str) -> str:
    """A string that changes whenever the source's content changes."""
    if is_url(source):
        return url_version(source, what)
    return f"sha256={file_sha256(_local_path(source, what))}"


# observable_source_asset is marked beta; its warning would be printed by every CLI command.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)

    @dg.observable_source_asset(
        name="goodreads_source_dataset",
        group_name=GROUP,
        description=(
            "The two Goodreads input files (GOODREADS_BOOKS_URL, GOODREADS_AUTHORS_URL; default: the "
            "shipped sample). Its data version combines both files' versions (local: sha256 of the "
            "content; http(s): ETag/Last-Modified, else sha256 of the content), so downstream assets "
            "go stale exactly when an input changes."
        ),
    )
    def goodreads_source_dataset() -> dg.ObserveResult:
        """Observe both inputs and return one data version derived from both."""
        books, authors_file = settings.books_source(), settings.authors_source()
        books_version = source_version(books, "books")
        authors_version = source_version(authors_file, "authors")
        combined = hashlib.sha256(f"books:{books_version}\nauthors:{authors_version}".encode())
        return dg.ObserveResult(
            data_version=dg.DataVersion(combined.hexdigest()[:32]),
            metadata={
                "books_source": display_source(books),
                "authors_source": display_source(authors_file),
                "books_version": books_version,
                "authors_version": authors_version,
            },
        )


def load_json_lines(con, table: str, load_sql: str, key: str, source: str, what: str,
                    columns: dict[str, str]) -> LoadStats:
    """Replace `table` with the source's rows that have a non-blank `key`.

    Runs in one transaction: when no row is usable the previous table survives and a
    dg.Failure names the file.
    """
    path = local_input(source, what)
    params = {"path": str(path), "compression": compression_of(path), "columns": columns}
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(load_sql, params)
        rows_read = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        con.execute(f"DELETE FROM {table} WHERE nullif(trim({key}), '') IS NULL")
        rows_loaded = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        if rows_loaded == 0:
            raise dg.Failure(
                description=(
                    f"no usable {what} in {display_source(source)}: {rows_read} line(s) read, none is a JSON "
                    f"object with a non-empty {key}"
                ),
                metadata={"source": display_source(source), "rows_read": rows_read},
            )
        con.execute("COMMIT")
    except dg.Failure:
        con.execute("ROLLBACK")
        raise
    except Exception as error:  # duckdb errors: corrupt gzip, unreadable file, ...
        con.execute("ROLLBACK")
        raise dg.Failure(
            description=f"cannot load {what} file {display_source(source)}: {error}",
            metadata={"source": display_source(source)},
        ) from error
    return LoadStats(source=display_source(source), rows_read=rows_read, rows_loaded=rows_loaded)


def _load_metadata(con, table: str, stats: LoadStats) -> dict[str, object]:
    """Metadata shared by both load assets."""
    return {
        "dagster/row_count": stats.rows_loaded,
        "dagster/column_schema": table_schema(con, table),
        "source": stats.source,
        "rows_read": stats.rows_read,
        "rows_skipped": stats.rows_skipped,
    }


@dg.asset(
    deps=[goodreads_source_dataset],
    kinds={"duckdb"},
    group_name=GROUP,
    description=(
        "Raw Goodreads comics & graphic novels (UCSD Book Graph columns; numbers stay strings), "
        "replaced on every run. Malformed lines and rows without a book_id are skipped and "
        "counted (rows_skipped); duplicate book ids are kept here and resolved downstream."
    ),
)
def graphic_novels(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    """Load the books file into the `graphic_novels` table."""
    with connection(duckdb) as con:
        stats = load_json_lines(con, "graphic_novels", _LOAD_BOOKS_SQL, "book_id",
                                settings.books_source(), "books", BOOK_COLUMNS)
        distinct_ids = con.execute(
            "SELECT count(DISTINCT book_id) FROM graphic_novels"
        ).fetchone()[0]
        metadata = _load_metadata(con, "graphic_novels", stats)
    metadata["distinct_book_ids"] = distinct_ids
    metadata["duplicate_book_id_rows"] = stats.rows_loaded - distinct_ids
    context.log.info(f"graphic_novels: {stats}")
    return dg.MaterializeResult(metadata=metadata)


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
    with connection(duckdb) as con:
        stats = load_json_lines(con, "authors", _LOAD_AUTHORS_SQL, "author_id",
                                settings.authors_source(), "authors", AUTHOR_COLUMNS)
        metadata = _load_metadata(con, "authors", stats)
    context.log.info(f"authors: {stats}")
    return dg.MaterializeResult(metadata=metadata)
