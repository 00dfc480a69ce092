"""Resource wiring: DuckDB under the workdir, and OpenAI or the shipped local backend."""

from __future__ import annotations

import os
import warnings
from typing import Any

import dagster as dg
from dagster_duckdb import DuckDBResource
from dagster_openai import OpenAIResource

from fine_tuning.settings import duckdb_path, local_openai_dir, use_local_backend
from fine_tuning.tuning import TuningSettings

LOCAL_JOB_SECONDS_ENV = "LOCAL_OPENAI_JOB_SECONDS"


def openai_resource() -> OpenAIResource:
    """OpenAI (or OPENAI_BASE_URL) when OPENAI_API_KEY is set, else the in-process local backend.

    The key is passed as an EnvVar so Dagster resolves it at run time and never stores it in
    run config, the UI or the event log.
    """
    if use_local_backend():
        from fine_tuning.local_openai.resource import LocalOpenAIResource

        if os.environ.get("OPENAI_BASE_URL"):
            warnings.warn(
                "OPENAI_BASE_URL is set but OPENAI_API_KEY is not: using the in-process local backend. "
                "Set OPENAI_API_KEY (any value the server accepts) to use that server.",
                stacklevel=2,
            )

        return LocalOpenAIResource(
            data_dir=str(local_openai_dir()),
            job_seconds=float(os.environ.get(LOCAL_JOB_SECONDS_ENV, "3")),
        )
    base_url = dg.EnvVar("OPENAI_BASE_URL") if os.environ.get("OPENAI_BASE_URL") else None
    return OpenAIResource(api_key=dg.EnvVar("OPENAI_API_KEY"), base_url=base_url)


def build_resources() -> dict[str, Any]:
    """Every resource the assets need, resolved from the environment at call time."""
    return {
        "duckdb": DuckDBResource(database=str(duckdb_path())),
        "openai": openai_resource(),
        "tuning": TuningSettings(),
    }
