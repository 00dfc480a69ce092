"""`fine_tuned_model_accuracy`: the fine-tuned and the base model on the held-out test split.

Both models see exactly the prompt the training files were built with (`prompts.build_messages`)
and must answer through a strict json_schema enum. Requests run concurrently but bounded, and
requests that still fail after the client's retries are counted as wrong answers, never dropped.
(No `from __future__ import annotations`: Dagster inspects the real `context` annotation.)
"""

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import openai as openai_sdk
from dagster._core.storage.asset_check_execution_record import COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES
from dagster_duckdb import DuckDBResource
from dagster_openai import OpenAIResource
from pydantic import Field

from fine_tuning.core import prompts
from fine_tuning.core.openai_errors import describe_api_error
from fine_tuning.defs.resources import TuningSettings
from fine_tuning.defs.shared.upstream import latest_metadata
from fine_tuning.defs.shared.warehouse import connection

TOP_CONFUSIONS = 10
MAX_FAILURE_SAMPLES = 5

TEST_EXAMPLES_SQL = """
    SELECT e.book_id, e.title, e.author, e.description, e.category
    FROM book_splits AS s
    JOIN enriched_graphic_novels AS e USING (book_id)
    WHERE s.split = $split
    ORDER BY e.book_id
"""
CATEGORIES_SQL = "SELECT category FROM categories ORDER BY position"


class EvaluationConfig(dg.Config):
    """Run configuration of `fine_tuned_model_accuracy`."""

    concurrency: int = Field(default=16, ge=1, description="Most chat requests in flight at once.")
    max_examples: int | None = Field(
        default=None, ge=1, description="Evaluate only the first N test books (by book_id); null = all."
    )
    max_retries: int = Field(
        default=5, ge=0, description="Client retries per request on 429/5xx/connection errors (honours retry-after)."
    )
    force_evaluation: bool = Field(
        default=False,
        description="Ask both models again even when the same models were already evaluated on the same test prompts.",
    )


@dataclass(frozen=True)
class Example:
    """One test book and its true category."""

    book_id: str
    title: str
    author: str
    description: str
    category: str


@dataclass
class ModelScore:
    """How one model did on the test examples."""

    model: str
    examples: int = 0
    correct: int = 0
    failed_requests: int = 0
    unparseable: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    per_category: dict[str, list[int]] = field(default_factory=dict)  # category -> [correct, total]
    confusions: Counter[tuple[str, str]] = field(default_factory=Counter)  # (true, predicted)

    @property
    def accuracy(self) -> float:
        """Share of all examples answered correctly (failed requests count as wrong)."""
        return self.correct / self.examples if self.examples else 0.0

    def record(self, truth: str, predicted: str | None) -> None:
        """Count one answer (None: failed request or unparseable answer)."""
        self.examples += 1
        tally = self.per_category.setdefault(truth, [0, 0])
        tally[1] += 1
        if predicted == truth:
            self.correct += 1
            tally[0] += 1
        else:
            self.confusions[(truth, predicted or "<no answer>")] += 1


@dataclass
class EvaluationResult:
    """Scores of both models plus what the concurrency bound actually allowed."""

    tuned: ModelScore
    base: ModelScore
    eval_examples: int
    concurrency: int
    max_in_flight: int
    failure_samples: list[str] = field(default_factory=list)

    @property
    def failed_requests(self) -> int:
        """Requests that failed after every retry, both models together."""
        return self.tuned.failed_requests + self.base.failed_requests


@dataclass(frozen=True)
class _Answer:
    predicted: str | None
    failed: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None


class _InFlight:
    """A semaphore-bounded gate that also records the highest number of requests inside it."""

    def __init__(self, limit: int) -> None:
        self._semaphore = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self.current = 0
        self.peak = 0

    def __enter__(self) -> "_InFlight":
        self._semaphore.acquire()
        with self._lock:
            self.current += 1
            self.peak = max(self.peak, self.current)
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self.current -= 1
        self._semaphore.release()


def _ask(
    client: openai_sdk.OpenAI,
    model: str,
    example: Example,
    categories: Sequence[str],
    gate: _InFlight,
) -> _Answer:
    """One chat request; an API error that survives the client's retries becomes a failed answer."""
    messages = prompts.build_messages(example.title, example.author, example.description, categories)
    try:
        with gate:
            response = client.chat.completions.create(
                model=model,
                messages=messages,
                temperature=0,
                response_format=prompts.response_format(categories),
            )
    except openai_sdk.APIError as error:
        reason = describe_api_error(error, "a chat completion", client)
        return _Answer(None, failed=True, error=f"{model} / {example.book_id}: {reason}")
    text = response.choices[0].message.content if response.choices else None
    usage = response.usage
    return _Answer(
        prompts.parse_answer(text, categories),
        failed=False,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
    )


