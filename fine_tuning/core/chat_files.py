"""The chat-format fine-tuning file rules: one implementation, no Dagster.

Used by the blocking Dagster checks (defs/training_data/training_files_checks.py), the CLI
(`python -m fine_tuning.validate`) and the local backend (which fails a job on any file these
rules reject). The rules follow OpenAI's cookbook "Data preparation and analysis for chat model
fine-tuning" (format errors, token counting, the "auto" epochs rule, billing tokens) and add what
the cookbook leaves out: role order, weights, names, blank content, invalid JSON and Unicode,
dated per-model token limits and prices, duplicates, and overlap between splits.

Every line is read once: the same pass checks the format, counts tokens and records the
identities (digests) the overlap and split checks compare. No JSON value makes it crash.
"""

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fine_tuning.core.catalog import (
    DEFAULT_BASE_MODEL,
    MIN_TRAINING_EXAMPLES,
    auto_epochs,
    example_token_limit,
    training_price_per_million,
)
from fine_tuning.core.chat_file_report import (
    ERROR_DESCRIPTIONS,
    FORMAT_ERROR_KINDS,
    TOKEN_ERROR_KINDS,
    WARNING_KINDS,
    FileReport,
)
from fine_tuning.core.recorded_tokens import RecordedTokens, read_recorded_tokens
from fine_tuning.core.tokens import TokenCount, TokenCounter, measure_example_tokens, token_counter

__all__ = [
    "ERROR_DESCRIPTIONS", "FORMAT_ERROR_KINDS", "TOKEN_ERROR_KINDS", "WARNING_KINDS", "MIN_VALIDATION_EXAMPLES",
    "FileReport", "OverlapReport", "content_digest", "find_overlap", "overlap_between", "validate_chat_file",
    "validate_chat_lines", "validate_written_file",
]

# OpenAI requires at least 10 training examples; a validation file only has to be non-empty.
MIN_VALIDATION_EXAMPLES = 1

# Cookbook chat format: recognised message keys, roles and top-level keys.
ALLOWED_MESSAGE_KEYS = frozenset({"role", "content", "name", "function_call", "weight"})
ALLOWED_ROLES = frozenset({"system", "user", "assistant", "function"})
_PLAIN_ROLES = frozenset({"system", "user", "assistant"})
KNOWN_TOP_LEVEL_KEYS = frozenset({"messages", "tools", "functions", "parallel_tool_calls"})
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# A \ud800-\udfff escape in the raw line: only then can the parsed value hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_ROLE_FOLLOWERS = {"start": {"user"}, "user": {"assistant"}, "assistant": {"user", "function"}, "function": {"assistant"}}

# Called with (line, messages) for every example without a format error.
ExampleSink = Callable[[int, list[dict[str, Any]]], None]


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


def _plain_roles(messages: list[Any]) -> list[str] | None:
    """The roles when every message is the common case, decided fast: exactly a system, user or
    assistant role and non-blank text content (nothing else to check); else None."""
    roles = []
    for message in messages:
        if type(message) is not dict or len(message) != 2:
            return None
        role, content = message.get("role"), message.get("content")
        if type(role) is not str or role not in _PLAIN_ROLES or type(content) is not str or not content or content.isspace():
            return None
        roles.append(role)
    return roles


def _message_errors(message: Any) -> Iterator[str]:
    """The format errors of one message (never raises, whatever the JSON value)."""
    if not isinstance(message, dict):
        yield "message_data_type"
        return
    if "role" not in message or "content" not in message:
        yield "message_missing_key"
    if any(key not in ALLOWED_MESSAGE_KEYS for key in message):
        yield "message_unrecognized_key"
    role = message.get("role")
    if not isinstance(role, str) or role not in ALLOWED_ROLES:
        yield "unrecognized_role"
    content = message.get("content")
    if (content is None or content == "") and not message.get("function_call") or (
        content is not None and not isinstance(content, str)
    ):
        yield "missing_content"
    elif isinstance(content, str) and content and not content.strip():
        yield "empty_content"
    if "name" in message and not (isinstance(message["name"], str) and _NAME.fullmatch(message["name"])):
        yield "invalid_name"
    if "weight" in message:
        weight = message["weight"]
        if role != "assistant" or isinstance(weight, bool) or not isinstance(weight, int | float) or weight not in (0, 1):
            yield "invalid_weight"


