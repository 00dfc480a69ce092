"""Every route of the local backend, called through the official client, answers with a body the
`openai` package's own pydantic types accept; the table below must cover the route table exactly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import openai
import pytest
from openai.types import Batch, FileDeleted, FileObject, Model, ModelDeleted
from openai.types.chat import ChatCompletion, ChatCompletionDeleted, ChatCompletionStoreMessage
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.alpha import GraderRunResponse, GraderValidateResponse
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

from fine_tuning.core.graders import exact_match_grader
from local_openai.__main__ import parse_args
from local_openai.http.routes import ROUTES

from tests.support.conformance import (
    BASE_MODEL,
    batch_line,
    book_messages,
    chat_body,
    conformance_options,
    jsonl,
    start_job,
)
from tests.support.local_openai import Clock
from tests.support.toy_books import toy_examples


@pytest.fixture
def backend_options(clock: Clock) -> dict[str, Any]:
    """Lifecycles of JOB_SECONDS on the stepped clock (the suite's `client` uses these options)."""
    return conformance_options(clock)


@dataclass
class World:
    """Objects of every kind, made through the API: what the route calls below refer to."""

    tuned: FineTuningJob
    running: FineTuningJob
    training_file: str
    batch: Batch
    completion: ChatCompletion


def make_world(client: openai.OpenAI, clock: Clock) -> World:
    tuned = start_job(client)
    clock.advance(60.0)
    tuned = client.fine_tuning.jobs.retrieve(tuned.id)
    running = start_job(client)
    clock.advance(3.0)
    batch_file = client.files.create(file=("in.jsonl", jsonl([batch_line("a", chat_body("ghosts"))])), purpose="batch")
    batch = client.batches.create(input_file_id=batch_file.id, endpoint="/v1/chat/completions", completion_window="24h")
    completion = client.chat.completions.create(model=BASE_MODEL, messages=book_messages("ghosts"), store=True)
    return World(tuned, running, tuned.training_file, batch, completion)


def paused(raw: dict[str, Any]) -> dict[str, Any]:
    """A paused job's body with the status the openai package's Literal knows (it lacks "paused")."""
    assert raw["status"] == "paused"
    return {**raw, "status": "running"}


def as_assistant(raw: dict[str, Any]) -> dict[str, Any]:
    """A stored request message for ChatCompletionStoreMessage, whose role Literal only knows "assistant"."""
    return {**raw, "role": "assistant"}


@dataclass(frozen=True)
class Call:
    """One route: how the official client calls it, and the openai type of its body (or of each list item)."""

    call: Callable[[openai.OpenAI, World], Any]
    model: Any
    listed: bool = False
    adapt: Callable[[dict[str, Any]], dict[str, Any]] = lambda raw: raw


CALLS: dict[tuple[str, str], Call] = {
    ("GET", "/v1/models"): Call(lambda c, w: c.models.with_raw_response.list(), Model, listed=True),
    ("GET", "/v1/models/{model}"): Call(lambda c, w: c.models.with_raw_response.retrieve(w.tuned.fine_tuned_model), Model),
    ("POST", "/v1/files"): Call(lambda c, w: c.files.with_raw_response.create(
        file=("t.jsonl", jsonl(toy_examples(3))), purpose="fine-tune"), FileObject),
    ("GET", "/v1/files"): Call(lambda c, w: c.files.with_raw_response.list(), FileObject, listed=True),
    ("GET", "/v1/files/{file_id}"): Call(lambda c, w: c.files.with_raw_response.retrieve(w.training_file), FileObject),
    ("GET", "/v1/files/{file_id}/content"): Call(lambda c, w: c.files.with_raw_response.content(w.training_file), None),
    ("POST", "/v1/fine_tuning/jobs"): Call(lambda c, w: c.fine_tuning.jobs.with_raw_response.create(
        model="gpt-4o-mini", training_file=w.training_file, integrations=[
            {"type": "wandb", "wandb": {"project": "p"}}]), FineTuningJob),
    ("GET", "/v1/fine_tuning/jobs"): Call(lambda c, w: c.fine_tuning.jobs.with_raw_response.list(), FineTuningJob,
                                          listed=True),
    ("GET", "/v1/fine_tuning/jobs/{job_id}"): Call(lambda c, w: c.fine_tuning.jobs.with_raw_response.retrieve(
        w.tuned.id), FineTuningJob),
    ("GET", "/v1/fine_tuning/jobs/{job_id}/events"): Call(lambda c, w: c.fine_tuning.jobs.with_raw_response.list_events(
        w.tuned.id, limit=100), FineTuningJobEvent, listed=True),
    ("GET", "/v1/fine_tuning/jobs/{job_id}/checkpoints"): Call(
        lambda c, w: c.fine_tuning.jobs.checkpoints.with_raw_response.list(w.tuned.id), FineTuningJobCheckpoint,
        listed=True),
    ("POST", "/v1/fine_tuning/jobs/{job_id}/pause"): Call(lambda c, w: c.fine_tuning.jobs.with_raw_response.pause(
        w.running.id), FineTuningJob, adapt=paused),
    ("POST", "/v1/fine_tuning/jobs/{job_id}/resume"): Call(lambda c, w: c.fine_tuning.jobs.with_raw_response.resume(
        w.running.id), FineTuningJob),
    ("POST", "/v1/fine_tuning/jobs/{job_id}/cancel"): Call(lambda c, w: c.fine_tuning.jobs.with_raw_response.cancel(
        w.running.id), FineTuningJob),
    ("POST", "/v1/fine_tuning/alpha/graders/validate"): Call(
        lambda c, w: c.fine_tuning.alpha.graders.with_raw_response.validate(grader=exact_match_grader()),
        GraderValidateResponse),
    ("POST", "/v1/fine_tuning/alpha/graders/run"): Call(lambda c, w: c.fine_tuning.alpha.graders.with_raw_response.run(
        grader=exact_match_grader(), model_sample="a", item={"reference_answer": "a"}), GraderRunResponse),
    ("POST", "/v1/chat/completions"): Call(lambda c, w: c.chat.completions.with_raw_response.create(
        model=w.tuned.fine_tuned_model, messages=book_messages("ghosts")), ChatCompletion),
    ("GET", "/v1/chat/completions"): Call(lambda c, w: c.chat.completions.with_raw_response.list(), ChatCompletion,
                                          listed=True),
    ("GET", "/v1/chat/completions/{completion_id}"): Call(lambda c, w: c.chat.completions.with_raw_response.retrieve(
        w.completion.id), ChatCompletion),
    ("POST", "/v1/chat/completions/{completion_id}"): Call(lambda c, w: c.chat.completions.with_raw_response.update(
        w.completion.id, metadata={"k": "v"}), ChatCompletion),
    ("GET", "/v1/chat/completions/{completion_id}/messages"): Call(
        lambda c, w: c.chat.completions.messages.with_raw_response.list(w.completion.id), ChatCompletionStoreMessage,
        listed=True, adapt=as_assistant),
    ("DELETE", "/v1/chat/completions/{completion_id}"): Call(lambda c, w: c.chat.completions.with_raw_response.delete(
        w.completion.id), ChatCompletionDeleted),
    ("POST", "/v1/batches"): Call(lambda c, w: c.batches.with_raw_response.create(
        input_file_id=w.batch.input_file_id, endpoint="/v1/chat/completions", completion_window="24h",
        metadata={"fingerprint": "f"}), Batch),
    ("GET", "/v1/batches"): Call(lambda c, w: c.batches.with_raw_response.list(), Batch, listed=True),
    ("GET", "/v1/batches/{batch_id}"): Call(lambda c, w: c.batches.with_raw_response.retrieve(w.batch.id), Batch),
    ("POST", "/v1/batches/{batch_id}/cancel"): Call(lambda c, w: c.batches.with_raw_response.cancel(w.batch.id), Batch),
    ("DELETE", "/v1/models/{model}"): Call(lambda c, w: c.models.with_raw_response.delete(w.tuned.fine_tuned_model),
                                           ModelDeleted),
    ("DELETE", "/v1/files/{file_id}"): Call(lambda c, w: c.files.with_raw_response.delete(w.training_file), FileDeleted),
}


def test_the_table_covers_every_route() -> None:
    assert set(CALLS) == {(route.method, route.path) for route in ROUTES}


def test_every_route_answers_with_the_openai_types(client: openai.OpenAI, clock: Clock) -> None:
    world = make_world(client, clock)
    for (method, path), spec in CALLS.items():  # in table order: deletions come last
        raw = spec.call(client, world).http_response
        assert raw.status_code == 200, (method, path, raw.text)
        if spec.model is None:
            assert raw.content  # file bytes
            continue
        body = raw.json()
        items = body["data"] if spec.listed else [body]
        if spec.listed:
            assert body["object"] == "list" and items, (method, path)
        for item in items:
            spec.model.model_validate(spec.adapt(item))


def test_serve_takes_the_batch_timing_flags() -> None:
    args = parse_args(["serve", "--job-seconds", "2", "--batch-seconds", "5", "--batch-window-seconds", "60"])
    assert (args.job_seconds, args.batch_seconds, args.batch_window_seconds) == (2.0, 5.0, 60.0)
    assert parse_args(["serve"]).batch_seconds is None  # then batches take --job-seconds
    with pytest.raises(SystemExit):
        parse_args(["serve", "--batch-seconds", "-1"])
