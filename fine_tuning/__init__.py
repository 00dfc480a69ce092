"""Goodreads (or any DuckDB table) -> OpenAI fine-tuning, as a Dagster code location.

`fine_tuning.FineTuningTask` is the component a task's `defs.yaml` names (`type:
fine_tuning.FineTuningTask`). It is imported lazily: `local_openai` imports the Dagster-free
`fine_tuning.core`, and importing this package must not import Dagster.
"""

from typing import Any

__all__ = ["FineTuningTask"]


def __getattr__(name: str) -> Any:
    if name == "FineTuningTask":
        from fine_tuning.lib.task.component import FineTuningTask

        return FineTuningTask
    raise AttributeError(f"module 'fine_tuning' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "FineTuningTask"])
