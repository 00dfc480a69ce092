"""The `method` object of a fine-tuning job, checked to the documented bounds before anything is spent.

The same object the API takes (`{"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}}`):
its type, the model's support for it (catalog), each hyperparameter ("auto" or a number in its
documented range) and, for reinforcement, the grader (`core.graders`). Used by the pipeline's
settings and by the local backend's job creation, so both refuse the same objects.

Ranges: OpenAI's OpenAPI description of the API (github.com/openai/openai-openapi, openapi.yaml,
schemas FineTuneSupervisedHyperparameters, FineTuneDPOHyperparameters and
FineTuneReinforcementHyperparameters, as of METHOD_BOUNDS_AS_OF): n_epochs an integer 1-50,
batch_size an integer 1-256, learning_rate_multiplier a number > 0 (no maximum), DPO beta a
number in (0, 2], reinforcement compute_multiplier a number in (0.00001, 10], eval_interval and
eval_samples integers >= 1 (no maximum), reasoning_effort default | low | medium | high. The API
reference pages type them only as "auto" or a number; the bounds are the OpenAPI description's,
none is our own reading.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fine_tuning.core.catalog import FINE_TUNING_METHODS, method_problem
from fine_tuning.core.graders import GraderError, validate_grader

METHOD_BOUNDS_AS_OF = "2026-08-21"


@dataclass(frozen=True)
class Bound:
    """The numbers a hyperparameter takes besides "auto": integers or numbers, low (open or closed) to high."""

    kind: type
    low: float
    high: float = math.inf
    low_open: bool = False

    def admits(self, value: Any) -> bool:
        """Whether `value` (already known to be a non-bool number) lies in the bound."""
        if isinstance(value, float) and not math.isfinite(value):
            return False  # JSON's 1e400 parses as inf: no documented bound admits it
        above = value > self.low if self.low_open else value >= self.low
        whole = self.kind is float or isinstance(value, int) or value.is_integer()
        return above and value <= self.high and whole

    def describe(self) -> str:
        """The bound in words, e.g. "a number > 0 and <= 2", "an integer >= 1"."""
        words = ["an integer" if self.kind is int else "a number", f"{'>' if self.low_open else '>='} {self.low:g}"]
        if self.high != math.inf:
            words.append(f"and <= {self.high:g}")
        return " ".join(words)


# name: bound of each hyperparameter a supervised job takes.
SUPERVISED_LIMITS: dict[str, Bound] = {
    "n_epochs": Bound(int, 1, 50),
    "batch_size": Bound(int, 1, 256),
    "learning_rate_multiplier": Bound(float, 0, low_open=True),
}
HYPERPARAMETER_LIMITS: dict[str, dict[str, Bound]] = {
    "supervised": SUPERVISED_LIMITS,
    "dpo": {**SUPERVISED_LIMITS, "beta": Bound(float, 0, 2.0, low_open=True)},
    "reinforcement": {
        **SUPERVISED_LIMITS,
        "compute_multiplier": Bound(float, 0.00001, 10.0, low_open=True),
        "eval_interval": Bound(int, 1),
        "eval_samples": Bound(int, 1),
    },
}
REASONING_EFFORTS = ("default", "low", "medium", "high")
DEFAULT_METHOD: dict[str, Any] = {"type": "supervised", "supervised": {"hyperparameters": {}}}


@dataclass(frozen=True)
class MethodProblem:
    """One thing wrong with a method object: the field (as a path in the object) and why."""

    field: str
    message: str


def hyperparameter_problem(name: str, value: Any, bound: Bound) -> str | None:
    """Why a hyperparameter value is refused, or None ("auto" and numbers in range pass)."""
    if value is None or value == "auto":
        return None
    number_ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number_ok or not bound.admits(value):
        return f"{name} must be 'auto' or {bound.describe()} (got {value!r})"
    return None


def method_problems(method: Any, model: str | None = None) -> list[MethodProblem]:
    """Every problem of a method object (empty when the API would take it for `model`)."""
    if not isinstance(method, dict):
        return [MethodProblem("method", "must be an object {type, <type>: {...}}")]
    kind = method.get("type", "supervised")
    if kind not in FINE_TUNING_METHODS:
        return [MethodProblem("method.type", f"{kind!r} is not one of {', '.join(FINE_TUNING_METHODS)}")]
    problems = [MethodProblem(f"method.{key}", "unknown key") for key in method if key not in ("type", kind)]
    if model is not None and (why := method_problem(model, kind)) is not None:
        problems.append(MethodProblem("method.type", why))
    settings = method.get(kind) or {}
    if not isinstance(settings, dict):
        return [*problems, MethodProblem(f"method.{kind}", "must be an object")]
    allowed = ("hyperparameters", "grader") if kind == "reinforcement" else ("hyperparameters",)
    problems += [MethodProblem(f"method.{kind}.{key}", "unknown key") for key in settings if key not in allowed]
    problems += _hyperparameter_problems(kind, settings.get("hyperparameters"))
    if kind == "reinforcement":
        try:
            validate_grader(settings.get("grader"), f"method.{kind}.grader")
        except GraderError as error:
            problems.append(MethodProblem(error.param, error.message))
    return problems


def _hyperparameter_problems(kind: str, hyper: Any) -> list[MethodProblem]:
    where = f"method.{kind}.hyperparameters"
    if hyper is None:
        return []
    if not isinstance(hyper, dict):
        return [MethodProblem(where, "must be an object")]
    limits = HYPERPARAMETER_LIMITS[kind]
    problems = []
    for name, value in hyper.items():
        if name == "reasoning_effort" and kind == "reinforcement":
            if value is not None and value not in REASONING_EFFORTS:
                problems.append(MethodProblem(f"{where}.{name}", f"must be one of {', '.join(REASONING_EFFORTS)}"))
        elif name not in limits:
            problems.append(MethodProblem(f"{where}.{name}", f"not a {kind} hyperparameter"))
        elif (why := hyperparameter_problem(name, value, limits[name])) is not None:
            problems.append(MethodProblem(f"{where}.{name}", why))
    return problems


def method_type(method: dict[str, Any] | None) -> str:
    """The method's type (supervised when none is given)."""
    return (method or DEFAULT_METHOD).get("type", "supervised")


