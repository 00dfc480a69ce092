"""What a conversation looks like to the learner: hashed word features, the reply it learns, token accuracy."""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from typing import Any

Message = dict[str, Any]

FEATURE_DIM = 1 << 20
_WORD_RE = re.compile(r"\w+", re.UNICODE)


def message_text(message: Message) -> str:
    """The text of a message's content (string, or the text parts of a content list)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part.get("text", "") for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def words(text: str) -> list[str]:
    """Lower-cased word tokens."""
    return _WORD_RE.findall(text.lower())


def prompt_messages(messages: Sequence[Message]) -> list[Message]:
    """The non-assistant messages the model sees (everything before the last assistant reply)."""
    return [m for m in messages if m.get("role") != "assistant"]


def feature_ids(messages: Sequence[Message], bigrams: bool = False) -> set[int]:
    """Hashed (role, word) and (role, bigram) features of the non-assistant messages.

    crc32 rather than hash(): Python's string hash is salted per process, and a model trained in
    one process must mean the same thing in another.
    """
    ids: set[int] = set()
    for message in prompt_messages(messages):
        role = str(message.get("role", ""))[:1]
        tokens = words(message_text(message))
        for token in tokens:
            ids.add(zlib.crc32(f"{role}:{token}".encode()) % FEATURE_DIM)
        if bigrams:
            for first, second in zip(tokens, tokens[1:]):
                ids.add(zlib.crc32(f"{role}:{first} {second}".encode()) % FEATURE_DIM)
    return ids


def assistant_reply(messages: Sequence[Message]) -> str | None:
    """The last assistant message's text: what a fine-tuned model learns to answer."""
    for message in reversed(messages):
        if message.get("role") == "assistant":
            return message_text(message)
    return None


def reply_tokens(text: str) -> list[str]:
    """Coarse tokens of a reply, used for the 'mean token accuracy' metric."""
    return re.findall(r"\w+|[^\w\s]", text)


def token_accuracy(expected: str, predicted: str) -> float:
    """Share of the expected reply's tokens that the prediction has at the same position."""
    truth, guess = reply_tokens(expected), reply_tokens(predicted)
    if not truth:
        return 1.0 if not guess else 0.0
    return sum(1 for i, tok in enumerate(truth) if i < len(guess) and guess[i] == tok) / len(truth)
