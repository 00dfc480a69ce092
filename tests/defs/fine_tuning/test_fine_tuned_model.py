"""Uploads and the resumable `fine_tuned_model` asset against the real local backend.

Real Dagster execution (`dg.materialize`, and the `dagster` CLI in a child process for
termination and crashes), the real `openai` client, the local backend in-process. Upstream
`training_file` / `validation_file` materializations are reported on the instance with the
metadata the files step records (`path`, `sha256`, `examples`).
"""

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import httpx2
import openai
import pytest

from fine_tuning.core import prompts
from fine_tuning.core.checksums import file_sha256
from fine_tuning.local_openai.http import Router
from fine_tuning.local_openai.resource import LocalOpenAIResource
from fine_tuning.local_openai.transport import LOCAL_BASE_URL, LocalTransport, local_client
from fine_tuning.defs.fine_tuning.fine_tuned_model import (
    FINGERPRINT_KEY,
    choose_job,
    create_job_once,
    fine_tuned_model,
    job_metadata,
    next_poll_delay,
    settle_concurrent_jobs,
    training_fingerprint,
    wait_for_job,
)
from fine_tuning.defs.resources import TuningSettings
from fine_tuning.defs.fine_tuning.uploads import upload_filename, upload_or_reuse, upload_training_file, upload_validation_file

from tests.support.toy_books import CATEGORIES, SIGNALS

CHAIN = [upload_training_file, upload_validation_file, fine_tuned_model]
WAIT_LIMIT_SECONDS = 120  # upper bound for waiting on a child process; never asserted as a duration


def write_examples(path: Path, count: int, start: int = 0) -> Path:
    """A chat-format JSONL file with a learnable signal, built with the shared prompt builder."""
    lines = []
    for i in range(start, start + count):
        category = CATEGORIES[i % len(CATEGORIES)]
        example = prompts.training_example(
            f"Book {i}", f"Author {i % 7}", f"{SIGNALS[category]} volume {i}", category, CATEGORIES
        )
        lines.append(json.dumps(example))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def report_file(instance: dg.DagsterInstance, kind: str, path: Path) -> None:
    """Stand in for the files step: a `{kind}_file` materialization with its contract metadata."""
    examples = sum(1 for line in path.read_text().splitlines() if line.strip())
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=f"{kind}_file",
            metadata={"path": str(path.resolve()), "sha256": file_sha256(path), "examples": examples},
        )
    )


@dataclass
class Chain:
    """One isolated world: a Dagster instance, a local backend store and the two JSONL files."""

    instance: dg.DagsterInstance
    backend_dir: Path
    files_dir: Path
    tuning: TuningSettings

    def client(self, job_seconds: float = 1.0) -> openai.OpenAI:
        return local_client(str(self.backend_dir), job_seconds=job_seconds)

    def resources(self, job_seconds: float = 1.0) -> dict[str, Any]:
        return {
            "openai": LocalOpenAIResource(data_dir=str(self.backend_dir), job_seconds=job_seconds),
            "tuning": self.tuning,
        }

    def write_and_report(self, kind: str, count: int, start: int = 0) -> Path:
        path = write_examples(self.files_dir / f"{kind}.jsonl", count, start)
        report_file(self.instance, kind, path)
        return path

    def materialize(
        self, assets: list[Any] = CHAIN, raise_on_error: bool = True, **model_config: Any
    ) -> dg.ExecuteInProcessResult:
        run_config = None
        if fine_tuned_model in assets:
            config = {"poll_interval_seconds": 0.1, **model_config}
            run_config = {"ops": {"fine_tuned_model": {"config": config}}}
        return dg.materialize(
            assets, instance=self.instance, resources=self.resources(),
            run_config=run_config, raise_on_error=raise_on_error,
        )

    def jobs(self) -> list[Any]:
        return list(self.client().fine_tuning.jobs.list())

    def uploaded_files(self) -> list[Any]:
        return list(self.client().files.list(purpose="fine-tune"))

    def model_metadata(self) -> dict[str, Any]:
        return latest_metadata_of(self.instance, "fine_tuned_model")


