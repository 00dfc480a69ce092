"""What a conversation looks like to the learner: hashed word features, the reply it learns, token accuracy."""

from __future__ import annotations

import functools
import json
import re
import zlib
from collections.abc import Sequence
from typing import Any

Message = dict[str, Any]

FEATURE_DIM = 1 << 20
_WORD_RE = re.compile(r"\w+", re.UNICODE)
# Texts whose features are remembered whole: enough for every distinct system prompt of a file.
_MESSAGE_CACHE_SIZE = 256


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


def feature_id(role: str, token: str) -> int:
    """The hashed id of one (role initial, word or bigram) feature.

    crc32 rather than hash(): Python's string hash is salted per process, and a model trained in
    one process must mean the same thing in another.
    """
    return zlib.crc32(f"{role}:{token}".encode()) % FEATURE_DIM


class _RoleIds(dict[str, int]):
    """word -> feature id for one role, computed on first use (a word costs one dict lookup after)."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def __missing__(self, token: str) -> int:
        value = self[token] = feature_id(self.role, token)
        return value


class FeatureHasher:
    """Hashed features of many conversations, remembering the ids of words it has seen.

    Training hashes the same words (and the same system prompt) tens of thousands of times; the
    ids are the same as `feature_ids` computes, only looked up instead of hashed again. One hasher
    lives as long as one training run, so its memory is that run's vocabulary.
    """

    def __init__(self, bigrams: bool = False) -> None:
        self.bigrams = bigrams
        self._roles: dict[str, _RoleIds] = {}
        self._message_ids = functools.lru_cache(maxsize=_MESSAGE_CACHE_SIZE)(self._hash_message)

    def ids(self, messages: Sequence[Message]) -> set[int]:
        """Hashed (role, word) and (role, bigram) features of the non-assistant messages."""
        found: set[int] = set()
        for message in messages:
            if message.get("role") == "assistant":
                continue
            found |= self._message_ids(str(message.get("role", ""))[:1], message_text(message))
        return found

    def _hash_message(self, role: str, text: str) -> frozenset[int]:
        tokens = words(text)
        lookup = self._roles.get(role)
        if lookup is None:
            lookup = self._roles[role] = _RoleIds(role)
        ids = set(map(lookup.__getitem__, tokens))
        if self.bigrams:
            ids.update(feature_id(role, f"{first} {second}") for first, second in zip(tokens, tokens[1:]))
        return frozenset(ids)


def feature_ids(messages: Sequence[Message], bigrams: bool = False) -> set[int]:
    """Hashed (role, word) and (role, bigram) features of the non-assistant messages."""
    return FeatureHasher(bigrams).ids(messages)


# A reply that calls functions is learnt as one label: this prefix, then the calls as JSON.
TOOL_CALLS_LABEL = "tool_calls:"


def calls_label(message: Message) -> str | None:
    """The label of an assistant message that calls tools (or a legacy function), else None."""
    calls = message.get("tool_calls")
    if isinstance(calls, list) and calls:
        functions = [call.get("function") or {} for call in calls if isinstance(call, dict)]
    elif isinstance(message.get("function_call"), dict):
        functions = [message["function_call"]]
    else:
        return None
    named = [{"name": f.get("name"), "arguments": f.get("arguments")} for f in functions]
    return TOOL_CALLS_LABEL + json.dumps(named, separators=(",", ":"), ensure_ascii=False)


def label_calls(label: str) -> list[dict[str, str]] | None:
    """The function calls ({name, arguments}) a label stands for, or None for a text reply."""
    if not label.startswith(TOOL_CALLS_LABEL):
        return None
    return json.loads(label[len(TOOL_CALLS_LABEL):])


def assistant_reply(messages: Sequence[Message]) -> str | None:
    """The last assistant message's reply: its text, or the label of the calls it makes."""
    for message in reversed(messages):
        if message.get("role") == "assistant":
            return calls_label(message) or message_text(message)
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
