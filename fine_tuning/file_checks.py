"""Checks on chat-format fine-tuning files: pure functions for the CLI plus blocking Dagster checks.

The rules follow OpenAI's cookbook "Data preparation and analysis for chat model fine-tuning"
(format errors, token counting, the "auto" epochs rule, billing tokens) and add what the cookbook
leaves out: role order, weights, blank content, invalid JSON lines, dated per-model token limits
and prices, and overlap between splits.
"""


import functools
import hashlib
import json
import math
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_duckdb import DuckDBResource

from fine_tuning.prompts import user_message
from fine_tuning.settings import DEFAULT_BASE_MODEL, files_dir
from fine_tuning.tuning import TuningSettings

# ---------------------------------------------------------------------------------------------
# Dated tables. Providers change these: update the numbers *and* the dates together.
# ---------------------------------------------------------------------------------------------

PRICING_AS_OF = "2025-06-01"
# USD per 1M training tokens (supervised fine-tuning), OpenAI pricing page as of PRICING_AS_OF.
TRAINING_PRICE_PER_MILLION_TOKENS: dict[str, float] = {
    "gpt-4o-mini-2024-07-18": 3.00,
    "gpt-4o-2024-08-06": 25.00,
    "gpt-4.1-2025-04-14": 25.00,
    "gpt-4.1-mini-2025-04-14": 5.00,
    "gpt-4.1-nano-2025-04-14": 1.50,
    "gpt-3.5-turbo-0125": 8.00,
}

TOKEN_LIMITS_AS_OF = "2025-06-01"
# Longest training example (tokens) per model, OpenAI fine-tuning guide as of TOKEN_LIMITS_AS_OF.
EXAMPLE_TOKEN_LIMITS: dict[str, int] = {
    "gpt-4o-mini-2024-07-18": 65_536,
    "gpt-4o-2024-08-06": 65_536,
    "gpt-4.1-2025-04-14": 65_536,
    "gpt-4.1-mini-2025-04-14": 65_536,
    "gpt-4.1-nano-2025-04-14": 65_536,
    "gpt-3.5-turbo-0125": 16_385,
}
# Unknown models get the smallest limit we know of, so a check never passes on a guess that is too big.
UNKNOWN_MODEL_TOKEN_LIMIT = min(EXAMPLE_TOKEN_LIMITS.values())

# Undated aliases the API accepts, pinned to the snapshot they pointed at on PRICING_AS_OF.
MODEL_ALIASES: dict[str, str] = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "gpt-3.5-turbo": "gpt-3.5-turbo-0125",
}

# OpenAI cookbook's "auto" epochs rule.
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25

# OpenAI requires at least 10 training examples; a validation file only has to be non-empty.
MIN_TRAINING_EXAMPLES = 10
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

_READ_CHUNK = 1 << 20

# ---------------------------------------------------------------------------------------------
# Token counting
# ---------------------------------------------------------------------------------------------

O200K_BASE_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
O200K_BASE_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
ESTIMATE_BYTES_PER_TOKEN = 3


@dataclass(frozen=True)
class TokenCounter:
    """Counts tokens of a text: exactly with o200k_base, or a labelled estimate without it."""

    exact: bool
    method: str
    _count: Callable[[str], int] = field(repr=False, compare=False)

    def count(self, text: str) -> int:
        """Number of tokens in `text`."""
        return self._count(text)


def _estimate_tokens(text: str) -> int:
    # ~4 bytes per token for English with o200k_base; 3 errs on the high side so that
    # limits and budgets are not passed on an underestimate.
    return math.ceil(len(text.encode("utf-8")) / ESTIMATE_BYTES_PER_TOKEN)


ESTIMATED_COUNTER = TokenCounter(
    exact=False,
    method=f"estimate: ceil(UTF-8 bytes / {ESTIMATE_BYTES_PER_TOKEN}) (o200k_base not available)",
    _count=_estimate_tokens,
)


