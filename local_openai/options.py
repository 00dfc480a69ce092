"""`BackendOptions`: how one local backend behaves, written once.

The `serve` flags, `local_client`'s keywords, `running_server`'s keywords and the Dagster
resource's fields all become one of these; the router, the middleware and the resources read it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import date
from pathlib import Path
from typing import Any

DEFAULT_MAX_BODY_BYTES = 128 * 1024 * 1024
# JSON requests (chat, jobs) are far smaller than file uploads: a 1M-token context is ~4 MB of
# text. This bound keeps any one request to a second or two and a few hundred MB at most.
MAX_JSON_BODY_BYTES = 16 * 1024 * 1024


def _iso_date(value: Any) -> str:
    """A shutdown date as YYYY-MM-DD, or ValueError naming what was given."""
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise ValueError(f"a model shutdown date must be YYYY-MM-DD, got {value!r}") from None


def body_limit(max_body_bytes: int, content_type: str) -> int:
    """The largest body accepted for a request of this content type (uploads are multipart)."""
    if content_type.lower().startswith("multipart/"):
        return max_body_bytes
    return min(max_body_bytes, MAX_JSON_BODY_BYTES)
DEFAULT_JOB_SECONDS = 3.0
PROFILES = ("openai", "azure")  # which provider the backend plays (options.profile)
BATCH_WINDOW_SECONDS = 24 * 3600.0  # OpenAI's only completion window, "24h"


@dataclass(frozen=True)
class BackendOptions:
    """Store, lifecycle speed, auth, injected latency and faults, body limit and clock of a backend."""

    data_dir: str | os.PathLike[str] | None = None  # None: settings.local_openai_dir()
    job_seconds: float = DEFAULT_JOB_SECONDS  # time from job creation to a final state
    batch_seconds: float | None = None  # time from batch creation to completed; None: job_seconds
    batch_window_seconds: float = BATCH_WINDOW_SECONDS  # a batch still running this long after creation expires
    api_key: str | None = None  # bearer token the server requires; None: no auth
    latency_ms: float = 0.0  # delay before every response
    error_rate: float = 0.0  # share of requests answered 429/500/503, before any work is done
    fault_seed: int | None = None  # makes the injected faults reproducible
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    clock: Callable[[], float] = time.time  # seconds since the epoch; tests step it by hand
    profile: str = "openai"  # "azure": Azure OpenAI's paths, api-key header, deployments (profiles.py)
    # model -> ISO date it shuts down (and every model fine-tuned from it): shutdowns.py
    model_shutdowns: tuple[tuple[str, str], ...] | dict[str, str] = ()
    refuse_fine_tuning: bool = False  # job creation refused, as for an organization without access
    # A fault knob: a new job shows in the job list only this long after its creation (retrieving
    # it by id sees it at once), as a provider's eventually consistent list endpoints may lag.
    job_list_lag_seconds: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"error_rate must be within [0, 1], got {self.error_rate}")
        # Frozen: normalise through object.__setattr__ (an empty key means no auth, negatives mean 0).
        object.__setattr__(self, "api_key", self.api_key or None)
        object.__setattr__(self, "latency_ms", max(0.0, float(self.latency_ms)))
        object.__setattr__(self, "job_seconds", max(0.0, float(self.job_seconds)))
        if self.batch_seconds is not None:
            object.__setattr__(self, "batch_seconds", max(0.0, float(self.batch_seconds)))
        object.__setattr__(self, "batch_window_seconds", max(0.0, float(self.batch_window_seconds)))
        object.__setattr__(self, "job_list_lag_seconds", max(0.0, float(self.job_list_lag_seconds)))
        object.__setattr__(self, "error_rate", float(self.error_rate))
        if self.profile not in PROFILES:
            raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {self.profile!r}")
        shutdowns = self.model_shutdowns.items() if isinstance(self.model_shutdowns, dict) else self.model_shutdowns
        object.__setattr__(self, "model_shutdowns", tuple((str(m), _iso_date(d)) for m, d in shutdowns))

    @classmethod
    def of(cls, options: BackendOptions | str | os.PathLike[str] | None, **overrides: Any) -> BackendOptions:
        """Options as given (with overrides), or built from a store directory and keywords."""
        if isinstance(options, BackendOptions):
            return replace(options, **overrides)
        return cls(data_dir=options, **overrides)

    @classmethod
    def take(cls, kwargs: dict[str, Any], *, keep: tuple[str, ...] = ()) -> dict[str, Any]:
        """Remove the option keywords from `kwargs` and return them (except those in `keep`)."""
        names = {f.name for f in fields(cls)} - set(keep)
        return {name: kwargs.pop(name) for name in list(kwargs) if name in names}

    @property
    def batch_duration(self) -> float:
        """Seconds from batch creation to completed (job_seconds unless batch_seconds is set)."""
        return self.job_seconds if self.batch_seconds is None else self.batch_seconds

    def store_dir(self) -> Path:
        """The store directory actually used."""
        if self.data_dir is not None and str(self.data_dir):
            return Path(self.data_dir)
        from fine_tuning.core.settings import local_openai_dir

        return local_openai_dir()
