"""Training: mini-batch gradient descent on the softmax cross-entropy, deterministic for a seed.

Features are L2-normalised (1/sqrt(n) each), those in every example (the shared system prompt)
or in fewer than two are pruned, weights start at zero, and the step size is
BASE_LEARNING_RATE * learning_rate_multiplier.

The arithmetic is numpy's: the examples are one sparse matrix (`SparseExamples`), the weights
one dense (features x replies) array, and a step is a handful of array operations instead of
a Python loop over every feature of every example (56k examples: 26 s in pure Python).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from local_openai.learner.arrays import (
    DenseWeights,
    FlatFeatures,
    SparseExamples,
    build_examples,
    softmax_rows,
)
from local_openai.learner.features import FeatureHasher, Message, assistant_reply, token_accuracy
from local_openai.learner.model import SoftmaxModel

# The learner's base step size; the learning_rate_multiplier scales it.
BASE_LEARNING_RATE = 1.0
# Probabilities are floored here before the log, so an impossible label costs a finite loss.
_MIN_PROBABILITY = 1e-12


@dataclass
class StepMetrics:
    """Metrics of one optimisation step (the rows of the result CSV)."""

    step: int
    train_loss: float
    train_accuracy: float
    train_mean_token_accuracy: float
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    # Reinforcement only: the batch's mean reward, each grader's mean score, the validation reward.
    train_reward_mean: float | None = None
    grader_scores: dict[str, float] | None = None
    valid_reward_mean: float | None = None


@dataclass
class EpochCheckpoint:
    """Model state and full-validation metrics at the end of one epoch."""

    epoch: int
    step: int
    model: SoftmaxModel
    metrics: StepMetrics
    full_valid_loss: float | None
    full_valid_mean_token_accuracy: float | None


@dataclass
class TrainingResult:
    """Everything a finished training run produced."""

    model: SoftmaxModel
    steps: list[StepMetrics]
    checkpoints: list[EpochCheckpoint]
    total_steps: int


def _vocabulary(features: FlatFeatures, min_count: int) -> np.ndarray:
    """Sorted feature ids seen in at least `min_count` examples but not in all of them.

    Features in every example (the shared system prompt) carry no signal beyond the bias, and
    features seen once can only be memorised: dropping both keeps the model small and fast.
    """
    ids, counts = features.document_frequencies()
    n = len(features)
    floor = min(min_count, max(1, n - 1))
    keep = (counts >= floor) & ((counts < n) | (n == 1))
    return ids[keep]


class _Scorer:
    """Probabilities, loss and token accuracy of the current weights on rows of examples."""

    def __init__(self, weights: DenseWeights, labels: Sequence[str]) -> None:
        self.weights = weights
        self.token_acc = np.array([[token_accuracy(t, p) for p in labels] for t in labels], dtype=np.float64)

    def score(self, examples: SparseExamples, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(probabilities, per-row loss, per-row token accuracy of the top reply) for `rows`."""
        probs = softmax_rows(self.weights.logits(examples, rows))
        predicted = np.argmax(probs, axis=1)  # first maximum: ties go to the earlier reply
        labels = examples.labels[rows]
        known = labels >= 0
        # A reply never seen in training (label -1) cannot be predicted: it scores as wrong.
        safe = np.where(known, labels, 0)
        picked = probs[np.arange(len(rows)), safe]
        loss = np.where(known, -np.log(np.maximum(picked, _MIN_PROBABILITY)), -math.log(_MIN_PROBABILITY))
        token_acc = np.where(known, self.token_acc[safe, predicted], 0.0)
        return probs, loss, token_acc

    def evaluate(self, examples: SparseExamples, rows: np.ndarray) -> tuple[float, float]:
        """Mean loss and mean token accuracy."""
        if not len(rows):
            return 0.0, 0.0
        _, loss, token_acc = self.score(examples, rows)
        return float(loss.mean()), float(token_acc.mean())


