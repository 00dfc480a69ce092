"""pricing: dated model snapshots, per-example token limits, prices, the "auto" epochs rule and cost."""

import pytest

from fine_tuning.core.catalog import (
    UNKNOWN_MODEL_TOKEN_LIMIT,
    auto_epochs,
    estimate_training_cost,
    example_token_limit,
    resolve_model,
    training_price_per_million,
)


@pytest.mark.parametrize(
    ("examples", "epochs"),
    [(1, 25), (3, 25), (10, 10), (20, 5), (33, 3), (34, 3), (1000, 3), (8333, 3), (8334, 2), (30000, 1)],
)
def test_auto_epochs_follow_the_cookbook(examples: int, epochs: int) -> None:
    assert auto_epochs(examples) == epochs


def test_models_resolve_to_dated_snapshots() -> None:
    assert resolve_model("gpt-4o-mini") == "gpt-4o-mini-2024-07-18"
    assert resolve_model("ft:gpt-4o-mini-2024-07-18:org:goodreads:abc123") == "gpt-4o-mini-2024-07-18"
    assert example_token_limit("gpt-4o-mini-2024-07-18") == (65_536, True)
    assert example_token_limit("gpt-3.5-turbo") == (16_385, True)
    assert example_token_limit("brand-new-model") == (UNKNOWN_MODEL_TOKEN_LIMIT, False)
    assert training_price_per_million("gpt-4.1-nano-2025-04-14") == 1.50
    assert training_price_per_million("brand-new-model") is None


def test_cost_is_billing_tokens_times_epochs_times_the_price_per_million() -> None:
    assert estimate_training_cost(1_000_000, 3, 3.00) == 9.0
    assert estimate_training_cost(12_345, 7, 25.00) == round(12_345 * 7 * 25.0 / 1e6, 4)
    assert estimate_training_cost(12_345, 3, None) is None  # unpriced model: cost unknown, not zero
