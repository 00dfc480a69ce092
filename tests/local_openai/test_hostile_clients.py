"""The local server under hostile clients: auth before the body, time bounds, exact keys, numbers,
names, and chat's unknown arguments in OpenAI's words.

Raw sockets where the point is what the server reads (or does not read) and when; the real
`openai` client (`client` fixture: in-process and over HTTP) for what every client sees.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx2
import openai
import pytest

from local_openai.batches.input_file import parse_batch_input
from local_openai.http import LocalRequest, Router
from local_openai.server import AsgiApp, running_server, serving
from local_openai.transport import local_client

from tests.support.local_openai import BASE_MODEL, jsonl, upload
from tests.support.toy_books import toy_examples

KEY = "sk-local-test"


def _raw_exchange(port: int, head: bytes, body: bytes = b"", wait: float = 5.0) -> bytes:
    """Send `head` (and `body`), then read until the server answers and closes or `wait` runs out."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(head + body)
        received = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
            if b"\r\n\r\n" in received and b'"error"' in received:
                break
        return received


def test_an_unauthenticated_upload_is_refused_before_its_body_is_read(tmp_path: Path) -> None:
    with running_server(tmp_path / "store", api_key=KEY) as srv:
        head = (
            b"POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 125829120\r\n\r\n"
        )
        started = time.monotonic()
        answer = _raw_exchange(srv.port, head)  # not one byte of the 120 MB body is sent
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert time.monotonic() - started < 3
        assert b"Incorrect API key" in answer or b"invalid_api_key" in answer


def test_a_client_trickling_its_headers_is_cut_off(tmp_path: Path) -> None:
    app = AsgiApp(Router(tmp_path / "store"))
    with serving(app, header_seconds=0.5) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n")  # never ends its headers
            started = time.monotonic()
            assert sock.recv(1024) == b""  # closed by the server
            assert 0.3 < time.monotonic() - started < 3
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}/v1") as raw:
            assert raw.get("/models").status_code == 200  # a well-behaved client is served


def test_a_stalled_body_gets_408(tmp_path: Path) -> None:
    app = AsgiApp(Router(tmp_path / "store"), body_seconds=0.5)
    with serving(app) as port:
        head = b"POST /v1/fine_tuning/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        started = time.monotonic()
        answer = _raw_exchange(port, head, b'{"model": ')
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"request_timeout" in answer
        assert time.monotonic() - started < 3


def test_keys_are_compared_exactly(tmp_path: Path) -> None:
    router = Router(tmp_path / "store", api_key=KEY)

    def status(authorization: str) -> int:
        return router.handle(LocalRequest("GET", "/v1/models", headers={"authorization": authorization})).status

    assert status(f"Bearer {KEY}") == 200
    assert status(f"Bearer {KEY} ") == 401
    assert status(f"Bearer  {KEY}") == 401
    assert status(f"Bearer {KEY}\t") == 401
    assert status(f"Bearer {KEY[:-1]}") == 401
    with running_server(tmp_path / "http", api_key=KEY) as srv, httpx2.Client(base_url=srv.base_url) as raw:
        assert raw.get("/models", headers={"authorization": f"Bearer {KEY}"}).status_code == 200
        assert raw.get("/models", headers={"authorization": f"Bearer  {KEY}"}).status_code == 401


@pytest.mark.parametrize("body", [
    b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
    b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "top_p": Infinity}',
    b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "frequency_penalty": -Infinity}',
    b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "temperature": 1e999}',
])
def test_non_finite_numbers_in_chat_are_400(tmp_path: Path, body: bytes) -> None:
    router = Router(tmp_path / "store")
    reply = router.handle(LocalRequest("POST", "/v1/chat/completions", headers={"content-type": "application/json"},
                                       body=body))
    assert reply.status == 400
    assert reply.json()["error"]["type"] == "invalid_request_error"


