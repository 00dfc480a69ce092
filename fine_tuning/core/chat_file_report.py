"""What one pass over a chat-format JSONL file found: errors, warnings, tokens, cost; and its text form.

Filled by `core.chat_files` (the rules); read by the validator CLI, the blocking file checks and
the local backend. No Dagster here.
"""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from fine_tuning.core.catalog import (
    MIN_TRAINING_EXAMPLES,
    PRICING_AS_OF,
    TARGET_EPOCHS,
    TOKEN_LIMITS_AS_OF,
    estimate_training_cost,
)
from fine_tuning.core.markdown import markdown_table
from fine_tuning.core.tokens import token_stats

# Error kinds. The format kinds make `validate` exit 1; `too_many_tokens` is the token check's.
FORMAT_ERROR_KINDS: tuple[str, ...] = (
    "invalid_json",
    "invalid_unicode",
    "data_type",
    "missing_messages_list",
    "message_data_type",
    "message_missing_key",
    "message_unrecognized_key",
    "unrecognized_role",
    "missing_content",
    "empty_content",
    "invalid_name",
    "invalid_weight",
    "invalid_content_part",
    "image_not_supported",
    "invalid_image",
    "invalid_tool_calls",
    "invalid_tool_arguments",
    "invalid_function_call",
    "tool_call_id_unknown",
    "invalid_tools",
    "invalid_functions",
    "invalid_parallel_tool_calls",
    "missing_input",
    "invalid_preference_output",
    "reinforcement_last_message",
    "roles_order",
    "example_missing_assistant_message",
    "too_few_examples",
)
TOKEN_ERROR_KINDS: tuple[str, ...] = ("too_many_tokens",)
# Reported, never failing: OpenAI accepts these files, but they are probably not what was meant.
WARNING_KINDS: tuple[str, ...] = ("unknown_top_level_key", "duplicate_example")
_KEPT_DETAILS = 100  # details of the first offending lines only: a report stays small
ERROR_DESCRIPTIONS: dict[str, str] = {
    "invalid_json": "line is not a JSON value (or not UTF-8, or blank, or NaN/Infinity)",
    "invalid_unicode": "a string holds a lone surrogate (an unpaired \\ud800-\\udfff escape): not valid Unicode",
    "data_type": "example is not a JSON object",
    "missing_messages_list": "no non-empty 'messages' list",
    "message_data_type": "a message is not a JSON object",
    "message_missing_key": "a message lacks `role`, or `content` (without a tool or function call)",
    "message_unrecognized_key": "a message has a key its role does not take "
                                "(role/content/name/weight/tool_calls/tool_call_id/function_call)",
    "unrecognized_role": "a role other than system/developer/user/assistant/tool/function (or not a string)",
    "missing_content": "a message has no content (content is a non-empty string or list of parts)",
    "empty_content": "a message's content is only whitespace",
    "invalid_name": "`name` is not 1-64 letters, digits, '_' or '-'",
    "invalid_weight": "`weight` not 0/1 or not on an assistant message",
    "invalid_content_part": "a content part is not {type: text, text} or {type: image_url, image_url: {url, detail?}}",
    "image_not_supported": "an image where none is taken "
                           "(model without vision fine-tuning, assistant message, DPO or reinforcement)",
    "invalid_image": "an image breaks the vision limits (JPEG/PNG/WEBP, <= 10 MB, <= 10 per example, detail auto/low/high)",
    "invalid_tool_calls": "assistant `tool_calls` not a list of {id, type: function, function: {name, arguments}}",
    "invalid_tool_arguments": "function-call `arguments` are not a string of valid JSON text",
    "invalid_function_call": "legacy `function_call` is not {name, arguments}",
    "tool_call_id_unknown": "a tool message does not answer a call id of the assistant message before it",
    "invalid_tools": "top-level `tools` not a list of {type: function, function: {name, description?, parameters?}}",
    "invalid_functions": "legacy `functions` not a list of {name, description?, parameters?}",
    "invalid_parallel_tool_calls": "`parallel_tool_calls` is not a boolean",
    "missing_input": "DPO: no `input` object with a non-empty `messages` list (and only tools/parallel_tool_calls beside it)",
    "invalid_preference_output": "DPO: `preferred_output` / `non_preferred_output` not exactly one assistant message "
                                 "each, or both the same",
    "reinforcement_last_message": "reinforcement: the last message is not a user or developer message",
    "roles_order": "roles not: system/developer first, then user and assistant turns (tool results after calls), "
                   "ending as the method requires",
    "example_missing_assistant_message": "no assistant message",
    "too_few_examples": "fewer examples than the minimum",
    "too_many_tokens": "example longer than the model's per-example token limit (would be truncated)",
    "unknown_top_level_key": "a top-level key the method does not read (ignored by OpenAI)",
    "duplicate_example": "the same example as an earlier line (trains on it twice)",
}


