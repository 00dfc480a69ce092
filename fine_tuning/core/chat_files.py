"""Validation of a chat-format fine-tuning JSONL file: pure functions, no Dagster.

Used by the blocking Dagster checks (defs/training_data/training_files_checks.py) and by the CLI
(`python -m fine_tuning.validate`). The rules follow OpenAI's cookbook "Data preparation and
analysis for chat model fine-tuning" (format errors, token counting, the "auto" epochs rule,
billing tokens) and add what the cookbook leaves out: role order, weights, blank content, invalid
JSON lines, dated per-model token limits and prices, and overlap between splits.
"""

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fine_tuning.core.catalog import (
    DEFAULT_BASE_MODEL,
    MIN_TRAINING_EXAMPLES,
    PRICING_AS_OF,
    TARGET_EPOCHS,
    TOKEN_LIMITS_AS_OF,
    auto_epochs,
    estimate_training_cost,
    example_token_limit,
    training_price_per_million,
)
from fine_tuning.core.markdown import markdown_table
from fine_tuning.core.tokens import TokenCounter, count_example_tokens, token_counter, token_stats

# OpenAI requires at least 10 training examples; a validation file only has to be non-empty.
MIN_VALIDATION_EXAMPLES = 1

# Cookbook chat format: recognised message keys and roles.
ALLOWED_MESSAGE_KEYS = frozenset({"role", "content", "name", "function_call", "weight"})
ALLOWED_ROLES = frozenset({"system", "user", "assistant", "function"})

# Error kinds. The format kinds make `validate` exit 1; `too_many_tokens` is the token check's.
FORMAT_ERROR_KINDS: tuple[str, ...] = (
    "invalid_json",
    "data_type",
    "missing_messages_list",
    "message_data_type",
    "message_missing_key",
    "message_unrecognized_key",
    "unrecognized_role",
    "missing_content",
    "empty_content",
    "invalid_weight",
    "roles_order",
    "example_missing_assistant_message",
    "too_few_examples",
)
TOKEN_ERROR_KINDS: tuple[str, ...] = ("too_many_tokens",)
ERROR_DESCRIPTIONS: dict[str, str] = {
    "invalid_json": "line is not a JSON value (or not UTF-8, or blank)",
    "data_type": "example is not a JSON object",
    "missing_messages_list": "no non-empty `messages` list",
    "message_data_type": "a message is not a JSON object",
    "message_missing_key": "a message lacks `role` or `content`",
    "message_unrecognized_key": "a message has a key other than role/content/name/function_call/weight",
    "unrecognized_role": "a role other than system/user/assistant/function",
    "missing_content": "a message has no content (or non-string content)",
    "empty_content": "a message's content is only whitespace",
    "invalid_weight": "`weight` not 0/1 or not on an assistant message",
    "roles_order": "roles not: optional system, then user/assistant alternating, ending with assistant",
    "example_missing_assistant_message": "no assistant message",
    "too_few_examples": "fewer examples than the minimum",
    "too_many_tokens": "example longer than the model's per-example token limit (would be truncated)",
}


# ---------------------------------------------------------------------------------------------
# The file report
# ---------------------------------------------------------------------------------------------