def method_hyperparameters(method: dict[str, Any] | None) -> dict[str, Any]:
    """The hyperparameters the method object sets ("auto" for those it leaves out is the API's default)."""
    method = method or DEFAULT_METHOD
    settings = method.get(method_type(method)) or {}
    return dict(settings.get("hyperparameters") or {})


def method_grader(method: dict[str, Any] | None) -> dict[str, Any] | None:
    """A reinforcement method's grader, else None."""
    method = method or DEFAULT_METHOD
    return (method.get("reinforcement") or {}).get("grader") if method_type(method) == "reinforcement" else None


# API reference, `integrations` and `metadata` of a job: Weights & Biases only (project required;
# name, entity, tags optional); up to 16 string pairs, keys up to 64 characters, values up to 512.
WANDB_FIELDS = ("project", "name", "entity", "tags")
MAX_METADATA_KEYS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512


def integrations_problems(integrations: Any) -> list[MethodProblem]:
    """Problems of a job's `integrations` list (empty when the API would take it)."""
    if integrations is None:
        return []
    if not isinstance(integrations, list):
        return [MethodProblem("integrations", "must be a list")]
    problems = []
    for index, item in enumerate(integrations):
        where = f"integrations[{index}]"
        if not isinstance(item, dict) or item.get("type") != "wandb" or set(item) - {"type", "wandb"}:
            problems.append(MethodProblem(f"{where}.type", "only {type: wandb, wandb: {...}} is supported"))
            continue
        wandb = item.get("wandb")
        if not isinstance(wandb, dict) or not isinstance(wandb.get("project"), str) or not wandb["project"]:
            problems.append(MethodProblem(f"{where}.wandb.project", "required (a non-empty string)"))
            continue
        problems += [MethodProblem(f"{where}.wandb.{key}", "unknown key") for key in wandb if key not in WANDB_FIELDS]
        problems += [MethodProblem(f"{where}.wandb.{key}", "must be a string")
                     for key in ("name", "entity") if wandb.get(key) is not None and not isinstance(wandb[key], str)]
        tags = wandb.get("tags")
        if tags is not None and (not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags)):
            problems.append(MethodProblem(f"{where}.wandb.tags", "must be a list of strings"))
    return problems


def metadata_problems(metadata: Any, reserved: int = 0) -> list[MethodProblem]:
    """Problems of a job's `metadata` (`reserved`: keys the pipeline adds itself, out of the 16)."""
    if metadata is None:
        return []
    if not isinstance(metadata, dict):
        return [MethodProblem("metadata", "must be an object of string keys and values")]
    problems = []
    if len(metadata) + reserved > MAX_METADATA_KEYS:
        problems.append(MethodProblem("metadata", f"{len(metadata)} keys; at most {MAX_METADATA_KEYS - reserved} "
                                      f"(the pipeline uses {reserved} of the provider's {MAX_METADATA_KEYS})"))
    for key, value in metadata.items():
        if not isinstance(key, str) or not 0 < len(key) <= MAX_METADATA_KEY_CHARS:
            problems.append(MethodProblem(f"metadata.{key}", f"keys are 1-{MAX_METADATA_KEY_CHARS} characters"))
        if not isinstance(value, str) or len(value) > MAX_METADATA_VALUE_CHARS:
            problems.append(MethodProblem(
                f"metadata.{key}", f"values are strings of at most {MAX_METADATA_VALUE_CHARS} characters"))
    return problems
