"""What is being fine-tuned and how: one resource shared by the cost check and the training job."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field

from fine_tuning.settings import DEFAULT_BASE_MODEL


class TuningSettings(dg.ConfigurableResource):
    """Base model, hyperparameters and budget.

    A resource rather than per-asset config because the cost check on the training files and
    the `fine_tuned_model` asset must price and train the very same model and epochs.
    """

    base_model: str = Field(default=DEFAULT_BASE_MODEL, description="Model to fine-tune.")
    suffix: str = Field(default="goodreads", description="Suffix of the fine-tuned model name (<= 64 chars).")
    seed: int = Field(default=42, description="Provider-side training seed.")
    n_epochs: int | None = Field(default=None, description="Epochs; null means 'auto'.")
    batch_size: int | None = Field(default=None, description="Batch size; null means 'auto'.")
    learning_rate_multiplier: float | None = Field(
        default=None, description="Learning-rate multiplier; null means 'auto'."
    )
    max_cost_usd: float = Field(
        default=5.0, description="Training files whose estimated training cost exceeds this are blocked."
    )

    def hyperparameters(self) -> dict[str, Any]:
        """Supervised hyperparameters as the API takes them ("auto" where unset)."""
        return {
            "n_epochs": "auto" if self.n_epochs is None else self.n_epochs,
            "batch_size": "auto" if self.batch_size is None else self.batch_size,
            "learning_rate_multiplier": (
                "auto" if self.learning_rate_multiplier is None else self.learning_rate_multiplier
            ),
        }

    def method(self) -> dict[str, Any]:
        """The `method` argument of `fine_tuning.jobs.create` (the `hyperparameters` one is deprecated)."""
        return {"type": "supervised", "supervised": {"hyperparameters": self.hyperparameters()}}
