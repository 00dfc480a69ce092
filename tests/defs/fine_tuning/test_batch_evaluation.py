"""`fine_tuned_model_accuracy` in batch mode against the local backend's real Batch API.

A model is really fine-tuned at the local backend, the test split lives in a real DuckDB file
and the check runs through real Dagster execution: in-process, or in a child `dagster` process
that is killed (a crash) or terminated through the run launcher (as the UI does).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from fine_tuning.core.batch_scoring import PURPOSE_TAG, PURPOSE_TAG_KEY
from fine_tuning.core.prompts import training_example
from fine_tuning.lib.local_openai_resource import LocalOpenAIResource
from fine_tuning.lib.task.tuning import TuningSettings
from local_openai.transport import local_client

from tests.support.goodreads_task import fine_tuned_model_accuracy
from tests.support.local_openai import jsonl, wait_for
from tests.support.processes import code_server_workspace
from tests.support.toy_books import CATEGORIES, HeldOutBook, signal_book
from tests.support.warehouse import write_labelled_books

BASE_MODEL = TuningSettings().base_model
CHECK_OP = fine_tuned_model_accuracy.node_def.name
WAIT_LIMIT_SECONDS = 120  # upper bound for waiting on a child process; never asserted as a duration
SUBMITTED = re.compile(r"Submitted evaluation batch (batch_[A-Za-z0-9]+) for (\S+) ")
POLLED = re.compile(r"Batch (batch_[A-Za-z0-9]+): (?:validating|in_progress|finalizing)")


def books(count: int, start: int = 0) -> list[HeldOutBook]:
    """Held-out toy books: their descriptions carry the signal words a fine-tuned model learns."""
    return [HeldOutBook(f"b{i:05d}", *signal_book(i)) for i in range(start, start + count)]


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Any]:
    """A backend store with a fine-tuned model, and a DuckDB file with 24 test books."""
    backend = tmp_path / "backend"
    client = local_client(str(backend), job_seconds=0.5)
    training = [training_example(*signal_book(i), CATEGORIES) for i in range(1000, 1040)]
    file_id = client.files.create(file=("train.jsonl", jsonl(training)), purpose="fine-tune").id
    job = client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=file_id, suffix="batch")
    job = wait_for(client, job.id)
    assert job.status == "succeeded", job.error
    database = tmp_path / "goodreads.duckdb"
    test_books = books(24)
    write_labelled_books([(b.book_id, b.title, b.author, b.description, b.category) for b in test_books],
                         CATEGORIES, database=database)
    with duckdb.connect(str(database)) as conn:
        conn.execute("CREATE TABLE book_splits (book_id VARCHAR, split VARCHAR)")
        conn.executemany("INSERT INTO book_splits VALUES (?, 'test')", [(b.book_id,) for b in test_books])
    return {"backend": backend, "database": database, "model": job.fine_tuned_model, "job_id": job.id}


def record_model(instance: dg.DagsterInstance, world: dict[str, Any]) -> None:
    """What fine_tuned_model would have recorded."""
    instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key="fine_tuned_model",
        metadata={"model_name": world["model"], "job_id": world["job_id"], "base_model": BASE_MODEL},
    ))


def run_check(world: dict[str, Any], instance: dg.DagsterInstance | None = None, batch_seconds: float = 1.0,
              **config: Any) -> dict[str, Any]:
    """The check through Dagster on this world; its plain metadata plus `passed`."""
    instance = instance or dg.DagsterInstance.ephemeral()
    record_model(instance, world)
    defs = dg.Definitions(
        assets=[dg.AssetSpec("fine_tuned_model")],
        asset_checks=[fine_tuned_model_accuracy],
        jobs=[dg.define_asset_job("evaluate", selection=dg.AssetSelection.checks(fine_tuned_model_accuracy))],
        resources={
            "duckdb": DuckDBResource(database=str(world["database"])),
            "openai": LocalOpenAIResource(data_dir=str(world["backend"]), batch_seconds=batch_seconds),
            "tuning": TuningSettings(),
        },
    )
    result = defs.resolve_job_def("evaluate").execute_in_process(
        instance=instance, run_config={"ops": {CHECK_OP: {"config": {"poll_interval_seconds": 0.1, **config}}}}
    )
    [evaluation] = result.get_asset_check_evaluations()
    metadata = {key: value.value for key, value in evaluation.metadata.items()}
    return {"passed": evaluation.passed, **metadata, **metadata["details"]}  # the plotted numbers and the details


def batches(world: dict[str, Any]) -> list[Any]:
    """Every batch in the world's backend store."""
    return list(local_client(str(world["backend"])).batches.list(limit=100))


