"""The local backend stands on its own: a top-level package that imports only the pipeline's
Dagster-free core (never Dagster or the defs), in small modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import local_openai

PACKAGE = Path(local_openai.__file__).parent
ALLOWED = ("fine_tuning.core",)
MAX_MODULE_LINES = 400


def _imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_the_backend_imports_only_the_core_of_the_project() -> None:
    for path in PACKAGE.rglob("*.py"):
        for name in _imported_modules(path):
            top = name.split(".")[0]
            if top == "fine_tuning":
                assert name.startswith(ALLOWED), f"{path.relative_to(PACKAGE)} imports {name}"
            assert not top.startswith("dagster"), f"{path.relative_to(PACKAGE)} imports {name}"


def test_loading_the_backend_loads_no_dagster_definitions() -> None:
    code = (
        "import sys, local_openai.transport, local_openai.server;"
        "print(sorted(m for m in sys.modules if m.startswith(('fine_tuning.defs', 'fine_tuning.lib', 'dagster'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_no_module_is_over_the_size_limit() -> None:
    for path in PACKAGE.rglob("*.py"):
        assert len(path.read_text().splitlines()) <= MAX_MODULE_LINES, path.relative_to(PACKAGE)
