"""Only a better model reaches production: whole `fine_tuning_job` runs on a real instance.

Every run is the real job, in-process, on the shipped sample, against the local backend, with a
Dagster instance in a temporary DAGSTER_HOME (the project's dagster.yaml); what applications
read is checked through the real `python -m fine_tuning.current_model` in a child process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster_openai import OpenAIResource

from fine_tuning.core.paired_test import mcnemar_exact_p
from fine_tuning.core.promotion import format_p
from fine_tuning.core.settings import local_openai_dir
from fine_tuning.summary import latest_run_summary, summary_lines
from local_openai.transport import local_client

from tests.support.dagster_runs import materialization_metadata as metadata_of
from tests.support.dagster_runs import pipeline_resources
from tests.support.goodreads_task import project_job
from tests.support.project import REPO

CHECK_OP = "fine_tuned_model_fine_tuned_model_accuracy"
FAST = {"fine_tuned_model": {"config": {"poll_interval_seconds": 0.2}}}
# A re-tune on a tiny training set: a real model, clearly worse than one trained on every book.
WORSE = {**FAST, "training_files": {"config": {"max_train_examples": 12}}}


def pinned(model: str) -> dict[str, Any]:
    return {**FAST, "production_model": {"config": {"pin_model": model}}}


def run_job(instance: dg.DagsterInstance, ops: dict[str, Any], openai: Any = None) -> dg.ExecuteInProcessResult:
    """The project's fine_tuning_job (every asset and check) on this test's workdir and backend."""
    resources = pipeline_resources()
    if openai is not None:
        resources["openai"] = openai
    return project_job(resources).execute_in_process(
        instance=instance, run_config={"ops": ops}, raise_on_error=False
    )


def check_of(result: dg.ExecuteInProcessResult) -> tuple[bool, dict[str, Any]]:
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == "fine_tuned_model_accuracy"]
    return evaluation.passed, {key: value.value for key, value in evaluation.metadata.items()}


def current_model(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m fine_tuning.current_model`, exactly as an application's deploy script runs it."""
    return subprocess.run(
        [sys.executable, "-m", "fine_tuning.current_model", *args], cwd=REPO,
        env={**os.environ, "DAGSTER_HOME": str(home)}, capture_output=True, text=True, timeout=120,
    )


def production_is(home: Path, model: str) -> None:
    out = current_model(home)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == model


@pytest.mark.slow
def test_good_worse_failed_pinned_then_good_again(dagster_home: Path, instance: dg.DagsterInstance) -> None:
    nothing = current_model(dagster_home)
    assert nothing.returncode == 1 and "never been materialized" in nothing.stderr and not nothing.stdout

    # 1. Good: the first model that passes its check goes to production.
    first = run_job(instance, FAST)
    assert first.success
    good = metadata_of(first, "fine_tuned_model")["model_name"]
    decision = metadata_of(first, "production_model")
    assert decision["model_name"] == good and decision["promoted"] is True
    assert decision["previous_model"] is None and decision["champion_accuracy"] is None
    production_is(dagster_home, good)

    # 2. Worse: a re-tune on 12 books passes its check (it beats the base) but loses to the champion.
    second = run_job(instance, WORSE)
    assert second.success
    worse = metadata_of(second, "fine_tuned_model")["model_name"]
    assert worse != good
    passed, check = check_of(second)
    assert passed and check["champion_model"] == good
    assert check["fine_tuned_accuracy"] < check["champion_accuracy"]
    # The champion and the base had answered exactly these prompts already: only the challenger was asked.
    assert check["details"]["asked_models"] == [worse] and check["reused_evaluation"] is False
    decision = metadata_of(second, "production_model")
    assert (decision["model_name"], decision["promoted"], decision["challenger"]) == (good, False, worse)
    assert decision["challenger_accuracy"] == check["fine_tuned_accuracy"]
    assert decision["champion_accuracy"] == check["champion_accuracy"]
    assert decision["base_accuracy"] == check["base_accuracy"]
    production_is(dagster_home, good)
    summary = latest_run_summary(instance)
    assert summary is not None
    assert f"production model:    {good} (kept)" in summary_lines(summary)

    # A failed re-tune (the provider is unreachable) never reaches production_model.
    unreachable = OpenAIResource(api_key="sk-test-unreachable", base_url="http://127.0.0.1:9/v1")
    failed = run_job(instance, WORSE, openai=unreachable)
    assert not failed.success
    assert not [e for e in failed.get_asset_materialization_events() if e.asset_key == dg.AssetKey("production_model")]
    production_is(dagster_home, good)

    # 3. Pinned: a rollback to any model the provider has, whatever the evaluation says.
    third = run_job(instance, pinned(worse))
    assert third.success
    decision = metadata_of(third, "production_model")
    assert (decision["model_name"], decision["promoted"], decision["pinned"]) == (worse, False, True)
    assert decision["previous_model"] == good and "Pinned by run config" in decision["reason"]
    production_is(dagster_home, worse)

    # A pin to a model the provider does not have fails clearly and changes nothing.
    missing = good[:-4] + "zzzz"
    bad_pin = run_job(instance, pinned(missing))
    assert not bad_pin.success
    [failure] = bad_pin.get_step_failure_events()
    assert failure.step_key == "production_model"
    assert f"pin_model '{missing}' does not exist on the provider" in failure.step_failure_data.user_failure_data.description
    production_is(dagster_home, worse)

    # 4. Good again: the next run's better model takes over from the pinned one.
    fourth = run_job(instance, FAST)
    assert fourth.success
    assert metadata_of(fourth, "fine_tuned_model")["model_name"] == good  # the same job, reused
    decision = metadata_of(fourth, "production_model")
    assert (decision["model_name"], decision["promoted"], decision["previous_model"]) == (good, True, worse)
    assert decision["challenger_accuracy"] > decision["champion_accuracy"]
    assert f"{good} beats {worse}" in decision["reason"]
    production_is(dagster_home, good)

    described = json.loads(current_model(dagster_home, "--json").stdout)
    for key in ("model_name", "promoted", "challenger", "previous_model", "challenger_accuracy",
                "champion_accuracy", "base_accuracy", "reason", "total_cost_usd"):
        assert key in described, key
    assert described["model_name"] == good and described["run_id"] == fourth.run_id


