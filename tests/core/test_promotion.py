"""The promotion rule: only a challenger that passed its check and is strictly better takes over."""

from __future__ import annotations

import pytest

from fine_tuning.core.promotion import Contest, decide

CHAMPION, CHALLENGER = "ft:gpt-4o-mini-2024-07-18:org:goodreads:champ", "ft:gpt-4o-mini-2024-07-18:org:goodreads:new"


def contest(challenger_accuracy: float, champion_accuracy: float | None, passed: bool = True,
            champion: str | None = CHAMPION) -> Contest:
    return Contest(CHALLENGER, challenger_accuracy, champion, champion_accuracy, passed, "worse than its base")


def test_the_first_model_that_passes_its_check_is_promoted() -> None:
    decision = decide(contest(0.7, None, champion=None), min_improvement=0.0)
    assert (decision.model_name, decision.promoted) == (CHALLENGER, True)
    assert "first production model" in decision.reason


def test_a_first_model_that_fails_its_check_leaves_nothing_in_production() -> None:
    decision = decide(contest(0.1, None, passed=False, champion=None), min_improvement=0.0)
    assert (decision.model_name, decision.promoted) == (None, False)
    assert "no production model yet" in decision.reason


def test_a_better_challenger_takes_over() -> None:
    decision = decide(contest(0.80, 0.75), min_improvement=0.0)
    assert (decision.model_name, decision.promoted) == (CHALLENGER, True)
    assert "80.0% vs 75.0%" in decision.reason


@pytest.mark.parametrize("challenger_accuracy", [0.60, 0.75])
def test_a_worse_or_equal_challenger_leaves_the_champion(challenger_accuracy: float) -> None:
    decision = decide(contest(challenger_accuracy, 0.75), min_improvement=0.0)
    assert (decision.model_name, decision.promoted) == (CHAMPION, False)  # a tie keeps the champion
    assert "strictly better" in decision.reason


def test_a_challenger_that_failed_its_check_is_never_promoted_even_when_more_accurate() -> None:
    decision = decide(contest(0.90, 0.75, passed=False), min_improvement=0.0)
    assert (decision.model_name, decision.promoted) == (CHAMPION, False)
    assert "failed its accuracy check (worse than its base)" in decision.reason


@pytest.mark.parametrize(("challenger_accuracy", "promoted"), [(0.79, False), (0.80, True), (0.81, True)])
def test_min_improvement_is_the_least_gain_that_promotes(challenger_accuracy: float, promoted: bool) -> None:
    decision = decide(contest(challenger_accuracy, 0.75), min_improvement=0.05)
    assert decision.promoted is promoted
    assert decision.model_name == (CHALLENGER if promoted else CHAMPION)


def test_the_production_model_competing_with_itself_stays_without_a_promotion() -> None:
    decision = decide(Contest(CHAMPION, 0.8, CHAMPION, 0.8, True), min_improvement=0.0)
    assert (decision.model_name, decision.promoted) == (CHAMPION, False)
    assert "already the production model" in decision.reason
