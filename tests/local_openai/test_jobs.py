"""Fine-tuning jobs of the local backend, through the official client, in-process and over HTTP.

Lifecycle tests step a fake clock so every state is observed deterministically; the rest use
real time with a tiny job_seconds.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import openai
import pytest
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

from fine_tuning.core.graders import exact_match_grader
from fine_tuning.core.provider_jobs import result_file_text
from local_openai import learner

from tests.support.local_openai import BASE_MODEL, Backend, Clock, jsonl, train_toy_model, upload, validated, wait_for
from tests.support.toy_books import toy_examples

JOB_SECONDS = 10.0


@pytest.fixture()
def backend_options(clock: Clock) -> dict[str, Any]:
    """The `client` of these tests: JOB_SECONDS per job, on the clock the test steps."""
    return {"job_seconds": JOB_SECONDS, "clock": clock}


def retrieve_validated(client: openai.OpenAI, job_id: str) -> FineTuningJob:
    return validated(FineTuningJob, client.fine_tuning.jobs.with_raw_response.retrieve(job_id).http_response)


def test_lifecycle_step_by_step(client: openai.OpenAI, clock: Clock) -> None:
    examples = toy_examples(60)
    training = upload(client, jsonl(examples))
    validation = upload(client, jsonl(toy_examples(15, seed=5)), "valid.jsonl")
    created = client.fine_tuning.jobs.create(
        model=BASE_MODEL, training_file=training, validation_file=validation, suffix="toy", seed=3,
        metadata={"pipeline": "goodreads"},
    )
    t0 = clock.now
    assert created.status == "validating_files" and created.created_at == int(t0)
    assert created.hyperparameters.n_epochs == "auto" and created.fine_tuned_model is None
    assert created.organization_id and created.seed == 3 and created.metadata == {"pipeline": "goodreads"}

    clock.now = t0 + 0.15 * JOB_SECONDS
    queued = retrieve_validated(client, created.id)
    assert queued.status == "queued" and queued.estimated_finish is None
    # 60 examples: 3 epochs (60 * 3 is within [100, 25000]), batch ceil(0.12) = 1, multiplier 1.0.
    resolved = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.0}
    assert queued.hyperparameters.model_dump() == resolved
    assert queued.method.supervised.hyperparameters.model_dump() == resolved

    clock.now = t0 + 0.5 * JOB_SECONDS
    running = retrieve_validated(client, created.id)
    assert running.status == "running" and running.finished_at is None and running.trained_tokens is None
    assert running.estimated_finish == math.ceil(t0 + JOB_SECONDS)
    visible = list(client.fine_tuning.jobs.list_events(created.id, limit=1000))
    metrics = [e for e in visible if e.type == "metrics"]
    assert 0 < len(metrics) < 180  # the metrics appear as the run progresses
    assert not client.models.list().data[-1].id.startswith("ft:")  # not published yet
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=f"ft:{BASE_MODEL}:local:toy:{created.id[6:]}", messages=[
            {"role": "user", "content": "hi"}])

    clock.now = t0 + JOB_SECONDS
    done = retrieve_validated(client, created.id)
    assert done.status == "succeeded" and done.error is None and done.estimated_finish is None
    assert done.finished_at == int(t0 + JOB_SECONDS)
    assert done.fine_tuned_model == f"ft:{BASE_MODEL}:local:toy:{created.id.removeprefix('ftjob-')}"
    expected_tokens = 3 * sum(learner.count_message_tokens(e["messages"]) for e in examples)
    assert done.trained_tokens == expected_tokens
    assert client.models.retrieve(done.fine_tuned_model).id == done.fine_tuned_model
    assert done.fine_tuned_model in [m.id for m in client.models.list()]

    # Result file: per-step metrics with validation columns.
    (result_id,) = done.result_files
    assert client.files.retrieve(result_id).purpose == "fine-tune-results"
    rows = list(csv.DictReader(io.StringIO(result_file_text(client.files.content(result_id).content))))
    assert list(rows[0]) == ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy"]
    assert [int(r["step"]) for r in rows] == list(range(1, 181))
    assert all(r["valid_loss"] and 0 <= float(r["valid_mean_token_accuracy"]) <= 1 for r in rows)

    # Events: newest first, paged with `after`, both kinds, every one a valid FineTuningJobEvent.
    raw = client.fine_tuning.jobs.with_raw_response.list_events(created.id, limit=7).http_response.json()
    assert raw["has_more"] is True and len(raw["data"]) == 7
    for item in raw["data"]:
        FineTuningJobEvent.model_validate(item)
    events = list(client.fine_tuning.jobs.list_events(created.id, limit=7))
    assert events[0].message == "The job has successfully completed"
    assert events[-1].message.startswith("Created fine-tuning job")
    assert [e.created_at for e in events] == sorted((e.created_at for e in events), reverse=True)
    assert len({e.id for e in events}) == len(events)
    step_events = [e for e in events if e.type == "metrics"]
    assert len(step_events) == 180 and step_events[0].data["step"] == 180
    assert "valid_loss" in step_events[0].data

    # Checkpoints: the last three epochs, newest first, servable.
    raw_ckpts = client.fine_tuning.jobs.checkpoints.with_raw_response.list(created.id).http_response.json()
    checkpoints = [FineTuningJobCheckpoint.model_validate(c) for c in raw_ckpts["data"]]
    assert [c.step_number for c in checkpoints] == [180, 120, 60]
    assert checkpoints[0].fine_tuned_model_checkpoint == f"{done.fine_tuned_model}:ckpt-step-180"
    assert checkpoints[0].metrics.full_valid_loss is not None
    reply = client.chat.completions.create(
        model=checkpoints[1].fine_tuned_model_checkpoint, messages=examples[0]["messages"][:2]
    )
    assert reply.choices[0].message.content.startswith('{"category":')


def test_explicit_hyperparameters_are_honoured_via_method_and_legacy_field(backend: Backend) -> None:
    client = backend.client(job_seconds=0.2)
    method = {"type": "supervised", "supervised": {"hyperparameters": {
        "n_epochs": 2, "batch_size": 5, "learning_rate_multiplier": 0.5}}}
    for kwargs in ({"method": method}, {"hyperparameters": {"n_epochs": 2, "batch_size": 5,
                                                            "learning_rate_multiplier": 0.5}}):
        job = train_toy_model(client, n=60, **kwargs)
        assert job.status == "succeeded", job.error
        assert job.hyperparameters.model_dump() == {"n_epochs": 2, "batch_size": 5, "learning_rate_multiplier": 0.5}
        rows = result_file_text(client.files.content(job.result_files[0]).content).strip().splitlines()
        assert len(rows) - 1 == 2 * math.ceil(60 / 5)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"suffix": "x" * 65}, "suffix"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"metadata": {"k" * 65: "v"}}, "metadata"),
        ({"metadata": {"k": "v" * 513}}, "metadata.k"),
        ({"training_file": "file-doesnotexist"}, "training_file"),
        ({"validation_file": "file-doesnotexist"}, "validation_file"),
        ({"model": "gpt-4-turbo"}, "model"),
        ({"model": "ft:gpt-4o-mini-2024-07-18:local:x:nope"}, "model"),
        ({"method": {"type": "unsupervised"}}, "method.type"),
        ({"model": "gpt-3.5-turbo-0125", "method": {"type": "dpo", "dpo": {}}}, "method.type"),
        ({"method": {"type": "reinforcement", "reinforcement": {"grader": exact_match_grader()}}}, "method.type"),
        ({"method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 3}}}}, "method.dpo.hyperparameters.beta"),
        ({"method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0}}}}, "method.dpo.hyperparameters.beta"),
        ({"method": {"type": "dpo", "dpo": {"hyperparameters": {"eval_samples": 2}}}}, "method.dpo.hyperparameters"),
        ({"model": "o4-mini", "method": {"type": "reinforcement", "reinforcement": {}}}, "method.reinforcement.grader"),
        ({"model": "o4-mini", "method": {"type": "reinforcement", "reinforcement": {
            "grader": {**exact_match_grader(), "operation": "contains"}}}}, "method.reinforcement.grader.operation"),
        ({"model": "o4-mini", "method": {"type": "reinforcement", "reinforcement": {"grader": {
            "type": "score_model", "name": "judge", "model": "gpt-4o-mini", "input": [
                {"role": "user", "content": "Score {{sample.output_text}}"}]}}}}, "method.reinforcement.grader"),
        ({"model": "o4-mini", "method": {"type": "reinforcement", "reinforcement": {
            "grader": exact_match_grader(), "hyperparameters": {"reasoning_effort": "high"}}}},
         "method.reinforcement.hyperparameters.reasoning_effort"),
        ({"model": "o4-mini", "method": {"type": "reinforcement", "reinforcement": {
            "grader": exact_match_grader(), "hyperparameters": {"eval_samples": 0}}}},
         "method.reinforcement.hyperparameters.eval_samples"),
        # The API sets no maximum; the local learner cannot draw this many replies per prompt: refused, not run.
        ({"model": "o4-mini", "method": {"type": "reinforcement", "reinforcement": {
            "grader": exact_match_grader(), "hyperparameters": {"eval_samples": 1001}}}},
         "method.reinforcement.hyperparameters.eval_samples"),
        ({"model": "o4-mini", "method": {"type": "reinforcement", "reinforcement": {
            "grader": exact_match_grader(), "hyperparameters": {"compute_multiplier": 0.00001}}}},
         "method.reinforcement.hyperparameters.compute_multiplier"),
        ({"method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 0}}}},
         "method.supervised.hyperparameters.n_epochs"),
        ({"hyperparameters": {"batch_size": "big"}}, "hyperparameters.batch_size"),
    ],
)
def test_invalid_create_requests_are_400_with_param(client: openai.OpenAI, kwargs: dict, param: str) -> None:
    args = {"model": BASE_MODEL, "training_file": upload(client, jsonl(toy_examples(12))), **kwargs}
    with pytest.raises(openai.BadRequestError) as error:
        client.fine_tuning.jobs.create(**args)
    assert error.value.status_code == 400
    assert error.value.body["param"] == param
    assert error.value.body["message"]
    assert client.fine_tuning.jobs.list().data == []  # nothing was created


def test_limits_themselves_are_accepted(client: openai.OpenAI) -> None:
    job = client.fine_tuning.jobs.create(
        model=BASE_MODEL, training_file=upload(client, jsonl(toy_examples(12))), suffix="s" * 64,
        metadata={f"{i:02d}" + "k" * 62: "v" * 512 for i in range(16)},
    )
    assert len(job.metadata) == 16


def test_wrong_purpose_file_is_rejected(client: openai.OpenAI) -> None:
    other = client.files.create(file=("notes.txt", b"hello"), purpose="user_data").id
    with pytest.raises(openai.BadRequestError) as error:
        client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=other)
    assert error.value.body["param"] == "training_file"


@pytest.mark.parametrize(
    ("content", "code", "needle"),
    [
        (jsonl(toy_examples(12))[:-1] + b"\n{not json\n", "invalid_training_file", "line 13"),
        (jsonl(toy_examples(9)), "invalid_n_examples", "at least 10"),
        (jsonl([{"messages": e["messages"][:2]} for e in toy_examples(12)]), "invalid_training_file",
         "no assistant message"),
        (jsonl([{"prompt": "a", "completion": "b"}] * 12), "invalid_training_file", "'messages'"),
        (jsonl([{"messages": [{"role": "robot", "content": "x"}]}] * 12), "invalid_training_file", "role"),
        (b"\xff\xfe" * 10, "invalid_training_file", "UTF-8"),
        (jsonl(toy_examples(12)) + b"[" * 100_000 + b"]" * 100_000 + b"\n", "invalid_training_file",
         "nested too deeply"),
    ],
)
def test_invalid_training_data_fails_the_job(
    client: openai.OpenAI, clock: Clock, content: bytes, code: str, needle: str
) -> None:
    job = client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=upload(client, content))
    clock.now += JOB_SECONDS
    failed = retrieve_validated(client, job.id)
    assert failed.status == "failed" and failed.fine_tuned_model is None
    assert failed.error.code == code and failed.error.param == "training_file"
    assert needle in failed.error.message
    assert failed.finished_at is not None
    assert list(client.fine_tuning.jobs.list_events(job.id))[0].level == "error"


def test_invalid_validation_file_fails_the_job(client: openai.OpenAI, clock: Clock) -> None:
    job = client.fine_tuning.jobs.create(
        model=BASE_MODEL, training_file=upload(client, jsonl(toy_examples(12))),
        validation_file=upload(client, b"{broken\n", "valid.jsonl"),
    )
    clock.now += JOB_SECONDS
    failed = client.fine_tuning.jobs.retrieve(job.id)
    assert failed.status == "failed"
    assert (failed.error.code, failed.error.param) == ("invalid_validation_file", "validation_file")


def test_cancel_before_and_during_running(client: openai.OpenAI, clock: Clock) -> None:
    training = upload(client, jsonl(toy_examples(30)))
    early = client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=training)
    cancelled = client.fine_tuning.jobs.cancel(early.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at == int(clock.now)
    clock.now += 2 * JOB_SECONDS
    assert client.fine_tuning.jobs.retrieve(early.id).status == "cancelled"  # time no longer moves it
    assert list(client.fine_tuning.jobs.list_events(early.id))[0].message == "Fine-tuning job cancelled"
    with pytest.raises(openai.BadRequestError) as again:
        client.fine_tuning.jobs.cancel(early.id)
    assert "already cancelled" in again.value.body["message"]

    mid = client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=training, suffix="mid")
    clock.now += 0.5 * JOB_SECONDS
    assert client.fine_tuning.jobs.retrieve(mid.id).status == "running"
    client.fine_tuning.jobs.cancel(mid.id)
    clock.now += 2 * JOB_SECONDS
    after = client.fine_tuning.jobs.retrieve(mid.id)
    assert after.status == "cancelled" and after.fine_tuned_model is None and after.result_files == []
    events = list(client.fine_tuning.jobs.list_events(mid.id, limit=1000))
    assert events[0].message == "Fine-tuning job cancelled"
    assert not any("successfully completed" in e.message for e in events)
    steps = [e.data["step"] for e in events if e.type == "metrics"]
    assert steps and max(steps) < 120  # later steps never happen (auto: 4 epochs x 30 examples)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model=f"ft:{BASE_MODEL}:local:mid:{mid.id.removeprefix('ftjob-')}",
            messages=[{"role": "user", "content": "x"}],
        )


def test_cancel_succeeded_job_is_400(backend: Backend) -> None:
    client = backend.client(job_seconds=0.2, max_retries=0)
    job = train_toy_model(client, n=12)
    with pytest.raises(openai.BadRequestError) as error:
        client.fine_tuning.jobs.cancel(job.id)
    assert "already succeeded" in error.value.body["message"]


def test_unknown_job_ids_are_404(client: openai.OpenAI) -> None:
    calls = [
        lambda: client.fine_tuning.jobs.retrieve("ftjob-doesnotexist"),
        lambda: client.fine_tuning.jobs.cancel("ftjob-doesnotexist"),
        lambda: client.fine_tuning.jobs.list_events("ftjob-doesnotexist"),
        lambda: client.fine_tuning.jobs.checkpoints.list("ftjob-doesnotexist"),
        lambda: client.models.retrieve("ft:gpt-4o-mini-2024-07-18:local:x:doesnotexist"),
        lambda: client.models.retrieve("no-such-model"),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError) as error:
            call()
        assert set(error.value.body) == {"message", "type", "param", "code"}
    for raw in ("/fine_tuning/jobs/%2E%2E%2Fjobs", "/fine_tuning/jobs/ftjob-x.json/events", "/nowhere"):
        assert client._client.get(raw).status_code == 404


def test_list_pagination_and_metadata_filter(client: openai.OpenAI) -> None:
    training = upload(client, jsonl(toy_examples(12)))
    jobs = []
    for i in range(6):
        metadata = {"run": f"r{i % 2}", "index": str(i)} if i < 5 else None
        jobs.append(client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=training, metadata=metadata).id)
    newest_first = list(reversed(jobs))
    page = client.fine_tuning.jobs.list(limit=4)
    assert [j.id for j in page.data] == newest_first[:4] and page.has_more
    assert [j.id for j in client.fine_tuning.jobs.list(limit=4, after=newest_first[3]).data] == newest_first[4:]
    assert [j.id for j in client.fine_tuning.jobs.list(limit=2)] == newest_first  # auto-pagination
    assert [j.id for j in client.fine_tuning.jobs.list(metadata={"run": "r0"})] == [jobs[4], jobs[2], jobs[0]]
    assert [j.id for j in client.fine_tuning.jobs.list(metadata={"run": "r1", "index": "3"})] == [jobs[3]]
    assert client.fine_tuning.jobs.list(metadata={"run": "r9"}).data == []
    assert client.fine_tuning.jobs.list(metadata={"run": ""}).data == []
    raw = client._client.get("/fine_tuning/jobs", params={"metadata": "null"}).json()
    assert [j["id"] for j in raw["data"]] == [jobs[5]]
    for item in client.fine_tuning.jobs.with_raw_response.list().http_response.json()["data"]:
        FineTuningJob.model_validate(item)
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.list(limit=0)


def test_state_survives_a_restart(backend: Backend) -> None:
    first = backend.client(job_seconds=0.3)
    training = upload(first, jsonl(toy_examples(20)))
    job = first.fine_tuning.jobs.create(model=BASE_MODEL, training_file=training, suffix="restart", seed=1)
    first.close()
    second = backend.client(job_seconds=0.3)  # a fresh "process" on the same store
    assert second.files.retrieve(training).bytes == len(jsonl(toy_examples(20)))
    finished = wait_for(second, job.id)
    assert finished.status == "succeeded"
    third = backend.client(job_seconds=5.0)  # job_seconds is per job, fixed at creation
    again = third.fine_tuning.jobs.retrieve(job.id)
    assert again.model_dump() == finished.model_dump()
    prompt = toy_examples(1, seed=3)[0]["messages"][:2]
    answers = {
        c.chat.completions.create(model=finished.fine_tuned_model, messages=prompt).choices[0].message.content
        for c in (second, third)
    }
    assert len(answers) == 1


def test_a_deeply_nested_file_fails_its_job_and_leaves_the_store_usable(client: openai.OpenAI, clock: Clock) -> None:
    bad = upload(client, jsonl(toy_examples(12)) + b"[" * 100_000 + b"]" * 100_000 + b"\n")
    job = client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=bad)
    clock.now += JOB_SECONDS
    assert client.fine_tuning.jobs.retrieve(job.id).status == "failed"
    assert [j.id for j in client.fine_tuning.jobs.list()] == [job.id]
    assert client.models.list().data


def test_a_deeply_nested_request_body_is_a_400(client: openai.OpenAI) -> None:
    response = client._client.post("/fine_tuning/jobs", content=b"[" * 100_000 + b"]" * 100_000,
                         headers={"content-type": "application/json", "authorization": "Bearer local"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_an_alias_trains_its_dated_snapshot(client: openai.OpenAI) -> None:
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(client, jsonl(toy_examples(12))))
    assert job.model == "gpt-4o-mini-2024-07-18"


def test_an_absurdly_large_hyperparameter_is_a_400(client: openai.OpenAI) -> None:
    training = upload(client, jsonl(toy_examples(12)))
    with pytest.raises(openai.BadRequestError) as error:
        client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=training, hyperparameters={"n_epochs": 10**400})
    assert error.value.body["param"] == "hyperparameters.n_epochs"
