"""Uploads and the resumable `fine_tuned_model` job: never pay twice, never orphan a running job.

* Uploads are content-addressed: a file whose sha256 was already uploaded (purpose fine-tune)
  is reused instead of uploaded again.
* A fine-tuning job is identified by a fingerprint of everything that determines its result.
  The fingerprint lives in the provider job's `metadata`, so the next materialization (or a
  run retry after a crash) finds the same job again instead of paying for a new one.
* Terminating the Dagster run cancels the provider job it was waiting for.

No `from __future__ import annotations` here: Dagster inspects the real `context` annotation.
"""

import csv
import hashlib
import io
import json
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import openai as openai_sdk
from dagster_openai import OpenAIResource
from openai.types import FileObject
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from pydantic import Field

from fine_tuning.tuning import TuningSettings

FILE_PURPOSE = "fine-tune"
GROUP = "fine_tuning"
FINGERPRINT_KEY = "dagster_fingerprint"
ASSET_TAG_KEY = "dagster_asset"
FINGERPRINT_VERSION = 1  # bump when the fingerprint payload changes meaning
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
MIN_POLL_SECONDS = 0.2
MAX_EVENTS_PER_POLL = 1000  # bounds the first fetch when attaching to a long job
MAX_TRANSIENT_POLL_FAILURES = 5  # consecutive polls that may fail (after the client's own retries)
_HASH_CHUNK = 1 << 20


# --------------------------------------------------------------------------------------------
# Small shared helpers
# --------------------------------------------------------------------------------------------


def latest_metadata(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext | dg.OpExecutionContext,
    asset_key: dg.AssetKey | str | dg.AssetsDefinition,
) -> dict[str, Any]:
    """Plain metadata values of the latest materialization of `asset_key` on this instance.

    Raises `dg.Failure` naming the asset when it has never been materialized.
    """
    key = asset_key.key if isinstance(asset_key, dg.AssetsDefinition) else dg.AssetKey.from_coercible(asset_key)
    event = context.instance.get_latest_materialization_event(key)
    materialization = event.asset_materialization if event is not None else None
    if materialization is None:
        raise dg.Failure(
            description=f"Asset {key.to_user_string()} has never been materialized; materialize it first."
        )
    return {name: value.value for name, value in materialization.metadata.items()}


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so large files never sit in memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _redact(text: str, secret: str | None) -> str:
    """Never let an API key reach a log line or an error message."""
    if secret and len(secret) >= 6 and secret in text:
        return text.replace(secret, "***")
    return text


def describe_api_error(error: openai_sdk.APIError, action: str) -> str:
    """A one-line, key-free explanation of an OpenAI client error."""
    if isinstance(error, openai_sdk.APIStatusError):
        code = getattr(error, "code", None)
        body = error.body if isinstance(error.body, dict) else {}
        message = body.get("message") if isinstance(body.get("message"), str) else error.message
        return (
            f"OpenAI API refused {action}: HTTP {error.status_code} {type(error).__name__}"
            f"{f' ({code})' if code else ''}: {message}"
        )
    if isinstance(error, openai_sdk.APITimeoutError):
        return f"OpenAI API timed out while {action}: {error.message}"
    if isinstance(error, openai_sdk.APIConnectionError):
        return f"Could not reach the OpenAI API while {action}: {error.message}"
    return f"OpenAI API error while {action}: {type(error).__name__}: {error.message}"


@contextmanager
def api_errors(action: str, client: openai_sdk.OpenAI | None = None) -> Iterator[None]:
    """Turn `openai.APIError`s into a clear `dg.Failure` (interrupts pass through untouched)."""
    try:
        yield
    except openai_sdk.APIError as error:
        secret = client.api_key if client is not None else None
        raise dg.Failure(description=_redact(describe_api_error(error, action), secret)) from None


# --------------------------------------------------------------------------------------------
# Uploads
# --------------------------------------------------------------------------------------------


def upload_filename(sha256: str, kind: str) -> str:
    """The name a file is uploaded under: content-addressed, so reuse can be found by listing."""
    return f"{sha256[:16]}-{kind}.jsonl"


def _content_sha256(client: openai_sdk.OpenAI, file_id: str) -> str | None:
    """sha256 of an uploaded file's content, or None when the provider refuses to serve it.

    OpenAI does not let fine-tune files be downloaded; the local backend does. When refused,
    the match rests on the name (16 hex digits of the sha256) and the exact byte count.
    """
    try:
        content = client.files.content(file_id)
    except (openai_sdk.PermissionDeniedError, openai_sdk.BadRequestError, openai_sdk.NotFoundError):
        return None
    return hashlib.sha256(content.content).hexdigest()


