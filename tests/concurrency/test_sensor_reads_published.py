"""`retune_on_new_data` decides from what is published, not from what a run reported.

A prep run stages its tables and records their materializations (with the source's new data
version) before its last step publishes them; when that step fails, nothing is published. The
sensor must still see the published tables as built from the old version and ask for a run,
where it used to skip the new input for good.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import dagster as dg
import pytest

import fine_tuning.definitions
from fine_tuning.core.settings import SAMPLE_AUTHORS_FILE, SAMPLE_BOOKS_FILE

from tests.support.project import REPO

pytestmark = pytest.mark.slow

SENSOR = "retune_on_new_data"
PREP = ["goodreads_source_dataset", "graphic_novels", "authors", "book_category", "enriched_graphic_novels"]
DROP_EVERY_BOOK = {"ops": {"enriched_graphic_novels": {"config": {"min_description_chars": 100_000,
                                                                  "max_description_chars": 100_000}}}}


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.SensorResult:
    result = defs.resolve_sensor_def(SENSOR)(dg.build_sensor_context(instance=instance, definitions=defs))
    assert isinstance(result, dg.SensorResult)
    return result


def test_a_load_that_failed_before_publishing_still_gets_its_run(tmp_path: Path, monkeypatch) -> None:
    books, authors = tmp_path / "books.json.gz", tmp_path / "authors.json.gz"
    shutil.copy(SAMPLE_BOOKS_FILE, books)
    shutil.copy(SAMPLE_AUTHORS_FILE, authors)
    monkeypatch.setenv("GOODREADS_BOOKS_URL", str(books))
    monkeypatch.setenv("GOODREADS_AUTHORS_URL", str(authors))
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    defs = dg.load_from_defs_folder(path_within_project=Path(fine_tuning.definitions.__file__).parent)
    prep = dg.define_asset_job("prep", selection=PREP)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        job = dg.Definitions.merge(defs, dg.Definitions(jobs=[prep])).resolve_job_def("prep")
        assert job.execute_in_process(instance=instance).success
        assert not _tick(defs, instance).run_requests  # published from the current files

        with gzip.open(books, "rt", encoding="utf-8") as handle:
            lines = handle.readlines()
        with gzip.open(books, "wt", encoding="utf-8") as handle:
            handle.writelines(lines[:-1])
        failed = job.execute_in_process(instance=instance, run_config=DROP_EVERY_BOOK, raise_on_error=False)
        assert not failed.success  # graphic_novels and authors were materialized (staged), nothing published
        assert {event.asset_key.to_user_string() for event in failed.get_asset_materialization_events()} >= {
            "graphic_novels", "authors"}

        [request] = _tick(defs, instance).run_requests  # the published tables are older than the files
        assert job.execute_in_process(instance=instance).success
        assert not _tick(defs, instance).run_requests
