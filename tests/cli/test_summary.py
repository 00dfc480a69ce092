"""`python -m fine_tuning.summary` (what `make run` prints last), run as a real subprocess.

Its report of a finished run is checked by the whole-job runs in tests/e2e.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_make_run_summary_reports_when_nothing_ran(dagster_home: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    out = subprocess.run([sys.executable, "-m", "fine_tuning.summary"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "No fine_tuning_job run found" in out.stderr


def test_the_summary_shows_exact_trained_tokens_cost_and_both_accuracies_in_one_line_each() -> None:
    from fine_tuning.summary import summary_lines

    summary = {"run_id": "r1", "status": "SUCCESS", "model_name": "ft:m", "trained_tokens": 568392,
               "cost_usd": 1.705176, "fine_tuned_accuracy": 0.9615, "base_accuracy": 0.1758, "eval_examples": 364,
               "production_model": "ft:m", "promoted": True, "production_reason": "first"}
    assert summary_lines(summary) == [
        "run:                 r1 (SUCCESS)",
        "fine-tuned model:    ft:m",
        "trained tokens:      568,392 (exact), cost $1.71",
        "accuracy:            0.962 fine-tuned, 0.176 base, on 364 held-out books",
        "production model:    ft:m (promoted)",
        "because:             first",
    ]
    estimated = summary_lines({**summary, "trained_tokens_estimated": True})
    assert "trained tokens:      568,392 (estimated), cost $1.71" in estimated
    # Reinforcement is billed by training time: the billed seconds, not the tokens, priced the job.
    by_time = summary_lines({**summary, "billed_training_seconds": 2, "cost_usd": 0.055556})
    assert by_time[2] == "training time:       2 s billed, cost $0.06"
    free_form = summary_lines({**summary, "mean_grade_fine_tuned": 0.9791, "mean_grade_base": 0.1272,
                               "pass_threshold": 0.8})
    assert free_form[4] == "mean grade:          0.979 fine-tuned, 0.127 base (an answer passes at 0.8)"


def test_the_summary_names_the_tasks_when_asked_for_one_that_does_not_exist(capsys: pytest.CaptureFixture[str]) -> None:
    from fine_tuning.summary import main

    assert main(["--task", "nope"]) == 1
    assert "no task named 'nope'; the tasks are: goodreads, support_tickets" in capsys.readouterr().err


def test_the_summary_of_another_task_reports_when_its_job_never_ran(
    dagster_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fine_tuning.summary import main

    assert main(["--task", "support_tickets"]) == 1
    assert "No support_tickets_fine_tuning_job run found" in capsys.readouterr().err