@dataclass
class FileReport:
    """Everything known about one chat-format JSONL file after a single streaming pass."""

    path: str
    model: str
    method: str = "supervised"
    sha256: str = ""
    examples: int = 0
    min_examples: int = MIN_TRAINING_EXAMPLES
    error_counts: Counter[str] = field(default_factory=Counter)
    error_lines: dict[str, list[int]] = field(default_factory=dict)
    error_details: dict[tuple[str, int], str] = field(default_factory=dict)  # (kind, line) -> what exactly
    warning_counts: Counter[str] = field(default_factory=Counter)
    warning_lines: dict[str, list[int]] = field(default_factory=dict)
    token_counts: list[int] = field(default_factory=list)
    over_limit: list[tuple[int, int]] = field(default_factory=list)  # (line, tokens)
    approximate_token_lines: list[int] = field(default_factory=list)  # counted approximately (size)
    token_limit: int = 0
    token_limit_known: bool = True
    tokens_exact: bool = True
    token_method: str = ""
    token_counts_source: str = "counted"  # or taken from the writer's record of the same bytes
    n_epochs: int = TARGET_EPOCHS
    epochs_rule: str = "auto"
    billing_tokens: int = 0
    price_per_million: float | None = None
    price_per_hour: float | None = None  # reinforcement: billed by training time
    pricing_as_of: str = PRICING_AS_OF
    # Identities for the overlap and split checks: first line of each example / user message.
    example_digests: dict[int, int] = field(default_factory=dict, repr=False)
    user_digests: dict[int, int] = field(default_factory=dict, repr=False)

    def add_error(self, kind: str, line: int | None, detail: str = "") -> None:
        """Record one offending example (line numbers are 1-based; None for file-level errors)."""
        _add(self.error_counts, self.error_lines, kind, line)
        if detail and line is not None and len(self.error_details) < _KEPT_DETAILS:
            self.error_details.setdefault((kind, line), detail)

    def add_warning(self, kind: str, line: int) -> None:
        """Record one example that is accepted but probably not meant."""
        _add(self.warning_counts, self.warning_lines, kind, line)

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
        """True when the file has no error of any kind (warnings do not count)."""
        return not any(self.error_counts.values())

    def first_error(self, kinds: Iterable[str] | None = None) -> tuple[str, int | None, str] | None:
        """(kind, line, description) of the error (among `kinds`, default all) on the earliest line
        (file-level errors last), or None."""
        wanted = set(kinds) if kinds is not None else set(self.error_lines)
        found = [
            (lines[0] if lines else None, kind)
            for kind, lines in self.error_lines.items() if self.error_counts[kind] and kind in wanted
        ]
        if not found:
            return None
        line, kind = min(found, key=lambda item: (item[0] is None, item[0] or 0))
        detail = self.error_details.get((kind, line)) if line is not None else None
        return kind, line, f"{ERROR_DESCRIPTIONS[kind]}: {detail}" if detail else ERROR_DESCRIPTIONS[kind]

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
        return _kinds_markdown(wanted, self.error_counts, self.error_lines, limit) if wanted else "No errors."

    def warnings_markdown(self, limit: int = 10) -> str:
        """The warnings as a markdown table, like `errors_markdown`."""
        wanted = [k for k in WARNING_KINDS if self.warning_counts[k]]
        return _kinds_markdown(wanted, self.warning_counts, self.warning_lines, limit) if wanted else "No warnings."

    def text(self) -> str:
        """A human-readable report (what `python -m fine_tuning.validate` prints)."""
        return "\n".join(
            [
                f"File: {self.path}",
                f"Method: {self.method}",
                f"sha256: {self.sha256}",
                f"Examples: {self.examples} (minimum {self.min_examples})",
                "",
                *_kinds_text("Errors by kind:", FORMAT_ERROR_KINDS + TOKEN_ERROR_KINDS, self.error_counts, self.error_lines),
                *_kinds_text("Warnings:", WARNING_KINDS, self.warning_counts, self.warning_lines),
                "",
                *self._tokens_text(),
                "",
                *self._cost_text(),
            ]
        )

    def _tokens_text(self) -> list[str]:
        stats = self.token_stats()
        limit_note = "" if self.token_limit_known else " (model not in table: conservative default)"
        lines = [
            f"Tokens ({self.token_method}):",
            f"  per example: min {stats['tokens_min']}, mean {stats['tokens_mean']}, "
            f"p95 {stats['tokens_p95']}, max {stats['tokens_max']}",
            f"  total: {stats['total_tokens']}",
            f"  per-example limit for {self.model}: {self.token_limit}{limit_note} (as of {TOKEN_LIMITS_AS_OF})",
        ]
        if self.approximate_token_lines:
            shown = ", ".join(map(str, self.approximate_token_lines[:10]))
            lines.append(
                f"  {len(self.approximate_token_lines)} example(s) too long to encode exactly were ESTIMATED "
                f"(lines {shown})"
            )
        lines += [f"  line {line}: {tokens} tokens, would be truncated to {self.token_limit}"
                  for line, tokens in self.over_limit[:20]]
        return lines

    def _cost_text(self) -> list[str]:
        if self.method == "reinforcement":
            rate = f"${self.price_per_hour:.2f} per hour" if self.price_per_hour is not None else "an unknown rate"
            return [
                "Estimated training cost:",
                f"  reinforcement fine-tuning of {self.model} is billed by training time at {rate} "
                f"(prices as of {self.pricing_as_of}), plus the grader model's tokens: not predictable from the file",
            ]
        lines = ["Estimated training cost:",
                 f"  billing tokens {self.billing_tokens} x {self.n_epochs} epochs ({self.epochs_rule})"]
        if self.method == "dpo":
            lines.append("  (DPO: the prompt and both outputs, preferred and non-preferred, are billed)")
        if self.price_per_million is None:
            lines.append(f"  price for {self.model} unknown (not in the table dated {self.pricing_as_of}): cost unknown")
        else:
            lines.append(
                f"  x ${self.price_per_million:.2f} per 1M training tokens (prices as of {self.pricing_as_of})"
                f" = ${self.estimated_cost_usd:.4f}"
            )
        if not self.tokens_exact:
            lines.append("  (token counts are ESTIMATED; the cost is an estimate of an estimate)")
        return lines


