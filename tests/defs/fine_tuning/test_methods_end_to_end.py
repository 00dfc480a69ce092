"""Each fine-tuning method end to end: the real task jobs on the shipped samples, offline.

The method is the run-time setting `resources.tuning.config.method` (the API's object) for the
Goodreads task and `resources.support_tickets_tuning.config.method` for the tickets task. A DPO
run's training file pairs each training example's true answer with the production model's own
mistake on it (asked once, then reused); a reinforcement run trains o4-mini on the default
exact-match grader; both reach `production_model` through the same promotion rule, on both
shipped tasks. A reinforcement job is billed by training time: it is cancelled at its budget.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster_duckdb import DuckDBResource

from fine_tuning.core.catalog import MIN_TRAINING_EXAMPLES
from fine_tuning.core.chat_files import validate_chat_file
from fine_tuning.core.settings import local_openai_dir
from fine_tuning.lib.task.component import FineTuningTask
from fine_tuning.lib.task.instances import task_named
from local_openai.transport import local_client

from tests.support.dagster_runs import pipeline_resources
from tests.support.goodreads_task import GOODREADS, project_job

pytestmark = pytest.mark.slow
TICKETS = task_named("support_tickets")
TASKS = {"goodreads": GOODREADS, "support_tickets": TICKETS}
O4_MINI = "o4-mini-2025-04-16"


def task_resources(task: FineTuningTask, job_seconds: float = 0.5) -> dict[str, Any]:
    """The test's resources for a task's job: the backend and the task's DuckDB file in this test's workdir."""
    resources = pipeline_resources(tuning=GOODREADS.tuning_settings(), job_seconds=job_seconds)
    if task is GOODREADS:
        return resources
    return {"openai": resources["openai"], task.duckdb_resource_key(): DuckDBResource(database=str(task.database_path()))}


def run_job(
    instance: dg.DagsterInstance, task: FineTuningTask = GOODREADS, job_seconds: float = 0.5, **tuning: Any
) -> dg.ExecuteInProcessResult:
    """The task's job with these run-time tuning settings (the task's YAML values otherwise)."""
    config: dict[str, Any] = {"ops": {task.keys.op("fine_tuned_model"): {"config": {"poll_interval_seconds": 0.2}}}}
    if tuning:
        config["resources"] = {task.keys.tuning_resource: {"config": tuning}}
    job = project_job(task_resources(task, job_seconds), task.job_name_or_default())
    return job.execute_in_process(instance=instance, run_config=config, raise_on_error=False)


def metadata_of(result: dg.ExecuteInProcessResult, asset: str, task: FineTuningTask = GOODREADS) -> dict[str, Any]:
    """Raw metadata values of the task's asset's one materialization in `result`."""
    key = task.keys.asset(asset)
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
    return {name: value.value for name, value in event.materialization.metadata.items()}


def failures_of(result: dg.ExecuteInProcessResult) -> list[str]:
    return [e.message for e in result.all_events if e.is_failure]


def accuracy_of(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == "fine_tuned_model_accuracy"]
    return {key: value.value for key, value in evaluation.metadata.items()}


def file_lines(result: dg.ExecuteInProcessResult, asset: str, task: FineTuningTask = GOODREADS) -> list[dict[str, Any]]:
    path = Path(metadata_of(result, asset, task)["path"])
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_dpo_on_the_production_models_mistakes_beats_or_ties_it(instance: dg.DagsterInstance) -> None:
    first = run_job(instance)
    assert first.success
    production = metadata_of(first, "production_model")["model_name"]
    dpo = {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}}
    second = run_job(instance, base_model=production, method=dpo)
    assert second.success, failures_of(second)
    training = metadata_of(second, "training_file")
    assert training["method"] == "dpo" and training["dpo_answering_model"] == production
    lines = file_lines(second, "training_file")
    assert len(lines) == training["dpo_pairs"] >= training["dpo_mistakes"]
    assert validate_chat_file(training["path"], method="dpo").ok
    job = metadata_of(second, "fine_tuned_model")
    assert job["base_model"] == production
    check = accuracy_of(second)
    assert check["fine_tuned_accuracy"] >= check["champion_accuracy"]  # beats or ties the production model
    decision = metadata_of(second, "production_model")
    assert decision["model_name"] in (production, job["model_name"])
    # Unchanged data and production model: the files are kept and nothing is asked again.
    current = decision["model_name"]
    again = run_job(instance, base_model=production, method=dpo)
    assert again.success
    rebuilt = metadata_of(again, "training_file")
    assert rebuilt["dpo_answering_model"] == current
    assert rebuilt["rebuilt"] is (current != production)


def promoted_by_the_rule(result: dg.ExecuteInProcessResult, task: FineTuningTask = GOODREADS) -> bool:
    """The production decision follows the accuracy check: promoted only when it passed and won."""
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == "fine_tuned_model_accuracy"]
    decision = metadata_of(result, "production_model", task)
    assert decision["promoted"] == (decision["model_name"] == metadata_of(result, "fine_tuned_model", task)["model_name"])
    assert evaluation.passed or not decision["promoted"]
    return bool(decision["promoted"])


@pytest.mark.parametrize("name", TASKS)
def test_reinforcement_then_dpo_each_reach_production_by_the_same_rule(instance: dg.DagsterInstance, name: str) -> None:
    task = TASKS[name]
    rl = run_job(instance, task, base_model=O4_MINI, method={"type": "reinforcement"})
    assert rl.success, failures_of(rl)
    lines = file_lines(rl, "training_file", task)
    assert lines[0]["messages"][-1]["role"] == "user" and lines[0]["reference_answer"].startswith("{")
    check = accuracy_of(rl)
    assert check["fine_tuned_accuracy"] > check["base_accuracy"] + 0.2
    job = metadata_of(rl, "fine_tuned_model", task)
    # The task's own suffix and budget stay when run config sets only the model and the method.
    assert f":{task.suffix or task.name}:" in job["model_name"]
    # Billed by training time: whole seconds of running x $100/h (no tokens price).
    assert job["cost_usd"] == pytest.approx(job["billed_training_seconds"] * 100 / 3600, abs=1e-6)
    assert promoted_by_the_rule(rl, task)  # the first production model: better than its base
    production = metadata_of(rl, "production_model", task)["model_name"]
    dpo = run_job(instance, task, method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}})
    assert dpo.success, failures_of(dpo)
    training = metadata_of(dpo, "training_file", task)
    assert training["dpo_answering_model"] == production  # the production model's own mistakes
    # Every mistake becomes a pair; a model with fewer than the minimum file's worth is padded to it.
    assert training["dpo_pairs"] == max(training["dpo_mistakes"], MIN_TRAINING_EXAMPLES) and training["dpo_mistakes"] > 0
    assert validate_chat_file(training["path"], method="dpo").ok
    promoted_by_the_rule(dpo, task)  # promoted only if it beats the reinforcement model (the same rule)


def cost_check(result: dg.ExecuteInProcessResult) -> Any:
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == "training_file_cost_check"]
    return evaluation


def test_a_reinforcement_job_is_cancelled_at_its_budget_and_a_rerun_starts_none(instance: dg.DagsterInstance) -> None:
    """Billed by training time ($100/h, by the second): a $0.02 budget buys no second, so nothing is uploaded;
    a job that would train for 8 s on a $0.05 budget (1 billed second) is cancelled while it runs, the failure
    says what it spent, and the next run with that budget creates no job."""
    settings = {"base_model": O4_MINI, "method": {"type": "reinforcement"}}
    provider = local_client(local_openai_dir())  # the backend's store the runs use
    blocked = run_job(instance, TICKETS, job_seconds=10, **settings, max_cost_usd=0.02)
    assert not blocked.success
    check = cost_check(blocked)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "does not pay for one second" in check.description
    assert not [e for e in blocked.get_asset_materialization_events() if "upload" in e.asset_key.path[-1]]
    assert provider.files.list().data == [] and provider.fine_tuning.jobs.list().data == []
    settings["max_cost_usd"] = 0.05
    stopped = run_job(instance, TICKETS, job_seconds=10, **settings)
    assert cost_check(stopped).severity == dg.AssetCheckSeverity.WARN  # billed by time: cannot be priced ahead
    assert not stopped.success
    [failure] = stopped.get_step_failure_events()
    data = failure.step_failure_data.user_failure_data
    assert "reached the $0.05 budget" in data.description and "was cancelled" in data.description
    spent = {key: value.value for key, value in data.metadata.items()}
    assert spent["status"] == "cancelled" and 1 <= spent["billed_training_seconds"] < 8  # stopped long before its end
    assert spent["spent_usd"] == pytest.approx(spent["billed_training_seconds"] * 100 / 3600, abs=1e-6)
    [job] = provider.fine_tuning.jobs.list().data
    assert job.id == spent["job_id"] and job.status == "cancelled"
    again = run_job(instance, TICKETS, job_seconds=10, **settings)
    assert not again.success
    [failure] = again.get_step_failure_events()
    assert "No fine-tuning job was created" in failure.step_failure_data.user_failure_data.description
    assert [j.id for j in provider.fine_tuning.jobs.list().data] == [job.id]  # nothing else was started


def test_a_method_the_model_lacks_stops_the_run_before_anything_is_written(instance: dg.DagsterInstance) -> None:
    result = run_job(instance, method={"type": "reinforcement"})
    assert not result.success
    assert not result.get_asset_materialization_events()
    assert any("o4-mini-2025-04-16" in str(e.event_specific_data) for e in result.all_events if e.is_failure)
