"""End to end through the webserver, as the UI does it.

`dagster-webserver` and `dagster-daemon run` start as separate processes on a temporary
DAGSTER_HOME holding the project's dagster.yaml, loading the project's workspace.yaml, offline
(no OPENAI_API_KEY: the local backend). Through Dagster's GraphQL API the test checks that the
code location loads with every asset, check, job, schedule and sensor, launches
fine_tuning_job as the launchpad's button does (so it goes through the queued run coordinator
and only the daemon can start it), waits for success and reads the model name from
fine_tuned_model's latest materialization. Then it switches the `retune_on_new_data` sensor on,
changes the books file, and watches the daemon launch exactly one run for the new data version.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient

from fine_tuning.core.settings import SAMPLE_AUTHORS_FILE, SAMPLE_BOOKS_FILE
from fine_tuning.defs.goodreads.goodreads_source_dataset import goodreads_source_dataset
from local_openai.transport import local_client

from tests.support.processes import free_port, stop

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOCATION, REPOSITORY, JOB = "fine_tuning", "__repository__", "fine_tuning_job"
SENSOR = "retune_on_new_data"
SENSOR_SELECTOR = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "sensorName": SENSOR}
SENSOR_INTERVAL_SECONDS = 2

# The names the project promises.
CONTRACT_ASSETS = {
    "goodreads_source_dataset", "graphic_novels", "authors", "book_category", "enriched_graphic_novels",
    "training_file", "validation_file", "upload_training_file", "upload_validation_file", "fine_tuned_model",
    "production_model",
}
CONTRACT_CHECKS = {"training_file_format_check", "validation_file_format_check", "fine_tuned_model_accuracy"}
CONTRACT_JOBS = {JOB}
CONTRACT_SCHEDULES = {"retune_schedule"}
CONTRACT_SENSORS = {SENSOR}

# Bounds on waiting for child processes; never asserted as durations.
STARTUP_LIMIT_SECONDS = 240
RUN_LIMIT_SECONDS = 420
FAST_RUN_CONFIG = {"ops": {"fine_tuned_model": {"config": {"poll_interval_seconds": 0.3}}}}
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}

LOCATION_QUERY = """
{
  workspaceOrError {
    __typename
    ... on PythonError { message }
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message }
          ... on RepositoryLocation {
            repositories {
              name
              jobs { name }
              schedules { name }
              sensors { name }
              assetNodes {
                assetKey { path }
                assetChecksOrError { ... on AssetChecks { checks { name } } }
              }
            }
          }
        }
      }
    }
  }
}"""

METADATA_ENTRIES = """
metadataEntries {
  label
  ... on TextMetadataEntry { text }
  ... on IntMetadataEntry { intValue }
  ... on FloatMetadataEntry { floatValue }
  ... on BoolMetadataEntry { boolValue }
}"""

LATEST_MATERIALIZATION_QUERY = f"""
query($key: AssetKeyInput!) {{
  assetOrError(assetKey: $key) {{
    __typename
    ... on Asset {{ assetMaterializations(limit: 1) {{ runId {METADATA_ENTRIES} }} }}
  }}
}}"""

ACCURACY_CHECK_QUERY = f"""
query($key: AssetKeyInput!) {{
  assetNodeOrError(assetKey: $key) {{
    ... on AssetNode {{
      assetCheckOrError(checkName: "fine_tuned_model_accuracy") {{
        ... on AssetCheck {{
          executionForLatestMaterialization {{ runId status evaluation {{ {METADATA_ENTRIES} }} }}
        }}
      }}
    }}
  }}
}}"""

START_SENSOR = """
mutation($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) { __typename ... on Sensor { sensorState { status } } ... on PythonError { message } }
}"""

SENSOR_TICKS_QUERY = """
query($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    ... on Sensor { sensorState { ticks(limit: 100) { status timestamp runIds runKeys skipReason error { message } } } }
  }
}"""

RUNS_BY_TAG_QUERY = """
query($key: String!, $value: String!) {
  runsOrError(filter: {tags: [{key: $key, value: $value}]}) {
    ... on Runs { results { runId status endTime tags { key value } } }
  }
}"""

RUN_QUERY = """
query($runId: ID!) {
  runOrError(runId: $runId) { ... on Run { status tags { key value } } }
  logsForRun(runId: $runId) { ... on EventConnection { events { __typename } } }
}"""


@dataclass(frozen=True)
class DagsterServices:
    """A running webserver and daemon, and where their state lives."""

    port: int
    home: Path
    workdir: Path
    logs: Path
    books: Path
    authors: Path

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """A raw GraphQL request, for what DagsterGraphQLClient has no method for."""
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/graphql", data=body,
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        assert not answer.get("errors"), answer["errors"]
        return answer["data"]

    def process_logs(self) -> str:
        """The tail of both processes' output, for a failing assertion's message."""
        logs = sorted(self.logs.glob("*.log"))
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}" for path in logs)


def _offline_environment(home: Path, workdir: Path, books: Path, authors: Path) -> dict[str, str]:
    """The caller's environment without any way to reach OpenAI, reading these input files."""
    hidden = {"OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID",
              "FINE_TUNING_DUCKDB_DATABASE", "MOTHERDUCK_TOKEN"}
    env = {name: value for name, value in os.environ.items() if name not in hidden}
    env.update(DAGSTER_HOME=str(home), FINE_TUNING_WORKDIR=str(workdir), LOCAL_OPENAI_JOB_SECONDS="2",
               GOODREADS_BOOKS_URL=str(books), GOODREADS_AUTHORS_URL=str(authors),
               RETUNE_SENSOR_INTERVAL_SECONDS=str(SENSOR_INTERVAL_SECONDS))
    return env


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A child in its own process group (so its code server and run workers stop with it)."""
    with open(log, "wb") as out:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _location_entry(services: DagsterServices) -> dict[str, Any]:
    """The code location's workspace entry once it has finished loading."""
    deadline = time.monotonic() + STARTUP_LIMIT_SECONDS
    while True:
        try:
            workspace = services.graphql(LOCATION_QUERY)["workspaceOrError"]
            entries = {entry["name"]: entry for entry in workspace.get("locationEntries", [])}
            if entries.get(LOCATION, {}).get("loadStatus") == "LOADED":
                return entries[LOCATION]
        except OSError:
            pass  # the webserver is not listening yet
        if time.monotonic() > deadline:
            pytest.fail("the code location did not load\n" + services.process_logs())
        time.sleep(1)


