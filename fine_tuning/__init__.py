"""Goodreads -> DuckDB -> OpenAI fine-tuning, as a Dagster code location.

`dagster ... -m fine_tuning` loads this package, so its code location is named `fine_tuning` as
in workspace.yaml, `[tool.dagster]`, `[tool.dg.project]` and the UI: schedule and sensor state set
from the CLI is the state the daemon reads (`-m fine_tuning.definitions` would name the location
`fine_tuning.definitions`). The Definitions are imported on first use only (PEP 562), so the
Dagster-free parts (fine_tuning.core, the local backend) never pull in Dagster.
"""

from typing import Any

# Not `defs`: that name is the defs folder's package (fine_tuning.defs) once it is imported.
LAZY_DEFINITIONS = "code_location"


def __getattr__(name: str) -> Any:
    if name == LAZY_DEFINITIONS:
        from fine_tuning.definitions import defs

        return defs
    raise AttributeError(f"module 'fine_tuning' has no attribute {name!r}")


def __dir__() -> list[str]:
    # Dagster's module loader finds Definitions through dir(): list the lazy attribute too.
    return sorted([*globals(), LAZY_DEFINITIONS])
