"""Time-billed jobs (reinforcement): billed seconds from the job's own clock, and when a budget is reached."""

from __future__ import annotations

from typing import Any

from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent

from fine_tuning.core.time_billing import TimeBudget, billed_seconds, price_per_hour, started_at, time_cost

CREATED = 1_700_000_000


def job(status: str, finished_at: int | None = None) -> FineTuningJob:
    """A job as the API returns it (only what billing reads matters)."""
    data: dict[str, Any] = {
        "id": "ftjob-1", "object": "fine_tuning.job", "created_at": CREATED, "model": "o4-mini-2025-04-16",
        "organization_id": "org", "result_files": [], "seed": 1, "status": status, "training_file": "file-1",
        "hyperparameters": {}, "finished_at": finished_at, "error": None, "fine_tuned_model": None,
        "trained_tokens": None, "validation_file": None,
    }
    return FineTuningJob.model_validate(data)


def event(at: int, message: str) -> FineTuningJobEvent:
    return FineTuningJobEvent.model_validate(
        {"id": f"ev-{at}", "object": "fine_tuning.job.event", "created_at": at, "level": "info", "message": message})


def test_the_rate_is_the_catalogs_for_time_billed_models_only() -> None:
    assert price_per_hour("o4-mini") == price_per_hour("ft:o4-mini-2025-04-16:org:x:1") == 100.0
    assert price_per_hour("gpt-4o-mini-2024-07-18") is None
    assert time_cost(36, 100.0) == 1.0  # prorated to the second: 36 s of $100/h


def test_billing_runs_from_the_started_event_to_the_end_in_whole_seconds() -> None:
    events = [event(CREATED + 1, "Validating training file"), event(CREATED + 30, "Fine-tuning job started")]
    started = started_at(events)
    assert started == CREATED + 30
    assert billed_seconds(job("queued"), None, CREATED + 99) == 0  # the queue is not training
    assert billed_seconds(job("running"), started, CREATED + 75.9) == 45
    assert billed_seconds(job("cancelled", finished_at=CREATED + 40), started, CREATED + 500) == 10
    # No started event seen: counted from creation (over-counts the queue, never under-counts).
    assert billed_seconds(job("running"), None, CREATED + 75.9) == 75


def test_a_budget_is_reached_at_its_last_paid_second_and_counts_earlier_jobs() -> None:
    budget = TimeBudget(max_cost_usd=0.10, rate=100.0, setting="resources.tuning.config.max_cost_usd")
    assert budget.seconds_allowed() == 3  # $0.10 buys 3.6 s: 3 whole seconds
    started = CREATED + 30
    assert budget.deadline(job("running"), started) == started + 3
    assert not budget.reached(job("running"), started, started + 2.9)
    assert budget.reached(job("running"), started, started + 3)
    assert not budget.reached(job("queued"), None, CREATED + 1000)
    spent = TimeBudget(0.10, 100.0, "x", spent_before_usd=time_cost(2, 100.0))
    assert spent.seconds_allowed() == 1 and "earlier jobs" in spent.describe()
    assert TimeBudget(0.02, 100.0, "x").seconds_allowed() == 0  # less than one second's price
