"""The vectorised learner computes what the plain definition of its algorithm computes.

The reference below is the learner written the obvious way (one Python loop per example and
feature, as it was before numpy): same batches, same losses, same weights, same predictions.
"""

from __future__ import annotations

import math
import random

import pytest

from fine_tuning.core.prompts import training_example
from local_openai import learner
from local_openai.learner.features import assistant_reply, feature_ids, token_accuracy

CATEGORIES = ("fantasy", "horror", "romance", "mystery")
CUES = {
    "fantasy": "dragon wizard sword elf quest kingdom",
    "horror": "ghost blood scream corpse haunted night",
    "romance": "kiss love wedding heart date letters",
    "mystery": "detective clue murder alibi suspect case",
}
FILLER = "the a of city young old story life world friends time family journey secret".split()


def examples(n: int, seed: int) -> list[list[dict]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        category = rng.choice(CATEGORIES)
        text = " ".join(rng.sample(FILLER, 6) + rng.sample(CUES[category].split(), 2))
        out.append(training_example(f"Book {i}", f"Author {i % 5}", text, category, CATEGORIES)["messages"])
    return out


def reference_train(conversations, validation, *, n_epochs, batch_size, learning_rate, seed):
    """Mini-batch softmax regression, one example and one feature at a time."""
    labels = []
    for messages in conversations:
        if assistant_reply(messages) not in labels:
            labels.append(assistant_reply(messages))
    counts: dict[int, int] = {}
    for messages in conversations:
        for feature in feature_ids(messages):
            counts[feature] = counts.get(feature, 0) + 1
    n = len(conversations)
    vocabulary = {f for f, c in counts.items() if 2 <= c < n}

    def prepare(data):
        return [(sorted(feature_ids(m) & vocabulary), labels.index(assistant_reply(m))) for m in data]

    train, valid = prepare(conversations), prepare(validation)
    bias, weights = [0.0] * len(labels), {}

    def probabilities(features):
        scale = 1 / math.sqrt(len(features)) if features else 0.0
        logits = [b + scale * sum(weights.get(f, [0.0] * len(labels))[j] for f in features) for j, b in enumerate(bias)]
        top = max(logits)
        exps = [math.exp(z - top) for z in logits]
        return [e / sum(exps) for e in exps]

    def evaluate(batch):
        loss = tok = 0.0
        for features, label in batch:
            probs = probabilities(features)
            predicted = max(range(len(probs)), key=lambda i: (probs[i], -i))
            loss += -math.log(max(probs[label], 1e-12))
            tok += token_accuracy(labels[label], labels[predicted])
        return loss / len(batch), tok / len(batch)

    rng, order, losses, cursor = random.Random(seed), list(range(n)), [], 0
    for _ in range(n_epochs):
        rng.shuffle(order)
        for start in range(0, n, batch_size):
            batch = [train[i] for i in order[start : start + batch_size]]
            train_loss, _ = evaluate(batch)
            grad_bias, grad = [0.0] * len(labels), {}
            for features, label in batch:
                residual = probabilities(features)
                residual[label] -= 1.0
                grad_bias = [g + r for g, r in zip(grad_bias, residual)]
                for f in features:
                    row = grad.setdefault(f, [0.0] * len(labels))
                    for j, r in enumerate(residual):
                        row[j] += r / math.sqrt(len(features))
            factor = -learning_rate / len(batch)
            bias = [b + factor * g for b, g in zip(bias, grad_bias)]
            for f, row in grad.items():
                old = weights.get(f, [0.0] * len(labels))
                weights[f] = [w + factor * g for w, g in zip(old, row)]
            vbatch = [valid[(cursor + i) % len(valid)] for i in range(batch_size)]
            cursor = (cursor + batch_size) % len(valid)
            losses += [train_loss, evaluate(vbatch)[0]]
    return labels, bias, weights, losses


@pytest.mark.parametrize(("batch_size", "n_epochs"), [(1, 1), (4, 2), (7, 3)])
def test_vectorised_training_matches_the_reference(batch_size: int, n_epochs: int) -> None:
    train, valid = examples(60, seed=1), examples(15, seed=2)
    result = learner.train(train, validation=valid, n_epochs=n_epochs, batch_size=batch_size,
                           learning_rate_multiplier=1.5, seed=7)
    labels, bias, weights, losses = reference_train(
        train, valid, n_epochs=n_epochs, batch_size=batch_size, learning_rate=1.5, seed=7
    )
    assert result.model.labels == labels
    assert result.model.bias == pytest.approx(bias, abs=1e-9)
    assert set(weights) <= set(result.model.weights)
    for feature, row in result.model.weights.items():
        assert row == pytest.approx(weights.get(feature, [0.0] * len(labels)), abs=1e-9)
    assert [loss for s in result.steps for loss in (s.train_loss, s.valid_loss)] == pytest.approx(losses, abs=1e-9)


def test_vectorised_predictions_match_the_reference_ranking() -> None:
    train, held_out = examples(80, seed=3), examples(20, seed=4)
    model = learner.train(train, n_epochs=2, batch_size=5, learning_rate_multiplier=1.0, seed=1).model
    for messages in held_out:
        probs = model.probabilities(messages[:-1])
        ranked = [model.labels[i] for i in sorted(range(len(probs)), key=lambda i: (-probs[i], i))]
        assert model.ranked_replies(messages[:-1]) == ranked
        assert sum(probs) == pytest.approx(1.0)