@pytest.mark.slow
def test_costs_are_recorded_and_add_up_to_the_running_total(dagster_home: Path, instance: dg.DagsterInstance) -> None:
    first = run_job(instance, FAST)
    assert first.success
    trained = metadata_of(first, "fine_tuned_model")
    # The cost check priced the training file before it was uploaded; the job then billed its trained tokens.
    assert isinstance(trained["estimated_cost_usd"], float) and isinstance(trained["cost_usd"], float)
    assert trained["cost_usd"] == pytest.approx(trained["estimated_cost_usd"], rel=0.01)
    _, check = check_of(first)
    details = check["details"]
    assert details["mode"] == "online"
    assert details["fine_tuned_cost_usd"] > 0 and details["base_cost_usd"] > 0
    # Same prompts and token counts for both, but a fine-tuned model's tokens cost more.
    assert details["fine_tuned_prompt_tokens"] == details["base_prompt_tokens"]
    assert details["fine_tuned_cost_usd"] > details["base_cost_usd"]
    assert check["spent_usd"] == pytest.approx(details["fine_tuned_cost_usd"] + details["base_cost_usd"])
    decision = metadata_of(first, "production_model")
    expected = trained["cost_usd"] + check["spent_usd"]
    assert decision["run_cost_usd"] == pytest.approx(expected) and decision["total_cost_usd"] == pytest.approx(expected)

    # An unchanged re-run reuses the job and every answer: it costs nothing and the total stays.
    again = run_job(instance, FAST)
    assert again.success
    _, check = check_of(again)
    assert check["reused_evaluation"] is True and check["spent_usd"] == 0.0
    decision = metadata_of(again, "production_model")
    assert decision["run_cost_usd"] == 0.0 and decision["total_cost_usd"] == pytest.approx(expected)
    assert len(list(local_client(str(local_openai_dir())).fine_tuning.jobs.list())) == 1


@pytest.mark.slow
def test_the_best_checkpoint_on_validation_is_the_challenger(dagster_home: Path, instance: dg.DagsterInstance) -> None:
    result = run_job(instance, {**FAST, CHECK_OP: {"config": {"evaluate_checkpoints": True}}})
    assert result.success
    trained = metadata_of(result, "fine_tuned_model")
    checkpoints = list(local_client(str(local_openai_dir())).fine_tuning.jobs.checkpoints.list(trained["job_id"]))
    assert checkpoints, "the local backend keeps checkpoints of the last epochs"
    _, check = check_of(result)
    selection = check["details"]["checkpoint_selection"]
    assert selection["candidates"] == len(checkpoints) + 1
    scores = check["validation_scores"]["scores"]
    assert set(scores) == {trained["model_name"], *(c.fine_tuned_model_checkpoint for c in checkpoints)}
    best = max(score["correct"] for score in scores.values())
    assert scores[check["fine_tuned_model"]]["correct"] == best
    assert selection["challenger_validation_accuracy"] >= selection["final_model_validation_accuracy"]
    for model in scores:
        assert f"| {model} |" in check["checkpoint_scores"]
    decision = metadata_of(result, "production_model")
    assert decision["model_name"] == check["fine_tuned_model"] and decision["promoted"] is True


