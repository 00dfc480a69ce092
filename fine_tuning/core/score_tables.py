"""Markdown tables of model scores: accuracy per category, the commonest mistakes, every model at once."""

from __future__ import annotations

from collections.abc import Sequence

from fine_tuning.core.markdown import markdown_table
from fine_tuning.core.scoring import ModelScore

TOP_CONFUSIONS = 10


def per_category_table(columns: Sequence[tuple[str, ModelScore]], categories: Sequence[str]) -> str:
    """Accuracy per category, one column per (label, score); categories without examples left out."""
    rows = []
    for category in categories:
        total = max((score.per_category.get(category, [0, 0])[1] for _, score in columns), default=0)
        if total:
            cells = [f"{score.per_category.get(category, [0, 0])[0] / total:.1%}" for _, score in columns]
            rows.append((category, total, *cells))
    header = ("category", "examples", *(label for label, _ in columns))
    return markdown_table(header, rows, align="lr" + "r" * len(columns))


def confusion_table(score: ModelScore, top: int = TOP_CONFUSIONS) -> str:
    """The most frequent (true -> predicted) mistakes of one model, under a title."""
    rows = [(truth, predicted, count) for (truth, predicted), count in score.confusions.most_common(top)]
    table = markdown_table(("true", "predicted", "count"), rows or [("-", "-", 0)], align="llr")
    return f"Top confusions of {score.model}\n\n{table}"


def models_table(rows: Sequence[tuple[str, ModelScore, float | None]]) -> str:
    """One line per (role, score, USD paid now or None when the score was reused): accuracy, failures, tokens, cost."""
    lines = [
        (
            role, score.model, f"{score.accuracy:.1%}", score.examples, score.failed_requests,
            score.prompt_tokens + score.completion_tokens, "reused" if cost is None else f"${cost:.4f}",
        )
        for role, score, cost in rows
    ]
    header = ("role", "model", "accuracy", "examples", "failed", "tokens", "cost")
    return markdown_table(header, lines, align="llrrrrr")
