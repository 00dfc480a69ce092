"""The tasks the project defines: every `defs.yaml` under fine_tuning/defs/ whose type is FineTuningTask.

For the CLIs (`python -m fine_tuning.current_model --task NAME`) and tests, which need a task's
keys or definitions without loading the whole code location.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import dagster as dg
import yaml

from fine_tuning.lib.task.component import FineTuningTask

DEFS_DIR = Path(__file__).resolve().parents[2] / "defs"
TYPE_NAMES = ("fine_tuning.FineTuningTask", "fine_tuning.lib.task.component.FineTuningTask")
GOODREADS = "goodreads"


def task_files(defs_dir: Path = DEFS_DIR) -> list[Path]:
    """Every `defs.yaml` of a FineTuningTask, sorted by path."""
    found = []
    for path in sorted(defs_dir.glob("**/defs.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if document.get("type") in TYPE_NAMES:
            found.append(path)
    return found


def load_task(path: Path) -> FineTuningTask:
    """The task a `defs.yaml` defines (attributes resolved as `dg` resolves them, env templates included)."""
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    task = FineTuningTask.resolve_from_yaml(yaml.safe_dump(document.get("attributes") or {}))
    task._defs_file = str(path)
    return task


@cache
def project_tasks() -> dict[str, FineTuningTask]:
    """The project's tasks by name."""
    return {task.name: task for task in map(load_task, task_files())}


def task_named(name: str) -> FineTuningTask:
    """The project's task `name` (KeyError naming the tasks there are)."""
    tasks = project_tasks()
    if name not in tasks:
        raise KeyError(f"no task named {name!r}; the tasks are: {', '.join(sorted(tasks))}")
    return tasks[name]


def task_definitions(name: str) -> dg.Definitions:
    """The definitions one task builds (its chain, job, schedule, sensor, resources), for tests."""
    return task_named(name).definitions()


def task_steps(name: str) -> dict[str, dg.AssetsDefinition | dg.AssetChecksDefinition]:
    """One task's assets by asset key (`a/b`) and its checks by op name, to run steps on their own."""
    definitions = task_definitions(name)
    steps: dict[str, dg.AssetsDefinition | dg.AssetChecksDefinition] = {}
    for assets_def in definitions.assets or []:
        for key in assets_def.keys:  # type: ignore[union-attr]
            steps[key.to_user_string()] = assets_def  # type: ignore[assignment]
    for check in definitions.asset_checks or []:
        steps[check.node_def.name] = check
    return steps
