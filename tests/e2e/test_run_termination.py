"""Terminating and crashing the run that polls a provider job: the real `dagster` CLI in child processes.

Termination goes through the instance's run launcher as the UI does and must cancel the
provider job; a SIGKILLed run must leave a job the next materialization finds and follows.
"""

import os
import re
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from fine_tuning.lib.local_openai_resource import LocalOpenAIResource

from tests.support.chain import CHAIN, Chain, new_chain
from tests.support.processes import code_server_workspace

pytestmark = pytest.mark.slow  # child dagster processes, a code server, provider jobs

WAIT_LIMIT_SECONDS = 120  # upper bound for waiting on a child process; never asserted as a duration

DEFS_FILE = """
import os
import dagster as dg
from fine_tuning.lib.local_openai_resource import LocalOpenAIResource
from fine_tuning.lib.task.instances import task_steps

steps = task_steps("goodreads")
upload_training_file, upload_validation_file = steps["upload_training_file"], steps["upload_validation_file"]
fine_tuned_model = steps["fine_tuned_model"]
from fine_tuning.lib.task.tuning import TuningSettings

chain_job = dg.define_asset_job(
    "chain_job",
    selection=["upload_training_file", "upload_validation_file", "fine_tuned_model"],
    executor_def=dg.in_process_executor,
    config={"ops": {"fine_tuned_model": {"config": {"poll_interval_seconds": 0.1}}}},
)
defs = dg.Definitions(
    assets=[upload_training_file, upload_validation_file, fine_tuned_model],
    jobs=[chain_job],
    resources={
        "openai": LocalOpenAIResource(
            data_dir=os.environ["CHAIN_BACKEND_DIR"], job_seconds=float(os.environ["CHAIN_JOB_SECONDS"])
        ),
        "tuning": TuningSettings(n_epochs=2),
    },
)
"""


DAGSTER_YAML = """
telemetry:
  enabled: false
run_coordinator:  # launch runs straight away: no daemon runs in the tests
  module: dagster.core.run_coordinator
  class: DefaultRunCoordinator
"""
POLLING_LINE = re.compile(r"Job (ftjob-[A-Za-z0-9]+): (?:validating_files|queued|running), step")


@pytest.fixture()
def cli_chain(tmp_path: Path, dagster_home: Path) -> Chain:
    """A chain whose instance lives in a DAGSTER_HOME that child `dagster` processes share."""
    (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
    (tmp_path / "chain_defs.py").write_text(textwrap.dedent(DEFS_FILE))
    return new_chain(tmp_path, dg.DagsterInstance.get())


def child_env(chain: Chain, job_seconds: float) -> dict[str, str]:
    """The environment of a child process that runs the chain's definitions."""
    return {**os.environ, "CHAIN_BACKEND_DIR": str(chain.backend_dir), "CHAIN_JOB_SECONDS": str(job_seconds)}


def wait_until_polling(instance: dg.DagsterInstance, run_id: str, process: subprocess.Popen[bytes]) -> str:
    """The provider job id, once the run's asset has polled it (its first progress line is logged)."""
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    while time.monotonic() < deadline:
        for record in instance.all_logs(run_id):
            match = POLLING_LINE.search(record.user_message or "")
            if match:
                return match.group(1)
        run = instance.get_run_by_id(run_id)
        if (run is not None and run.is_finished) or process.poll() is not None and run is None:
            pytest.fail(f"run {run_id} ended before it polled a job: {run.status if run else 'never created'}")
        time.sleep(0.1)
    pytest.fail(f"run {run_id} never polled a provider job")


@pytest.fixture()
def code_server(tmp_path: Path, cli_chain: Chain) -> Iterator[Path]:
    """A `dagster code-server` for the chain; yields a workspace.yaml pointing at it."""
    # job_seconds far longer than the test runs
    with code_server_workspace(tmp_path / "chain_defs.py", tmp_path, child_env(cli_chain, job_seconds=120), "chain",
                               WAIT_LIMIT_SECONDS) as workspace:
        yield workspace


def test_terminating_the_run_cancels_the_provider_job(tmp_path: Path, cli_chain: Chain, code_server: Path) -> None:
    """Launch through the instance's run launcher, terminate as the UI/CLI does, see the job cancelled."""
    run_id = str(uuid.uuid4())
    launch = subprocess.Popen(
        [sys.executable, "-m", "dagster", "job", "launch", "-w", str(code_server), "-j", "chain_job",
         "--run-id", run_id],
        cwd=tmp_path, env=child_env(cli_chain, job_seconds=120), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    assert launch.wait(timeout=WAIT_LIMIT_SECONDS) == 0, launch.stderr.read() if launch.stderr else ""
    instance = cli_chain.instance
    job_id = wait_until_polling(instance, run_id, launch)

    assert instance.run_launcher.terminate(run_id)
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    while not instance.get_run_by_id(run_id).is_finished and time.monotonic() < deadline:
        time.sleep(0.1)

    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.CANCELED
    assert cli_chain.client().fine_tuning.jobs.retrieve(job_id).status == "cancelled"
    messages = [record.user_message or "" for record in instance.all_logs(run_id)]
    assert any(f"cancelled fine-tuning job {job_id}" in message for message in messages)
    assert instance.get_latest_materialization_event(dg.AssetKey("fine_tuned_model")) is None
    assert len(cli_chain.jobs()) == 1


def test_a_crash_mid_poll_loses_nothing(tmp_path: Path, cli_chain: Chain) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "dagster", "job", "execute", "-f", str(tmp_path / "chain_defs.py"), "-j", "chain_job"],
        cwd=tmp_path, env=child_env(cli_chain, job_seconds=3),  # the re-run waits for the rest of it
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + WAIT_LIMIT_SECONDS
        while not cli_chain.instance.get_runs(limit=1) and time.monotonic() < deadline:
            assert child.poll() is None, "the child run exited before it started"
            time.sleep(0.1)
        [run] = cli_chain.instance.get_runs(limit=1)
        job_id = wait_until_polling(cli_chain.instance, run.run_id, child)
    finally:
        child.kill()  # SIGKILL: no handler runs, the provider job is left unattended
        child.wait()
    assert cli_chain.client().fine_tuning.jobs.retrieve(job_id).status not in ("succeeded", "failed", "cancelled")

    # The re-run finds the orphan by its fingerprint and polls it to the end.
    dg.materialize(
        CHAIN, instance=cli_chain.instance,
        resources={"openai": LocalOpenAIResource(data_dir=str(cli_chain.backend_dir), job_seconds=1.0),
                   "tuning": cli_chain.tuning},
        run_config={"ops": {"fine_tuned_model": {"config": {"poll_interval_seconds": 0.2}}}},
    )
    metadata = cli_chain.model_metadata()
    assert metadata["job_id"] == job_id and metadata["reused"] is True
    assert len(cli_chain.jobs()) == 1
