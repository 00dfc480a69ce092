"""How a base model (no fine-tuned weights) picks an answer: word overlap with the prompt."""

from __future__ import annotations

from collections.abc import Sequence

from local_openai.learner.features import Message, message_text, words

_STOPWORDS = frozenset(
    "a an and are as at be by for from in is it json of on one or the to with you your answer "
    "category object nothing else main their its this that".split()
)


def _stem(word: str) -> str:
    # "ghosts" and "ghost" count as one word; short words are left alone.
    for suffix in ("es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def overlap_scores(messages: Sequence[Message], candidates: Sequence[str]) -> list[int]:
    """How often each candidate's words occur in the non-system prompt (stems compared)."""
    text = " ".join(message_text(m) for m in messages if m.get("role") not in ("system", "developer", "assistant"))
    counts: dict[str, int] = {}
    for word in words(text):
        stem = _stem(word)
        counts[stem] = counts.get(stem, 0) + 1
    return [sum(counts.get(_stem(w), 0) for w in words(str(candidate))) for candidate in candidates]


def zero_shot_choice(messages: Sequence[Message], candidates: Sequence[str]) -> str | None:
    """The candidate whose words occur most often in the non-system prompt (first on ties)."""
    if not candidates:
        return None
    scores = overlap_scores(messages, candidates)
    best = max(range(len(candidates)), key=lambda i: (scores[i], -i))
    return candidates[best]


def system_prompt_candidates(messages: Sequence[Message]) -> list[str]:
    """Candidate labels for a base model without a schema: the system prompt's content words."""
    seen: list[str] = []
    for message in messages:
        if message.get("role") in ("system", "developer"):
            for word in words(message_text(message)):
                if word not in _STOPWORDS and not word.isdigit() and word not in seen:
                    seen.append(word)
    return seen
