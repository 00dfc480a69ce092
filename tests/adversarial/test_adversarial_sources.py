"""Adversarial Goodreads sources: every broken input fails the prep cleanly and changes no table.

Each case starts from the tables of a good load (copied from one prep run of the module) and
runs the whole prep on a broken input: it must fail with the named reason, and every table and
load record in `main` must be exactly as before. The truncated download comes from a local HTTP
server that announces more bytes than it sends.
"""

from __future__ import annotations

import gzip
import http.server
import json
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from fine_tuning.core.settings import duckdb_path
from fine_tuning.defs.goodreads.graphic_novels import graphic_novels

from tests.support.dagster_runs import failure_text
from tests.support.goodreads import author, book, materialize_prep, point_at, query, write_lines
from tests.support.goodreads_task import training_files

pytestmark = pytest.mark.adversarial
TABLES = ("graphic_novels", "authors", "categories", "book_category", "enriched_graphic_novels", "table_loads")
CATEGORY_NAMES = ("fantasy", "horror", "humor", "romance")


def good_books(count: int = 40) -> list[dict]:
    return [
        book(str(n), title=f"Title {n}", description=f"A long enough description of book number {n}.",
             shelves=[(CATEGORY_NAMES[n % 4], "50")], authors_=[(str(n % 5), "")])
        for n in range(count)
    ]


GOOD_AUTHORS = [author(str(n), f"Author {n}") for n in range(5)]


def snapshot() -> dict[str, tuple[int, int]]:
    """(rows, content hash) of every published table and of the load records."""
    with duckdb.connect(str(duckdb_path()), read_only=True) as conn:
        return {table: conn.execute(f"SELECT count(*), bit_xor(hash(t)) FROM main.{table} t").fetchone() for table in TABLES}  # noqa: S608 - fixed names


