"""What only a real server does: streamed-body limits, restarts on one store, and the `serve` command.

Everything else about the API runs both in-process and over HTTP through the suite's `client`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx2
import openai
import pytest

from local_openai.server import running_server
from local_openai.transport import local_client

from tests.support.local_openai import BASE_MODEL, jsonl, serve_subprocess, upload, wait_for
from tests.support.toy_books import toy_examples


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


@pytest.mark.slow
def test_cli_serve_subprocess(tmp_path: Path) -> None:
    flags = ["--data-dir", str(tmp_path / "cli"), "--api-key", "sk-cli", "--job-seconds", "0.2", "--latency-ms", "1"]
    with serve_subprocess(*flags) as served:
        client = openai.OpenAI(base_url=served.base_url, api_key="sk-cli", max_retries=0)
        models = client.models.list()
        assert BASE_MODEL in [m.id for m in models]
        job = client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=upload(client, jsonl(toy_examples(12))))
        assert wait_for(client, job.id).status == "succeeded"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=served.base_url, api_key="nope", max_retries=0).models.list()
        assert (tmp_path / "cli" / "jobs" / f"{job.id}.json").exists()
    assert b"sk-cli" not in served.stderr  # the key is never printed


@pytest.mark.slow
def test_cli_rejects_bad_flags() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "local_openai", "serve", "--error-rate", "2"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2 and "--error-rate" in result.stderr