def latest_metadata_of(instance: dg.DagsterInstance, key: str) -> dict[str, Any]:
    event = instance.get_latest_materialization_event(dg.AssetKey(key))
    assert event is not None and event.asset_materialization is not None, f"{key} was never materialized"
    return {name: value.value for name, value in event.asset_materialization.metadata.items()}


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """Everything the failed steps said: error messages and dg.Failure descriptions."""
    texts = []
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            texts.append(data.error.to_string() if data.error else "")
            if data.user_failure_data is not None:
                texts.append(data.user_failure_data.description or "")
    return "\n".join(texts)


def new_chain(tmp_path: Path, instance: dg.DagsterInstance) -> Chain:
    """A world with 24 training and 12 validation examples already "materialized"."""
    files_dir = tmp_path / "files"
    files_dir.mkdir()
    world = Chain(instance=instance, backend_dir=tmp_path / "backend", files_dir=files_dir,
                  tuning=TuningSettings(n_epochs=2))
    world.write_and_report("training", 24)
    world.write_and_report("validation", 12, start=1000)
    return world


@pytest.fixture()
def chain(tmp_path: Path) -> Chain:
    return new_chain(tmp_path, dg.DagsterInstance.ephemeral())


# ---------------------------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------------------------


def test_fingerprint_changes_with_every_input_and_ignores_dict_order() -> None:
    method = TuningSettings().method()
    base = training_fingerprint("a" * 64, "b" * 64, "gpt-4o-mini-2024-07-18", method, "goodreads", 42)
    reordered = json.loads(json.dumps(method))
    reordered["supervised"]["hyperparameters"] = dict(reversed(list(method["supervised"]["hyperparameters"].items())))
    assert training_fingerprint("a" * 64, "b" * 64, "gpt-4o-mini-2024-07-18", reordered, "goodreads", 42) == base
    variants = [
        ("c" * 64, "b" * 64, "gpt-4o-mini-2024-07-18", method, "goodreads", 42),
        ("a" * 64, "c" * 64, "gpt-4o-mini-2024-07-18", method, "goodreads", 42),
        ("a" * 64, "b" * 64, "gpt-4.1-mini-2025-04-14", method, "goodreads", 42),
        ("a" * 64, "b" * 64, "gpt-4o-mini-2024-07-18", TuningSettings(n_epochs=3).method(), "goodreads", 42),
        ("a" * 64, "b" * 64, "gpt-4o-mini-2024-07-18", method, "other", 42),
        ("a" * 64, "b" * 64, "gpt-4o-mini-2024-07-18", method, "goodreads", 7),
    ]
    assert len({training_fingerprint(*args) for args in variants} | {base}) == len(variants) + 1
    metadata = job_metadata(base)
    assert all(len(k) <= 64 and len(v) <= 512 for k, v in metadata.items())


def test_poll_delay_is_jittered_and_never_sleeps_past_the_estimated_finish() -> None:
    delays = [next_poll_delay(10.0, None, now=0.0) for _ in range(200)]
    assert all(8.0 <= d <= 12.0 for d in delays) and len(set(delays)) > 1
    assert next_poll_delay(10.0, estimated_finish=103, now=100.0) <= 3.0
    assert next_poll_delay(10.0, estimated_finish=90, now=100.0) == pytest.approx(0.2)  # floor when overdue
    assert next_poll_delay(0.1, estimated_finish=90, now=100.0) <= 0.12  # a small interval is honoured


def test_latest_metadata_fails_clearly_for_an_unmaterialized_asset(chain: Chain) -> None:
    result = chain.materialize([fine_tuned_model], raise_on_error=False)
    assert not result.success
    assert "upload_training_file has never been materialized" in failure_text(result)


# ---------------------------------------------------------------------------------------------
# Uploads
# ---------------------------------------------------------------------------------------------


