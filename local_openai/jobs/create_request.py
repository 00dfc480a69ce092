"""The fields of a create-job request, each checked synchronously as OpenAI does (a 400 naming it)."""

from __future__ import annotations

import re
import secrets
from typing import Any

from fine_tuning.core.catalog import catalog_model, method_problem
from fine_tuning.core.graders import GraderError, UnsupportedGrader, run_grader, validate_grader
from fine_tuning.core.methods import HYPERPARAMETER_LIMITS as METHOD_LIMITS
from fine_tuning.core.methods import REASONING_EFFORTS, SUPERVISED_LIMITS, hyperparameter_problem
from local_openai.exceptions import (
    InvalidHyperparameters,
    InvalidMetadata,
    InvalidRequest,
    InvalidSuffix,
    MissingRequiredParameter,
    ModelNotAvailable,
    OpenAIError,
    UnknownParameter,
    UnsupportedMethod,
)

CREATE_FIELDS = (
    "model", "training_file", "validation_file", "hyperparameters", "suffix", "seed", "metadata", "method",
    "integrations",
)
INTEGRATION_TYPES = ("wandb",)
WANDB_FIELDS = ("project", "entity", "name", "tags")
MAX_SUFFIX_CHARS = 64
SUFFIX_PATTERN = re.compile(r"[A-Za-z0-9_.-]*")
MAX_METADATA_KEYS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
# The documented bounds, shared with the pipeline's own check of its method setting.
HYPERPARAMETER_LIMITS = SUPERVISED_LIMITS
METHOD_HYPERPARAMETER_LIMITS = METHOD_LIMITS
# The most replies per validation prompt the local learner draws (the API documents no maximum).
LOCAL_MAX_EVAL_SAMPLES = 1000


def known_fields(body: dict[str, Any]) -> None:
    """400 unknown_parameter for a field the create request does not define."""
    for name in body:
        if name not in CREATE_FIELDS:
            raise UnknownParameter(name)


def integrations(value: Any) -> list[dict[str, Any]]:
    """Weights & Biases integrations, echoed in the job as OpenAI echoes them (nothing is sent)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest("'integrations' must be an array.", "integrations")
    echoed = []
    for index, item in enumerate(value):
        where = f"integrations[{index}]"
        if not isinstance(item, dict) or item.get("type") not in INTEGRATION_TYPES:
            raise InvalidRequest(f"Invalid value for '{where}.type': only 'wandb' is supported.", f"{where}.type")
        wandb = item.get("wandb")
        if not isinstance(wandb, dict) or not isinstance(wandb.get("project"), str) or not wandb["project"]:
            raise MissingRequiredParameter(f"{where}.wandb.project")
        unknown = set(wandb) - set(WANDB_FIELDS)
        if unknown:
            raise UnknownParameter(f"{where}.wandb.{sorted(unknown)[0]}")
        for name in ("entity", "name"):
            if wandb.get(name) is not None and not isinstance(wandb[name], str):
                raise InvalidRequest(f"'{where}.wandb.{name}' must be a string.", f"{where}.wandb.{name}")
        tags = wandb.get("tags")
        if tags is not None and (not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags)):
            raise InvalidRequest(f"'{where}.wandb.tags' must be an array of strings.", f"{where}.wandb.tags")
        echoed.append({"type": "wandb", "wandb": {name: wandb.get(name) for name in WANDB_FIELDS}})
    return echoed


def base_model(model: Any) -> str:
    """The dated snapshot a job trains: the catalog's, for a fine-tunable snapshot or alias."""
    if not isinstance(model, str) or not model:
        raise MissingRequiredParameter("model")
    entry = catalog_model(model)
    if entry is None or not entry.fine_tunable:
        raise ModelNotAvailable(model)
    return entry.snapshot  # as OpenAI does, a job trains (and reports) the dated snapshot


def _check_length(
    value: str, maximum: int, subject: str, param: str, error: type[OpenAIError], unit: str = "characters"
) -> None:
    if len(value) > maximum:
        raise error(f"{subject} is {len(value)} {unit}; the maximum is {maximum}.", param)


def suffix(value: Any) -> str | None:
    """The fine-tuned model name's suffix: at most 64 characters a model id can carry.

    The suffix becomes part of the model id (`ft:<base>:<org>:<suffix>:<id>`), which clients put
    in URL paths (`/v1/models/{model}`, deployments): ASCII letters, digits, '-', '_' and '.'
    only, as in OpenAI's own model ids; ':' would split the id, '/' a path, '..' climb it.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest("'suffix' must be a string.", "suffix")
    _check_length(value, MAX_SUFFIX_CHARS, "suffix", "suffix", InvalidSuffix, unit="characters long")
    if not SUFFIX_PATTERN.fullmatch(value) or ".." in value:
        raise InvalidSuffix(
            f"Invalid suffix {value[:80]!r}: it may contain only ASCII letters, digits, '-', '_' and '.' "
            "(no '..'), as model ids do.", "suffix",
        )
    return value or None


def metadata(value: Any) -> dict[str, str] | None:
    """Up to 16 string key/value pairs (keys up to 64 characters, values up to 512)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest("'metadata' must be an object of string keys and values.", "metadata")
    if len(value) > MAX_METADATA_KEYS:
        raise InvalidMetadata(f"metadata has {len(value)} keys; at most {MAX_METADATA_KEYS} are allowed.", "metadata")
    for key, item in value.items():
        if not isinstance(item, str):
            raise InvalidMetadata(f"metadata value for '{key}' must be a string.", f"metadata.{key}")
        _check_length(key, MAX_METADATA_KEY_CHARS, f"metadata key '{key[:20]}...'", "metadata", InvalidMetadata)
        _check_length(
            item, MAX_METADATA_VALUE_CHARS, f"metadata value for '{key}'", f"metadata.{key}", InvalidMetadata
        )
    return dict(value)