def test_batch_and_online_give_the_same_accuracies_at_half_the_price(world: dict[str, Any]) -> None:
    online = run_check(world, mode="online")
    batch = run_check(world, mode="batch")  # a fresh instance: nothing to reuse, so it really asks
    assert online["mode"] == "online" and batch["mode"] == "batch"
    for key in ("fine_tuned_accuracy", "base_accuracy", "eval_examples", "per_label_metrics", "confusion_matrix",
                "macro_f1_fine_tuned", "macro_f1_base", "passed",
                "fine_tuned_prompt_tokens", "fine_tuned_completion_tokens", "base_prompt_tokens",
                "base_completion_tokens", "evaluation_fingerprint"):
        assert batch[key] == online[key], key
    assert batch["fine_tuned_accuracy"] > batch["base_accuracy"]
    assert batch["failed_requests"] == 0
    for role in ("fine_tuned", "base"):
        assert batch[f"{role}_cost_usd"] == pytest.approx(online[f"{role}_cost_usd"] / 2, abs=1e-6)
    # One batch per model (the Batch API asks one model per batch), found again by fingerprint.
    assert batch["batches_submitted"] == 2 and batch["batches_reused"] == 0
    created = batches(world)
    assert {b.id for b in created} == set(batch["batch_ids"].values())
    assert all(b.status == "completed" and b.endpoint == "/v1/chat/completions" for b in created)
    assert all((b.metadata or {}).get(PURPOSE_TAG_KEY) == PURPOSE_TAG for b in created)
    assert {b.completion_window for b in created} == {"24h"}
    client = local_client(str(world["backend"]))
    assert len([f for f in client.files.list(purpose="batch") if f.purpose == "batch"]) == 2


def test_the_same_models_and_prompts_are_never_submitted_twice(world: dict[str, Any]) -> None:
    first = run_check(world, mode="batch")
    # Another instance (nothing in its history) finds the completed batches by fingerprint.
    second = run_check(world, mode="batch")
    assert second["batches_submitted"] == 0 and second["batches_reused"] == 2
    assert second["batch_ids"] == first["batch_ids"]
    assert second["fine_tuned_accuracy"] == first["fine_tuned_accuracy"]
    assert len(batches(world)) == 2
    # force_evaluation asks again: new batches, the old ones untouched.
    forced = run_check(world, mode="batch", force_evaluation=True)
    assert forced["batches_submitted"] == 2 and set(forced["batch_ids"].values()).isdisjoint(first["batch_ids"].values())
    assert len(batches(world)) == 4


def test_a_batch_that_fails_counts_its_requests_as_wrong_as_online_mode_does(world: dict[str, Any]) -> None:
    # The fine-tuned model is deleted at the provider: its batch fails validation, online requests get 404s.
    local_client(str(world["backend"])).models.delete(world["model"])
    online = run_check(world, mode="online", max_retries=0)
    batch = run_check(world, mode="batch")
    for result in (online, batch):
        assert result["fine_tuned_failed_requests"] == result["eval_examples"] == 24
        assert result["fine_tuned_accuracy"] == 0.0 and result["base_failed_requests"] == 0
        assert not result["passed"]
    assert batch["base_accuracy"] == online["base_accuracy"]
    failed = [b for b in batches(world) if b.status == "failed"]
    assert [b.id for b in failed] == [batch["batch_ids"][world["model"]]]


# ---------------------------------------------------------------------------------------------
# Crashes and termination: the real `dagster` CLI in child processes
# ---------------------------------------------------------------------------------------------

DEFS_FILE = """
import os
import dagster as dg
from dagster_duckdb import DuckDBResource
from fine_tuning.lib.task.instances import task_steps
from fine_tuning.lib.task.tuning import TuningSettings
from fine_tuning.lib.local_openai_resource import LocalOpenAIResource

fine_tuned_model_accuracy = task_steps("goodreads")["fine_tuned_model_fine_tuned_model_accuracy"]
evaluate = dg.define_asset_job(
    "evaluate",
    selection=dg.AssetSelection.checks(fine_tuned_model_accuracy),
    executor_def=dg.in_process_executor,
    config={"ops": {fine_tuned_model_accuracy.node_def.name: {"config": {"mode": "batch", "poll_interval_seconds": 0.1}}}},
)
defs = dg.Definitions(
    assets=[dg.AssetSpec("fine_tuned_model")],
    asset_checks=[fine_tuned_model_accuracy],
    jobs=[evaluate],
    resources={
        "duckdb": DuckDBResource(database=os.environ["EVAL_DUCKDB"]),
        "openai": LocalOpenAIResource(
            data_dir=os.environ["EVAL_BACKEND_DIR"], batch_seconds=float(os.environ["EVAL_BATCH_SECONDS"])
        ),
        "tuning": TuningSettings(),
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


@pytest.fixture
def cli_world(tmp_path: Path, world: dict[str, Any], dagster_home: Path) -> dict[str, Any]:
    """The world, with an instance in a DAGSTER_HOME that child `dagster` processes share."""
    (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
    (tmp_path / "evaluate_defs.py").write_text(textwrap.dedent(DEFS_FILE))
    instance = dg.DagsterInstance.get()
    record_model(instance, world)
    return {**world, "instance": instance, "defs": tmp_path / "evaluate_defs.py"}


def child_env(world: dict[str, Any], batch_seconds: float) -> dict[str, str]:
    return {**os.environ, "EVAL_DUCKDB": str(world["database"]), "EVAL_BACKEND_DIR": str(world["backend"]),
            "EVAL_BATCH_SECONDS": str(batch_seconds)}


def wait_until_polling(instance: dg.DagsterInstance, run_id: str, process: subprocess.Popen[bytes]) -> list[str]:
    """The ids of the run's batches, once it has submitted both and polled one."""
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    while time.monotonic() < deadline:
        messages = [record.user_message or "" for record in instance.all_logs(run_id)]
        submitted = [match.group(1) for message in messages for match in [SUBMITTED.search(message)] if match]
        if len(submitted) == 2 and any(POLLED.search(message) for message in messages):
            return submitted
        run = instance.get_run_by_id(run_id)
        if (run is not None and run.is_finished) or process.poll() is not None and run is None:
            pytest.fail(f"run {run_id} ended before it polled its batches: {run.status if run else 'never created'}")
        time.sleep(0.1)
    pytest.fail(f"run {run_id} never polled its batches")


