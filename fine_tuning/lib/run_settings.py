"""Every setting of a run checked before anything is replaced, uploaded or trained.

Each run configuration class (op/check config and the `tuning` resource) derives from
`CheckedConfig` or `CheckedResource` and names its run-config path (`run_config_path`). Its bounds
are pydantic `Field` constraints (ge/gt/le/max_length/pattern) and its rules between fields are
model validators raising `SettingsError` with both names. Deriving registers the class: the
preflight (`require_valid_run_settings`) validates every registered section of a run's config at
once, so a step that overwrites tables or spends money refuses to start when *any* setting of
the run is invalid, not only its own. Rules spanning several sections register with
`@cross_section_rule`.

Why a preflight as well as the bounds: Dagster's config schema knows types, not pydantic
constraints; it builds an op's config object only when that step starts. Bounds alone would
fail `poll_interval_seconds: 0` at `fine_tuned_model`, after both uploads.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import annotated_types
import dagster as dg
import pydantic
from pydantic import ConfigDict, model_validator
from pydantic.fields import FieldInfo

from fine_tuning.core.providers import PROVIDER_ENV, provider_problem


@dataclass(frozen=True)
class SettingProblem:
    """One invalid setting: its run-config path, the value given and what is allowed."""

    path: str
    value: Any
    allowed: str

    def text(self) -> str:
        """`path = value: allowed ...`, the line users read."""
        return f"{self.path} = {self.value!r}: {self.allowed}"


class SettingsError(dg.Failure):
    """Settings that make no sense; the step fails before it changes or spends anything."""

    def __init__(self, problems: Iterable[SettingProblem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"- {problem.text()}" for problem in self.problems)
        super().__init__(
            description=f"Invalid run settings; stopped before replacing, uploading or training anything:\n{lines}",
            metadata={"invalid_settings": dg.MetadataValue.json([
                {"setting": p.path, "value": _jsonable(p.value), "allowed": p.allowed} for p in self.problems
            ])},
            allow_retries=False,
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value if isinstance(value, str | int | float | bool | type(None) | list | dict) else repr(value)


# run-config path ("ops.<op>.config" / "resources.<key>.config") -> the class validating it
_SECTIONS: dict[str, type[pydantic.BaseModel]] = {}
_CROSS_RULES: list[Callable[[Mapping[str, Any]], list[SettingProblem]]] = []


def allowed_values(field: FieldInfo) -> str:
    """The allowed range of a field, from its constraints: e.g. 'allowed: >= 1 and <= 50 (or null)'."""
    unit = "items" if "list" in str(field.annotation) else "characters"
    parts, lengths = [], {}
    for constraint in field.metadata:
        if isinstance(constraint, annotated_types.Ge):
            parts.append(f">= {constraint.ge}")
        elif isinstance(constraint, annotated_types.Gt):
            parts.append(f"> {constraint.gt}")
        elif isinstance(constraint, annotated_types.Le):
            parts.append(f"<= {constraint.le}")
        elif isinstance(constraint, annotated_types.Lt):
            parts.append(f"< {constraint.lt}")
        elif isinstance(constraint, annotated_types.MinLen):
            lengths["min"] = constraint.min_length
        elif isinstance(constraint, annotated_types.MaxLen):
            lengths["max"] = constraint.max_length
        elif getattr(constraint, "pattern", None):
            parts.append(f"matching {constraint.pattern}")
    if lengths:
        parts.insert(0, f"{lengths.get('min', 0)} to {lengths['max']} {unit}" if "max" in lengths
                     else f"at least {lengths['min']} {unit}")
    allowed = " and ".join(parts) or "a valid value"
    if "None" in str(field.annotation):
        allowed += " (or null)"
    return "allowed: " + allowed


# pydantic error types that only restate the range `allowed_values` already spells out
_RANGE_ERRORS = frozenset({
    "greater_than", "greater_than_equal", "less_than", "less_than_equal", "string_too_short",
    "string_too_long", "too_short", "too_long", "string_pattern_mismatch",
})


def _problems_of(cls: type[pydantic.BaseModel], path: str, error: pydantic.ValidationError) -> list[SettingProblem]:
    problems = []
    for detail in error.errors(include_url=False):
        field_name = str(detail["loc"][0]) if detail["loc"] else ""
        field = cls.model_fields.get(field_name)
        allowed = allowed_values(field) if field is not None else ""
        reason = allowed if allowed and detail["type"] in _RANGE_ERRORS else "; ".join(filter(None, [detail["msg"], allowed]))
        problems.append(SettingProblem(f"{path}.{field_name}" if field_name else path, detail.get("input"), reason))
    return problems


class _Checked:
    """What both base classes share: the path, registration and clean errors."""

    run_config_path: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("run_config_path"):
            _SECTIONS[cls.run_config_path] = cls  # type: ignore[assignment]

    @model_validator(mode="wrap")
    @classmethod
    def _settings_error(cls, data: Any, handler: Callable[[Any], Any]) -> Any:
        # A bound violated anywhere becomes one clean failure naming path, value and range.
        try:
            return handler(data)
        except pydantic.ValidationError as error:
            raise SettingsError(_problems_of(cls, cls.run_config_path or cls.__name__, error)) from None

    @classmethod
    def setting(cls, field_name: str) -> str:
        """The run-config path of one field, for messages about rules between fields."""
        return f"{cls.run_config_path}.{field_name}"


class CheckedConfig(_Checked, dg.Config):
    """Base of op and check configs: bounds and rules checked, and checked before the run spends."""

    model_config = ConfigDict(allow_inf_nan=False)


class CheckedResource(_Checked, dg.ConfigurableResource):
    """Base of configurable resources whose settings are part of the preflight."""

    model_config = ConfigDict(allow_inf_nan=False)


def register_section(cls: type[pydantic.BaseModel], run_config_path: str) -> None:
    """Check `cls` under `run_config_path` in the preflight (classes made at load time, one per task)."""
    cls.run_config_path = run_config_path  # type: ignore[attr-defined]
    _SECTIONS[run_config_path] = cls


def cross_section_rule(rule: Callable[[Mapping[str, Any]], list[SettingProblem]]) -> Callable[..., Any]:
    """Register a rule over several sections; it receives the validated sections by path."""
    _CROSS_RULES.append(rule)
    return rule


def registered_sections() -> dict[str, type[pydantic.BaseModel]]:
    """Run-config path -> configuration class, for every class imported so far."""
    return dict(_SECTIONS)


def _section(run_config: Mapping[str, Any], path: str) -> Mapping[str, Any] | None:
    node: Any = run_config
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, Mapping) else None


def _resolved(value: Any) -> Any:
    """Run config may name an environment variable ({"env": NAME}); the value is what counts."""
    if isinstance(value, Mapping):
        if set(value) == {"env"}:
            return os.environ.get(str(value["env"]))
        return {key: _resolved(item) for key, item in value.items()}
    return value


def check_run_config(run_config: Mapping[str, Any]) -> list[SettingProblem]:
    """Every problem of every registered section present in `run_config` (absent ones use defaults)."""
    problems: list[SettingProblem] = []
    validated: dict[str, Any] = {}
    for path, cls in sorted(_SECTIONS.items()):
        section = _section(run_config, path)
        if section is None:
            continue
        try:
            validated[path] = cls(**_resolved(section))
        except SettingsError as error:
            problems.extend(error.problems)
    for rule in _CROSS_RULES:
        problems.extend(rule(validated))
    return problems


# The folder prefix of the instance `dagster job execute`, `dagster asset materialize` and so
# `dg launch` make up when no DAGSTER_HOME is set (deleted when the command exits).
TEMPORARY_HOME_PREFIX = ".tmp_dagster_home_"
_warned_runs: set[str] = set()


def throwaway_instance(instance: dg.DagsterInstance) -> str | None:
    """Where a throw-away instance lives (an ephemeral one, or the CLI's temporary DAGSTER_HOME), else None."""
    if instance.is_ephemeral:
        return "in memory"
    root = instance.root_directory
    return root if os.path.basename(root).startswith(TEMPORARY_HOME_PREFIX) else None


def warn_if_throwaway_instance(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> None:
    """Say once per run, in its log, that what it records will not outlive the command."""
    where = throwaway_instance(context.instance)
    if where is None or context.run.run_id in _warned_runs:
        return
    _warned_runs.add(context.run.run_id)
    context.log.warning(
        f"This run is on a throw-away Dagster instance ({where}): its runs, materializations and "
        "production model are gone when the command exits, and the next run finds nothing to reuse. "
        "Run from the checkout after `make setup` (its .env names the project's instance) or set DAGSTER_HOME."
    )


def require_valid_run_settings(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> None:
    """Raise `SettingsError` when any setting of this run is invalid (call first in steps that write or spend);
    warn when the run's instance is a throw-away one."""
    warn_if_throwaway_instance(context)
    problems = check_run_config(context.run.run_config or {})
    # No provider chosen: every writing step refuses, so the run touches nothing (core.providers).
    unchosen = provider_problem()
    if unchosen:
        problems.append(SettingProblem(PROVIDER_ENV, os.environ.get(PROVIDER_ENV), unchosen))
    if problems:
        raise SettingsError(problems)
