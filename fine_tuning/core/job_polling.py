"""Waiting for a provider fine-tuning job: jittered polls, its events logged once each, and the
job cancelled when the caller is interrupted (no Dagster here)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import openai as openai_sdk
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent

from fine_tuning.core.openai_errors import describe_api_error, is_transient
from fine_tuning.core.provider_jobs import TERMINAL_STATUSES, Log, ProviderJobError
from fine_tuning.core.time_billing import TimeBudget, billed_seconds, started_at, time_cost

MIN_POLL_SECONDS = 0.2
MAX_EVENTS_PER_POLL = 1000  # bounds the first fetch when attaching to a long job
MAX_TRANSIENT_POLL_FAILURES = 5  # consecutive polls that may fail (after the client's own retries)

T = TypeVar("T")


def next_poll_delay(
    interval: float, estimated_finish: int | None, now: float, rng: random.Random | None = None
) -> float:
    """Jittered (+/-20%) poll delay that never sleeps past a known estimated finish.

    An estimate within 1.5 intervals is waited for directly (one poll at the finish instead of
    one more before it). Once the estimate has passed and the job is still running, the delay
    doubles from MIN_POLL_SECONDS with the time overdue back up to the interval: a job that ends
    just after its estimate is seen at once, one that overruns it by hours costs one poll per
    interval, not five a second.
    """
    jittered = interval * (rng or random).uniform(0.8, 1.2)
    if not estimated_finish:
        return jittered
    until_finish = estimated_finish - now
    if until_finish > 0:
        # The floor only bounds how fast we poll once the estimate is (nearly) reached.
        return max(until_finish, MIN_POLL_SECONDS) if until_finish <= 1.5 * interval else min(jittered, until_finish)
    return min(jittered, max(-until_finish, MIN_POLL_SECONDS))


def _log_event(log: Log, job_id: str, event: FineTuningJobEvent) -> None:
    message = f"[{job_id}] {event.message}"
    if event.level == "error":
        log.error(message)
    elif event.level == "warn":
        log.warning(message)
    else:
        log.info(message)


@dataclass
class JobProgress:
    """What the poll loop has seen so far: events already logged, the latest metrics."""

    last_event_id: str | None = None
    last_metrics: dict[str, Any] = field(default_factory=dict)
    last_report: tuple[Any, ...] | None = None
    started_at: int | None = None  # the job's "started" event, once seen (time-billed jobs)


def stream_new_events(
    client: openai_sdk.OpenAI, job_id: str, progress: JobProgress, log: Log
) -> list[FineTuningJobEvent]:
    """Log the job events not logged yet, oldest first (only the newest metrics event); returns them."""
    fresh: list[FineTuningJobEvent] = []
    for event in client.fine_tuning.jobs.list_events(job_id, limit=100):  # newest first
        if event.id == progress.last_event_id or len(fresh) >= MAX_EVENTS_PER_POLL:
            break
        fresh.append(event)
    fresh.reverse()
    if progress.started_at is None:
        progress.started_at = started_at(fresh)
    metrics = [event for event in fresh if event.type == "metrics"]
    for event in fresh:
        if event.type == "metrics":
            if isinstance(event.data, dict):
                progress.last_metrics = dict(event.data)
            # One metrics line per poll: a long job has thousands of steps, the log needs a trend.
            if event is not metrics[-1]:
                continue
            if len(metrics) > 1:
                log.info(f"[{job_id}] ({len(metrics) - 1} earlier metric steps not shown)")
        _log_event(log, job_id, event)
    if fresh:
        progress.last_event_id = fresh[-1].id
    return fresh


def _format_finish(estimated_finish: int | None, now: float) -> str:
    if not estimated_finish:
        return "unknown"
    at = datetime.fromtimestamp(estimated_finish, tz=UTC).strftime("%H:%M:%S UTC")
    return f"{at} (in {max(estimated_finish - now, 0):.0f} s)"


def report_progress(job: FineTuningJob, progress: JobProgress, log: Log, now: float) -> None:
    """One progress line (status, step, train loss, estimated finish) whenever any of them changes."""
    metrics = progress.last_metrics
    step, total = metrics.get("step"), metrics.get("total_steps")
    loss = metrics.get("train_loss")
    state = (job.status, step, loss, job.estimated_finish)
    if state == progress.last_report:
        return
    progress.last_report = state
    step_text = f"{step}/{total}" if step is not None and total else (str(step) if step is not None else "-")
    loss_text = f"{float(loss):.4f}" if isinstance(loss, (int, float)) else "-"
    finish = "" if job.status in TERMINAL_STATUSES else f", estimated finish {_format_finish(job.estimated_finish, now)}"
    log.info(f"Job {job.id}: {job.status}, step {step_text}, train loss {loss_text}{finish}")


def cancel_quietly(client: openai_sdk.OpenAI, job_id: str, log: Log) -> None:
    """Cancel a provider job on the way out; a failure to cancel is logged, not raised."""
    try:
        job = client.fine_tuning.jobs.cancel(job_id)
        log.warning(f"Run interrupted: cancelled fine-tuning job {job_id} (status {job.status}).")
    except openai_sdk.APIError as error:
        log.error(describe_api_error(error, f"cancelling job {job_id}", client))


def poll_until_final(
    fetch: Callable[[], T],
    status_of: Callable[[T], str],
    terminal: frozenset[str],
    what: str,
    client: openai_sdk.OpenAI,
    log: Log,
    poll_interval_seconds: float,
    *,
    on_poll: Callable[[T, float], None] | None = None,
    estimated_finish: Callable[[T], int | None] = lambda _: None,
    cancel: Callable[[], None] | None = None,
    timeout_seconds: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    interrupts: tuple[type[BaseException], ...] = (KeyboardInterrupt,),
) -> T:
    """Poll a provider-side object (a fine-tuning job, a batch) until its status is terminal.

    `fetch` retrieves it; `on_poll` reports what changed; transient API errors are retried up to
    MAX_TRANSIENT_POLL_FAILURES polls in a row. Raises ProviderJobError when polling keeps
    failing or `timeout_seconds` pass (the object keeps going at the provider, so the next
    attempt attaches to it); calls `cancel` when one of `interrupts` arrives, then re-raises.
    """
    started = clock()
    transient_failures = 0
    try:
        while True:
            try:
                current = fetch()
                transient_failures = 0
            except openai_sdk.APIError as error:
                # The client already retried; a flaky poll should not abandon a paid job's wait.
                transient_failures += 1
                if not is_transient(error) or transient_failures > MAX_TRANSIENT_POLL_FAILURES:
                    raise ProviderJobError(
                        describe_api_error(error, f"polling {what}", client)
                        + " (it keeps running at the provider; the next materialization attaches to it)"
                    ) from None
                log.warning(describe_api_error(error, f"polling {what}", client) + "; retrying")
                sleep(next_poll_delay(poll_interval_seconds, None, clock()))
                continue
            now = clock()
            if on_poll is not None:
                on_poll(current, now)
            status = status_of(current)
            if status in terminal:
                return current
            if timeout_seconds is not None and now - started > timeout_seconds:
                raise ProviderJobError(
                    f"{what[:1].upper()}{what[1:]} is still {status} after {timeout_seconds / 3600:.2f} h; "
                    "it keeps running at the provider and the next materialization attaches to it.",
                    {"status": status},
                )
            sleep(next_poll_delay(poll_interval_seconds, estimated_finish(current), now))
    except interrupts:
        # The caller was stopped (a terminated run, Ctrl-C): do not leave paid work running unattended.
        if cancel is not None:
            cancel()
        raise


class _BudgetReached(Exception):
    """Raised from inside the poll loop when a time-billed job has used up its budget."""


def wait_for_job(
    client: openai_sdk.OpenAI,
    job_id: str,
    log: Log,
    poll_interval_seconds: float,
    timeout_seconds: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    interrupts: tuple[type[BaseException], ...] = (KeyboardInterrupt,),
    current: FineTuningJob | None = None,
    budget: TimeBudget | None = None,
) -> tuple[FineTuningJob, JobProgress]:
    """Poll until the job is final, streaming its events; cancel it when one of `interrupts` arrives.

    `current` is the job as the caller just received it (created, or found by a list): it
    stands for the first poll, so the first status request waits one poll delay instead of
    asking again at once. Raises ProviderJobError when polling keeps failing or
    `timeout_seconds` pass; the job keeps running at the provider either way, so the next
    attempt attaches to it. A time-billed job with a `budget` is polled again the moment it would
    reach it, and cancelled when it has (ProviderJobError saying what it spent).
    """
    progress = JobProgress()
    known = [current] if current is not None else []

    def fetch() -> FineTuningJob:
        if known:
            return known.pop()
        job = client.fine_tuning.jobs.retrieve(job_id)
        stream_new_events(client, job_id, progress, log)
        return job

    def on_poll(job: FineTuningJob, now: float) -> None:
        report_progress(job, progress, log, now)
        if budget is not None and budget.reached(job, progress.started_at, now):
            raise _BudgetReached

    def next_event(job: FineTuningJob) -> int | None:
        finishes = [job.estimated_finish, budget.deadline(job, progress.started_at) if budget else None]
        return min((at for at in finishes if at), default=None)

    try:
        job = poll_until_final(
            fetch, lambda job: job.status, TERMINAL_STATUSES, f"fine-tuning job {job_id}", client, log,
            poll_interval_seconds,
            on_poll=on_poll, estimated_finish=next_event,
            cancel=lambda: cancel_quietly(client, job_id, log),
            timeout_seconds=timeout_seconds, sleep=sleep, clock=clock, interrupts=interrupts,
        )
    except ProviderJobError as error:
        error.metadata.setdefault("job_id", job_id)
        raise
    except _BudgetReached:
        assert budget is not None
        raise stop_at_budget(client, job_id, budget, progress, log, clock) from None
    return job, progress


def stop_at_budget(
    client: openai_sdk.OpenAI, job_id: str, budget: TimeBudget, progress: JobProgress, log: Log,
    clock: Callable[[], float] = time.time,
) -> ProviderJobError:
    """Cancel a time-billed job that reached its budget; the error says what it spent and what is kept."""
    try:
        job = client.fine_tuning.jobs.cancel(job_id)
    except openai_sdk.APIError as error:
        return ProviderJobError(
            f"Fine-tuning job {job_id} reached {budget.describe()} but could not be cancelled: "
            f"{describe_api_error(error, f'cancelling job {job_id}', client)}. It is still running and billed: "
            "cancel it at the provider now.", {"job_id": job_id, "max_cost_usd": budget.max_cost_usd},
        )
    seconds = billed_seconds(job, progress.started_at, clock())
    spent = time_cost(seconds, budget.rate)
    log.warning(f"Cancelled fine-tuning job {job_id}: {seconds} s of training (${spent:.4f}) reached the budget.")
    return ProviderJobError(
        f"Fine-tuning job {job_id} was cancelled: its {seconds} s of billed training time (${spent:.4f}) reached "
        f"{budget.describe()}. Nothing more is billed and no other job was started; any checkpoint it reached stays "
        f"at the provider. To train further, raise {budget.setting}: a run with these files and settings counts what "
        "this job spent.",
        {"job_id": job_id, "status": job.status, "billed_training_seconds": seconds, "spent_usd": spent,
         "earlier_jobs_spent_usd": budget.spent_before_usd, "max_cost_usd": budget.max_cost_usd,
         "price_per_training_hour_usd": budget.rate},
    )
