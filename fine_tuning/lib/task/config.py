"""Per-task run configuration classes: a step's config class under the task's own run-config path,
with the defaults its `defs.yaml` sets.

Each class registers its path for the preflight (`lib.run_settings`), so a task's invalid
setting stops every step of the run that spends or replaces anything.
"""

from __future__ import annotations

import copy
from typing import Any, TypeVar

import pydantic

from fine_tuning.lib.run_settings import CheckedConfig, register_section

C = TypeVar("C", bound=CheckedConfig)
_MADE: dict[tuple[type, str, tuple[tuple[str, Any], ...]], type] = {}


def _class_name(base: type, run_config_path: str) -> str:
    op = run_config_path.split(".")[1] if run_config_path.count(".") >= 2 else run_config_path
    return f"{base.__name__}_{''.join(char if char.isalnum() else '_' for char in op)}"


def task_config(base: type[C], run_config_path: str, **defaults: Any) -> type[C]:
    """`base` checked under `run_config_path`, its fields defaulting to `defaults` (same class for same inputs)."""
    if run_config_path == base.run_config_path and not defaults:
        return base
    unknown = sorted(set(defaults) - set(base.model_fields))
    if unknown:
        raise ValueError(f"{base.__name__} has no field(s) {', '.join(unknown)}")
    key = (base, run_config_path, tuple(sorted((name, repr(value)) for name, value in defaults.items())))
    if key in _MADE:
        return _MADE[key]
    fields: dict[str, Any] = {}
    for name, value in defaults.items():
        info = copy.copy(base.model_fields[name])
        info.default, info.default_factory = value, None
        fields[name] = (base.model_fields[name].annotation, info)
    made = pydantic.create_model(  # type: ignore[call-overload]
        _class_name(base, run_config_path), __base__=base, __doc__=base.__doc__, __module__=base.__module__, **fields
    )
    register_section(made, run_config_path)
    _MADE[key] = made
    return made
