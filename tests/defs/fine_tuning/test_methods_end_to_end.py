"""Each fine-tuning method end to end: the real `fine_tuning_job` on the shipped sample, offline.

The method is the run-time setting `resources.tuning.config.method` (the API's object). A DPO
run's training file pairs each training book's true answer with the production model's own
mistake on it (asked once, then reused); a reinforcement run trains o4-mini on the default
exact-match grader; both reach `production_model` through the same promotion rule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from fine_tuning.core.chat_files import validate_chat_file

from tests.support.dagster_runs import materialization_metadata as metadata_of
from tests.support.dagster_runs import pipeline_resources
from tests.support.goodreads_task import GOODREADS, project_job

pytestmark = pytest.mark.slow
FAST = {"fine_tuned_model": {"config": {"poll_interval_seconds": 0.2}}}


def run_job(instance: dg.DagsterInstance, **tuning: Any) -> dg.ExecuteInProcessResult:
    """fine_tuning_job with these tuning settings (the Goodreads task's YAML values otherwise)."""
    resources = pipeline_resources(tuning=GOODREADS.tuning_settings())
    config = {"ops": FAST, "resources": {"tuning": {"config": tuning}}} if tuning else {"ops": FAST}
    return project_job(resources).execute_in_process(instance=instance, run_config=config, raise_on_error=False)


def accuracy_of(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == "fine_tuned_model_accuracy"]
    return {key: value.value for key, value in evaluation.metadata.items()}


def file_lines(result: dg.ExecuteInProcessResult, asset: str) -> list[dict[str, Any]]:
    path = Path(metadata_of(result, asset)["path"])
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_dpo_on_the_production_models_mistakes_beats_or_ties_it(instance: dg.DagsterInstance) -> None:
    first = run_job(instance)
    assert first.success
    production = metadata_of(first, "production_model")["model_name"]
    dpo = {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}}
    second = run_job(instance, base_model=production, method=dpo)
    assert second.success, [e.message for e in second.all_events if e.is_failure]
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


def promoted_by_the_rule(result: dg.ExecuteInProcessResult) -> bool:
    """The production decision follows the accuracy check: promoted only when it passed and won."""
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == "fine_tuned_model_accuracy"]
    decision = metadata_of(result, "production_model")
    assert decision["promoted"] == (decision["model_name"] == metadata_of(result, "fine_tuned_model")["model_name"])
    assert evaluation.passed or not decision["promoted"]
    return bool(decision["promoted"])


def test_reinforcement_then_dpo_each_reach_production_by_the_same_rule(instance: dg.DagsterInstance) -> None:
    rl = run_job(instance, base_model="o4-mini-2025-04-16", method={"type": "reinforcement"})
    assert rl.success, [e.message for e in rl.all_events if e.is_failure]
    lines = file_lines(rl, "training_file")
    assert lines[0]["messages"][-1]["role"] == "user" and lines[0]["reference_answer"].startswith("{")
    check = accuracy_of(rl)
    assert check["fine_tuned_accuracy"] > check["base_accuracy"] + 0.2
    assert promoted_by_the_rule(rl)  # the first production model: better than its base
    production = metadata_of(rl, "production_model")["model_name"]
    dpo = run_job(instance, method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}})
    assert dpo.success, [e.message for e in dpo.all_events if e.is_failure]
    training = metadata_of(dpo, "training_file")
    assert training["dpo_answering_model"] == production  # the production model's own mistakes
    assert training["dpo_pairs"] == training["dpo_mistakes"] > 0
    promoted_by_the_rule(dpo)  # promoted only if it beats the reinforcement model (the same rule)


def test_a_method_the_model_lacks_stops_the_run_before_anything_is_written(instance: dg.DagsterInstance) -> None:
    result = run_job(instance, method={"type": "reinforcement"})
    assert not result.success
    assert not result.get_asset_materialization_events()
    assert any("o4-mini-2025-04-16" in str(e.event_specific_data) for e in result.all_events if e.is_failure)
