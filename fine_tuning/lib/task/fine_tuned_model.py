"""`fine_tuned_model`: a resumable fine-tuning job that is never paid for twice.

The job logic (fingerprint, choice among existing jobs, creating once, waiting) is Dagster-free
in `core.provider_jobs` and `core.job_polling`; the choice and the creation happen under the
fingerprint's lease (`core.job_lease`), so runs racing outside the run queue create one job and
the others attach to it. This module adds the run configuration, the
upstream hand-off, the metadata, and the Dagster specifics: a terminated run cancels the
provider job it was waiting for, and errors become `dg.Failure`s.

No `from __future__ import annotations` here: Dagster inspects the real `context` annotation.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import dagster as dg
import openai as openai_sdk
from dagster_openai import OpenAIResource
from openai.types.fine_tuning import FineTuningJob
from pydantic import Field

from fine_tuning.core import job_polling
from fine_tuning.core.costs import training_cost
from fine_tuning.core.job_lease import (
    LeaseWaitExpired,
    creation_lease,
    holder_description,
    job_record_path,
    lease_path,
    record_job_id,
    recorded_job_ids,
)
from fine_tuning.core.job_polling import JobProgress
from fine_tuning.core.lifecycle import utc_today
from fine_tuning.core.provider_jobs import (
    JobChoice,
    Log,
    choose_job,
    create_job_once,
    final_losses,
    find_jobs_with_recorded,
    job_error,
    job_metadata,
    resolved_hyperparameters,
    settle_concurrent_jobs,
    training_fingerprint,
)
from fine_tuning.core.settings import workdir
from fine_tuning.core.time_billing import TimeBudget, billed_seconds, price_per_hour, started_at, time_cost
from fine_tuning.lib.facts import check_results, latest_materialization, latest_metadata
from fine_tuning.lib.failures import api_errors, job_failure, provider_job_failures
from fine_tuning.lib.lifecycle import (
    deploy_on_azure,
    lifecycle_metadata,
    lookup_dates,
    needs_deployment,
    provider_name,
    provider_refusals,
)
from fine_tuning.lib.run_settings import CheckedConfig, require_valid_run_settings
from fine_tuning.lib.task.config import task_config
from fine_tuning.lib.task.keys import TaskKeys
from fine_tuning.lib.task.tuning import TuningSettings

if TYPE_CHECKING:
    from fine_tuning.lib.task.component import FineTuningTask

# How far back to look for the cost check that priced the training file before it was uploaded.
ESTIMATE_LOOKBACK = 20
# What stopping a run looks like inside the step: the UI/CLI terminating it, or Ctrl-C.
RUN_INTERRUPTS = (dg.DagsterExecutionInterruptedError, KeyboardInterrupt)


class FineTunedModelConfig(CheckedConfig):
    """Run configuration of `fine_tuned_model`."""

    run_config_path: ClassVar[str] = "ops.fine_tuned_model.config"

    poll_interval_seconds: float = Field(
        default=10.0, ge=0.1, le=3600, description="Seconds between status polls, 0.1-3600 (jittered by +/-20%)."
    )
    force_retrain: bool = Field(
        default=False, description="Train a new model even when a succeeded job has the same fingerprint."
    )
    timeout_hours: float | None = Field(
        default=None, gt=0, le=720,
        description="Stop waiting after this long, up to 720 h (the provider job keeps running; the next run attaches).",
    )


def wait_for_job_in_run(
    client: openai_sdk.OpenAI, job_id: str, log: Log, **polling: Any
) -> tuple[FineTuningJob, JobProgress]:
    """`core.job_polling.wait_for_job` in a run: a terminated run cancels the job, a failed wait is a `dg.Failure`.

    `polling` are that function's keywords (poll_interval_seconds, timeout_seconds, sleep, clock,
    current: the job as just created or found, which stands for the first poll).
    """
    with provider_job_failures():
        return job_polling.wait_for_job(client, job_id, log, interrupts=RUN_INTERRUPTS, **polling)


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
        # One JSON entry, not a chart per hyperparameter: the UI plots every number.
        "hyperparameters": dg.MetadataValue.json(hyperparameters),
        "result_file_id": job.result_files[0] if job.result_files else "",
        **final_losses(client, job, progress.last_metrics),
    }
    rate = price_per_hour(job.model)
    if rate is not None:
        # Billed by training time (reinforcement): whole seconds of running time x the hourly rate.
        seconds = billed_seconds(job, progress.started_at or job_started_at(client, job.id), job.finished_at or 0)
        metadata.update(billed_training_seconds=seconds, price_per_training_hour_usd=rate)
        metadata["cost_usd"] = time_cost(seconds, rate)
    else:
        # None (null) when the catalog has no training price for the model.
        metadata["cost_usd"] = training_cost(job.model, int(job.trained_tokens or 0))
    if (job.model_extra or {}).get("trained_tokens_estimated"):
        # The local backend's marker: counted without the tokenizer file (OpenAI's counts are exact).
        metadata["trained_tokens_estimated"] = True
    if duration is not None:
        metadata["duration_seconds"] = float(duration)
    if replaced:
        metadata["replaced_jobs"] = dg.MetadataValue.json(
            [{"job_id": old.id, "status": old.status, "error": old.error.message if old.error else None} for old in replaced]
        )
    return metadata


def job_started_at(client: openai_sdk.OpenAI, job_id: str) -> int | None:
    """When a job started training, from all its events (None when none says so)."""
    with api_errors(f"listing the events of job {job_id}", client):
        return started_at(client.fine_tuning.jobs.list_events(job_id, limit=100))


def time_budget(
    client: openai_sdk.OpenAI, tuning: TuningSettings, keys: TaskKeys, replaced: tuple[FineTuningJob, ...],
) -> TimeBudget | None:
    """The budget of a time-billed (reinforcement) job, less what cancelled jobs of the same fingerprint spent.

    Only cancelled jobs count: they were stopped by a budget or a terminated run after training;
    OpenAI bills only the training that updated the model, which a failed job's error voids.
    """
    rate = price_per_hour(tuning.base_model)
    if rate is None:
        return None
    spent = sum(
        time_cost(billed_seconds(old, job_started_at(client, old.id), old.finished_at or old.created_at), rate)
        for old in replaced if old.status == "cancelled"
    )
    return TimeBudget(tuning.max_cost_usd, rate, f"resources.{keys.tuning_resource}.config.max_cost_usd", round(spent, 6))


def refuse_spent_budget(budget: TimeBudget | None, replaced: tuple[FineTuningJob, ...]) -> None:
    """Stop before creating a job when the budget buys no billed second (or earlier jobs of these files spent it)."""
    if budget is None or budget.seconds_allowed() > 0:
        return
    jobs = ", ".join(old.id for old in replaced if old.status == "cancelled")
    spent = (f"earlier fine-tuning jobs of these files and settings ({jobs}, cancelled) spent "
             f"${budget.spent_before_usd:.4f} of it" if jobs else "it does not pay for one second of training")
    raise dg.Failure(
        description=f"No fine-tuning job was created: {spent} ({budget.describe()}). Raise {budget.setting} to train.",
        metadata={"earlier_jobs_spent_usd": budget.spent_before_usd, "max_cost_usd": budget.max_cost_usd,
                  "earlier_jobs": jobs or "none", "price_per_training_hour_usd": budget.rate},
    )


def estimated_cost(instance: dg.DagsterInstance, keys: TaskKeys, training_sha256: str) -> float | None:
    """What the training file's cost check priced for this very file (matched by sha256), or None."""
    for result in check_results(instance, keys.cost_check, ESTIMATE_LOOKBACK):
        estimate = result.metadata.get("estimated_cost_usd")
        if result.metadata.get("sha256") == training_sha256 and isinstance(estimate, (int, float)):
            return float(estimate)
    return None


