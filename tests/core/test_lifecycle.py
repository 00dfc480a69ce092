"""Model lifecycles: catalog dates per provider, the provider's own date winning, runway and verdicts.

Every test injects its `today`; none compares the real date with real ones.
"""

from __future__ import annotations

from datetime import date

import pytest

from fine_tuning.core.catalog import LIFECYCLES, MODELS, model_lifecycle
from fine_tuning.core.lifecycle import (
    base_model_refusal,
    model_dates,
    parse_shutdown_date,
    production_verdict,
)

DAY = date(2026, 12, 7)


def test_openai_wind_down_dates_are_in_the_catalog() -> None:
    for snapshot in ("gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06", "gpt-4.1-2025-04-14", "gpt-4.1-mini-2025-04-14"):
        entry = model_lifecycle("openai", snapshot)
        assert entry is not None
        assert (entry.training_retired, entry.shutdown) == (date(2027, 1, 6), date(2027, 1, 14))
    assert model_lifecycle("openai", "gpt-4.1-nano").shutdown == date(2026, 10, 23)  # alias resolves
    # a fine-tuned model follows its base
    assert model_lifecycle("openai", "ft:gpt-4o-mini-2024-07-18:org:x:abc").shutdown == date(2027, 1, 14)
    assert model_lifecycle("local", "gpt-4o-mini-2024-07-18") is None


def test_every_lifecycle_names_a_known_provider_and_a_snapshot() -> None:
    snapshots = {model.snapshot for model in MODELS} | {"o4-mini-2025-04-16"}
    for entry in LIFECYCLES:
        assert entry.provider in ("openai", "azure") and entry.snapshot in snapshots and entry.advice


def test_the_providers_shutdown_date_wins_over_the_catalog() -> None:
    dates = model_dates("gpt-4o-mini-2024-07-18", "openai", reported_shutdown=date(2027, 2, 1))
    assert (dates.shutdown, dates.shutdown_source) == (date(2027, 2, 1), "provider")
    assert model_dates("gpt-4o-mini-2024-07-18", "openai").shutdown_source == "catalog"
    local = model_dates("gpt-4o-mini-2024-07-18", "local")
    assert (local.shutdown, local.days_until_shutdown(DAY)) == (None, None)


@pytest.mark.parametrize(("value", "expected"), [
    ("2027-01-14", date(2027, 1, 14)), ("2027-01-14T00:00:00Z", date(2027, 1, 14)),
    (1_799_884_800, date(2027, 1, 14)), (None, None), ("", None),
])
def test_shutdown_dates_are_read_as_providers_send_them(value: object, expected: date | None) -> None:
    assert parse_shutdown_date(value) == expected


def test_a_base_model_shutting_down_within_the_runway_is_refused_naming_date_and_successor() -> None:
    dates = model_dates("gpt-4o-mini-2024-07-18", "azure", reported_shutdown=date(2026, 12, 17))
    refusal = base_model_refusal(dates, DAY, min_runway_days=30)
    assert refusal is not None
    assert "shuts down in 10 days" in refusal and "2026-12-17" in refusal and "gpt-4.1-mini-2025-04-14" in refusal
    assert base_model_refusal(dates, DAY, min_runway_days=9) is None


def test_training_retirement_refuses_even_with_runway_left() -> None:
    dates = model_dates("gpt-4o-mini", "openai")
    assert base_model_refusal(dates, date(2026, 12, 1), min_runway_days=30) is None  # 44 days left
    refusal = base_model_refusal(dates, date(2027, 1, 6), min_runway_days=0)
    assert refusal is not None and "training retired on 2027-01-06" in refusal and "FINE_TUNING_PROVIDER=azure" in refusal


@pytest.mark.parametrize(("days", "severity"), [(61, "ok"), (60, "warn"), (15, "warn"), (14, "error"), (0, "error")])
def test_production_verdict_warns_at_60_days_and_fails_at_14(days: int, severity: str) -> None:
    dates = model_dates("ft:gpt-4o-mini-2024-07-18:o:s:1", "openai",
                        reported_shutdown=date.fromordinal(DAY.toordinal() + days))
    verdict = production_verdict(dates, DAY, answers=True)
    assert verdict.severity == severity
    if severity != "ok":
        assert dates.shutdown.isoformat() in verdict.message and "re-tune" in verdict.message


def test_a_model_that_no_longer_answers_is_an_error_saying_what_to_do() -> None:
    verdict = production_verdict(model_dates("ft:x", "local"), DAY, answers=False, reason="404 model_not_found")
    assert verdict.severity == "error" and "no longer answers" in verdict.message and "re-tune" in verdict.message
