"""The fine-tuning file rules (supervised chat, DPO, reinforcement): one implementation, no Dagster.

Used by the blocking Dagster checks (lib/task/file_checks.py), the CLI
(`python -m fine_tuning.validate`) and the local backend (which fails a job on any file these
rules reject). The rules of one example, per method, are `core.example_rules` (sourced there
from OpenAI's fine-tuning, DPO, reinforcement and vision guides); the tokens each method bills
are `core.example_tokens`. This module reads the file: JSON and Unicode per line, token limits,
the "auto" epochs rule and billing tokens (OpenAI's cookbook "Data preparation and analysis for
chat model fine-tuning"), dated per-model prices, duplicates, and overlap between splits.

Every line is read once: the same pass checks the format, counts tokens and records the
identities (digests) the overlap and split checks compare. No JSON value makes it crash.
"""

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fine_tuning.core.catalog import (
    DEFAULT_BASE_MODEL,
    MIN_TRAINING_EXAMPLES,
    REINFORCEMENT_PRICE_PER_HOUR,
    auto_epochs,
    example_token_limit,
    resolve_model,
    takes_images,
    training_price_per_million,
)
from fine_tuning.core.chat_file_report import (
    ERROR_DESCRIPTIONS,
    FORMAT_ERROR_KINDS,
    TOKEN_ERROR_KINDS,
    WARNING_KINDS,
    FileReport,
)
from fine_tuning.core.example_rules import DPO, METHODS, REINFORCEMENT, SUPERVISED, TOP_LEVEL_KEYS, example_problems
from fine_tuning.core.example_tokens import example_tokens
from fine_tuning.core.recorded_tokens import RecordedTokens, read_recorded_tokens
from fine_tuning.core.tokens import TokenCount, TokenCounter, measure_example_tokens, token_counter

__all__ = [
    "ERROR_DESCRIPTIONS", "FORMAT_ERROR_KINDS", "TOKEN_ERROR_KINDS", "WARNING_KINDS", "MIN_VALIDATION_EXAMPLES",
    "FileReport", "OverlapReport", "content_digest", "find_overlap", "overlap_between", "validate_chat_file",
    "validate_chat_lines", "validate_written_file",
]

# OpenAI requires at least 10 training examples; a validation file only has to be non-empty.
MIN_VALIDATION_EXAMPLES = 1

# A \ud800-\udfff escape in the raw line: only then can the parsed value hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")

# Called with (line, example) for every example without a format error.
ExampleSink = Callable[[int, dict[str, Any]], None]
# Errors after which nothing else of the line can be read.
_UNREADABLE = ("data_type", "missing_messages_list", "missing_input")


def content_digest(text: str) -> int:
    """An identity of a text (e.g. a user message) to compare files without holding their text.

    Python's own string hash: identities are compared within one process only (a check reads
    both files and the test split itself), and 64 bits make a false match across 10^5 texts
    about a one-in-10^9 event, while a cryptographic digest cost a tenth of the pass.
    """
    return hash(text)


def line_digest(raw: bytes) -> int:
    """The identity of a whole example: its line without surrounding whitespace.

    The raw bytes rather than re-serialised JSON: re-serialising cost a tenth of the pass, and
    copies that differ only in key order still share their user message (the overlap check).
    """
    return hash(raw.strip())


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)  # NaN / Infinity are not JSON