def test_second_upload_reuses_the_file_instead_of_uploading_again(chain: Chain) -> None:
    uploads = [upload_training_file, upload_validation_file]
    chain.materialize(uploads)
    first = latest_metadata_of(chain.instance, "upload_training_file")
    assert first["reused"] is False
    assert first["sha256"] == file_sha256(chain.files_dir / "training.jsonl")
    assert first["bytes"] == (chain.files_dir / "training.jsonl").stat().st_size
    files = chain.uploaded_files()
    assert len(files) == 2
    assert {f.filename for f in files} == {
        upload_filename(file_sha256(chain.files_dir / f"{kind}.jsonl"), kind) for kind in ("training", "validation")
    }

    chain.materialize(uploads)
    second = latest_metadata_of(chain.instance, "upload_training_file")
    assert second["reused"] is True
    assert second["file_id"] == first["file_id"]
    assert latest_metadata_of(chain.instance, "upload_validation_file")["reused"] is True
    assert len(chain.uploaded_files()) == 2


def test_upload_refuses_a_file_changed_after_it_was_checked(chain: Chain) -> None:
    training = chain.files_dir / "training.jsonl"
    training.write_text(training.read_text() + training.read_text().splitlines()[0] + "\n")
    result = chain.materialize([upload_training_file], raise_on_error=False)
    assert not result.success
    text = failure_text(result)
    assert "changed since it was materialized" in text and str(training.resolve()) in text
    assert chain.uploaded_files() == []


def test_a_same_named_file_with_other_content_is_not_reused(chain: Chain) -> None:
    """Reuse is confirmed on content, not trusted on the name alone."""
    training = chain.files_dir / "training.jsonl"
    sha = file_sha256(training)
    impostor = training.read_bytes().replace(b"Book 1", b"Book X")  # same size, other content
    chain.client().files.create(file=(upload_filename(sha, "training"), impostor), purpose="fine-tune")
    chain.materialize([upload_training_file])
    metadata = latest_metadata_of(chain.instance, "upload_training_file")
    assert metadata["reused"] is False
    assert len(chain.uploaded_files()) == 2


def test_api_errors_fail_clearly_without_the_key(chain: Chain) -> None:
    wrong_key = "sk-test-wrong-key-0123456789"
    client = local_client(str(chain.backend_dir), server_api_key="the-right-key", api_key=wrong_key, max_retries=0)
    training = chain.files_dir / "training.jsonl"
    with pytest.raises(dg.Failure) as failure:
        upload_or_reuse(client, training, file_sha256(training), "training")
    description = failure.value.description or ""
    assert "HTTP 401" in description and training.name in description
    assert wrong_key not in description and wrong_key not in str(failure.value)


# ---------------------------------------------------------------------------------------------
# fine_tuned_model
# ---------------------------------------------------------------------------------------------


def test_full_run_then_unchanged_rerun_creates_no_job(chain: Chain) -> None:
    chain.materialize()
    first = chain.model_metadata()
    job = chain.client().fine_tuning.jobs.retrieve(first["job_id"])
    assert job.status == "succeeded"
    assert first["model_name"] == job.fine_tuned_model and first["model_name"].startswith("ft:")
    assert first["reused"] is False
    assert isinstance(first["trained_tokens"], int) and first["trained_tokens"] == job.trained_tokens > 0
    assert first["base_model"] == chain.tuning.base_model
    assert first["n_epochs"] == 2 and isinstance(first["batch_size"], int)
    assert first["result_file_id"] == job.result_files[0]
    assert first["final_train_loss"] > 0 and "final_valid_loss" in first
    assert first["duration_seconds"] >= 0
    assert (job.metadata or {})[FINGERPRINT_KEY] == first["fingerprint"]
    assert job.method is not None and job.method.type == "supervised"

    chain.materialize()
    second = chain.model_metadata()
    assert second["reused"] is True
    assert (second["job_id"], second["model_name"]) == (first["job_id"], first["model_name"])
    assert len(chain.jobs()) == 1
    assert len(chain.uploaded_files()) == 2


def test_changed_training_content_trains_a_new_model(chain: Chain) -> None:
    chain.materialize()
    first = chain.model_metadata()
    chain.write_and_report("training", 28)
    chain.materialize()
    second = chain.model_metadata()
    assert second["reused"] is False
    assert second["job_id"] != first["job_id"] and second["fingerprint"] != first["fingerprint"]
    assert len(chain.jobs()) == 2
    assert len(chain.uploaded_files()) == 3  # the validation file was reused