def test_non_finite_numbers_are_400_wherever_the_api_takes_a_number(tmp_path: Path) -> None:
    # The openai client itself refuses to send NaN; curl, other SDKs and proxies do not.
    client = local_client(tmp_path / "store", max_retries=0)
    router = client._local_router  # type: ignore[attr-defined]
    training = upload(client, jsonl(toy_examples(12)))

    def post(path: str, body: str) -> int:
        request = LocalRequest("POST", path, headers={"content-type": "application/json"}, body=body.encode())
        return router.handle(request).status

    for hyperparameters in ('{"n_epochs": Infinity}', '{"learning_rate_multiplier": NaN}', '{"batch_size": -Infinity}',
                            '{"learning_rate_multiplier": 1e400}'):
        body = (f'{{"model": "{BASE_MODEL}", "training_file": "{training}", "method": {{"type": "supervised", '
                f'"supervised": {{"hyperparameters": {hyperparameters}}}}}}}')
        assert post("/v1/fine_tuning/jobs", body) == 400
    assert list(client.fine_tuning.jobs.list()) == []  # nothing was created
    assert post("/v1/batches", '{"input_file_id": "file-x", "endpoint": "/v1/chat/completions", '
                '"completion_window": "24h", "metadata": {"n": NaN}}') == 400
    for limit in ("nan", "inf", "1_0", "٣", " 7"):
        assert router.handle(LocalRequest("GET", "/v1/fine_tuning/jobs", query=[("limit", limit)])).status == 400
    assert router.handle(LocalRequest("GET", "/v1/fine_tuning/jobs", query=[("limit", "7")])).status == 200


def test_a_suffix_must_be_a_model_id_part(client: openai.OpenAI) -> None:
    training = upload(client, jsonl(toy_examples(12)))
    for suffix in ("ü/../x", "a/b", "..", "tab\there", "a:b", "emoji-🙂"):
        with pytest.raises(openai.BadRequestError) as refused:
            client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=training, suffix=suffix)
        assert refused.value.body["code"] == "invalid_suffix"
    job = client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=training, suffix="books_v1.2-x")
    assert job.status in ("validating_files", "queued", "running")


def test_file_names_are_refused_not_rewritten(client: openai.OpenAI, tmp_path: Path) -> None:
    for name in ("x" * 250 + ".jsonl", "dir/", ".."):
        with pytest.raises(openai.BadRequestError) as refused:
            client.files.create(file=(name, jsonl(toy_examples(10))), purpose="fine-tune")
        assert refused.value.body["code"] == "invalid_file_name"
    stored = client.files.create(file=("folder/ok name (1).jsonl", jsonl(toy_examples(10))), purpose="fine-tune")
    assert stored.filename == "ok name (1).jsonl"  # the last path component, as sent by clients
    # The openai client percent-encodes control characters; a raw multipart body can carry them.
    router = Router(tmp_path / "raw")
    for raw_name in (b"line\nbreak.jsonl", b"nul\x00.jsonl", b"bell\x07.jsonl"):
        body = (b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
                b'--b\r\nContent-Disposition: form-data; name="file"; filename="' + raw_name + b'"\r\n\r\n'
                + jsonl(toy_examples(10)) + b"\r\n--b--\r\n")
        reply = router.handle(LocalRequest("POST", "/v1/files", headers={
            "content-type": "multipart/form-data; boundary=b"}, body=body))
        assert reply.status == 400 and reply.json()["error"]["code"] == "invalid_file_name", raw_name


def test_unknown_chat_arguments_are_answered_in_openais_words(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.BadRequestError) as one:
        client.chat.completions.create(model=BASE_MODEL, messages=messages, extra_body={"thinking": True})
    assert one.value.body == {"message": "Unrecognized request argument supplied: thinking",
                              "type": "invalid_request_error", "param": None, "code": None}
    with pytest.raises(openai.BadRequestError) as two:
        client.chat.completions.create(model=BASE_MODEL, messages=messages,
                                       extra_body={"functions_x": [], "best_of": 2})
    assert two.value.body["message"] == "Unrecognized request arguments supplied: best_of, functions_x"
    assert json.dumps(two.value.body).count("null") == 2


def test_a_batch_line_with_a_non_finite_number_is_refused() -> None:
    line = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": BASE_MODEL, "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5}}
    good = json.dumps(line)
    for bad in (good.replace("0.5", "NaN"), good.replace("0.5", "Infinity"), good.replace("0.5", "1e999")):
        requests, errors, _ = parse_batch_input((good.replace('"a"', '"b"') + "\n" + bad).encode(), "/v1/chat/completions")
        assert [(error.code, error.line) for error in errors] == [("invalid_json_line", 2)]
    assert parse_batch_input(good.encode(), "/v1/chat/completions")[1] == []