@dataclass
class FileReport:
    """Everything known about one chat-format JSONL file after a single streaming pass."""

    path: str
    model: str
    sha256: str = ""
    examples: int = 0
    min_examples: int = MIN_TRAINING_EXAMPLES
    error_counts: Counter[str] = field(default_factory=Counter)
    error_lines: dict[str, list[int]] = field(default_factory=dict)
    token_counts: list[int] = field(default_factory=list)
    over_limit: list[tuple[int, int]] = field(default_factory=list)  # (line, tokens)
    token_limit: int = 0
    token_limit_known: bool = True
    tokens_exact: bool = True
    token_method: str = ""
    n_epochs: int = TARGET_EPOCHS
    epochs_rule: str = "auto"
    billing_tokens: int = 0
    price_per_million: float | None = None
    pricing_as_of: str = PRICING_AS_OF

    def add_error(self, kind: str, line: int | None) -> None:
        """Record one offending example (line numbers are 1-based; None for file-level errors)."""
        lines = self.error_lines.setdefault(kind, [])
        if line is not None and lines and lines[-1] == line:
            return  # one count per example and kind
        self.error_counts[kind] += 1
        if line is not None:
            lines.append(line)

    @property
    def format_error_counts(self) -> dict[str, int]:
        """Format errors by kind (those that make the CLI exit 1 and the format check fail)."""
        return {k: self.error_counts[k] for k in FORMAT_ERROR_KINDS if self.error_counts[k]}

    @property
    def token_error_counts(self) -> dict[str, int]:
        """Token-limit errors by kind."""
        return {k: self.error_counts[k] for k in TOKEN_ERROR_KINDS if self.error_counts[k]}

    @property
    def has_format_errors(self) -> bool:
        """True when any format rule failed."""
        return bool(self.format_error_counts)

    @property
    def ok(self) -> bool:
        """True when the file has no error of any kind."""
        return not any(self.error_counts.values())

    @property
    def estimated_cost_usd(self) -> float | None:
        """billing tokens x epochs x price per 1M; None when the model's price is unknown."""
        return estimate_training_cost(self.billing_tokens, self.n_epochs, self.price_per_million)

    def token_stats(self) -> dict[str, float | int]:
        """Per-example token statistics and the file total."""
        return token_stats(self.token_counts)

    def first_lines(self, kinds: Iterable[str], limit: int = 10) -> list[int]:
        """The first offending line numbers across `kinds`."""
        lines = sorted({n for k in kinds for n in self.error_lines.get(k, [])})
        return lines[:limit]

    def errors_markdown(self, kinds: Iterable[str] | None = None, limit: int = 10) -> str:
        """A markdown table: kind, count, first line numbers, meaning."""
        wanted = [k for k in (kinds or FORMAT_ERROR_KINDS + TOKEN_ERROR_KINDS) if self.error_counts[k]]
        if not wanted:
            return "No errors."
        rows = []
        for kind in wanted:
            lines = ", ".join(str(n) for n in self.error_lines.get(kind, [])[:limit]) or "-"
            rows.append((kind, self.error_counts[kind], lines, ERROR_DESCRIPTIONS[kind]))
        return markdown_table(("kind", "examples", "first lines", "meaning"), rows, align="lrll")

    def text(self) -> str:
        """A human-readable report (what `python -m fine_tuning.validate` prints)."""
        stats = self.token_stats()
        lines = [
            f"File: {self.path}",
            f"sha256: {self.sha256}",
            f"Examples: {self.examples} (minimum {self.min_examples})",
            "",
            "Errors by kind:",
        ]
        if self.ok:
            lines.append("  none")
        for kind in FORMAT_ERROR_KINDS + TOKEN_ERROR_KINDS:
            if self.error_counts[kind]:
                shown = self.error_lines.get(kind, [])[:20]
                where = f" at lines {', '.join(map(str, shown))}" if shown else ""
                more = " ..." if len(self.error_lines.get(kind, [])) > len(shown) else ""
                lines.append(f"  {kind}: {self.error_counts[kind]}{where}{more}  ({ERROR_DESCRIPTIONS[kind]})")
        limit_note = "" if self.token_limit_known else " (model not in table: conservative default)"
        lines += [
            "",
            f"Tokens ({self.token_method}):",
            f"  per example: min {stats['tokens_min']}, mean {stats['tokens_mean']}, "
            f"p95 {stats['tokens_p95']}, max {stats['tokens_max']}",
            f"  total: {stats['total_tokens']}",
            f"  per-example limit for {self.model}: {self.token_limit}{limit_note} (as of {TOKEN_LIMITS_AS_OF})",
        ]
        for line, tokens in self.over_limit[:20]:
            lines.append(f"  line {line}: {tokens} tokens, would be truncated to {self.token_limit}")
        lines += ["", "Estimated training cost:"]
        lines.append(
            f"  billing tokens {self.billing_tokens} x {self.n_epochs} epochs ({self.epochs_rule})"
        )
        if self.price_per_million is None:
            lines.append(
                f"  price for {self.model} unknown (not in the table dated {self.pricing_as_of}): cost unknown"
            )
        else:
            lines.append(
                f"  x ${self.price_per_million:.2f} per 1M training tokens (prices as of {self.pricing_as_of})"
                f" = ${self.estimated_cost_usd:.4f}"
            )
        if not self.tokens_exact:
            lines.append("  (token counts are ESTIMATED; the cost is an estimate of an estimate)")
        return "\n".join(lines)


def _check_messages(report: FileReport, line: int, messages: list[Any]) -> None:
    roles: list[str] = []
    for message in messages:
        if not isinstance(message, dict):
            report.add_error("message_data_type", line)
            roles.append("?")
            continue
        if "role" not in message or "content" not in message:
            report.add_error("message_missing_key", line)
        if any(key not in ALLOWED_MESSAGE_KEYS for key in message):
            report.add_error("message_unrecognized_key", line)
        role = message.get("role")
        if role not in ALLOWED_ROLES:
            report.add_error("unrecognized_role", line)
        content = message.get("content")
        function_call = message.get("function_call")
        if (content is None or content == "") and not function_call or (
            content is not None and not isinstance(content, str)
        ):
            report.add_error("missing_content", line)
        elif isinstance(content, str) and content and not content.strip():
            report.add_error("empty_content", line)
        if "weight" in message:
            weight = message["weight"]
            if role != "assistant" or isinstance(weight, bool) or weight not in (0, 1):
                report.add_error("invalid_weight", line)
        roles.append(role if isinstance(role, str) else "?")
    if "assistant" not in roles:
        report.add_error("example_missing_assistant_message", line)
    if not _roles_in_order(roles):
        report.add_error("roles_order", line)


