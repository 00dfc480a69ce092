"""`make run` prints progress lines, not Dagster's DEBUG event stream (which stays in the event log).

No `from __future__ import annotations`: Dagster checks the toy assets' context annotation as a class.
"""

import re
from pathlib import Path

import dagster as dg
import pytest
import yaml

from fine_tuning.definitions import defs
from fine_tuning.defs.progress_log import progress_logger

REPO = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^\d\d:\d\d:\d\d \[[^\]]+\] ")


@dg.asset
def loads(context: dg.AssetExecutionContext) -> None:
    context.log.info("loaded 3 rows")
    context.log.debug("a detail only the event log needs")


@dg.asset(deps=[loads])
def breaks() -> None:
    raise dg.Failure(description="books file not found: /nowhere")


@dg.asset(deps=[breaks])
def never_runs() -> None:
    """Skipped because `breaks` fails."""


def _run(select: list[dg.AssetsDefinition], instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    job = dg.Definitions(assets=[loads, breaks, never_runs], loggers={"progress": progress_logger},
                         jobs=[dg.define_asset_job("toy", selection=dg.AssetSelection.assets(*select))]).resolve_job_def("toy")
    return job.execute_in_process(run_config={"loggers": {"progress": {"config": {"log_level": "INFO"}}}},
                                  instance=instance, raise_on_error=False)


def test_progress_lines_are_compact_and_debug_stays_in_the_event_log(capsys: pytest.CaptureFixture[str]) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        result = _run([loads], instance)
        assert result.success
        stored = [entry.message for entry in instance.all_logs(result.run_id)]
    terminal = capsys.readouterr().err.splitlines()

    assert terminal == [line for line in terminal if LINE.match(line)], terminal
    assert any(line.endswith("[loads] loaded 3 rows") for line in terminal), terminal
    assert not any("STEP_START" in line or "a detail" in line for line in terminal)
    assert result.run_id not in "\n".join(terminal)  # no run-id prefix on every line
    # Nothing is lost: the DEBUG message and the step events are in the run's event log.
    assert "a detail only the event log needs" in stored
    assert any("Started execution of step" in message for message in stored)


def test_a_failure_shows_its_reason_once_per_event_without_stack_or_skip_cascade(capsys: pytest.CaptureFixture[str]) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        result = _run([loads, breaks, never_runs], instance)
    assert not result.success
    terminal = capsys.readouterr().err

    assert "[breaks] ERROR STEP_FAILURE" in terminal
    assert "[run] ERROR RUN_FAILURE" in terminal
    assert terminal.count("books file not found: /nowhere") == 2  # the step's and the run's failure
    assert "Stack Trace" not in terminal and 'File "' not in terminal
    assert "Dependencies for step never_runs" not in terminal


def test_make_run_config_is_valid_and_picks_the_progress_logger() -> None:
    run_config = yaml.safe_load((REPO / "config" / "offline.yaml").read_text())
    job = defs.resolve_job_def("fine_tuning_job")
    assert set(run_config["loggers"]) == {"progress"}
    assert {"console", "progress"} <= set(job.loggers)  # the console logger stays available
    validation = dg.validate_run_config(job, run_config)
    assert validation["loggers"]["progress"]["config"]["log_level"] == "INFO"
