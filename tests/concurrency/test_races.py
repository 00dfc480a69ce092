"""Overlapping runs outside the run queue end with one consistent published load, no silent success
and at most one provider job per fingerprint.

Each race starts real CLI processes on one workdir and one instance at once: two or three prep
runs (`dagster job execute -o *enriched_graphic_novels`), a UI-style asset run (`dagster asset
materialize`, no provider tag) against the whole job, and two whole jobs; on a first load (no
DuckDB file) and on an existing database whose input changed (every table is rebuilt).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.concurrency import Site, run_id_of

pytestmark = pytest.mark.slow

REPEATS = 5  # per database state: ten two-run races in all


def _finish(processes) -> list[tuple[int, str]]:
    return [process.finished() for process in processes]


def _assert_one_consistent_load(site: Site) -> dict:
    state = site.published_state()
    assert state["problems"] == [] and state["stale"] == []
    assert len(set(state["loads"].values())) == 1, state["loads"]  # every table from one load
    assert state["books"] == site.expected_books()  # the current input, not an older one
    assert state["staging_left"] == 0 and state["lease"] == 0
    assert state["load_schemas"] == 1  # the published load's; no other load's work is left behind
    return state


def _assert_no_silent_success(site: Site, results: list[tuple[int, str]]) -> None:
    published = set(site.published_state()["loads"].values())
    for code, output in results:
        assert code == 0, output[-3000:]
        run_id = run_id_of(output)
        reports = site.prep_reports(run_id)
        last = reports["enriched_graphic_novels"]
        # A run either published what it built, or kept what was published (identical inputs).
        assert last["published"] or last["rebuilt"] is False, last
        if last["rebuilt"]:
            assert last["load_id"] in published or any(
                r["load_id"] in published for r in reports.values()), (last, published)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path).prepare()


@pytest.mark.parametrize("runs", [2, 3])
@pytest.mark.parametrize("database", ["first_load", "existing"])
def test_prep_runs_racing(site: Site, runs: int, database: str) -> None:
    repeats = REPEATS if runs == 2 else 1
    for repeat in range(repeats):
        if database == "existing":
            if repeat == 0:
                assert site.start("prep", "initial").finished()[0] == 0
            site.new_inputs(seed=100 + repeat)  # every table must be rebuilt from the new input
        else:
            for path in site.workdir.glob("goodreads.duckdb*"):  # the file, its WAL and holders/
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        results = _finish([site.start("prep", f"race{repeat}-{i}") for i in range(runs)])
        _assert_no_silent_success(site, results)
        _assert_one_consistent_load(site)


def test_ui_asset_run_racing_the_job(site: Site) -> None:
    assert site.start("job", "first").finished()[0] == 0
    site.new_inputs(seed=7)
    results = _finish([site.start("job", "job"), site.start("assets", "ui")])
    _assert_no_silent_success(site, results)
    _assert_one_consistent_load(site)
    assert all(count == 1 for count in site.jobs_per_fingerprint().values())


@pytest.mark.parametrize("database", ["first_load", "existing"])
def test_two_jobs_racing(site: Site, database: str) -> None:
    if database == "existing":
        assert site.start("job", "first").finished()[0] == 0
        site.new_inputs(seed=8)
    results = _finish([site.start("job", "a"), site.start("job", "b")])
    _assert_no_silent_success(site, results)
    _assert_one_consistent_load(site)
    per_fingerprint = site.jobs_per_fingerprint()
    assert per_fingerprint and all(count == 1 for count in per_fingerprint.values()), per_fingerprint
