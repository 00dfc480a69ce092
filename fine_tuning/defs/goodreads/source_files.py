"""The Goodreads input files: where they are, what version they are at, and loading their rows.

Inputs come from `settings.books_source()` / `settings.authors_source()` (GOODREADS_BOOKS_URL,
GOODREADS_AUTHORS_URL; default: the shipped sample): a local path or an http(s) URL, JSON lines,
plain or gzip (detected from the file's first bytes, not its name). URLs are downloaded with
urllib to `workdir()/downloads` first so DuckDB only ever reads local files (no httpfs extension,
which would need a network install).

Downloads are refused when shorter than announced. DuckDB reads the file itself (gzip or plain)
while a thread checks the gzip stream alongside (a truncated or corrupt gzip fails the asset after
DuckDB read it, and its rows are discarded); an input starting with a UTF-8 byte-order mark
reaches DuckDB through a named pipe without the mark.
A table is rebuilt when its file changed (`fine_tuning.lib.builds` keeps it otherwise): the file is
loaded into a side table committed on its own, then one transaction drops its unusable rows and
gives it the table's name. A file with no usable rows fails the asset, says why for its first
lines, and leaves the previous table untouched.
"""

import hashlib
import http.client
import os
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb as duckdb_lib

from fine_tuning.core import settings
from fine_tuning.core.checksums import file_sha256
from fine_tuning.core.json_lines import (
    InputFileError,
    check_length,
    copy_counting,
    copy_verified,
    is_gzip,
    line_problems,
    starts_with_bom,
)
from fine_tuning.lib.failures import is_out_of_space
from fine_tuning.lib.warehouse import table_schema, transaction

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

    def __str__(self) -> str:
        """The progress line users read: rows kept, read and skipped, and from where."""
        return (f"{self.rows_loaded} rows loaded of {self.rows_read} read "
                f"({self.rows_skipped} skipped) from {self.source}")


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
    if path.is_dir():
        raise dg.Failure(description=f"{what} file is a directory, not a file: {path}", metadata={"source": source})
    if not path.is_file():
        raise dg.Failure(description=f"{what} file not found: {path}", metadata={"source": source})
    return path


def _unreachable(problem: str, what: str, url: str, reason: object) -> dg.Failure:
    """The failure for a URL that cannot be reached or read; it names the URL without credentials."""
    return dg.Failure(
        description=f"{problem} {what} file {display_source(url)}: {reason}", metadata={"source": display_source(url)}
    )


def download(url: str, what: str) -> Path:
    """Download an http(s) source to workdir()/downloads (atomically, and only when complete).

    A body shorter or longer than the announced Content-Length is refused: http.client hands a
    connection closed early over as a short but "successful" read.
    """
    target_dir = settings.workdir() / "downloads"
    target_dir.mkdir(parents=True, exist_ok=True)
    name = Path(urllib.parse.urlsplit(url).path).name or "download"
    url_key = hashlib.sha256(url.encode()).hexdigest()[:12]
    target = target_dir / f"{url_key}-{name}"
    partial = Path(tempfile.mkstemp(dir=target_dir, prefix=".partial-")[1])
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_SECONDS) as response:
            with open(partial, "wb") as out:
                received = copy_counting(response, out)
            check_length(received, response.headers.get("Content-Length"))
        os.replace(partial, target)  # never leave a half-written file under the final name
    except InputFileError as error:
        raise _unreachable("refusing the", what, url, error) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        raise _unreachable("cannot download", what, url, error) from error
    finally:
        partial.unlink(missing_ok=True)
    return target


def local_input(source: str, what: str) -> Path:
    """A local file with the source's content: the path itself, or a fresh download of a URL."""
    return download(source, what) if is_url(source) else _local_path(source, what)


@dataclass
class ReadableInput:
    """What DuckDB reads for a source (`path`, with DuckDB's `compression` name) and the local file it comes from."""

    path: Path
    local_file: Path
    compression: str  # "gzip" or "none"
    verify: Callable[[], None]  # after DuckDB has read `path`: raises InputFileError when the file was damaged


def _check(local_file: Path, errors: list[BaseException]) -> None:
    """Decompress `local_file` to nowhere, checking its gzip stream (CRC and length at its end)."""
    try:
        with open(os.devnull, "wb") as sink:
            copy_verified(local_file, sink)
    except BaseException as error:  # noqa: BLE001 - handed to the reading thread
        errors.append(error)


def _feed(local_file: Path, fifo: Path, errors: list[BaseException]) -> None:
    """Decompress `local_file` into the named pipe DuckDB reads, checking it as it goes."""
    try:
        with open(fifo, "wb") as pipe:
            copy_verified(local_file, pipe)
    except BrokenPipeError:
        pass  # DuckDB stopped reading: its own error is the one reported
    except BaseException as error:  # noqa: BLE001 - handed to the reading thread
        errors.append(error)


def _unblock_writer(fifo: Path) -> None:
    """Open the pipe for reading once, so a writer still waiting for DuckDB to open it gives up."""
    try:
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
    except OSError:
        pass


