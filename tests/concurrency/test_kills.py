"""A run killed (SIGKILL, its whole process group) at each step resumes with the next run: nothing
lost, nothing double-spent.

Each case starts `fine_tuning_job` with `dagster job execute` on a copy of a site that already
holds one complete run, with new inputs (so the kill hits a rebuild), watches the run's event log and kills the
process as soon as the target step has started (for polling: once the provider job exists). The
next run must succeed with one consistent published load, the provider job of the killed run
reused rather than paid twice, and a production model.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.support.concurrency import Site, run_id_of, wait_for_event

pytestmark = pytest.mark.slow

# (case, step whose start triggers the kill, log text that must appear first)
KILL_POINTS = [
    ("load", "graphic_novels", None),
    ("publish", "enriched_graphic_novels", None),
    ("files", "training_files", None),
    ("upload", "upload_training_file", None),
    ("job_creation", "fine_tuned_model", None),
    ("polling", "fine_tuned_model", "Created fine-tuning job"),
    ("evaluation", "fine_tuned_model_fine_tuned_model_accuracy", None),
    ("promotion", "production_model", None),
]


@pytest.fixture(scope="module")
def completed(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """A site after one complete run (copied for each case: the kill hits a rebuild of new inputs)."""
    site = Site(tmp_path_factory.mktemp("completed")).prepare()
    assert site.start("job", "first").finished()[0] == 0
    return site


def _kill_when(site: Site, process, step: str, text: str | None) -> str:
    run_id = wait_for_event(site, process, "STEP_START", step)
    if text is not None:
        deadline = time.monotonic() + 60
        while text not in process.log.read_text(errors="replace"):
            assert time.monotonic() < deadline and process.popen.poll() is None, process.log.read_text()[-2000:]
            time.sleep(0.02)
    os.killpg(process.popen.pid, signal.SIGKILL)
    process.popen.wait(timeout=30)
    return run_id


def _step_in_progress(site: Site, run_id: str) -> str | None:
    """The step the killed run had started and not finished (None: it died between steps)."""
    started, ended = [], set()
    for record in site.instance().get_records_for_run(run_id).records:
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        if event.event_type_value == "STEP_START":
            started.append(event.step_key)
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            ended.add(event.step_key)
    unfinished = [step for step in started if step not in ended]
    return unfinished[-1] if unfinished else None


@pytest.mark.parametrize(("case", "step", "text"), KILL_POINTS, ids=[point[0] for point in KILL_POINTS])
def test_a_killed_run_resumes_without_a_duplicate(
    completed: Site, tmp_path: Path, case: str, step: str, text: str | None, record_property
) -> None:
    site = completed.copy(tmp_path / "site")
    site.new_inputs(seed=11)
    killed = site.start("job", "killed")
    killed_run = _kill_when(site, killed, step, text)
    in_progress = _step_in_progress(site, killed_run)
    record_property("died_in_step", in_progress)  # --junitxml shows where each kill landed

    code, output = site.start("job", "resumed").finished()
    assert code == 0, output[-3000:]
    state = site.published_state()
    assert state["problems"] == [] and state["staging_left"] == 0 and state["lease"] == 0
    assert len(set(state["loads"].values())) == 1 and state["books"] == site.expected_books()
    per_fingerprint = site.jobs_per_fingerprint()
    assert len(per_fingerprint) == 2 and set(per_fingerprint.values()) == {1}, per_fingerprint  # one per data
    reports = site.prep_reports(run_id_of(output))
    assert reports  # the resumed run reported its prep
    model = site.instance().get_latest_materialization_event(_key("fine_tuned_model"))
    assert model is not None and model.run_id == run_id_of(output)
    reused = model.asset_materialization.metadata["reused"].value
    if case in ("polling", "evaluation", "promotion"):
        assert reused is True  # the killed run's provider job, not a new one
    production = site.instance().get_latest_materialization_event(_key("production_model"))
    assert production is not None and production.run_id == run_id_of(output)


def _key(name: str):
    import dagster as dg

    return dg.AssetKey(name)
