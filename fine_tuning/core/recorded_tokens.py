"""The token counts a writer measured, recorded beside the file they describe. No Dagster.

Whoever writes a chat-format file counts its tokens on the way (`core.example_files.write_examples`)
and records them, with the file's sha256 and the counting method, in `<file>.tokens.json`
published together with the file. A later check of the same bytes need not encode them again:
`core.chat_files.validate_written_file` takes these counts for a file whose sha256 (computed by
its own pass over the file) and counting method match the record, and counts otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fine_tuning.core.tokens import TokenCount

TOKENS_SUFFIX = ".tokens.json"
_FORMAT = 1


def tokens_path(path: Path) -> Path:
    """Where the token record of `path` lives: beside it, `<name>.tokens.json`."""
    return path.with_name(path.name + TOKENS_SUFFIX)


@dataclass(frozen=True)
class RecordedTokens:
    """Per-example token counts of one file's exact bytes (sha256), and how they were counted."""

    sha256: str
    token_method: str
    counts: list[int]
    approximate_lines: frozenset[int] = frozenset()  # 1-based lines counted approximately

    def count(self, line: int) -> TokenCount:
        """The recorded count of a 1-based line (a line past the record counts 0: the sha256 then differs)."""
        if not 0 < line <= len(self.counts):
            return TokenCount(0, False)
        return TokenCount(self.counts[line - 1], line not in self.approximate_lines)

    def describes(self, sha256: str, examples: int, token_method: str) -> bool:
        """True when the record is of exactly these bytes, every example, counted this way."""
        return self.sha256 == sha256 and len(self.counts) == examples and self.token_method == token_method

    def to_json(self) -> bytes:
        """The record as it is stored."""
        return json.dumps({
            "format": _FORMAT, "sha256": self.sha256, "token_method": self.token_method,
            "examples": len(self.counts), "counts": self.counts, "approximate_lines": sorted(self.approximate_lines),
        }, separators=(",", ":")).encode("utf-8")


def read_recorded_tokens(path: Path) -> RecordedTokens | None:
    """The token record beside `path`, or None when there is none or it is not a whole record."""
    try:
        value: Any = json.loads(tokens_path(path).read_bytes())
        counts, approximate = value["counts"], value["approximate_lines"]
        valid = (
            value.get("format") == _FORMAT and isinstance(value["sha256"], str)
            and isinstance(value["token_method"], str) and isinstance(counts, list)
            and len(counts) == value["examples"] and isinstance(approximate, list)
            and all(type(n) is int and n >= 0 for n in counts) and all(type(n) is int for n in approximate)
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not valid:
        return None
    return RecordedTokens(value["sha256"], value["token_method"], counts, frozenset(approximate))
