"""file_checks: the blocking Dagster checks on the training and validation files."""

import shutil
from collections.abc import Sequence
from typing import Any

import dagster as dg

from fine_tuning.core.catalog import PRICING_AS_OF
from fine_tuning.core.chat_files import COUNTED, RECORDED
from fine_tuning.core.settings import files_dir
from fine_tuning.lib.task.file_checks import CHECKED_INPUTS, REUSED_FROM_RUN
from fine_tuning.lib.task.tuning import TuningSettings

from tests.support.chat_files import CATEGORIES
from tests.support.dagster_runs import pipeline_resources
from tests.support.goodreads_task import FILE_CHECKS, training_files
from tests.support.warehouse import write_labelled_books

ran_downstream: list[str] = []


@dg.asset(deps=["training_file", "validation_file"])
def pretend_upload() -> None:
    """Stands in for the upload assets: must not run when a blocking check fails."""
    ran_downstream.append("ran")


def write_library(books: int, categories: Sequence[str] = CATEGORIES, description: str = "A tale.") -> None:
    """The upstream tables in a real DuckDB file: `books` labelled books spread over `categories`."""
    rows = [(f"b{i}", f"Book {i}", "Author", f"{description} #{i}", categories[i % len(categories)]) for i in range(books)]
    write_labelled_books(rows, categories)


def run_pipeline(
    tuning: TuningSettings | None = None, selection: Any = None, instance: dg.DagsterInstance | None = None
) -> dg.ExecuteInProcessResult:
    """Files, every file check and a downstream asset, in one real run."""
    ran_downstream.clear()
    return dg.materialize(
        [training_files, *FILE_CHECKS, pretend_upload],
        resources=pipeline_resources(tuning),
        selection=selection,
        instance=instance,
        raise_on_error=False,
    )


def materialized_metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    """The metadata values of `asset`'s materialization in `result`."""
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]
    return {key: value.value for key, value in event.materialization.metadata.items()}


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    """Check name -> evaluation."""
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_all_checks_pass_and_downstream_runs_on_good_files() -> None:
    write_library(120)
    result = run_pipeline()
    checks = check_results(result)
    assert result.success
    assert {key.name for c in FILE_CHECKS for key in c.check_keys} == set(checks)
    assert all(c.passed for c in checks.values()), {n: c.description for n, c in checks.items()}
    assert ran_downstream == ["ran"]
    cost = checks["training_file_cost_check"].metadata
    assert cost["details"].value["pricing_as_of"] == PRICING_AS_OF
    # The files are exactly what the writer measured: its counts are taken, not counted again.
    assert cost["token_counts"].value == RECORDED
    assert cost["details"].value["total_tokens"] == materialized_metadata(result, "training_file")["total_tokens"]
    # Three numbers for the UI to plot; the file's statistics are in the details entry.
    assert [key for key, value in cost.items() if isinstance(value, (dg.IntMetadataValue, dg.FloatMetadataValue))] == [
        "billing_tokens", "estimated_cost_usd", "max_cost_usd"]
    assert 0 < cost["estimated_cost_usd"].value < 5.0


def test_unchanged_files_report_their_recorded_results_and_a_changed_setting_is_judged_again() -> None:
    write_library(120)
    instance = dg.DagsterInstance.ephemeral()  # shared: the re-run sees what the first run judged
    first = run_pipeline(instance=instance)
    assert first.success
    judged = check_results(first)
    assert all(CHECKED_INPUTS in c.metadata and REUSED_FROM_RUN not in c.metadata for c in judged.values())
    again = run_pipeline(instance=instance)  # the files are kept: same bytes, settings and split
    reported = check_results(again)
    assert again.success and ran_downstream == ["ran"]
    assert {name: c.metadata[REUSED_FROM_RUN].value for name, c in reported.items()} == dict.fromkeys(judged, first.run_id)
    verdicts = lambda checks: {n: (c.passed, c.description) for n, c in checks.items()}  # noqa: E731
    assert verdicts(reported) == verdicts(judged)
    third = check_results(run_pipeline(instance=instance))  # still the first run's judgement, not the second's
    assert {c.metadata[REUSED_FROM_RUN].value for c in third.values()} == {first.run_id}
    # Another budget is another judgement: every check reads the files again, and the cost check fails.
    tighter = run_pipeline(TuningSettings(max_cost_usd=0.0001), instance=instance,
                           selection=dg.AssetSelection.checks_for_assets("training_file", "validation_file"))
    rejudged = check_results(tighter)
    assert set(rejudged) == set(judged) and not any(REUSED_FROM_RUN in c.metadata for c in rejudged.values())
    assert not rejudged["training_file_cost_check"].passed


def test_a_failed_format_check_blocks_downstream() -> None:
    write_library(12, categories=["fantasy"])  # 12 books: 8 train examples, under OpenAI's minimum of 10
    result = run_pipeline()
    checks = check_results(result)
    fmt = checks["training_file_format_check"]
    assert not fmt.passed and fmt.blocking
    assert "too_few_examples" in fmt.metadata["errors_by_kind"].value
    assert ran_downstream == [] and not result.success


def test_an_over_budget_cost_check_blocks_downstream() -> None:
    write_library(120)
    result = run_pipeline(TuningSettings(max_cost_usd=0.0001))
    cost = check_results(result)["training_file_cost_check"]
    assert not cost.passed and "> budget $0.00" in (cost.description or "")
    assert ran_downstream == []


def test_an_unpriced_model_fails_the_cost_check() -> None:
    write_library(120)
    result = run_pipeline(TuningSettings(base_model="brand-new-model"))
    cost = check_results(result)["training_file_cost_check"]
    assert not cost.passed and "cannot be verified" in (cost.description or "")
    assert ran_downstream == []


def test_examples_over_the_model_limit_block_downstream() -> None:
    # gpt-3.5-turbo-0125 takes 16,385 tokens per example; these descriptions are ~20,000.
    write_library(36, description="word " * 20_000)
    result = run_pipeline(TuningSettings(base_model="gpt-3.5-turbo-0125"))
    token = check_results(result)["training_file_token_check"]
    assert not token.passed
    assert token.metadata["examples_over_limit"].value == token.metadata["details"].value["examples"]
    assert "would be truncated" in (token.description or "")
    assert ran_downstream == []


def test_a_file_changed_after_materialization_fails_the_format_check() -> None:
    write_library(120)
    instance = dg.DagsterInstance.ephemeral()  # shared, so the second run sees the first's metadata
    assert run_pipeline(instance=instance).success
    path = files_dir() / "training.jsonl"
    path.write_text(path.read_text("utf-8") + "oops\n", "utf-8")
    result = run_pipeline(
        selection=dg.AssetSelection.checks_for_assets("training_file", "validation_file"), instance=instance
    )
    fmt = check_results(result)["training_file_format_check"]
    assert not fmt.passed
    assert "changed since it was materialized" in (fmt.description or "")
    assert "invalid_json" in fmt.metadata["errors_by_kind"].value
    assert fmt.metadata["token_counts"].value == COUNTED  # other bytes than the writer measured


def test_overlap_between_files_fails_the_overlap_check() -> None:
    write_library(120)
    assert run_pipeline().success
    training, validation = files_dir() / "training.jsonl", files_dir() / "validation.jsonl"
    shutil.copy(training, validation)  # the public example's flaw: validation rows drawn from training
    result = run_pipeline(selection=dg.AssetSelection.checks_for_assets("validation_file"))
    overlap = check_results(result)["validation_file_overlap_check"]
    assert not overlap.passed
    assert overlap.metadata["identical_examples"].value == overlap.metadata["shared_user_messages"].value > 0