def _create_storage(home: Path) -> None:
    """Create the instance's SQLite storage once, up front: the webserver, the daemon and the
    code server would otherwise race to create it and can stamp its schema version twice."""
    with DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)  # run storage
        instance.all_instigator_state()  # schedule storage
        instance.get_latest_materialization_event(AssetKey("fine_tuned_model"))  # event log index


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterServices]:
    """dagster-webserver and dagster-daemon on the project's instance and workspace config."""
    root = tmp_path_factory.mktemp("webserver_e2e")
    home, workdir, logs = root / "dagster_home", root / "workdir", root / "logs"
    for folder in (home, workdir, logs):
        folder.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    _create_storage(home)
    # Copies of the shipped sample, so the sensor test can change the books file.
    books, authors = shutil.copy(SAMPLE_BOOKS_FILE, root), shutil.copy(SAMPLE_AUTHORS_FILE, root)
    env = _offline_environment(home, workdir, Path(books), Path(authors))
    port = free_port()
    workspace = str(REPO / "workspace.yaml")
    webserver = [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", workspace]
    processes = [
        _start(webserver, env, logs / "webserver.log"),
        _start([str(BIN / "dagster-daemon"), "run", "-w", workspace], env, logs / "daemon.log"),
    ]
    try:
        yield DagsterServices(port=port, home=home, workdir=workdir, logs=logs, books=Path(books), authors=Path(authors))
    finally:
        for process in processes:
            stop(process)


def _metadata(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """label -> value of GraphQL metadata entries."""
    values = {}
    for entry in entries:
        values[entry["label"]] = next((entry[k] for k in ("text", "intValue", "floatValue", "boolValue") if k in entry), None)
    return values


def _wait_for_run(client: DagsterGraphQLClient, run_id: str, services: DagsterServices) -> DagsterRunStatus:
    deadline = time.monotonic() + RUN_LIMIT_SECONDS
    while (status := client.get_run_status(run_id)) not in FINISHED:
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} still {status} after {RUN_LIMIT_SECONDS} s\n" + services.process_logs())
        time.sleep(1)
    return status


@pytest.mark.slow
def test_code_location_loads_with_every_contract_name(services: DagsterServices) -> None:
    entry = _location_entry(services)
    location = entry["locationOrLoadError"]
    assert location["__typename"] == "RepositoryLocation", location
    [repository] = location["repositories"]
    assert repository["name"] == REPOSITORY

    assets = {"/".join(node["assetKey"]["path"]) for node in repository["assetNodes"]}
    checks = {check["name"] for node in repository["assetNodes"]
              for check in node["assetChecksOrError"].get("checks", [])}
    assert CONTRACT_ASSETS <= assets, CONTRACT_ASSETS - assets
    assert CONTRACT_CHECKS <= checks, CONTRACT_CHECKS - checks
    assert CONTRACT_JOBS <= {job["name"] for job in repository["jobs"]}
    assert CONTRACT_SCHEDULES <= {schedule["name"] for schedule in repository["schedules"]}
    assert CONTRACT_SENSORS <= {sensor["name"] for sensor in repository["sensors"]}


@pytest.mark.slow
def test_launch_button_runs_the_job_through_the_queue_and_records_the_model(services: DagsterServices) -> None:
    _location_entry(services)
    client = DagsterGraphQLClient("127.0.0.1", port_number=services.port)

    # The launchpad's button: a launch mutation for the job with the run config typed in it.
    run_id = client.submit_job_execution(JOB, repository_location_name=LOCATION, repository_name=REPOSITORY,
                                         run_config=FAST_RUN_CONFIG)
    assert _wait_for_run(client, run_id, services) == DagsterRunStatus.SUCCESS, services.process_logs()

    run = services.graphql(RUN_QUERY, {"runId": run_id})
    tags = {tag["key"]: tag["value"] for tag in run["runOrError"]["tags"]}
    assert tags["fine_tuning/provider_job"] == "goodreads"  # the queue's one-at-a-time limit applies
    event_types = {event["__typename"] for event in run["logsForRun"]["events"]}
    # Queued by the webserver, then launched (RUN_STARTING) by the daemon's run queue.
    assert {"RunEnqueuedEvent", "RunStartingEvent"} <= event_types, "the run did not go through the run queue"

    key = {"key": {"path": ["fine_tuned_model"]}}
    [materialization] = services.graphql(LATEST_MATERIALIZATION_QUERY, key)["assetOrError"]["assetMaterializations"]
    assert materialization["runId"] == run_id
    metadata = _metadata(materialization["metadataEntries"])
    model_name = metadata["model_name"]
    assert model_name.startswith("ft:gpt-4o-mini-2024-07-18:"), metadata
    assert metadata["job_id"].startswith("ftjob-") and metadata["reused"] is False
    assert metadata["trained_tokens"] > 0
    # The model the UI shows is the one the (local) provider really holds.
    assert local_client(str(services.workdir / "local_openai")).models.retrieve(model_name).id == model_name

    node = services.graphql(ACCURACY_CHECK_QUERY, key)["assetNodeOrError"]
    execution = node["assetCheckOrError"]["executionForLatestMaterialization"]
    assert (execution["runId"], execution["status"]) == (run_id, "SUCCEEDED")
    accuracy = _metadata(execution["evaluation"]["metadataEntries"])
    assert 0.0 <= accuracy["base_accuracy"] <= 1.0 and 0.0 <= accuracy["fine_tuned_accuracy"] <= 1.0
    assert accuracy["eval_examples"] > 0

    # What an application reads: the production model, promoted by this first run.
    production_key = {"key": {"path": ["production_model"]}}
    [decision] = services.graphql(LATEST_MATERIALIZATION_QUERY, production_key)["assetOrError"]["assetMaterializations"]
    production = _metadata(decision["metadataEntries"])
    assert decision["runId"] == run_id
    assert (production["model_name"], production["promoted"]) == (model_name, True), production


def _drop_last_book(books: Path) -> None:
    """A real change to the books file: one book fewer."""
    with gzip.open(books, "rt", encoding="utf-8") as handle:
        lines = handle.readlines()
    with gzip.open(books, "wt", encoding="utf-8") as handle:
        handle.writelines(lines[:-1])


def _source_version(services: DagsterServices, monkeypatch: pytest.MonkeyPatch) -> str:
    """The data version goodreads_source_dataset's own observation gives these files."""
    monkeypatch.setenv("GOODREADS_BOOKS_URL", str(services.books))
    monkeypatch.setenv("GOODREADS_AUTHORS_URL", str(services.authors))
    return goodreads_source_dataset.observe_fn().data_version.value  # type: ignore[misc]


def _sensor_runs(services: DagsterServices) -> list[dict[str, Any]]:
    runs = services.graphql(RUNS_BY_TAG_QUERY, {"key": "fine_tuning/trigger", "value": SENSOR})
    return runs["runsOrError"]["results"]


def _ticks(services: DagsterServices) -> list[dict[str, Any]]:
    return services.graphql(SENSOR_TICKS_QUERY, {"selector": SENSOR_SELECTOR})["sensorOrError"]["sensorState"]["ticks"]


@pytest.mark.slow
def test_sensor_relaunches_the_job_once_for_a_changed_source_file(
    services: DagsterServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    _location_entry(services)
    client = DagsterGraphQLClient("127.0.0.1", port_number=services.port)
    _drop_last_book(services.books)
    new_version = _source_version(services, monkeypatch)

    started = services.graphql(START_SENSOR, {"selector": SENSOR_SELECTOR})["startSensor"]
    assert started["__typename"] == "Sensor" and started["sensorState"]["status"] == "RUNNING", started

    # The daemon evaluates the sensor, which launches one run for the new data version.
    deadline = time.monotonic() + RUN_LIMIT_SECONDS
    while not (runs := _sensor_runs(services)):
        if time.monotonic() > deadline:
            pytest.fail(f"the sensor launched nothing; ticks: {_ticks(services)[:5]}\n" + services.process_logs())
        time.sleep(1)
    [run] = runs
    assert _wait_for_run(client, run["runId"], services) == DagsterRunStatus.SUCCESS, services.process_logs()
    tags = {tag["key"]: tag["value"] for tag in run["tags"]}
    assert tags["fine_tuning/source_data_version"] == new_version
    assert tags["dagster/run_key"] == f"goodreads_source_dataset:{new_version}"

    # The next tick finds the tables built from that version and launches nothing more.
    finished_at = time.time()
    deadline = time.monotonic() + STARTUP_LIMIT_SECONDS
    while not (later := [tick for tick in _ticks(services) if tick["timestamp"] > finished_at and tick["status"] != "STARTED"]):
        if time.monotonic() > deadline:
            pytest.fail("the sensor stopped ticking\n" + services.process_logs())
        time.sleep(1)
    assert all(tick["status"] == "SKIPPED" and new_version in tick["skipReason"] for tick in later), later
    assert len(_sensor_runs(services)) == 1
    assert not [tick for tick in _ticks(services) if tick["status"] == "FAILURE"]
