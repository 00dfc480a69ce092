"""Fine-tuning jobs and models: catalog models and aliases, integrations, pause and resume,
checkpoints as chat models, and deleting a fine-tuned model."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai.types import Model, ModelDeleted
from openai.types.chat import ChatCompletion
from openai.types.fine_tuning import FineTuningJob

from fine_tuning.core.catalog import MODELS, catalog_model, fine_tunable_names

from tests.support.conformance import (
    BASE_MODEL,
    book_messages,
    conformance_options,
    error_of,
    start_job,
    trained_job,
    validated,
)
from tests.support.local_openai import Clock

WANDB = {"type": "wandb", "wandb": {"project": "goodreads", "name": "run-1", "tags": ["conf"]}}


@pytest.fixture
def backend_options(clock: Clock) -> dict[str, Any]:
    """Lifecycles of JOB_SECONDS on the stepped clock (the suite's `client` uses these options)."""
    return conformance_options(clock)


@pytest.mark.parametrize("name", fine_tunable_names())
def test_every_fine_tunable_catalog_name_trains_its_dated_snapshot(client: openai.OpenAI, name: str) -> None:
    raw = client.fine_tuning.jobs.with_raw_response.create(
        model=name, training_file=client.files.create(file=("t.jsonl", b"{}\n"), purpose="fine-tune").id
    )
    job = validated(FineTuningJob, raw)
    assert job.model == catalog_model(name).snapshot


def test_every_model_the_checks_can_price_can_be_fine_tuned() -> None:
    priced = {model.snapshot for model in MODELS if model.training_price is not None}
    assert priced == {model.snapshot for model in MODELS if model.fine_tunable}


def test_catalog_names_are_listed_models(client: openai.OpenAI) -> None:
    listed = {model.id for model in client.models.list()}
    assert {name for model in MODELS for name in model.names} <= listed


def test_integrations_are_echoed(client: openai.OpenAI) -> None:
    job = validated(FineTuningJob, client.fine_tuning.jobs.with_raw_response.create(
        model=BASE_MODEL, training_file=client.files.create(file=("t.jsonl", b"{}\n"), purpose="fine-tune").id,
        integrations=[WANDB],
    ))
    (integration,) = job.integrations
    assert integration.type == "wandb" and integration.wandb.project == "goodreads"
    assert integration.wandb.name == "run-1" and integration.wandb.tags == ["conf"]
    assert client.fine_tuning.jobs.retrieve(job.id).integrations == job.integrations


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"integrations": [{"type": "comet", "comet": {}}]}, "integrations[0].type"),
        ({"integrations": [{"type": "wandb", "wandb": {}}]}, "integrations[0].wandb.project"),
        ({"extra_body": {"learning_rate": 0.1}}, "learning_rate"),
    ],
)
def test_create_refuses_unknown_fields_and_bad_integrations(client: openai.OpenAI, kwargs: dict, param: str) -> None:
    file_id = client.files.create(file=("t.jsonl", b"{}\n"), purpose="fine-tune").id
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=file_id, **kwargs)
    assert error_of(caught)["param"] == param


def test_pause_holds_a_running_job_and_resume_pushes_its_finish_back(client: openai.OpenAI, clock) -> None:
    job = start_job(client)
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.pause(job.id)  # still validating
    clock.advance(3.0)
    running = client.fine_tuning.jobs.retrieve(job.id)
    assert running.status == "running"
    raw = client.fine_tuning.jobs.with_raw_response.pause(job.id).http_response.json()
    assert raw["status"] == "paused" and raw["estimated_finish"] is None
    FineTuningJob.model_validate({**raw, "status": "running"})  # the openai package's Literal lacks "paused"
    seen = [e.id for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
    clock.advance(100.0)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "paused"
    assert [e.id for e in client.fine_tuning.jobs.list_events(job.id, limit=100)] == seen  # nothing moves
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.pause(job.id)  # already paused
    resumed = validated(FineTuningJob, client.fine_tuning.jobs.with_raw_response.resume(job.id))
    assert resumed.status == "running" and resumed.estimated_finish == job.created_at + 110
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
    assert messages[:2] == ["Fine-tuning job resumed", "Fine-tuning job paused"]
    clock.advance(6.9)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "running"
    clock.advance(0.2)
    done = client.fine_tuning.jobs.retrieve(job.id)
    assert done.status == "succeeded" and done.finished_at == job.created_at + 110


def test_a_paused_job_can_be_cancelled(client: openai.OpenAI, clock) -> None:
    job = start_job(client)
    clock.advance(3.0)
    client.fine_tuning.jobs.pause(job.id)
    clock.advance(50.0)
    assert client.fine_tuning.jobs.cancel(job.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.resume(job.id)


def test_checkpoints_answer_as_chat_models(client: openai.OpenAI, clock) -> None:
    job = trained_job(client, clock)
    assert job.status == "succeeded"
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert checkpoints
    for checkpoint in checkpoints:
        name = checkpoint.fine_tuned_model_checkpoint
        assert name == f"{job.fine_tuned_model}:ckpt-step-{checkpoint.step_number}"
        assert validated(Model, client.models.with_raw_response.retrieve(name)).id == name
        reply = validated(ChatCompletion, client.chat.completions.with_raw_response.create(
            model=name, messages=book_messages("A ghost in a haunted house.")))
        assert reply.model == name and reply.choices[0].message.content


def test_a_deleted_fine_tuned_model_is_gone_everywhere(client: openai.OpenAI, clock) -> None:
    job = trained_job(client, clock)
    name = job.fine_tuned_model
    deleted = validated(ModelDeleted, client.models.with_raw_response.delete(name))
    assert deleted.id == name and deleted.deleted is True and deleted.object == "model"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve(name)
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model=name, messages=book_messages("x"))
    assert error_of(caught)["code"] == "model_not_found"
    assert name not in {model.id for model in client.models.list()}
    with pytest.raises(openai.NotFoundError):
        client.models.delete(name)
    with pytest.raises(openai.BadRequestError) as caught:
        start_job(client, model=name)
    assert error_of(caught)["code"] == "model_not_available"
    assert client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model == name  # the job still names it
    checkpoint = client.fine_tuning.jobs.checkpoints.list(job.id).data[0].fine_tuned_model_checkpoint
    assert client.chat.completions.create(model=checkpoint, messages=book_messages("x")).model == checkpoint


def test_base_models_cannot_be_deleted(client: openai.OpenAI) -> None:
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.models.delete(BASE_MODEL)
    assert error_of(caught)["param"] == "model"
    with pytest.raises(openai.NotFoundError):
        client.models.delete("ft:gpt-4o-mini-2024-07-18:local::nosuchjob")
