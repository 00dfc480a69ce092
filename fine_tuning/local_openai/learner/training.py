"""Training: mini-batch gradient descent on the softmax cross-entropy, deterministic for a seed.

Features are L2-normalised (1/sqrt(n) each), those in every example (the shared system prompt)
or in fewer than two are pruned, weights start at zero, and the step size is
BASE_LEARNING_RATE * learning_rate_multiplier.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from operator import add

from fine_tuning.local_openai.learner.features import Message, assistant_reply, feature_ids, token_accuracy
from fine_tuning.local_openai.learner.model import SoftmaxModel, copy_model, softmax

# The learner's base step size; the learning_rate_multiplier scales it.
BASE_LEARNING_RATE = 1.0


@dataclass
class Example:
    """One training example reduced to what the learner needs."""

    features: list[int]
    label: int


@dataclass
class StepMetrics:
    """Metrics of one optimisation step (the rows of the result CSV)."""

    step: int
    train_loss: float
    train_accuracy: float
    train_mean_token_accuracy: float
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None


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


def _prepare(
    conversations: Sequence[Sequence[Message]], labels: list[str], bigrams: bool, vocabulary: set[int]
) -> list[Example]:
    index = {label: i for i, label in enumerate(labels)}
    examples = []
    for messages in conversations:
        reply = assistant_reply(messages) or ""
        feats = sorted(feature_ids(messages, bigrams) & vocabulary)
        # A validation reply never seen in training cannot be predicted; label -1 scores as wrong.
        examples.append(Example(feats, index.get(reply, -1)))
    return examples


def _vocabulary(conversations: Sequence[Sequence[Message]], bigrams: bool, min_count: int) -> set[int]:
    """Features seen in at least `min_count` examples but not in all of them.

    Features in every example (the shared system prompt) carry no signal beyond the bias, and
    features seen once can only be memorised: dropping both keeps the model small and fast.
    """
    counts: dict[int, int] = {}
    for messages in conversations:
        for feature in feature_ids(messages, bigrams):
            counts[feature] = counts.get(feature, 0) + 1
    n = len(conversations)
    floor = min(min_count, max(1, n - 1))
    return {f for f, c in counts.items() if c >= floor and (c < n or n == 1)}


class _Scorer:
    """Loss/accuracy of a model on examples, with the token-accuracy table cached."""

    def __init__(self, model: SoftmaxModel) -> None:
        self.model = model
        labels = model.labels
        self.token_acc = [[token_accuracy(t, p) for p in labels] for t in labels]

    def score(self, example: Example) -> tuple[float, int, list[float]]:
        probs = softmax(self.model.logits(example.features))
        predicted = max(range(len(probs)), key=lambda i: (probs[i], -i))
        if example.label < 0:
            return -math.log(1e-12), predicted, probs
        return -math.log(max(probs[example.label], 1e-12)), predicted, probs

    def evaluate(self, examples: Sequence[Example]) -> tuple[float, float]:
        """Mean loss and mean token accuracy."""
        if not examples:
            return 0.0, 0.0
        loss = tok = 0.0
        for example in examples:
            example_loss, predicted, _ = self.score(example)
            loss += example_loss
            tok += self.token_acc[example.label][predicted] if example.label >= 0 else 0.0
        return loss / len(examples), tok / len(examples)


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
    for messages in conversations:
        reply = assistant_reply(messages) or ""
        if reply not in labels:
            labels.append(reply)
    bigrams = initial.bigrams if initial else bigrams
    vocabulary = _vocabulary(conversations, bigrams, min_feature_count) | set(initial.weights if initial else ())
    train_examples = _prepare(conversations, labels, bigrams, vocabulary)
    valid_examples = _prepare(validation, labels, bigrams, vocabulary)
    model = _starting_model(labels, bigrams, initial)
    scorer = _Scorer(model)
    rng = random.Random(seed)
    learning_rate = BASE_LEARNING_RATE * learning_rate_multiplier
    batch_size = max(1, batch_size)
    steps_per_epoch = math.ceil(len(train_examples) / batch_size)
    total_steps = steps_per_epoch * n_epochs
    steps: list[StepMetrics] = []
    checkpoints: list[EpochCheckpoint] = []
    valid_cursor = 0
    order = list(range(len(train_examples)))
    for epoch in range(1, n_epochs + 1):
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            batch = [train_examples[i] for i in order[start : start + batch_size]]
            metrics = _sgd_step(model, scorer, batch, learning_rate, len(steps) + 1)
            if valid_examples:
                vbatch = [valid_examples[(valid_cursor + i) % len(valid_examples)] for i in range(batch_size)]
                valid_cursor = (valid_cursor + batch_size) % len(valid_examples)
                metrics.valid_loss, metrics.valid_mean_token_accuracy = scorer.evaluate(vbatch)
            steps.append(metrics)
        if epoch > n_epochs - checkpoints_kept:
            full_loss, full_acc = scorer.evaluate(valid_examples) if valid_examples else (None, None)
            checkpoints.append(
                EpochCheckpoint(epoch, len(steps), copy_model(model), steps[-1], full_loss, full_acc)
            )
    return TrainingResult(model=model, steps=steps, checkpoints=checkpoints, total_steps=total_steps)


def _starting_model(labels: list[str], bigrams: bool, initial: SoftmaxModel | None) -> SoftmaxModel:
    """Zero weights, or a copy of `initial` with a zero column for each reply it did not know."""
    if initial is None:
        return SoftmaxModel(labels=labels, bias=[0.0] * len(labels), weights={}, bigrams=bigrams)
    padding = [0.0] * (len(labels) - len(initial.labels))
    weights = {feature: [*row, *padding] for feature, row in initial.weights.items()}
    return SoftmaxModel(labels=labels, bias=[*initial.bias, *padding], weights=weights, bigrams=bigrams)


def _sgd_step(
    model: SoftmaxModel, scorer: _Scorer, batch: Sequence[Example], learning_rate: float, step: int
) -> StepMetrics:
    n_labels = len(model.labels)
    loss = correct = tok = 0.0
    grad_bias = [0.0] * n_labels
    grad_rows: dict[int, list[float]] = {}
    for example in batch:
        example_loss, predicted, probs = scorer.score(example)
        loss += example_loss
        correct += predicted == example.label
        tok += scorer.token_acc[example.label][predicted]
        residual = list(probs)
        residual[example.label] -= 1.0
        grad_bias = list(map(add, grad_bias, residual))
        if example.features:
            scale = 1.0 / math.sqrt(len(example.features))
            scaled = [r * scale for r in residual]
            for feature in example.features:
                row = grad_rows.get(feature)
                grad_rows[feature] = scaled if row is None else list(map(add, row, scaled))
    factor = -learning_rate / len(batch)
    model.bias = [b + factor * g for b, g in zip(model.bias, grad_bias)]
    weights = model.weights
    for feature, grad in grad_rows.items():
        row = weights.get(feature)
        update = [factor * g for g in grad]
        weights[feature] = update if row is None else list(map(add, row, update))
    n = len(batch)
    return StepMetrics(step, loss / n, correct / n, tok / n)