def serving_metadata(
    context: dg.AssetExecutionContext, openai: OpenAIResource, client: openai_sdk.OpenAI, model: str, reused: bool,
    keys: TaskKeys,
) -> dict[str, Any]:
    """Provider, shutdown date and days left of the new model; on Azure, its deployment (created or
    reused and waited for), and the production model's, recreated if Azure deleted it for idleness."""
    provider = provider_name(openai)
    metadata: dict[str, Any] = {}
    if needs_deployment(provider):
        outcome = deploy_on_azure(openai, model, existed_before=reused, log=context.log)
        metadata.update({"deployment": outcome.name, "deployment_action": outcome.action})
        found = latest_materialization(context.instance, keys.production_model)
        champion = found.metadata if found else {}
        if champion.get("deployment") and champion.get("model_name") != model and champion.get("provider") == provider:
            deploy_on_azure(openai, str(champion["model_name"]), existed_before=True, log=context.log)
    dates, _, _ = lookup_dates(client, model, provider)
    return {**metadata, **lifecycle_metadata(dates, utc_today())}


def _upload_ids(context: dg.AssetExecutionContext, keys: TaskKeys) -> tuple[dict[str, Any], dict[str, Any]]:
    found = {key: latest_metadata(context, key) for key in (keys.upload_training_file, keys.upload_validation_file)}
    for key, values in found.items():
        if not values.get("file_id") or not values.get("sha256"):
            raise dg.Failure(
                description=f"The latest materialization of {key.to_user_string()} has no file_id/sha256 metadata."
            )
    return found[keys.upload_training_file], found[keys.upload_validation_file]


