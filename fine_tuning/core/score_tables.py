"""Markdown tables of model scores: per-label metrics, confusion matrices, every model at once."""

from __future__ import annotations

from collections.abc import Sequence

from fine_tuning.core.label_metrics import answer_counts, answers_outside, macro_f1, per_label_metrics
from fine_tuning.core.markdown import markdown_table
from fine_tuning.core.scoring import ModelScore


def per_label_table(columns: Sequence[tuple[str, ModelScore]], labels: Sequence[str]) -> str:
    """Precision, recall and F1 of each label, one group of columns per (role, score), support once.

    The last rows give each model's macro-F1 and accuracy on the same prompts.
    """
    metrics = [per_label_metrics(score, labels) for _, score in columns]
    rows: list[tuple[object, ...]] = []
    for index, label in enumerate(labels):
        support = max(model[index].support for model in metrics)
        cells = [f"{value:.2f}" for model in metrics for value in
                 (model[index].precision, model[index].recall, model[index].f1)]
        rows.append((label, support, *cells))
    blanks = ("", "")
    rows.append(("**macro-F1**", "", *(cell for model in metrics for cell in (*blanks, f"**{macro_f1(model):.3f}**"))))
    rows.append(("**accuracy**", max((score.examples for _, score in columns), default=0),
                 *(cell for _, score in columns for cell in (*blanks, f"**{score.accuracy:.1%}**"))))
    header = ("label", "support", *(f"{role} {name}" for role, _ in columns for name in ("P", "R", "F1")))
    return markdown_table(header, rows, align="lr" + "rrr" * len(columns))


def confusion_matrix_table(score: ModelScore, labels: Sequence[str]) -> str:
    """Rows: the true label; columns: the answer, including answers outside the label set (and no answer).

    Right answers (the diagonal) are in bold; an empty cell is 0.
    """
    counts = answer_counts(score)
    truths = [*labels, *sorted({truth for truth, _ in counts} - set(labels))]
    answers = [*labels, *answers_outside(score, labels)]
    rows = []
    for truth in truths:
        cells = [_cell(counts[(truth, answer)], truth == answer) for answer in answers]
        rows.append((truth, *cells, sum(counts[(truth, answer)] for answer in answers)))
    header = ("true \\ answer", *answers, "total")
    return markdown_table(header, rows, align="l" + "r" * (len(answers) + 1))


def _cell(count: int, right: bool) -> str:
    if not count:
        return ""
    return f"**{count}**" if right else str(count)


def confusion_matrices(columns: Sequence[tuple[str, ModelScore]], labels: Sequence[str]) -> str:
    """One confusion matrix per (role, score), each under a heading naming the role and the model."""
    return "\n\n".join(
        f"**{role}** `{score.model}` ({score.accuracy:.1%} right)\n\n{confusion_matrix_table(score, labels)}"
        for role, score in columns
    )


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
