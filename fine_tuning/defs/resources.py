"""Resources: DuckDB under the workdir, the chosen provider (local, OpenAI, Azure), and what is tuned how."""

from __future__ import annotations

import os
from typing import Any, ClassVar

import dagster as dg
from dagster_duckdb import DuckDBResource
from dagster_openai import OpenAIResource
from pydantic import Field

from fine_tuning.core.providers import (
    AZURE,
    AZURE_API_KEY_ENV,
    AZURE_ENDPOINT_ENV,
    LOCAL,
    OPENAI,
    ProviderError,
    chosen_provider,
)
from fine_tuning.core.lifecycle import DEFAULT_MIN_RUNWAY_DAYS
from fine_tuning.core.settings import DEFAULT_BASE_MODEL, duckdb_database, local_openai_dir
from fine_tuning.lib.provider_resources import AzureOpenAIResource, ProviderOpenAIResource, UnchosenProviderResource
from fine_tuning.lib.run_settings import CheckedResource

LOCAL_JOB_SECONDS_ENV = "LOCAL_OPENAI_JOB_SECONDS"
# DuckDB's own default is 80% of the machine's memory, and its temp tables (the cleaned text of
# every book while enriched_graphic_novels is built) stay in memory up to it: 2.3 GB at 894k
# books. Capped, DuckDB spills to `<database>.tmp` instead and the run's memory stays flat in
# the data size (measured: docs/performance.md). A run can raise it: resources.duckdb.config.
DUCKDB_CONNECTION_CONFIG = {"memory_limit": "1GB"}


class TuningSettings(CheckedResource):
    """Base model, hyperparameters and budget.

    A resource rather than per-asset config because the cost check on the training files and
    the `fine_tuned_model` asset must price and train the very same model and epochs. The bounds
    are OpenAI's documented ones (n_epochs 1-50, batch_size 1-256, learning_rate_multiplier > 0,
    suffix up to 64 characters), checked before anything is uploaded.
    """

    run_config_path: ClassVar[str] = "resources.tuning.config"

    base_model: str = Field(
        default=DEFAULT_BASE_MODEL, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="Model to fine-tune (a dated snapshot, an alias, or an ft: model to continue).",
    )
    suffix: str = Field(
        default="goodreads", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
        description="Suffix of the fine-tuned model name: 1-64 letters, digits, '-' or '_' (':' would split the name).",
    )
    seed: int = Field(default=42, ge=0, le=2_147_483_647, description="Provider-side training seed (0-2147483647).")
    n_epochs: int | None = Field(default=None, ge=1, le=50, description="Epochs (1-50); null means 'auto'.")
    batch_size: int | None = Field(default=None, ge=1, le=256, description="Batch size (1-256); null means 'auto'.")
    learning_rate_multiplier: float | None = Field(
        default=None, gt=0, le=10,
        description="Learning-rate multiplier (> 0; above 10 training diverges); null means 'auto'.",
    )
    max_cost_usd: float = Field(
        default=5.0, gt=0,
        description="Training files whose estimated training cost exceeds this (USD, > 0) are blocked.",
    )
    min_runway_days: int = Field(
        default=DEFAULT_MIN_RUNWAY_DAYS, ge=0, le=3650,
        description="Refuse (before uploading) a base model whose training is retired or that shuts down within "
        "this many days: a model fine-tuned from it would stop answering with it.",
    )

    def hyperparameters(self) -> dict[str, Any]:
        """Supervised hyperparameters as the API takes them ("auto" where unset)."""
        return {
            "n_epochs": "auto" if self.n_epochs is None else self.n_epochs,
            "batch_size": "auto" if self.batch_size is None else self.batch_size,
            "learning_rate_multiplier": (
                "auto" if self.learning_rate_multiplier is None else self.learning_rate_multiplier
            ),
        }

    def method(self) -> dict[str, Any]:
        """The `method` argument of `fine_tuning.jobs.create` (the `hyperparameters` one is deprecated)."""
        return {"type": "supervised", "supervised": {"hyperparameters": self.hyperparameters()}}



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
        "tuning": TuningSettings(),
    }


@dg.definitions
def resources() -> dg.Definitions:
    """The project's resources, handed to every definition in the defs folder."""
    return dg.Definitions(resources=build_resources())
