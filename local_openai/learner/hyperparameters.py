"""OpenAI-style "auto" hyperparameters, resolved for a training file once its size is known."""

from __future__ import annotations

import math
from typing import Any

from fine_tuning.core.catalog import auto_epochs


def auto_n_epochs(n_examples: int) -> int:
    """OpenAI's documented default epoch rule: the same one the pipeline's cost check prices."""
    return auto_epochs(n_examples)


def auto_batch_size(n_examples: int) -> int:
    """About 0.2% of the training examples, clamped to [1, 256] (OpenAI's observed default)."""
    return max(1, min(256, math.ceil(0.002 * n_examples)))


def auto_learning_rate_multiplier(batch_size: int) -> float:
    """Larger batches take fewer, averaged steps, so they get a larger multiplier (as OpenAI does)."""
    if batch_size >= 16:
        return 2.0
    if batch_size >= 4:
        return 1.8
    return 1.0


def resolve_hyperparameters(requested: dict[str, Any] | None, n_examples: int) -> dict[str, Any]:
    """Replace "auto" (or missing) hyperparameters by concrete values for this file."""
    requested = requested or {}
    n_epochs = requested.get("n_epochs", "auto")
    batch_size = requested.get("batch_size", "auto")
    multiplier = requested.get("learning_rate_multiplier", "auto")
    n_epochs = auto_n_epochs(n_examples) if n_epochs in (None, "auto") else int(n_epochs)
    batch_size = auto_batch_size(n_examples) if batch_size in (None, "auto") else int(batch_size)
    batch_size = max(1, min(batch_size, max(1, n_examples)))
    multiplier = (
        auto_learning_rate_multiplier(batch_size) if multiplier in (None, "auto") else float(multiplier)
    )
    return {"n_epochs": n_epochs, "batch_size": batch_size, "learning_rate_multiplier": multiplier}
