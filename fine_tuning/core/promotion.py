"""Which model is in production after a run: the champion stays unless a challenger clearly beats it.

A challenger (this run's fine-tuned model, or its best checkpoint) replaces the champion only
when its accuracy check passed (it is not worse than its base model), it is strictly more
accurate than the champion on the same held-out prompts by at least `min_improvement`, and
McNemar's exact test on the prompts exactly one of them got right gives p below `max_p_value`
(`core.paired_test`): on a few hundred prompts a handful of answers is luck, and swapping models
on luck costs applications a change for nothing. A tie keeps the champion. The first production
model needs no test (there is nothing to compare with). No Dagster here.
"""

from __future__ import annotations

from dataclasses import dataclass

from fine_tuning.core.paired_test import DiscordantPairs

# Accuracies are ratios of counts on the same prompts; this only absorbs float rounding.
TOLERANCE = 1e-9
# The paired test guards against luck; min_improvement is the smallest real gain worth a model swap.
# One point: a significant gain below that (only a test split of thousands of prompts can show one)
# is not worth a new model name in every application. On the shipped 364 prompts the test binds first.
DEFAULT_MIN_IMPROVEMENT = 0.01
DEFAULT_MAX_P_VALUE = 0.05  # the usual 5% chance of promoting a model that is no better; 1.0 turns the test off


@dataclass(frozen=True)
class Decision:
    """The production model after the decision, whether the challenger was promoted, and why."""

    model_name: str | None
    promoted: bool
    reason: str
    p_value: float | None = None  # McNemar's exact test against the champion; None without one
    pairs: DiscordantPairs | None = None


@dataclass(frozen=True)
class Contest:
    """What one evaluation found: the challenger and champion on the same prompts, and the verdict."""

    challenger: str
    challenger_accuracy: float
    champion: str | None
    champion_accuracy: float | None
    check_passed: bool
    check_description: str = ""
    pairs: DiscordantPairs | None = None  # None when the champion's answers per prompt are unknown


@dataclass(frozen=True)
class Thresholds:
    """What a challenger must show to replace the champion."""

    min_improvement: float = DEFAULT_MIN_IMPROVEMENT
    max_p_value: float = DEFAULT_MAX_P_VALUE

    @property
    def tests_significance(self) -> bool:
        """Whether the paired test decides anything (max_p_value 1.0 turns it off)."""
        return self.max_p_value < 1.0


def _pct(value: float) -> str:
    return f"{value:.1%}"


def format_p(p_value: float) -> str:
    """A p-value as people read it: 3 significant digits, scientific below 0.001."""
    return f"{p_value:.3g}" if p_value >= 0.001 else f"{p_value:.2e}"


def _test_result(pairs: DiscordantPairs, thresholds: Thresholds) -> str:
    split = f"{pairs.challenger_right} prompts only the challenger got right, {pairs.champion_right} only the champion"
    if not thresholds.tests_significance:
        return f"McNemar p = {format_p(pairs.p_value)}, not required (max_p_value 1.0); {split}"
    sign = "<" if pairs.p_value < thresholds.max_p_value else ">="
    return f"McNemar p = {format_p(pairs.p_value)} {sign} max_p_value {thresholds.max_p_value:g}; {split}"


def decide(contest: Contest, thresholds: Thresholds) -> Decision:
    """Promote the challenger, or keep the champion, saying which condition decided."""
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
            f"{challenger} is the first production model ({_pct(contest.challenger_accuracy)} on the test prompts; "
            "no paired test without a champion).",
        )
    if contest.champion_accuracy is None or contest.pairs is None:
        return Decision(
            champion, False,
            f"{champion}'s answers to these prompts are unknown, so there is nothing to compare {challenger} with: "
            f"re-run the accuracy check; {champion} stays in production.",
        )
    return _contested(contest, champion, contest.champion_accuracy, contest.pairs, thresholds)


def _contested(
    contest: Contest, champion: str, champion_accuracy: float, pairs: DiscordantPairs, thresholds: Thresholds
) -> Decision:
    """Challenger vs champion: better, by enough, and not by luck."""
    gain = contest.challenger_accuracy - champion_accuracy
    scores = f"{_pct(contest.challenger_accuracy)} vs {_pct(champion_accuracy)} ({gain:+.1%})"
    test = _test_result(pairs, thresholds)
    better = gain > TOLERANCE
    enough = gain >= thresholds.min_improvement - TOLERANCE
    significant = not thresholds.tests_significance or pairs.p_value < thresholds.max_p_value
    challenger = contest.challenger

    def decision(model: str, promoted: bool, reason: str) -> Decision:
        return Decision(model, promoted, reason, pairs.p_value, pairs)

    if better and enough and significant:
        return decision(challenger, True, f"{challenger} beats {champion}: {scores}; {test}.")
    if not better:
        return decision(champion, False, f"{challenger} is not better than {champion}: {scores}; {test}; {champion} stays.")
    failed = []
    if not enough:
        failed.append(f"below min_improvement {thresholds.min_improvement:.1%}")
    if not significant:
        failed.append("not significant (it may be luck)")
    return decision(
        champion, False, f"{challenger} is better than {champion} but its gain is {' and '.join(failed)}: {scores}; "
        f"{test}; {champion} stays.",
    )
