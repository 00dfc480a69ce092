"""Provider fine-tuning jobs that are never paid for twice (no Dagster here).

* A job is identified by a fingerprint of everything that determines its result, stored in the
  provider job's `metadata`, so a later run (or a retry after a crash) finds it again.
* Among existing jobs with the fingerprint a succeeded one is reused and one in flight attached
  to; failed and cancelled ones are replaced.
* Creating a job is never blindly retried: after an ambiguous failure the job is looked up by
  fingerprint first. Runs of one project look up and create under a lease (`job_lease`), and
  also retrieve by id the jobs earlier holders recorded, which a lagging listing may not show yet;
  creators that raced without sharing it keep the oldest job and cancel their own before it trains.

Waiting for a job (polling, its events, cancelling on interrupt) is `job_polling`.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import openai as openai_sdk
from openai.types.fine_tuning import FineTuningJob

from fine_tuning.core.openai_errors import describe_api_error, is_transient

METADATA_FINGERPRINT_KEY = "dagster_fingerprint"
ASSET_TAG_KEY = "dagster_asset"
FINGERPRINT_VERSION = 1  # bump when the fingerprint payload changes meaning
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
CREATE_ATTEMPTS = 4  # tries at creating the job, each preceded by a look-up after the first
CREATE_BACKOFF_SECONDS = 2.0

T = TypeVar("T")


class Log(Protocol):
    """Where progress goes: a `logging.Logger`, Dagster's `context.log`, or a test's recorder."""

    def info(self, message: str) -> None: ...

    def warning(self, message: str) -> None: ...

    def error(self, message: str) -> None: ...


class ProviderJobError(Exception):
    """A job outcome the caller must report as a failure: what happened, and facts for the record."""

    def __init__(self, description: str, metadata: Mapping[str, Any] | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.metadata = dict(metadata or {})


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
    return {METADATA_FINGERPRINT_KEY: fingerprint, ASSET_TAG_KEY: "fine_tuned_model"}


def find_jobs(client: openai_sdk.OpenAI, fingerprint: str) -> list[FineTuningJob]:
    """Every provider job with this fingerprint, newest first (all pages)."""
    jobs = [
        job
        for job in client.fine_tuning.jobs.list(metadata={METADATA_FINGERPRINT_KEY: fingerprint})
        # Re-check client-side: a compatible server might ignore the metadata filter.
        if (job.metadata or {}).get(METADATA_FINGERPRINT_KEY) == fingerprint
    ]
    return sorted(jobs, key=lambda job: job.created_at, reverse=True)


def find_jobs_with_recorded(
    client: openai_sdk.OpenAI, fingerprint: str, recorded_ids: list[str], log: Log
) -> list[FineTuningJob]:
    """`find_jobs`, plus the jobs whose ids earlier lease holders recorded (`job_lease.record_job_id`), newest first.

    A provider's listing may not show a job created moments ago; retrieving it by id does. A
    recorded id the provider does not know (404: another provider, a deleted job) or whose job
    carries another fingerprint is left out, with a log line; any other error is raised, since
    going on without the job could pay for it twice.
    """
    jobs = {job.id: job for job in find_jobs(client, fingerprint)}
    for job_id in recorded_ids:
        if job_id in jobs:
            continue
        try:
            job = client.fine_tuning.jobs.retrieve(job_id)
        except openai_sdk.NotFoundError:
            log.warning(f"Recorded fine-tuning job {job_id} is unknown to the provider (404); ignoring it.")
            continue
        if (job.metadata or {}).get(METADATA_FINGERPRINT_KEY) != fingerprint:
            log.warning(f"Recorded fine-tuning job {job_id} has another fingerprint; ignoring it.")
            continue
        log.info(f"Recorded fine-tuning job {job_id} ({job.status}) is not listed by the provider yet; counting it.")
        jobs[job.id] = job
    return sorted(jobs.values(), key=lambda job: job.created_at, reverse=True)


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


def _retry_after_seconds(error: openai_sdk.APIError, default: float) -> float:
    """The provider's retry-after hint when it sent one, else `default`."""
    response = getattr(error, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return max(float(value), 0.0) if value is not None else default
    except ValueError:
        return default


def create_once(
    create: Callable[[], T],
    find_existing: Callable[[], T | None],
    action: str,
    client: openai_sdk.OpenAI,
    log: Log,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[T, bool]:
    """Create a paid provider object (a job, a batch) without ever creating it twice.

    `create` must make exactly one request with the client's automatic retries off: when a
    request times out or fails with a 5xx after the provider accepted it, a blind retry would
    start (and bill) a second one. So before every new attempt `find_existing` looks it up (by
    the fingerprint in its metadata). Returns (object, whether an earlier attempt had created it).
    """
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        if attempt > 1:
            existing = find_existing()
            if existing is not None:
                log.info(f"The earlier request {action} did reach the provider: using {getattr(existing, 'id', existing)}.")
                return existing, True
        try:
            return create(), False
        except openai_sdk.APIError as error:
            if not is_transient(error) or attempt == CREATE_ATTEMPTS:
                raise
            delay = _retry_after_seconds(error, CREATE_BACKOFF_SECONDS * attempt)
            log.warning(
                describe_api_error(error, action, client)
                + f"; checking whether it was created, then trying again in {delay:.1f} s"
            )
            sleep(delay)
    raise AssertionError("unreachable: the last attempt either returns or raises")


def create_job_once(
    client: openai_sdk.OpenAI,
    fingerprint: str,
    create_kwargs: Mapping[str, Any],
    log: Log,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[FineTuningJob, bool]:
    """Create the provider job without ever creating it twice; returns (job, found_existing)."""
    once = client.with_options(max_retries=0)

    def find_existing() -> FineTuningJob | None:
        live = [job for job in find_jobs(client, fingerprint) if job.status not in ("failed", "cancelled")]
        return live[0] if live else None

    return create_once(
        lambda: once.fine_tuning.jobs.create(**create_kwargs), find_existing,
        "creating the fine-tuning job", client, log, sleep,
    )


def settle_concurrent_jobs(
    client: openai_sdk.OpenAI, fingerprint: str, ours: FineTuningJob, log: Log
) -> tuple[FineTuningJob, bool]:
    """Keep one job when runs that do not share the creation lease (`job_lease`: another host or
    workdir, same provider account) raced.

    Every racer lists the in-flight jobs with this fingerprint and keeps the oldest (ties broken by
    id, so all racers agree); a racer whose own job lost cancels it at once, before it trains,
    and attaches to the keeper. Returns (job to follow, whether it is someone else's).
    """
    # Only jobs still in flight race; a succeeded one is there because of force_retrain.
    live = [job for job in find_jobs(client, fingerprint) if job.status not in TERMINAL_STATUSES]
    # Ours counts even when a lagging listing does not show it yet, so every racer compares the same jobs.
    keeper = min([*live, ours], key=lambda job: (job.created_at, job.id))
    if keeper.id == ours.id:
        return ours, False
    log.warning(f"Another run created job {keeper.id} with the same fingerprint first; cancelling {ours.id}.")
    client.fine_tuning.jobs.cancel(ours.id)
    return keeper, True


def job_error(job: FineTuningJob) -> ProviderJobError:
    """The error for a job that ended without a model (failed, cancelled), in the provider's own words."""
    code = job.error.code if job.error else None
    if job.error:
        message = job.error.message
    elif job.status == "succeeded":
        message = "the provider reported success but no fine-tuned model name"
    else:
        message = "no error reported by the provider"
    return ProviderJobError(
        f"Fine-tuning job {job.id} {job.status}: [{code or job.status}] {message}",
        {"job_id": job.id, "status": job.status, "error_code": code or "", "error_message": message},
    )


def resolved_hyperparameters(job: FineTuningJob) -> dict[str, Any]:
    """Hyperparameters the provider actually used ("auto" resolved when it reports them)."""
    supervised = job.method.supervised if job.method is not None else None
    source = supervised.hyperparameters if supervised is not None and supervised.hyperparameters else None
    values = (source or job.hyperparameters).model_dump(exclude_none=True)
    return {key: value for key, value in values.items() if key in ("n_epochs", "batch_size", "learning_rate_multiplier")}


def result_file_text(content: bytes) -> str:
    """A fine-tuning result file as CSV text: OpenAI serves it base64-encoded; plain CSV is read as it is."""
    text = content.decode("utf-8", "replace")
    if text.lstrip().startswith("step,"):
        return text
    try:
        return base64.b64decode(text.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # neither base64 nor UTF-8 inside: the caller finds no columns
        return text


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
            text = result_file_text(client.files.content(job.result_files[0]).content)
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
