"""Requests and responses as the router sees them, and OpenAI's JSON and error envelopes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from fine_tuning.core.tokens import token_counter
from local_openai.exceptions import OpenAIError
from local_openai.store import new_id


@dataclass
class LocalRequest:
    """An HTTP request reduced to what the router needs (path already percent-decoded)."""

    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""


@dataclass
class LocalResponse:
    """An HTTP response: status, headers and body bytes."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class Serializable(Protocol):
    """A record the API returns (records.py)."""

    def to_api(self) -> dict[str, Any]: ...


TOKEN_COUNT_HEADER = "x-local-token-count"


def _base_headers(content_type: str) -> dict[str, str]:
    # OpenAI sends a request id on every reply. The local header says whether the token counts in
    # this reply (usage, trained_tokens) are exact or an estimate made without the tokenizer file.
    counting = "exact" if token_counter().exact else "estimate"
    return {"content-type": content_type, "x-request-id": new_id("req"), TOKEN_COUNT_HEADER: counting}


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> LocalResponse:
    """A JSON response with the headers OpenAI sends on every reply."""
    return LocalResponse(status, {**_base_headers("application/json"), **(headers or {})}, json.dumps(payload).encode())


def ok(record: Serializable) -> LocalResponse:
    """200 with a record's OpenAI JSON."""
    return json_response(200, record.to_api())


def bytes_response(data: bytes) -> LocalResponse:
    """200 with raw bytes (a file's content)."""
    return LocalResponse(200, _base_headers("application/octet-stream"), data)


def sse_response(body: bytes) -> LocalResponse:
    """200 with server-sent events (a streamed chat completion)."""
    return LocalResponse(200, {**_base_headers("text/event-stream; charset=utf-8"), "cache-control": "no-cache"}, body)


def error_response(error: OpenAIError) -> LocalResponse:
    """An error in OpenAI's envelope, with its status and any headers it carries."""
    return json_response(error.status, error.envelope(), error.headers)
