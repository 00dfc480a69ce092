"""`dg scaffold defs fine_tuning.FineTuningTask <path>`: a `defs.yaml` with every attribute present,
commented with its description and set to its default, so filling in the source, the two
columns and the prompt is all a new task needs. Written from the component's own fields, so it
never goes stale."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

# What a new task must fill in: placeholders that say so (the name comes from the folder).
FILL_IN: dict[str, Any] = {
    "source.table": "my_table",
    "id_column": "id",
    "label_column": "label",
    "prompt.system": "Classify each row.",
    "prompt.user_template": "{text}",
}
# Fields whose YAML name differs from the Python one (a field named `model` would hide Resolvable.model()).
YAML_NAMES = {"base_model": "model"}


def _value(value: Any) -> str:
    """A YAML scalar or flow collection (JSON is valid YAML)."""
    return json.dumps(value, ensure_ascii=False)


def _description(name: str, info: FieldInfo) -> str:
    if info.description:
        return info.description
    for meta in getattr(info, "metadata", []):  # the Resolver of `model` carries its description
        if getattr(meta, "description", None):
            return str(meta.description)
    return ""


def _default(info: FieldInfo) -> Any:
    if info.default_factory is not None:
        made = info.default_factory()  # type: ignore[call-arg]
        return made.model_dump() if isinstance(made, BaseModel) else made
    return None if info.default is PydanticUndefined else info.default


def _nested_model(info: FieldInfo) -> type[BaseModel] | None:
    annotation = info.annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def attribute_lines(model: type[BaseModel], indent: int, path: str, values: dict[str, Any]) -> list[str]:
    """Commented YAML lines for every field of `model` (nested models as nested mappings)."""
    pad = "  " * indent
    lines: list[str] = []
    for name, info in model.model_fields.items():
        key = YAML_NAMES.get(name, name)
        where = f"{path}{key}"
        for text in _wrap(_description(name, info)):
            lines.append(f"{pad}# {text}")
        nested = _nested_model(info)
        if nested is not None:
            lines.append(f"{pad}{key}:")
            lines += attribute_lines(nested, indent + 1, f"{where}.", values)
            continue
        if where in values:
            lines.append(f"{pad}{key}: {_value(values[where])}  # FILL IN")
        else:
            lines.append(f"{pad}{key}: {_value(_default(info))}")
    return lines


def _wrap(text: str, width: int = 96) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines


def task_yaml(name: str, type_name: str = "fine_tuning.FineTuningTask") -> str:
    """The scaffolded defs.yaml of a task called `name`."""
    from fine_tuning.lib.task.component import FineTuningTask

    values = {**FILL_IN, "name": name, "source.table": name}
    header = [
        f"# A {type_name}: {(FineTuningTask.__doc__ or '').strip().splitlines()[0]}",
        "# Fill in the lines marked FILL IN (the source table, its id and label columns, the prompt;",
        "# for free-form answers, `answers: free_form` and the answer column as label_column);",
        "# every other attribute has a working default. `dg check defs` checks this file.",
        f"type: {type_name}",
        "",
        "attributes:",
    ]
    body = attribute_lines(FineTuningTask, 1, "", values)
    body = [line.replace(f"name: {_value(name)}  # FILL IN", f"name: {_value(name)}") for line in body]
    return "\n".join(header + body) + "\n"


def task_name(target: Path) -> str:
    """A valid task name from the scaffolded folder's name."""
    name = re.sub(r"[^a-z0-9_]", "_", target.name.lower()).strip("_") or "task"
    return name if name[0].isalpha() else f"task_{name}"


class FineTuningTaskScaffolder(dg.Scaffolder):
    """Writes the commented, defaulted defs.yaml of a new task."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        """Create the folder and its defs.yaml (the task is named after the folder)."""
        request.target_path.mkdir(parents=True, exist_ok=True)
        (request.target_path / "defs.yaml").write_text(
            task_yaml(task_name(request.target_path), request.type_name), encoding="utf-8"
        )
