"""The resumable `fine_tuned_model` asset and its provider-job logic against the real local backend.

Real Dagster execution (`dg.materialize`), the real `openai` client, the local backend
in-process. Upstream uploads run for real; the files before them are reported on the
instance with the metadata the files step records (`path`, `sha256`, `examples`).
"""

import json
import logging

import dagster as dg
import httpx2
import openai
import pytest

from fine_tuning.core.checksums import file_sha256
from fine_tuning.core.job_polling import next_poll_delay
from fine_tuning.core.provider_jobs import (
    METADATA_FINGERPRINT_KEY,
    choose_job,
    create_job_once,
    job_metadata,
    settle_concurrent_jobs,
    training_fingerprint,
)
from fine_tuning.lib.task.fine_tuned_model import wait_for_job_in_run as wait_for_job
from fine_tuning.lib.task.tuning import TuningSettings
from fine_tuning.lib.task.uploads import upload_or_reuse
from local_openai.http import Router
from local_openai.transport import LOCAL_BASE_URL, LocalTransport

from tests.support.chain import Chain, write_examples
from tests.support.dagster_runs import failure_text, latest_metadata_of
from tests.support.goodreads_task import fine_tuned_model, upload_training_file, upload_validation_file
from tests.support.local_openai import wait_for
from tests.support.logs import RecordingLog

# ---------------------------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------------------------


def test_fingerprint_changes_with_every_input_and_ignores_dict_order() -> None:
    method = TuningSettings().job_method()
    base = training_fingerprint("a" * 64, "b" * 64, "gpt-4o-mini-2024-07-18", method, "goodreads", 42)
    reordered = json.loads(json.dumps(method))
    reordered["supervised"]["hyperparameters"] = dict(reversed(list(method["supervised"]["hyperparameters"].items())))
    assert training_fingerprint("a" * 64, "b" * 64, "gpt-4o-mini-2024-07-18", reordered, "goodreads", 42) == base
    variants = [
        ("c" * 64, "b" * 64, "gpt-4o-mini-2024-07-18", method, "goodreads", 42),
        ("a" * 64, "c" * 64, "gpt-4o-mini-2024-07-18", method, "goodreads", 42),
        ("a" * 64, "b" * 64, "gpt-4.1-mini-2025-04-14", method, "goodreads", 42),
        ("a" * 64, "b" * 64, "gpt-4o-mini-2024-07-18", TuningSettings(n_epochs=3).job_method(), "goodreads", 42),
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
    assert next_poll_delay(10.0, estimated_finish=100, now=100.0) == pytest.approx(0.2)  # floor at the estimate
    assert next_poll_delay(10.0, estimated_finish=100, now=100.4) == pytest.approx(0.4)  # then backs off
    assert 8.0 <= next_poll_delay(10.0, estimated_finish=90, now=100.0) <= 10.0  # long overdue: the interval
    assert next_poll_delay(0.1, estimated_finish=90, now=100.0) <= 0.12  # a small interval is honoured


def test_latest_metadata_fails_clearly_for_an_unmaterialized_asset(chain: Chain) -> None:
    result = chain.materialize([fine_tuned_model], raise_on_error=False)
    assert not result.success
    assert "upload_training_file has never been materialized" in failure_text(result)


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
    assert first["hyperparameters"]["n_epochs"] == 2 and isinstance(first["hyperparameters"]["batch_size"], int)
    assert "n_epochs" not in first  # in the hyperparameters entry only, not a chart of its own
    assert first["result_file_id"] == job.result_files[0]
    assert first["final_train_loss"] > 0 and "final_valid_loss" in first
    assert first["duration_seconds"] >= 0
    assert (job.metadata or {})[METADATA_FINGERPRINT_KEY] == first["fingerprint"]
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
        chain.tuning.job_method(), chain.tuning.suffix, chain.tuning.seed,
    )
    return fp, training["file_id"], validation["file_id"]


def test_an_in_flight_job_with_the_same_fingerprint_is_attached_to(chain: Chain) -> None:
    """What a crash mid-poll leaves behind: a running job nobody polls. The next run picks it up."""
    chain.materialize([upload_training_file, upload_validation_file])
    fp, training_id, validation_id = _fingerprint_of_current_uploads(chain)
    orphan = chain.client().fine_tuning.jobs.create(
        model=chain.tuning.base_model, training_file=training_id, validation_file=validation_id,
        method=chain.tuning.job_method(), suffix=chain.tuning.suffix, seed=chain.tuning.seed,
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
        method=chain.tuning.job_method(), metadata=job_metadata(fp),
    )
    wait_for(client, failed.id)
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


def _create_job(chain: Chain, client: openai.OpenAI) -> str:
    training = client.files.create(file=(chain.files_dir / "training.jsonl").open("rb"), purpose="fine-tune")
    return client.fine_tuning.jobs.create(
        model=chain.tuning.base_model, training_file=training.id, method=chain.tuning.job_method()
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
              "metadata": job_metadata(fingerprint), "method": chain.tuning.job_method()}
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


def test_a_racer_keeps_its_older_job_while_the_listing_does_not_show_it_yet(chain: Chain) -> None:
    from openai.types.fine_tuning import FineTuningJob

    client = chain.client(job_seconds=30)
    training, _ = upload_or_reuse(client, chain.files_dir / "training.jsonl",
                                  file_sha256(chain.files_dir / "training.jsonl"), "training")
    fingerprint = "c" * 64
    newer = client.fine_tuning.jobs.create(model=chain.tuning.base_model, training_file=training.id,
                                           metadata=job_metadata(fingerprint))
    # Ours was created a second earlier, and an eventually consistent listing does not show it yet.
    ours = FineTuningJob.model_construct(id="ftjob-ours-not-listed-yet", status="validating_files",
                                         created_at=newer.created_at - 1, metadata=job_metadata(fingerprint))

    kept, someone_elses = settle_concurrent_jobs(client, fingerprint, ours, logging.getLogger("test"))
    assert (kept.id, someone_elses) == (ours.id, False)  # the oldest job is kept, however late it is listed
    assert client.fine_tuning.jobs.retrieve(newer.id).status != "cancelled"  # its own creator cancels it