def test_force_retrain_creates_a_new_job_despite_a_succeeded_one(chain: Chain) -> None:
    chain.materialize()
    first = chain.model_metadata()
    chain.materialize(force_retrain=True)
    second = chain.model_metadata()
    assert second["reused"] is False and second["job_id"] != first["job_id"]
    assert second["fingerprint"] == first["fingerprint"]
    assert len(chain.jobs()) == 2


def _fingerprint_of_current_uploads(chain: Chain) -> tuple[str, str, str]:
    training = latest_metadata_of(chain.instance, "upload_training_file")
    validation = latest_metadata_of(chain.instance, "upload_validation_file")
    fp = training_fingerprint(
        training["sha256"], validation["sha256"], chain.tuning.base_model,
        chain.tuning.method(), chain.tuning.suffix, chain.tuning.seed,
    )
    return fp, training["file_id"], validation["file_id"]


def test_an_in_flight_job_with_the_same_fingerprint_is_attached_to(chain: Chain) -> None:
    """What a crash mid-poll leaves behind: a running job nobody polls. The next run picks it up."""
    chain.materialize([upload_training_file, upload_validation_file])
    fp, training_id, validation_id = _fingerprint_of_current_uploads(chain)
    orphan = chain.client().fine_tuning.jobs.create(
        model=chain.tuning.base_model, training_file=training_id, validation_file=validation_id,
        method=chain.tuning.method(), suffix=chain.tuning.suffix, seed=chain.tuning.seed,
        metadata=job_metadata(fp),
    )
    assert orphan.status not in ("succeeded", "failed", "cancelled")

    chain.materialize()
    metadata = chain.model_metadata()
    assert metadata["job_id"] == orphan.id
    assert metadata["reused"] is True
    assert len(chain.jobs()) == 1


def test_a_failed_job_with_the_same_fingerprint_is_reported_and_replaced(chain: Chain) -> None:
    chain.materialize([upload_training_file, upload_validation_file])
    fp, _, validation_id = _fingerprint_of_current_uploads(chain)
    client = chain.client()
    broken = write_examples(chain.files_dir / "broken.jsonl", 3)
    broken_id = client.files.create(file=broken.open("rb"), purpose="fine-tune").id
    failed = client.fine_tuning.jobs.create(
        model=chain.tuning.base_model, training_file=broken_id, validation_file=validation_id,
        method=chain.tuning.method(), metadata=job_metadata(fp),
    )
    while client.fine_tuning.jobs.retrieve(failed.id).status not in ("failed", "succeeded", "cancelled"):
        time.sleep(0.1)
    assert client.fine_tuning.jobs.retrieve(failed.id).status == "failed"

    chain.materialize()
    metadata = chain.model_metadata()
    assert metadata["job_id"] != failed.id and metadata["reused"] is False
    assert [old["job_id"] for old in metadata["replaced_jobs"]] == [failed.id]
    assert len(chain.jobs()) == 2


def test_provider_failure_surfaces_its_message_and_records_no_model(chain: Chain) -> None:
    # Bypasses the files checks: a training file with too few examples reaches the provider.
    chain.write_and_report("training", 3)
    result = chain.materialize(raise_on_error=False)
    assert not result.success
    [job] = chain.jobs()
    assert job.status == "failed" and job.error is not None
    text = failure_text(result)
    assert job.error.message in text and job.error.code in text and job.id in text
    assert chain.instance.get_latest_materialization_event(dg.AssetKey("fine_tuned_model")) is None


def test_choose_job_prefers_succeeded_then_in_flight() -> None:
    from openai.types.fine_tuning import FineTuningJob

    def job(job_id: str, status: str, created: int) -> FineTuningJob:
        return FineTuningJob.model_construct(
            id=job_id, status=status, created_at=created,
            fine_tuned_model=f"ft:{job_id}" if status == "succeeded" else None, error=None,
        )

    jobs = [job("c", "running", 3), job("b", "succeeded", 2), job("a", "failed", 1)]
    assert choose_job(jobs, force_retrain=False).job.id == "b"
    assert choose_job(jobs, force_retrain=True).job.id == "c"
    only_failed = choose_job([job("a", "failed", 1), job("z", "cancelled", 0)], force_retrain=False)
    assert only_failed.job is None and [j.id for j in only_failed.replaced] == ["a", "z"]


