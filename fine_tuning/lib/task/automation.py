"""A task's job (its prep and its chain), and what re-runs it: a schedule and a sensor that
re-tunes when the task's source data changes.

Goodreads keeps its names (`fine_tuning_job`, `retune_schedule`, `retune_on_new_data`); other
tasks get `<name>_fine_tuning_job`, `<name>_retune_schedule`, `<name>_retune_on_new_data`.
Every run of a task carries the tag `fine_tuning/provider_job: <name>`: the run queue
(dagster.yaml) admits one run per tag value, so a task never runs twice at once and tasks
never wait for each other.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import dagster as dg

from fine_tuning.lib.facts import DATA_VERSION_TAG, built_from_version, recorded_data_version
from fine_tuning.lib.staged_build import DatabaseBusy, published_runs

if TYPE_CHECKING:
    from fine_tuning.lib.task.component import FineTuningTask

RETUNE_CRON_ENV = "RETUNE_CRON"
RETUNE_TIMEZONE_ENV = "RETUNE_TIMEZONE"
DEFAULT_RETUNE_CRON = "0 3 * * 1"  # weekly, Monday 03:00
RETUNE_SENSOR_INTERVAL_ENV = "RETUNE_SENSOR_INTERVAL_SECONDS"
# Each tick hashes the input files (or sends HEAD requests), so not every 30 s.
DEFAULT_RETUNE_SENSOR_INTERVAL_SECONDS = 600
PROVIDER_JOB_TAG_KEY = "fine_tuning/provider_job"
# The Goodreads task's run tag (its name is `goodreads`).
PROVIDER_JOB_TAG = {PROVIDER_JOB_TAG_KEY: "goodreads"}
TRIGGER_TAG = "fine_tuning/trigger"
SOURCE_VERSION_TAG = "fine_tuning/source_data_version"
# Queued or running. NOT_STARTED is left out: a run whose launch failed stays in it for good and
# would block re-tuning forever, while a real launch leaves it within moments.
RUN_IN_FLIGHT_STATUSES = [
    dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def provider_job_tag(task: FineTuningTask) -> dict[str, str]:
    """The run tag that queues the task's runs one at a time."""
    return {PROVIDER_JOB_TAG_KEY: task.name}


def task_selection(task: FineTuningTask) -> dg.AssetSelection:
    """The task's chain and everything upstream of it (its prep, and the source assets it observes)."""
    with_prep = dg.AssetSelection.assets(*task.chain_keys()).upstream()
    return with_prep | with_prep.upstream_source_assets()


def build_job(task: FineTuningTask) -> dg.UnresolvedAssetJobDefinition:
    """The task's job: its prep (whatever is upstream of its source) and its whole chain.

    No executor here: the code location's default (in process, `defs/executor.py`) applies.
    """
    return dg.define_asset_job(
        name=task.job_name_or_default(),
        selection=task_selection(task),
        description=(
            f"Build {task.source_query.described()} and what it reads, write and check the training files, upload "
            "them, fine-tune (reusing any provider job with the same fingerprint), evaluate against the base "
            "and production models, and decide the production model."
        ),
        tags=provider_job_tag(task),
    )


