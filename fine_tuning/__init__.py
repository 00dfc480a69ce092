"""Goodreads (or any DuckDB table) -> DuckDB -> OpenAI fine-tuning, as a Dagster code location.

`dagster ... -m fine_tuning` loads this package, so its code location is named `fine_tuning` as
in workspace.yaml, `[tool.dagster]`, `[tool.dg.project]` and the UI: schedule and sensor state set
from the CLI is the state the daemon reads (`-m fine_tuning.definitions` would name the location
`fine_tuning.definitions`). `fine_tuning.FineTuningTask` is the component a task's `defs.yaml`
names (`type: fine_tuning.FineTuningTask`). Both are imported on first use only (PEP 562), so the
Dagster-free parts (fine_tuning.core, the local backend) never pull in Dagster.
"""

import sys
from typing import Any

# Not `defs`: that name is the defs folder's package (fine_tuning.defs) once it is imported.
LAZY_DEFINITIONS = "code_location"
COMPONENT = "FineTuningTask"


def __getattr__(name: str) -> Any:
    if name == LAZY_DEFINITIONS:
        building = sys.modules.get("fine_tuning.definitions")
        if building is not None and not hasattr(building, "defs"):
            # Asked while the definitions are being built: Dagster's component loader scans this
            # package (the `dg` registry module) for component types, and they are not ready yet.
            return None
        from fine_tuning.definitions import defs

        return defs
    if name == COMPONENT:
        from fine_tuning.lib.task.component import FineTuningTask

        return FineTuningTask
    raise AttributeError(f"module 'fine_tuning' has no attribute {name!r}")


def __dir__() -> list[str]:
    # Dagster's module loader finds Definitions, and `dg list components` the component, through dir().
    return sorted([*globals(), LAZY_DEFINITIONS, COMPONENT])