def _roles_in_order(roles: Sequence[str]) -> bool:
    """Optional system first, then user/assistant alternating from user, ending with assistant.

    A `function` message may answer an assistant message and is followed by the assistant again.
    """
    sequence = list(roles[1:] if roles and roles[0] == "system" else roles)
    expected = {"start": {"user"}, "user": {"assistant"}, "assistant": {"user", "function"}, "function": {"assistant"}}
    state = "start"
    for role in sequence:
        if role not in expected[state]:
            return False
        state = role
    return state == "assistant"


def _iter_lines(path: Path, digest: Any) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            digest.update(raw)
            yield number, raw


def validate_chat_file(
    path: str | os.PathLike[str],
    model: str = DEFAULT_BASE_MODEL,
    *,
    n_epochs: int | None = None,
    token_limit: int | None = None,
    min_examples: int = MIN_TRAINING_EXAMPLES,
    counter: TokenCounter | None = None,
) -> FileReport:
    """Validate a chat-format JSONL file in one streaming pass.

    Every line is one example. `token_limit` overrides the model's dated per-example limit
    (tests use a small one); `n_epochs=None` applies the cookbook's "auto" rule.
    Raises FileNotFoundError when the file does not exist.
    """
    file_path = Path(path)
    if not file_path.is_file():
        raise FileNotFoundError(f"fine-tuning file not found: {file_path}")
    counter = counter or token_counter()
    limit, known = (token_limit, True) if token_limit is not None else example_token_limit(model)
    report = FileReport(
        path=str(file_path.resolve()),
        model=model,
        min_examples=min_examples,
        token_limit=limit,
        token_limit_known=known,
        tokens_exact=counter.exact,
        token_method=counter.method,
        price_per_million=training_price_per_million(model),
    )
    digest = hashlib.sha256()
    for line, raw in _iter_lines(file_path, digest):
        report.examples += 1
        try:
            text = raw.decode("utf-8")
            if not text.strip():
                raise ValueError("blank line")
            example = json.loads(text)
        except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            report.add_error("invalid_json", line)
            continue
        if not isinstance(example, dict):
            report.add_error("data_type", line)
            continue
        messages = example.get("messages")
        if not messages or not isinstance(messages, list):
            report.add_error("missing_messages_list", line)
            continue
        _check_messages(report, line, messages)
        tokens = count_example_tokens(messages, counter)
        report.token_counts.append(tokens)
        report.billing_tokens += min(limit, tokens)
        if tokens > limit:
            report.over_limit.append((line, tokens))
            report.add_error("too_many_tokens", line)
    report.sha256 = digest.hexdigest()
    if report.examples < min_examples:
        report.add_error("too_few_examples", None)
    report.n_epochs, report.epochs_rule = (
        (n_epochs, "explicit") if n_epochs is not None else (auto_epochs(report.examples), "auto")
    )
    return report


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


def content_digest(text: str) -> bytes:
    """A short identity for a text (e.g. a user message), to compare files without holding their text."""
    return hashlib.sha1(text.encode("utf-8")).digest()  # identity only: 20 bytes per entry, not the text


def example_keys(path: Path) -> Iterator[tuple[int, bytes, list[bytes]]]:
    """(line, digest of the canonical example, digests of its user contents); unparsable lines skipped."""
    with path.open("rb") as handle:
        for line, raw in enumerate(handle, start=1):
            try:
                example = json.loads(raw)
            except (ValueError, RecursionError):
                continue
            if not isinstance(example, dict):
                continue
            canonical = content_digest(json.dumps(example, sort_keys=True, ensure_ascii=False))
            messages = example.get("messages")
            users = [
                content_digest(m["content"])
                for m in (messages if isinstance(messages, list) else [])
                if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str)
            ]
            yield line, canonical, users


def find_overlap(first: str | os.PathLike[str], second: str | os.PathLike[str]) -> OverlapReport:
    """Identical examples and shared user messages between two JSONL files (e.g. train and validation)."""
    first_path, second_path = Path(first), Path(second)
    for p in (first_path, second_path):
        if not p.is_file():
            raise FileNotFoundError(f"fine-tuning file not found: {p}")
    examples: dict[bytes, int] = {}
    users: dict[bytes, int] = {}
    for line, canonical, user_digests in example_keys(first_path):
        examples.setdefault(canonical, line)
        for digest in user_digests:
            users.setdefault(digest, line)
    report = OverlapReport(str(first_path.resolve()), str(second_path.resolve()))
    for line, canonical, user_digests in example_keys(second_path):
        if canonical in examples:
            report.identical_examples.append((examples[canonical], line))
        for digest in user_digests:
            if digest in users:
                report.shared_user_messages.append((users[digest], line))
                break
    return report