def _parse(raw: bytes) -> tuple[Any, str | None, str]:
    """The JSON value of one line, or (None, error kind, what exactly is wrong)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, "invalid_json", f"not valid UTF-8 (byte {error.start})"
    if not text or text.isspace():
        return None, "invalid_json", "a blank line"  # an example OpenAI cannot read
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        return None, "invalid_json", "nested too deeply to be a chat example"
    except ValueError as error:
        return None, "invalid_json", f"not valid JSON ({getattr(error, 'msg', error)})"
    if (b"\\u" in raw and _SURROGATE_ESCAPE.search(raw)) and _has_lone_surrogate(value):
        return None, "invalid_unicode", "a lone surrogate escape"
    return value, None, ""


def _has_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    except RecursionError:  # as deep as the parser allowed: the other rules reject such a line anyway
        return False
    return False


def example_errors(example: Any, method: str = SUPERVISED, images_allowed: bool = False) -> list[str]:
    """The format error kinds of one parsed example, in rule order, without duplicates."""
    return [kind for kind, _ in example_problems(example, method, images_allowed)]


# Where a report's token counts come from (`FileReport.token_counts_source`).
COUNTED = "counted"
RECORDED = "recorded by the writer for these bytes (sha256)"

# Counts one example: (line, example, well-formed) -> its tokens.
_ExampleCount = Callable[[int, dict[str, Any], bool], TokenCount]


@dataclass
class _Pass:
    """State of one pass over a file: the report being filled and what the pass needs on the way.

    `count` gives each example's tokens: the counter's, or those a writer recorded for the line.
    """

    report: FileReport
    exact_counter: bool
    count: _ExampleCount
    on_example: ExampleSink | None = None
    method: str = SUPERVISED
    images_allowed: bool = False

    def line(self, number: int, raw: bytes) -> None:
        """Apply every rule to one line."""
        report = self.report
        report.examples += 1
        example, error, detail = _parse(raw)
        if error is not None:
            report.add_error(error, number, detail)
            return
        problems = example_problems(example, self.method, self.images_allowed)
        for kind, what in problems:
            report.add_error(kind, number, what)
        if problems and problems[0][0] in _UNREADABLE:
            return
        self._identities(number, raw, example)
        if problems and self.method != SUPERVISED:
            return  # a malformed preference or reinforcement line has no billable shape
        self._tokens(number, self.count(number, example, not problems))
        if not problems and self.on_example is not None:
            self.on_example(number, example)

    def _identities(self, number: int, raw: bytes, example: dict[str, Any]) -> None:
        report = self.report
        if self.method != REINFORCEMENT and not example.keys() <= TOP_LEVEL_KEYS[self.method]:
            report.add_warning("unknown_top_level_key", number)
        first = report.example_digests.setdefault(line_digest(raw), number)
        if first != number:
            report.add_warning("duplicate_example", number)
        users = report.user_digests
        for message in prompt_messages(example, self.method):
            if type(message) is dict and message.get("role") == "user" and type(content := message.get("content")) is str:
                users.setdefault(hash(content), number)  # content_digest, inlined: this runs per message

    def _tokens(self, number: int, counted: TokenCount) -> None:
        report = self.report
        report.token_counts.append(counted.tokens)
        report.billing_tokens += min(report.token_limit, counted.tokens)
        if self.exact_counter and not counted.exact:
            report.approximate_token_lines.append(number)
            report.tokens_exact = False
        if counted.tokens > report.token_limit:
            report.over_limit.append((number, counted.tokens))
            report.add_error("too_many_tokens", number, f"{counted.tokens} tokens, over the limit of {report.token_limit}")


def prompt_messages(example: dict[str, Any], method: str) -> list[Any]:
    """The messages of an example's prompt (DPO keeps them under `input`)."""
    if method == DPO:
        prompt = example.get("input")
        messages = prompt.get("messages") if isinstance(prompt, dict) else None
    else:
        messages = example.get("messages")
    return messages if isinstance(messages, list) else []


def example_counter(counter: TokenCounter, method: str) -> _ExampleCount:
    """Tokens of one example as `method` bills it; a malformed chat example is still sized by its messages."""
    def count(_line: int, example: dict[str, Any], well_formed: bool) -> TokenCount:
        if well_formed:
            return example_tokens(example, method, counter)
        return measure_example_tokens(example["messages"], counter)

    return count


def validate_chat_lines(
    lines: Iterable[tuple[int, bytes]],
    *,
    label: str,
    model: str = DEFAULT_BASE_MODEL,
    n_epochs: int | None = None,
    token_limit: int | None = None,
    min_examples: int = MIN_TRAINING_EXAMPLES,
    counter: TokenCounter | None = None,
    on_example: ExampleSink | None = None,
    recorded: RecordedTokens | None = None,
    method: str = SUPERVISED,
) -> FileReport:
    """Apply every rule of `method` to (line number, raw bytes) pairs; `label` names the file in the report.

    `token_limit` overrides the model's dated per-example limit (tests use a small one);
    `n_epochs=None` applies the cookbook's "auto" rule; `on_example` receives each well-formed
    example (the local backend trains on them). Image parts are accepted for models that take
    images (vision fine-tuning, supervised only). `recorded`: token counts taken by line
    instead of counted (a writer's record); the caller then must compare the sha256 of the bytes
    with the record's (`validate_written_file` does).
    """
    if method not in METHODS:
        raise ValueError(f"unknown fine-tuning method {method!r}; one of {', '.join(METHODS)}")
    counter = counter or token_counter()
    limit, known = (token_limit, True) if token_limit is not None else example_token_limit(model)
    report = FileReport(
        path=label,
        model=model,
        min_examples=min_examples,
        token_limit=limit,
        token_limit_known=known,
        tokens_exact=counter.exact,
        token_method=counter.method,
        price_per_million=training_price_per_million(model) if method != REINFORCEMENT else None,
        token_counts_source=RECORDED if recorded is not None else COUNTED,
        method=method,
        price_per_hour=REINFORCEMENT_PRICE_PER_HOUR.get(resolve_model(model)) if method == REINFORCEMENT else None,
    )
    count: _ExampleCount = (
        (lambda number, _example, _ok: recorded.count(number)) if recorded is not None
        else example_counter(counter, method)
    )
    one_pass = _Pass(report, counter.exact, count, on_example, method, method == SUPERVISED and takes_images(model))
    for number, raw in lines:
        one_pass.line(number, raw)
    if report.examples < min_examples:
        report.add_error("too_few_examples", None)
    report.n_epochs, report.epochs_rule = (
        (n_epochs, "explicit") if n_epochs is not None else (auto_epochs(report.examples), "auto")
    )
    return report


