"""The local backend's learner: a small, deterministic, pure-Python text classifier.

It is *not* a language model. A fine-tuning "model" here is a softmax regression over hashed
word features (bigrams optional, off by default) of an example's non-assistant messages,
predicting the assistant reply string as one class among the distinct replies seen in
training. Features are L2-normalised (1/sqrt(n) each), those in every example (the shared
system prompt) or in fewer than two are pruned, weights start at zero, and mini-batch
gradient descent uses lr = BASE_LEARNING_RATE * learning_rate_multiplier. That is enough for
classification-style fine-tuning (the pipeline's use case) to show a real learning signal:
loss falls, validation accuracy rises, and the tuned model beats the zero-shot base model.

Also here: token counts for `trained_tokens` and chat `usage` (delegated to fine_tuning.core.tokens,
so the backend and the pipeline's file checks count alike), OpenAI-style "auto" hyperparameter
resolution and zero-shot choices for base models. Turning a prediction into a reply (plain text,
json_object, strict json_schema) is `answers.py`.
"""

from __future__ import annotations

import math
import random
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from operator import add
from typing import Any

from fine_tuning.core.catalog import auto_epochs
from fine_tuning.core.tokens import TokenCounter, count_example_tokens, token_counter

Message = dict[str, Any]

# ---------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------


def count_text_tokens(text: str, counter: TokenCounter | None = None) -> int:
    """Tokens in one string (a completion), counted as the pipeline counts them."""
    return (counter or token_counter()).count(text)


def count_message_tokens(messages: Sequence[Message], counter: TokenCounter | None = None) -> int:
    """Tokens of a chat (prompt or training example), counted as the pipeline counts them.

    The cookbook's rule, per-message overhead included; pass `counter` to reuse one over many chats.
    """
    return count_example_tokens(messages, counter or token_counter())


# ---------------------------------------------------------------------------------------------
# Hyperparameters
# ---------------------------------------------------------------------------------------------

# The learner's base step size; the learning_rate_multiplier scales it.
BASE_LEARNING_RATE = 1.0


def auto_n_epochs(n_examples: int) -> int:
    """OpenAI's documented default epoch rule: the same one the pipeline's cost check prices."""
    return auto_epochs(n_examples)


def auto_batch_size(n_examples: int) -> int:
    """About 0.2% of the training examples, clamped to [1, 256] (OpenAI's observed default)."""
    return max(1, min(256, math.ceil(0.002 * n_examples)))


def auto_learning_rate_multiplier(batch_size: int) -> float:
    """Larger batches take fewer, averaged steps, so they get a larger multiplier (as OpenAI does)."""
    if batch_size >= 16:
        return 2.0
    if batch_size >= 4:
        return 1.8
    return 1.0


def resolve_hyperparameters(requested: dict[str, Any] | None, n_examples: int) -> dict[str, Any]:
    """Replace "auto" (or missing) hyperparameters by concrete values for this file."""
    requested = requested or {}
    n_epochs = requested.get("n_epochs", "auto")
    batch_size = requested.get("batch_size", "auto")
    multiplier = requested.get("learning_rate_multiplier", "auto")
    n_epochs = auto_n_epochs(n_examples) if n_epochs in (None, "auto") else int(n_epochs)
    batch_size = auto_batch_size(n_examples) if batch_size in (None, "auto") else int(batch_size)
    batch_size = max(1, min(batch_size, max(1, n_examples)))
    multiplier = (
        auto_learning_rate_multiplier(batch_size) if multiplier in (None, "auto") else float(multiplier)
    )
    return {"n_epochs": n_epochs, "batch_size": batch_size, "learning_rate_multiplier": multiplier}


# ---------------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


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
        return _softmax(self._logits(self.features(messages)))

    def _logits(self, features: Sequence[int]) -> list[float]:
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


def _softmax(logits: Sequence[float]) -> list[float]:
    top = max(logits)
    exps = [math.exp(z - top) for z in logits]
    total = sum(exps)
    return [e / total for e in exps]


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
        probs = _softmax(self.model._logits(example.features))
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
) -> TrainingResult:
    """Mini-batch gradient descent on the softmax cross-entropy; deterministic for a seed.

    Each step reports the batch's loss and accuracy *before* the update (as OpenAI's train
    loss is), and the loss on the next validation batch; the last `checkpoints_kept` epochs
    end with a checkpoint carrying full-validation metrics.
    """
    labels: list[str] = []
    for messages in conversations:
        reply = assistant_reply(messages) or ""
        if reply not in labels:
            labels.append(reply)
    vocabulary = _vocabulary(conversations, bigrams, min_feature_count)
    train_examples = _prepare(conversations, labels, bigrams, vocabulary)
    valid_examples = _prepare(validation, labels, bigrams, vocabulary)
    n_labels = len(labels)
    model = SoftmaxModel(labels=labels, bias=[0.0] * n_labels, weights={}, bigrams=bigrams)
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
                EpochCheckpoint(epoch, len(steps), _copy_model(model), steps[-1], full_loss, full_acc)
            )
    return TrainingResult(model=model, steps=steps, checkpoints=checkpoints, total_steps=total_steps)


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


def _copy_model(model: SoftmaxModel) -> SoftmaxModel:
    return SoftmaxModel(
        labels=list(model.labels),
        bias=list(model.bias),
        weights={k: list(v) for k, v in model.weights.items()},
        bigrams=model.bigrams,
    )


# ---------------------------------------------------------------------------------------------
# Answering
# ---------------------------------------------------------------------------------------------

_STOPWORDS = frozenset(
    "a an and are as at be by for from in is it json of on one or the to with you your answer "
    "category object nothing else main their its this that".split()
)


def _stem(word: str) -> str:
    for suffix in ("es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def zero_shot_choice(messages: Sequence[Message], candidates: Sequence[str]) -> str | None:
    """The candidate whose words occur most often in the non-system prompt (first on ties)."""
    if not candidates:
        return None
    text = " ".join(message_text(m) for m in messages if m.get("role") not in ("system", "developer", "assistant"))
    counts: dict[str, int] = {}
    for word in words(text):
        stem = _stem(word)
        counts[stem] = counts.get(stem, 0) + 1
    best, best_score = candidates[0], 0
    for candidate in candidates:
        score = sum(counts.get(_stem(w), 0) for w in words(str(candidate)))
        if score > best_score:
            best, best_score = candidate, score
    return best


def system_prompt_candidates(messages: Sequence[Message]) -> list[str]:
    """Candidate labels for a base model without a schema: the system prompt's content words."""
    seen: list[str] = []
    for message in messages:
        if message.get("role") in ("system", "developer"):
            for word in words(message_text(message)):
                if word not in _STOPWORDS and not word.isdigit() and word not in seen:
                    seen.append(word)
    return seen