@contextmanager
def exclusive_creation(context: dg.AssetExecutionContext, keys: TaskKeys, fingerprint: str) -> Iterator[Path]:
    """Hold the lease that makes looking up and creating the job with `fingerprint` one run's at a
    time (`core.job_lease`, shared by every run of the project through FINE_TUNING_WORKDIR); yields
    the record of the jobs its holders chose (`core.job_lease.job_record_path`). A wait that runs
    out is a `dg.Failure`."""
    holder = holder_description(context.run.run_id, keys.name)
    try:
        with creation_lease(lease_path(workdir(), fingerprint), holder, context.log):
            yield job_record_path(workdir(), fingerprint)
    except LeaseWaitExpired as error:
        raise dg.Failure(description=str(error), allow_retries=False) from error


def choose_job_in_run(
    client: openai_sdk.OpenAI, fingerprint: str, force_retrain: bool, log: Log, recorded_ids: list[str]
) -> JobChoice:
    """`core.provider_jobs.choose_job` among the provider's jobs with `fingerprint` (those listed and
    those recorded beside the lease, `recorded_ids`), reported in the run's log."""
    with api_errors("looking up fine-tuning jobs", client):
        choice = choose_job(find_jobs_with_recorded(client, fingerprint, recorded_ids, log), force_retrain)
    for old in choice.replaced:
        reason = f"[{old.error.code}] {old.error.message}" if old.error else "no error reported"
        log.warning(f"Earlier job {old.id} with this fingerprint ended {old.status} ({reason}); replacing it.")
    if choice.job is not None:
        verb = "Reusing succeeded" if choice.job.status == "succeeded" else "Attaching to in-flight"
        log.info(f"{verb} fine-tuning job {choice.job.id} ({choice.job.status}).")
    return choice


def _create_kwargs(
    tuning: TuningSettings, training: dict[str, Any], validation: dict[str, Any], method: dict[str, Any],
    fingerprint: str,
) -> dict[str, Any]:
    """The arguments of `client.fine_tuning.jobs.create` for this task and these files."""
    create_kwargs = {
        "model": tuning.base_model,
        "training_file": str(training["file_id"]),
        "validation_file": str(validation["file_id"]),
        "method": method,
        "suffix": tuning.suffix,
        "seed": tuning.seed,
        # The task's metadata, then the pipeline's own keys (which find the job again).
        "metadata": {**(tuning.job_metadata or {}), **job_metadata(fingerprint)},
    }
    if tuning.integrations:
        create_kwargs["integrations"] = tuning.integrations
    return create_kwargs


