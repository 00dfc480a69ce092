"""Reinforcement: the same softmax model as a policy, trained on a grader's rewards.

For each prompt of a batch the policy samples `samples_per_prompt` replies from its softmax;
the grader scores each against the example's own fields (`item.*`), and a policy-gradient step
raises the log-probability of replies that scored above the prompt's mean and lowers the rest
(group-relative advantages, as in GRPO; `_advantages` says how they are scaled). The replies
the policy can give are the ones the
grader's reference templates name over the training items (and those of the model a job
continues): this learner is a classifier, not a language model, so it explores among the
answers the data makes possible. Each step reports the mean reward and each grader's mean
score; every `eval_interval` steps the validation reward is measured on `eval_samples`
samples per validation prompt.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from local_openai.learner.arrays import DenseWeights, FlatFeatures, build_examples, softmax_rows
from local_openai.learner.features import FeatureHasher, Message
from local_openai.learner.model import SoftmaxModel
from local_openai.learner.training import BASE_LEARNING_RATE, EpochCheckpoint, StepMetrics, TrainingResult, _vocabulary

# (reply, item) -> (reward, each grader's score)
Grade = Callable[[str, Mapping[str, Any]], tuple[float, dict[str, float]]]


# How much of the running mean reward (the baseline of groups whose replies all scored alike)
# each step keeps: it follows the last ten or so batches.
BASELINE_DECAY = 0.9


@dataclass(frozen=True)
class RewardExample:
    """A prompt (ending in a user or developer message) and the dataset row the grader reads."""

    prompt: Sequence[Message]
    item: Mapping[str, Any]


class _Rewards:
    """The grader's verdicts, each (example, reply) graded once: graders here are deterministic."""

    def __init__(self, grade: Grade, examples: Sequence[RewardExample], labels: Sequence[str]) -> None:
        self.grade, self.examples, self.labels = grade, examples, labels
        self.cache: dict[tuple[int, int], tuple[float, dict[str, float]]] = {}

    def __call__(self, row: int, action: int) -> tuple[float, dict[str, float]]:
        key = (row, action)
        if key not in self.cache:
            self.cache[key] = self.grade(self.labels[action], self.examples[row].item)
        return self.cache[key]


def train_rewards(
    examples: Sequence[RewardExample],
    grade: Grade,
    candidates: Sequence[str],
    *,
    n_epochs: int,
    batch_size: int,
    learning_rate_multiplier: float,
    samples_per_prompt: int,
    eval_interval: int,
    eval_samples: int,
    seed: int,
    validation: Sequence[RewardExample] = (),
    min_feature_count: int = 2,
    checkpoints_kept: int = 3,
    initial: SoftmaxModel | None = None,
) -> TrainingResult:
    """Policy-gradient steps on the grader's rewards; deterministic for a seed."""
    labels: list[str] = list(initial.labels) if initial else []
    labels += [reply for reply in dict.fromkeys(candidates) if reply not in labels]
    if not labels:
        raise ValueError("the grader's references name no reply for the policy to give")
    bigrams = initial.bigrams if initial else False
    hasher = FeatureHasher(bigrams)
    features = FlatFeatures.of([hasher.ids(example.prompt) for example in examples])
    vocabulary = _vocabulary(features, min_feature_count)
    if initial is not None and initial.weights:
        vocabulary = np.union1d(vocabulary, np.fromiter(initial.weights, dtype=np.int64, count=len(initial.weights)))
    train = build_examples(features, [0] * len(examples), vocabulary)
    valid = build_examples(FlatFeatures.of([hasher.ids(e.prompt) for e in validation]), [0] * len(validation), vocabulary)
    weights = DenseWeights.start(vocabulary, labels, bigrams, initial)
    train_rewards_of, valid_rewards_of = _Rewards(grade, examples, labels), _Rewards(grade, validation, labels)
    rng = np.random.default_rng(seed)
    learning_rate = BASE_LEARNING_RATE * learning_rate_multiplier
    batch_size = max(1, batch_size)
    total_steps = math.ceil(len(examples) / batch_size) * n_epochs
    steps: list[StepMetrics] = []
    checkpoints: list[EpochCheckpoint] = []
    baseline = 0.0  # running mean reward of the policy's samples
    for epoch in range(1, n_epochs + 1):
        order = rng.permutation(len(examples))
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            probs = softmax_rows(weights.logits(train, batch))
            actions = _sample(rng, probs, samples_per_prompt)
            rewards, scores = _grade(train_rewards_of, batch, actions)
            advantage = _advantages(rewards, baseline)
            baseline = BASELINE_DECAY * baseline + (1 - BASELINE_DECAY) * float(rewards.mean())
            gradient = np.zeros_like(probs)  # of the loss -sum(advantage * log pi(action))
            for column in range(samples_per_prompt):
                gradient -= advantage[:, column, None] * (np.eye(len(labels))[actions[:, column]] - probs)
            gradient /= samples_per_prompt
            weights.descend(train, batch, gradient, -learning_rate / len(batch))
            step = len(steps) + 1
            greedy = probs.argmax(axis=1)
            best = np.array([max(train_rewards_of(int(r), a)[0] for a in range(len(labels))) for r in batch])
            greedy_reward = np.array([train_rewards_of(int(r), int(a))[0] for r, a in zip(batch, greedy)])
            metrics = StepMetrics(
                step, float(-(advantage * np.log(np.maximum(np.take_along_axis(probs, actions, 1), 1e-12))).mean()),
                float((greedy_reward >= best).mean()), float(rewards.mean()),
                train_reward_mean=float(rewards.mean()), grader_scores=scores,
            )
            if len(validation) and (step % eval_interval == 0 or step == total_steps):
                metrics.valid_reward_mean = _valid_reward(weights, valid, valid_rewards_of, rng, eval_samples)
            steps.append(metrics)
        if epoch > n_epochs - checkpoints_kept:
            full = _valid_reward(weights, valid, valid_rewards_of, rng, eval_samples) if len(validation) else None
            checkpoints.append(EpochCheckpoint(epoch, len(steps), weights.model(), steps[-1], None, full))
    return TrainingResult(model=weights.model(), steps=steps, checkpoints=checkpoints, total_steps=total_steps)