def _add(counts: Counter[str], lines_by_kind: dict[str, list[int]], kind: str, line: int | None) -> None:
    lines = lines_by_kind.setdefault(kind, [])
    if line is not None and lines and lines[-1] == line:
        return  # one count per example and kind
    counts[kind] += 1
    if line is not None:
        lines.append(line)


def _kinds_markdown(kinds: list[str], counts: Counter[str], lines_by_kind: dict[str, list[int]], limit: int) -> str:
    rows = []
    for kind in kinds:
        lines = ", ".join(str(n) for n in lines_by_kind.get(kind, [])[:limit]) or "-"
        rows.append((kind, counts[kind], lines, ERROR_DESCRIPTIONS[kind]))
    return markdown_table(("kind", "examples", "first lines", "meaning"), rows, align="lrll")


def _kinds_text(title: str, kinds: Iterable[str], counts: Counter[str], lines_by_kind: dict[str, list[int]]) -> list[str]:
    out = [title]
    for kind in kinds:
        if counts[kind]:
            shown = lines_by_kind.get(kind, [])[:20]
            where = f" at lines {', '.join(map(str, shown))}" if shown else ""
            more = " ..." if len(lines_by_kind.get(kind, [])) > len(shown) else ""
            out.append(f"  {kind}: {counts[kind]}{where}{more}  ({ERROR_DESCRIPTIONS[kind]})")
    if len(out) == 1:
        out.append("  none")
    return out
