"""A copy of the project in a temporary folder, for tests that add or break a task's defs.yaml the
way a user would (the checkout itself is never touched): `dg` and `python -m` run in the copy,
which shadows the installed package through PYTHONPATH."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.support.project import REPO, VENV_BIN

COPIED = ("fine_tuning", "pyproject.toml", "dagster.yaml", "workspace.yaml", "data/sample")


def copy_project(target: Path) -> Path:
    """The project's package, configuration and shipped sample under `target`."""
    for name in COPIED:
        source, destination = REPO / name, target / name
        if source.is_dir():
            shutil.copytree(source, destination, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, destination)
    return target


def run_in(project: Path, *args: str, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """A command from the venv's bin (`dg`, `python`, `dagster`) run in the copied project."""
    environment = {
        **os.environ, "VIRTUAL_ENV": str(VENV_BIN.parent), "PYTHONPATH": str(project),
        "FINE_TUNING_PROVIDER": "local", **(env or {}),
    }
    environment.pop("OPENAI_API_KEY", None)
    command = [str(VENV_BIN / args[0]), *args[1:]]
    return subprocess.run(command, cwd=project, env=environment, capture_output=True, text=True, timeout=timeout)
