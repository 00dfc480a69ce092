"""The local backend over real HTTP (uvicorn on a free loopback port), via the official client."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import openai
import pytest
from openai.types import FileObject, Model
from openai.types.chat import ChatCompletion
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

from fine_tuning.local_openai.server import RunningServer, running_server
from fine_tuning.local_openai.transport import local_client
from fine_tuning.core.prompts import parse_answer, response_format

from tests.support.local_openai import BASE_MODEL, CATEGORIES, jsonl, toy_examples, upload, validated, wait_for


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[RunningServer]:
    with running_server(tmp_path / "store", job_seconds=0.3, api_key="sk-local-test") as running:
        yield running


@pytest.fixture()
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="sk-local-test", max_retries=0)


def test_whole_lifecycle_over_http_with_raw_bodies_validated(client: openai.OpenAI) -> None:
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
    content = client.files.content(done.result_files[0]).text
    assert content.startswith("step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n")
    chat = validated(ChatCompletion, client.chat.completions.with_raw_response.create(
        model=done.fine_tuned_model, messages=toy_examples(1, seed=9)[0]["messages"][:2],
        response_format=response_format(CATEGORIES)).http_response)
    assert parse_answer(chat.choices[0].message.content, CATEGORIES) in CATEGORIES


def test_wrong_or_missing_key_is_401(server: RunningServer) -> None:
    for key in ("sk-wrong", ""):
        wrong = openai.OpenAI(base_url=server.base_url, api_key=key or "x", max_retries=0,
                              default_headers={} if key else {"Authorization": ""})
        with pytest.raises(openai.AuthenticationError) as error:
            wrong.models.list()
        assert error.value.status_code == 401
        assert "sk-local-test" not in str(error.value.body)  # the key is never echoed


def test_http_errors_body_limit_and_unknown_urls(tmp_path: Path) -> None:
    with running_server(tmp_path / "store", max_body_bytes=2048) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0)
        with pytest.raises(openai.APIStatusError) as too_big:
            client.files.create(file=("big.jsonl", b"x" * 10_000), purpose="fine-tune")
        assert too_big.value.status_code == 413
        with httpx2.Client(base_url=srv.base_url) as raw:
            chunked = raw.post("/files", content=iter([b"x" * 1500, b"y" * 1500]),
                               headers={"content-type": "multipart/form-data; boundary=b"})
            assert chunked.status_code == 413  # streamed bodies are cut off too
            assert raw.get("/nowhere").status_code == 404
            assert raw.delete("/models").json()["error"]["code"] == "unknown_url"
            bad_json = raw.post("/fine_tuning/jobs", content=b"[1, 2", headers={"content-type": "application/json"})
            assert bad_json.status_code == 400
            assert raw.get("/fine_tuning/jobs", params={"limit": "many"}).status_code == 400
            assert raw.get("/models").status_code == 200  # still serving after all that


def test_a_restarted_server_sees_the_same_state(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with running_server(store, job_seconds=0.3) as first:
        client = openai.OpenAI(base_url=first.base_url, api_key="x")
        file_id = upload(client, jsonl(toy_examples(15)))
        job_id = client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=file_id).id
    with running_server(store, job_seconds=0.3) as second:
        client = openai.OpenAI(base_url=second.base_url, api_key="x")
        assert client.files.retrieve(file_id).id == file_id
        assert wait_for(client, job_id).status == "succeeded"
    # ...and the in-process client on the same store agrees.
    assert local_client(store).fine_tuning.jobs.retrieve(job_id).status == "succeeded"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_serve_subprocess(tmp_path: Path) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "fine_tuning.local_openai", "serve", "--port", str(port), "--data-dir",
         str(tmp_path / "cli"), "--api-key", "sk-cli", "--job-seconds", "0.2", "--latency-ms", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-cli", max_retries=0)
        deadline = time.monotonic() + 30
        while True:
            try:
                models = client.models.list()
                break
            except openai.APIConnectionError:
                assert process.poll() is None, process.stderr.read().decode()
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        assert BASE_MODEL in [m.id for m in models]
        job = client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=upload(client, jsonl(toy_examples(12))))
        assert wait_for(client, job.id).status == "succeeded"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="nope", max_retries=0).models.list()
        assert (tmp_path / "cli" / "jobs" / f"{job.id}.json").exists()
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert b"sk-cli" not in stderr  # the key is never printed


def test_cli_rejects_bad_flags() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fine_tuning.local_openai", "serve", "--error-rate", "2"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2 and "--error-rate" in result.stderr


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
    with httpx2.Client(base_url=str(client.base_url), headers={"authorization": "Bearer sk-local-test"}) as raw:
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