def build_schedule(task: FineTuningTask, job: dg.UnresolvedAssetJobDefinition, cron: str, timezone: str) -> dg.ScheduleDefinition:
    """The task's re-tuning schedule: one run request per tick."""
    name = task.schedule_name_or_default()

    @dg.schedule(
        name=name,
        job=job,
        cron_schedule=cron,
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            f"Re-runs {job.name} ({cron}, {timezone}). With unchanged data every upload and the provider job "
            "are reused, so a tick costs nothing."
        ),
    )
    def retune(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        """One run request per tick, keyed by the tick time so a retried tick never launches twice."""
        scheduled = context.scheduled_execution_time
        run_key = scheduled.isoformat() if scheduled else None
        return dg.RunRequest(run_key=run_key, tags={TRIGGER_TAG: name})

    return retune


def runs_in_flight(instance: dg.DagsterInstance, job_name: str, tag: dict[str, str]) -> list[str]:
    """Ids of queued or running runs of the job, or of any run carrying its provider tag."""
    by_job = dg.RunsFilter(job_name=job_name, statuses=RUN_IN_FLIGHT_STATUSES)
    by_tag = dg.RunsFilter(tags=tag, statuses=RUN_IN_FLIGHT_STATUSES)
    return sorted({run.run_id for runs_filter in (by_job, by_tag) for run in instance.get_runs(filters=runs_filter)})


def _observation_if_new(instance: dg.DagsterInstance, key: dg.AssetKey, observed: dg.ObserveResult) -> list[dg.AssetObservation]:
    """An observation of the source to record when its version differs from the last recorded
    one, so the UI shows the new version and marks downstream assets stale."""
    version = observed.data_version.value  # type: ignore[union-attr]
    if recorded_data_version(instance, key) == version:
        return []
    return [dg.AssetObservation(asset_key=key, metadata=observed.metadata, tags={DATA_VERSION_TAG: version})]


def _asset_graph(context: dg.SensorEvaluationContext, sensor_name: str):  # type: ignore[no-untyped-def]
    if context.repository_def is None:
        raise dg.DagsterInvariantViolationError(
            f"{sensor_name} reads the asset graph: evaluate it with the code location's definitions"
        )
    return context.repository_def.asset_graph


def _observable_sources(graph, task: FineTuningTask) -> list[dg.AssetKey]:  # type: ignore[no-untyped-def]
    """The observable source assets upstream of the task's source deps (Goodreads: goodreads_source_dataset)."""
    found, todo, seen = [], list(task.dep_keys()), set()
    while todo:
        key = todo.pop()
        if key in seen or not graph.has(key):
            continue
        seen.add(key)
        node = graph.get(key)
        if node.is_observable and not node.is_materializable:
            found.append(key)
        todo.extend(node.parent_keys)
    return sorted(found, key=lambda key: key.to_user_string())


def _observe(context: dg.SensorEvaluationContext, key: dg.AssetKey) -> dg.ObserveResult:
    """Run a source's observation function (as the job's observation step would)."""
    source = context.repository_def.source_assets_by_key[key]  # type: ignore[union-attr]
    return source.observe_fn()  # type: ignore[misc]


def _published(task: FineTuningTask) -> dict[str, str] | None:
    """For a source built by the staged prep: per prep asset, the run whose view of its tables is
    published (`lib.staged_build.published_runs`); None for other sources."""
    if not task.source.one_load:
        return None
    from fine_tuning.core.settings import duckdb_database

    return published_runs(task.database_path() or duckdb_database())


def _built_from(instance: dg.DagsterInstance, child: dg.AssetKey, source: dg.AssetKey,
                published: dict[str, str] | None) -> str | None:
    """The source data version `child` was built from. A staged prep asset counts by the run that
    published its tables, not its latest materialization (recorded as it staged, before its run
    published them, or failed to); one never published counts as never built."""
    if published is None:
        return built_from_version(instance, child, source)
    run_id = published.get(child.to_user_string())
    return built_from_version(instance, child, source, run_id) if run_id else None


def _deps_versions(instance: dg.DagsterInstance, task: FineTuningTask) -> tuple[dict[dg.AssetKey, str | None], list[str]]:
    """For a source without an observable source asset: each dep's current data version (None: never
    recorded), and the deps whose version differs from the one the training files were written from."""
    current: dict[dg.AssetKey, str | None] = {}
    stale: list[str] = []
    for dep in task.dep_keys():
        version = recorded_data_version(instance, dep)
        current[dep] = version
        if version is not None and built_from_version(instance, task.keys.training_file, dep) != version:
            stale.append(dep.to_user_string())
    return current, stale


def build_sensor(task: FineTuningTask, job: dg.UnresolvedAssetJobDefinition, interval_seconds: int) -> dg.SensorDefinition:
    """The task's data-change sensor (stopped by default).

    Where the task's source comes from an observable source asset (the Goodreads files), it
    observes it and launches the job when the tables were built from another data version. For
    a source without one (a table materialized by an ordinary asset), it compares the deps'
    current data versions with those the training files were written from.
    """
    name = task.sensor_name_or_default()
    tag = provider_job_tag(task)

    def evaluate(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        graph = _asset_graph(context, name)
        sources = _observable_sources(graph, task)
        try:
            published = _published(task)
        except DatabaseBusy:
            return dg.SensorResult(skip_reason="the DuckDB file is held by a run in progress: checking again next tick")
        events: list[dg.AssetObservation] = []
        current: dict[dg.AssetKey, str | None] = {}
        stale: list[str] = []
        for source in sources:
            try:
                observed = _observe(context, source)
            except dg.Failure as error:  # a missing file or an unreachable URL: say so, try next tick
                return dg.SensorResult(skip_reason=f"cannot observe {source.to_user_string()}: {error.description}")
            version = observed.data_version.value  # type: ignore[union-attr]
            current[source] = version
            events += _observation_if_new(context.instance, source, observed)
            children = graph.get(source).child_keys
            if {_built_from(context.instance, child, source, published) for child in children} != {version}:
                stale.append(source.to_user_string())
        if not sources:
            current, stale = _deps_versions(context.instance, task)
            unversioned = [key.to_user_string() for key, version in current.items() if version is None]
            if unversioned and not stale:
                return dg.SensorResult(skip_reason=(
                    f"{', '.join(unversioned)} has no data version yet (never materialized): nothing to re-tune from"))
        by_key = sorted(current.items(), key=lambda kv: kv[0].to_user_string())
        versions = ";".join(f"{key.to_user_string()}={value}" for key, value in by_key)
        if not current:
            return dg.SensorResult(skip_reason=f"{task.name} has no source data version to watch (no deps)")
        if not stale:
            return dg.SensorResult(skip_reason=f"{job.name}: built from source data version(s) {versions}", asset_events=events)
        in_flight = runs_in_flight(context.instance, job.name, tag)
        if in_flight:
            return dg.SensorResult(
                skip_reason=f"source data {', '.join(stale)} is new ({versions}), but fine-tuning run {in_flight[0]} "
                "is queued or running: checking again next tick",
                asset_events=events,
            )
        single = len(current) == 1
        version_text = next(iter(current.values())) if single else versions
        key_text = next(iter(current)).to_user_string() if single else task.name
        request = dg.RunRequest(
            run_key=f"{key_text}:{version_text}",  # a data version is re-tuned at most once
            tags={TRIGGER_TAG: name, SOURCE_VERSION_TAG: str(version_text)},
        )
        return dg.SensorResult(run_requests=[request], asset_events=events)

    evaluate.__name__ = name
    sensor: Callable[..., dg.SensorDefinition] = dg.sensor(
        name=name,
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            f"Re-tunes {task.name} when its source data changes: observes the source assets upstream of its "
            f"source (or reads its deps' data versions) and launches {job.name} when the training data was built "
            "from another version. One run per data version (run key), never while a run of the task is queued or "
            "running. Off by default; switch it on here or under Automation."
        ),
    )
    return sensor(evaluate)


def retune_cron(default: str) -> str:
    """RETUNE_CRON when set, else the task's own cron."""
    return os.environ.get(RETUNE_CRON_ENV) or default


def retune_timezone(default: str) -> str:
    """RETUNE_TIMEZONE when set, else the task's own timezone."""
    return os.environ.get(RETUNE_TIMEZONE_ENV) or default


def retune_sensor_interval(default: int) -> int:
    """RETUNE_SENSOR_INTERVAL_SECONDS when set, else the task's own interval."""
    return int(os.environ.get(RETUNE_SENSOR_INTERVAL_ENV) or default)