def evaluate_models(
    client: openai_sdk.OpenAI,
    examples: Sequence[Example],
    categories: Sequence[str],
    base_model: str,
    tuned_model: str,
    concurrency: int = 16,
    max_retries: int = 5,
    log: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """Ask both models about every example with at most `concurrency` requests in flight."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    # The official client retries 429/5xx/connection errors with backoff and honours retry-after.
    retrying = client.with_options(max_retries=max_retries)
    gate = _InFlight(concurrency)
    scores = {"tuned": ModelScore(tuned_model), "base": ModelScore(base_model)}
    tasks = [(role, model, example) for example in examples for role, model in (("tuned", tuned_model), ("base", base_model))]
    failures: list[str] = []
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="evaluate") as pool:
        futures = [
            (role, example, pool.submit(_ask, retrying, model, example, categories, gate))
            for role, model, example in tasks
        ]
        for role, example, future in futures:
            answer = future.result()
            score = scores[role]
            score.record(example.category, answer.predicted)
            score.prompt_tokens += answer.prompt_tokens
            score.completion_tokens += answer.completion_tokens
            if answer.failed:
                score.failed_requests += 1
                if len(failures) < MAX_FAILURE_SAMPLES and answer.error:
                    failures.append(answer.error)
            elif answer.predicted is None:
                score.unparseable += 1
    if log is not None and failures:
        log(f"{sum(score.failed_requests for score in scores.values())} requests failed after retries, e.g. {failures[0]}")
    return EvaluationResult(
        tuned=scores["tuned"],
        base=scores["base"],
        eval_examples=len(examples),
        concurrency=concurrency,
        max_in_flight=gate.peak,
        failure_samples=failures,
    )


def per_category_table(result: EvaluationResult, categories: Sequence[str]) -> str:
    """Markdown table of per-category accuracy for both models."""
    lines = ["| category | examples | fine-tuned | base |", "|---|---:|---:|---:|"]
    for category in categories:
        tuned_correct, total = result.tuned.per_category.get(category, [0, 0])
        base_correct, _ = result.base.per_category.get(category, [0, 0])
        if not total:
            continue
        lines.append(f"| {category} | {total} | {tuned_correct / total:.1%} | {base_correct / total:.1%} |")
    return "\n".join(lines)


def confusion_table(score: ModelScore, top: int = TOP_CONFUSIONS) -> str:
    """Markdown table of the most frequent (true -> predicted) mistakes of one model."""
    lines = [f"Top confusions of {score.model}", "", "| true | predicted | count |", "|---|---|---:|"]
    for (truth, predicted), count in score.confusions.most_common(top):
        lines.append(f"| {truth} | {predicted} | {count} |")
    if not score.confusions:
        lines.append("| - | - | 0 |")
    return "\n".join(lines)


def load_test_examples(conn: Any, max_examples: int | None = None) -> tuple[list[Example], list[str]]:
    """The test split joined to the enriched books, and the configured categories in order."""
    categories = [row[0] for row in conn.execute(CATEGORIES_SQL).fetchall()]
    query = TEST_EXAMPLES_SQL + ("LIMIT $limit" if max_examples else "")
    params: dict[str, Any] = {"split": "test"}
    if max_examples:
        params["limit"] = max_examples
    rows = conn.execute(query, params).fetchall()
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


CHECK_KEY = dg.AssetCheckKey(dg.AssetKey("fine_tuned_model"), "fine_tuned_model_accuracy")
FINGERPRINT_KEY = "evaluation_fingerprint"


def evaluation_fingerprint(
    tuned_model: str, base_model: str, examples: Sequence[Example], categories: Sequence[str]
) -> str:
    """sha256 of everything an evaluation's result depends on: both models and every test prompt."""
    digest = hashlib.sha256()
    digest.update(json.dumps([tuned_model, base_model, list(categories)]).encode())
    for example in examples:
        messages = prompts.build_messages(example.title, example.author, example.description, categories)
        digest.update(json.dumps([example.book_id, example.category, messages], ensure_ascii=False).encode())
    return digest.hexdigest()


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