@pytest.fixture(scope="module")
def good_tables(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The DuckDB file after one good, complete prep run."""
    root = tmp_path_factory.mktemp("good")
    with pytest.MonkeyPatch.context() as patch:
        point_at(patch, root / "work", write_lines(root / "books.json", good_books()),
                 write_lines(root / "authors.json", GOOD_AUTHORS))
        assert materialize_prep().success
        return duckdb_path()


@pytest.fixture
def published(good_tables: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[int, int]]:
    """This test's workdir holds the good load; returns its snapshot. Inputs default to good files."""
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(good_tables, work / "goodreads.duckdb")
    point_at(monkeypatch, work, write_lines(tmp_path / "books.json", good_books()),
             write_lines(tmp_path / "authors.json", GOOD_AUTHORS))
    return snapshot()


class _LyingHandler(http.server.BaseHTTPRequestHandler):
    """Serves `body` but announces `announced` bytes, then closes: a truncated download."""

    body = b""
    announced = 0

    def do_HEAD(self) -> None:  # noqa: N802 (http.server naming)
        self.send_response(200)
        self.send_header("ETag", '"v1"')
        self.send_header("Content-Length", str(self.announced))
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        if self.path.endswith("missing.json"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(self.announced))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def lying_server() -> Iterator[Callable[[bytes, int], str]]:
    """A local HTTP server; call it with (body, announced length) to get the URL that serves them."""
    handler = type("Handler", (_LyingHandler,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def serve(body: bytes, announced: int) -> str:
        handler.body, handler.announced = body, announced
        return f"http://127.0.0.1:{server.server_address[1]}/books.json"

    try:
        yield serve
    finally:
        server.shutdown()
        server.server_close()


def lines_bytes(records: list) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in records)


@dataclass(frozen=True)
class SourceCase:
    """A broken books (or authors) file and the words its failure must contain."""

    name: str
    content: Callable[[], bytes]
    reason: str
    file: str = "books"


def _truncated_gzip() -> bytes:
    data = gzip.compress(lines_bytes(good_books()))
    return data[: len(data) // 2]


def _corrupt_gzip() -> bytes:
    data = bytearray(gzip.compress(lines_bytes(good_books())))
    middle = len(data) // 2
    data[middle:middle + 8] = bytes(b ^ 0xFF for b in data[middle:middle + 8])
    return bytes(data)


CASES = [
    SourceCase("truncated-gzip", _truncated_gzip, "damaged gzip"),
    SourceCase("corrupt-gzip", _corrupt_gzip, "damaged gzip"),
    SourceCase("empty-file", lambda: b"", "0 line(s) read"),
    SourceCase("lone-surrogates", lambda: b"".join(
        b'{"book_id": "%d", "title": "\\ud800 broken"}\n' % n for n in range(5)), "lone surrogate"),
    SourceCase("latin-1", lambda: lines_bytes(good_books(5)).replace(b"dragons", b"drag\xf6ns").replace(
        b"description", b"descripti\xf6n"), "not valid UTF-8"),
    SourceCase("json-array", lambda: json.dumps(good_books(5)).encode() + b"\n", "a JSON list, not an object"),
    SourceCase("csv", lambda: b"book_id,title\n1,Watchmen\n2,Maus\n", "not a complete JSON value"),
    SourceCase("no-book-id", lambda: lines_bytes([{**b, "book_id": ""} for b in good_books(5)]), "no book_id"),
    SourceCase("shelves-as-text", lambda: lines_bytes([{**b, "popular_shelves": "fantasy"} for b in good_books(5)]),
               "no_category"),
    SourceCase("no-shelves", lambda: lines_bytes([{**b, "popular_shelves": []} for b in good_books()]), "no_category"),
    SourceCase("no-titles", lambda: lines_bytes([{**b, "title": ""} for b in good_books()]), "no_title"),
    SourceCase("shelf-counts-not-numbers", lambda: lines_bytes(
        [{**b, "popular_shelves": [{"name": "fantasy", "count": "many"}]} for b in good_books()]), "no_category"),
    SourceCase("authors-truncated-gzip", _truncated_gzip, "damaged gzip", file="authors"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_broken_source_fails_the_prep_and_changes_no_table(
    published: dict, case: SourceCase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / f"broken-{case.name}.json"
    broken.write_bytes(case.content())
    monkeypatch.setenv("GOODREADS_BOOKS_URL" if case.file == "books" else "GOODREADS_AUTHORS_URL", str(broken))
    result = materialize_prep(raise_on_error=False)
    assert not result.success
    assert case.reason in failure_text(result)
    assert snapshot() == published


def test_a_truncated_download_is_refused_and_changes_no_table(published: dict, lying_server, monkeypatch) -> None:
    body = lines_bytes(good_books(40))
    monkeypatch.setenv("GOODREADS_BOOKS_URL", lying_server(body[: len(body) // 3], len(body)))
    result = materialize_prep(raise_on_error=False)
    assert not result.success
    assert "download incomplete" in failure_text(result)
    assert snapshot() == published


def test_an_unreachable_source_is_named_and_changes_no_table(published: dict, lying_server, monkeypatch) -> None:
    monkeypatch.setenv("GOODREADS_BOOKS_URL", lying_server(b"", 0).replace("books.json", "missing.json"))
    result = materialize_prep(raise_on_error=False)
    assert not result.success and "404" in failure_text(result)
    assert snapshot() == published


def test_a_directory_as_source_is_named_as_one(published: dict, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GOODREADS_BOOKS_URL", str(tmp_path))
    result = materialize_prep(raise_on_error=False)
    assert not result.success and "is a directory" in failure_text(result)
    assert snapshot() == published


def test_a_byte_order_mark_keeps_the_first_record(published: dict, tmp_path: Path, monkeypatch) -> None:
    with_bom = tmp_path / "bom.json"
    with_bom.write_bytes(b"\xef\xbb\xbf" + lines_bytes(good_books(12)))
    monkeypatch.setenv("GOODREADS_BOOKS_URL", str(with_bom))
    assert materialize_prep().success
    assert query("SELECT count(*) FROM graphic_novels") == [(12,)]
    assert query("SELECT title FROM graphic_novels WHERE book_id = '0'") == [("Title 0",)]


def test_mixed_loads_are_refused_by_the_training_files(published: dict, tmp_path: Path, monkeypatch) -> None:
    # Only graphic_novels is re-materialized: it is published alone, and book_category and
    # enriched_graphic_novels now come from the load before it.
    monkeypatch.setenv("GOODREADS_BOOKS_URL", str(write_lines(tmp_path / "newer.json", good_books(30))))
    instance = dg.DagsterInstance.ephemeral()
    assert materialize_prep([graphic_novels], instance=instance).success
    from tests.support.dagster_runs import pipeline_resources

    result = dg.materialize([training_files], resources=pipeline_resources(), instance=instance, raise_on_error=False)
    assert not result.success
    text = failure_text(result)
    assert "do not come from one load" in text and "graphic_novels" in text


def test_after_a_failed_prep_the_next_good_one_publishes_everything(published: dict, tmp_path: Path, monkeypatch) -> None:
    broken = write_lines(tmp_path / "no-shelves.json", [{**b, "popular_shelves": []} for b in good_books()])
    monkeypatch.setenv("GOODREADS_BOOKS_URL", str(broken))
    assert not materialize_prep(raise_on_error=False).success  # leaves staged tables behind
    monkeypatch.setenv("GOODREADS_BOOKS_URL", str(write_lines(tmp_path / "good.json", good_books())))
    assert materialize_prep().success
    after = snapshot()
    assert {t: after[t] for t in TABLES if t != "table_loads"} == {t: published[t] for t in TABLES if t != "table_loads"}
    loads = {row[0] for row in query("SELECT DISTINCT load_id FROM table_loads")}
    assert len(loads) == 1  # every table from the one new load
    # The failed run's staging schema was discarded: every table outside main is a published one.
    assert query("SELECT count(*) FROM staging_schemas") == [(0,)]
    assert query("SELECT count(*) FROM duckdb_tables() WHERE schema_name NOT IN ('main') AND table_name NOT IN "
                 "(SELECT table_name FROM table_loads)") == [(0,)]
