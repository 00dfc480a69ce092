"""Scoring a fine-tuned model against its base model on held-out books (no Dagster here).

Both models see exactly the prompt the training files were built with (`prompts.build_messages`)
and must answer through a strict json_schema enum. Requests run concurrently but bounded, and
requests that still fail after the client's retries are counted as wrong answers, never dropped.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import openai as openai_sdk

from fine_tuning.core import prompts
from fine_tuning.core.markdown import markdown_table
from fine_tuning.core.openai_errors import describe_api_error

TOP_CONFUSIONS = 10
MAX_FAILURE_SAMPLES = 5


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

    def __enter__(self) -> _InFlight:
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
    """Markdown table of per-category accuracy for both models (categories without examples left out)."""
    rows = []
    for category in categories:
        tuned_correct, total = result.tuned.per_category.get(category, [0, 0])
        base_correct, _ = result.base.per_category.get(category, [0, 0])
        if total:
            rows.append((category, total, f"{tuned_correct / total:.1%}", f"{base_correct / total:.1%}"))
    return markdown_table(("category", "examples", "fine-tuned", "base"), rows, align="lrrr")


def confusion_table(score: ModelScore, top: int = TOP_CONFUSIONS) -> str:
    """Markdown table of the most frequent (true -> predicted) mistakes of one model, under a title."""
    rows = [(truth, predicted, count) for (truth, predicted), count in score.confusions.most_common(top)]
    table = markdown_table(("true", "predicted", "count"), rows or [("-", "-", 0)], align="llr")
    return f"Top confusions of {score.model}\n\n{table}"


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
