"""Read-only reply probabilities: what a model (fine-tuned or zero-shot) thinks of each reply.

Used for logprobs, sampling and logit_bias; nothing here changes a model. The zero-shot
distribution is a softmax over word-overlap scores, so its most probable candidate is exactly
`zero_shot_choice`'s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from local_openai.learner.features import Message
from local_openai.learner.model import SoftmaxModel
from local_openai.learner.zero_shot import overlap_scores

# How much one more overlapping word raises a zero-shot candidate's odds (e^2: about 7x).
ZERO_SHOT_SHARPNESS = 2.0

Ranked = list[tuple[str, float]]  # (reply, probability), most probable first


def reply_probabilities(model: SoftmaxModel, messages: Sequence[Message]) -> Ranked:
    """Every reply a fine-tuned model knows with its probability, most probable first (ties: training order)."""
    probabilities = model.probabilities(messages)
    order = sorted(range(len(probabilities)), key=lambda i: (-probabilities[i], i))
    return [(model.labels[i], probabilities[i]) for i in order]


def zero_shot_probabilities(messages: Sequence[Message], candidates: Sequence[str]) -> Ranked:
    """Candidates with softmax(sharpness x word overlap) probabilities, most probable first (ties: given order)."""
    if not candidates:
        return []
    scores = [ZERO_SHOT_SHARPNESS * score for score in overlap_scores(messages, candidates)]
    top = max(scores)
    weights = [math.exp(score - top) for score in scores]
    total = sum(weights)
    order = sorted(range(len(candidates)), key=lambda i: (-scores[i], i))
    return [(candidates[i], weights[i] / total) for i in order]
