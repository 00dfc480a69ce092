"""The training and validation JSONL files: written from a split's rows, published together (no Dagster here).

The splits themselves are assigned in SQL by a task's `training_files` step; this module checks
the split configuration and sizes, turns each split's rows into the shared prompt format
(`core.prompts`), writes both files so that they are published together or not at all, and
measures them on the way.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from fine_tuning.core.markdown import markdown_table
from fine_tuning.core.prompts import Prompt, TrainingExampleLines
from fine_tuning.core.recorded_tokens import RecordedTokens, tokens_path
from fine_tuning.core.tokens import TokenCounter, count_example_tokens

SPLITS: tuple[str, ...] = ("train", "validation", "test")
TOKENS_RECORD = "+tokens"  # the name of a file's token record among publish_together's targets

# (user message, label) of one example
ExampleRow = tuple[str, str]


class SplitError(Exception):
    """The input tables cannot produce usable splits."""


@dataclass
class WrittenFile:
    """A JSONL file written from one split, with what was measured while writing it."""

    split: str
    path: Path
    examples: int = 0
    bytes: int = 0
    sha256: str = ""
    token_counts: list[int] = field(default_factory=list)
    # Lines (1-based) whose count is approximate: a text too long to encode exactly (see core.tokens).
    approximate_lines: list[int] = field(default_factory=list)


def check_fractions(validation_fraction: float, test_fraction: float) -> None:
    """SplitError unless some share of every category is left for training."""
    if validation_fraction + test_fraction >= 1.0:
        raise SplitError(
            f"validation_fraction + test_fraction = {validation_fraction + test_fraction} "
            "leaves nothing for training (must be < 1)"
        )


def check_sizes(sizes: Mapping[str, int], source: str = "the source") -> None:
    """SplitError when any split would be empty."""
    empty = [split for split, n in sizes.items() if n == 0]
    if empty:
        raise SplitError(
            f"split(s) {', '.join(empty)} would be empty (sizes {dict(sizes)}): {source} "
            "has too few labelled examples for these fractions/caps"
        )


def write_examples(
    rows: Iterable[ExampleRow],
    handle: IO[bytes],
    written: WrittenFile,
    prompt: Prompt,
    counter: TokenCounter,
) -> None:
    """Write one split's examples to `handle` as training examples, measuring as it goes.

    Only the user message differs between examples: it is the one text encoded as JSON and
    counted in tokens per example; the rest of each line and of its token count (the cookbook's
    count adds up per message) is computed once per answer.
    """
    lines = TrainingExampleLines(prompt)
    shared_tokens: dict[str, int] = {}
    digest = hashlib.sha256()
    for content, category in rows:
        data = (lines.line(content, category) + "\n").encode("utf-8")
        handle.write(data)
        digest.update(data)
        written.examples += 1
        written.bytes += len(data)
        # A free-form answer is as much its own as the user message: counted like it (the cookbook's
        # count adds up per message, so the shared part is the example with an empty answer).
        shared = "" if prompt.free_form else category
        if shared not in shared_tokens:
            shared_tokens[shared] = count_example_tokens(lines.messages("", shared), counter)
        counted = counter.measure_unique(content)  # every book's message is its own
        answer = counter.measure_unique(category) if prompt.free_form else None
        written.token_counts.append(shared_tokens[shared] + counted.tokens + (answer.tokens if answer else 0))
        if counter.exact and not (counted.exact and (answer is None or answer.exact)):
            written.approximate_lines.append(written.examples)
    written.sha256 = digest.hexdigest()


def _temp_file_beside(target: Path) -> IO[bytes]:
    """An open temp file in the target's folder, so that os.replace onto the target is atomic."""
    return tempfile.NamedTemporaryFile(
        "wb", dir=target.parent, prefix=f".{target.name}.", suffix=".tmp", delete=False
    )


def publish_together(targets: Mapping[str, Path], write: Callable[[str, IO[bytes]], None]) -> None:
    """Write every target through `write(name, handle)`, then publish them all, or none.

    Each file is written to a temp file beside its target and synced; only when all are complete
    do they replace their targets. After a failure no partial file is left behind and the
    previous files are untouched.
    """
    temps: dict[str, Path] = {}
    try:
        for name, target in targets.items():
            with _temp_file_beside(target) as handle:
                temps[name] = Path(handle.name)
                write(name, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temps[name], 0o644)  # temp files are created 0600; the published file is not secret
        for name, target in targets.items():
            os.replace(temps[name], target)
    finally:
        for temp in temps.values():  # after a failure: no partial file is left behind
            temp.unlink(missing_ok=True)


def publish_measured(
    targets: Mapping[str, Path], write: Callable[[str, IO[bytes]], None], written: Mapping[str, WrittenFile],
    token_method: str,
) -> None:
    """`publish_together` for the files and, beside each, the token counts measured while writing it.

    `write(name, handle)` fills `written[name]`; each file's record (its sha256 and counts,
    `core.recorded_tokens`) is written after it and published with it, all or nothing.
    """
    records = {f"{name}{TOKENS_RECORD}": tokens_path(path) for name, path in targets.items()}

    def write_file_or_record(name: str, handle: IO[bytes]) -> None:
        if name in targets:
            write(name, handle)
            return
        measured = written[name.removesuffix(TOKENS_RECORD)]
        handle.write(RecordedTokens(measured.sha256, token_method, measured.token_counts,
                                    frozenset(measured.approximate_lines)).to_json())

    publish_together({**targets, **records}, write_file_or_record)


def label_distribution(counts: Mapping[tuple[str, str], int], categories: Sequence[str]) -> str:
    """Markdown table: examples per category and split, from {(category, split): examples}."""
    rows: list[Sequence[object]] = [
        (category, *(counts.get((category, split), 0) for split in SPLITS)) for category in categories
    ]
    rows.append(("**total**", *(sum(n for (_, s), n in counts.items() if s == split) for split in SPLITS)))
    return markdown_table(("category", *SPLITS), rows, align="lrrr")
