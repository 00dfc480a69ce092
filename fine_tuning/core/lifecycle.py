"""Model lifecycles as the pipeline acts on them: dates, runway, and what to do (Dagster-free).

The catalog's dates per provider (`catalog.LIFECYCLES`) meet the provider's own `shutdown_date`
(from `models.retrieve`), which wins. Every function takes `today` so callers decide the clock:
the Dagster steps pass the UTC date, tests pass the dates they mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from fine_tuning.core.catalog import model_lifecycle, resolve_model

DEFAULT_MIN_RUNWAY_DAYS = 30  # a base model must keep answering this long after a run starts
WARN_DAYS = 60  # production_model_lifecycle warns at this many days to shutdown or fewer
ERROR_DAYS = 14  # ... and fails (ERROR) at this many or fewer


@dataclass(frozen=True)
class ModelDates:
    """What is known of one model's end on one provider."""

    model: str
    provider: str
    training_retired: date | None
    shutdown: date | None
    shutdown_source: str  # "provider" (models.retrieve), "catalog" or "none"
    successor: str | None
    advice: str

    def days_until_shutdown(self, today: date) -> int | None:
        """Whole days from `today` to the shutdown (0 on the day, negative after); None without a date."""
        return None if self.shutdown is None else (self.shutdown - today).days


def utc_today() -> date:
    """Today's date in UTC: the day providers' dates are in."""
    return datetime.now(UTC).date()


def parse_shutdown_date(value: Any) -> date | None:
    """A `shutdown_date` as a provider reports it (ISO date or datetime string, or Unix seconds); None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC).date()
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    raise ValueError(f"unreadable shutdown_date {value!r}")


def model_dates(model: str, provider: str, reported_shutdown: date | None = None) -> ModelDates:
    """The model's dates on `provider`: the catalog's, with the provider's reported shutdown winning."""
    entry = model_lifecycle(provider, model)
    shutdown, source = (reported_shutdown, "provider") if reported_shutdown else (
        (entry.shutdown, "catalog") if entry and entry.shutdown else (None, "none"))
    return ModelDates(
        model=model, provider=provider,
        training_retired=entry.training_retired if entry else None,
        shutdown=shutdown, shutdown_source=source,
        successor=entry.successor if entry else None,
        advice=entry.advice if entry else "re-tune on a newer fine-tunable model or on another provider",
    )


def _what_to_do(dates: ModelDates) -> str:
    if dates.successor:
        return f"successor: {dates.successor} ({dates.advice})"
    return f"no successor named on {dates.provider}: {dates.advice}"


def base_model_refusal(dates: ModelDates, today: date, min_runway_days: int) -> str | None:
    """Why a run must not fine-tune this base model (training retired, or too little runway); None when it may."""
    base = resolve_model(dates.model)
    if dates.training_retired is not None and today >= dates.training_retired:
        return (f"{base} can no longer be fine-tuned on {dates.provider}: training retired on "
                f"{dates.training_retired.isoformat()}; {_what_to_do(dates)}.")
    days = dates.days_until_shutdown(today)
    if days is not None and days <= min_runway_days:
        when = "shut down" if days <= 0 else f"shuts down in {days} days"
        return (f"{base} {when} on {dates.provider} ({dates.shutdown.isoformat()}, "  # type: ignore[union-attr]
                f"from {'the provider' if dates.shutdown_source == 'provider' else 'the model catalog'}), within "
                f"min_runway_days={min_runway_days}: a model fine-tuned from it would stop answering with it; "
                f"{_what_to_do(dates)}.")
    return None


@dataclass(frozen=True)
class LifecycleVerdict:
    """The production model's lifecycle check: severity ("ok", "warn", "error") and what to tell the user."""

    severity: str
    message: str


def production_verdict(dates: ModelDates, today: date, answers: bool, reason: str = "") -> LifecycleVerdict:
    """OK, WARN at <= 60 days to shutdown, ERROR at <= 14 days or when the model no longer answers."""
    days = dates.days_until_shutdown(today)
    todo = (f"re-tune on {dates.successor}" if dates.successor else
            "re-tune on another fine-tunable model or on another provider (FINE_TUNING_PROVIDER=azure)")
    if not answers:
        return LifecycleVerdict("error", f"{dates.model} no longer answers on {dates.provider}"
                                f"{f' ({reason})' if reason else ''}: applications using it fail; {todo} now.")
    if days is None:
        return LifecycleVerdict("ok", f"{dates.model}: no shutdown date announced on {dates.provider}.")
    when = f"shuts down on {dates.shutdown.isoformat()} ({days} days)"  # type: ignore[union-attr]
    if days <= ERROR_DAYS:
        return LifecycleVerdict("error", f"{dates.model} {when}: {todo} before then.")
    if days <= WARN_DAYS:
        return LifecycleVerdict("warn", f"{dates.model} {when}: {todo} before then.")
    return LifecycleVerdict("ok", f"{dates.model} {when}.")