def tiktoken_cache_file() -> Path | None:
    """Where tiktoken would look for o200k_base (same rules as tiktoken.load), or None when caching is off."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        cache_dir = os.environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in os.environ:
        cache_dir = os.environ["DATA_GYM_CACHE_DIR"]
    else:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if not cache_dir:
        return None
    return Path(cache_dir) / hashlib.sha1(O200K_BASE_URL.encode()).hexdigest()


def token_counter() -> TokenCounter:
    """The o200k_base counter when its file is cached and intact, else the labelled estimate.

    Never touches the network: tiktoken downloads the encoding when the cache file is missing
    and deletes-then-downloads it when its hash is wrong, so both cases are decided here first.
    """
    cache_file = tiktoken_cache_file()
    try:
        stat = cache_file.stat() if cache_file is not None else None
    except OSError:
        stat = None
    if cache_file is None or stat is None:
        return ESTIMATED_COUNTER
    return _load_o200k(str(cache_file), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _load_o200k(cache_file: str, _mtime_ns: int, _size: int) -> TokenCounter:
    try:
        if _file_sha256(Path(cache_file)) != O200K_BASE_SHA256:
            return ESTIMATED_COUNTER
        import tiktoken

        encoding = tiktoken.get_encoding("o200k_base")
    except Exception:  # noqa: BLE001 - any failure to load means "estimate", never a crash
        return ESTIMATED_COUNTER
    # encode_ordinary: text such as "<|endoftext|>" in a description is just text here.
    return TokenCounter(
        exact=True,
        method="exact: tiktoken o200k_base",
        _count=lambda text: len(encoding.encode_ordinary(text)),
    )


def count_example_tokens(messages: Sequence[Any], counter: TokenCounter) -> int:
    """Tokens of one chat example, counted as the cookbook does (3 per message, 1 per name, 3 to prime)."""
    total = 3
    for message in messages:
        total += 3
        if not isinstance(message, Mapping):
            continue
        for key, value in message.items():
            if key == "weight":
                continue
            if isinstance(value, str):
                total += counter.count(value)
            elif value is not None:
                total += counter.count(json.dumps(value, ensure_ascii=False))
            if key == "name":
                total += 1
    return total


def token_stats(counts: Sequence[int]) -> dict[str, float | int]:
    """min / mean / p95 / max / total of per-example token counts (zeros for no examples)."""
    if not counts:
        return {"tokens_min": 0, "tokens_mean": 0.0, "tokens_p95": 0, "tokens_max": 0, "total_tokens": 0}
    ordered = sorted(counts)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]  # nearest-rank
    total = sum(ordered)
    return {
        "tokens_min": ordered[0],
        "tokens_mean": round(total / len(ordered), 1),
        "tokens_p95": p95,
        "tokens_max": ordered[-1],
        "total_tokens": total,
    }


# ---------------------------------------------------------------------------------------------
# Models, epochs, prices
# ---------------------------------------------------------------------------------------------


def resolve_model(model: str) -> str:
    """The dated snapshot a model name trains on: aliases pinned, `ft:BASE:...` continues BASE."""
    name = model.strip()
    if name.startswith("ft:"):
        name = name.split(":")[1]  # ft:{base}:{org}:{suffix}:{id}: continued training is priced as the base
    return MODEL_ALIASES.get(name, name)


def example_token_limit(model: str) -> tuple[int, bool]:
    """(per-example token limit, whether the model is in the dated table)."""
    snapshot = resolve_model(model)
    if snapshot in EXAMPLE_TOKEN_LIMITS:
        return EXAMPLE_TOKEN_LIMITS[snapshot], True
    return UNKNOWN_MODEL_TOKEN_LIMIT, False


def training_price_per_million(model: str) -> float | None:
    """USD per 1M training tokens as of PRICING_AS_OF, or None when the model is not in the table."""
    return TRAINING_PRICE_PER_MILLION_TOKENS.get(resolve_model(model))


def auto_epochs(n_examples: int) -> int:
    """The epochs OpenAI picks for n_epochs="auto" (cookbook rule)."""
    if n_examples <= 0:
        return TARGET_EPOCHS
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_examples)
    if n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return TARGET_EPOCHS


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
        if self.price_per_million is None:
            return None
        return round(self.billing_tokens * self.n_epochs * self.price_per_million / 1_000_000, 4)

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
        rows = ["| kind | examples | first lines | meaning |", "|---|---:|---|---|"]
        for kind in wanted:
            lines = ", ".join(str(n) for n in self.error_lines.get(kind, [])[:limit]) or "-"
            rows.append(f"| {kind} | {self.error_counts[kind]} | {lines} | {ERROR_DESCRIPTIONS[kind]} |")
        return "\n".join(rows)

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


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    return _file_sha256(Path(path))


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
        except (UnicodeDecodeError, ValueError):
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


def _digest(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8")).digest()  # identity only: 20 bytes per entry, not the text


def _example_keys(path: Path) -> Iterator[tuple[int, bytes | None, list[bytes]]]:
    """(line, digest of the canonical example, digests of its user contents); unparsable lines skipped."""
    with path.open("rb") as handle:
        for line, raw in enumerate(handle, start=1):
            try:
                example = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(example, dict):
                continue
            canonical = _digest(json.dumps(example, sort_keys=True, ensure_ascii=False))
            messages = example.get("messages")
            users = [
                _digest(m["content"])
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
    for line, canonical, user_digests in _example_keys(first_path):
        examples.setdefault(canonical, line)
        for digest in user_digests:
            users.setdefault(digest, line)
    report = OverlapReport(str(first_path.resolve()), str(second_path.resolve()))
    for line, canonical, user_digests in _example_keys(second_path):
        if canonical in examples:
            report.identical_examples.append((examples[canonical], line))
        for digest in user_digests:
            if digest in users:
                report.shared_user_messages.append((users[digest], line))
                break
    return report


# ---------------------------------------------------------------------------------------------
# Dagster checks
# ---------------------------------------------------------------------------------------------

TRAINING_FILE_NAME = "training.jsonl"
VALIDATION_FILE_NAME = "validation.jsonl"
TRAINING_KEY = dg.AssetKey("training_file")
VALIDATION_KEY = dg.AssetKey("validation_file")
_FILE_NAMES = {TRAINING_KEY: TRAINING_FILE_NAME, VALIDATION_KEY: VALIDATION_FILE_NAME}
_FIRST_LINES = 10


@dataclass
class _CheckedFile:
    path: Path
    materialized_sha256: str | None
    materialized_path: str | None
    problem: str | None  # why the file cannot be checked at all


def _checked_file(context: dg.AssetCheckExecutionContext, key: dg.AssetKey) -> _CheckedFile:
    """The file at its deterministic path, plus what the latest materialization recorded."""
    path = files_dir() / _FILE_NAMES[key]
    event = context.instance.get_latest_materialization_event(key)
    metadata = event.asset_materialization.metadata if event and event.asset_materialization else {}
    sha = metadata.get("sha256")
    recorded_path = metadata.get("path")
    problem = None if path.is_file() else f"{path} does not exist: materialize {key.to_user_string()} first"
    return _CheckedFile(
        path=path,
        materialized_sha256=str(sha.value) if sha is not None else None,
        materialized_path=str(recorded_path.value) if recorded_path is not None else None,
        problem=problem,
    )


# Each file is read once per (content, model, epochs) even though several checks look at it.
_REPORT_CACHE: dict[tuple[Any, ...], FileReport] = {}


def _report_for(checked: _CheckedFile, tuning: TuningSettings, min_examples: int) -> FileReport:
    counter = token_counter()
    key = (str(checked.path), file_sha256(checked.path), tuning.base_model, tuning.n_epochs, min_examples, counter.method)
    if key not in _REPORT_CACHE:
        if len(_REPORT_CACHE) >= 8:
            _REPORT_CACHE.pop(next(iter(_REPORT_CACHE)))
        _REPORT_CACHE[key] = validate_chat_file(
            checked.path, tuning.base_model, n_epochs=tuning.n_epochs, min_examples=min_examples, counter=counter
        )
    return _REPORT_CACHE[key]


def _missing_file_result(key: dg.AssetKey, checked: _CheckedFile) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=key,
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        description=checked.problem,
        metadata={"path": str(checked.path)},
    )


def _common_metadata(report: FileReport, checked: _CheckedFile) -> dict[str, Any]:
    stats = report.token_stats()
    return {
        "path": report.path,
        "sha256": report.sha256,
        "materialized_sha256": checked.materialized_sha256 or "none recorded",
        "examples": report.examples,
        **stats,
        "tokens_exact": report.tokens_exact,
        "token_method": report.token_method,
        "estimated_cost_usd": report.estimated_cost_usd if report.estimated_cost_usd is not None else "unknown",
    }


def _sha_mismatch(checked: _CheckedFile, report: FileReport) -> str | None:
    if checked.materialized_sha256 and checked.materialized_sha256 != report.sha256:
        return (
            f"{report.path} changed since it was materialized "
            f"(sha256 {report.sha256[:12]} != recorded {checked.materialized_sha256[:12]})"
        )
    return None


def _format_check(
    context: dg.AssetCheckExecutionContext, tuning: TuningSettings, key: dg.AssetKey, min_examples: int
) -> dg.AssetCheckResult:
    checked = _checked_file(context, key)
    if checked.problem:
        return _missing_file_result(key, checked)
    report = _report_for(checked, tuning, min_examples)
    mismatch = _sha_mismatch(checked, report)
    counts = report.format_error_counts
    passed = not counts and mismatch is None
    problems = [f"{sum(counts.values())} format error(s): {', '.join(counts)}"] if counts else []
    if mismatch:
        problems.append(mismatch)
    return dg.AssetCheckResult(
        asset_key=key,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(problems) or f"{report.examples} examples, all well-formed",
        metadata={
            **_common_metadata(report, checked),
            "errors_by_kind": dg.MetadataValue.md(report.errors_markdown(FORMAT_ERROR_KINDS)),
            "format_errors": sum(counts.values()),
            "min_examples": min_examples,
            "first_offending_lines": str(report.first_lines(FORMAT_ERROR_KINDS, _FIRST_LINES)),
        },
    )


def _token_check(
    context: dg.AssetCheckExecutionContext, tuning: TuningSettings, key: dg.AssetKey, min_examples: int
) -> dg.AssetCheckResult:
    checked = _checked_file(context, key)
    if checked.problem:
        return _missing_file_result(key, checked)
    report = _report_for(checked, tuning, min_examples)
    over = report.over_limit
    truncated = ", ".join(f"line {line} ({tokens} tokens)" for line, tokens in over[:_FIRST_LINES])
    return dg.AssetCheckResult(
        asset_key=key,
        passed=not over,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(over)} example(s) over the {report.token_limit}-token limit of {tuning.base_model} "
            f"would be truncated: {truncated}"
            if over
            else f"every example fits the {report.token_limit}-token limit of {tuning.base_model}"
        ),
        metadata={
            **_common_metadata(report, checked),
            "model": tuning.base_model,
            "token_limit": report.token_limit,
            "token_limit_known": report.token_limit_known,
            "token_limits_as_of": TOKEN_LIMITS_AS_OF,
            "examples_over_limit": len(over),
            "truncated_examples": truncated or "none",
            "first_offending_lines": str([line for line, _ in over[:_FIRST_LINES]]),
        },
    )


@dg.asset_check(
    asset=TRAINING_KEY,
    name="training_file_format_check",
    blocking=True,
    description="Blocking: every example of training.jsonl follows OpenAI's chat format (cookbook rules "
    "plus role order, weights, blank content, valid JSON), there are at least 10, and the file is "
    "the one that was materialized (sha256).",
)
def training_file_format_check(
    context: dg.AssetCheckExecutionContext, tuning: TuningSettings
) -> dg.AssetCheckResult:
    """Format rules on the training file."""
    return _format_check(context, tuning, TRAINING_KEY, MIN_TRAINING_EXAMPLES)


@dg.asset_check(
    asset=VALIDATION_KEY,
    name="validation_file_format_check",
    blocking=True,
    description="Blocking: every example of validation.jsonl follows OpenAI's chat format, the file is "
    "not empty, and it is the one that was materialized (sha256).",
)
def validation_file_format_check(
    context: dg.AssetCheckExecutionContext, tuning: TuningSettings
) -> dg.AssetCheckResult:
    """Format rules on the validation file."""
    return _format_check(context, tuning, VALIDATION_KEY, MIN_VALIDATION_EXAMPLES)


@dg.asset_check(
    asset=TRAINING_KEY,
    name="training_file_token_check",
    blocking=True,
    description="Blocking: no training example exceeds the base model's per-example token limit "
    "(o200k_base; examples that would be truncated are named).",
)
def training_file_token_check(
    context: dg.AssetCheckExecutionContext, tuning: TuningSettings
) -> dg.AssetCheckResult:
    """Per-example token limit on the training file."""
    return _token_check(context, tuning, TRAINING_KEY, MIN_TRAINING_EXAMPLES)


@dg.asset_check(
    asset=VALIDATION_KEY,
    name="validation_file_token_check",
    blocking=True,
    description="Blocking: no validation example exceeds the base model's per-example token limit.",
)
def validation_file_token_check(
    context: dg.AssetCheckExecutionContext, tuning: TuningSettings
) -> dg.AssetCheckResult:
    """Per-example token limit on the validation file."""
    return _token_check(context, tuning, VALIDATION_KEY, MIN_VALIDATION_EXAMPLES)


@dg.asset_check(
    asset=TRAINING_KEY,
    name="training_file_cost_check",
    blocking=True,
    description="Blocking: estimated training cost (billing tokens x epochs x dated price per 1M "
    "training tokens) must not exceed tuning.max_cost_usd. A model without a known price fails: "
    "the budget cannot be verified.",
)
def training_file_cost_check(
    context: dg.AssetCheckExecutionContext, tuning: TuningSettings
) -> dg.AssetCheckResult:
    """Estimated training cost against the `tuning` budget."""
    checked = _checked_file(context, TRAINING_KEY)
    if checked.problem:
        return _missing_file_result(TRAINING_KEY, checked)
    report = _report_for(checked, tuning, MIN_TRAINING_EXAMPLES)
    cost = report.estimated_cost_usd
    if cost is None:
        passed = False
        description = (
            f"no training price for {tuning.base_model} in the table dated {PRICING_AS_OF}: the "
            f"${tuning.max_cost_usd:.2f} budget cannot be verified (add the model to "
            "TRAINING_PRICE_PER_MILLION_TOKENS in fine_tuning/file_checks.py)"
        )
    else:
        passed = cost <= tuning.max_cost_usd
        description = (
            f"estimated ${cost:.4f} {'<=' if passed else '>'} budget ${tuning.max_cost_usd:.2f} "
            f"({report.billing_tokens} tokens x {report.n_epochs} epochs ({report.epochs_rule}) x "
            f"${report.price_per_million:.2f}/1M, prices as of {PRICING_AS_OF})"
        )
    if not report.tokens_exact:
        description += " [token counts estimated]"
    return dg.AssetCheckResult(
        asset_key=TRAINING_KEY,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            **_common_metadata(report, checked),
            "model": tuning.base_model,
            "billing_tokens": report.billing_tokens,
            "n_epochs": report.n_epochs,
            "epochs_rule": report.epochs_rule,
            "price_per_million_usd": report.price_per_million if report.price_per_million is not None else "unknown",
            "pricing_as_of": PRICING_AS_OF,
            "max_cost_usd": tuning.max_cost_usd,
        },
    )


@dg.asset_check(
    asset=VALIDATION_KEY,
    name="validation_file_overlap_check",
    blocking=True,
    description="Blocking: the validation file shares no example and no user message with the "
    "training file.",
)
def validation_file_overlap_check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """Train and validation are disjoint, by whole example and by user message."""
    training = _checked_file(context, TRAINING_KEY)
    validation = _checked_file(context, VALIDATION_KEY)
    for checked in (training, validation):
        if checked.problem:
            return _missing_file_result(VALIDATION_KEY, checked)
    overlap = find_overlap(training.path, validation.path)
    pairs = overlap.identical_examples + overlap.shared_user_messages
    return dg.AssetCheckResult(
        asset_key=VALIDATION_KEY,
        passed=overlap.ok,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            "training and validation share no example and no user message"
            if overlap.ok
            else f"{len(overlap.identical_examples)} identical example(s) and "
            f"{len(overlap.shared_user_messages)} shared user message(s) between training and validation"
        ),
        metadata={
            "identical_examples": len(overlap.identical_examples),
            "shared_user_messages": len(overlap.shared_user_messages),
            "first_offending_lines": str(
                [f"training:{a} validation:{b}" for a, b in pairs[:_FIRST_LINES]]
            ),
        },
    )


@dg.asset_check(
    asset=TRAINING_KEY,
    name="training_file_splits_disjoint_check",
    blocking=True,
    description="Blocking: every book is in at most one split of book_splits, and no test-split "
    "book's prompt appears in the training or validation file (evaluation never sees trained books).",
)
def training_file_splits_disjoint_check(
    context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource
) -> dg.AssetCheckResult:
    """book_splits is a partition, and the test split's prompts are absent from both files."""
    training = _checked_file(context, TRAINING_KEY)
    validation = _checked_file(context, VALIDATION_KEY)
    for checked in (training, validation):
        if checked.problem:
            return _missing_file_result(TRAINING_KEY, checked)
    file_users: dict[bytes, str] = {}
    for name, checked in (("training", training), ("validation", validation)):
        for line, _, user_digests in _example_keys(checked.path):
            for digest in user_digests:
                file_users.setdefault(digest, f"{name}:{line}")
    with duckdb.get_connection() as conn, closing(conn):  # closed on errors too
        tables = {row[0] for row in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if not {"book_splits", "enriched_graphic_novels"} <= tables:
            return dg.AssetCheckResult(
                asset_key=TRAINING_KEY,
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                description="book_splits or enriched_graphic_novels is missing: materialize training_file first",
            )
        repeated = conn.execute(
            "SELECT count(*) FROM (SELECT book_id FROM book_splits GROUP BY book_id HAVING count(*) > 1)"
        ).fetchone()[0]
        cursor = conn.execute(
            """
            SELECT s.book_id, coalesce(e.title, ''), coalesce(e.author, ''), coalesce(e.description, '')
            FROM book_splits s JOIN enriched_graphic_novels e USING (book_id)
            WHERE s.split = 'test'
            """
        )
        test_books = 0
        leaked: list[str] = []
        while rows := cursor.fetchmany(1000):
            for book_id, title, author, description in rows:
                test_books += 1
                where = file_users.get(_digest(user_message(title, author, description)["content"]))
                if where is not None:
                    leaked.append(f"{book_id} -> {where}")
    passed = repeated == 0 and not leaked
    return dg.AssetCheckResult(
        asset_key=TRAINING_KEY,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"splits are disjoint; none of {test_books} test books is in a file"
            if passed
            else f"{repeated} book(s) in several splits; {len(leaked)} test book(s) found in a file"
        ),
        metadata={
            "books_in_several_splits": int(repeated),
            "test_books": test_books,
            "test_books_in_files": len(leaked),
            "first_offending": str(leaked[:_FIRST_LINES]),
        },
    )


FILE_CHECKS: list[dg.AssetChecksDefinition] = [
    training_file_format_check,
    validation_file_format_check,
    training_file_token_check,
    validation_file_token_check,
    training_file_cost_check,
    validation_file_overlap_check,
    training_file_splits_disjoint_check,
]
