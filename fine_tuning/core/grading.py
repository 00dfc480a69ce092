"""The accuracy metric of a free-form task: its grader, and the grade an answer must reach to pass.

A labelled task's answer is right when it names the true label (exact match). A free-form task
has no label set: the model writes text, and the task's grader (OpenAI's JSON shape, see
`core.graders`) gives each answer a number, computed by `core.graders.run_grader`, the very
code the local backend's `POST /v1/fine_tuning/alpha/graders/run` runs. An answer *passes*
when its grade is at least the pass threshold, so accuracy (the share passing), McNemar's
paired test on per-example pass/fail and `min_improvement` work as they do for labels.

The grader reads the example as a reinforcement file's line carries it (`core.method_examples`):
`{{item.reference_answer}}` is the answer column's text (`{{item.label}}` the same), and
`{{sample.output_text}}` the model's answer. No Dagster here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from fine_tuning.core.graders import GraderError, UnsupportedGrader, run_grader, validate_grader

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


@dataclass(frozen=True)
class Grading:
    """A free-form task's metric: a validated grader and the grade at or above which an answer passes."""

    grader: dict[str, Any]
    pass_threshold: float = DEFAULT_PASS_THRESHOLD

    def __post_init__(self) -> None:
        validate_grader(self.grader)

    def grade(self, answer: str, reference_answer: str) -> float:
        """The grader's reward for `answer` on an example whose reference answer is `reference_answer`."""
        return run_grader(self.grader, answer, grading_item(reference_answer, reference_answer)).reward

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