def train(
    conversations: Sequence[Sequence[Message]],
    *,
    n_epochs: int,
    batch_size: int,
    learning_rate_multiplier: float,
    seed: int,
    validation: Sequence[Sequence[Message]] = (),
    bigrams: bool = False,
    min_feature_count: int = 2,
    checkpoints_kept: int = 3,
    initial: SoftmaxModel | None = None,
) -> TrainingResult:
    """Mini-batch gradient descent on the softmax cross-entropy; deterministic for a seed.

    Each step reports the batch's loss and accuracy *before* the update (as OpenAI's train
    loss is), and the loss on the next validation batch; the last `checkpoints_kept` epochs
    end with a checkpoint carrying full-validation metrics. With `initial` (continued
    fine-tuning) training starts from its weights and keeps its replies and features.
    """
    labels: list[str] = list(initial.labels) if initial else []
    replies = [assistant_reply(messages) or "" for messages in conversations]
    for reply in replies:
        if reply not in labels:
            labels.append(reply)
    label_index = {label: i for i, label in enumerate(labels)}
    bigrams = initial.bigrams if initial else bigrams
    hasher = FeatureHasher(bigrams)
    train_features = FlatFeatures.of([hasher.ids(messages) for messages in conversations])
    vocabulary = _vocabulary(train_features, min_feature_count)
    if initial is not None and initial.weights:
        vocabulary = np.union1d(vocabulary, np.fromiter(initial.weights, dtype=np.int64, count=len(initial.weights)))
    train_examples = build_examples(train_features, [label_index[r] for r in replies], vocabulary)
    valid_labels = [label_index.get(assistant_reply(messages) or "", -1) for messages in validation]
    valid_examples = build_examples(FlatFeatures.of([hasher.ids(m) for m in validation]), valid_labels, vocabulary)
    del train_features, hasher  # only the sparse matrices are needed from here on
    weights = DenseWeights.start(vocabulary, labels, bigrams, initial)
    scorer = _Scorer(weights, labels)
    rng = random.Random(seed)
    learning_rate = BASE_LEARNING_RATE * learning_rate_multiplier
    batch_size = max(1, batch_size)
    steps_per_epoch = math.ceil(len(train_examples) / batch_size)
    total_steps = steps_per_epoch * n_epochs
    steps: list[StepMetrics] = []
    checkpoints: list[EpochCheckpoint] = []
    valid_cursor = 0
    all_valid = np.arange(len(valid_examples))
    order = list(range(len(train_examples)))
    for epoch in range(1, n_epochs + 1):
        rng.shuffle(order)  # Python's shuffle: the same seed gives the same batches as ever
        shuffled = np.array(order, dtype=np.int64)
        for start in range(0, len(shuffled), batch_size):
            batch = shuffled[start : start + batch_size]
            metrics = _sgd_step(weights, scorer, train_examples, batch, learning_rate, len(steps) + 1)
            if len(valid_examples):
                vbatch = (valid_cursor + np.arange(batch_size)) % len(valid_examples)
                valid_cursor = (valid_cursor + batch_size) % len(valid_examples)
                metrics.valid_loss, metrics.valid_mean_token_accuracy = scorer.evaluate(valid_examples, vbatch)
            steps.append(metrics)
        if epoch > n_epochs - checkpoints_kept:
            full_loss, full_acc = scorer.evaluate(valid_examples, all_valid) if len(valid_examples) else (None, None)
            checkpoints.append(EpochCheckpoint(epoch, len(steps), weights.model(), steps[-1], full_loss, full_acc))
    return TrainingResult(model=weights.model(), steps=steps, checkpoints=checkpoints, total_steps=total_steps)


def _sgd_step(
    weights: DenseWeights,
    scorer: _Scorer,
    examples: SparseExamples,
    batch: np.ndarray,
    learning_rate: float,
    step: int,
) -> StepMetrics:
    """One update from one batch; the metrics are those of the weights before it."""
    probs, loss, token_acc = scorer.score(examples, batch)
    labels = examples.labels[batch]
    correct = np.argmax(probs, axis=1) == labels
    residual = probs
    residual[np.arange(len(batch)), labels] -= 1.0
    weights.descend(examples, batch, residual, -learning_rate / len(batch))
    n = len(batch)
    return StepMetrics(step, float(loss.sum()) / n, float(correct.sum()) / n, float(token_acc.sum()) / n)
