"""What the Dagster instance remembers about evaluations, the production model and spending.

* The production model is the `model_name` of `production_model`'s latest materialization (every
  materialization records the model in production after that run's decision).
* Past `fine_tuned_model_accuracy` evaluations hold every model's score on their prompts, so a
  later evaluation reuses them instead of paying again, and `production_model` reads the
  evaluation of its run from them.
* The running total: every distinct fine-tuning job's `cost_usd` plus every evaluation's
  `evaluation_cost_usd` (zero when it reused its scores), as recorded on this instance.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster._core.storage.asset_check_execution_record import COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES

from fine_tuning.core.scoring import ModelScore

FINE_TUNED_MODEL = dg.AssetKey("fine_tuned_model")
PRODUCTION_MODEL = dg.AssetKey("production_model")
CHECK_KEY = dg.AssetCheckKey(FINE_TUNED_MODEL, "fine_tuned_model_accuracy")
RECENT_EVALUATIONS = 20  # how far back known scores are looked for
PAGE = 1000


@dataclass(frozen=True)
class PastEvaluation:
    """One completed accuracy check: its run, verdict and plain metadata values."""

    run_id: str
    passed: bool
    description: str
    metadata: dict[str, Any]


def plain_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata values as plain Python (MetadataValue.value), ready for JSON or comparisons."""
    return {name: getattr(value, "value", value) for name, value in metadata.items()}


def _evaluation_records(instance: dg.DagsterInstance, limit: int, cursor: int | None = None) -> Sequence[Any]:
    return instance.event_log_storage.get_asset_check_execution_history(
        CHECK_KEY, limit=limit, cursor=cursor, status=set(COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES)
    )


def _as_evaluation(record: Any) -> PastEvaluation | None:
    if record.event is None or record.event.dagster_event is None:
        return None
    data = record.event.dagster_event.asset_check_evaluation_data
    return PastEvaluation(record.run_id, bool(data.passed), data.description or "", plain_metadata(data.metadata))


def past_evaluations(instance: dg.DagsterInstance, limit: int = RECENT_EVALUATIONS) -> list[PastEvaluation]:
    """The latest completed accuracy checks, newest first."""
    found = (_as_evaluation(record) for record in _evaluation_records(instance, limit))
    return [evaluation for evaluation in found if evaluation is not None]


def _all_evaluations(instance: dg.DagsterInstance) -> Iterator[PastEvaluation]:
    cursor = None
    while records := _evaluation_records(instance, PAGE, cursor):
        for record in records:
            evaluation = _as_evaluation(record)
            if evaluation is not None:
                yield evaluation
        if len(records) < PAGE:
            return
        cursor = records[-1].id


def known_scores(evaluations: Sequence[PastEvaluation], key: str, prompts_sha256: str) -> dict[str, ModelScore]:
    """Each model's newest score on exactly these prompts (`key`: the test or the validation scores).

    Evaluations are read newest first up to the first one in which a request failed: failures
    hint that something changed at the provider, so nothing from then or before is trusted.
    """
    known: dict[str, ModelScore] = {}
    for evaluation in evaluations:
        if evaluation.metadata.get("failed_requests") != 0:
            break
        stored = evaluation.metadata.get(key)
        if not isinstance(stored, dict) or stored.get("prompts_sha256") != prompts_sha256:
            continue
        for model, data in (stored.get("scores") or {}).items():
            if model not in known and isinstance(data, dict) and data.get("failed_requests") == 0:
                known[model] = ModelScore.from_json(data)
    return known


def evaluation_of(instance: dg.DagsterInstance, run_id: str, trained_model: str) -> PastEvaluation | None:
    """The accuracy check of this run, else the newest one of `trained_model`; None when there is none."""
    evaluations = past_evaluations(instance)
    for evaluation in evaluations:
        if evaluation.run_id == run_id:
            return evaluation
    return next((e for e in evaluations if e.metadata.get("trained_model") == trained_model), None)


def latest_materialization(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, Any] | None:
    """Plain metadata of the asset's latest materialization, or None when it has none."""
    event = instance.get_latest_materialization_event(key)
    materialization = event.asset_materialization if event is not None else None
    return plain_metadata(materialization.metadata) if materialization is not None else None


def production_model_name(instance: dg.DagsterInstance) -> str | None:
    """The model in production: the latest `production_model` decision's `model_name`, or None."""
    metadata = latest_materialization(instance, PRODUCTION_MODEL) or {}
    name = metadata.get("model_name")
    return str(name) if name else None


def same_provider_champion(instance: dg.DagsterInstance, provider: str) -> str | None:
    """The production model when it lives on `provider` (this run's client can ask it), else None."""
    metadata = latest_materialization(instance, PRODUCTION_MODEL) or {}
    if metadata.get("provider") not in (None, provider):
        return None
    return production_model_name(instance)


def _materializations(instance: dg.DagsterInstance, key: dg.AssetKey) -> Iterator[tuple[str, dict[str, Any]]]:
    cursor = None
    while True:
        result = instance.fetch_materializations(key, limit=PAGE, cursor=cursor, ascending=True)
        for record in result.records:
            materialization = record.asset_materialization
            if materialization is not None:
                yield record.run_id, plain_metadata(materialization.metadata)
        if not result.has_more:
            return
        cursor = result.cursor


@dataclass(frozen=True)
class Spending:
    """USD recorded on this instance: in total, and in one run."""

    total_usd: float
    run_usd: float


def spending(instance: dg.DagsterInstance, run_id: str) -> Spending:
    """Every distinct job's training cost plus every evaluation's cost: all time, and this run's share."""
    total = run = 0.0
    counted_jobs: set[str] = set()
    for materialized_in, metadata in _materializations(instance, FINE_TUNED_MODEL):
        job_id, cost = metadata.get("job_id"), metadata.get("cost_usd")
        if not job_id or job_id in counted_jobs or not isinstance(cost, (int, float)):
            continue  # a reused job was paid for by the run that first recorded it
        counted_jobs.add(str(job_id))
        total += float(cost)
        run += float(cost) if materialized_in == run_id else 0.0
    for evaluation in _all_evaluations(instance):
        cost = evaluation.metadata.get("evaluation_cost_usd")
        if isinstance(cost, (int, float)):
            total += float(cost)
            run += float(cost) if evaluation.run_id == run_id else 0.0
    return Spending(round(total, 6), round(run, 6))