def seed(value: Any) -> int:
    """The training seed; a random one when none is given."""
    if value is None:
        return secrets.randbelow(2**31)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 2**31 - 1:
        raise InvalidRequest("'seed' must be an integer between 0 and 2147483647.", "seed")
    return value


def method(body: dict[str, Any], model: str) -> tuple[str, Any, str, dict[str, Any] | None]:
    """(method type, requested hyperparameters, their param name for errors, reinforcement grader).

    The model must take the method (catalog); a reinforcement job needs a grader in OpenAI's
    shape that this backend can compute (it refuses one it cannot rather than train on
    invented rewards).
    """
    value = body.get("method")
    if value is None:
        return "supervised", body.get("hyperparameters"), "hyperparameters", None
    if not isinstance(value, dict):
        raise InvalidRequest("'method' must be an object.", "method")
    method_type = value.get("type", "supervised")
    if method_type not in METHOD_HYPERPARAMETER_LIMITS:
        raise InvalidRequest(
            f"Invalid value for 'method.type': {method_type!r}; one of supervised, dpo, reinforcement.", "method.type"
        )
    unknown = set(value) - {"type", method_type}
    if unknown:
        raise UnknownParameter(f"method.{sorted(unknown)[0]}")
    problem = method_problem(model, method_type)
    if problem is not None:
        raise UnsupportedMethod(f"Model {model} does not support the {method_type} method: {problem}.", "method.type")
    settings = value.get(method_type) or {}
    if not isinstance(settings, dict):
        raise InvalidRequest(f"'method.{method_type}' must be an object.", f"method.{method_type}")
    allowed = {"hyperparameters", "grader"} if method_type == "reinforcement" else {"hyperparameters"}
    unknown = set(settings) - allowed
    if unknown:
        raise UnknownParameter(f"method.{method_type}.{sorted(unknown)[0]}")
    hyper = settings.get("hyperparameters")
    if hyper is None and method_type == "supervised":
        hyper = body.get("hyperparameters")
    elif body.get("hyperparameters") is not None:
        raise InvalidRequest(
            "'hyperparameters' is deprecated and only applies to supervised jobs: use method.{type}.hyperparameters.",
            "hyperparameters",
        )
    grader = _grader(settings.get("grader"), f"method.{method_type}.grader") if method_type == "reinforcement" else None
    return method_type, hyper, f"method.{method_type}.hyperparameters", grader


def _grader(value: Any, param: str) -> dict[str, Any]:
    if value is None:
        raise MissingRequiredParameter(param)
    try:
        validate_grader(value, param)
        run_grader(value, "", {})  # computable here? (a sample and an item of nothing)
    except UnsupportedGrader as exc:
        where = param + exc.param.removeprefix("grader")
        raise UnsupportedMethod(f"{exc.message} (the local backend cannot train on this grader)", where) from None
    except GraderError as exc:
        raise InvalidRequest(exc.message, exc.param) from None
    return value


def hyperparameters(hyper: Any, param: str, method_type: str = "supervised") -> dict[str, Any]:
    """Requested hyperparameters of the method, each a checked number or "auto" (resolved at validation)."""
    limits = METHOD_HYPERPARAMETER_LIMITS[method_type]
    if hyper is None:
        hyper = {}
    if not isinstance(hyper, dict):
        raise InvalidRequest(f"'{param}' must be an object.", param)
    known = set(limits) | ({"reasoning_effort"} if method_type == "reinforcement" else set())
    unknown = set(hyper) - known
    if unknown:
        raise InvalidRequest(f"Unknown hyperparameter(s) for {method_type}: {', '.join(sorted(unknown))}.", param)
    resolved: dict[str, Any] = {}
    if method_type == "reinforcement":
        resolved["reasoning_effort"] = _reasoning_effort(hyper.get("reasoning_effort"), f"{param}.reasoning_effort")
    for name, bound in limits.items():
        value = hyper.get(name, "auto")
        if value is None or value == "auto":
            resolved[name] = "auto"
            continue
        problem = hyperparameter_problem(name, value, bound)
        if problem is not None:
            raise InvalidHyperparameters(f"{problem}.", f"{param}.{name}")
        resolved[name] = int(value) if bound.kind is int else float(value)
    _honourable(resolved, param)
    return resolved


def _honourable(resolved: dict[str, Any], param: str) -> None:
    """The API sets no maximum for eval_samples; the local learner draws that many replies per validation
    prompt at once, so beyond LOCAL_MAX_EVAL_SAMPLES it refuses what it cannot honour rather than run out of memory."""
    samples = resolved.get("eval_samples")
    if isinstance(samples, int) and samples > LOCAL_MAX_EVAL_SAMPLES:
        raise UnsupportedMethod(
            f"eval_samples {samples} cannot be honoured by the local backend (at most {LOCAL_MAX_EVAL_SAMPLES}).",
            f"{param}.eval_samples",
        )


def _reasoning_effort(value: Any, param: str) -> str:
    """The local policy does not reason: only the default effort can be honoured."""
    if value is None or value == "default":
        return "default"
    if value not in REASONING_EFFORTS:
        raise InvalidHyperparameters(f"reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}.", param)
    raise UnsupportedMethod(
        f"reasoning_effort {value!r} cannot be honoured by the local backend (its models do not reason); "
        "use 'default'.", param,
    )
