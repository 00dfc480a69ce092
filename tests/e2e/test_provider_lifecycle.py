"""The issue's "done when" runs, end to end through `dagster job execute` against the local backend
served by `python -m local_openai serve` (its profile, shutdown and refusal flags).

Dates are relative to the day the test runs (the backend and the pipeline both read the real
clock): a model "shutting down in 10 days" is announced for today + 10, so nothing here expires
with the calendar.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import openai
import pytest

from tests.support.local_openai import serve_subprocess
from tests.support.project import REPO, VENV_BIN

pytestmark = pytest.mark.slow  # every test runs the whole job in child processes

RUN_CONFIG = "ops:\n  fine_tuned_model:\n    config:\n      poll_interval_seconds: 0.2\n"
KEY = "sk-lifecycle-test-4d1e"


def in_days(days: int) -> str:
    """Today + `days` (UTC), as the backend's --model-shutdown takes it."""
    return (datetime.now(UTC).date() + timedelta(days=days)).isoformat()


def execute_job(home: Path, tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`dagster job execute -j fine_tuning_job`, as a user types it, with `env` on top of the test's."""
    config = tmp_path / "run_config.yaml"
    config.write_text(RUN_CONFIG)
    full_env = {**os.environ, "DAGSTER_HOME": str(home), **env}
    return subprocess.run(
        [str(VENV_BIN / "dagster"), "job", "execute", "-m", "fine_tuning.definitions", "-j", "fine_tuning_job",
         "-c", str(config)],
        cwd=REPO, env=full_env, capture_output=True, text=True, timeout=480,
    )


def local_over_http(base_url: str) -> dict[str, str]:
    """FINE_TUNING_PROVIDER=local on the served backend."""
    return {"FINE_TUNING_PROVIDER": "local", "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": KEY}


def azure_on(base_url: str) -> dict[str, str]:
    """FINE_TUNING_PROVIDER=azure with the served backend as the resource and its management API."""
    root = base_url.removesuffix("/v1")
    return {"FINE_TUNING_PROVIDER": "azure", "AZURE_OPENAI_ENDPOINT": root, "AZURE_OPENAI_API_KEY": KEY,
            "AZURE_MANAGEMENT_ENDPOINT": root, "AZURE_MANAGEMENT_TOKEN": "entra-token-stand-in",
            "AZURE_SUBSCRIPTION_ID": "sub-1", "AZURE_RESOURCE_GROUP": "rg-1", "AZURE_OPENAI_ACCOUNT": "acct-1"}


def backend_counts(base_url: str, **client: Any) -> tuple[int, int]:
    """(fine-tuning jobs, fine-tune files) on the served backend."""
    api = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, **client)
    return len(list(api.fine_tuning.jobs.list())), len(list(api.files.list(purpose="fine-tune")))


def latest(home: Path, key: str) -> dict[str, Any]:
    """The latest materialization metadata of `key` on the instance at `home`."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(key))
        assert event is not None and event.asset_materialization is not None, f"{key} was never materialized"
        return {name: value.value for name, value in event.asset_materialization.metadata.items()}


def check_evaluation(home: Path, check: str) -> Any:
    """The latest evaluation of an asset check on `production_model`."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("production_model"), check), limit=1)
        assert records, f"{check} never ran"
        return records[0].event.dagster_event.event_specific_data  # type: ignore[union-attr]


def serving(tmp_path: Path, *flags: str) -> Any:
    """The backend over HTTP on the test's store with `flags` (a context manager yielding the server)."""
    return serve_subprocess("--data-dir", str(tmp_path / "served"), "--api-key", KEY, "--job-seconds", "1", *flags)


@pytest.fixture()
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The backend over HTTP with the flags the test passes (indirect parametrization); yields its /v1 URL."""
    with serving(tmp_path, *request.param) as server:
        yield server.base_url


def materialize_production_model(home: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`dagster asset materialize --select production_model` (the asset and its checks)."""
    return subprocess.run(
        [str(VENV_BIN / "dagster"), "asset", "materialize", "-m", "fine_tuning.definitions", "--select", "production_model"],
        cwd=REPO, env={**os.environ, "DAGSTER_HOME": str(home), **env}, capture_output=True, text=True, timeout=300,
    )


@pytest.mark.parametrize("served", [("--model-shutdown", f"gpt-4o-mini={in_days(10)}")], indirect=True)
def test_a_base_model_shutting_down_in_10_days_blocks_the_run_before_any_upload(
    served: str, dagster_home: Path, tmp_path: Path
) -> None:
    run = execute_job(dagster_home, tmp_path, local_over_http(served))
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert f"gpt-4o-mini-2024-07-18 shuts down in 10 days on local ({in_days(10)}" in output
    assert "min_runway_days=30" in output and "Nothing was uploaded" in output
    assert backend_counts(served) == (0, 0)


def test_a_production_model_shutting_down_in_10_days_fails_production_model_lifecycle(
    dagster_home: Path, tmp_path: Path
) -> None:
    with serving(tmp_path) as server:  # no date announced yet: the model is trained and promoted
        run = execute_job(dagster_home, tmp_path, local_over_http(server.base_url))
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert check_evaluation(dagster_home, "production_model_lifecycle").passed is True
    # The provider announces the shutdown of the base model, and so of the production model.
    with serving(tmp_path, "--model-shutdown", f"gpt-4o-mini={in_days(10)}") as server:
        decided = materialize_production_model(dagster_home, local_over_http(server.base_url))
    assert decided.returncode == 0, decided.stdout[-4000:] + decided.stderr[-4000:]
    production = latest(dagster_home, "production_model")
    assert production["provider"] == "local"
    assert (production["shutdown_date"], production["days_until_shutdown"]) == (in_days(10), 10)
    evaluation = check_evaluation(dagster_home, "production_model_lifecycle")
    assert evaluation.passed is False and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert in_days(10) in evaluation.description and "re-tune" in evaluation.description


@pytest.mark.parametrize("served", [("--refuse-fine-tuning",)], indirect=True)
def test_a_refused_organization_fails_the_run_at_once_with_the_providers_message_and_no_job(
    served: str, dagster_home: Path, tmp_path: Path
) -> None:
    run = execute_job(dagster_home, tmp_path, local_over_http(served))
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "does not have access to create fine-tuning jobs" in output
    assert "retrying will not help" in output
    assert backend_counts(served)[0] == 0


@pytest.mark.parametrize("served", [("--profile", "azure")], indirect=True)
def test_the_whole_chain_under_the_azure_profile_ends_in_a_promoted_deployed_production_model(
    served: str, dagster_home: Path, tmp_path: Path
) -> None:
    run = execute_job(dagster_home, tmp_path, azure_on(served))
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    production = latest(dagster_home, "production_model")
    assert production["promoted"] is True and production["provider"] == "azure"
    deployment = production["deployment"]
    assert deployment and deployment.startswith("goodreads-")
    assert KEY not in run.stdout + run.stderr
    # What an application passes as `model` answers, through the deployment only.
    app = openai.OpenAI(base_url=served.removesuffix("/v1") + "/openai/v1", api_key=KEY, max_retries=0)
    reply = app.chat.completions.create(model=deployment, messages=[{"role": "user", "content": "Title: X"}])
    assert reply.model == production["model_name"]
    current = subprocess.run([str(VENV_BIN / "python"), "-m", "fine_tuning.current_model"], cwd=REPO,
                             env={**os.environ, "DAGSTER_HOME": str(dagster_home)}, capture_output=True, text=True)
    assert current.returncode == 0 and current.stdout.strip() == deployment
