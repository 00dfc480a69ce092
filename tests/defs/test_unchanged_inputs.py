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
from fine_tuning.defs.resources import openai_resource

from tests.support.goodreads_task import GOODREADS, training_files

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
        # The training files read the task's method (tuning); only a DPO file asks a model (openai).
        resources={"duckdb": DuckDBResource(database=str(settings.duckdb_path())), "tuning": GOODREADS.tuning_settings(),
                   "openai": openai_resource()},
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
    # The same facts about the same tables, which still come from the first run's load.
    what_this_run_did = ("rebuilt", "published", "published_tables")
    strip = lambda values: {k: v for k, v in values.items() if k not in what_this_run_did}  # noqa: E731
    assert {k: strip(v) for k, v in metadata(again).items()} == {k: strip(v) for k, v in metadata(first).items()}
    assert {values.get("load_id") for values in metadata(again).values()} - {None} == {first.run_id}


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


def published(table: str) -> list[tuple]:
    with duckdb.connect(str(settings.duckdb_path()), read_only=True) as con:
        return con.execute(f"SELECT * FROM main.{table} ORDER BY ALL").fetchall()  # noqa: S608 - fixed names


def test_a_failed_run_changes_nothing_and_a_touched_output_is_rebuilt(inputs: tuple[Path, Path]) -> None:
    run()
    before = published("enriched_graphic_novels")
    impossible = {"ops": {"book_category": {"config": {"categories": ["no-such-shelf"]}}}}  # no book kept
    assert not run(impossible, raise_on_error=False).success
    # Nothing was published: the tables and what they were built from are as they were.
    assert rebuilt(run()) == dict.fromkeys(BUILT, False)
    assert published("enriched_graphic_novels") == before
    (settings.files_dir() / "validation.jsonl").write_text("{}\n")
    assert rebuilt(run()) == {**dict.fromkeys(BUILT, False), "training_file": True, "validation_file": True}
    with duckdb.connect(str(settings.duckdb_path())) as con:
        con.execute("DROP VIEW main.authors")  # a published prep table is a view of its load's table
    # authors comes back from a new load, so what was built from it is built again.
    assert rebuilt(run()) == {**dict.fromkeys(BUILT, True), "graphic_novels": False, "book_category": False}
    settings.duckdb_path().unlink()  # the records live in the database: a new one builds everything
    assert rebuilt(run()) == dict.fromkeys(BUILT, True)


def test_an_unchanged_ticket_file_keeps_the_tickets_table_and_a_changed_one_is_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fine_tuning.defs.support_tickets.tickets import TICKETS_FILE_ENV, tickets
    from fine_tuning.sample_tickets import write_tickets

    path = write_tickets(tmp_path / "in", count=60)
    monkeypatch.setenv(TICKETS_FILE_ENV, str(path))
    database = tmp_path / "support_tickets.duckdb"

    def load() -> dict[str, Any]:
        result = dg.materialize([tickets], resources={"support_tickets_duckdb": DuckDBResource(database=str(database))},
                                instance=dg.DagsterInstance.ephemeral())
        [values] = metadata(result).values()
        return values

    first = load()
    assert first["rebuilt"] is True and first["dagster/row_count"] == 60
    again = load()
    assert again == {**first, "rebuilt": False}
    write_tickets(tmp_path / "in", count=70)  # the same file, other content
    assert load()["dagster/row_count"] == 70
    with duckdb.connect(str(database), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM tickets").fetchone() == (70,)
