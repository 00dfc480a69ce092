"""What training and evaluation cost in USD, from the model catalog's dated prices (no Dagster here).

Training is billed per trained token at the base snapshot's training price. Requests are billed
per prompt and completion token at the base model's or, for a fine-tuned model (or one of its
checkpoints), the fine-tuned inference price of its base snapshot; the Batch API bills half.
"""

from __future__ import annotations

from fine_tuning.core.catalog import TokenPrices, catalog_model, resolve_model, training_price_per_million

BATCH_DISCOUNT = 0.5  # the Batch API bills half the price of the same requests made online
COST_DIGITS = 6


def training_cost(base_model: str, trained_tokens: int) -> float | None:
    """USD a fine-tuning job that trained `trained_tokens` costs; None when the model is unpriced."""
    price = training_price_per_million(base_model)
    if price is None:
        return None
    return round(trained_tokens * price / 1_000_000, COST_DIGITS)


def inference_prices(model: str) -> TokenPrices | None:
    """Per-1M-token prices of requests to `model` (base, fine-tuned or checkpoint); None when unknown."""
    entry = catalog_model(resolve_model(model))
    if entry is None:
        return None
    return entry.fine_tuned_prices if model.strip().startswith("ft:") else entry.base_prices


def inference_cost(model: str, prompt_tokens: int, completion_tokens: int, batch: bool = False) -> float | None:
    """USD of requests to `model` that took these tokens (half in a batch); None when unpriced."""
    prices = inference_prices(model)
    if prices is None:
        return None
    cost = (prompt_tokens * prices.input + completion_tokens * prices.output) / 1_000_000
    return round(cost * (BATCH_DISCOUNT if batch else 1.0), COST_DIGITS)