@pytest.mark.slow
def test_a_crash_in_the_middle_of_a_batch_resumes_the_same_batches(tmp_path: Path, cli_world: dict[str, Any]) -> None:
    instance = cli_world["instance"]
    child = subprocess.Popen(
        [sys.executable, "-m", "dagster", "job", "execute", "-f", str(cli_world["defs"]), "-j", "evaluate"],
        cwd=tmp_path, env=child_env(cli_world, batch_seconds=8),  # the re-run waits for the rest of it
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + WAIT_LIMIT_SECONDS
        while not instance.get_runs(limit=1) and time.monotonic() < deadline:
            assert child.poll() is None, "the child run exited before it started"
            time.sleep(0.1)
        [run] = instance.get_runs(limit=1)
        submitted = wait_until_polling(instance, run.run_id, child)
    finally:
        child.kill()  # SIGKILL: no handler runs, the batches are left unattended
        child.wait()
    client = local_client(str(cli_world["backend"]))
    assert {client.batches.retrieve(batch_id).status for batch_id in submitted} <= {"validating", "in_progress", "finalizing"}

    # The re-run attaches to both batches by fingerprint, waits for them and scores them.
    result = run_check(cli_world, instance=instance, mode="batch")
    assert result["batches_reused"] == 2 and result["batches_submitted"] == 0
    assert sorted(result["batch_ids"].values()) == sorted(submitted)
    assert result["failed_requests"] == 0 and result["fine_tuned_accuracy"] > result["base_accuracy"]
    assert len(batches(cli_world)) == 2


@pytest.fixture
def code_server(tmp_path: Path, cli_world: dict[str, Any]) -> Iterator[Path]:
    """A `dagster code-server` for the evaluation job; yields a workspace.yaml pointing at it."""
    # batch_seconds far longer than the test runs
    with code_server_workspace(cli_world["defs"], tmp_path, child_env(cli_world, batch_seconds=120), "eval",
                               WAIT_LIMIT_SECONDS) as workspace:
        yield workspace


@pytest.mark.slow
def test_terminating_the_run_cancels_its_batches(tmp_path: Path, cli_world: dict[str, Any], code_server: Path) -> None:
    """Launch through the instance's run launcher, terminate as the UI/CLI does, see the batches cancelled."""
    run_id = str(uuid.uuid4())
    launch = subprocess.Popen(
        [sys.executable, "-m", "dagster", "job", "launch", "-w", str(code_server), "-j", "evaluate", "--run-id", run_id],
        cwd=tmp_path, env=child_env(cli_world, batch_seconds=120), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    assert launch.wait(timeout=WAIT_LIMIT_SECONDS) == 0, launch.stderr.read() if launch.stderr else ""
    instance = cli_world["instance"]
    submitted = wait_until_polling(instance, run_id, launch)

    assert instance.run_launcher.terminate(run_id)
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    while not instance.get_run_by_id(run_id).is_finished and time.monotonic() < deadline:
        time.sleep(0.1)

    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.CANCELED
    client = local_client(str(cli_world["backend"]))
    assert {client.batches.retrieve(batch_id).status for batch_id in submitted} <= {"cancelling", "cancelled"}
    messages = [record.user_message or "" for record in instance.all_logs(run_id)]
    for batch_id in submitted:
        assert any(f"cancelled evaluation batch {batch_id}" in message for message in messages), batch_id
    assert len(batches(cli_world)) == 2
