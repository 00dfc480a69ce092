"""Dagster helpers: the pipeline's resources on the test's workdir, and reading what a run recorded."""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster_duckdb import DuckDBResource

from fine_tuning.core.settings import duckdb_path, local_openai_dir
from fine_tuning.lib.local_openai_resource import LocalOpenAIResource
from fine_tuning.lib.task.tuning import TuningSettings


def pipeline_resources(tuning: TuningSettings | None = None, job_seconds: float = 0.5) -> dict[str, Any]:
    """The pipeline's three resources on the current FINE_TUNING_WORKDIR (read now, after any change).

    Its DuckDB file, the local backend in-process in the workdir's store, and `tuning` (default
    settings unless given).
    """
    return {
        "duckdb": DuckDBResource(database=str(duckdb_path())),
        "openai": LocalOpenAIResource(data_dir=str(local_openai_dir()), job_seconds=job_seconds),
        "tuning": tuning or TuningSettings(),
    }


def materialization_metadata(result: dg.ExecuteInProcessResult, asset_name: str) -> dict[str, Any]:
    """Raw metadata values of an asset's one materialization in `result`."""
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset_name)]
    assert len(events) == 1, f"expected one materialization of {asset_name}"
    return {key: value.value for key, value in events[0].materialization.metadata.items()}


def latest_metadata_of(instance: dg.DagsterInstance, key: str) -> dict[str, Any]:
    """Raw metadata values of an asset's latest materialization on `instance`."""
    event = instance.get_latest_materialization_event(dg.AssetKey(key))
    assert event is not None and event.asset_materialization is not None, f"{key} was never materialized"
    return {name: value.value for name, value in event.asset_materialization.metadata.items()}


def failure_description(result: dg.ExecuteInProcessResult) -> str:
    """What the user is told about the run's first step failure: its dg.Failure description, else its error."""
    failures = result.get_step_failure_events()
    assert failures, "expected a step failure"
    data = failures[0].step_failure_data
    return data.user_failure_data.description if data.user_failure_data else data.error.message


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """Everything the failed steps said: errors with their causes and dg.Failure descriptions."""
    texts = []
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            texts.append(data.error.to_string() if data.error else "")
            if data.user_failure_data is not None:
                texts.append(data.user_failure_data.description or "")
    assert texts, "expected a step failure"
    return "\n".join(texts)
