"""Scoring models on held-out examples (no Dagster here).

Every model sees exactly the prompt the training files were built with (`prompts.Prompt`) and
must answer through a strict json_schema enum; an answer is right when it names the true label.
A free-form prompt asks for plain text instead, and its grading (`core.grading`) grades each
answer: it is right (passes) when its grade reaches the pass threshold. `chat_request` is the one request body, sent
online (`ask_models`: concurrent but bounded) or in a Batch API file (`core.batch_scoring`); both
turn what came back into `Answer`s and `tally` them, so the two modes score alike. Requests that
still fail after the client's retries are counted as wrong answers, never dropped.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import openai as openai_sdk

from fine_tuning.core.catalog import is_reasoning_model
from fine_tuning.core.grading import Grading, ProviderGrader, RemoteGrader
from fine_tuning.core.openai_errors import describe_api_error
from fine_tuning.core.prompts import Prompt

MAX_FAILURE_SAMPLES = 5
NO_ANSWER = "<no answer>"  # what a failed request or an unparseable answer counts as in the confusions
FINGERPRINT_VERSION = 2  # 2: the models compared are a set (challenger, champion, base, checkpoints)
# Bumped when a stored score gains what older ones lack, so those are asked again instead of reused.
# 2: each score keeps which prompts it got right (the paired test of the promotion rule needs them).
SCORE_FORMAT = 2


@dataclass(frozen=True)
class Example:
    """One held-out example: its id, its user message (the task's template rendered) and its true label."""

    example_id: str
    user_content: str
    label: str


@dataclass(frozen=True)
class Answer:
    """What one request for one model and one example came back with."""

    predicted: str | None  # None: failed request or unparseable answer
    failed: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None


@dataclass
class ModelScore:
    """How one model did on the examples."""

    model: str
    examples: int = 0
    correct: int = 0
    failed_requests: int = 0
    unparseable: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    per_category: dict[str, list[int]] = field(default_factory=dict)  # category -> [correct, total]
    confusions: Counter[tuple[str, str]] = field(default_factory=Counter)  # (true, predicted)
    outcomes: dict[str, bool] = field(default_factory=dict)  # example id -> answered right
    answers: dict[str, str] = field(default_factory=dict)  # example id -> what it answered (wrong answers: DPO pairs)
    grades: dict[str, float] = field(default_factory=dict)  # free-form: example id -> its answer's grade

    @property
    def accuracy(self) -> float:
        """Share of all examples answered correctly (failed requests count as wrong)."""
        return self.correct / self.examples if self.examples else 0.0

    @property
    def mean_grade(self) -> float | None:
        """Free-form: the mean grade over all examples (failed requests grade 0); None for a label set."""
        return sum(self.grades.values()) / len(self.grades) if self.grades else None

    def record(self, example_id: str, truth: str, predicted: str | None) -> None:
        """Count one answer to example `example_id` (None: failed request or unparseable answer)."""
        self.examples += 1
        tally = self.per_category.setdefault(truth, [0, 0])
        tally[1] += 1
        right = predicted == truth
        self.outcomes[example_id] = right
        self.answers[example_id] = predicted if predicted is not None else NO_ANSWER
        if right:
            self.correct += 1
            tally[0] += 1
        else:
            self.confusions[(truth, predicted or NO_ANSWER)] += 1

    def record_graded(
        self, example_id: str, reference: str, predicted: str | None, grading: Grading,
        remote: RemoteGrader | None = None,
    ) -> str | None:
        """Count one free-form answer: graded against `reference`, right when it passes (no answer: grade 0,
        the floor of every local grader's range). A grade the provider failed to give (a grader that needs
        a model, graded by `remote`) counts as a failed request, graded 0; its reason is returned."""
        self.examples += 1
        grade, problem = 0.0, None
        if predicted is not None:
            try:
                grade = grading.grade(predicted, reference, remote)
            except openai_sdk.APIError as error:
                problem = describe_api_error(error, f"grading the answer to {example_id}")
                self.failed_requests += 1
        right = predicted is not None and problem is None and grading.passes(grade)
        self.grades[example_id] = grade
        self.outcomes[example_id] = right
        self.answers[example_id] = predicted if predicted is not None else NO_ANSWER
        self.correct += int(right)
        return problem

    def add(
        self, example_id: str, truth: str, answer: Answer, grading: Grading | None = None,
        remote: RemoteGrader | None = None,
    ) -> str | None:
        """Count one answer with its tokens and whether its request failed (graded when `grading` is given);
        the reason a grade could not be had, if any."""
        problem = None
        if grading is None:
            self.record(example_id, truth, answer.predicted)
        else:
            problem = self.record_graded(example_id, truth, answer.predicted, grading, remote)
        self.prompt_tokens += answer.prompt_tokens
        self.completion_tokens += answer.completion_tokens
        if answer.failed:
            self.failed_requests += 1
        elif answer.predicted is None:
            self.unparseable += 1
        return problem

    def to_json(self) -> dict[str, Any]:
        """Everything needed to rebuild this score later (reusing an evaluation asks nothing)."""
        return {
            "model": self.model, "examples": self.examples, "correct": self.correct,
            "failed_requests": self.failed_requests, "unparseable": self.unparseable,
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "per_category": self.per_category,
            "confusions": [[truth, predicted, count] for (truth, predicted), count in self.confusions.items()],
            "outcomes": self.outcomes,
            "answers": self.answers,
            **({"grades": self.grades} if self.grades else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelScore:
        """The score `to_json` described."""
        return cls(
            model=str(data["model"]), examples=int(data["examples"]), correct=int(data["correct"]),
            failed_requests=int(data["failed_requests"]), unparseable=int(data["unparseable"]),
            prompt_tokens=int(data["prompt_tokens"]), completion_tokens=int(data["completion_tokens"]),
            per_category={str(k): [int(v[0]), int(v[1])] for k, v in dict(data["per_category"]).items()},
            confusions=Counter({(str(t), str(p)): int(n) for t, p, n in data["confusions"]}),
            outcomes={str(k): bool(v) for k, v in dict(data.get("outcomes") or {}).items()},
            answers={str(k): str(v) for k, v in dict(data.get("answers") or {}).items()},
            grades={str(k): float(v) for k, v in dict(data.get("grades") or {}).items()},
        )


@dataclass
class Scores:
    """Scores of several models on the same examples, and how the requests went."""

    models: dict[str, ModelScore]
    eval_examples: int
    concurrency: int = 0
    max_in_flight: int = 0
    failure_samples: list[str] = field(default_factory=list)
    grader_tokens: dict[str, list[int]] = field(default_factory=dict)  # grader model -> [prompt, completion]

    @property
    def failed_requests(self) -> int:
        """Requests that failed after every retry, all models together."""
        return sum(score.failed_requests for score in self.models.values())


@dataclass
class EvaluationResult:
    """A fine-tuned and its base model's scores plus what the concurrency bound actually allowed."""

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


def chat_request(model: str, example: Example, prompt: Prompt) -> dict[str, Any]:
    """The body of the one chat request that asks `model` about `example` (online and in a batch).

    Greedy (temperature 0), except for reasoning models, which take only the default temperature.
    """
    body: dict[str, Any] = {
        "model": model,
        "messages": prompt.messages(example.user_content),
        "temperature": 0,
    }
    response_format = prompt.response_format()
    if response_format is not None:  # free-form answers are plain text
        body["response_format"] = response_format
    if is_reasoning_model(model):
        del body["temperature"]
    return body


def answer_from_completion(completion: Mapping[str, Any], prompt: Prompt) -> Answer:
    """The Answer in a chat completion's JSON (a batch output line's body, or a response dumped)."""
    choices = completion.get("choices") or []
    message = (choices[0].get("message") or {}) if choices and isinstance(choices[0], Mapping) else {}
    usage = completion.get("usage") or {}
    return Answer(
        prompt.parse_answer(message.get("content")),
        failed=False,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
    )


def tally(
    models: Sequence[str], examples: Sequence[Example], answer: Callable[[str, int], Answer],
    grading: Grading | None = None, remote: RemoteGrader | None = None,
) -> tuple[dict[str, ModelScore], list[str]]:
    """Every model's score from `answer(model, example_index)`, and a few failure messages (free-form:
    each answer graded by `grading`, through `remote` when its grader needs a model)."""
    scores = {model: ModelScore(model) for model in models}
    failures: list[str] = []
    for index, example in enumerate(examples):
        for model in models:
            reply = answer(model, index)
            problem = scores[model].add(example.example_id, example.label, reply, grading, remote)
            error = reply.error if reply.failed else problem
            if error and len(failures) < MAX_FAILURE_SAMPLES:
                failures.append(f"{model} / {example.example_id}: {error}" if problem else error)
    return scores, failures


def provider_grader(client: openai_sdk.OpenAI, prompt: Prompt) -> ProviderGrader | None:
    """What grades a free-form prompt's answers through the provider, when its grader needs a model."""
    return ProviderGrader(client) if prompt.grading is not None and prompt.grading.needs_model else None


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
    client: openai_sdk.OpenAI, model: str, example: Example, prompt: Prompt, gate: _InFlight
) -> Answer:
    """One chat request; an API error that survives the client's retries becomes a failed answer."""
    try:
        with gate:
            response = client.chat.completions.create(**chat_request(model, example, prompt))
    except openai_sdk.APIError as error:
        reason = describe_api_error(error, "a chat completion", client)
        return Answer(None, failed=True, error=f"{model} / {example.example_id}: {reason}")
    return answer_from_completion(response.model_dump(), prompt)


def ask_models(
    client: openai_sdk.OpenAI,
    examples: Sequence[Example],
    prompt: Prompt,
    models: Sequence[str],
    concurrency: int = 16,
    max_retries: int = 5,
    log: Callable[[str], None] | None = None,
) -> Scores:
    """Ask every model about every example online, with at most `concurrency` requests in flight."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    models = list(dict.fromkeys(models))
    # The official client retries 429/5xx/connection errors with backoff and honours retry-after.
    retrying = client.with_options(max_retries=max_retries)
    gate = _InFlight(concurrency)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="evaluate") as pool:
        futures = {
            (model, index): pool.submit(_ask, retrying, model, example, prompt, gate)
            for index, example in enumerate(examples)
            for model in models
        }
        remote = provider_grader(retrying, prompt)
        scores, failures = tally(
            models, examples, lambda model, index: futures[(model, index)].result(), prompt.grading, remote
        )
    result = Scores(scores, len(examples), concurrency, gate.peak, failures, remote.tokens if remote else {})
    if log is not None and failures:
        log(f"{result.failed_requests} requests failed after retries, e.g. {failures[0]}")
    return result


def evaluate_models(
    client: openai_sdk.OpenAI,
    examples: Sequence[Example],
    prompt: Prompt,
    base_model: str,
    tuned_model: str,
    concurrency: int = 16,
    max_retries: int = 5,
    log: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """Ask a fine-tuned model and its base model about every example (online)."""
    scores = ask_models(client, examples, prompt, [tuned_model, base_model], concurrency, max_retries, log)
    return EvaluationResult(
        tuned=scores.models[tuned_model],
        base=scores.models[base_model],
        eval_examples=scores.eval_examples,
        concurrency=scores.concurrency,
        max_in_flight=scores.max_in_flight,
        failure_samples=scores.failure_samples,
    )


def prompts_fingerprint(examples: Sequence[Example], prompt: Prompt) -> str:
    """sha256 of every prompt and its true answer (what any model is asked and scored against), the
    format scores on them are stored in and, free-form, the grader and pass threshold that score them."""
    grading = [prompt.grading.fingerprint()] if prompt.grading is not None else []
    digest = hashlib.sha256(json.dumps([SCORE_FORMAT, list(prompt.labels), *grading]).encode())
    for example in examples:
        messages = prompt.messages(example.user_content)
        digest.update(json.dumps([example.example_id, example.label, messages], ensure_ascii=False).encode())
    return digest.hexdigest()


def evaluation_fingerprint(models: Sequence[str], prompts_sha256: str) -> str:
    """sha256 of everything an evaluation's result depends on: the models asked and the prompts."""
    payload = {"version": FINGERPRINT_VERSION, "models": sorted(set(models)), "prompts": prompts_sha256}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
