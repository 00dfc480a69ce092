"""`fine_tuned_model_accuracy`: the fine-tuned and the base model on the held-out test split.

Asking the models and scoring their answers is Dagster-free (`core.scoring`); this module reads
the test split, re-uses the previous evaluation when nothing it depends on changed, and turns
the scores into the check's verdict and metadata.
(No `from __future__ import annotations`: Dagster inspects the real `context` annotation.)
"""

from collections.abc import Sequence
from typing import Any, ClassVar

import dagster as dg
import duckdb as duckdb_lib
from dagster._core.storage.asset_check_execution_record import COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES
from dagster_duckdb import DuckDBResource
from dagster_openai import OpenAIResource
from pydantic import Field

from fine_tuning.core.scoring import (
    EvaluationResult,
    Example,
    confusion_table,
    evaluate_models,
    evaluation_fingerprint,
    per_category_table,
)
from fine_tuning.defs.resources import TuningSettings
from fine_tuning.defs.shared.run_settings import CheckedConfig, require_valid_run_settings
from fine_tuning.defs.shared.sql import sql_statements
from fine_tuning.defs.shared.upstream import latest_metadata
from fine_tuning.defs.shared.warehouse import configured_categories, connection

SQL = sql_statements(__package__, "fine_tuned_model_accuracy")
CHECK_KEY = dg.AssetCheckKey(dg.AssetKey("fine_tuned_model"), "fine_tuned_model_accuracy")
FINGERPRINT_KEY = "evaluation_fingerprint"


class EvaluationConfig(CheckedConfig):
    """Run configuration of `fine_tuned_model_accuracy`."""

    run_config_path: ClassVar[str] = "ops.fine_tuned_model_fine_tuned_model_accuracy.config"

    concurrency: int = Field(default=16, ge=1, le=256, description="Most chat requests in flight at once (1-256).")
    max_examples: int | None = Field(
        default=None, ge=1, description="Evaluate only the first N test books (by book_id), N >= 1; null = all."
    )
    max_retries: int = Field(
        default=5, ge=0, le=20,
        description="Client retries per request on 429/5xx/connection errors, 0-20 (honours retry-after).",
    )
    force_evaluation: bool = Field(
        default=False,
        description="Ask both models again even when the same models were already evaluated on the same test prompts.",
    )


def load_test_examples(
    conn: duckdb_lib.DuckDBPyConnection, max_examples: int | None = None
) -> tuple[list[Example], list[str]]:
    """The test split joined to the enriched books, and the configured categories in order."""
    categories = configured_categories(conn)
    rows = conn.execute(SQL["test_examples"], {"split": "test", "limit": max_examples}).fetchall()
    examples = [Example(*(str(value) if value is not None else "" for value in row)) for row in rows]
    return examples, categories


def check_metadata(result: EvaluationResult, categories: Sequence[str]) -> dict[str, Any]:
    """Metadata of the accuracy check."""
    return {
        "fine_tuned_accuracy": float(result.tuned.accuracy),
        "base_accuracy": float(result.base.accuracy),
        "eval_examples": int(result.eval_examples),
        "fine_tuned_model": result.tuned.model,
        "base_model": result.base.model,
        "accuracy_note": "Accuracy is over all test examples; failed requests and unparseable answers count as wrong.",
        "per_category_accuracy": dg.MetadataValue.md(per_category_table(result, categories)),
        "confusions": dg.MetadataValue.md(
            confusion_table(result.tuned) + "\n\n" + confusion_table(result.base)
        ),
        "failed_requests": int(result.failed_requests),
        "fine_tuned_failed_requests": int(result.tuned.failed_requests),
        "base_failed_requests": int(result.base.failed_requests),
        "unparseable_answers": int(result.tuned.unparseable + result.base.unparseable),
        "prompt_tokens": int(result.tuned.prompt_tokens + result.base.prompt_tokens),
        "completion_tokens": int(result.tuned.completion_tokens + result.base.completion_tokens),
        "total_tokens": int(
            result.tuned.prompt_tokens + result.base.prompt_tokens
            + result.tuned.completion_tokens + result.base.completion_tokens
        ),
        "concurrency": int(result.concurrency),
        "max_in_flight": int(result.max_in_flight),
    }


