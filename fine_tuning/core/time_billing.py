"""Jobs billed by training time (reinforcement fine-tuning): what a job has spent, and the budget that stops it.

The rule is the catalog's (REINFORCEMENT_PRICE_PER_HOUR and the billing guide quoted beside it):
whole seconds of the job's running time x the hourly rate. The running time starts at the job's
"started" event (the provider's own clock) or, when that event was not seen, at the job's
creation (which over-counts the validation and the queue, never under-counts); it ends at the
job's `finished_at`, or now while it runs. No Dagster here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent

from fine_tuning.core.catalog import PRICING_AS_OF, REINFORCEMENT_PRICE_PER_HOUR, resolve_model

# The message of the event a provider job logs when it leaves the queue and starts training.
STARTED_MESSAGE = "fine-tuning job started"
RUNNING_STATUSES = frozenset({"running", "paused"})
COST_DIGITS = 6


def price_per_hour(model: str) -> float | None:
    """USD per training hour when `model` (snapshot, alias or `ft:` model) is billed by time, else None."""
    return REINFORCEMENT_PRICE_PER_HOUR.get(resolve_model(model))


def started_at(events: Iterable[FineTuningJobEvent]) -> int | None:
    """When the job started training, from its events (None when no "started" event is among them)."""
    times = [event.created_at for event in events if event.message.strip().lower().startswith(STARTED_MESSAGE)]
    return min(times) if times else None


def billed_seconds(job: FineTuningJob, started: int | float | None, now: float) -> int:
    """Whole seconds of billable training time of `job` so far (0 before it runs)."""
    if job.status in ("validating_files", "queued"):
        return 0
    begin = started if started is not None else job.created_at
    end = job.finished_at if job.finished_at else now
    return max(0, math.floor(end - begin))


def time_cost(seconds: int, rate: float) -> float:
    """USD of `seconds` of training at `rate` USD per hour."""
    return round(seconds * rate / 3600, COST_DIGITS)


@dataclass(frozen=True)
class TimeBudget:
    """What the training of one fingerprint may spend on time-billed jobs, and what earlier jobs spent of it.

    `setting` is where the user raises it (a run-config path), for the messages.
    """

    max_cost_usd: float
    rate: float
    setting: str
    spent_before_usd: float = 0.0

    @property
    def left_usd(self) -> float:
        """What the next job may still spend."""
        return round(self.max_cost_usd - self.spent_before_usd, COST_DIGITS)

    def seconds_allowed(self) -> int:
        """Billable seconds the next job may run before the budget is reached."""
        return max(0, math.floor(self.left_usd * 3600 / self.rate))

    def deadline(self, job: FineTuningJob, started: int | float | None) -> int | None:
        """When (epoch seconds) a running job reaches the budget; None before it runs."""
        if job.status not in RUNNING_STATUSES:
            return None
        return int((started if started is not None else job.created_at) + self.seconds_allowed())

    def reached(self, job: FineTuningJob, started: int | float | None, now: float) -> bool:
        """Whether a job that is not final has used up the budget."""
        return job.status in RUNNING_STATUSES and billed_seconds(job, started, now) >= self.seconds_allowed()

    def describe(self) -> str:
        """The budget in words: the amount, the rate, what earlier jobs spent."""
        before = f", of which earlier jobs of these files spent ${self.spent_before_usd:.4f}" if self.spent_before_usd else ""
        return (f"the ${self.max_cost_usd:.2f} budget ({self.setting}{before}; ${self.rate:.2f} per training hour, "
                f"prices as of {PRICING_AS_OF})")
