"""What the Dagster instance remembers about a task's evaluations, production model and spending.

* The production model is the `model_name` of `production_model`'s latest materialization (every
  materialization records the model in production after that run's decision).
* Past `fine_tuned_model_accuracy` evaluations hold every model's score on their prompts, so a
  later evaluation reuses them instead of paying again, and `production_model` reads the
  evaluation of its run from them.
* The running total: every distinct fine-tuning job's `cost_usd` plus every evaluation's
  `spent_usd` (zero when it reused its scores; `evaluation_cost_usd` before), as recorded on this instance.

Everything is read through `lib.facts`; the keys are the task's (`TaskKeys`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from fine_tuning.core.scoring import ModelScore
from fine_tuning.lib.facts import CheckResult, all_check_results, check_results, latest_materialization, materializations
from fine_tuning.lib.task.evaluation_metadata import DETAILS_KEY, FAILED_REQUESTS_KEY, SPENT_USD_KEY
from fine_tuning.lib.task.keys import TaskKeys

LEGACY_COST_KEY = "evaluation_cost_usd"  # the check's cost before it was named spent_usd

RECENT_EVALUATIONS = 20  # how far back known scores are looked for

# A past accuracy check: its run, verdict and plain metadata values.
PastEvaluation = CheckResult


def past_evaluations(instance: dg.DagsterInstance, keys: TaskKeys, limit: int = RECENT_EVALUATIONS) -> list[PastEvaluation]:
    """The task's latest completed accuracy checks, newest first."""
    return check_results(instance, keys.accuracy_check, limit)


def failed_requests(metadata: dict[str, Any]) -> int | None:
    """How many requests of an evaluation failed: in its details (at the top before they were grouped)."""
    details = metadata.get(DETAILS_KEY)
    found = details.get(FAILED_REQUESTS_KEY) if isinstance(details, dict) else metadata.get(FAILED_REQUESTS_KEY)
    return found if isinstance(found, int) else None


def known_scores(evaluations: Sequence[PastEvaluation], key: str, prompts_sha256: str) -> dict[str, ModelScore]:
    """Each model's newest score on exactly these prompts (`key`: the test or the validation scores).

    Evaluations are read newest first up to the first one in which a request failed: failures
    hint that something changed at the provider, so nothing from then or before is trusted.
    """
    known: dict[str, ModelScore] = {}
    for evaluation in evaluations:
        if failed_requests(evaluation.metadata) != 0:
            break
        stored = evaluation.metadata.get(key)
        if not isinstance(stored, dict) or stored.get("prompts_sha256") != prompts_sha256:
            continue
        for model, data in (stored.get("scores") or {}).items():
            if model not in known and isinstance(data, dict) and data.get("failed_requests") == 0:
                known[model] = ModelScore.from_json(data)
    return known


def evaluation_of(instance: dg.DagsterInstance, keys: TaskKeys, run_id: str, trained_model: str) -> PastEvaluation | None:
    """The accuracy check of this run, else the newest one of `trained_model`; None when there is none."""
    evaluations = past_evaluations(instance, keys)
    for evaluation in evaluations:
        if evaluation.run_id == run_id:
            return evaluation
    return next((e for e in evaluations if e.metadata.get("trained_model") == trained_model), None)


def production_model_name(instance: dg.DagsterInstance, keys: TaskKeys) -> str | None:
    """The model in production: the latest `production_model` decision's `model_name`, or None."""
    found = latest_materialization(instance, keys.production_model)
    name = found.metadata.get("model_name") if found else None
    return str(name) if name else None


def same_provider_champion(instance: dg.DagsterInstance, keys: TaskKeys, provider: str) -> str | None:
    """The model in production when it lives on `provider` (this run's client can ask it), else None."""
    found = latest_materialization(instance, keys.production_model)
    if found is None or found.metadata.get("provider") not in (None, provider):
        return None
    return production_model_name(instance, keys)


@dataclass(frozen=True)
class Spending:
    """USD recorded on this instance: in total, and in one run."""

    total_usd: float
    run_usd: float


def spending(instance: dg.DagsterInstance, keys: TaskKeys, run_id: str) -> Spending:
    """Every distinct job's training cost plus every evaluation's cost of the task: all time, and this run's share."""
    total = run = 0.0
    counted_jobs: set[str] = set()
    for materialized in materializations(instance, keys.fine_tuned_model):
        job_id, cost = materialized.metadata.get("job_id"), materialized.metadata.get("cost_usd")
        if not job_id or job_id in counted_jobs or not isinstance(cost, (int, float)):
            continue  # a reused job was paid for by the run that first recorded it
        counted_jobs.add(str(job_id))
        total += float(cost)
        run += float(cost) if materialized.run_id == run_id else 0.0
    for evaluation in all_check_results(instance, keys.accuracy_check):
        cost = evaluation.metadata.get(SPENT_USD_KEY, evaluation.metadata.get(LEGACY_COST_KEY))
        if isinstance(cost, (int, float)):
            total += float(cost)
            run += float(cost) if evaluation.run_id == run_id else 0.0
    return Spending(round(total, 6), round(run, 6))