class RecordingLog:
    """A logger that keeps what it was told (stands in for context.log in direct calls)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, message: str) -> None:
        self.lines.append(("info", message))

    def warning(self, message: str) -> None:
        self.lines.append(("warning", message))

    def error(self, message: str) -> None:
        self.lines.append(("error", message))


def _create_job(chain: Chain, client: openai.OpenAI) -> str:
    training = client.files.create(file=(chain.files_dir / "training.jsonl").open("rb"), purpose="fine-tune")
    return client.fine_tuning.jobs.create(
        model=chain.tuning.base_model, training_file=training.id, method=chain.tuning.method()
    ).id


def test_poll_loop_streams_each_event_once_oldest_first(chain: Chain) -> None:
    client = chain.client(job_seconds=1.0)
    job_id = _create_job(chain, client)
    log = RecordingLog()
    job, _ = wait_for_job(client, job_id, log, poll_interval_seconds=0.1)
    assert job.status == "succeeded"
    every_event = list(reversed(list(client.fine_tuning.jobs.list_events(job_id))))
    logged = [
        message for _, message in log.lines
        if message.startswith(f"[{job_id}] ") and not message.endswith("earlier metric steps not shown)")
    ]
    expected_messages = [f"[{job_id}] {event.message}" for event in every_event if event.type != "metrics"]
    assert [line for line in logged if line in expected_messages] == expected_messages
    assert len(logged) == len(set(logged))  # nothing logged twice
    metric_lines = [f"[{job_id}] {event.message}" for event in every_event if event.type == "metrics"]
    shown = [line for line in logged if line in metric_lines]
    assert shown and shown == sorted(shown, key=metric_lines.index)  # oldest first
    progress_lines = [message for _, message in log.lines if message.startswith(f"Job {job_id}: ")]
    assert progress_lines[-1].startswith(f"Job {job_id}: succeeded")


def test_poll_timeout_fails_but_leaves_the_job_running(chain: Chain) -> None:
    client = chain.client(job_seconds=60.0)
    job_id = _create_job(chain, client)
    with pytest.raises(dg.Failure, match="keeps running at the provider"):
        wait_for_job(client, job_id, RecordingLog(), poll_interval_seconds=0.1, timeout_seconds=0.3)
    assert client.fine_tuning.jobs.retrieve(job_id).status not in ("succeeded", "failed", "cancelled")


def test_an_interrupt_inside_the_poll_cancels_the_job(chain: Chain) -> None:
    client = chain.client(job_seconds=60.0)
    job_id = _create_job(chain, client)

    def interrupted_sleep(_: float) -> None:
        raise dg.DagsterExecutionInterruptedError()

    with pytest.raises(dg.DagsterExecutionInterruptedError):
        wait_for_job(client, job_id, RecordingLog(), poll_interval_seconds=0.1, sleep=interrupted_sleep)
    assert client.fine_tuning.jobs.retrieve(job_id).status == "cancelled"


# ---------------------------------------------------------------------------------------------
# Termination and crashes: the real `dagster job execute` in a child process
# ---------------------------------------------------------------------------------------------

DEFS_FILE = """
import os
import dagster as dg
from fine_tuning.local_openai.resource import LocalOpenAIResource
from fine_tuning.defs.fine_tuning.fine_tuned_model import fine_tuned_model
from fine_tuning.defs.fine_tuning.uploads import upload_training_file, upload_validation_file
from fine_tuning.defs.resources import TuningSettings

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
def cli_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Chain:
    """A chain whose instance lives in a DAGSTER_HOME that child `dagster` processes share."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    (tmp_path / "chain_defs.py").write_text(textwrap.dedent(DEFS_FILE))
    return new_chain(tmp_path, dg.DagsterInstance.get())


def child_env(chain: Chain, job_seconds: float) -> dict[str, str]:
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


def stop(process: subprocess.Popen[bytes]) -> None:
    """End a child process this test started: SIGINT first, SIGKILL if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture()
