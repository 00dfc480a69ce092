"""Which model is in production after a run: the champion stays unless a challenger clearly beats it.

A challenger (this run's fine-tuned model, or its best checkpoint) replaces the champion only
when its accuracy check passed (it is not worse than its base model) and it is strictly more
accurate than the champion on the same held-out prompts, by at least `min_improvement`. A tie
keeps the champion: swapping models costs applications a change for no gain. No Dagster here.
"""

from __future__ import annotations

from dataclasses import dataclass

# Accuracies are ratios of counts on the same prompts; this only absorbs float rounding.
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Decision:
    """The production model after the decision, whether the challenger was promoted, and why."""

    model_name: str | None
    promoted: bool
    reason: str


@dataclass(frozen=True)
class Contest:
    """What one evaluation found: the challenger and champion on the same prompts, and the verdict."""

    challenger: str
    challenger_accuracy: float
    champion: str | None
    champion_accuracy: float | None
    check_passed: bool
    check_description: str = ""


def _pct(value: float) -> str:
    return f"{value:.1%}"


def decide(contest: Contest, min_improvement: float) -> Decision:
    """Promote the challenger, or keep the champion, saying why."""
    challenger, champion = contest.challenger, contest.champion
    if champion is not None and challenger == champion:
        return Decision(champion, False, f"{challenger} is already the production model.")
    if not contest.check_passed:
        keep = f"{champion} stays in production" if champion else "there is no production model yet"
        why = contest.check_description or "it is worse than its base model"
        return Decision(champion, False, f"{challenger} failed its accuracy check ({why}); {keep}.")
    if champion is None:
        return Decision(
            challenger, True,
            f"{challenger} is the first production model ({_pct(contest.challenger_accuracy)} on the test prompts).",
        )
    if contest.champion_accuracy is None:
        return Decision(champion, False, f"{champion} was not evaluated on these prompts; it stays in production.")
    gain = contest.challenger_accuracy - contest.champion_accuracy
    scores = f"{_pct(contest.challenger_accuracy)} vs {_pct(contest.champion_accuracy)}"
    if gain > TOLERANCE and gain >= min_improvement - TOLERANCE:
        return Decision(challenger, True, f"{challenger} beats {champion}: {scores} (+{gain:.1%}).")
    needed = f"strictly better by at least {min_improvement:.1%}" if min_improvement > 0 else "strictly better"
    return Decision(champion, False, f"{challenger} is not {needed} than {champion} ({scores}); {champion} stays.")
