"""The run queue, for real: `dagster dev` (webserver + daemon) with the project's dagster.yaml.

Two fine_tuning_job runs launched at once through the webserver's GraphQL API must run one
after the other (tag concurrency limit), and both must end up on the same provider job.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local_openai.transport import local_client

from tests.support.processes import free_port, stop
from tests.support.project import REPO, VENV_BIN

pytestmark = pytest.mark.slow  # `dagster dev` (webserver and daemon) and two whole-job runs

STARTUP_LIMIT_SECONDS = 180  # bounds for waiting on a child process; never asserted as durations
RUNS_LIMIT_SECONDS = 300

LAUNCH = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}"""
RUNS = "{ runsOrError { ... on Runs { results { runId status startTime endTime } } } }"


def _graphql(port: int, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body,
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


@pytest.fixture()
def dagster_dev(dagster_home: Path, workdir: Path) -> Iterator[int]:
    """`dagster dev` on a free port, with its own DAGSTER_HOME; always shut down."""
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "LOCAL_OPENAI_JOB_SECONDS": "2"}
    server = subprocess.Popen(
        [str(VENV_BIN / "dagster"), "dev", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + STARTUP_LIMIT_SECONDS
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("dagster dev did not start")
                time.sleep(1)
        yield port
    finally:
        stop(server, limit_seconds=60)  # SIGINT to its session: dagster dev shuts its children down


def test_two_queued_fine_tuning_runs_never_overlap(dagster_dev: int, workdir: Path) -> None:
    params = {
        "selector": {"repositoryLocationName": "fine_tuning", "repositoryName": "__repository__",
                     "jobName": "fine_tuning_job"},
        "runConfigData": {"ops": {"fine_tuned_model": {"config": {"poll_interval_seconds": 0.3}}}},
    }
    launched = [_graphql(dagster_dev, LAUNCH, {"params": params})["launchRun"] for _ in range(2)]
    assert all(item["__typename"] == "LaunchRunSuccess" for item in launched), launched

    runs = _runs_once_finished(dagster_dev)

    assert [run["status"] for run in runs] == ["SUCCESS", "SUCCESS"], runs
    first, second = sorted(runs, key=lambda run: run["startTime"])
    assert first["endTime"] <= second["startTime"], "the tag concurrency limit let two runs overlap"
    # The second run found the first run's job by fingerprint: one job paid for, not two.
    client = local_client(str(workdir / "local_openai"))
    assert len(list(client.fine_tuning.jobs.list())) == 1


def _runs_once_finished(port: int) -> list[dict]:
    """The instance's runs, once every one has ended (or RUNS_LIMIT_SECONDS passed)."""
    deadline = time.monotonic() + RUNS_LIMIT_SECONDS
    while True:
        runs = _graphql(port, RUNS)["runsOrError"]["results"]
        if all(run["status"] in ("SUCCESS", "FAILURE", "CANCELED") for run in runs) or time.monotonic() > deadline:
            return runs
        time.sleep(1)


def test_a_ui_asset_run_waits_for_the_job_through_the_tables_pool(dagster_dev: int, workdir: Path) -> None:
    # The UI's "Materialize" on prep assets: the implicit asset job, no provider tag. The pool
    # goodreads_tables (dagster.yaml: one run at a time) holds it while the job runs.
    repository = {"repositoryLocationName": "fine_tuning", "repositoryName": "__repository__"}
    job = {"selector": {**repository, "jobName": "fine_tuning_job"},
           "runConfigData": {"ops": {"fine_tuned_model": {"config": {"poll_interval_seconds": 0.3}}}}}
    assets = {"selector": {**repository, "jobName": "__ASSET_JOB",
                           "assetSelection": [{"path": [name]} for name in ("graphic_novels", "authors")]}}
    # The job first, as when a user clicks Materialize while it runs. (Dagster sets a pool's default
    # limit the first time it sees the pool queued: runs dequeued in that same iteration are not held.)
    launched = [_graphql(dagster_dev, LAUNCH, {"params": job})["launchRun"]]
    deadline = time.monotonic() + RUNS_LIMIT_SECONDS
    while _graphql(dagster_dev, RUNS)["runsOrError"]["results"][0]["status"] not in ("STARTED", "SUCCESS", "FAILURE"):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    launched.append(_graphql(dagster_dev, LAUNCH, {"params": assets})["launchRun"])
    assert all(item["__typename"] == "LaunchRunSuccess" for item in launched), launched

    runs = _runs_once_finished(dagster_dev)
    assert [run["status"] for run in runs] == ["SUCCESS", "SUCCESS"], runs
    first, second = sorted(runs, key=lambda run: run["startTime"])
    assert first["endTime"] <= second["startTime"], "the goodreads_tables pool let the asset run overlap the job"
