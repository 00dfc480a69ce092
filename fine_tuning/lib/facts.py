"""What earlier steps recorded, read back from the Dagster instance: the one place that does.

Steps hand each other small facts (a file's path and sha256, an uploaded file id, a model name,
an evaluation's scores) through materialization and check metadata, never through pickled
outputs. Every read of those facts goes through this module, and so does every use of
Dagster's private API (`dagster._core`): a Dagster upgrade that moves it touches this file only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

# Dagster's config types, for the run-config reference (fine_tuning.config_reference).
from dagster._config import ConfigType, ConfigTypeKind  # noqa: F401 - re-exported
from dagster._config.field import Field as ConfigField  # noqa: F401 - re-exported
from dagster._core.definitions.data_version import DATA_VERSION_TAG, read_input_data_version_from_tags
from dagster._core.errors import DagsterHomeNotSetError
from dagster._core.events import EVENT_TYPE_TO_DISPLAY_STRING
from dagster._core.log_manager import LOG_RECORD_METADATA_ATTR
from dagster._core.secrets.env_file import get_env_var_dict
from dagster._core.storage.asset_check_execution_record import COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES

__all__ = [
    "DATA_VERSION_TAG", "EVENT_TYPE_TO_DISPLAY_STRING", "LOG_RECORD_METADATA_ATTR", "DagsterHomeNotSetError",
    "CheckResult", "Materialization", "RecordedEvaluation", "all_check_results", "built_from_version", "check_results",
    "latest_check_evaluation", "latest_materialization", "latest_metadata", "materializations", "plain_metadata",
    "project_instance",
    "recorded_data_version", "run_check_results", "run_materializations",
]

PAGE = 1000

Context = dg.AssetExecutionContext | dg.AssetCheckExecutionContext | dg.OpExecutionContext


def project_instance() -> dg.DagsterInstance:
    """The instance the `dagster` CLI opens from the working directory: DAGSTER_HOME after applying the
    directory's `.env` as that CLI does (Dagster's own reader; `make setup` writes the checkout's
    instance there). Raises DagsterHomeNotSetError when neither names one."""
    home = get_env_var_dict(os.getcwd()).get("DAGSTER_HOME")
    if home:
        os.environ["DAGSTER_HOME"] = home
    return dg.DagsterInstance.get()


def plain_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata values as plain Python (MetadataValue.value), ready for JSON or comparisons."""
    return {name: getattr(value, "value", value) for name, value in metadata.items()}


@dataclass(frozen=True)
class Materialization:
    """One materialization of an asset: its run, when, and its plain metadata."""

    run_id: str
    timestamp: float
    metadata: dict[str, Any]


@dataclass(frozen=True)
class CheckResult:
    """One completed asset check evaluation: its run, verdict and plain metadata."""

    run_id: str
    passed: bool
    description: str
    metadata: dict[str, Any]


def latest_materialization(instance: dg.DagsterInstance, key: dg.AssetKey) -> Materialization | None:
    """The asset's latest materialization on this instance, or None when it has none."""
    event = instance.get_latest_materialization_event(key)
    materialization = event.asset_materialization if event is not None else None
    if event is None or materialization is None:
        return None
    return Materialization(event.run_id, event.timestamp, plain_metadata(materialization.metadata))


def latest_metadata(context: Context, asset_key: dg.AssetKey | str | dg.AssetsDefinition) -> dict[str, Any]:
    """Plain metadata of the latest materialization of `asset_key` (what an upstream step recorded).

    Raises `dg.Failure` naming the asset when it has never been materialized.
    """
    key = asset_key.key if isinstance(asset_key, dg.AssetsDefinition) else dg.AssetKey.from_coercible(asset_key)
    found = latest_materialization(context.instance, key)
    if found is None:
        raise dg.Failure(description=f"Asset {key.to_user_string()} has never been materialized; materialize it first.")
    return found.metadata


def materializations(instance: dg.DagsterInstance, key: dg.AssetKey) -> Iterator[Materialization]:
    """Every materialization of the asset on this instance, oldest first (read a page at a time)."""
    cursor = None
    while True:
        result = instance.fetch_materializations(key, limit=PAGE, cursor=cursor, ascending=True)
        for record in result.records:
            materialization = record.asset_materialization
            if materialization is not None:
                yield Materialization(record.run_id, record.timestamp, plain_metadata(materialization.metadata))
        if not result.has_more:
            return
        cursor = result.cursor