def _file_lines(path: Path, digest: Any) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            digest.update(raw)
            yield number, raw


def checked_path(path: str | os.PathLike[str]) -> Path:
    """The path of an existing regular file; FileNotFoundError / IsADirectoryError naming it otherwise."""
    file_path = Path(path)
    if file_path.is_dir():
        raise IsADirectoryError(f"fine-tuning file is a directory, not a file: {file_path}")
    if not file_path.is_file():
        raise FileNotFoundError(f"fine-tuning file not found: {file_path}")
    return file_path


def validate_chat_file(
    path: str | os.PathLike[str],
    model: str = DEFAULT_BASE_MODEL,
    *,
    n_epochs: int | None = None,
    token_limit: int | None = None,
    min_examples: int = MIN_TRAINING_EXAMPLES,
    counter: TokenCounter | None = None,
    recorded: RecordedTokens | None = None,
    method: str = SUPERVISED,
) -> FileReport:
    """Validate a fine-tuning JSONL file for `method` in one streaming pass (every line is one example).

    Raises FileNotFoundError when the file does not exist, IsADirectoryError for a directory.
    `recorded`: token counts to take instead of counting (see `validate_written_file`).
    """
    file_path = checked_path(path)
    digest = hashlib.sha256()
    report = validate_chat_lines(
        _file_lines(file_path, digest),
        label=str(file_path.resolve()),
        model=model,
        n_epochs=n_epochs,
        token_limit=token_limit,
        min_examples=min_examples,
        counter=counter,
        recorded=recorded,
        method=method,
    )
    report.sha256 = digest.hexdigest()
    return report


def validate_written_file(
    path: str | os.PathLike[str],
    model: str = DEFAULT_BASE_MODEL,
    *,
    n_epochs: int | None = None,
    token_limit: int | None = None,
    min_examples: int = MIN_TRAINING_EXAMPLES,
    counter: TokenCounter | None = None,
    method: str = SUPERVISED,
) -> FileReport:
    """`validate_chat_file` for a file whose writer recorded its token counts: those bytes are not encoded again.

    Every rule still reads every line; only the counts come from the record
    (`core.recorded_tokens`), and only when the sha256 of the bytes this pass read and the
    counting method are the record's. Otherwise (no record, another method, the file changed
    since, even while it was read) the file is validated again, counting its tokens.
    """
    counter = counter or token_counter()
    file_path = checked_path(path)
    recorded = read_recorded_tokens(file_path)
    options: dict[str, Any] = {"n_epochs": n_epochs, "token_limit": token_limit, "min_examples": min_examples,
                               "counter": counter, "method": method}
    if recorded is not None and recorded.token_method == counter.method:
        report = validate_chat_file(file_path, model, recorded=recorded, **options)
        if recorded.describes(report.sha256, report.examples, counter.method):
            return report
    return validate_chat_file(file_path, model, **options)


# ---------------------------------------------------------------------------------------------
# Overlap between splits
# ---------------------------------------------------------------------------------------------


@dataclass
class OverlapReport:
    """Examples and user messages that occur in both files (line numbers first file, second file)."""

    first_path: str
    second_path: str
    identical_examples: list[tuple[int, int]] = field(default_factory=list)
    shared_user_messages: list[tuple[int, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the files share neither an example nor a user message."""
        return not self.identical_examples and not self.shared_user_messages


def overlap_between(first: FileReport, second: FileReport) -> OverlapReport:
    """What two already validated files share (from the identities their pass recorded)."""
    report = OverlapReport(first.path, second.path)
    for digest, line in second.example_digests.items():
        if digest in first.example_digests:
            report.identical_examples.append((first.example_digests[digest], line))
    seen_lines: set[int] = set()
    for digest, line in second.user_digests.items():
        if digest in first.user_digests and line not in seen_lines:
            report.shared_user_messages.append((first.user_digests[digest], line))
            seen_lines.add(line)  # one pair per line of the second file
    report.identical_examples.sort(key=lambda pair: pair[1])
    report.shared_user_messages.sort(key=lambda pair: pair[1])
    return report


def find_overlap(first: str | os.PathLike[str], second: str | os.PathLike[str]) -> OverlapReport:
    """Identical examples and shared user messages between two JSONL files (e.g. train and validation)."""
    return overlap_between(validate_chat_file(first, min_examples=0), validate_chat_file(second, min_examples=0))
