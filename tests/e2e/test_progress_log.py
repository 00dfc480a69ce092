"""`make run` prints one line per finished step (on a terminal, one updating line while a step
runs), not Dagster's event stream (which stays in the event log).

No `from __future__ import annotations`: Dagster checks the toy assets' context annotation as a class.
"""

import io
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
def trains(context: dg.AssetExecutionContext) -> None:
    for step in (1, 2, 3):
        context.log.info(f"job running, step {step}/3")
    context.log.warning("2 examples were truncated")
    context.log.info("trained model ft:toy")


@dg.asset(deps=[loads])
def breaks() -> None:
    raise dg.Failure(description="books file not found: /nowhere")


@dg.asset(deps=[breaks])
def never_runs() -> None:
    """Skipped because `breaks` fails."""


def _run(select: list[dg.AssetsDefinition], instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    job = dg.Definitions(assets=[loads, trains, breaks, never_runs], loggers={"progress": progress_logger},
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


class Terminal(io.StringIO):
    """What a terminal receives (`isatty` is what the logger asks)."""

    def isatty(self) -> bool:
        return True


def screen(raw: str) -> list[str]:
    """The lines a terminal shows once `raw` is written: a carriage return and erase-line start over."""
    lines = []
    for line in raw.split("\n"):
        lines.append(line.split("\r\x1b[K")[-1])
    return [line for line in lines if line]


def test_one_line_per_step_in_a_log(capsys: pytest.CaptureFixture[str]) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        assert _run([loads, trains], instance).success
    terminal = capsys.readouterr().err.splitlines()
    assert [line[9:] for line in terminal] == [
        "[loads] loaded 3 rows",
        "[trains] WARNING 2 examples were truncated",  # warnings at once
        "[trains] trained model ft:toy",  # the step's last message, when it finishes
    ]
    assert "\r" not in "".join(terminal)  # no live line in a log


def test_on_a_terminal_the_running_step_is_one_updating_line(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with dg.DagsterInstance.ephemeral() as instance:
        assert _run([loads, trains], instance).success
    raw = terminal.getvalue()
    for step in (1, 2, 3):  # each progress message was shown, then overwritten
        assert f"[trains] job running, step {step}/3" in raw
        assert f"[trains] job running, step {step}/3\n" not in raw
    assert [line[9:] for line in screen(raw)] == [
        "[loads] loaded 3 rows", "[trains] WARNING 2 examples were truncated", "[trains] trained model ft:toy",
    ]