def code_server(tmp_path: Path, cli_chain: Chain) -> Iterator[Path]:
    """A `dagster code-server` for the chain; yields a workspace.yaml pointing at it."""
    socket_dir = Path(tempfile.mkdtemp(prefix="chain-"))  # unix socket paths must stay short
    socket_path = socket_dir / "code.sock"
    server = subprocess.Popen(
        [sys.executable, "-m", "dagster", "code-server", "start",
         "-f", str(tmp_path / "chain_defs.py"), "--socket", str(socket_path)],
        cwd=tmp_path, env=child_env(cli_chain, job_seconds=120),  # far longer than the test runs
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + WAIT_LIMIT_SECONDS
        while not socket_path.exists():
            assert server.poll() is None, "the code server exited at startup"
            assert time.monotonic() < deadline, "the code server never opened its socket"
            time.sleep(0.1)
        workspace = tmp_path / "workspace.yaml"
        workspace.write_text(
            f"load_from:\n  - grpc_server:\n      socket: {socket_path}\n      location_name: chain\n"
        )
        yield workspace
    finally:
        stop(server)
        shutil.rmtree(socket_dir, ignore_errors=True)


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


# ---------------------------------------------------------------------------------------------
# Creating a job never pays twice, even when the provider's answer is lost
# ---------------------------------------------------------------------------------------------


class _LosesFirstCreateAnswer(LocalTransport):
    """The provider accepts the first job-create request, but its answer is lost (a 502)."""

    def __init__(self, router: Router) -> None:
        super().__init__(router)
        self.creates = 0

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = super().handle_request(request)
        if request.method == "POST" and request.url.path.endswith("/fine_tuning/jobs"):
            self.creates += 1
            if self.creates == 1:
                return httpx2.Response(502, json={"error": {"message": "bad gateway", "type": "server_error",
                                                            "param": None, "code": None}}, request=request)
        return response


def test_a_lost_create_answer_is_found_by_fingerprint_not_created_again(chain: Chain) -> None:
    transport = _LosesFirstCreateAnswer(Router(str(chain.backend_dir), job_seconds=1.0))
    client = openai.OpenAI(api_key="local", base_url=LOCAL_BASE_URL,
                           http_client=httpx2.Client(transport=transport, base_url=LOCAL_BASE_URL))
    training, _ = upload_or_reuse(client, chain.files_dir / "training.jsonl",
                                  file_sha256(chain.files_dir / "training.jsonl"), "training")
    fingerprint = "f" * 64
    kwargs = {"model": chain.tuning.base_model, "training_file": training.id,
              "metadata": job_metadata(fingerprint), "method": chain.tuning.method()}
    sleeps: list[float] = []

    job, found_existing = create_job_once(client, fingerprint, kwargs, logging.getLogger("test"), sleep=sleeps.append)

    assert transport.creates == 1, "a blind retry of the create request would have started a second job"
    assert found_existing is True
    assert [j.id for j in chain.jobs()] == [job.id]
    assert len(sleeps) == 1


def test_racing_runs_keep_the_oldest_job_and_cancel_their_own(chain: Chain) -> None:
    client = chain.client(job_seconds=30)
    training, _ = upload_or_reuse(client, chain.files_dir / "training.jsonl",
                                  file_sha256(chain.files_dir / "training.jsonl"), "training")
    fingerprint = "e" * 64
    kwargs = {"model": chain.tuning.base_model, "training_file": training.id, "metadata": job_metadata(fingerprint)}
    first = client.fine_tuning.jobs.create(**kwargs)
    second = client.fine_tuning.jobs.create(**kwargs)
    keeper_id = min((first, second), key=lambda job: (job.created_at, job.id)).id
    loser = second if keeper_id == first.id else first
    log = logging.getLogger("test")

    followed, someone_elses = settle_concurrent_jobs(client, fingerprint, loser, log)
    assert (followed.id, someone_elses) == (keeper_id, True)
    assert client.fine_tuning.jobs.retrieve(loser.id).status == "cancelled"

    kept, someone_elses = settle_concurrent_jobs(client, fingerprint, followed, log)
    assert (kept.id, someone_elses) == (keeper_id, False)
    assert client.fine_tuning.jobs.retrieve(keeper_id).status != "cancelled"
