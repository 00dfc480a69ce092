"""From a model's reply probabilities to the text of each choice: sampling, logit_bias, stop,
max_tokens, and token logprobs.

A local model's replies are whole texts (a label, or a structured answer built around one),
so its distribution is over those texts: each candidate label, rendered as the reply it would
give, with the learner's probability. Token logprobs follow from it: a token's probability is
the share of the probability mass, among the replies that begin with what was already emitted,
of those that continue with that token.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from local_openai.chat.request import Sampling
from local_openai.chat.tokenizer import Token, join, token_ids, tokenize

CANDIDATES_KEPT = 20  # top_logprobs asks for at most 20 alternatives; fewer replies carry any mass


@dataclass(frozen=True)
class Distribution:
    """Distinct reply texts with their probabilities, most probable first."""

    texts: list[str]
    probs: list[float]

    @classmethod
    def certain(cls, text: str) -> Distribution:
        """A single reply with probability 1."""
        return cls([text], [1.0])


def reply_distribution(
    ranked: Sequence[tuple[str, float]], render: Callable[[str], str], greedy: str
) -> Distribution:
    """The reply texts of the most probable labels (the top one rendered as the greedy reply)."""
    totals: dict[str, float] = {}
    for index, (label, probability) in enumerate(ranked[:CANDIDATES_KEPT]):
        text = greedy if index == 0 else render(label)
        totals[text] = totals.get(text, 0.0) + probability
    if not totals:
        return Distribution.certain(greedy)
    mass = sum(totals.values()) or 1.0
    ordered = sorted(totals.items(), key=lambda item: -item[1])
    return Distribution([text for text, _ in ordered], [p / mass for _, p in ordered])


def with_logit_bias(distribution: Distribution, bias: dict[int, float]) -> Distribution:
    """Each reply's log-probability raised by the bias of every token it is made of, renormalised."""
    if not bias:
        return distribution
    scores = [
        math.log(max(p, 1e-300)) + sum(bias.get(token, 0.0) for token in token_ids(text))
        for text, p in zip(distribution.texts, distribution.probs)
    ]
    probs = _softmax(scores)
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    return Distribution([distribution.texts[i] for i in order], [probs[i] for i in order])


def _softmax(scores: Sequence[float]) -> list[float]:
    top = max(scores)
    weights = [math.exp(score - top) for score in scores]
    total = sum(weights)
    return [weight / total for weight in weights]


def sampling_weights(distribution: Distribution, sampling: Sampling) -> list[float]:
    """Probabilities tempered by the temperature and cut to the top_p nucleus."""
    temperature = sampling.temperature if sampling.temperature is not None else 1.0
    scores = [math.log(max(p, 1e-300)) / temperature for p in distribution.probs]
    probs = _softmax(scores)
    if sampling.top_p is not None and sampling.top_p < 1:
        kept, total = [], 0.0
        for index in sorted(range(len(probs)), key=lambda i: -probs[i]):
            kept.append(index)
            total += probs[index]
            if total >= sampling.top_p:
                break
        probs = [p if i in kept else 0.0 for i, p in enumerate(probs)]
    return probs


def pick_texts(distribution: Distribution, sampling: Sampling, n: int) -> list[str]:
    """n replies: the most probable each time, or drawn at random (seeded when a seed is given)."""
    if not sampling.sampled:
        return [distribution.texts[0]] * n
    rng = random.Random(sampling.seed) if sampling.seed is not None else random.Random()
    weights = sampling_weights(distribution, sampling)
    return rng.choices(distribution.texts, weights=weights, k=n)


def cut(text: str, stop: Sequence[str], max_tokens: int | None) -> tuple[str, list[Token], str | None]:
    """(text, its tokens, "stop" | "length" | None): cut before the first stop sequence, then to max_tokens."""
    reason = None
    positions = [text.find(sequence) for sequence in stop if sequence in text]
    if positions:
        text, reason = text[: min(positions)], "stop"
    tokens = tokenize(text)
    if max_tokens is not None and len(tokens) > max_tokens:
        tokens = tokens[:max_tokens]
        text, reason = join(tokens), "length"
    return text, tokens, reason


def token_logprobs(tokens: Sequence[Token], distribution: Distribution, top_n: int) -> list[dict[str, object]]:
    """OpenAI's logprobs `content`: each emitted token's log-probability and the top alternatives."""
    candidates = [(tokenize(text), p) for text, p in zip(distribution.texts, distribution.probs)]
    emitted = b""
    entries = []
    for token in tokens:
        followers: dict[bytes, float] = {}
        for candidate, probability in candidates:
            following = _token_at(candidate, emitted)
            if following is not None:
                followers[following] = followers.get(following, 0.0) + probability
        mass = sum(followers.values())
        own = followers.get(token.data, 0.0)
        logprob = math.log(own / mass) if own > 0 and mass > 0 else 0.0
        alternatives = sorted(followers.items(), key=lambda item: -item[1])[:top_n]
        entries.append({
            **_entry(token.data, logprob),
            "top_logprobs": [_entry(data, math.log(p / mass)) for data, p in alternatives],
        })
        emitted += token.data
    return entries


def _token_at(tokens: Sequence[Token], prefix: bytes) -> bytes | None:
    """The token a candidate has right after `prefix`, when it begins with it at a token boundary."""
    offset = 0
    for token in tokens:
        if offset == len(prefix):
            return token.data
        if prefix[offset : offset + len(token.data)] != token.data:
            return None
        offset += len(token.data)
    return None


def _entry(data: bytes, logprob: float) -> dict[str, object]:
    return {"token": data.decode("utf-8", "replace"), "logprob": logprob, "bytes": list(data)}