def _create_job(
    client: openai_sdk.OpenAI, create_kwargs: dict[str, Any], fingerprint: str, log: Log, provider: str
) -> tuple[FineTuningJob, bool]:
    """A new provider job (or the one a lost answer or a racing run started); whether it is someone else's."""
    with api_errors("creating the fine-tuning job", client), provider_refusals("creating the fine-tuning job", client, provider):
        # A job found after a lost answer is the one this run's own request started.
        job, _ = create_job_once(client, fingerprint, create_kwargs, log)
        job, reused = settle_concurrent_jobs(client, fingerprint, job, log)
    if not reused:
        log.info(f"Created fine-tuning job {job.id} on {create_kwargs['model']}.")
    return job, reused


def build_fine_tuned_model(task: "FineTuningTask") -> dg.AssetsDefinition:
    """The task's `fine_tuned_model` asset."""
    keys = task.keys
    config_class = task_config(FineTunedModelConfig, f"ops.{keys.op('fine_tuned_model')}.config")

    @dg.asset(
        key=keys.fine_tuned_model,
        kinds={"openai"},
        group_name=task.model_group(),
        deps=[keys.upload_training_file, keys.upload_validation_file],
        description=(
            "Fine-tune the base model on the uploaded files. A job with the same fingerprint (files, "
            "model, method, suffix, seed) is reused or resumed instead of paid for twice; terminating "
            "the run cancels the provider job."
        ),
        required_resource_keys={"openai", keys.tuning_resource},
        pool=task.provider_job_pool(),
    )
    def fine_tuned_model(context: dg.AssetExecutionContext, config: config_class) -> dg.MaterializeResult:  # type: ignore[valid-type]
        """Create, reuse or resume the provider fine-tuning job and wait for its model."""
        return train(context, config, context.resources.openai, getattr(context.resources, keys.tuning_resource), keys)

    return fine_tuned_model


def train(
    context: dg.AssetExecutionContext, config: FineTunedModelConfig, openai: OpenAIResource, tuning: TuningSettings,
    keys: TaskKeys,
) -> dg.MaterializeResult:
    """Create, reuse or resume the provider fine-tuning job and wait for its model."""
    require_valid_run_settings(context)
    training, validation = _upload_ids(context, keys)
    method = tuning.job_method()
    fingerprint = training_fingerprint(
        str(training["sha256"]), str(validation["sha256"]), tuning.base_model, method, tuning.suffix, tuning.seed
    )
    context.log.info(f"Training fingerprint {fingerprint}")
    with openai.get_client(context) as client:
        with exclusive_creation(context, keys, fingerprint) as job_record:
            choice = choose_job_in_run(client, fingerprint, config.force_retrain, context.log, recorded_job_ids(job_record))
            budget = time_budget(client, tuning, keys, choice.replaced)
            if choice.job is not None:
                job, reused = choice.job, True
            else:
                refuse_spent_budget(budget, choice.replaced)
                create_kwargs = _create_kwargs(tuning, training, validation, method, fingerprint)
                job, reused = _create_job(client, create_kwargs, fingerprint, context.log, provider_name(openai))
            # Before the lease is released: the next holder finds this job by id even while the
            # provider's listing does not show it yet.
            record_job_id(job_record, job.id)
        if job.status == "succeeded":
            progress = JobProgress()  # nothing to wait for; losses come from the result file
        else:
            timeout = config.timeout_hours * 3600 if config.timeout_hours else None
            job, progress = wait_for_job_in_run(
                client, job.id, context.log,
                poll_interval_seconds=config.poll_interval_seconds, timeout_seconds=timeout, current=job, budget=budget,
            )
        if job.status != "succeeded" or not job.fine_tuned_model:
            raise job_failure(job_error(job))
        metadata = success_metadata(client, job, progress, reused, fingerprint, choice.replaced)
        metadata.update(serving_metadata(context, openai, client, job.fine_tuned_model, reused, keys))
    metadata["estimated_cost_usd"] = estimated_cost(context.instance, keys, str(training["sha256"]))
    context.log.info(f"Fine-tuned model {job.fine_tuned_model} (job {job.id}, reused={reused}).")
    return dg.MaterializeResult(metadata=metadata)
