"""Token counts for `trained_tokens` and chat `usage`.

Delegated to fine_tuning.core.tokens, so the backend and the pipeline's file checks count alike.
"""

from __future__ import annotations

from collections.abc import Sequence

from fine_tuning.core.tokens import TokenCounter, count_example_tokens, token_counter
from local_openai.learner.features import Message


def count_text_tokens(text: str, counter: TokenCounter | None = None) -> int:
    """Tokens in one string (a completion), counted as the pipeline counts them."""
    return (counter or token_counter()).count(text)


def count_message_tokens(messages: Sequence[Message], counter: TokenCounter | None = None) -> int:
    """Tokens of a chat (prompt or training example), counted as the pipeline counts them.

    The cookbook's rule, per-message overhead included; pass `counter` to reuse one over many chats.
    """
    return count_example_tokens(messages, counter or token_counter())
