"""The Goodreads input files: where they are, what version they are at, and loading their rows.

Inputs come from `settings.books_source()` / `settings.authors_source()` (GOODREADS_BOOKS_URL,
GOODREADS_AUTHORS_URL; default: the shipped sample): a local path or an http(s) URL, JSON lines,
plain or gzip (detected from the file's first bytes, not its name). URLs are downloaded with
urllib to `workdir()/downloads` first so DuckDB only ever reads local files (no httpfs extension,
which would need a network install).

A table is rebuilt when its file changed (`defs.shared.builds` keeps it otherwise): the file is
loaded into a staging table, and one transaction drops its unusable rows and puts it in the
table's place. A file with no usable rows
fails the asset and leaves the previous table untouched.
"""

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb as duckdb_lib

from fine_tuning.core import settings
from fine_tuning.core.checksums import file_sha256
from fine_tuning.defs.shared.warehouse import table_schema, transaction

HTTP_TIMEOUT_SECONDS = 60
_HASH_CHUNK = 1 << 20


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


def _unreachable(problem: str, what: str, url: str, reason: object) -> dg.Failure:
    """The failure for a URL that cannot be reached or read; it names the URL without credentials."""
    return dg.Failure(
        description=f"{problem} {what} file {display_source(url)}: {reason}", metadata={"source": display_source(url)}
    )


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
        raise _unreachable("cannot download", what, url, error) from error
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
            raise _unreachable("cannot reach", what, url, f"HTTP {error.code}") from error
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise _unreachable("cannot reach", what, url, error) from error
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_SECONDS) as response:
            while chunk := response.read(_HASH_CHUNK):
                digest.update(chunk)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise _unreachable("cannot download", what, url, error) from error
    return f"sha256={digest.hexdigest()}"


def source_version(source: str, what: str) -> str:
    """A string that changes whenever the source's content changes."""
    if is_url(source):
        return url_version(source, what)
    return f"sha256={file_sha256(_local_path(source, what))}"


@dataclass(frozen=True)
class JsonLinesTable:
    """A table rebuilt from one input file: its SQL statements, key column and column types."""

    name: str
    what: str  # how messages name the file: "books", "authors"
    key: str  # rows without a non-blank key are dropped
    columns: Mapping[str, str]  # the file's fields and their DuckDB types, in file order
    sql: Mapping[str, str]  # statements `load`, `count_rows`, `drop_rows_without_key`, `publish`, `drop_staging`


def load_json_lines(con: duckdb_lib.DuckDBPyConnection, table: JsonLinesTable, source: str) -> LoadStats:
    """Replace the table with the source's rows that have a non-blank key.

    The rows land in a staging table first; one transaction then drops those without a key and
    renames the staging table into place. When no row is usable the previous table survives and
    a dg.Failure names the file.
    """
    path = local_input(source, table.what)
    params = {"path": str(path), "compression": compression_of(path), "columns": dict(table.columns)}
    try:
        con.execute(table.sql["load"], params)
        with transaction(con):
            rows_read = con.execute(table.sql["count_rows"]).fetchone()[0]
            con.execute(table.sql["drop_rows_without_key"])
            rows_loaded = con.execute(table.sql["count_rows"]).fetchone()[0]
            if rows_loaded == 0:
                raise dg.Failure(
                    description=(
                        f"no usable {table.what} in {display_source(source)}: {rows_read} line(s) read, none is "
                        f"a JSON object with a non-empty {table.key}"
                    ),
                    metadata={"source": display_source(source), "rows_read": rows_read},
                )
            con.execute(table.sql["publish"])
    except dg.Failure:
        raise
    except Exception as error:  # duckdb errors: corrupt gzip, unreadable file, ...
        raise dg.Failure(
            description=f"cannot load {table.what} file {display_source(source)}: {error}",
            metadata={"source": display_source(source)},
        ) from error
    finally:
        con.execute(table.sql["drop_staging"])  # after a failure; a no-op after success
    return LoadStats(source=display_source(source), rows_read=rows_read, rows_loaded=rows_loaded)


def load_metadata(con: duckdb_lib.DuckDBPyConnection, table: JsonLinesTable, stats: LoadStats) -> dict[str, object]:
    """Metadata every loaded table reports."""
    return {
        "dagster/row_count": stats.rows_loaded,
        "dagster/column_schema": table_schema(con, table.name),
        "source": stats.source,
        "rows_read": stats.rows_read,
        "rows_skipped": stats.rows_skipped,
    }
