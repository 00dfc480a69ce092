"""The promotion rule: only a challenger that passed its check, is better by enough and not by luck takes over."""

from __future__ import annotations

import pytest

from fine_tuning.core.paired_test import DiscordantPairs
from fine_tuning.core.promotion import DEFAULT_MAX_P_VALUE, DEFAULT_MIN_IMPROVEMENT, Contest, Thresholds, decide

CHAMPION, CHALLENGER = "ft:gpt-4o-mini-2024-07-18:org:goodreads:champ", "ft:gpt-4o-mini-2024-07-18:org:goodreads:new"
EXAMPLES = 364  # the shipped sample's test split
NO_TEST = Thresholds(min_improvement=0.0, max_p_value=1.0)


def contest(challenger_right: int, champion_right: int, passed: bool = True, same: int = 300,
            champion: str | None = CHAMPION) -> Contest:
    """Both models on EXAMPLES prompts: `same` right by both, then the discordant ones."""
    return Contest(
        CHALLENGER, (same + challenger_right) / EXAMPLES, champion,
        (same + champion_right) / EXAMPLES if champion else None, passed, "worse than its base",
        DiscordantPairs(challenger_right, champion_right) if champion else None,
    )


def test_the_defaults_ask_for_a_significant_gain_of_at_least_one_point() -> None:
    assert Thresholds() == Thresholds(min_improvement=DEFAULT_MIN_IMPROVEMENT, max_p_value=DEFAULT_MAX_P_VALUE)
    assert (DEFAULT_MIN_IMPROVEMENT, DEFAULT_MAX_P_VALUE) == (0.01, 0.05)


def test_the_first_model_that_passes_its_check_is_promoted_without_a_test() -> None:
    decision = decide(contest(0, 0, champion=None), Thresholds())
    assert (decision.model_name, decision.promoted, decision.p_value, decision.pairs) == (CHALLENGER, True, None, None)
    assert "first production model" in decision.reason and "no paired test" in decision.reason


def test_a_first_model_that_fails_its_check_leaves_nothing_in_production() -> None:
    decision = decide(contest(0, 0, passed=False, champion=None), Thresholds())
    assert (decision.model_name, decision.promoted) == (None, False)
    assert "no production model yet" in decision.reason


def test_a_clearly_better_challenger_takes_over_with_its_p_value() -> None:
    decision = decide(contest(30, 5), Thresholds())
    assert (decision.model_name, decision.promoted) == (CHALLENGER, True)
    assert decision.pairs == DiscordantPairs(30, 5) and decision.p_value is not None and decision.p_value < 1e-4
    assert f"{CHALLENGER} beats {CHAMPION}: 90.7% vs 83.8% (+6.9%); McNemar p = " in decision.reason
    assert "< max_p_value 0.05; 30 prompts only the challenger got right, 5 only the champion" in decision.reason


def test_a_challenger_better_by_a_few_answers_stays_out_at_the_default_p() -> None:
    # Eight answers better (+2.2 points, past min_improvement) on 364 prompts: 12 vs 4 discordant is p = 0.077.
    decision = decide(contest(12, 4), Thresholds())
    assert (decision.model_name, decision.promoted) == (CHAMPION, False)
    assert decision.p_value == pytest.approx(0.0768, abs=1e-4)
    assert "but its gain is not significant (it may be luck)" in decision.reason
    assert "min_improvement" not in decision.reason.split(":")[0]
    assert "McNemar p = 0.0768 >= max_p_value 0.05" in decision.reason and f"{CHAMPION} stays." in decision.reason


def test_max_p_value_one_turns_the_test_off_but_the_p_value_is_still_recorded() -> None:
    decision = decide(contest(12, 4), NO_TEST)
    assert (decision.model_name, decision.promoted) == (CHALLENGER, True)
    assert decision.p_value == pytest.approx(0.0768, abs=1e-4)
    assert "not required (max_p_value 1.0)" in decision.reason


@pytest.mark.parametrize(("challenger_right", "champion_right"), [(4, 12), (7, 7)])
def test_a_worse_or_equal_challenger_leaves_the_champion(challenger_right: int, champion_right: int) -> None:
    decision = decide(contest(challenger_right, champion_right), NO_TEST)  # a tie keeps the champion, test or not
    assert (decision.model_name, decision.promoted) == (CHAMPION, False)
    assert f"is not better than {CHAMPION}" in decision.reason


def test_a_challenger_that_failed_its_check_is_never_promoted_even_when_more_accurate() -> None:
    decision = decide(contest(40, 0, passed=False), Thresholds())
    assert (decision.model_name, decision.promoted) == (CHAMPION, False)
    assert "failed its accuracy check (worse than its base)" in decision.reason


@pytest.mark.parametrize(("challenger_right", "promoted"), [(17, False), (18, True), (19, True)])
def test_min_improvement_is_the_least_gain_that_promotes(challenger_right: int, promoted: bool) -> None:
    # 18 more right answers of 364 is +4.95%; the test alone would promote all three (p < 1e-4).
    decision = decide(contest(challenger_right, 0), Thresholds(min_improvement=18 / 364))
    assert decision.promoted is promoted
    assert decision.model_name == (CHALLENGER if promoted else CHAMPION)
    if not promoted:
        assert "its gain is below min_improvement 4.9%:" in decision.reason and "not significant" not in decision.reason


def test_both_failed_conditions_are_named() -> None:
    decision = decide(contest(2, 1), Thresholds(min_improvement=0.05))
    assert "its gain is below min_improvement 5.0% and not significant (it may be luck)" in decision.reason


def test_a_champion_whose_answers_are_unknown_is_not_replaced() -> None:
    unknown = Contest(CHALLENGER, 0.9, CHAMPION, 0.8, True, pairs=None)
    decision = decide(unknown, Thresholds())
    assert (decision.model_name, decision.promoted, decision.p_value) == (CHAMPION, False, None)
    assert "re-run the accuracy check" in decision.reason


def test_the_production_model_competing_with_itself_stays_without_a_promotion() -> None:
    decision = decide(Contest(CHAMPION, 0.8, CHAMPION, 0.8, True, pairs=DiscordantPairs(0, 0)), Thresholds())
    assert (decision.model_name, decision.promoted) == (CHAMPION, False)
    assert "already the production model" in decision.reason
