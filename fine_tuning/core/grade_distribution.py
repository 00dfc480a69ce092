"""How a grader scored a model's free-form answers: the distribution a person reads, not just the mean.

A free-form task has no label set, so no confusion matrix: its grader (string_check,
text_similarity, score_model, multi) gives each answer a number. The mean alone hides a model
that is perfect on half the prompts and useless on the rest; the quartiles, the share at or
above the pass threshold and a histogram show it. No Dagster here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fine_tuning.core.markdown import markdown_table

HISTOGRAM_BINS = 10


@dataclass(frozen=True)
class GradeDistribution:
    """Summary of one model's grades on the test prompts."""

    count: int
    mean: float
    minimum: float
    lower_quartile: float
    median: float
    upper_quartile: float
    maximum: float
    passing: int  # grades at or above the pass threshold

    @property
    def pass_rate(self) -> float:
        """Share of prompts whose grade reached the pass threshold."""
        return self.passing / self.count if self.count else 0.0


def _quantile(ordered: Sequence[float], share: float) -> float:
    """Linear interpolation between the closest ranks (NumPy's default method)."""
    position = share * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def grade_distribution(grades: Sequence[float], pass_threshold: float) -> GradeDistribution:
    """The distribution of `grades` (at least one), counting those >= `pass_threshold` as passing."""
    if not grades:
        raise ValueError("a grade distribution needs at least one grade")
    ordered = sorted(float(grade) for grade in grades)
    return GradeDistribution(
        count=len(ordered), mean=sum(ordered) / len(ordered), minimum=ordered[0],
        lower_quartile=_quantile(ordered, 0.25), median=_quantile(ordered, 0.5),
        upper_quartile=_quantile(ordered, 0.75), maximum=ordered[-1],
        passing=sum(1 for grade in ordered if grade >= pass_threshold),
    )


def histogram(grades: Sequence[float], low: float, high: float, bins: int = HISTOGRAM_BINS) -> list[int]:
    """Counts of `grades` in `bins` equal-width bins over [low, high] (the last bin includes `high`)."""
    if not high > low:
        raise ValueError(f"a histogram needs high > low, got [{low}, {high}]")
    counts = [0] * bins
    for grade in grades:
        index = int((min(max(grade, low), high) - low) / (high - low) * bins)
        counts[min(index, bins - 1)] += 1
    return counts


def distribution_table(columns: Sequence[tuple[str, GradeDistribution]]) -> str:
    """One column per (role, distribution): pass rate, mean, quartiles, extremes."""
    rows = [
        ("prompts", *(d.count for _, d in columns)),
        ("pass rate", *(f"{d.pass_rate:.1%}" for _, d in columns)),
        ("mean", *(f"{d.mean:.3f}" for _, d in columns)),
        ("min", *(f"{d.minimum:.3f}" for _, d in columns)),
        ("25%", *(f"{d.lower_quartile:.3f}" for _, d in columns)),
        ("median", *(f"{d.median:.3f}" for _, d in columns)),
        ("75%", *(f"{d.upper_quartile:.3f}" for _, d in columns)),
        ("max", *(f"{d.maximum:.3f}" for _, d in columns)),
    ]
    return markdown_table(("grade", *(role for role, _ in columns)), rows, align="l" + "r" * len(columns))


def histogram_table(columns: Sequence[tuple[str, Sequence[float]]], low: float, high: float) -> str:
    """How many grades of each (role, grades) fall in each tenth of [low, high]."""
    counts = [histogram(grades, low, high) for _, grades in columns]
    width = (high - low) / HISTOGRAM_BINS
    rows = [
        (f"{low + index * width:.3g} - {low + (index + 1) * width:.3g}", *(model[index] for model in counts))
        for index in range(HISTOGRAM_BINS)
    ]
    return markdown_table(("grade", *(role for role, _ in columns)), rows, align="l" + "r" * len(columns))
