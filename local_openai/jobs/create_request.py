"""The fields of a create-job request, each checked synchronously as OpenAI does (a 400 naming it)."""

from __future__ import annotations

import re

import secrets
from typing import Any

from fine_tuning.core.catalog import catalog_model
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
# name: (type, lowest, highest) of each hyperparameter a supervised job takes.
HYPERPARAMETER_LIMITS: dict[str, tuple[type, float, float]] = {
    "n_epochs": (int, 1, 50),
    "batch_size": (int, 1, 256),
    "learning_rate_multiplier": (float, 1e-6, 10.0),
}


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


def method(body: dict[str, Any]) -> tuple[str, Any, str]:
    """(method type, requested hyperparameters, their param name for errors)."""
    value = body.get("method")
    if value is None:
        return "supervised", body.get("hyperparameters"), "hyperparameters"
    if not isinstance(value, dict):
        raise InvalidRequest("'method' must be an object.", "method")
    method_type = value.get("type", "supervised")
    if method_type != "supervised":
        raise UnsupportedMethod(
            f"method.type '{method_type}' is not supported by the local backend (only 'supervised').", "method.type"
        )
    supervised = value.get("supervised") or {}
    if not isinstance(supervised, dict):
        raise InvalidRequest("'method.supervised' must be an object.", "method.supervised")
    hyper = supervised.get("hyperparameters")
    if hyper is None:
        hyper = body.get("hyperparameters")
    return "supervised", hyper, "method.supervised.hyperparameters"


def hyperparameters(hyper: Any, param: str) -> dict[str, Any]:
    """Requested hyperparameters, each a checked number or "auto" (resolved at validation)."""
    if hyper is None:
        hyper = {}
    if not isinstance(hyper, dict):
        raise InvalidRequest(f"'{param}' must be an object.", param)
    unknown = set(hyper) - set(HYPERPARAMETER_LIMITS)
    if unknown:
        raise InvalidRequest(f"Unknown hyperparameter(s): {', '.join(sorted(unknown))}.", param)
    resolved: dict[str, Any] = {}
    for name, (kind, low, high) in HYPERPARAMETER_LIMITS.items():
        value = hyper.get(name, "auto")
        if value is None or value == "auto":
            resolved[name] = "auto"
            continue
        number_ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        # Range first: float() of a huge int would overflow instead of being a 400.
        if not number_ok or not low <= value <= high or (kind is int and not float(value).is_integer()):
            raise InvalidHyperparameters(
                f"{name} must be 'auto' or a number between {low:g} and {high:g} (got {value!r}).", f"{param}.{name}"
            )
        resolved[name] = int(value) if kind is int else float(value)
    return resolved