def _advantages(rewards: np.ndarray, baseline: float) -> np.ndarray:
    """Each sampled reply's advantage (rows, k): against its own group, or the running baseline.

    A group whose replies scored differently: (reward - group mean) / (group mean - group's worst
    reward). The plain difference (reward - mean) makes a prompt's expected step proportional to
    the probability the policy already gives its rewarded reply: with 12 candidate replies and a
    uniform start that is a twelfth of a supervised step, and on the 12-label Goodreads task the
    auto epochs ended at half the supervised accuracy. Divided by (mean - worst), the step is
    the gradient of log(expected reward above the group's worst); for an exact-match grader it is
    the cross-entropy step towards the rewarded reply, as strong as supervised training on the
    reference, whenever a sample finds it. It is bounded by -1 and k-1, and unchanged by adding
    to or multiplying every reward, as the grader's scale says nothing about how far to step.

    A group whose replies all scored alike has no contrast: its replies are compared with the
    running mean reward instead (clipped to [-1, 1]), so a group of misses lowers the replies it
    tried, which moves probability to those not yet tried (REINFORCE with a baseline); without
    this a prompt whose rewarded reply the policy had made unlikely would never find it again.
    """
    mean = rewards.mean(axis=1, keepdims=True)
    spread = mean - rewards.min(axis=1, keepdims=True)
    contrast = spread > 1e-12
    relative = (rewards - mean) / np.where(contrast, spread, 1.0)
    return np.where(contrast, relative, np.clip(rewards - baseline, -1.0, 1.0))


def _sample(rng: np.random.Generator, probs: np.ndarray, k: int) -> np.ndarray:
    """k sampled reply indices per row (rows, k)."""
    cumulative = probs.cumsum(axis=1)
    draws = rng.random((len(probs), k)) * cumulative[:, -1:]
    return np.minimum((cumulative[:, None, :] <= draws[:, :, None]).sum(axis=2), probs.shape[1] - 1)


def _grade(rewards_of: _Rewards, rows: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """(rewards (rows, k), each grader's mean score over the batch's samples)."""
    rewards = np.zeros(actions.shape)
    totals: dict[str, float] = {}
    for i, row in enumerate(rows):
        for j, action in enumerate(actions[i]):
            reward, scores = rewards_of(int(row), int(action))
            rewards[i, j] = reward
            for name, score in scores.items():
                totals[name] = totals.get(name, 0.0) + score
    return rewards, {name: total / actions.size for name, total in totals.items()}


def _valid_reward(weights: DenseWeights, valid: Any, rewards_of: _Rewards, rng: np.random.Generator, k: int) -> float:
    rows = np.arange(len(valid))
    actions = _sample(rng, softmax_rows(weights.logits(valid, rows)), k)
    rewards, _ = _grade(rewards_of, rows, actions)
    return float(rewards.mean())
