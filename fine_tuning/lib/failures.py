"""Failures of the Dagster steps: OpenAI client errors and provider-job errors as `dg.Failure`."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import openai as openai_sdk

from fine_tuning.core.openai_errors import describe_api_error
from fine_tuning.core.provider_jobs import ProviderJobError


@contextmanager
def api_errors(action: str, client: openai_sdk.OpenAI | None = None) -> Iterator[None]:
    """Turn `openai.APIError`s into a clear `dg.Failure` (interrupts pass through untouched)."""
    try:
        yield
    except openai_sdk.APIError as error:
        raise dg.Failure(description=describe_api_error(error, action, client)) from None


def job_failure(error: ProviderJobError) -> dg.Failure:
    """The `dg.Failure` that reports a provider-job error, with its facts as metadata."""
    return dg.Failure(description=error.description, metadata=error.metadata)


@contextmanager
def provider_job_failures() -> Iterator[None]:
    """Turn `ProviderJobError`s raised inside the block into `dg.Failure`s."""
    try:
        yield
    except ProviderJobError as error:
        raise job_failure(error) from None
