"""A prep step keeps what it built when nothing it is built from changed, and only then."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from fine_tuning.core import settings
from fine_tuning.defs.goodreads.authors import authors
from fine_tuning.defs.goodreads.book_category import book_category
from fine_tuning.defs.goodreads.enriched_graphic_novels import enriched_graphic_novels
from fine_tuning.defs.goodreads.goodreads_source_dataset import goodreads_source_dataset
from fine_tuning.defs.goodreads.graphic_novels import graphic_novels
from fine_tuning.defs.training_data.training_files import training_files

PREP = [goodreads_source_dataset, graphic_novels, authors, book_category, enriched_graphic_novels, training_files]
BUILT = ["graphic_novels", "authors", "book_category", "enriched_graphic_novels", "training_file", "validation_file"]


@pytest.fixture
def inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Copies of the shipped sample the tests may change."""
    books, authors_file = tmp_path / "books.json.gz", tmp_path / "authors.json.gz"
    shutil.copy(settings.SAMPLE_BOOKS_FILE, books)
    shutil.copy(settings.SAMPLE_AUTHORS_FILE, authors_file)
    monkeypatch.setenv("GOODREADS_BOOKS_URL", str(books))
    monkeypatch.setenv("GOODREADS_AUTHORS_URL", str(authors_file))
    return books, authors_file


def run(config: dict[str, Any] | None = None, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        PREP,
        resources={"duckdb": DuckDBResource(database=str(settings.duckdb_path()))},
        run_config=config,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=raise_on_error,
    )


def metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    return {
        event.asset_key.to_user_string(): {k: v.value for k, v in event.materialization.metadata.items()}
        for event in result.get_asset_materialization_events()
    }


def rebuilt(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {key: values["rebuilt"] for key, values in metadata(result).items()}


def stamps() -> dict[str, int]:
    """Modification times of the training files (kept files are not rewritten)."""
    return {path.name: path.stat().st_mtime_ns for path in settings.files_dir().glob("*.jsonl")}


def test_an_unchanged_rerun_keeps_every_table_and_file_and_reports_the_same(inputs: tuple[Path, Path]) -> None:
    first = run()
    assert rebuilt(first) == dict.fromkeys(BUILT, True)
    written = stamps()
    again = run()
    assert rebuilt(again) == dict.fromkeys(BUILT, False)
    assert stamps() == written
    strip = lambda values: {k: v for k, v in values.items() if k != "rebuilt"}  # noqa: E731
    assert {k: strip(v) for k, v in metadata(again).items()} == {k: strip(v) for k, v in metadata(first).items()}


def test_a_changed_input_or_config_rebuilds_exactly_what_depends_on_it(inputs: tuple[Path, Path]) -> None:
    books, _ = inputs
    run()
    lines = gzip.decompress(books.read_bytes()).splitlines(keepends=True)
    books.write_bytes(gzip.compress(b"".join(lines[:-5])))  # five books fewer
    assert rebuilt(run()) == {**dict.fromkeys(BUILT, True), "authors": False}
    stricter = {"ops": {"book_category": {"config": {"min_shelf_count_exclusive": 5}}}}
    assert rebuilt(run(stricter)) == {**dict.fromkeys(BUILT, True), "graphic_novels": False, "authors": False}
    new_split = {"ops": {**stricter["ops"], "training_files": {"config": {"seed": 7}}}}
    expected = {**dict.fromkeys(BUILT, False), "training_file": True, "validation_file": True}
    assert rebuilt(run(new_split)) == expected


def test_a_failed_rebuild_or_a_touched_output_is_never_kept(inputs: tuple[Path, Path]) -> None:
    run()
    impossible = {"ops": {"enriched_graphic_novels": {"config": {"min_description_chars": 10**6}}}}
    assert not run(impossible, raise_on_error=False).success
    # The failed attempt forgot the record: the unchanged table is built again, not trusted.
    assert rebuilt(run())["enriched_graphic_novels"] is True
    (settings.files_dir() / "validation.jsonl").write_text("{}\n")
    assert rebuilt(run())["validation_file"] is True
    with duckdb.connect(str(settings.duckdb_path())) as con:
        con.execute("DROP TABLE authors")
    assert rebuilt(run())["authors"] is True
    settings.duckdb_path().unlink()  # the records live in the database: a new one builds everything
    assert rebuilt(run()) == dict.fromkeys(BUILT, True)
