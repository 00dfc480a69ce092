"""Every run that names no executor (the UI's "Materialize all", `dg launch --assets`,
`dagster asset materialize`) runs its steps in the run's own process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from fine_tuning.definitions import defs

REPO = Path(__file__).resolve().parents[2]


def test_the_definitions_default_executor_is_in_process() -> None:
    repo = defs.get_repository_def()
    assert repo.get_implicit_global_asset_job_def().executor_def.name == "in_process"
    assert defs.resolve_job_def("fine_tuning_job").executor_def.name == "in_process"


@pytest.mark.slow
def test_materializing_assets_from_the_cli_starts_no_step_process(tmp_path: Path) -> None:
    """`dagster asset materialize` (what `dg launch --assets` calls) runs every step in its own pid."""
    env = {**os.environ, "FINE_TUNING_WORKDIR": str(tmp_path / "work")}
    completed = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "fine_tuning.definitions",
         "--select", "graphic_novels,authors,book_category"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    with dg.DagsterInstance.get() as instance:
        run = instance.get_runs(limit=1)[0]
        assert run.job_name == "__ASSET_JOB"
        events = instance.all_logs(run.run_id)
    kinds = {event.dagster_event.event_type_value for event in events if event.dagster_event}
    assert "STEP_WORKER_STARTING" not in kinds
    assert {"graphic_novels", "authors", "book_category"} <= {event.step_key for event in events if event.step_key}
    assert len({event.dagster_event.pid for event in events if event.dagster_event and event.dagster_event.pid}) == 1
