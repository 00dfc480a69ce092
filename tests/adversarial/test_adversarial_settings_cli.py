"""Nonsense settings given to the real CLIs (`dg launch`, `dagster job execute`) stop the job before it spends.

Dagster's run-config schema knows types, not ranges, so both commands start the run; the
preflight (op config) or the `tuning` resource's own bounds (at resource initialisation) stop it
before any step writes a table or calls the provider, and the output names the setting.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from fine_tuning.core.settings import duckdb_path, local_openai_dir
from local_openai.transport import local_client

from tests.support.project import REPO, VENV_BIN

pytestmark = [pytest.mark.adversarial, pytest.mark.slow]


def run_cli(command: list[str], config: str, tmp_path: Path, home: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "bad.yaml"
    path.write_text(config)
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    return subprocess.run([*command, str(path)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def nothing_spent() -> bool:
    client = local_client(local_openai_dir())
    return not list(client.files.list()) and not list(client.fine_tuning.jobs.list()) and not Path(duckdb_path()).exists()


@pytest.mark.parametrize(
    ("command", "config", "named"),
    [
        ([str(VENV_BIN / "dg"), "launch", "--job", "fine_tuning_job", "--config"],
         "ops:\n  fine_tuned_model:\n    config:\n      poll_interval_seconds: 0\n",
         "ops.fine_tuned_model.config.poll_interval_seconds = 0"),
        ([str(VENV_BIN / "dagster"), "job", "execute", "-m", "fine_tuning.definitions", "-j", "fine_tuning_job", "-c"],
         "resources:\n  tuning:\n    config:\n      n_epochs: 0\n",
         "resources.tuning.config.n_epochs = 0"),
    ],
    ids=["dg-launch-op-config", "dagster-job-execute-tuning"],
)
def test_the_cli_refuses_the_run_before_anything_is_spent(
    command: list[str], config: str, named: str, tmp_path: Path, dagster_home: Path
) -> None:
    result = run_cli(command, config, tmp_path, dagster_home)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert named in output, output[-3000:]
    assert nothing_spent()
