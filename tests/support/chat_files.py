"""Chat-format JSONL builders shared by the chat-file, token, file-check and validate-CLI tests."""

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fine_tuning.core.prompts import training_example

CATEGORIES = ["fantasy", "horror", "humor"]

SYSTEM = {"role": "system", "content": "Classify."}
USER = {"role": "user", "content": "A book."}
ASSISTANT = {"role": "assistant", "content": '{"category":"horror"}'}


def good_example(n: int, description: str = "Story number") -> dict[str, Any]:
    """A valid example, distinct per n: its description is f"{description} {n}."."""
    return training_example(f"Book {n}", "Someone", f"{description} {n}.", CATEGORIES[n % 3], CATEGORIES)


def write_jsonl(path: Path, lines: Sequence[Any]) -> Path:
    """Objects become JSON lines; str and bytes are written as given (for broken lines)."""
    with path.open("wb") as handle:
        for line in lines:
            if isinstance(line, bytes):
                handle.write(line + b"\n")
            elif isinstance(line, str):
                handle.write(line.encode("utf-8") + b"\n")
            else:
                handle.write(json.dumps(line, ensure_ascii=False).encode("utf-8") + b"\n")
    return path


def with_bad_line(tmp_path: Path, bad: Any, at: int = 5, total: int = 12) -> Path:
    """A file of `total` good examples where line `at` is replaced by `bad`."""
    lines: list[Any] = [good_example(n) for n in range(total)]
    lines[at - 1] = bad
    return write_jsonl(tmp_path / "data.jsonl", lines)
