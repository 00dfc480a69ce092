"""Request and response contract of the local backend, the same in-process and over HTTP.

Raw bodies validated against the openai package's own types, bearer-key checks, and malformed
bodies that must be 400s, never 500s.
"""

from __future__ import annotations

import openai
import pytest
from openai.types import FileObject, Model
from openai.types.chat import ChatCompletion
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

from fine_tuning.core.prompts import parse_answer, response_format
from fine_tuning.core.provider_jobs import result_file_text

from tests.support.local_openai import BASE_MODEL, Backend, jsonl, upload, validated, wait_for
from tests.support.toy_books import CATEGORIES, toy_examples


def test_whole_lifecycle_with_raw_bodies_validated(client: openai.OpenAI) -> None:
    created = validated(FileObject, client.files.with_raw_response.create(
        file=("train.jsonl", jsonl(toy_examples(30))), purpose="fine-tune").http_response)
    raw_job = client.fine_tuning.jobs.with_raw_response.create(
        model=BASE_MODEL, training_file=created.id, suffix="http", seed=2, metadata={"via": "http"})
    job = validated(FineTuningJob, raw_job.http_response)
    done = wait_for(client, job.id)
    assert done.status == "succeeded", done.error
    validated(FineTuningJob, client.fine_tuning.jobs.with_raw_response.retrieve(job.id).http_response)
    for item in client.fine_tuning.jobs.with_raw_response.list(metadata={"via": "http"}).http_response.json()["data"]:
        assert FineTuningJob.model_validate(item).id == job.id
    for item in client.fine_tuning.jobs.with_raw_response.list_events(job.id, limit=50).http_response.json()["data"]:
        FineTuningJobEvent.model_validate(item)
    ckpts = client.fine_tuning.jobs.checkpoints.with_raw_response.list(job.id).http_response.json()["data"]
    assert [FineTuningJobCheckpoint.model_validate(c).step_number for c in ckpts]
    model = validated(Model, client.models.with_raw_response.retrieve(done.fine_tuned_model).http_response)
    assert model.id == done.fine_tuned_model
    content = result_file_text(client.files.content(done.result_files[0]).content)
    assert content.startswith("step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n")
    chat = validated(ChatCompletion, client.chat.completions.with_raw_response.create(
        model=done.fine_tuned_model, messages=toy_examples(1, seed=9)[0]["messages"][:2],
        response_format=response_format(CATEGORIES)).http_response)
    assert parse_answer(chat.choices[0].message.content, CATEGORIES) in CATEGORIES


def test_wrong_or_missing_key_is_401(backend: Backend) -> None:
    for key in ("sk-wrong", ""):
        wrong = backend.client(server_api_key="sk-local-test", api_key=key or "x", max_retries=0,
                               default_headers={} if key else {"Authorization": ""})
        with pytest.raises(openai.AuthenticationError) as error:
            wrong.models.list()
        assert error.value.status_code == 401
        assert "sk-local-test" not in str(error.value.body)  # the key is never echoed


MALFORMED_BODIES = {
    "/fine_tuning/jobs": [
        {}, {"model": {}}, {"model": BASE_MODEL}, {"model": BASE_MODEL, "training_file": 5},
        {"model": BASE_MODEL, "training_file": "file-x", "metadata": [1]},
        {"model": BASE_MODEL, "training_file": "file-x", "method": "supervised"},
        {"model": BASE_MODEL, "training_file": "file-x", "method": {"type": "supervised", "supervised": 5}},
        {"model": BASE_MODEL, "training_file": "file-x", "hyperparameters": [1]},
        {"model": BASE_MODEL, "training_file": "file-x", "seed": "x"},
        {"model": BASE_MODEL, "training_file": "file-x", "suffix": 12},
        [], "text", None, 12,
    ],
    "/chat/completions": [
        {}, {"model": BASE_MODEL}, {"model": BASE_MODEL, "messages": "hi"}, {"model": 1, "messages": []},
        {"model": BASE_MODEL, "messages": [None]}, {"model": BASE_MODEL, "messages": [{"content": "x"}]},
        {"model": BASE_MODEL, "messages": [{"role": "user", "content": "x"}], "response_format": "json"},
        {"model": BASE_MODEL, "messages": [{"role": "user", "content": "x"}], "n": 1.5},
        [], "text",
    ],
}


def test_malformed_requests_are_400_never_500(client: openai.OpenAI) -> None:
    # With the training file known to exist, the remaining errors are about the body itself.
    file_id = upload(client, jsonl(toy_examples(12)))
    raw = client._client  # the client's own httpx2 client: the in-process transport, or a socket
    for path, bodies in MALFORMED_BODIES.items():
        for body in bodies:
            if isinstance(body, dict) and body.get("training_file") == "file-x":
                body = {**body, "training_file": file_id}
            response = raw.post(path, json=body)
            assert response.status_code == 400, (path, body, response.text)
            error = response.json()["error"]
            assert set(error) == {"message", "type", "param", "code"} and error["message"]
    weird = raw.post("/chat/completions", json={"model": BASE_MODEL, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "ghost"}, {"type": "image_url"}]},
        {"role": "assistant", "content": None}]})
    assert weird.status_code == 200
