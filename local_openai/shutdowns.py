"""Model shutdowns the backend was told about (`--model-shutdown MODEL=YYYY-MM-DD`).

A date applies to the model and to every model fine-tuned from it, as OpenAI's schedule does.
Models report it as `shutdown_date`; from that day on (by the backend's clock, in UTC) they
refuse work as a shut-down model does, and a shut-down base can no longer be fine-tuned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime

from fine_tuning.core.catalog import resolve_model
from local_openai.exceptions import ModelNotAvailable, ModelShutDown


class Shutdowns:
    """Shutdown dates by model (exact name first, then the snapshot it resolves to)."""

    def __init__(self, dates: Iterable[tuple[str, str]], clock: Callable[[], float]) -> None:
        given = [(model, date.fromisoformat(day)) for model, day in dates]
        self._exact = dict(given)
        # A base's date reaches every name of it (alias, snapshot) and every model fine-tuned from it.
        self._by_base = {resolve_model(model): day for model, day in given if not model.startswith("ft:")}
        self.clock = clock

    def date_of(self, model: str) -> date | None:
        """The day `model` (or the base it was fine-tuned from) shuts down; None when none is set."""
        return self._exact.get(model) or self._by_base.get(resolve_model(model))

    def is_shut_down(self, model: str) -> bool:
        """Whether the backend's today is on or after the model's shutdown date."""
        day = self.date_of(model)
        return day is not None and datetime.fromtimestamp(self.clock(), UTC).date() >= day

    def require_answering(self, model: str) -> None:
        """404 model_not_found, as for a deprecated model, once the model has shut down."""
        if self.is_shut_down(model):
            raise ModelShutDown(model)

    def require_trainable(self, model: str) -> None:
        """A shut-down base is not available for fine-tuning any more."""
        if isinstance(model, str) and self.is_shut_down(model):
            raise ModelNotAvailable(model)
