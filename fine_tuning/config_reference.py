"""`python -m fine_tuning.config_reference [--check]`: the run-config reference in README.md.

The table is rendered from `fine_tuning_job`'s own run-config schema (the one the launchpad
shows), so it names every field of every op and of the `tuning` resource wherever the code
defines them, with the type, default and description the config classes declare. A second
table gives every other task's sections, read from that task's own job: the same config classes
under the op names its key prefix gives (`ops.<name>__fine_tuned_model.config`) and its own
tuning resource (`resources.<name>_tuning.config`). Both are written into README.md between two
markers; `--check` exits 1 when the README is stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import dagster as dg
from pydantic_core import PydanticUndefined

from fine_tuning.core.settings import PROJECT_ROOT
from fine_tuning.lib.facts import ConfigField, ConfigType, ConfigTypeKind

JOB_NAME = "fine_tuning_job"
README = PROJECT_ROOT / "README.md"
START_MARKER = "<!-- config-reference:start -->"
END_MARKER = "<!-- config-reference:end -->"
# The other resources (duckdb, openai, io_manager) are built from environment variables: their
# run-config defaults are this machine's paths, so they belong in the environment table instead.
DOCUMENTED_RESOURCES = ("tuning",)
_SCALAR_NAMES = {"Int": "int", "Float": "float", "String": "str", "Bool": "bool"}
_SHAPES = (ConfigTypeKind.STRICT_SHAPE, ConfigTypeKind.PERMISSIVE_SHAPE)


@dataclass(frozen=True)
class ConfigRow:
    """One leaf of the run config: where it goes, what it takes, what it is by default."""

    path: str
    type_name: str
    default: str
    description: str


def type_label(config_type: ConfigType) -> str:
    """A short, readable name for a config type (`int or null`, `list of str`, `online | batch`)."""
    kind = config_type.kind
    if kind == ConfigTypeKind.NONEABLE:
        return f"{type_label(config_type.inner_type)} or null"  # type: ignore[attr-defined]
    if kind == ConfigTypeKind.ARRAY:
        return f"list of {type_label(config_type.inner_type)}"  # type: ignore[attr-defined]
    if kind == ConfigTypeKind.ENUM:
        return " \\| ".join(f"`{value.config_value}`" for value in config_type.enum_values)  # type: ignore[attr-defined]
    if kind == ConfigTypeKind.ANY:
        return "any"
    name = (config_type.given_name or config_type.key).removesuffix("SourceType")  # IntSourceType: int or {env: ...}
    return _SCALAR_NAMES.get(name, name)


def default_label(field: ConfigField, fallback: object = PydanticUndefined) -> str:
    """The default as a reader would type it in YAML; `(required)` when there is none."""
    if field.default_provided:
        value = field.default_value
    elif fallback is not PydanticUndefined:
        value = fallback
    elif field.is_required:
        return "(required)"
    else:
        value = None
    return f"`{json.dumps(value)}`"


@dataclass(frozen=True)
class ClassFacts:
    """What the pydantic config class says and the schema does not: true nullability (Dagster
    makes every field with a default accept null) and defaults computed by a default_factory."""

    known: bool
    nullable: frozenset[str]
    computed_defaults: dict[str, object]

    @classmethod
    def of(cls, config_class: type | None) -> ClassFacts:
        """Facts of a Config / ConfigurableResource class; empty when the class is unknown."""
        fields = getattr(config_class, "model_fields", {})
        return cls(
            known=bool(fields),
            nullable=frozenset(name for name, info in fields.items() if type(None) in get_args(info.annotation)),
            computed_defaults={
                name: info.default_factory() for name, info in fields.items() if info.default_factory is not None
            },
        )


def _op_config_class(op_def: dg.OpDefinition) -> type | None:
    """The Config class an op's (or asset's) function takes, if it takes one."""
    compute_fn = op_def.compute_fn
    # A multi-asset check takes no config yet has an (empty) config shape: ask before fetching.
    if not getattr(compute_fn, "has_config_arg", lambda: False)():
        return None
    return getattr(compute_fn.get_config_arg(), "annotation", None)


def _field_type_label(name: str, field: ConfigField, facts: ClassFacts) -> str:
    """The field's type, `or null` only when the class really accepts None."""
    config_type = field.config_type
    if config_type.kind == ConfigTypeKind.NONEABLE and facts.known and name not in facts.nullable:
        config_type = config_type.inner_type  # type: ignore[attr-defined]
    return type_label(config_type)


