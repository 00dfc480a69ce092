"""DPO: the same softmax model, trained on preference pairs with the pairwise DPO loss.

For a prompt x with preferred reply p and non-preferred reply n, the loss is
-log sigmoid(beta * ((z_p - z_n) - (zref_p - zref_n))), where z are the model's logits (the
softmax's normaliser cancels in a difference of log-probabilities) and zref those of the
reference model: the weights training starts from (the fine-tuned model a job continues, or
zero weights for a base model). Its gradient on the logits is -beta * sigmoid(-margin) on p
and the opposite on n, so each step moves the same hashed-word features the supervised
learner uses. The bias is not moved: a preference between two replies to one prompt says
nothing about every other prompt, and a shifted bias would (a few pairs on a good model would
otherwise move all of its answers). Metrics follow the supervised ones: loss, preference accuracy (share of pairs
ranked the right way), token accuracy of the top reply against the preferred one.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from local_openai.learner.arrays import DenseWeights, FlatFeatures, SparseExamples, build_examples
from local_openai.learner.features import FeatureHasher, Message
from local_openai.learner.model import SoftmaxModel
from local_openai.learner.training import (
    BASE_LEARNING_RATE,
    EpochCheckpoint,
    StepMetrics,
    TrainingResult,
    _Scorer,
    _vocabulary,
)


@dataclass(frozen=True)
class PreferencePair:
    """A prompt and its two replies: the preferred and the non-preferred one."""

    prompt: Sequence[Message]
    preferred: str
    non_preferred: str


@dataclass(frozen=True)
class _Pairs:
    examples: SparseExamples  # labels: the preferred reply's index
    rejected: np.ndarray  # the non-preferred reply's index per row
    reference_margin: np.ndarray  # zref_p - zref_n per row


def _pairs(pairs: Sequence[PreferencePair], hasher: FeatureHasher, vocabulary: np.ndarray,
           index: dict[str, int], reference: DenseWeights) -> _Pairs:
    features = FlatFeatures.of([hasher.ids(pair.prompt) for pair in pairs])
    chosen = [index[pair.preferred] for pair in pairs]
    examples = build_examples(features, chosen, vocabulary)
    rejected = np.array([index[pair.non_preferred] for pair in pairs], dtype=np.int64)
    rows = np.arange(len(pairs))
    if len(pairs):
        logits = reference.logits(examples, rows)
        margin = logits[rows, examples.labels] - logits[rows, rejected]
    else:
        margin = np.zeros(0)
    return _Pairs(examples, rejected, margin)


def _dpo(weights: DenseWeights, data: _Pairs, rows: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(per-row loss, gradient on the logits, preferred ranked above non-preferred) for `rows`."""
    logits = weights.logits(data.examples, rows)
    index = np.arange(len(rows))
    chosen, rejected = data.examples.labels[rows], data.rejected[rows]
    margin = beta * (logits[index, chosen] - logits[index, rejected] - data.reference_margin[rows])
    loss = np.logaddexp(0.0, -margin)  # -log sigmoid(margin), stable for any margin
    pull = beta / (1.0 + np.exp(np.clip(margin, -500, 500)))  # beta * sigmoid(-margin)
    gradient = np.zeros_like(logits)
    gradient[index, chosen] -= pull
    gradient[index, rejected] += pull
    return loss, gradient, logits[index, chosen] > logits[index, rejected]


def train_preferences(
    pairs: Sequence[PreferencePair],
    *,
    n_epochs: int,
    batch_size: int,
    learning_rate_multiplier: float,
    beta: float,
    seed: int,
    validation: Sequence[PreferencePair] = (),
    min_feature_count: int = 2,
    checkpoints_kept: int = 3,
    initial: SoftmaxModel | None = None,
) -> TrainingResult:
    """Mini-batch gradient descent on the DPO loss; deterministic for a seed."""
    labels: list[str] = list(initial.labels) if initial else []
    for pair in [*pairs, *validation]:
        for reply in (pair.preferred, pair.non_preferred):
            if reply not in labels:
                labels.append(reply)
    index = {label: i for i, label in enumerate(labels)}
    bigrams = initial.bigrams if initial else False
    hasher = FeatureHasher(bigrams)
    vocabulary = _vocabulary(FlatFeatures.of([hasher.ids(pair.prompt) for pair in pairs]), min_feature_count)
    if initial is not None and initial.weights:
        vocabulary = np.union1d(vocabulary, np.fromiter(initial.weights, dtype=np.int64, count=len(initial.weights)))
    weights = DenseWeights.start(vocabulary, labels, bigrams, initial)
    reference = DenseWeights.start(vocabulary, labels, bigrams, initial)  # frozen
    train_data = _pairs(pairs, hasher, vocabulary, index, reference)
    valid_data = _pairs(validation, hasher, vocabulary, index, reference)
    scorer = _Scorer(weights, labels)
    rng = random.Random(seed)
    learning_rate = BASE_LEARNING_RATE * learning_rate_multiplier
    batch_size = max(1, batch_size)
    total_steps = math.ceil(len(pairs) / batch_size) * n_epochs
    steps: list[StepMetrics] = []
    checkpoints: list[EpochCheckpoint] = []
    order = list(range(len(pairs)))
    valid_cursor = 0
    for epoch in range(1, n_epochs + 1):
        rng.shuffle(order)
        shuffled = np.array(order, dtype=np.int64)
        for start in range(0, len(shuffled), batch_size):
            batch = shuffled[start : start + batch_size]
            loss, gradient, right = _dpo(weights, train_data, batch, beta)
            _, _, token_acc = scorer.score(train_data.examples, batch)
            bias = weights.bias.copy()
            weights.descend(train_data.examples, batch, gradient, -learning_rate / len(batch))
            weights.bias = bias
            metrics = StepMetrics(len(steps) + 1, float(loss.mean()), float(right.mean()), float(token_acc.mean()))
            if len(validation):
                vbatch = (valid_cursor + np.arange(batch_size)) % len(validation)
                valid_cursor = (valid_cursor + batch_size) % len(validation)
                metrics.valid_loss, metrics.valid_mean_token_accuracy = _evaluate(weights, scorer, valid_data, vbatch, beta)
            steps.append(metrics)
        if epoch > n_epochs - checkpoints_kept:
            full = _evaluate(weights, scorer, valid_data, np.arange(len(validation)), beta) if len(validation) else (None, None)
            checkpoints.append(EpochCheckpoint(epoch, len(steps), weights.model(), steps[-1], *full))
    return TrainingResult(model=weights.model(), steps=steps, checkpoints=checkpoints, total_steps=total_steps)


def _evaluate(weights: DenseWeights, scorer: _Scorer, data: _Pairs, rows: np.ndarray, beta: float) -> tuple[float, float]:
    """Mean DPO loss and mean token accuracy (top reply against the preferred one) on `rows`."""
    loss, _, _ = _dpo(weights, data, rows, beta)
    _, _, token_acc = scorer.score(data.examples, rows)
    return float(loss.mean()), float(token_acc.mean())