def previous_evaluation(instance: dg.DagsterInstance, fingerprint: str) -> dg.AssetCheckEvaluation | None:
    """The latest completed evaluation, when it asked the same models about the same prompts
    and no request failed; re-asking would only pay again for the same answers (temperature 0)."""
    records = instance.event_log_storage.get_asset_check_execution_history(
        CHECK_KEY, limit=1, status=set(COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES)
    )
    if not records or records[0].event is None or records[0].event.dagster_event is None:
        return None
    evaluation = records[0].event.dagster_event.asset_check_evaluation_data
    metadata = evaluation.metadata
    same = getattr(metadata.get(FINGERPRINT_KEY), "value", None) == fingerprint
    clean = getattr(metadata.get("failed_requests"), "value", 1) == 0
    return evaluation if same and clean else None


def reused_result(previous: dg.AssetCheckEvaluation) -> dg.AssetCheckResult:
    """The previous evaluation's verdict and numbers, marked as reused."""
    return dg.AssetCheckResult(
        passed=previous.passed,
        severity=previous.severity,
        description=f"Reused the evaluation of these models on these test prompts: {previous.description}",
        metadata={**previous.metadata, "reused_evaluation": True},
    )


@dg.asset_check(
    asset="fine_tuned_model",
    name="fine_tuned_model_accuracy",
    description=(
        "Accuracy of the fine-tuned and the base model on the held-out test split, same prompt, "
        "strict json_schema answers; warns when the fine-tuned model is worse than the base."
    ),
    blocking=False,
)
def fine_tuned_model_accuracy(
    context: dg.AssetCheckExecutionContext,
    config: EvaluationConfig,
    duckdb: DuckDBResource,
    openai: OpenAIResource,
    tuning: TuningSettings,
) -> dg.AssetCheckResult:
    """Compare the fine-tuned model with its base model on every test book."""
    require_valid_run_settings(context)
    produced = latest_metadata(context, "fine_tuned_model")
    model_name = produced.get("model_name")
    # Compare with the model this one was actually trained from, even if the tuning config
    # has changed since.
    base_model = str(produced.get("base_model") or tuning.base_model)
    if not model_name:
        raise dg.Failure(description="The latest fine_tuned_model materialization has no model_name metadata.")
    with connection(duckdb) as conn:
        examples, categories = load_test_examples(conn, config.max_examples)
    if not categories:
        raise dg.Failure(description="The categories table is empty; materialize book_category first.")
    if not examples:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description="No test examples: book_splits has no 'test' rows joined to enriched_graphic_novels.",
            metadata={"eval_examples": 0},
        )
    fingerprint = evaluation_fingerprint(str(model_name), base_model, examples, categories)
    previous = None if config.force_evaluation else previous_evaluation(context.instance, fingerprint)
    if previous is not None:
        context.log.info("Same models, same test prompts: reusing the previous evaluation (no API calls).")
        return reused_result(previous)
    context.log.info(
        f"Evaluating {model_name} and {base_model} on {len(examples)} test books "
        f"({config.concurrency} requests at a time)."
    )
    with openai.get_client(context) as client:
        result = evaluate_models(
            client, examples, categories, base_model, str(model_name),
            concurrency=config.concurrency, max_retries=config.max_retries, log=context.log.warning,
        )
    metadata = {**check_metadata(result, categories), FINGERPRINT_KEY: fingerprint, "reused_evaluation": False}
    worse = result.tuned.accuracy < result.base.accuracy
    summary = (
        f"fine-tuned {result.tuned.accuracy:.1%} vs base {result.base.accuracy:.1%} "
        f"on {result.eval_examples} test books; {result.failed_requests} failed requests (counted as wrong)"
    )
    context.log.info(summary)
    return dg.AssetCheckResult(
        passed=not worse,
        severity=dg.AssetCheckSeverity.WARN,
        description=("The fine-tuned model is worse than its base: " if worse else "") + summary,
        metadata=metadata,
    )
