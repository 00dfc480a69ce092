"""`TuningSettings`: what a task tunes how (base model, hyperparameters, budget), a resource per task.

A resource rather than per-asset config because the cost check on the training files and the
`fine_tuned_model` asset must price and train the very same model and epochs. A task's
`defs.yaml` sets its defaults (`model`, `method`, `max_cost_usd`); run config
(`resources.<key>.config`, `resources.tuning.config` for the Goodreads task) overrides them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from fine_tuning.core.settings import DEFAULT_BASE_MODEL
from fine_tuning.lib.run_settings import CheckedResource


class TuningSettings(CheckedResource):
    """Base model, hyperparameters and budget.

    A resource rather than per-asset config because the cost check on the training files and
    the `fine_tuned_model` asset must price and train the very same model and epochs. The bounds
    are OpenAI's documented ones (n_epochs 1-50, batch_size 1-256, learning_rate_multiplier > 0,
    suffix up to 64 characters), checked before anything is uploaded.
    """

    run_config_path: ClassVar[str] = "resources.tuning.config"

    base_model: str = Field(
        default=DEFAULT_BASE_MODEL, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="Model to fine-tune (a dated snapshot, an alias, or an ft: model to continue).",
    )
    suffix: str = Field(
        default="goodreads", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
        description="Suffix of the fine-tuned model name: 1-64 letters, digits, '-' or '_' (':' would split the name).",
    )
    seed: int = Field(default=42, ge=0, le=2_147_483_647, description="Provider-side training seed (0-2147483647).")
    n_epochs: int | None = Field(default=None, ge=1, le=50, description="Epochs (1-50); null means 'auto'.")
    batch_size: int | None = Field(default=None, ge=1, le=256, description="Batch size (1-256); null means 'auto'.")
    learning_rate_multiplier: float | None = Field(
        default=None, gt=0, le=10,
        description="Learning-rate multiplier (> 0; above 10 training diverges); null means 'auto'.",
    )
    max_cost_usd: float = Field(
        default=5.0, gt=0,
        description="Training files whose estimated training cost exceeds this (USD, > 0) are blocked.",
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


def tuning_settings_class(run_config_path: str) -> type[TuningSettings]:
    """`TuningSettings` checked under another run-config path (a task's own `resources.<key>.config`)."""
    if run_config_path == TuningSettings.run_config_path:
        return TuningSettings
    name = "TuningSettings_" + "".join(char if char.isalnum() else "_" for char in run_config_path.split(".")[1])
    return type(name, (TuningSettings,), {"run_config_path": run_config_path, "__doc__": TuningSettings.__doc__})