def train_on(books: int, **production: Any) -> dict[str, Any]:
    """Run config: train on the first `books` training books (fewer books, a different model), then decide."""
    ops = {**FAST, "training_files": {"config": {"max_train_examples": books}}}
    return {**ops, "production_model": {"config": production}} if production else ops


@pytest.mark.slow
def test_a_few_answers_better_is_luck_a_clearly_better_model_is_promoted(
    dagster_home: Path, instance: dg.DagsterInstance
) -> None:
    # 1. A model trained on 230 books is the first production model: nothing to test it against.
    first = run_job(instance, train_on(230))
    champion = metadata_of(first, "fine_tuned_model")["model_name"]
    decision = metadata_of(first, "production_model")
    assert (decision["model_name"], decision["promoted"]) == (champion, True)
    assert decision["p_value"] is None and decision["discordant_pairs"] is None

    # 2. A re-tune on 200 books answers a handful more test books right, past min_improvement, but
    #    the prompts the two disagree on split almost evenly: McNemar's test calls that luck.
    second = run_job(instance, train_on(200))
    retune = metadata_of(second, "fine_tuned_model")["model_name"]
    decision = metadata_of(second, "production_model")
    pairs = decision["discordant_pairs"]
    few = pairs["challenger_right"] - pairs["champion_right"]
    assert 0 < few <= 8, pairs  # a handful of answers
    gain = decision["challenger_accuracy"] - decision["champion_accuracy"]
    assert gain == pytest.approx(few / 364) and gain >= 0.01  # better, by more than min_improvement
    assert decision["p_value"] == pytest.approx(mcnemar_exact_p(pairs["challenger_right"], pairs["champion_right"]))
    assert decision["p_value"] >= 0.05
    assert (decision["model_name"], decision["promoted"], decision["challenger"]) == (champion, False, retune)
    assert "its gain is not significant (it may be luck)" in decision["reason"]
    assert f"McNemar p = {format_p(decision['p_value'])} >= max_p_value 0.05" in decision["reason"]
    assert decision["thresholds"] == {"min_improvement": 0.01, "max_p_value": 0.05}
    production_is(dagster_home, champion)
    # The check shows what the decision read: the same pairs, per-label metrics and both confusion matrices.
    _, check = check_of(second)
    assert check["details"]["paired_test"] == {"p_value": decision["p_value"], **pairs}
    assert f"**challenger** `{retune}`" in check["confusion_matrix"]
    assert f"**production** `{champion}`" in check["confusion_matrix"]
    assert "production F1" in check["per_label_metrics"]
    assert check["macro_f1_champion"] is not None and 0 < check["macro_f1_fine_tuned"] <= 1

    # 3. The same evidence with the test turned off (max_p_value 1.0): the gain alone promotes it.
    third = run_job(instance, train_on(200, max_p_value=1.0))
    decision = metadata_of(third, "production_model")
    assert (decision["model_name"], decision["promoted"], decision["discordant_pairs"]) == (retune, True, pairs)
    assert "not required (max_p_value 1.0)" in decision["reason"]

    # 4. A pin skips the test: back to the first model.
    fourth = run_job(instance, {**train_on(200), "production_model": {"config": {"pin_model": champion}}})
    decision = metadata_of(fourth, "production_model")
    assert (decision["model_name"], decision["pinned"], decision["p_value"]) == (champion, True, None)

    # 5. A model trained on every book is clearly better: promoted, its p-value far below 0.05.
    fifth = run_job(instance, FAST)
    best = metadata_of(fifth, "fine_tuned_model")["model_name"]
    decision = metadata_of(fifth, "production_model")
    assert (decision["model_name"], decision["promoted"], decision["previous_model"]) == (best, True, champion)
    assert decision["p_value"] < 0.01
    assert decision["discordant_pairs"]["challenger_right"] > 2 * decision["discordant_pairs"]["champion_right"]
    assert f"{best} beats {champion}" in decision["reason"] and "< max_p_value 0.05" in decision["reason"]
    production_is(dagster_home, best)