@contextmanager
def readable_input(source: str, what: str) -> Iterator[ReadableInput]:
    """The input DuckDB should read for `source`, and a check of its gzip stream.

    - plain text without a byte-order mark: the file itself;
    - gzip without a byte-order mark: the file itself, decompressed by DuckDB, while a thread checks
      the gzip stream at the same time (zlib and DuckDB both release the GIL: one pass of wall time
      on two cores). DuckDB reading a named pipe instead buffered the whole input: at 894k books it
      ran out of its 1 GB memory limit, where reading the file took 865 MB peak;
    - a byte-order mark (rare): the content streamed through a named pipe without it, checked on
      the way (DuckDB would read the mark into the first record's key).

    `verify()` must be called after DuckDB has read it: it raises when the gzip stream was
    truncated or corrupt (DuckDB itself reads a corrupt stream as far as it goes).
    """
    path = local_input(source, what)
    try:
        gzipped, bom = is_gzip(path), starts_with_bom(path)
    except InputFileError as error:
        raise _damaged(source, what, error) from None
    if not bom:
        if not gzipped:
            yield ReadableInput(path, path, "none", lambda: None)
            return
        errors: list[BaseException] = []
        checker = threading.Thread(target=_check, args=(path, errors), name=f"check-{what}", daemon=True)
        checker.start()
        try:
            yield ReadableInput(path, path, "gzip", lambda: _joined(checker, errors, source, what))
        finally:
            checker.join()
        return
    with tempfile.TemporaryDirectory(prefix="fine-tuning-input-") as folder:
        fifo = Path(folder) / f"{what}.json"
        os.mkfifo(fifo)
        feed_errors: list[BaseException] = []
        feeder = threading.Thread(target=_feed, args=(path, fifo, feed_errors), name=f"feed-{what}", daemon=True)
        feeder.start()
        try:
            yield ReadableInput(fifo, path, "none", lambda: _joined(feeder, feed_errors, source, what))
        finally:
            if feeder.is_alive():
                _unblock_writer(fifo)
                feeder.join(timeout=10)


def _joined(worker: threading.Thread, errors: list[BaseException], source: str, what: str) -> None:
    """Wait for the thread that reads the gzip stream; raise what it found wrong."""
    worker.join()
    if errors:
        error = errors[0]
        raise _damaged(source, what, error) if isinstance(error, InputFileError) else error


def _damaged(source: str, what: str, error: Exception) -> dg.Failure:
    return dg.Failure(
        description=f"cannot load {what} file {display_source(source)}: {error}",
        metadata={"source": display_source(source)},
    )


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
    sql: Mapping[str, str]  # statements `load`, `count_rows`, `drop_rows_without_key`, `take_name`, `drop_loading`


def load_json_lines(
    con: duckdb_lib.DuckDBPyConnection, table: JsonLinesTable, source: str, record: Callable[[], None] = lambda: None
) -> LoadStats:
    """Replace the (staged) table with the source's rows that have a non-blank key.

    The rows land in `<table>_loading` (the load's staging schema), committed on its own; one transaction, which
    `record` joins (the load record of the table), then drops the rows without a key and gives
    the table its name. When no row is usable the previous table survives and a dg.Failure
    names the file.
    """
    with readable_input(source, table.what) as readable:
        params = {"path": str(readable.path), "compression": readable.compression, "columns": dict(table.columns)}
        try:
            con.execute(table.sql["load"], params)
            readable.verify()
            with transaction(con):
                rows_read = con.execute(table.sql["count_rows"]).fetchone()[0]
                con.execute(table.sql["drop_rows_without_key"])
                rows_loaded = con.execute(table.sql["count_rows"]).fetchone()[0]
                if rows_loaded == 0:
                    raise _no_usable_rows(table, source, readable.local_file, rows_read)
                con.execute(table.sql["take_name"])
                record()
        except dg.Failure:
            raise
        except Exception as error:  # duckdb errors: unreadable file, ...
            if is_out_of_space(error):
                raise  # the disk, not the input: the connection's failure names the database file
            readable.verify()  # a damaged gzip stream, found by the check beside DuckDB, says it best
            raise dg.Failure(
                description=f"cannot load {table.what} file {display_source(source)}: {error}",
                metadata={"source": display_source(source)},
            ) from error
        finally:
            con.execute(table.sql["drop_loading"])  # after a failure; nothing left after success
    return LoadStats(source=display_source(source), rows_read=rows_read, rows_loaded=rows_loaded)


def _no_usable_rows(table: JsonLinesTable, source: str, path: Path, rows_read: int) -> dg.Failure:
    """The failure for a file without one usable row, saying why for its first lines."""
    problems = line_problems(path, table.key)
    why = "; ".join(problems) if problems else (
        f"every line is a JSON object with a {table.key}, but a field does not have the expected type "
        "(e.g. a list given as text)"
    )
    return dg.Failure(
        description=(
            f"no usable {table.what} in {display_source(source)}: {rows_read} line(s) read, none is a JSON object "
            f"with a non-empty {table.key}. {why}"
        ),
        metadata={"source": display_source(source), "rows_read": rows_read, "first_problems": why},
    )


def load_metadata(con: duckdb_lib.DuckDBPyConnection, table: JsonLinesTable, stats: LoadStats) -> dict[str, object]:
    """Metadata every loaded table reports."""
    return {
        "dagster/row_count": stats.rows_loaded,
        "dagster/column_schema": table_schema(con, table.name),
        "source": stats.source,
        "rows_read": stats.rows_read,
        "rows_skipped": stats.rows_skipped,
    }