def find_uploaded_file(
    client: openai_sdk.OpenAI, sha256: str, size: int, kind: str, log: Any | None = None
) -> FileObject | None:
    """An already uploaded fine-tune file with this content, if there is one."""
    wanted_name = upload_filename(sha256, kind)
    for uploaded in client.files.list(purpose=FILE_PURPOSE):  # auto-paginates
        if uploaded.filename != wanted_name or uploaded.bytes != size or uploaded.status == "error":
            continue
        content_sha = _content_sha256(client, uploaded.id)
        if content_sha is None:
            if log is not None:
                log.info(f"{uploaded.id}: provider does not serve fine-tune content; matched on name and size")
            return uploaded
        if content_sha == sha256:
            return uploaded
        if log is not None:
            log.warning(f"{uploaded.id} is named {wanted_name} but its content differs; not reusing it")
    return None


def _verified_upstream_file(upstream: Mapping[str, Any], source: str) -> tuple[Path, str]:
    """Path and sha256 of the upstream JSONL file, after checking the file still has that content."""
    missing = [key for key in ("path", "sha256") if not upstream.get(key)]
    if missing:
        raise dg.Failure(
            description=f"The latest materialization of {source} has no {', '.join(missing)} metadata."
        )
    path = Path(str(upstream["path"]))
    expected = str(upstream["sha256"])
    if not path.is_file():
        raise dg.Failure(description=f"{source} file {path} is missing; re-materialize {source}.")
    actual = file_sha256(path)
    if actual != expected:
        raise dg.Failure(
            description=(
                f"{source} file {path} changed since it was materialized and checked "
                f"(sha256 {actual[:12]}..., recorded {expected[:12]}...); re-materialize {source}."
            )
        )
    return path, expected


def upload_or_reuse(
    client: openai_sdk.OpenAI, path: Path, sha256: str, kind: str, log: Any | None = None
) -> tuple[FileObject, bool]:
    """The uploaded file for this content and whether it was reused rather than uploaded now."""
    size = path.stat().st_size
    with api_errors(f"listing uploaded files for {path.name}", client):
        existing = find_uploaded_file(client, sha256, size, kind, log)
    if existing is not None:
        return existing, True
    with api_errors(f"uploading {path}", client), path.open("rb") as handle:
        uploaded = client.files.create(
            file=(upload_filename(sha256, kind), handle, "application/jsonl"), purpose=FILE_PURPOSE
        )
    return uploaded, False


def build_upload_asset(kind: str) -> dg.AssetsDefinition:
    """`upload_{kind}_file`: uploads `{kind}_file` once per content (kind: training|validation)."""
    source = f"{kind}_file"

    @dg.asset(
        name=f"upload_{kind}_file",
        kinds={"openai"},
        group_name=GROUP,
        deps=[source],
        description=(
            f"Upload {source} (purpose fine-tune), reusing an already uploaded file with the same "
            "sha256 instead of uploading it again."
        ),
    )
    def _upload(context: dg.AssetExecutionContext, openai: OpenAIResource) -> dg.MaterializeResult:
        path, sha256 = _verified_upstream_file(latest_metadata(context, source), source)
        with openai.get_client(context) as client:
            uploaded, reused = upload_or_reuse(client, path, sha256, kind, context.log)
        context.log.info(f"{'Reusing' if reused else 'Uploaded'} {uploaded.id} for {path} ({sha256[:12]}...)")
        return dg.MaterializeResult(
            metadata={
                "file_id": uploaded.id,
                "bytes": int(uploaded.bytes),
                "reused": reused,
                "sha256": sha256,
                "filename": uploaded.filename,
                "path": str(path),
            }
        )

    return _upload


upload_training_file = build_upload_asset("training")
upload_validation_file = build_upload_asset("validation")


# --------------------------------------------------------------------------------------------
# Fine-tuning job
# --------------------------------------------------------------------------------------------


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
    at = datetime.fromtimestamp(estimated_finish, tz=timezone.utc).strftime("%H:%M:%S UTC")
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


def is_transient(error: openai_sdk.APIError) -> bool:
    """Rate limits, server errors and connection problems: worth another poll."""
    if isinstance(error, openai_sdk.APIConnectionError):
        return True
    return isinstance(error, openai_sdk.APIStatusError) and (error.status_code == 429 or error.status_code >= 500)


def cancel_quietly(client: openai_sdk.OpenAI, job_id: str, log: Any) -> None:
    """Cancel a provider job on the way out; a failure to cancel is logged, not raised."""
    try:
        job = client.fine_tuning.jobs.cancel(job_id)
        log.warning(f"Run interrupted: cancelled fine-tuning job {job_id} (status {job.status}).")
    except openai_sdk.APIError as error:
        log.error(_redact(describe_api_error(error, f"cancelling job {job_id}"), client.api_key))


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
                        description=_redact(describe_api_error(error, f"polling fine-tuning job {job_id}"), client.api_key)
                        + " (the job keeps running at the provider; the next materialization attaches to it)"
                    ) from None
                log.warning(_redact(describe_api_error(error, f"polling job {job_id}"), client.api_key) + "; retrying")
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
            with api_errors("creating the fine-tuning job", client):
                job = client.fine_tuning.jobs.create(
                    model=tuning.base_model,
                    training_file=str(training["file_id"]),
                    validation_file=str(validation["file_id"]),
                    method=method,
                    suffix=tuning.suffix,
                    seed=tuning.seed,
                    metadata=job_metadata(fingerprint),
                )
            reused = False
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
