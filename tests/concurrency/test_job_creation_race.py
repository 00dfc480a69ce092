"""Runs racing outside the run queue create one provider job: never paid for twice.

Three `dagster job execute -o fine_tuned_model` processes share one instance, one workdir and one
local backend served over HTTP (`python -m local_openai serve`), with the uploads already
materialized. The test holds the training fingerprint's creation lease while they start, waits
until every one of them is blocked on it, then lets go: all three reach the look-up-and-create
at the same instant. The backend must end up with exactly one job, created by one run, and
every run must succeed with that job's model.

The backend's job listing lags (`--job-list-lag-seconds`): a job shows in `GET /fine_tuning/jobs`
only a minute after its creation, as an eventually consistent list endpoint may, so the runs
after the creator cannot see its job by listing; they must find it through the id the creator
recorded beside the lease before releasing it.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from fine_tuning.core.job_lease import creation_lease, lease_path
from fine_tuning.core.provider_jobs import training_fingerprint
from local_openai.transport import local_client

from tests.support.chain import new_chain
from tests.support.dagster_runs import latest_metadata_of
from tests.support.goodreads_task import GOODREADS, upload_training_file, upload_validation_file
from tests.support.local_openai import serve_subprocess
from tests.support.processes import stop
from tests.support.project import REPO, VENV_BIN

pytestmark = pytest.mark.slow

RACERS = 3
CREATED = re.compile(r"Created fine-tuning job ftjob-\S+ on ")
WAITING = "Another run is creating the fine-tuning job with this fingerprint"
LIST_LAG_SECONDS = 60  # far longer than the racers take to pass through the lease one after another
ATTACHED = re.compile(r"(Attaching to in-flight|Reusing succeeded) fine-tuning job ftjob-")
NOT_LISTED_YET = re.compile(r"Recorded fine-tuning job ftjob-\S+ \(\w+\) is not listed by the provider yet")


class _Quiet:
    """The test's own lease holder logs nowhere."""

    def info(self, message: str) -> None: ...

    def warning(self, message: str) -> None: ...

    def error(self, message: str) -> None: ...


def _fingerprint(instance: dg.DagsterInstance) -> str:
    """The fingerprint the racers compute: the uploaded files' sha256 and the Goodreads task's settings."""
    tuning = GOODREADS.tuning_settings()
    training, validation = (latest_metadata_of(instance, key) for key in ("upload_training_file", "upload_validation_file"))
    return training_fingerprint(str(training["sha256"]), str(validation["sha256"]), tuning.base_model,
                                tuning.job_method(), tuning.suffix, tuning.seed)


def _start_racer(log: Path, config: Path, env: dict[str, str]) -> subprocess.Popen:
    command = [str(VENV_BIN / "dagster"), "job", "execute", "-m", "fine_tuning.definitions", "-j", "fine_tuning_job",
               "-o", "fine_tuned_model", "-c", str(config)]
    with open(log, "wb") as out:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_until_all_wait(logs: list[Path], racers: list[subprocess.Popen], limit_seconds: float = 180) -> None:
    deadline = time.monotonic() + limit_seconds
    while not all(WAITING in log.read_text(errors="replace") for log in logs):
        for log, racer in zip(logs, racers):
            assert racer.poll() is None, f"a racer ended before it reached the lease:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, "the racers never all waited for the lease"
        time.sleep(0.1)


def test_simultaneous_runs_create_one_job(tmp_path: Path, dagster_home: Path, workdir: Path) -> None:
    with dg.DagsterInstance.get() as instance, serve_subprocess(
            "--data-dir", str(tmp_path / "backend"), "--job-seconds", "1",
            "--job-list-lag-seconds", str(LIST_LAG_SECONDS)) as served:
        chain = new_chain(tmp_path, instance)
        chain.materialize([upload_training_file, upload_validation_file])
        config = tmp_path / "run_config.yaml"
        config.write_text(yaml.safe_dump({"ops": {"fine_tuned_model": {"config": {"poll_interval_seconds": 0.2}}}}))
        env = {**os.environ, "OPENAI_BASE_URL": served.base_url, "OPENAI_API_KEY": "local"}
        logs = [tmp_path / f"racer{i}.log" for i in range(RACERS)]
        racers: list[subprocess.Popen] = []
        try:
            with creation_lease(lease_path(workdir, _fingerprint(instance)), "the test", _Quiet()):
                racers = [_start_racer(log, config, env) for log in logs]
                _wait_until_all_wait(logs, racers)
            codes = [racer.wait(timeout=180) for racer in racers]
        finally:
            for racer in racers:
                stop(racer)
        outputs = [log.read_text(errors="replace") for log in logs]
        assert codes == [0] * RACERS, "\n\n".join(output[-3000:] for output in outputs)

        jobs = list(local_client(tmp_path / "backend").fine_tuning.jobs.list(limit=100))  # the served store, without the lag
        assert len(jobs) == 1 and jobs[0].status == "succeeded", [(job.id, job.status) for job in jobs]
        records = instance.fetch_materializations(dg.AssetKey("fine_tuned_model"), limit=RACERS + 1).records
        reports = [{key: value.value for key, value in record.asset_materialization.metadata.items()}
                   for record in records]
        assert len(reports) == RACERS
        assert {(report["job_id"], report["model_name"]) for report in reports} == {(jobs[0].id, jobs[0].fine_tuned_model)}
        assert sorted(report["reused"] for report in reports) == [False] + [True] * (RACERS - 1)
        assert sum(bool(CREATED.search(output)) for output in outputs) == 1
        # In flight, or already succeeded when a loaded machine hands the lease on slowly (the job takes 1 s).
        attached = [bool(ATTACHED.search(output)) for output in outputs]
        assert sum(attached) == RACERS - 1, [output[-2000:] for output in outputs]
        found_by_record = [bool(NOT_LISTED_YET.search(output)) for output in outputs]
        assert found_by_record == attached, [output[-2000:] for output in outputs]  # the listing never showed it
        assert not any("cancelling" in output for output in outputs)  # nothing created to be cancelled
