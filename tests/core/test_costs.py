"""Training and inference costs come from the catalog's dated prices; a batch costs half."""

from __future__ import annotations

import pytest

from fine_tuning.core.catalog import catalog_model
from fine_tuning.core.costs import BATCH_DISCOUNT, inference_cost, inference_prices, training_cost

BASE = "gpt-4o-mini-2024-07-18"
TUNED = f"ft:{BASE}:org:goodreads:abc123"


def test_training_cost_is_trained_tokens_times_the_training_price() -> None:
    entry = catalog_model(BASE)
    assert entry is not None and entry.training_price is not None
    assert training_cost(BASE, 2_000_000) == pytest.approx(2 * entry.training_price)
    assert training_cost("no-such-model", 1000) is None


def test_fine_tuned_models_and_their_checkpoints_pay_the_fine_tuned_price() -> None:
    entry = catalog_model(BASE)
    assert entry is not None
    assert inference_prices(BASE) == entry.base_prices
    assert inference_prices(TUNED) == entry.fine_tuned_prices
    assert inference_prices(f"{TUNED}:ckpt-step-40") == entry.fine_tuned_prices
    assert inference_prices("gpt-4o-mini") == entry.base_prices  # the alias prices as its snapshot
    assert inference_prices("no-such-model") is None


def test_a_batch_costs_half_of_the_same_requests_online() -> None:
    prices = inference_prices(TUNED)
    assert prices is not None
    online = inference_cost(TUNED, 1_000_000, 100_000)
    assert online == pytest.approx(prices.input + prices.output / 10)
    assert inference_cost(TUNED, 1_000_000, 100_000, batch=True) == pytest.approx(online * BATCH_DISCOUNT)
    assert inference_cost("no-such-model", 10, 10) is None
