"""Dagster side of providers and model lifecycles: the base-model gate, lifecycle metadata, the
production check's verdict, clear refusals and the Azure deployment step.

The rules are in `core.lifecycle` and `core.azure_deployments`; this module turns them into
`dg.Failure`s (never retried), metadata and check results. `today` is always passed in.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import dagster as dg
import openai as openai_sdk

from fine_tuning.core.azure_deployments import AzureDeploymentError, DeploymentOutcome, deployment_name
from fine_tuning.core.lifecycle import (
    ModelDates,
    base_model_refusal,
    model_dates,
    parse_shutdown_date,
    production_verdict,
)
from fine_tuning.core.openai_errors import describe_api_error
from fine_tuning.core.providers import AZURE

# Errors by which a provider says "not for you" (organization without access, model not
# fine-tunable there): retrying cannot help, so the step fails at once with the provider's words.
REFUSAL_CODES = frozenset({"model_not_available", "model_not_found", "fine_tuning_not_allowed"})


def provider_name(resource: Any) -> str:
    """The provider a resource reaches (`local`, `openai`, `azure`); plain OpenAIResources are `openai`."""
    return str(getattr(resource, "provider", "openai"))


def lookup_dates(client: openai_sdk.OpenAI, model: str, provider: str) -> tuple[ModelDates, bool, str]:
    """(dates, whether the provider still serves the model, why not): models.retrieve's date wins over the catalog's."""
    try:
        found = client.models.retrieve(model)
    except openai_sdk.NotFoundError as error:
        return model_dates(model, provider), False, describe_api_error(error, f"retrieving {model}", client)
    except openai_sdk.APIError as error:
        # Any other refusal (a wrong key, an outage) in words with the key redacted: a provider may echo it.
        raise dg.Failure(description=describe_api_error(error, f"retrieving {model}", client)) from None
    reported = parse_shutdown_date(getattr(found, "shutdown_date", None))
    return model_dates(model, provider, reported), True, ""


def lifecycle_metadata(dates: ModelDates, today: date) -> dict[str, Any]:
    """`shutdown_date`, `days_until_shutdown`, `provider` as fine_tuned_model and production_model record them."""
    return {
        "shutdown_date": dates.shutdown.isoformat() if dates.shutdown else None,
        "days_until_shutdown": dates.days_until_shutdown(today),
        "provider": dates.provider,
    }


def require_runway(client: openai_sdk.OpenAI, provider: str, base_model: str, min_runway_days: int, today: date) -> ModelDates:
    """Refuse (before anything is uploaded) a base model whose training is retired or that shuts down too soon."""
    dates, answers, why = lookup_dates(client, base_model, provider)
    if not answers:
        raise dg.Failure(
            description=f"{base_model} is not available on {provider}: {why.rstrip('.')}. Nothing was uploaded; choose a model "
            "this provider serves (resources.tuning.config.base_model).",
            allow_retries=False,
        )
    refusal = base_model_refusal(dates, today, min_runway_days)
    if refusal:
        raise dg.Failure(
            description=f"{refusal} Nothing was uploaded or trained.",
            metadata={**lifecycle_metadata(dates, today), "base_model": base_model, "min_runway_days": min_runway_days,
                      "successor": dates.successor},
            allow_retries=False,
        )
    return dates


def is_refusal(error: openai_sdk.APIError) -> bool:
    """Whether the provider refused for good: 403 (organization without access) or a model it will not tune."""
    if isinstance(error, openai_sdk.PermissionDeniedError):
        return True
    return isinstance(error, openai_sdk.APIStatusError) and error.status_code in (400, 404) and (
        getattr(error, "code", None) in REFUSAL_CODES)


@contextmanager
def provider_refusals(action: str, client: openai_sdk.OpenAI, provider: str) -> Iterator[None]:
    """A refusal inside the block fails the step at once, in the provider's words, never retried."""
    try:
        yield
    except openai_sdk.APIError as error:
        if not is_refusal(error):
            raise
        raise dg.Failure(
            description=f"{provider} refused {action}: {describe_api_error(error, action, client).rstrip('.')}. No job was "
            "created and retrying will not help: fine-tune on another provider (FINE_TUNING_PROVIDER) or "
            "another base model.",
            allow_retries=False,
        ) from None


def lifecycle_check_result(dates: ModelDates, today: date, answers: bool, reason: str = "",
                           extra: dict[str, Any] | None = None) -> dg.AssetCheckResult:
    """The production_model_lifecycle result: WARN at <= 60 days, ERROR at <= 14 or when it no longer answers."""
    verdict = production_verdict(dates, today, answers, reason)
    severity = dg.AssetCheckSeverity.ERROR if verdict.severity == "error" else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(
        passed=verdict.severity == "ok",
        severity=severity,
        description=verdict.message,
        metadata={**lifecycle_metadata(dates, today), "model_name": dates.model, "answers": answers,
                  "successor": dates.successor, **(extra or {})},
    )


def deploy_on_azure(resource: Any, model: str, existed_before: bool,
                    log: Any, timeout_seconds: float = 3600.0) -> DeploymentOutcome:
    """Create or reuse the model's deployment and wait until Azure reports it succeeded (dg.Failure otherwise)."""
    name = deployment_name(model)
    try:
        outcome = resource.deployments_client().ensure(name, model, existed_before=existed_before,
                                                       timeout_seconds=timeout_seconds)
    except AzureDeploymentError as error:
        raise dg.Failure(description=f"Deploying {model} on Azure failed: {error}", allow_retries=False) from None
    log.info(f"Azure deployment {outcome.name} of {model}: {outcome.action}, {outcome.state}")
    return outcome


def needs_deployment(provider: str) -> bool:
    """Whether fine-tuned models answer only through deployments on this provider."""
    return provider == AZURE
