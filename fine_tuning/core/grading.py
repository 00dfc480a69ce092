"""The accuracy metric of a free-form task: its grader, and the grade an answer must reach to pass.

A labelled task's answer is right when it names the true label (exact match). A free-form task
has no label set: the model writes text, and the task's grader (OpenAI's JSON shape, see
`core.graders`) gives each answer a number, computed by `core.graders.run_grader`, the very
code the local backend's `POST /v1/fine_tuning/alpha/graders/run` runs. An answer *passes*
when its grade is at least the pass threshold, so accuracy (the share passing), McNemar's
paired test on per-example pass/fail and `min_improvement` work as they do for labels.

The grader reads the example as a reinforcement file's line carries it (`core.method_examples`):
`{{item.reference_answer}}` is the answer column's text (`{{item.label}}` the same), and
`{{sample.output_text}}` the model's answer.

A grader that needs a model (`score_model`, `text_similarity` `cosine` / `meteor`) is not computed
here: each grade is asked of the provider's `/graders/run` through the same client the answers
came from (`ProviderGrader`), and the grader model's tokens are counted and priced. The local
backend has no grader model and refuses such graders with a 400: `check_grader_runs` asks once
before anything is trained or asked, so that refusal stops the run first. No Dagster here.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import openai as openai_sdk

from fine_tuning.core.graders import GraderError, UnsupportedGrader, run_grader, validate_grader
from fine_tuning.core.openai_errors import describe_api_error

# The default metric of a free-form task: how close the answer's characters are to the reference
# (rapidfuzz's ratio: 1.0 identical, about 0.5 for half the text in common), passing at 0.8, so
# an answer must say nearly what the reference says, but a changed word or punctuation still passes.
DEFAULT_PASS_THRESHOLD = 0.8
REFERENCE_FIELD = "reference_answer"
LABEL_FIELD = "label"


def default_free_form_grader() -> dict[str, Any]:
    """A free-form task's grader when it names none: fuzzy_match of the answer against the reference."""
    return {
        "type": "text_similarity", "name": "fuzzy_match", "evaluation_metric": "fuzzy_match",
        "input": "{{sample.output_text}}", "reference": f"{{{{item.{REFERENCE_FIELD}}}}}",
    }


def grading_item(reference_answer: str, label: str) -> dict[str, str]:
    """The dataset row a grader reads as `item`: the same fields a reinforcement line carries."""
    return {REFERENCE_FIELD: reference_answer, LABEL_FIELD: label}


def grade_range(grader: dict[str, Any]) -> tuple[float, float]:
    """The range a grader's grades fall in: a score_model's `range` (default [0, 1]), else [0, 1]
    (string_check and text_similarity; a multi formula may leave it, the histogram widens then)."""
    score_range = grader.get("range") if grader.get("type") == "score_model" else None
    return (float(score_range[0]), float(score_range[1])) if score_range else (0.0, 1.0)


# Grades a model's answer for an item with a grader this process cannot compute (a provider's /graders/run).
RemoteGrader = Callable[[dict[str, Any], str, Mapping[str, Any]], float]


@dataclass(frozen=True)
class Grading:
    """A free-form task's metric: a validated grader and the grade at or above which an answer passes."""

    grader: dict[str, Any]
    pass_threshold: float = DEFAULT_PASS_THRESHOLD

    def __post_init__(self) -> None:
        validate_grader(self.grader)

    @property
    def needs_model(self) -> bool:
        """Whether grading asks a grader model (the provider's /graders/run) instead of computing here."""
        return local_grading_problem(self.grader) is not None

    def grade(self, answer: str, reference_answer: str, remote: RemoteGrader | None = None) -> float:
        """The grader's reward for `answer` on an example whose reference answer is `reference_answer`
        (computed here, or by `remote` when the grader needs a model; UnsupportedGrader without one)."""
        item = grading_item(reference_answer, reference_answer)
        if self.needs_model:
            if remote is None:
                raise UnsupportedGrader("this grader needs a grader model: grade through the provider", "grader")
            return remote(self.grader, answer, item)
        return run_grader(self.grader, answer, item).reward

    def passes(self, grade: float) -> bool:
        """Whether a grade reaches the pass threshold."""
        return grade >= self.pass_threshold

    def fingerprint(self) -> str:
        """What grades depend on (the grader and the threshold), for the stored scores' key."""
        payload = json.dumps({"grader": self.grader, "pass_threshold": self.pass_threshold}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


def local_grading_problem(grader: dict[str, Any]) -> GraderError | None:
    """Why this grader cannot be computed by the pipeline itself (None when it can): run on an
    empty answer, a grader needing a model (score_model) or a corpus (cosine, meteor) says so."""
    try:
        run_grader(grader, "", grading_item("", ""))
    except UnsupportedGrader as error:
        return error
    return None


@dataclass
class ProviderGrader:
    """Grades through the provider's `POST /v1/fine_tuning/alpha/graders/run` on the client the models
    were asked with, counting the grader model's tokens per model (what the grades cost)."""

    client: openai_sdk.OpenAI
    tokens: dict[str, list[int]] = field(default_factory=dict)  # grader model -> [prompt, completion]
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, grader: dict[str, Any], sample: str, item: Mapping[str, Any]) -> float:
        """The provider's reward for `sample` (openai.APIError when it refuses or fails)."""
        graders = self.client.fine_tuning.alpha.graders
        response = graders.run(grader=grader, model_sample=sample, item=dict(item))  # type: ignore[arg-type]
        usage = response.api_model_grader_token_usage_per_model or {}
        with self._lock:
            for model, used in usage.items():
                counted = self.tokens.setdefault(str(model), [0, 0])
                counted[0] += int((used or {}).get("prompt_tokens") or 0) if isinstance(used, dict) else 0
                counted[1] += int((used or {}).get("completion_tokens") or 0) if isinstance(used, dict) else 0
        return float(response.reward)


def check_grader_runs(client: openai_sdk.OpenAI, grading: Grading) -> None:
    """GraderError when the provider cannot run a grader that needs a model (the local backend has
    none): asked once, on an empty answer, before anything is trained or any model is asked."""
    if not grading.needs_model:
        return
    try:
        ProviderGrader(client)(grading.grader, "", grading_item("", ""))
    except openai_sdk.APIError as error:
        reason = describe_api_error(error, "running the task's grader (/v1/fine_tuning/alpha/graders/run)", client)
        raise GraderError(
            f"the task's grader {grading.grader.get('name')!r} needs a grader model, which the provider cannot run: "
            f"{reason}. Pick a grader the pipeline computes itself (string_check, text_similarity but cosine and "
            "meteor, multi over them) or a provider that runs it.", "grader",
        ) from None
