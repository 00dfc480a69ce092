"""The tokens a job is billed for, as OpenAI bills them: each example counted as its method bills it
(`fine_tuning.core.example_tokens`, the pipeline's count) up to the model's per-example limit
(longer ones are truncated in training), times the epochs.

Counts made without the tokenizer file are estimates; the job says so in an event, and its
`trained_tokens` carries the local marker `trained_tokens_estimated: true`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fine_tuning.core.catalog import example_token_limit
from fine_tuning.core.example_tokens import example_tokens
from fine_tuning.core.tokens import token_counter
from local_openai.records import JobEvent


@dataclass(frozen=True)
class BilledTokens:
    """Tokens of one epoch over a training file, capped per example, and how they were counted."""

    per_epoch: int
    truncated_examples: int
    limit: int
    exact: bool
    method: str


def billed_tokens(examples: Sequence[dict[str, Any]], model: str, method: str = "supervised") -> BilledTokens:
    """One epoch's billed tokens: every example's tokens as `method` bills them (tool definitions,
    both DPO outputs), at most the model's per-example limit."""
    counter = token_counter()
    limit, _ = example_token_limit(model)
    counts = [example_tokens(example, method, counter).tokens for example in examples]
    return BilledTokens(
        per_epoch=sum(min(count, limit) for count in counts),
        truncated_examples=sum(1 for count in counts if count > limit),
        limit=limit,
        exact=counter.exact,
        method=counter.method,
    )


def token_events(at: float, billed: BilledTokens) -> list[JobEvent]:
    """Events that tell what the counts are: truncated examples, and estimates made without the tokenizer."""
    events = []
    if billed.truncated_examples:
        events.append(JobEvent.new(
            at, f"{billed.truncated_examples} example(s) are longer than the {billed.limit}-token limit and will be "
                "truncated; only the first tokens of each are trained and billed.", level="warn",
        ))
    if not billed.exact:
        events.append(JobEvent.new(
            at, f"Token counts of this job are estimates ({billed.method}); trained_tokens is marked "
                "trained_tokens_estimated.", level="warn",
        ))
    return events
