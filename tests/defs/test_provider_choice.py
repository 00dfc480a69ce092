"""No provider chosen and no key: the run fails at start, naming the choices, and touches nothing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from fine_tuning.defs.resources import build_resources
from fine_tuning.lib.local_openai_resource import LocalOpenAIResource
from fine_tuning.lib.provider_resources import AzureOpenAIResource, ProviderOpenAIResource, UnchosenProviderResource

from tests.support.project import REPO, VENV_BIN


def _definitions() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=REPO / "fine_tuning" / "definitions.py")


def test_each_provider_gets_its_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(build_resources()["openai"], LocalOpenAIResource)  # the suite says local
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    over_http = build_resources()["openai"]
    assert type(over_http) is ProviderOpenAIResource and over_http.provider == "local"
    monkeypatch.setenv("FINE_TUNING_PROVIDER", "azure")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://r.openai.azure.com")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-secret")
    azure = build_resources()["openai"]
    assert isinstance(azure, AzureOpenAIResource) and azure.provider == "azure"
    monkeypatch.delenv("FINE_TUNING_PROVIDER")
    assert isinstance(build_resources()["openai"], UnchosenProviderResource)


def test_no_provider_and_no_key_fails_the_job_before_anything_is_written(
    monkeypatch: pytest.MonkeyPatch, workdir: Path
) -> None:
    monkeypatch.delenv("FINE_TUNING_PROVIDER")
    job = _definitions().resolve_job_def("fine_tuning_job")
    result = job.execute_in_process(raise_on_error=False, instance=dg.DagsterInstance.ephemeral())
    assert not result.success
    # The default in-process executor starts every resource before the first step: the run fails there.
    text = "\n".join(
        event.event_specific_data.error.to_string() for event in result.all_events
        if getattr(event.event_specific_data, "error", None) is not None
    )
    assert any(event.event_type_value == "RESOURCE_INIT_FAILURE" for event in result.all_events)
    assert not result.get_step_success_events()
    assert "No fine-tuning provider chosen and OPENAI_API_KEY is not set" in text
    assert "local" in text and "openai" in text and "azure" in text
    assert not result.get_asset_materialization_events(), "nothing may be materialized"
    assert not (workdir / "goodreads.duckdb").exists() and not (workdir / "local_openai").exists()


@pytest.mark.slow
def test_no_provider_and_no_key_fails_dagster_job_execute_at_start(tmp_path: Path, dagster_home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("FINE_TUNING_PROVIDER", "OPENAI_API_KEY")}
    run = subprocess.run(
        [str(VENV_BIN / "dagster"), "job", "execute", "-m", "fine_tuning.definitions", "-j", "fine_tuning_job"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode != 0
    output = run.stdout + run.stderr
    assert "No fine-tuning provider chosen and OPENAI_API_KEY is not set" in output
    workdir = Path(env["FINE_TUNING_WORKDIR"])
    assert not (workdir / "goodreads.duckdb").exists() and not (workdir / "local_openai").exists()
