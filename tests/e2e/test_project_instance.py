"""One instance for every command run from the checkout: `make setup` writes `.env`, which the
`dagster` and `dg` CLIs read, so nothing needs exporting; an exported DAGSTER_HOME wins; a run
that would go to a throw-away instance says so."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from tests.support.project import REPO, VENV_BIN

pytestmark = pytest.mark.slow  # make and the dagster CLI in child processes

THROWAWAY = "This run is on a throw-away Dagster instance"


def without_home(**extra: str) -> dict[str, str]:
    """This environment without DAGSTER_HOME (as a new user's shell), plus `extra`."""
    env = {key: value for key, value in os.environ.items() if key != "DAGSTER_HOME"}
    return {**env, "FINE_TUNING_PROVIDER": "local", **extra}


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A folder set up by the Makefile's own `home` and `project-env` steps, as `make setup` does."""
    folder = tmp_path / "checkout"
    folder.mkdir()
    for name in ("Makefile", "dagster.yaml", "requirements.lock", "pyproject.toml"):
        shutil.copy(REPO / name, folder / name)
    made = subprocess.run(["make", "-s", "home", "project-env"], cwd=folder, env=without_home(),
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stdout + made.stderr
    return folder


def materialize(cwd: Path, env: dict[str, str]) -> str:
    """`dagster asset materialize -m fine_tuning --select graphic_novels` in `cwd`; its output."""
    result = subprocess.run([str(VENV_BIN / "dagster"), "asset", "materialize", "-m", "fine_tuning",
                             "--select", "graphic_novels"], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result.stdout + result.stderr


def materialized_in(home: Path) -> bool:
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        return instance.get_latest_materialization_event(dg.AssetKey("graphic_novels")) is not None


def test_setup_writes_an_env_naming_the_checkouts_instance_and_keeps_yours(checkout: Path) -> None:
    home = checkout / ".dagster_home"
    assert (home / "dagster.yaml").read_text() == (REPO / "dagster.yaml").read_text()
    assert (checkout / ".env").read_text() == f"DAGSTER_HOME=${{DAGSTER_HOME:-{home}}}\n"
    (checkout / ".env").write_text("OPENAI_API_KEY=sk-yours\n")
    again = subprocess.run(["make", "-s", "project-env"], cwd=checkout, env=without_home(), capture_output=True,
                           text=True, timeout=60)
    assert again.returncode == 0
    assert (checkout / ".env").read_text() == f"OPENAI_API_KEY=sk-yours\nDAGSTER_HOME=${{DAGSTER_HOME:-{home}}}\n"


def test_the_cli_uses_the_checkouts_instance_without_exports(checkout: Path, tmp_path: Path) -> None:
    output = materialize(checkout, without_home(FINE_TUNING_WORKDIR=str(tmp_path / "work")))
    assert THROWAWAY not in output
    assert materialized_in(checkout / ".dagster_home")


def test_the_projects_clis_read_the_same_env_file(checkout: Path) -> None:
    model = "ft:gpt-4o-mini-2024-07-18:org:goodreads:from-env"
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(checkout / ".dagster_home"))) as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key="production_model", metadata={"model_name": model, "promoted": True, "reason": "first"}))
    for tool, expected in (("current_model", model + "\n"), ("summary", "")):
        result = subprocess.run([str(VENV_BIN / "python"), "-m", f"fine_tuning.{tool}"], cwd=checkout,
                                env=without_home(), capture_output=True, text=True, timeout=120)
        assert "DAGSTER_HOME is not set" not in result.stderr, result.stderr
        assert result.stdout == expected
    summary = subprocess.run([str(VENV_BIN / "python"), "-m", "fine_tuning.summary"], cwd=checkout,
                             env=without_home(), capture_output=True, text=True, timeout=120)
    assert "No fine_tuning_job run found in this Dagster instance" in summary.stderr  # it read that instance


def test_an_exported_dagster_home_wins_over_the_env_file(checkout: Path, tmp_path: Path) -> None:
    mine = tmp_path / "my_home"
    mine.mkdir()
    shutil.copy(REPO / "dagster.yaml", mine / "dagster.yaml")
    materialize(checkout, without_home(DAGSTER_HOME=str(mine), FINE_TUNING_WORKDIR=str(tmp_path / "work")))
    assert materialized_in(mine) and not materialized_in(checkout / ".dagster_home")


def test_a_run_on_a_throwaway_instance_says_so(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"  # no .env, no DAGSTER_HOME: the CLI makes up a temporary instance
    elsewhere.mkdir()
    output = materialize(elsewhere, without_home(FINE_TUNING_WORKDIR=str(tmp_path / "work")))
    assert output.count(THROWAWAY) == 1, output[-3000:]
