"""Resources every task shares: DuckDB under the workdir and OpenAI or the shipped local backend.

What each task tunes how (its `TuningSettings`) is a resource its FineTuningTask component adds.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import dagster as dg
from dagster_duckdb import DuckDBResource
from dagster_openai import OpenAIResource

from fine_tuning.core.settings import duckdb_database, local_openai_dir, use_local_backend

LOCAL_JOB_SECONDS_ENV = "LOCAL_OPENAI_JOB_SECONDS"
# DuckDB's own default is 80% of the machine's memory, and its temp tables (the cleaned text of
# every book while enriched_graphic_novels is built) stay in memory up to it: 2.3 GB at 894k
# books. Capped, DuckDB spills to `<database>.tmp` instead and the run's memory stays flat in
# the data size (measured: docs/performance.md). A run can raise it: resources.duckdb.config.
DUCKDB_CONNECTION_CONFIG = {"memory_limit": "1GB"}


def openai_resource() -> OpenAIResource:
    """OpenAI (or OPENAI_BASE_URL) when OPENAI_API_KEY is set, else the in-process local backend.

    The key is passed as an EnvVar so Dagster resolves it at run time and never stores it in
    run config, the UI or the event log.
    """
    if use_local_backend():
        from fine_tuning.lib.local_openai_resource import LocalOpenAIResource

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
        "duckdb": DuckDBResource(database=duckdb_database(), connection_config=DUCKDB_CONNECTION_CONFIG),
        "openai": openai_resource(),
    }


@dg.definitions
def resources() -> dg.Definitions:
    """The project's resources, handed to every definition in the defs folder."""
    return dg.Definitions(resources=build_resources())