def _roles_in_order(roles: Sequence[str]) -> bool:
    """Optional system first, then user/assistant alternating from user, ending with assistant.

    A `function` message may answer an assistant message and is followed by the assistant again.
    """
    state = "start"
    for role in roles[1:] if roles and roles[0] == "system" else roles:
        if role not in _ROLE_FOLLOWERS[state]:
            return False
        state = role
    return state == "assistant"


def example_errors(example: Any) -> list[str]:
    """The format errors of one parsed example, in rule order, without duplicates."""
    if not isinstance(example, dict):
        return ["data_type"]
    messages = example.get("messages")
    if not messages or not isinstance(messages, list):
        return ["missing_messages_list"]
    found: list[str] = []
    roles = _plain_roles(messages)
    if roles is None:  # not the common case: walk every rule of every message
        for message in messages:
            found.extend(kind for kind in _message_errors(message) if kind not in found)
        roles = [m["role"] if isinstance(m, dict) and isinstance(m.get("role"), str) else "?" for m in messages]
    if "assistant" not in roles:
        found.append("example_missing_assistant_message")
    if not _roles_in_order(roles):
        found.append("roles_order")
    return found


# Where a report's token counts come from (`FileReport.token_counts_source`).
COUNTED = "counted"
RECORDED = "recorded by the writer for these bytes (sha256)"

# Counts one example: (line, messages) -> its tokens.
_ExampleCount = Callable[[int, list[Any]], TokenCount]


@dataclass
class _Pass:
    """State of one pass over a file: the report being filled and what the pass needs on the way.

    `count` gives each example's tokens: the counter's, or those a writer recorded for the line.
    """

    report: FileReport
    exact_counter: bool
    count: _ExampleCount
    on_example: ExampleSink | None = None

    def line(self, number: int, raw: bytes) -> None:
        """Apply every rule to one line."""
        report = self.report
        report.examples += 1
        example, error, detail = _parse(raw)
        if error is not None:
            report.add_error(error, number, detail)
            return
        errors = example_errors(example)
        for kind in errors:
            report.add_error(kind, number)
        if errors and errors[0] in ("data_type", "missing_messages_list"):
            return
        self._identities(number, raw, example)
        self._tokens(number, self.count(number, example["messages"]))
        if not errors and self.on_example is not None:
            self.on_example(number, example["messages"])

    def _identities(self, number: int, raw: bytes, example: dict[str, Any]) -> None:
        report = self.report
        if not example.keys() <= KNOWN_TOP_LEVEL_KEYS:
            report.add_warning("unknown_top_level_key", number)
        first = report.example_digests.setdefault(line_digest(raw), number)
        if first != number:
            report.add_warning("duplicate_example", number)
        users = report.user_digests
        for message in example["messages"]:
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
) -> FileReport:
    """Apply every rule to (line number, raw bytes) pairs; `label` names the file in the report.

    `token_limit` overrides the model's dated per-example limit (tests use a small one);
    `n_epochs=None` applies the cookbook's "auto" rule; `on_example` receives each well-formed
    example's messages (the local backend trains on them). `recorded`: token counts taken by line
    instead of counted (a writer's record); the caller then must compare the sha256 of the bytes
    with the record's (`validate_written_file` does).
    """
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
        price_per_million=training_price_per_million(model),
        token_counts_source=RECORDED if recorded is not None else COUNTED,
    )
    count: _ExampleCount = (
        (lambda number, _: recorded.count(number)) if recorded is not None
        else (lambda _, messages: measure_example_tokens(messages, counter))
    )
    one_pass = _Pass(report, counter.exact, count, on_example)
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
) -> FileReport:
    """Validate a chat-format JSONL file in one streaming pass (every line is one example).

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
                               "counter": counter}
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
