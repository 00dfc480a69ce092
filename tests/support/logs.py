"""A log for direct calls of the pipeline's Dagster-free steps (they take anything with
info / warning / error, as `context.log` has)."""

from __future__ import annotations


class RecordingLog:
    """Keeps every line it is told, with its level."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, message: str) -> None:
        self.lines.append(("info", message))

    def warning(self, message: str) -> None:
        self.lines.append(("warning", message))

    def error(self, message: str) -> None:
        self.lines.append(("error", message))

    def messages(self) -> list[str]:
        """What it was told, in order, whatever the level."""
        return [message for _, message in self.lines]
