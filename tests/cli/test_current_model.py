"""`python -m fine_tuning.current_model`: what applications read, from a real instance in DAGSTER_HOME."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from tests.support.project import REPO, VENV_BIN

MODEL = "ft:gpt-4o-mini-2024-07-18:org:goodreads:abc123"


def current_model(home: Path | None, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "DAGSTER_HOME"}
    if home is not None:
        env["DAGSTER_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "fine_tuning.current_model", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def decide(instance: dg.DagsterInstance, model: str | None, reason: str) -> None:
    """Record a production_model decision as the asset would."""
    instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key="production_model",
        metadata={"model_name": model, "promoted": model is not None, "reason": reason, "previous_model": None},
    ))


def test_no_decision_yet_exits_1_saying_so(dagster_home: Path) -> None:
    out = current_model(dagster_home)
    assert out.returncode == 1 and out.stdout == ""
    assert "production_model has never been materialized" in out.stderr


def test_no_model_in_production_exits_1_with_the_decision_s_reason(dagster_home: Path, instance: dg.DagsterInstance) -> None:
    decide(instance, None, "ft:x failed its accuracy check (worse than its base); there is no production model yet.")
    out = current_model(dagster_home, "--json")
    assert out.returncode == 1 and out.stdout == ""
    assert "No production model yet: ft:x failed its accuracy check" in out.stderr


def test_prints_the_latest_decision_s_model_or_its_metadata(dagster_home: Path, instance: dg.DagsterInstance) -> None:
    decide(instance, "ft:gpt-4o-mini-2024-07-18:org:goodreads:older", "first")
    decide(instance, MODEL, "beats the older one")
    out = current_model(dagster_home)
    assert out.returncode == 0 and out.stdout == MODEL + "\n"
    described = json.loads(current_model(dagster_home, "--json").stdout)
    assert described["model_name"] == MODEL and described["promoted"] is True
    assert described["reason"] == "beats the older one" and "timestamp" in described


def test_without_dagster_home_it_says_what_to_set(tmp_path: Path) -> None:
    out = current_model(None, cwd=tmp_path)  # no .env there either (the checkout's would name its instance)
    assert out.returncode == 1
    assert "DAGSTER_HOME is not set" in out.stderr


@pytest.mark.slow
def test_the_documented_graphql_query_reads_the_same_model(dagster_home: Path, instance: dg.DagsterInstance) -> None:
    """The query README.md and docs/production_model.md give applications, run by Dagster's own GraphQL CLI."""
    decide(instance, MODEL, "beats the older one")
    [query] = re.findall(r"```graphql\n(.*?)```", (REPO / "README.md").read_text(), flags=re.DOTALL)
    documented = re.findall(r"```graphql\n(.*?)```", (REPO / "docs" / "production_model.md").read_text(), flags=re.DOTALL)
    assert documented == [query]
    out = subprocess.run(
        [str(VENV_BIN / "dagster-graphql"), "-m", "fine_tuning.definitions", "-t", query], cwd=REPO,
        env={**os.environ, "DAGSTER_HOME": str(dagster_home)}, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    # The CLI's own log lines share stdout with the answer.
    [answer] = [json.loads(line) for line in out.stdout.splitlines() if line.startswith('{"data"')]
    [materialization] = answer["data"]["assetOrError"]["assetMaterializations"]
    entries = {entry["label"]: entry for entry in materialization["metadataEntries"]}
    assert entries["model_name"]["text"] == current_model(dagster_home).stdout.strip() == MODEL
    assert entries["promoted"]["boolValue"] is True
