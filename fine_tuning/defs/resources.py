"""Resources every task shares: DuckDB under the workdir and the chosen provider (local, OpenAI, Azure).

What each task tunes how (its `TuningSettings`) is a resource its FineTuningTask component adds.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg
from dagster_duckdb import DuckDBResource
from dagster_openai import OpenAIResource

from fine_tuning.core.providers import (
    AZURE,
    AZURE_API_KEY_ENV,
    AZURE_ENDPOINT_ENV,
    LOCAL,
    OPENAI,
    ProviderError,
    chosen_provider,
)
from fine_tuning.core.settings import duckdb_database, local_openai_dir
from fine_tuning.lib.provider_resources import AzureOpenAIResource, ProviderOpenAIResource, UnchosenProviderResource

LOCAL_JOB_SECONDS_ENV = "LOCAL_OPENAI_JOB_SECONDS"
# DuckDB's own default is 80% of the machine's memory, and its temp tables (the cleaned text of
# every book while enriched_graphic_novels is built) stay in memory up to it: 2.3 GB at 894k
# books. Capped, DuckDB spills to `<database>.tmp` instead and the run's memory stays flat in
# the data size (measured: docs/performance.md). A run can raise it: resources.duckdb.config.
DUCKDB_CONNECTION_CONFIG = {"memory_limit": "1GB"}


def openai_resource() -> OpenAIResource:
    """The `openai` resource of the provider FINE_TUNING_PROVIDER chooses (core.providers).

    `local`: the in-process local backend, or the server at OPENAI_BASE_URL; `openai`: OpenAI
    (or OPENAI_BASE_URL); `azure`: Azure OpenAI's v1 API. No usable choice gives a resource that
    fails at start with the reason. Keys are EnvVars, resolved at run time and never stored in
    run config, the UI or the event log.
    """
    try:
        provider = chosen_provider()
    except ProviderError as error:
        return UnchosenProviderResource(problem=str(error))
    base_url = dg.EnvVar("OPENAI_BASE_URL") if os.environ.get("OPENAI_BASE_URL") else None
    if provider == LOCAL and base_url is None:
        from fine_tuning.lib.local_openai_resource import LocalOpenAIResource

        return LocalOpenAIResource(
            data_dir=str(local_openai_dir()),
            job_seconds=float(os.environ.get(LOCAL_JOB_SECONDS_ENV, "3")),
        )
    if provider == LOCAL:
        # A local server over HTTP takes any key unless started with --api-key.
        api_key = dg.EnvVar("OPENAI_API_KEY") if os.environ.get("OPENAI_API_KEY") else "local"
        return ProviderOpenAIResource(provider=LOCAL, api_key=api_key, base_url=base_url)
    if provider == AZURE:
        return azure_resource()
    return ProviderOpenAIResource(provider=OPENAI, api_key=dg.EnvVar("OPENAI_API_KEY"), base_url=base_url)


def _optional_env(name: str) -> dg.EnvVar | None:
    return dg.EnvVar(name) if os.environ.get(name) else None


def azure_resource() -> AzureOpenAIResource:
    """Azure OpenAI from AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_API_KEY, and the management API's settings."""
    optional = {
        "subscription_id": _optional_env("AZURE_SUBSCRIPTION_ID"),
        "resource_group": _optional_env("AZURE_RESOURCE_GROUP"),
        "account": _optional_env("AZURE_OPENAI_ACCOUNT"),
        "management_endpoint": _optional_env("AZURE_MANAGEMENT_ENDPOINT"),
        "management_token": _optional_env("AZURE_MANAGEMENT_TOKEN"),
    }
    return AzureOpenAIResource(
        endpoint=dg.EnvVar(AZURE_ENDPOINT_ENV), api_key=dg.EnvVar(AZURE_API_KEY_ENV),
        **{name: value for name, value in optional.items() if value is not None},
    )


def build_resources() -> dict[str, Any]:
    """Every resource the assets need, resolved from the environment at call time."""
    return {
        "duckdb": DuckDBResource(database=duckdb_database(), connection_config=DUCKDB_CONNECTION_CONFIG),
        "openai": openai_resource(),
    }


@dg.definitions
def resources() -> dg.Definitions:
    """The project's resources, handed to every definition in the defs folder."""
    return dg.Definitions(resources=build_resources())
