"""`fine_tuned_model`: a resumable fine-tuning job that is never paid for twice.

* The job is identified by a fingerprint of everything that determines its result. The
  fingerprint lives in the provider job's `metadata`, so the next materialization (or a run
  retry after a crash) finds the same job again instead of paying for a new one.
* Creating the job is never blindly retried: after an ambiguous failure the job is looked up by
  fingerprint first; and if runs outside the run queue raced, all but the oldest job are
  cancelled before they train.
* Terminating the Dagster run cancels the provider job it was waiting for.

No `from __future__ import annotations` here: Dagster inspects the real `context` annotation.
"""

import csv
import hashlib
import io
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import openai as openai_sdk
from dagster_openai import OpenAIResource
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from pydantic import Field

from fine_tuning.core.openai_errors import api_errors, describe_api_error, is_transient
from fine_tuning.defs.resources import TuningSettings
from fine_tuning.defs.fine_tuning.uploads import GROUP, upload_training_file, upload_validation_file
from fine_tuning.defs.shared.upstream import latest_metadata

FINGERPRINT_KEY = "dagster_fingerprint"
ASSET_TAG_KEY = "dagster_asset"
FINGERPRINT_VERSION = 1  # bump when the fingerprint payload changes meaning
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
MIN_POLL_SECONDS = 0.2
MAX_EVENTS_PER_POLL = 1000  # bounds the first fetch when attaching to a long job
MAX_TRANSIENT_POLL_FAILURES = 5  # consecutive polls that may fail (after the client's own retries)
CREATE_ATTEMPTS = 4  # tries at creating the job, each preceded by a look-up after the first
CREATE_BACKOFF_SECONDS = 2.0


class FineTunedModelConfig(dg.Config):
    """Run configuration of `fine_tuned_model`."""

    poll_interval_seconds: float = Field(
        default=10.0, gt=0, description="Seconds between status polls (jittered by +/-20%)."
    )
    force_retrain: bool = Field(
        default=False, description="Train a new model even when a succeeded job has the same fingerprint."
    )
    timeout_hours: float | None = Field(
        default=None,
        gt=0,
        description="Stop waiting after this long (the provider job keeps running; the next run attaches).",
    )


