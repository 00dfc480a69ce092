"""`SoftmaxModel`: the weights a local fine-tuning job produces, and how they rank replies."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from operator import add
from typing import Any

from local_openai.learner.features import FEATURE_DIM, Message, feature_ids


@dataclass
class SoftmaxModel:
    """Weights of a trained classifier: one row of len(labels) weights per hashed feature."""

    labels: list[str]
    bias: list[float]
    weights: dict[int, list[float]]
    bigrams: bool = False

    def features(self, messages: Sequence[Message]) -> list[int]:
        """Feature ids the model knows (others were pruned in training, so they are ignored)."""
        return sorted(f for f in feature_ids(messages, self.bigrams) if f in self.weights)

    def probabilities(self, messages: Sequence[Message]) -> list[float]:
        """Class probabilities for a prompt."""
        return softmax(self.logits(self.features(messages)))

    def logits(self, features: Sequence[int]) -> list[float]:
        """Raw class scores for known feature ids (each feature weighs 1/sqrt(n))."""
        scale = 1.0 / math.sqrt(len(features)) if features else 0.0
        total = [0.0] * len(self.labels)
        for feature in features:
            row = self.weights.get(feature)
            if row is not None:
                total = list(map(add, total, row))
        return [b + scale * t for b, t in zip(self.bias, total)]

    def ranked_replies(self, messages: Sequence[Message]) -> list[str]:
        """Known replies, most probable first (ties keep training order)."""
        probs = self.probabilities(messages)
        order = sorted(range(len(self.labels)), key=lambda i: (-probs[i], i))
        return [self.labels[i] for i in order]

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable form (weights rounded: they are only ever compared)."""
        return {
            "kind": "softmax-regression/hashed-words",
            "feature_dim": FEATURE_DIM,
            "labels": self.labels,
            "bias": [round(b, 6) for b in self.bias],
            "bigrams": self.bigrams,
            "weights": {str(k): [round(w, 6) for w in row] for k, row in self.weights.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SoftmaxModel:
        """Inverse of to_json."""
        return cls(
            labels=list(data["labels"]),
            bias=[float(b) for b in data["bias"]],
            weights={int(k): [float(w) for w in row] for k, row in data["weights"].items()},
            bigrams=bool(data.get("bigrams", False)),
        )


def softmax(logits: Sequence[float]) -> list[float]:
    """Probabilities from scores, shifted by the maximum so exp() never overflows."""
    top = max(logits)
    exps = [math.exp(z - top) for z in logits]
    total = sum(exps)
    return [e / total for e in exps]

