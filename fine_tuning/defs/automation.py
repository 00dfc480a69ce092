"""The job that runs every asset and check, and the schedule that re-tunes the model."""

from __future__ import annotations

import os
import warnings

import dagster as dg

RETUNE_CRON_ENV = "RETUNE_CRON"
RETUNE_TIMEZONE_ENV = "RETUNE_TIMEZONE"
DEFAULT_RETUNE_CRON = "0 3 * * 1"  # weekly, Monday 03:00
# The run queue (dagster.yaml) admits one run with this tag at a time.
PROVIDER_JOB_TAG = {"fine_tuning/provider_job": "goodreads"}

# include_sources (beta) makes the run observe goodreads_source_dataset, so data versions and
# staleness follow the inputs; its warning would otherwise print on every CLI command.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    _EVERY_ASSET_AND_SOURCE = dg.AssetSelection.all(include_sources=True)

fine_tuning_job = dg.define_asset_job(
    name="fine_tuning_job",
    selection=_EVERY_ASSET_AND_SOURCE,
    description=(
        "Load Goodreads data, write and check the training files, upload them, fine-tune "
        "(reusing any provider job with the same fingerprint) and evaluate against the base model."
    ),
    tags=PROVIDER_JOB_TAG,
    # One DuckDB file admits a single writing process, and at this size process start-up
    # would dominate, so every step runs in the run worker.
    executor_def=dg.in_process_executor,
)


def _retune_cron() -> str:
    return os.environ.get(RETUNE_CRON_ENV) or DEFAULT_RETUNE_CRON


@dg.schedule(
    job=fine_tuning_job,
    cron_schedule=_retune_cron(),
    execution_timezone=os.environ.get(RETUNE_TIMEZONE_ENV) or "UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=(
        "Re-runs fine_tuning_job (default weekly; RETUNE_CRON / RETUNE_TIMEZONE override). With "
        "unchanged data every upload and the provider job are reused, so a tick costs nothing."
    ),
)
def retune_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """One run request per tick, keyed by the tick time so a retried tick never launches twice."""
    scheduled = context.scheduled_execution_time
    run_key = scheduled.isoformat() if scheduled else None
    return dg.RunRequest(run_key=run_key, tags={"fine_tuning/trigger": "retune_schedule"})
