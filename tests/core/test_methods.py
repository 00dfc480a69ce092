"""The method object checked to the documented bounds, and each method's training lines."""

from __future__ import annotations

from typing import Any

import pytest

from fine_tuning.core.chat_files import validate_chat_lines
from fine_tuning.core.graders import run_grader
from fine_tuning.core.method_examples import (
    default_grader,
    fallback_label,
    mistakes_of,
    preference_line,
    reinforcement_line,
    supervised_line,
)
from fine_tuning.core.methods import method_problems

GRADER = default_grader()


@pytest.mark.parametrize("method", [
    {"type": "supervised"},
    {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3, "batch_size": "auto"}}},
    {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1, "learning_rate_multiplier": 2}}},
    {"type": "dpo", "dpo": {"hyperparameters": {"beta": "auto"}}},
    # The OpenAPI description's bounds themselves: beta (0, 2], learning_rate_multiplier > 0 with no maximum.
    {"type": "dpo", "dpo": {"hyperparameters": {"beta": 2, "learning_rate_multiplier": 50}}},
    {"type": "dpo", "dpo": {"hyperparameters": {"beta": 1e-9, "n_epochs": 50, "batch_size": 256}}},
])
def test_documented_methods_pass(method: dict[str, Any]) -> None:
    assert method_problems(method, "gpt-4o-mini-2024-07-18") == []


@pytest.mark.parametrize("hyperparameters", [
    {"compute_multiplier": 2, "eval_interval": 5, "eval_samples": 3, "reasoning_effort": "medium"},
    # compute_multiplier (0.00001, 10]; eval_interval and eval_samples >= 1 with no maximum.
    {"compute_multiplier": 10, "eval_interval": 10_000, "eval_samples": 11},
    {"compute_multiplier": 0.000011, "eval_interval": 1, "eval_samples": 1},
])
def test_reinforcement_with_a_grader_passes_on_o4_mini(hyperparameters: dict[str, Any]) -> None:
    method = {"type": "reinforcement", "reinforcement": {"grader": GRADER, "hyperparameters": hyperparameters}}
    assert method_problems(method, "o4-mini") == []


@pytest.mark.parametrize(("method", "model", "field"), [
    ("dpo", "gpt-4o-mini", "method"),
    ({"type": "rlhf"}, "gpt-4o-mini", "method.type"),
    ({"type": "dpo"}, "gpt-3.5-turbo-0125", "method.type"),
    ({"type": "reinforcement", "reinforcement": {"grader": GRADER}}, "gpt-4o-mini", "method.type"),
    ({"type": "dpo", "dpo": {"hyperparameters": {"beta": 2.5}}}, "gpt-4o-mini", "method.dpo.hyperparameters.beta"),
    ({"type": "dpo", "dpo": {"hyperparameters": {"beta": 0}}}, "gpt-4o-mini", "method.dpo.hyperparameters.beta"),
    ({"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 51}}}, "gpt-4o-mini", "method.dpo.hyperparameters.n_epochs"),
    ({"type": "dpo", "supervised": {}}, "gpt-4o-mini", "method.supervised"),
    ({"type": "supervised", "supervised": {"hyperparameters": {"beta": 0.1}}}, "gpt-4o-mini",
     "method.supervised.hyperparameters.beta"),
    ({"type": "reinforcement", "reinforcement": {}}, "o4-mini", "method.reinforcement.grader"),
    ({"type": "reinforcement", "reinforcement": {"grader": GRADER, "hyperparameters": {"eval_samples": 0}}}, "o4-mini",
     "method.reinforcement.hyperparameters.eval_samples"),
    ({"type": "reinforcement", "reinforcement": {"grader": GRADER, "hyperparameters": {"compute_multiplier": 0.00001}}},
     "o4-mini", "method.reinforcement.hyperparameters.compute_multiplier"),
    ({"type": "reinforcement", "reinforcement": {"grader": GRADER, "hyperparameters": {"compute_multiplier": 10.5}}},
     "o4-mini", "method.reinforcement.hyperparameters.compute_multiplier"),
    ({"type": "dpo", "dpo": {"hyperparameters": {"learning_rate_multiplier": 0}}}, "gpt-4o-mini",
     "method.dpo.hyperparameters.learning_rate_multiplier"),
    ({"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 2.5}}}, "gpt-4o-mini", "method.dpo.hyperparameters.n_epochs"),
    ({"type": "reinforcement", "reinforcement": {"grader": GRADER, "hyperparameters": {"reasoning_effort": "max"}}},
     "o4-mini", "method.reinforcement.hyperparameters.reasoning_effort"),
])
def test_each_out_of_bounds_field_is_named(method: Any, model: str, field: str) -> None:
    problems = method_problems(method, model)
    assert problems and problems[0].field == field, problems


PROMPT = [{"role": "system", "content": "Classify."}, {"role": "user", "content": "A book."}]


def _valid(line: dict[str, Any], method: str) -> bool:
    import json

    lines = [(n, json.dumps({**line, **({"n": n} if method == "reinforcement" else {})}).encode()) for n in range(1, 11)]
    return validate_chat_lines(lines, label="x", method=method, model="o4-mini" if method == "reinforcement" else
                               "gpt-4o-mini").ok


def test_each_method_line_is_valid_for_its_method_and_graded_by_the_default_grader() -> None:
    assert _valid(supervised_line(PROMPT, '{"category":"horror"}'), "supervised")
    assert _valid(preference_line(PROMPT, '{"category":"horror"}', '{"category":"manga"}'), "dpo")
    line = reinforcement_line(PROMPT, '{"category":"horror"}', "horror")
    assert _valid(line, "reinforcement")
    assert run_grader(GRADER, '{"category":"horror"}', line).reward == 1.0
    assert run_grader(GRADER, '{"category":"manga"}', line).reward == 0.0


def test_mistakes_are_the_models_own_wrong_labels() -> None:
    truths = {"a": "horror", "b": "manga", "c": "horror", "d": "manga"}
    answers = {"a": "manga", "b": "manga", "c": "<no answer>", "d": "horror"}
    mistakes = mistakes_of("m", answers, truths, ["horror", "manga", "humor"])
    assert mistakes.wrong == {"a": "manga", "d": "horror"}  # a failed answer is no usable mistake
    assert fallback_label("horror", mistakes, ["horror", "manga", "humor"], 0) == "manga"
    assert fallback_label("humor", mistakes, ["horror", "manga", "humor"], 1) == "manga"
