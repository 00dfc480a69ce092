"""Per-label precision, recall and F1, macro-F1, and the full confusion matrix of one model's score.

Accuracy hides which labels a model gets wrong and as what. For each label of the task:
precision (of the answers naming it, the share that were right), recall (of the prompts whose
true label it is, the share answered right), F1 (their harmonic mean) and support (how many test
prompts carry it). Macro-F1 averages F1 over the labels equally, so a model that ignores a rare
label scores low even when its accuracy is high. Everything comes from a `ModelScore`'s
per-label tallies and confusions, so a reused score yields the same figures. No Dagster here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from fine_tuning.core.scoring import NO_ANSWER, ModelScore


@dataclass(frozen=True)
class LabelMetrics:
    """How one model did on one label."""

    label: str
    support: int  # test prompts whose true label this is
    predicted: int  # answers naming this label
    correct: int

    @property
    def precision(self) -> float:
        """Right answers naming the label over all answers naming it (0.0 when it was never named)."""
        return self.correct / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        """Right answers over the prompts of the label (0.0 when it has none)."""
        return self.correct / self.support if self.support else 0.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall (0.0 when both are 0)."""
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


def answer_counts(score: ModelScore) -> Counter[tuple[str, str]]:
    """(true label, answer) -> prompts, right answers included: the full confusion matrix."""
    counts: Counter[tuple[str, str]] = Counter(score.confusions)
    for label, (correct, _total) in score.per_category.items():
        if correct:
            counts[(label, label)] += correct
    return counts


def per_label_metrics(score: ModelScore, labels: Sequence[str]) -> list[LabelMetrics]:
    """Precision, recall, F1 and support of each label of the task, in the task's order."""
    counts = answer_counts(score)
    named = Counter[str]()
    for (_truth, answer), count in counts.items():
        named[answer] += count
    return [
        LabelMetrics(label, score.per_category.get(label, [0, 0])[1], named[label], counts[(label, label)])
        for label in labels
    ]


def macro_f1(metrics: Sequence[LabelMetrics]) -> float:
    """Mean F1 over the labels that occur in the test prompts or in the answers (0.0 when none do)."""
    present = [metric.f1 for metric in metrics if metric.support or metric.predicted]
    return sum(present) / len(present) if present else 0.0


def answers_outside(score: ModelScore, labels: Sequence[str]) -> list[str]:
    """Answers that are not labels of the task (no answer last), as extra confusion-matrix columns."""
    known = set(labels)
    outside = {answer for (_truth, answer) in answer_counts(score) if answer not in known}
    return sorted(outside - {NO_ANSWER}) + ([NO_ANSWER] if NO_ANSWER in outside else [])
