"""`production_model_lifecycle`: will the production model keep answering? (asset check on production_model)

Reads the task's latest production decision, asks the provider for the model (its
`shutdown_date`, and whether it still answers; on Azure, whether its deployment still exists)
and warns at 60 days or fewer to the shutdown, fails with ERROR severity at 14 or fewer, or when
the model no longer answers, saying what to do. Dates come from `core.lifecycle` with today's UTC date.
(No `from __future__ import annotations`: Dagster inspects the real `context` annotation.)
"""

from typing import TYPE_CHECKING, Any

import dagster as dg
from dagster_openai import OpenAIResource

from fine_tuning.core.azure_deployments import AzureDeploymentError
from fine_tuning.core.lifecycle import model_dates, parse_shutdown_date, utc_today
from fine_tuning.lib.facts import latest_materialization
from fine_tuning.lib.lifecycle import lifecycle_check_result, lookup_dates, needs_deployment, provider_name
from fine_tuning.lib.task.keys import TaskKeys

if TYPE_CHECKING:
    from fine_tuning.lib.task.component import FineTuningTask


def build_production_model_lifecycle_check(task: "FineTuningTask") -> dg.AssetChecksDefinition:
    """The task's `production_model_lifecycle` check."""
    keys = task.keys

    @dg.asset_check(
        asset=keys.production_model,
        name="production_model_lifecycle",
        description=(
            "The production model's shutdown: WARN at <= 60 days, ERROR at <= 14 days or when it no longer "
            "answers (on Azure: its deployment is gone), saying what to do: re-tune on the successor or on "
            "another provider."
        ),
        required_resource_keys={"openai"},
    )
    def production_model_lifecycle(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        """Ask the provider about the production model and judge its runway."""
        return judge_lifecycle(context, context.resources.openai, keys)

    return production_model_lifecycle


def judge_lifecycle(context: dg.AssetCheckExecutionContext, openai: OpenAIResource, keys: TaskKeys) -> dg.AssetCheckResult:
    """The check's result for the task's latest production decision."""
    found = latest_materialization(context.instance, keys.production_model)
    record = found.metadata if found else {}
    model = record.get("model_name")
    today = utc_today()
    if not model:
        return dg.AssetCheckResult(passed=True, description="No production model yet: nothing can shut down.",
                                   metadata={"model_name": None})
    provider = provider_name(openai)
    recorded_provider = str(record.get("provider") or provider)
    if recorded_provider != provider:  # this run's client cannot see it: judge the recorded date
        dates = model_dates(str(model), recorded_provider, parse_shutdown_date(record.get("shutdown_date")))
        return lifecycle_check_result(dates, today, answers=True, extra={"checked_with": "recorded metadata"})
    with openai.get_client(context) as client:
        dates, answers, reason = lookup_dates(client, str(model), provider)
    extra: dict[str, Any] = {}
    deployment = record.get("deployment")
    if answers and deployment and needs_deployment(provider):
        extra["deployment"] = deployment
        try:
            exists = openai.deployments_client().get(str(deployment)) is not None  # type: ignore[attr-defined]
        except AzureDeploymentError as error:
            exists, reason = False, str(error)
        if not exists:
            answers = False
            reason = reason or (f"deployment {deployment} no longer exists (Azure deletes a customized model's "
                                "deployment after 15 idle days); the next run of the job recreates it")
    return lifecycle_check_result(dates, today, answers, reason, extra)
