"""Helpers of the local backend's conformance tests: requests, batch files, raw bodies as openai types.

The conformance tests step the backend's clock by hand: their modules override `backend_options`
with `conformance_options(clock)`, so the suite's `client` fixture (in-process and over HTTP)
reaches a backend whose jobs and batches take JOB_SECONDS of that clock.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import openai

from fine_tuning.core.prompts import build_messages

from tests.support.local_openai import Clock
from tests.support.toy_books import CATEGORIES, toy_examples

BASE_MODEL = "gpt-4o-mini-2024-07-18"
CHAT_URL = "/v1/chat/completions"
JOB_SECONDS = 10.0


def conformance_options(clock: Clock) -> dict[str, Any]:
    """Backend options of the conformance tests: lifecycles of JOB_SECONDS on a stepped clock."""
    return {"job_seconds": JOB_SECONDS, "clock": clock}


def book_messages(description: str) -> list[dict[str, str]]:
    """The pipeline's own prompt for a book with this description."""
    return build_messages("A title", "An author", description, CATEGORIES)


def batch_line(custom_id: str, body: dict[str, Any], url: str = CHAT_URL, method: str = "POST") -> dict[str, Any]:
    """One request line of a batch input file."""
    return {"custom_id": custom_id, "method": method, "url": url, "body": body}


def chat_body(description: str, model: str = BASE_MODEL, **extra: Any) -> dict[str, Any]:
    """A chat request body asking for a book's category."""
    return {"model": model, "messages": book_messages(description), **extra}


def jsonl(items: Sequence[Any]) -> bytes:
    """JSONL bytes (items that are already strings are written as they are)."""
    return "".join((item if isinstance(item, str) else json.dumps(item)) + "\n" for item in items).encode()


def upload_batch_file(client: openai.OpenAI, lines: Sequence[Any], **kwargs: Any) -> str:
    """Upload batch input lines; returns the file id."""
    return client.files.create(file=("requests.jsonl", jsonl(lines)), purpose="batch", **kwargs).id


def read_jsonl(client: openai.OpenAI, file_id: str) -> list[dict[str, Any]]:
    """The lines of a JSONL file the backend serves."""
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines() if line.strip()]


def validated(model_type: Any, raw: Any) -> Any:
    """A raw response body (a with_raw_response result, an httpx response or parsed JSON) as an openai type."""
    if hasattr(raw, "http_response"):
        raw = raw.http_response
    data = raw.json() if hasattr(raw, "json") and callable(raw.json) else raw
    return model_type.model_validate(data)


def error_of(exc_info: Any) -> dict[str, Any]:
    """The `error` object of an APIStatusError the client raised."""
    return exc_info.value.response.json()["error"]


def start_job(client: openai.OpenAI, n: int = 40, **kwargs: Any) -> Any:
    """Upload toy training data and create a job (not waited for)."""
    file_id = client.files.create(file=("train.jsonl", jsonl(toy_examples(n))), purpose="fine-tune").id
    kwargs.setdefault("model", BASE_MODEL)
    kwargs.setdefault("seed", 7)
    kwargs.setdefault("suffix", "conf")
    return client.fine_tuning.jobs.create(training_file=file_id, **kwargs)


def trained_job(client: openai.OpenAI, clock: Any, **kwargs: Any) -> Any:
    """A job run to its end by stepping the backend's clock past job_seconds."""
    job = start_job(client, **kwargs)
    clock.advance(60.0)
    return client.fine_tuning.jobs.retrieve(job.id)
