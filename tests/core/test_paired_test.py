"""McNemar's exact test against known values and against its definition."""

from __future__ import annotations

from fractions import Fraction
from math import comb

import pytest

from fine_tuning.core.paired_test import DiscordantPairs, discordant_pairs, mcnemar_exact_p


@pytest.mark.parametrize(
    ("challenger_right", "champion_right", "expected"),
    [
        (0, 0, 1.0),  # no discordant pair: no evidence either way
        (1, 0, 1.0),
        (5, 0, 0.0625),  # 2 / 2**5: five of five is not enough at 5%
        (6, 0, 0.03125),  # 2 / 2**6: six of six is
        (6, 16, 0.052478790283203125),  # statsmodels' documented mcnemar(exact=True) example
        (3, 9, 0.14599609375),  # 2 * (1 + 12 + 66 + 220) / 2**12
        (15, 5, 0.041389465332031250),  # 2 * 21700 / 2**20
        (10, 10, 1.0),  # a tie is capped at 1
    ],
)
def test_known_values(challenger_right: int, champion_right: int, expected: float) -> None:
    assert mcnemar_exact_p(challenger_right, champion_right) == pytest.approx(expected, rel=1e-12)


def _by_definition(b: int, c: int) -> Fraction:
    """Two-sided exact binomial p: the probability of every split no likelier than the observed one."""
    n = b + c
    probability = [Fraction(comb(n, k), 2**n) for k in range(n + 1)]
    return min(Fraction(1), sum((share for share in probability if share <= probability[b]), Fraction(0)))


@pytest.mark.parametrize("b", range(0, 25, 3))
@pytest.mark.parametrize("c", range(0, 25, 4))
def test_agrees_with_the_definition_and_is_symmetric(b: int, c: int) -> None:
    p = mcnemar_exact_p(b, c)
    assert p == pytest.approx(float(_by_definition(b, c)) if b + c else 1.0, rel=1e-12)
    assert p == mcnemar_exact_p(c, b)


def test_tiny_p_values_stay_exact_on_large_counts() -> None:
    assert mcnemar_exact_p(200, 0) == 2.0**-199
    assert 0.0 < mcnemar_exact_p(600, 400) < 1e-9  # 1000 discordant pairs, exact integer arithmetic
    with pytest.raises(ValueError, match=">= 0"):
        mcnemar_exact_p(-1, 3)


def test_discordant_pairs_count_only_prompts_one_model_got_right() -> None:
    challenger = {"a": True, "b": True, "c": False, "d": True, "e": False}
    champion = {"a": True, "b": False, "c": True, "d": False, "e": False}
    pairs = discordant_pairs(challenger, champion)
    assert pairs == DiscordantPairs(challenger_right=2, champion_right=1)
    assert pairs.total == 3 and pairs.to_json() == {"challenger_right": 2, "champion_right": 1}
    assert pairs.p_value == mcnemar_exact_p(2, 1) == 1.0


def test_a_paired_test_refuses_answers_to_different_prompts() -> None:
    with pytest.raises(ValueError, match="same prompts; 2 prompts were answered by one model only"):
        discordant_pairs({"a": True, "b": False}, {"a": True, "c": False})
