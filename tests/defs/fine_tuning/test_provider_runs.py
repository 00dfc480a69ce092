"""Providers and lifecycles in real Dagster runs against the local backend, in-process.

The chain-level tests run the uploads and `fine_tuned_model` on toy files; the job-level ones run
the project's whole `fine_tuning_job` (see test_production_model) with the backend playing Azure.
Shutdown dates are relative to the day the test runs (backend and pipeline read the same clock).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from fine_tuning.core.settings import local_openai_dir
from fine_tuning.lib.local_openai_resource import LOCAL_AZURE_ACCOUNT, LocalOpenAIResource
from fine_tuning.lib.task.production_model_lifecycle import judge_lifecycle
from local_openai.transport import local_client, local_http_client

from tests.defs.fine_tuning.test_production_model import FAST, pinned, run_job
from tests.support.chain import CHAIN, Chain
from tests.support.dagster_runs import failure_text
from tests.support.dagster_runs import materialization_metadata as metadata_of
from tests.support.goodreads_task import GOODREADS
from tests.support.project import REPO


def in_days(days: int) -> str:
    return (datetime.now(UTC).date() + timedelta(days=days)).isoformat()


def chain_run(chain: Chain, **backend: Any) -> dg.ExecuteInProcessResult:
    resources = {**chain.resources(), "openai": LocalOpenAIResource(data_dir=str(chain.backend_dir), job_seconds=0.5, **backend)}
    return dg.materialize(
        CHAIN, instance=chain.instance, resources=resources,
        run_config={"ops": {"fine_tuned_model": {"config": {"poll_interval_seconds": 0.1}}}}, raise_on_error=False,
    )


def test_a_base_model_shutting_down_within_the_runway_stops_the_uploads(chain: Chain) -> None:
    result = chain_run(chain, model_shutdowns={"gpt-4o-mini-2024-07-18": in_days(10)})
    assert not result.success
    text = failure_text(result)
    assert f"gpt-4o-mini-2024-07-18 shuts down in 10 days on local ({in_days(10)}" in text
    assert "Nothing was uploaded" in text
    assert chain.uploaded_files() == [] and chain.jobs() == []


def test_a_refused_organization_fails_fine_tuned_model_at_once_with_no_job(chain: Chain) -> None:
    result = chain_run(chain, refuse_fine_tuning=True)
    assert not result.success
    failures = result.get_step_failure_events()
    assert [event.step_key for event in failures] == ["fine_tuned_model"]  # failed once, not retried
    text = failure_text(result)
    assert "does not have access to create fine-tuning jobs" in text and "retrying will not help" in text
    assert chain.jobs() == []


def _azure(**options: Any) -> LocalOpenAIResource:
    return LocalOpenAIResource(data_dir=str(local_openai_dir()), job_seconds=0.5, profile="azure", provider="azure",
                               **options)


def _current_model(home: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "fine_tuning.current_model"], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "DAGSTER_HOME": str(home)}, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.slow
def test_the_chain_under_azure_deploys_promotes_and_recreates_an_idle_deleted_deployment(
    dagster_home: Path, instance: dg.DagsterInstance
) -> None:
    first = run_job(instance, FAST, openai=_azure())
    assert first.success
    tuned, production = metadata_of(first, "fine_tuned_model"), metadata_of(first, "production_model")
    assert tuned["provider"] == "azure" and tuned["deployment_action"] == "created"
    assert production["promoted"] is True and production["provider"] == "azure"
    assert production["deployment"] == tuned["deployment"] and production["deployment"].startswith("goodreads-")
    assert (production["shutdown_date"], production["days_until_shutdown"]) == (None, None)
    [lifecycle] = [e for e in first.get_asset_check_evaluations() if e.check_name == "production_model_lifecycle"]
    assert lifecycle.passed
    assert _current_model(dagster_home) == production["deployment"]
    # Azure deletes the idle deployment; the next run that needs it makes it again.
    management = local_http_client(local_client(str(local_openai_dir()), profile="azure")._local_router)
    deleted = management.delete(LOCAL_AZURE_ACCOUNT.deployment_path(production["deployment"]),
                                params={"api-version": "2024-10-21"}, headers={"authorization": "Bearer t"})
    assert deleted.status_code == 200
    again = run_job(instance, FAST, openai=_azure())
    assert again.success
    assert metadata_of(again, "fine_tuned_model")["deployment_action"] == "recreated"
    client = local_client(str(local_openai_dir()), profile="azure")
    reply = client.chat.completions.create(model=production["deployment"], messages=[{"role": "user", "content": "x"}])
    assert reply.model == production["model_name"]


@pytest.mark.slow
def test_a_challenger_from_another_provider_is_never_promoted_but_a_pin_may_cross(
    dagster_home: Path, instance: dg.DagsterInstance
) -> None:
    local = run_job(instance, FAST)
    assert metadata_of(local, "production_model")["provider"] == "local"
    champion = metadata_of(local, "production_model")["model_name"]
    worse_or_better = run_job(instance, {**FAST, "fine_tuned_model": {"config": {"poll_interval_seconds": 0.2,
                                                                                   "force_retrain": True}}},
                              openai=_azure())
    decision = metadata_of(worse_or_better, "production_model")
    assert decision["promoted"] is False and decision["model_name"] == champion
    assert decision["provider"] == "local" and decision["challenger_provider"] == "azure"
    assert "never promoted" in decision["reason"]
    challenger = metadata_of(worse_or_better, "fine_tuned_model")["model_name"]
    crossed = run_job(instance, pinned(challenger), openai=_azure())
    moved = metadata_of(crossed, "production_model")
    assert (moved["model_name"], moved["provider"], moved["pinned"]) == (challenger, "azure", True)
    assert moved["deployment"]


def _lifecycle_check(instance: dg.DagsterInstance, model: str, **backend: Any) -> dg.AssetCheckResult:
    """production_model_lifecycle on a production decision naming `model` (local provider)."""
    instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key="production_model", metadata={"model_name": model, "provider": "local"}))
    resource = LocalOpenAIResource(data_dir=str(local_openai_dir()), job_seconds=0.0, **backend)
    with dg.build_resources({"openai": resource}) as started:
        context = dg.build_asset_check_context(instance=instance)
        return judge_lifecycle(context, started.openai, GOODREADS.keys)


@pytest.mark.parametrize(("days", "passed", "severity"), [
    (90, True, None), (45, False, dg.AssetCheckSeverity.WARN), (10, False, dg.AssetCheckSeverity.ERROR),
])
def test_production_model_lifecycle_warns_at_60_days_and_fails_at_14(
    days: int, passed: bool, severity: Any
) -> None:
    from tests.support.local_openai import train_toy_model

    tuned = train_toy_model(local_client(str(local_openai_dir()), job_seconds=0.0)).fine_tuned_model
    with dg.DagsterInstance.ephemeral() as instance:
        result = _lifecycle_check(instance, tuned, model_shutdowns={"gpt-4o-mini": in_days(days)})
    assert result.passed is passed
    metadata = {key: getattr(value, "value", value) for key, value in result.metadata.items()}
    assert (metadata["shutdown_date"], metadata["days_until_shutdown"]) == (in_days(days), days)
    if severity is not None:
        assert result.severity == severity and in_days(days) in (result.description or "")


def test_production_model_lifecycle_fails_when_the_model_no_longer_answers() -> None:
    from tests.support.local_openai import train_toy_model

    client = local_client(str(local_openai_dir()), job_seconds=0.0)
    tuned = train_toy_model(client).fine_tuned_model
    client.models.delete(tuned)
    with dg.DagsterInstance.ephemeral() as instance:
        result = _lifecycle_check(instance, tuned)
    assert result.passed is False and result.severity == dg.AssetCheckSeverity.ERROR
    assert "no longer answers" in (result.description or "") and "re-tune" in (result.description or "")