def _check_records(instance: dg.DagsterInstance, key: dg.AssetCheckKey, limit: int, cursor: int | None = None) -> Sequence[Any]:
    return instance.event_log_storage.get_asset_check_execution_history(
        key, limit=limit, cursor=cursor, status=set(COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES)
    )


def _as_result(record: Any) -> CheckResult | None:
    if record.event is None or record.event.dagster_event is None:
        return None
    data = record.event.dagster_event.asset_check_evaluation_data
    return CheckResult(record.run_id, bool(data.passed), data.description or "", plain_metadata(data.metadata))


@dataclass(frozen=True)
class RecordedEvaluation:
    """A check's latest completed evaluation as recorded: verdict, severity, description and the
    metadata values as Dagster stored them (so a step can report the same result again)."""

    run_id: str
    passed: bool
    severity: dg.AssetCheckSeverity
    description: str
    metadata: Mapping[str, dg.MetadataValue]


def latest_check_evaluation(instance: dg.DagsterInstance, key: dg.AssetCheckKey) -> RecordedEvaluation | None:
    """The check's latest completed evaluation on this instance, or None when it has none."""
    records = _check_records(instance, key, 1)
    if not records or records[0].event is None or records[0].event.dagster_event is None:
        return None
    data = records[0].event.dagster_event.asset_check_evaluation_data
    return RecordedEvaluation(records[0].run_id, bool(data.passed), data.severity, data.description or "",
                              dict(data.metadata))


def check_results(instance: dg.DagsterInstance, key: dg.AssetCheckKey, limit: int) -> list[CheckResult]:
    """The check's latest `limit` completed evaluations, newest first."""
    found = (_as_result(record) for record in _check_records(instance, key, limit))
    return [result for result in found if result is not None]


def all_check_results(instance: dg.DagsterInstance, key: dg.AssetCheckKey) -> Iterator[CheckResult]:
    """Every completed evaluation of the check, newest first (read a page at a time)."""
    cursor = None
    while records := _check_records(instance, key, PAGE, cursor):
        for record in records:
            result = _as_result(record)
            if result is not None:
                yield result
        if len(records) < PAGE:
            return
        cursor = records[-1].id


def run_materializations(instance: dg.DagsterInstance, run_id: str) -> Iterator[tuple[dg.AssetKey, dict[str, Any]]]:
    """(asset key, plain metadata) of every materialization one run recorded, in order."""
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = record.get_dagster_event().step_materialization_data.materialization
        yield materialization.asset_key, plain_metadata(materialization.metadata)


def run_check_results(instance: dg.DagsterInstance, run_id: str) -> Iterator[tuple[dg.AssetCheckKey, CheckResult]]:
    """(check key, result) of every check evaluation one run recorded, in order."""
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        data = record.get_dagster_event().asset_check_evaluation_data
        result = CheckResult(run_id, bool(data.passed), data.description or "", plain_metadata(data.metadata))
        yield data.asset_check_key, result


def _materialization_in_run(instance: dg.DagsterInstance, run_id: str, key: dg.AssetKey) -> dg.EventLogEntry | None:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    entries = [record.event_log_entry for record in records
               if record.event_log_entry.asset_materialization is not None
               and record.event_log_entry.asset_materialization.asset_key == key]
    return entries[-1] if entries else None


def built_from_version(
    instance: dg.DagsterInstance, child: dg.AssetKey, source: dg.AssetKey, run_id: str | None = None
) -> str | None:
    """The data version of `source` that `child` was built from: by its materialization in `run_id`
    when given (else its latest), None when there is none."""
    event = _materialization_in_run(instance, run_id, child) if run_id else None
    if event is None:
        event = instance.get_latest_materialization_event(child)
    version = read_input_data_version_from_tags(event.tags or {}, source) if event else None
    return version.value if version else None


def recorded_data_version(instance: dg.DagsterInstance, key: dg.AssetKey) -> str | None:
    """The data version last recorded for an asset (observed or materialized), or None."""
    record = instance.get_latest_data_version_record(key)
    return (record.event_log_entry.tags or {}).get(DATA_VERSION_TAG) if record else None
