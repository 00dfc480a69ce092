"""Fail fast and say why: a held DuckDB file, a read-only workdir, a full disk, an input that yields nothing.

Real faults: another process holding the file, tmpfs filesystems mounted small or read-only.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fine_tuning.core import settings
from fine_tuning.defs.goodreads.authors import authors
from fine_tuning.defs.goodreads.graphic_novels import graphic_novels

from tests.support.dagster_runs import failure_text
from tests.support.filesystems import elapsed, held_duckdb_file, tmpfs
from tests.support.goodreads import book, materialize_prep, query, write_lines

pytestmark = pytest.mark.slow


def test_a_file_held_by_another_program_fails_in_seconds_naming_its_pid() -> None:
    assert materialize_prep([graphic_novels]).success
    before = query("SELECT count(*) FROM graphic_novels")
    with held_duckdb_file(settings.duckdb_path()) as holder:
        started = time.monotonic()
        result = materialize_prep([graphic_novels, authors], raise_on_error=False)
        took = elapsed(started)
    assert not result.success
    text = failure_text(result)
    assert f"PID {holder.pid}" in text and str(settings.duckdb_path()) in text and "Nothing was changed" in text
    assert took < 15  # two steps, each ~2 s; dagster-duckdb's retries took ~100 s per step
    assert query("SELECT count(*) FROM graphic_novels") == before


def test_a_file_held_by_a_step_of_this_pipeline_is_waited_for(monkeypatch) -> None:
    assert materialize_prep([graphic_novels]).success
    with held_duckdb_file(settings.duckdb_path()) as holder:
        # What a step announces beside the file before opening it: the waiting step knows it will end.
        holders = Path(str(settings.duckdb_path()) + ".holders")
        holders.mkdir(exist_ok=True)
        (holders / str(holder.pid)).touch()
        monkeypatch.setenv("FINE_TUNING_DUCKDB_WAIT_SECONDS", "3")
        started = time.monotonic()
        result = materialize_prep([graphic_novels], raise_on_error=False)
        assert elapsed(started) >= 3
    assert "a step of another run of this pipeline" in failure_text(result)


def test_a_read_only_workdir_fails_at_once_naming_the_path(tmp_path: Path, monkeypatch) -> None:
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as folder:
        monkeypatch.setenv("FINE_TUNING_WORKDIR", str(folder))
        started = time.monotonic()
        result = materialize_prep([graphic_novels], raise_on_error=False)
        took = elapsed(started)
    text = failure_text(result)
    assert f"cannot open DuckDB file {folder}/goodreads.duckdb for writing" in text and "Read-only" in text
    assert took < 10


def test_duckdb_out_of_space_names_the_database_not_the_input(tmp_path: Path, monkeypatch) -> None:
    books = write_lines(tmp_path / "in" / "books.json.gz",
                        [book(str(i), description="a long description " * 40) for i in range(4000)])
    monkeypatch.setenv("GOODREADS_BOOKS_URL", str(books))
    with tmpfs(tmp_path / "small", "1m") as folder:
        monkeypatch.setenv("FINE_TUNING_WORKDIR", str(folder))
        result = materialize_prep([graphic_novels], raise_on_error=False)
        text = failure_text(result)
        assert f"out of disk space writing {folder}/goodreads.duckdb" in text
        assert "MB free of 1.0 MB" in text and "the published tables as they were" in text
        assert "cannot load books file" not in text
    assert not result.success


def test_no_usable_books_names_the_books_file(tmp_path: Path, monkeypatch) -> None:
    books = write_lines(tmp_path / "in" / "no-descriptions.json", [book(str(i), description="") for i in range(5)])
    monkeypatch.setenv("GOODREADS_BOOKS_URL", str(books))
    result = materialize_prep(raise_on_error=False)
    assert f"no usable books: all 5 books of {books} were dropped" in failure_text(result)


def test_a_damaged_gzip_is_refused_after_one_read(tmp_path: Path, monkeypatch) -> None:
    good = write_lines(tmp_path / "in" / "books.json.gz", [book(str(i)) for i in range(300)])
    assert materialize_prep([graphic_novels]).success
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a corrupt block: DuckDB alone would read past it without a word
    damaged = tmp_path / "in" / "damaged.json.gz"
    damaged.write_bytes(bytes(data))
    monkeypatch.setenv("GOODREADS_BOOKS_URL", str(damaged))
    before = query("SELECT count(*) FROM graphic_novels")
    result = materialize_prep([graphic_novels], raise_on_error=False)
    assert f"cannot load books file {damaged}" in failure_text(result) and "damaged gzip" in failure_text(result)
    assert query("SELECT count(*) FROM graphic_novels") == before


def test_training_files_out_of_space_name_the_path_and_what_was_kept(tmp_path: Path, monkeypatch) -> None:
    import dagster as dg

    import fine_tuning.definitions

    monkeypatch.setenv("FINE_TUNING_DUCKDB_DATABASE", str(tmp_path / "goodreads.duckdb"))  # room for the tables
    with tmpfs(tmp_path / "small", "256k") as folder:
        monkeypatch.setenv("FINE_TUNING_WORKDIR", str(folder))
        defs = dg.load_from_defs_folder(path_within_project=Path(fine_tuning.definitions.__file__).parent)
        job = defs.resolve_job_def("fine_tuning_job")
        selection = [dg.AssetKey(name) for name in (
            "graphic_novels", "authors", "book_category", "enriched_graphic_novels", "training_file", "validation_file")]
        result = job.execute_in_process(asset_selection=selection, raise_on_error=False,
                                        instance=dg.DagsterInstance.ephemeral())
        text = failure_text(result)
        assert not result.success
        assert f"out of disk space writing {folder}/files" in text, text[-3000:]
        assert "MB free of 0.2 MB" in text and "kept" in text
        assert "Errno 28" not in text.split("out of disk space")[0]  # said in words, with the path, first
        assert not [path for path in (folder / "files").iterdir() if path.suffix == ".jsonl"]  # nothing half-written
