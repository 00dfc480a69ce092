"""A grader's scores as a distribution a person reads: quantiles, pass rate, histogram."""

from __future__ import annotations

import pytest

from fine_tuning.core.grade_distribution import distribution_table, grade_distribution, histogram, histogram_table


def test_quantiles_mean_and_pass_rate_of_known_grades() -> None:
    grades = [0.0, 0.1, 0.5, 0.5, 0.9, 1.0, 1.0, 1.0]
    d = grade_distribution(grades, pass_threshold=0.5)
    assert (d.count, d.minimum, d.maximum, d.passing) == (8, 0.0, 1.0, 6)
    assert d.mean == pytest.approx(5.0 / 8) and d.pass_rate == 0.75
    # NumPy's default (linear) quantiles of the same grades: 0.4, 0.7, 1.0.
    assert (d.lower_quartile, d.median, d.upper_quartile) == pytest.approx((0.4, 0.7, 1.0))


def test_a_model_right_on_half_and_useless_on_the_rest_is_visible_beyond_its_mean() -> None:
    split = grade_distribution([0.0] * 5 + [1.0] * 5, pass_threshold=1.0)
    middling = grade_distribution([0.5] * 10, pass_threshold=1.0)
    assert split.mean == middling.mean == 0.5
    assert (split.pass_rate, middling.pass_rate) == (0.5, 0.0)
    assert histogram([0.0] * 5 + [1.0] * 5, 0.0, 1.0) == [5, 0, 0, 0, 0, 0, 0, 0, 0, 5]


def test_histogram_bins_cover_the_range_and_clamp_outliers() -> None:
    assert histogram([0.0, 0.05, 0.1, 0.99, 1.0, 7.0, -1.0], 0.0, 1.0, bins=10) == [3, 1, 0, 0, 0, 0, 0, 0, 0, 3]
    assert sum(histogram([1, 2, 3, 4, 5, 6, 7], 0.0, 7.0, bins=7)) == 7
    with pytest.raises(ValueError, match="high > low"):
        histogram([1.0], 1.0, 1.0)
    with pytest.raises(ValueError, match="at least one grade"):
        grade_distribution([], 0.5)


def test_tables_put_models_side_by_side() -> None:
    challenger, champion = [1.0, 1.0, 0.5, 0.0], [0.5, 0.5, 0.5, 0.0]
    table = distribution_table([("challenger", grade_distribution(challenger, 1.0)),
                                ("production", grade_distribution(champion, 1.0))]).splitlines()
    assert table[0] == "| grade | challenger | production |"
    assert table[3] == "| pass rate | 50.0% | 0.0% |"
    assert table[4] == "| mean | 0.625 | 0.375 |"
    bins = histogram_table([("challenger", challenger), ("production", champion)], 0.0, 1.0).splitlines()
    assert bins[2] == "| 0 - 0.1 | 1 | 1 |" and bins[7] == "| 0.5 - 0.6 | 1 | 3 |" and bins[-1] == "| 0.9 - 1 | 2 | 0 |"