def training_fingerprint(
    training_sha256: str,
    validation_sha256: str,
    base_model: str,
    method: Mapping[str, Any],
    suffix: str,
    seed: int,
) -> str:
    """sha256 of a canonical JSON of everything that determines the fine-tuned model."""
    payload = {
        "version": FINGERPRINT_VERSION,
        "training_sha256": training_sha256,
        "validation_sha256": validation_sha256,
        "base_model": base_model,
        "method": method,
        "suffix": suffix,
        "seed": seed,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def job_metadata(fingerprint: str) -> dict[str, str]:
    """The provider-side job metadata that lets a later run find this job again."""
    return {FINGERPRINT_KEY: fingerprint, ASSET_TAG_KEY: "fine_tuned_model"}


def find_jobs(client: openai_sdk.OpenAI, fingerprint: str) -> list[FineTuningJob]:
    """Every provider job with this fingerprint, newest first (all pages)."""
    jobs = [
        job
        for job in client.fine_tuning.jobs.list(metadata={FINGERPRINT_KEY: fingerprint})
        # Re-check client-side: a compatible server might ignore the metadata filter.
        if (job.metadata or {}).get(FINGERPRINT_KEY) == fingerprint
    ]
    return sorted(jobs, key=lambda job: job.created_at, reverse=True)


@dataclass(frozen=True)
class JobChoice:
    """What to do about existing jobs with the same fingerprint."""

    job: FineTuningJob | None  # reuse / attach to this one; None means create a new job
    replaced: tuple[FineTuningJob, ...] = ()  # failed or cancelled jobs being replaced


def choose_job(jobs: list[FineTuningJob], force_retrain: bool) -> JobChoice:
    """Pick the job to reuse or attach to (newest first), or decide to create a new one.

    A job still in flight is always attached to: it is the retraining a previous run paid for.
    """
    in_flight = [job for job in jobs if job.status not in TERMINAL_STATUSES]
    succeeded = [job for job in jobs if job.status == "succeeded" and job.fine_tuned_model]
    unusable = tuple(job for job in jobs if job.status in ("failed", "cancelled"))
    if succeeded and not force_retrain:
        return JobChoice(job=succeeded[0])
    if in_flight:
        return JobChoice(job=in_flight[0])
    return JobChoice(job=None, replaced=unusable)


def next_poll_delay(
    interval: float, estimated_finish: int | None, now: float, rng: random.Random | None = None
) -> float:
    """Jittered (+/-20%) poll delay that never sleeps past a known estimated finish."""
    jittered = interval * (rng or random).uniform(0.8, 1.2)
    if estimated_finish:
        # The floor only bounds how fast we poll once the estimate is (nearly) reached.
        jittered = min(jittered, max(estimated_finish - now, MIN_POLL_SECONDS))
    return jittered


def _log_event(log: Any, job_id: str, event: FineTuningJobEvent) -> None:
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


def stream_new_events(
    client: openai_sdk.OpenAI, job_id: str, progress: JobProgress, log: Any
) -> list[FineTuningJobEvent]:
    """Log the job events not logged yet, oldest first (only the newest metrics event); returns them."""
    fresh: list[FineTuningJobEvent] = []
    for event in client.fine_tuning.jobs.list_events(job_id, limit=100):  # newest first
        if event.id == progress.last_event_id or len(fresh) >= MAX_EVENTS_PER_POLL:
            break
        fresh.append(event)
    fresh.reverse()
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


def report_progress(job: FineTuningJob, progress: JobProgress, log: Any, now: float) -> None:
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


def cancel_quietly(client: openai_sdk.OpenAI, job_id: str, log: Any) -> None:
    """Cancel a provider job on the way out; a failure to cancel is logged, not raised."""
    try:
        job = client.fine_tuning.jobs.cancel(job_id)
        log.warning(f"Run interrupted: cancelled fine-tuning job {job_id} (status {job.status}).")
    except openai_sdk.APIError as error:
        log.error(describe_api_error(error, f"cancelling job {job_id}", client))


def wait_for_job(
    client: openai_sdk.OpenAI,
    job_id: str,
    log: Any,
    poll_interval_seconds: float,
    timeout_seconds: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> tuple[FineTuningJob, JobProgress]:
    """Poll until the job is final, streaming its events; cancel it if the run is interrupted."""
    progress = JobProgress()
    started = clock()
    transient_failures = 0
    try:
        while True:
            try:
                job = client.fine_tuning.jobs.retrieve(job_id)
                stream_new_events(client, job_id, progress, log)
                transient_failures = 0
            except openai_sdk.APIError as error:
                # The client already retried; a flaky poll should not abandon a paid job's wait.
                transient_failures += 1
                if not is_transient(error) or transient_failures > MAX_TRANSIENT_POLL_FAILURES:
                    raise dg.Failure(
                        description=describe_api_error(error, f"polling fine-tuning job {job_id}", client)
                        + " (the job keeps running at the provider; the next materialization attaches to it)"
                    ) from None
                log.warning(describe_api_error(error, f"polling job {job_id}", client) + "; retrying")
                sleep(next_poll_delay(poll_interval_seconds, None, clock()))
                continue
            now = clock()
            report_progress(job, progress, log, now)
            if job.status in TERMINAL_STATUSES:
                return job, progress
            if timeout_seconds is not None and now - started > timeout_seconds:
                raise dg.Failure(
                    description=(
                        f"Fine-tuning job {job_id} is still {job.status} after {timeout_seconds / 3600:.2f} h; "
                        "it keeps running at the provider and the next materialization attaches to it."
                    ),
                    metadata={"job_id": job_id, "status": job.status},
                )
            sleep(next_poll_delay(poll_interval_seconds, job.estimated_finish, now))
    except (dg.DagsterExecutionInterruptedError, KeyboardInterrupt):
        # The Dagster run was terminated (UI/CLI): do not leave a paid job running unattended.
        cancel_quietly(client, job_id, log)
        raise


def _retry_after_seconds(error: openai_sdk.APIError, default: float) -> float:
    """The provider's retry-after hint when it sent one, else `default`."""
    response = getattr(error, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return max(float(value), 0.0) if value is not None else default
    except ValueError:
        return default


def create_job_once(
    client: openai_sdk.OpenAI,
    fingerprint: str,
    create_kwargs: Mapping[str, Any],
    log: Any,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[FineTuningJob, bool]:
    """Create the provider job without ever creating it twice; returns (job, found_existing).

    The client's automatic retries are off for this one POST: when a request times out or
    fails with a 5xx after the provider accepted it, a blind retry would start (and bill) a
    second job. So before every new attempt the job is looked up by its fingerprint.
    """
    once = client.with_options(max_retries=0)
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        if attempt > 1:
            existing = [job for job in find_jobs(client, fingerprint) if job.status not in ("failed", "cancelled")]
            if existing:
                log.info(f"The earlier create request did reach the provider: using job {existing[0].id}.")
                return existing[0], True
        try:
            return once.fine_tuning.jobs.create(**create_kwargs), False
        except openai_sdk.APIError as error:
            if not is_transient(error) or attempt == CREATE_ATTEMPTS:
                raise
            delay = _retry_after_seconds(error, CREATE_BACKOFF_SECONDS * attempt)
            log.warning(
                describe_api_error(error, "creating the fine-tuning job", client)
                + f"; checking whether it was created, then trying again in {delay:.1f} s"
            )
            sleep(delay)
    raise AssertionError("unreachable: the last attempt either returns or raises")


def settle_concurrent_jobs(
    client: openai_sdk.OpenAI, fingerprint: str, ours: FineTuningJob, log: Any
) -> tuple[FineTuningJob, bool]:
    """Keep one job when runs outside the run queue (say, two ad-hoc materializations) raced.

    Every racer lists the in-flight jobs with this fingerprint and keeps the oldest (ties broken by
    id, so all racers agree); a racer whose own job lost cancels it at once, before it trains,
    and attaches to the keeper. Returns (job to follow, whether it is someone else's).
    """
    # Only jobs still in flight race; a succeeded one is there because of force_retrain.
    live = [job for job in find_jobs(client, fingerprint) if job.status not in TERMINAL_STATUSES]
    keeper = min(live or [ours], key=lambda job: (job.created_at, job.id))
    if keeper.id == ours.id:
        return ours, False
    log.warning(f"Another run created job {keeper.id} with the same fingerprint first; cancelling {ours.id}.")
    client.fine_tuning.jobs.cancel(ours.id)
    return keeper, True


def resolved_hyperparameters(job: FineTuningJob) -> dict[str, Any]:
    """Hyperparameters the provider actually used ("auto" resolved when it reports them)."""
    supervised = job.method.supervised if job.method is not None else None
    source = supervised.hyperparameters if supervised is not None and supervised.hyperparameters else None
    values = (source or job.hyperparameters).model_dump(exclude_none=True)
    return {key: value for key, value in values.items() if key in ("n_epochs", "batch_size", "learning_rate_multiplier")}


def _last_number(rows: list[dict[str, str]], column: str) -> float | None:
    for row in reversed(rows):
        value = (row.get(column) or "").strip()
        if value:
            try:
                return float(value)
            except ValueError:
                continue
    return None


def final_losses(
    client: openai_sdk.OpenAI, job: FineTuningJob, last_metrics: Mapping[str, Any]
) -> dict[str, float]:
    """Final train/valid loss from the result CSV, else from the last metrics event."""
    losses: dict[str, float] = {}
    if job.result_files:
        try:
            text = client.files.content(job.result_files[0]).text
            rows = list(csv.DictReader(io.StringIO(text)))
            train = _last_number(rows, "train_loss")
            valid = _last_number(rows, "full_valid_loss")
            if valid is None:
                valid = _last_number(rows, "valid_loss")
            if train is not None:
                losses["final_train_loss"] = train
            if valid is not None:
                losses["final_valid_loss"] = valid
        except (openai_sdk.APIError, csv.Error):
            pass  # fall back to the metrics events below
    for key, column in (("final_train_loss", "train_loss"), ("final_valid_loss", "valid_loss")):
        value = last_metrics.get(column)
        if key not in losses and isinstance(value, (int, float)):
            losses[key] = float(value)
    return losses


def job_failure(job: FineTuningJob) -> dg.Failure:
    """The `dg.Failure` for a job that ended failed or cancelled, with the provider's own words."""
    code = job.error.code if job.error else None
    if job.error:
        message = job.error.message
    elif job.status == "succeeded":
        message = "the provider reported success but no fine-tuned model name"
    else:
        message = "no error reported by the provider"
    return dg.Failure(
        description=f"Fine-tuning job {job.id} {job.status}: [{code or job.status}] {message}",
        metadata={"job_id": job.id, "status": job.status, "error_code": code or "", "error_message": message},
    )


def success_metadata(
    client: openai_sdk.OpenAI,
    job: FineTuningJob,
    progress: JobProgress,
    reused: bool,
    fingerprint: str,
    replaced: tuple[FineTuningJob, ...],
) -> dict[str, Any]:
    """Materialization metadata of a succeeded job."""
    hyperparameters = resolved_hyperparameters(job)
    duration = (job.finished_at - job.created_at) if job.finished_at else None
    metadata: dict[str, Any] = {
        "model_name": job.fine_tuned_model,
        "job_id": job.id,
        "trained_tokens": int(job.trained_tokens or 0),
        "reused": reused,
        "fingerprint": fingerprint,
        "base_model": job.model,
        "hyperparameters": dg.MetadataValue.json(hyperparameters),
        **{name: value for name, value in hyperparameters.items() if not isinstance(value, str)},
        "result_file_id": job.result_files[0] if job.result_files else "",
        **final_losses(client, job, progress.last_metrics),
    }
    if duration is not None:
        metadata["duration_seconds"] = float(duration)
    if replaced:
        metadata["replaced_jobs"] = dg.MetadataValue.json(
            [{"job_id": old.id, "status": old.status, "error": old.error.message if old.error else None} for old in replaced]
        )
    return metadata


def _upload_ids(context: dg.AssetExecutionContext) -> tuple[dict[str, Any], dict[str, Any]]:
    training = latest_metadata(context, "upload_training_file")
    validation = latest_metadata(context, "upload_validation_file")
    for name, values in (("upload_training_file", training), ("upload_validation_file", validation)):
        if not values.get("file_id") or not values.get("sha256"):
            raise dg.Failure(description=f"The latest materialization of {name} has no file_id/sha256 metadata.")
    return training, validation


@dg.asset(
    kinds={"openai"},
    group_name=GROUP,
    deps=[upload_training_file, upload_validation_file],
    description=(
        "Fine-tune the base model on the uploaded files. A job with the same fingerprint (files, "
        "model, method, suffix, seed) is reused or resumed instead of paid for twice; terminating "
        "the run cancels the provider job."
    ),
)
def fine_tuned_model(
    context: dg.AssetExecutionContext,
    config: FineTunedModelConfig,
    openai: OpenAIResource,
    tuning: TuningSettings,
) -> dg.MaterializeResult:
    """Create, reuse or resume the provider fine-tuning job and wait for its model."""
    training, validation = _upload_ids(context)
    method = tuning.method()
    fingerprint = training_fingerprint(
        str(training["sha256"]), str(validation["sha256"]), tuning.base_model, method, tuning.suffix, tuning.seed
    )
    context.log.info(f"Training fingerprint {fingerprint}")
    with openai.get_client(context) as client:
        with api_errors("listing fine-tuning jobs", client):
            choice = choose_job(find_jobs(client, fingerprint), config.force_retrain)
        for old in choice.replaced:
            reason = f"[{old.error.code}] {old.error.message}" if old.error else "no error reported"
            context.log.warning(f"Earlier job {old.id} with this fingerprint ended {old.status} ({reason}); replacing it.")
        if choice.job is not None:
            job, reused = choice.job, True
            verb = "Reusing succeeded" if job.status == "succeeded" else "Attaching to in-flight"
            context.log.info(f"{verb} fine-tuning job {job.id} ({job.status}).")
        else:
            create_kwargs = {
                "model": tuning.base_model,
                "training_file": str(training["file_id"]),
                "validation_file": str(validation["file_id"]),
                "method": method,
                "suffix": tuning.suffix,
                "seed": tuning.seed,
                "metadata": job_metadata(fingerprint),
            }
            with api_errors("creating the fine-tuning job", client):
                # A job found after a lost answer is the one this run's own request started.
                job, _ = create_job_once(client, fingerprint, create_kwargs, context.log)
                job, reused = settle_concurrent_jobs(client, fingerprint, job, context.log)
            if not reused:
                context.log.info(f"Created fine-tuning job {job.id} on {tuning.base_model}.")
        if job.status == "succeeded":
            progress = JobProgress()  # nothing to wait for; losses come from the result file
        else:
            timeout = config.timeout_hours * 3600 if config.timeout_hours else None
            job, progress = wait_for_job(client, job.id, context.log, config.poll_interval_seconds, timeout)
        if job.status != "succeeded" or not job.fine_tuned_model:
            raise job_failure(job)
        metadata = success_metadata(client, job, progress, reused, fingerprint, choice.replaced)
    context.log.info(f"Fine-tuned model {job.fine_tuned_model} (job {job.id}, reused={reused}).")
    return dg.MaterializeResult(metadata=metadata)
