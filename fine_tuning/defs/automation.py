"""The job that runs every asset and check, and what re-runs it: a weekly schedule and a
sensor that re-tunes when the Goodreads source data changes."""

from __future__ import annotations

import os
import warnings

import dagster as dg
from dagster._core.definitions.data_version import DATA_VERSION_TAG, read_input_data_version_from_tags

from fine_tuning.core.settings import duckdb_database
from fine_tuning.defs.goodreads.goodreads_source_dataset import goodreads_source_dataset
from fine_tuning.defs.goodreads.loads import GOODREADS_TABLES
from fine_tuning.lib.staged_build import DatabaseBusy, published_runs

RETUNE_CRON_ENV = "RETUNE_CRON"
RETUNE_TIMEZONE_ENV = "RETUNE_TIMEZONE"
DEFAULT_RETUNE_CRON = "0 3 * * 1"  # weekly, Monday 03:00
RETUNE_SENSOR_INTERVAL_ENV = "RETUNE_SENSOR_INTERVAL_SECONDS"
# Each tick hashes both input files (or sends HEAD requests), so not every 30 s.
DEFAULT_RETUNE_SENSOR_INTERVAL_SECONDS = 600
# The run queue (dagster.yaml) admits one run with this tag at a time.
PROVIDER_JOB_TAG = {"fine_tuning/provider_job": "goodreads"}
TRIGGER_TAG = "fine_tuning/trigger"
SOURCE_VERSION_TAG = "fine_tuning/source_data_version"
# Queued or running. NOT_STARTED is left out: a run whose launch failed stays in it for good and
# would block re-tuning forever, while a real launch leaves it within moments.
RUN_IN_FLIGHT_STATUSES = [
    dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]

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
    return dg.RunRequest(run_key=run_key, tags={TRIGGER_TAG: "retune_schedule"})


def fine_tuning_runs_in_flight(instance: dg.DagsterInstance) -> list[str]:
    """Ids of queued or running runs of fine_tuning_job, or of any run carrying its provider tag."""
    by_job = dg.RunsFilter(job_name=fine_tuning_job.name, statuses=RUN_IN_FLIGHT_STATUSES)
    by_tag = dg.RunsFilter(tags=PROVIDER_JOB_TAG, statuses=RUN_IN_FLIGHT_STATUSES)
    return sorted({run.run_id for runs_filter in (by_job, by_tag) for run in instance.get_runs(filters=runs_filter)})


def published_materialization(
    instance: dg.DagsterInstance, key: dg.AssetKey, published: dict[str, str]
) -> dg.EventLogEntry | None:
    """The materialization of `key` that describes its published tables: the one of the run whose
    view of them is published (`published_runs`), for a staged prep asset; else its latest.

    A staged prep asset materializes as it stages, before its run publishes (or fails to): its
    latest materialization may describe tables nobody published.
    """
    name = key.to_user_string()
    if name not in GOODREADS_TABLES.targets:
        return instance.get_latest_materialization_event(key)
    run_id = published.get(name)
    if run_id is None:
        return None
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    entries = [record.event_log_entry for record in records
               if record.event_log_entry.asset_materialization is not None
               and record.event_log_entry.asset_materialization.asset_key == key]
    return entries[-1] if entries else instance.get_latest_materialization_event(key)


def built_from_versions(instance: dg.DagsterInstance, source_key: dg.AssetKey, children: set[dg.AssetKey]) -> set[str | None]:
    """The source data versions the source's direct children's published tables were built from
    (None for a child never published). Raises DatabaseBusy while a run holds the DuckDB file."""
    published = published_runs(duckdb_database())
    versions: set[str | None] = set()
    for child in children:
        event = published_materialization(instance, child, published)
        input_version = read_input_data_version_from_tags(event.tags or {}, source_key) if event else None
        versions.add(input_version.value if input_version else None)
    return versions


def _observation_if_new(instance: dg.DagsterInstance, observed: dg.ObserveResult) -> list[dg.AssetObservation]:
    """An observation of the source to record when its version differs from the last recorded
    one, so the UI shows the new version and marks downstream assets stale."""
    source_key = goodreads_source_dataset.key
    version = observed.data_version.value  # type: ignore[union-attr]
    record = instance.get_latest_data_version_record(source_key)
    recorded = (record.event_log_entry.tags or {}).get(DATA_VERSION_TAG) if record else None
    if recorded == version:
        return []
    return [dg.AssetObservation(asset_key=source_key, metadata=observed.metadata, tags={DATA_VERSION_TAG: version})]


def _source_children(context: dg.SensorEvaluationContext) -> set[dg.AssetKey]:
    """The assets built directly from the source (the tables it loads), from the code location."""
    if context.repository_def is None:
        raise dg.DagsterInvariantViolationError(
            "retune_on_new_data reads the asset graph: evaluate it with the code location's definitions"
        )
    return set(context.repository_def.asset_graph.get(goodreads_source_dataset.key).child_keys)


def _retune_sensor_interval() -> int:
    return int(os.environ.get(RETUNE_SENSOR_INTERVAL_ENV) or DEFAULT_RETUNE_SENSOR_INTERVAL_SECONDS)


@dg.sensor(
    job=fine_tuning_job,
    minimum_interval_seconds=_retune_sensor_interval(),
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Re-tunes when the Goodreads inputs change: observes goodreads_source_dataset (the same data "
        "version its observation computes) and launches fine_tuning_job when the tables were built "
        "from another version. One run per data version (run key), never while a fine-tuning run is "
        "queued or running. Off by default; switch it on here or under Automation."
    ),
)
def retune_on_new_data(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Observe the source; request a run keyed by its data version when the tables are older."""
    try:
        observed = goodreads_source_dataset.observe_fn()  # type: ignore[misc]
    except dg.Failure as error:  # a missing file or an unreachable URL: say so, try next tick
        return dg.SensorResult(skip_reason=f"cannot observe goodreads_source_dataset: {error.description}")
    version = observed.data_version.value
    events = _observation_if_new(context.instance, observed)
    children = _source_children(context)
    try:
        built_from = built_from_versions(context.instance, goodreads_source_dataset.key, children)
    except DatabaseBusy:
        return dg.SensorResult(skip_reason="the DuckDB file is held by a run in progress: checking again next tick",
                               asset_events=events)
    if built_from == {version}:
        names = ", ".join(sorted(key.to_user_string() for key in children))
        return dg.SensorResult(skip_reason=f"{names}: built from source data version {version}", asset_events=events)
    in_flight = fine_tuning_runs_in_flight(context.instance)
    if in_flight:
        return dg.SensorResult(
            skip_reason=f"source data version {version} is new, but fine-tuning run {in_flight[0]} is queued or "
            "running: checking again next tick",
            asset_events=events,
        )
    request = dg.RunRequest(
        run_key=f"goodreads_source_dataset:{version}",  # a data version is re-tuned at most once
        tags={TRIGGER_TAG: "retune_on_new_data", SOURCE_VERSION_TAG: version},
    )
    return dg.SensorResult(run_requests=[request], asset_events=events)