def _leaf_rows(prefix: str, config_type: ConfigType, facts: ClassFacts) -> Iterator[ConfigRow]:
    """Rows for every leaf under a shape, depth first, in the order the code declares them."""
    for name, field in config_type.fields.items():  # type: ignore[attr-defined]
        path = f"{prefix}.{name}"
        if field.config_type.kind in _SHAPES:
            yield from _leaf_rows(path, field.config_type, ClassFacts.of(None))
            continue
        description = " ".join((field.description or "").split()).replace("|", "\\|")
        default = default_label(field, facts.computed_defaults.get(name, PydanticUndefined))
        yield ConfigRow(path, _field_type_label(name, field, facts), default, description)


def _config_shape(section: ConfigType, name: str) -> ConfigType | None:
    """The `config` shape of one op or resource, or None when it takes no config."""
    config_field = section.fields[name].config_type.fields.get("config")  # type: ignore[attr-defined]
    if config_field is None or config_field.config_type.kind not in _SHAPES:
        return None
    return config_field.config_type


def config_rows(job: dg.JobDefinition, documented_resources: tuple[str, ...] = DOCUMENTED_RESOURCES) -> list[ConfigRow]:
    """Every configurable field of the job's ops and documented resources, sorted by path."""
    root = job.run_config_schema.config_type
    rows: list[ConfigRow] = []
    ops = root.fields["ops"].config_type  # type: ignore[attr-defined]
    for op_name in ops.fields:
        shape = _config_shape(ops, op_name)
        if shape is not None:
            facts = ClassFacts.of(_op_config_class(job.graph.node_named(op_name).definition))
            rows.extend(_leaf_rows(f"ops.{op_name}.config", shape, facts))
    resources = root.fields["resources"].config_type  # type: ignore[attr-defined]
    for resource_name in documented_resources:
        shape = _config_shape(resources, resource_name)
        if shape is not None:
            resource_class = getattr(job.resource_defs[resource_name], "configurable_resource_cls", None)
            rows.extend(_leaf_rows(f"resources.{resource_name}.config", shape, ClassFacts.of(resource_class)))
    # Sections sort by path; fields keep their declared order inside a section.
    return sorted(rows, key=lambda row: row.path.rsplit(".", 1)[0])


def render_table(rows: list[ConfigRow]) -> str:
    """The markdown table written between the README markers."""
    lines = [
        "| run config path | type | default | description |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{row.path}` | {row.type_name} | {row.default} | {row.description} |" for row in rows]
    return "\n".join(lines)


def task_sections(job: dg.JobDefinition, tuning_resource: str) -> list[str]:
    """The run-config sections (`ops.<op>.config`, `resources.<key>.config`) of a task's job, in table order."""
    return list(dict.fromkeys(row.path.rsplit(".", 1)[0] for row in config_rows(job, (tuning_resource,))))


def render_task_table(defs: dg.Definitions) -> str:
    """One row per task other than Goodreads: its job and where its settings go."""
    from fine_tuning.lib.task.instances import GOODREADS, project_tasks

    lines = [
        "| task | job | run config sections (the fields of the Goodreads rows above; defaults from the task's `defs.yaml`) |",
        "|---|---|---|",
    ]
    for name, task in sorted(project_tasks().items()):
        if name != GOODREADS:
            job_name = task.job_name_or_default()
            sections = task_sections(defs.resolve_job_def(job_name), task.keys.tuning_resource)
            lines.append(f"| `{name}` | `{job_name}` | {', '.join(f'`{section}`' for section in sections)} |")
    return "\n".join(lines)


def rendered_reference() -> str:
    """The reference for the code location as it is loaded now: the Goodreads job's fields, then every other task's sections."""
    from fine_tuning.definitions import defs

    return render_table(config_rows(defs.resolve_job_def(JOB_NAME))) + "\n\n" + render_task_table(defs)


def replace_between_markers(text: str, body: str) -> str:
    """`text` with everything between the two markers replaced by `body`."""
    start, end = text.find(START_MARKER), text.find(END_MARKER)
    if start < 0 or end < start:
        raise ValueError(f"README has no {START_MARKER} ... {END_MARKER} block")
    head = text[: start + len(START_MARKER)]
    return f"{head}\n{body}\n{text[end:]}"


def main(argv: list[str] | None = None) -> int:
    """Write the reference into the README, or with --check report whether it is current."""
    parser = argparse.ArgumentParser(prog="python -m fine_tuning.config_reference", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the README's reference is stale")
    parser.add_argument("--readme", type=Path, default=README, help="the file holding the markers (default: README.md)")
    args = parser.parse_args(argv)
    current = args.readme.read_text(encoding="utf-8")
    updated = replace_between_markers(current, rendered_reference())
    if args.check:
        if updated != current:
            print(f"{args.readme} config reference is stale: run python -m fine_tuning.config_reference", file=sys.stderr)
            return 1
        print(f"{args.readme} config reference is current")
        return 0
    if updated != current:
        args.readme.write_text(updated, encoding="utf-8")
        print(f"updated the config reference in {args.readme}")
    else:
        print(f"{args.readme} config reference already current")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
