"""Helpers of the conformance tests (no tests here): requests, uploads, raw bodies as openai types."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import openai

from fine_tuning.core.prompts import build_messages

CATEGORIES = ("fantasy", "horror", "romance", "mystery")
BASE_MODEL = "gpt-4o-mini-2024-07-18"
CHAT_URL = "/v1/chat/completions"


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
