"""The graders resource: `POST /v1/fine_tuning/alpha/graders/validate` and `/run`.

Both use `fine_tuning.core.graders`, the rules the pipeline validates its graders with and the
reinforcement learner is rewarded by. `validate` accepts every grader OpenAI accepts; `run`
computes the graders that need no model (string_check, text_similarity but cosine and meteor,
multi over them) and refuses the others with a 400 rather than invent a score.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from fine_tuning.core.graders import GraderError, UnsupportedGrader, run_grader, validate_grader
from local_openai.exceptions import InvalidRequest, MissingRequiredParameter, UnknownParameter, UnsupportedValue

_ERROR_FLAGS = (
    "formula_parse_error", "invalid_variable_error", "model_grader_parse_error", "model_grader_refusal_error",
    "model_grader_server_error", "other_error", "python_grader_runtime_error", "python_grader_server_error",
    "sample_parse_error", "truncated_observation_error", "unresponsive_reward_error",
)


@dataclass(frozen=True)
class ValidatedGrader:
    """The answer of /validate: the grader, as given."""

    grader: dict[str, Any]

    def to_api(self) -> dict[str, Any]:
        """OpenAI's GraderValidateResponse."""
        return {"grader": self.grader}


@dataclass(frozen=True)
class GraderRunResult:
    """The answer of /run."""

    grader: dict[str, Any]
    reward: float
    scores: dict[str, float]
    sub_rewards: dict[str, float]
    seconds: float

    def to_api(self) -> dict[str, Any]:
        """OpenAI's GraderRunResponse."""
        return {
            "reward": self.reward,
            "metadata": {
                "name": self.grader["name"], "type": self.grader["type"], "errors": dict.fromkeys(_ERROR_FLAGS, False),
                "execution_time": self.seconds, "scores": self.scores, "token_usage": None, "sampled_model_name": None,
            },
            "sub_rewards": self.sub_rewards,
            "model_grader_token_usage_per_model": {},
        }


class Graders:
    """Validates and runs graders (stateless)."""

    def validate(self, body: dict[str, Any]) -> ValidatedGrader:
        """400 naming the field when the grader is not in OpenAI's shape."""
        _only(body, ("grader",))
        return ValidatedGrader(_checked(body))

    def run(self, body: dict[str, Any]) -> GraderRunResult:
        """Grade `model_sample` for the dataset row `item`."""
        _only(body, ("grader", "model_sample", "item"))
        grader = _checked(body)
        sample = body.get("model_sample")
        if not isinstance(sample, str):
            raise MissingRequiredParameter("model_sample")
        item = body.get("item")
        if item is not None and not isinstance(item, dict):
            raise InvalidRequest("'item' must be an object.", "item")
        started = time.perf_counter()
        try:
            result = run_grader(grader, sample, item or {})
        except UnsupportedGrader as exc:
            raise UnsupportedValue(exc.message, exc.param) from None
        return GraderRunResult(grader, result.reward, result.scores, result.sub_rewards, time.perf_counter() - started)


def _only(body: dict[str, Any], fields: tuple[str, ...]) -> None:
    for name in body:
        if name not in fields:
            raise UnknownParameter(name)


def _checked(body: dict[str, Any]) -> dict[str, Any]:
    if "grader" not in body:
        raise MissingRequiredParameter("grader")
    try:
        return validate_grader(body["grader"])
    except GraderError as exc:
        raise InvalidRequest(exc.message, exc.param) from None
