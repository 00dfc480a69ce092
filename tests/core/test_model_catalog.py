"""The model catalog: one entry per model, and every older lookup reads it."""

from __future__ import annotations

import re

from fine_tuning.core import settings
from fine_tuning.core.catalog import (
    DEFAULT_BASE_MODEL,
    MODELS,
    PRICING_AS_OF,
    catalog_model,
    example_token_limit,
    fine_tunable_names,
    resolve_model,
    training_price_per_million,
)


def test_each_model_is_written_once_with_a_dated_snapshot_and_its_alias() -> None:
    names = [name for model in MODELS for name in model.names]
    assert len(names) == len(set(names))
    assert {model.snapshot for model in MODELS} == {
        "gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06", "gpt-4.1-2025-04-14", "gpt-4.1-mini-2025-04-14",
        "gpt-4.1-nano-2025-04-14", "gpt-3.5-turbo-0125",
    }
    for model in MODELS:
        assert re.search(r"-(\d{4}-\d{2}-\d{2}|\d{4})$", model.snapshot)
        assert model.alias and model.snapshot.startswith(model.alias + "-")
        assert catalog_model(model.alias) is catalog_model(model.snapshot) is model


def test_every_lookup_answers_from_the_catalog() -> None:
    for model in MODELS:
        for name in model.names:
            assert resolve_model(name) == model.snapshot
            assert example_token_limit(name) == (model.example_token_limit, True)
            assert training_price_per_million(name) == model.training_price
            assert training_price_per_million(f"ft:{name}:org:suffix:abc") == model.training_price
    assert catalog_model("gpt-4-turbo") is None
    assert resolve_model("gpt-4-turbo") == "gpt-4-turbo"


def test_prices_and_limits_are_consistent() -> None:
    assert PRICING_AS_OF == "2025-06-01"
    for model in MODELS:
        assert model.fine_tunable == (model.training_price is not None) == (model.fine_tuned_prices is not None)
        assert model.example_token_limit <= model.context_window
        assert model.max_output_tokens < model.context_window
        base, tuned = model.base_prices, model.fine_tuned_prices
        assert tuned is not None and tuned.input >= base.input and tuned.output >= base.output
        assert (base.cached_input is None) == (tuned.cached_input is None)
    assert catalog_model("gpt-4o-mini").training_price == 3.00
    assert catalog_model("gpt-3.5-turbo").example_token_limit == 16_385


def test_the_default_base_model_is_a_fine_tunable_snapshot_of_the_catalog() -> None:
    assert settings.DEFAULT_BASE_MODEL == DEFAULT_BASE_MODEL == catalog_model(DEFAULT_BASE_MODEL).snapshot
    assert DEFAULT_BASE_MODEL in fine_tunable_names()
    assert fine_tunable_names() == tuple(name for model in MODELS for name in model.names)
