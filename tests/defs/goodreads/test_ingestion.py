"""goodreads_source_dataset, graphic_novels and authors: loading, skipping, failing, versions."""

import gzip
import http.server
import os
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import dagster as dg
import pytest

from fine_tuning.defs.goodreads.authors import authors
from fine_tuning.defs.goodreads.graphic_novels import graphic_novels

from tests.support.dagster_runs import failure_description, materialization_metadata
from tests.support.goodreads import author, book, materialize_prep, observe_source, point_at, query, write_lines
from tests.support.processes import free_port

LOADS = [graphic_novels, authors]


@pytest.fixture
def files(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """A small valid books/authors pair, with the environment pointing at it."""
    books_file = write_lines(tmp_path / "in" / "books.json.gz", [
        book("1"), book("2", authors_=[("2", "")]), '{"book_id": "3", "ti', "",
    ])
    authors_file = write_lines(tmp_path / "in" / "authors.json", [
        author("1", "Alan Moore"), author("2", "Neil Gaiman"), '{"author_id": "9"',
    ])
    point_at(monkeypatch, tmp_path / "work", books_file, authors_file)
    return books_file, authors_file


def test_loads_both_files_and_counts_skipped_lines(files):
    result = materialize_prep(LOADS)
    assert query("SELECT book_id FROM graphic_novels ORDER BY book_id") == [("1",), ("2",)]
    assert query("SELECT author_id, name FROM authors ORDER BY author_id") == [
        ("1", "Alan Moore"), ("2", "Neil Gaiman")
    ]
    books_meta = materialization_metadata(result, "graphic_novels")
    assert books_meta["dagster/row_count"] == 2
    assert books_meta["rows_skipped"] == 1  # the truncated line; blank lines are not rows
    assert materialization_metadata(result, "authors")["rows_skipped"] == 1


def test_column_types_follow_the_contract(files):
    result = materialize_prep(LOADS)
    types = dict(query(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'graphic_novels'"
    ))
    assert len(types) == 29
    assert types["book_id"] == "VARCHAR"
    assert types["popular_shelves"].replace('"', "") == "STRUCT(count VARCHAR, name VARCHAR)[]"
    assert types["authors"].replace('"', "") == "STRUCT(author_id VARCHAR, role VARCHAR)[]"
    assert query("SELECT popular_shelves[1]['count'] FROM graphic_novels WHERE book_id = '1'") == [
        ("50",)
    ]
    assert query("SELECT typeof(average_rating), typeof(ratings_count) FROM authors LIMIT 1") == [
        ("DOUBLE", "BIGINT")
    ]
    schema = materialization_metadata(result, "authors")["dagster/column_schema"]
    assert [c.name for c in schema.columns] == [
        "author_id", "name", "average_rating", "ratings_count", "text_reviews_count"
    ]


def test_compression_is_detected_from_content_not_name(tmp_path, monkeypatch):
    plain_named_gz = write_lines(tmp_path / "books.json", [book("1")])
    plain_named_gz = plain_named_gz.rename(tmp_path / "books.json.gz")
    gz_named_plain = tmp_path / "authors.json"
    with gzip.open(gz_named_plain, "wt") as handle:
        handle.write('{"author_id": "1", "name": "A"}\n')
    point_at(monkeypatch, tmp_path / "work", plain_named_gz, gz_named_plain)
    materialize_prep(LOADS)
    assert query("SELECT count(*) FROM graphic_novels") == [(1,)]
    assert query("SELECT name FROM authors") == [("A",)]


@pytest.mark.parametrize("missing", ["books", "authors"])
def test_missing_file_fails_naming_it(files, monkeypatch, tmp_path, missing):
    absent = tmp_path / "nowhere" / f"{missing}.json.gz"
    monkeypatch.setenv(f"GOODREADS_{missing.upper()}_URL", str(absent))
    result = materialize_prep(LOADS, raise_on_error=False)
    assert not result.success
    assert str(absent) in failure_description(result)


def test_file_without_usable_books_fails_and_keeps_previous_table(files, tmp_path):
    books_file, _ = files
    materialize_prep(LOADS)
    write_lines(books_file, ['{"book_id": "1", "tit', "[1, 2]", '{"title": "no id"}'])
    result = materialize_prep(LOADS, raise_on_error=False)
    assert not result.success
    message = failure_description(result)
    assert "no usable books" in message and str(books_file) in message
    assert query("SELECT count(*) FROM graphic_novels") == [(2,)]


def test_empty_file_fails(files):
    books_file, _ = files
    books_file.write_bytes(b"")
    result = materialize_prep(LOADS, raise_on_error=False)
    assert not result.success
    assert str(books_file) in failure_description(result)


def test_rematerialization_sees_new_rows(files):
    books_file, _ = files
    materialize_prep()
    assert query("SELECT count(*) FROM enriched_graphic_novels") == [(2,)]
    write_lines(books_file, [book("1"), book("2"), book("4", title="Brand new")])
    materialize_prep()
    assert query("SELECT count(*) FROM graphic_novels") == [(3,)]
    assert query("SELECT title FROM enriched_graphic_novels WHERE book_id = '4'") == [
        ("Brand new",)
    ]


def test_data_version_follows_both_files(files):
    books_file, authors_file = files
    instance = dg.DagsterInstance.ephemeral()
    first = observe_source(instance)
    assert observe_source(instance) == first
    write_lines(authors_file, [author("1", "Alan Moore"), author("3", "New Author")])
    second = observe_source(instance)
    assert second != first
    write_lines(books_file, [book("1")])
    assert observe_source(instance) not in (first, second)


def test_missing_file_fails_the_observation(files, monkeypatch, tmp_path):
    monkeypatch.setenv("GOODREADS_BOOKS_URL", str(tmp_path / "gone.json"))
    with pytest.raises(dg.Failure, match="gone.json"):
        observe_source(dg.DagsterInstance.ephemeral())


class _NoHeadHandler(http.server.SimpleHTTPRequestHandler):
    """A server that refuses HEAD, like some object stores behind proxies."""

    def do_HEAD(self) -> None:  # noqa: N802 (http.server naming)
        self.send_error(405)

    def log_message(self, *args) -> None:
        pass


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(params=[_QuietHandler, _NoHeadHandler], ids=["head", "no-head"])
def http_files(request, files) -> Iterator[str]:
    """Serve the input folder over HTTP on 127.0.0.1; yields the base URL."""
    books_file, _ = files
    handler = partial(request.param, directory=str(books_file.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_sources_load_and_version(http_files, files, monkeypatch):
    books_file, authors_file = files
    monkeypatch.setenv("GOODREADS_BOOKS_URL", f"{http_files}/books.json.gz")
    monkeypatch.setenv("GOODREADS_AUTHORS_URL", f"{http_files}/authors.json")
    materialize_prep(LOADS)
    assert query("SELECT count(*) FROM graphic_novels") == [(2,)]
    instance = dg.DagsterInstance.ephemeral()
    first = observe_source(instance)
    write_lines(books_file, [book("1"), book("2"), book("5")])
    os.utime(books_file, (1_700_000_000, 1_700_000_000))  # a Last-Modified that surely differs
    assert observe_source(instance) != first


def test_unreachable_url_fails_naming_it(files, monkeypatch):
    url = f"http://127.0.0.1:{free_port()}/books.json.gz"
    monkeypatch.setenv("GOODREADS_BOOKS_URL", url)
    result = materialize_prep(LOADS, raise_on_error=False)
    assert not result.success
    assert url in failure_description(result)
    with pytest.raises(dg.Failure, match="127.0.0.1"):
        observe_source(dg.DagsterInstance.ephemeral())


def test_http_404_fails_naming_the_url(http_files, monkeypatch):
    url = f"{http_files}/missing.json"
    monkeypatch.setenv("GOODREADS_AUTHORS_URL", url)
    result = materialize_prep(LOADS, raise_on_error=False)
    assert not result.success
    assert url in failure_description(result)


def test_urls_are_logged_and_stored_without_credentials_or_query_tokens() -> None:
    from fine_tuning.defs.goodreads.source_files import display_source

    signed = "https://reader:s3cret@example.org:8443/goodreads/books.json.gz?X-Signature=abc123"
    assert display_source(signed) == "https://example.org:8443/goodreads/books.json.gz?<query hidden>"
    assert display_source("http://example.org/books.json") == "http://example.org/books.json"
    assert display_source("/data/books.json.gz") == "/data/books.json.gz"


def test_an_unreachable_url_fails_without_revealing_its_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()  # nobody listens on it
    url = f"http://reader:s3cret@127.0.0.1:{port}/books.json.gz?token=abc"
    monkeypatch.setenv("GOODREADS_BOOKS_URL", url)
    result = materialize_prep([graphic_novels], raise_on_error=False)
    assert not result.success
    text = failure_description(result)
    assert f"127.0.0.1:{port}/books.json.gz" in text
    assert "s3cret" not in text and "abc" not in text
