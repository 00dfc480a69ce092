"""Framework-free HTTP layer of the local backend (moto's "responses" layer).

`Router.handle(LocalRequest) -> LocalResponse` is the whole API: the uvicorn server and the
in-process httpx transport both call it, so they cannot behave differently. It owns what is
about HTTP rather than state: latency and fault injection (before any work, so a retried
request never duplicates a side effect), the body size limit, the bearer-token check, routing,
query/JSON/multipart parsing, and OpenAI's error envelope. Unexpected exceptions become a 500
in that envelope; the server never dies on a request.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from hmac import compare_digest
from typing import Any

from fine_tuning.local_openai.exceptions import (
    InvalidApiKey,
    InvalidContentType,
    InvalidJson,
    InvalidMultipart,
    InvalidValue,
    MissingApiKey,
    MissingRequiredParameter,
    OpenAIError,
    RateLimitExceeded,
    RequestTooLarge,
    ServerError,
    ServiceUnavailable,
    UnknownUrl,
)
from fine_tuning.local_openai.service import LocalOpenAI
from fine_tuning.local_openai.store import new_id

DEFAULT_MAX_BODY_BYTES = 128 * 1024 * 1024
RETRY_AFTER_MS = 100  # what injected 429/503 responses ask the client to wait
FAULT_STATUSES = (429, 500, 503)


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


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> LocalResponse:
    """A JSON response with the headers OpenAI sends on every reply."""
    base = {"content-type": "application/json", "x-request-id": new_id("req")}
    return LocalResponse(status, {**base, **(headers or {})}, json.dumps(payload).encode("utf-8"))


def error_response(error: OpenAIError) -> LocalResponse:
    """An error in OpenAI's envelope."""
    return json_response(error.status, error.envelope(), error.headers)


def list_body(items: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """A cursor-paginated list."""
    return {
        "object": "list",
        "data": items,
        "has_more": has_more,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
    }


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------

_PARAM_RE = re.compile(r';\s*([A-Za-z0-9_*.\-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def header_params(value: str) -> dict[str, str]:
    """Parameters of a header like `form-data; name="file"; filename="a.jsonl"` (RFC 7578/5987)."""
    params: dict[str, str] = {}
    for name, raw in _PARAM_RE.findall(";" + value.split(";", 1)[1] if ";" in value else ""):
        raw = raw.strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        name = name.lower()
        if name.endswith("*"):
            charset, _, rest = raw.partition("'")
            _, _, encoded = rest.partition("'")
            try:
                params[name[:-1]] = urllib.parse.unquote(encoded, encoding=charset or "utf-8", errors="strict")
            except (LookupError, UnicodeDecodeError):
                continue
        elif name not in params:
            params[name] = raw
    return params


@dataclass
class FormPart:
    """One part of a multipart/form-data body."""

    name: str
    filename: str | None
    data: bytes


def parse_multipart(body: bytes, content_type: str) -> dict[str, FormPart]:
    """Parts of a multipart/form-data body by field name; 400 on anything malformed."""
    boundary = header_params(content_type).get("boundary")
    if not boundary or len(boundary) > 200:
        raise InvalidMultipart("missing boundary")
    parts: dict[str, FormPart] = {}
    for chunk in _multipart_chunks(b"\r\n" + body, b"\r\n--" + boundary.encode("latin-1")):
        head, separator, data = chunk.partition(b"\r\n\r\n")
        if not separator:
            raise InvalidMultipart("part without headers")
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        params = header_params(disposition)
        if not disposition.lower().startswith("form-data") or "name" not in params:
            raise InvalidMultipart("part without a name")
        parts[params["name"]] = FormPart(params["name"], params.get("filename"), data)
    return parts


def _multipart_chunks(data: bytes, delimiter: bytes) -> list[bytes]:
    """The bodies between delimiter lines (RFC 2046: a delimiter is followed by CRLF or '--').

    A delimiter-like string inside content (not followed by CRLF / '--') is content.
    """
    chunks: list[bytes] = []
    start: int | None = None
    position = data.find(delimiter)
    while position != -1:
        after = position + len(delimiter)
        if data[after : after + 2] == b"--":
            if start is None:
                break
            chunks.append(data[start:position])
            return chunks
        line_end = after
        while data[line_end : line_end + 1] in (b" ", b"\t"):
            line_end += 1
        if data[line_end : line_end + 2] == b"\r\n":
            if start is not None:
                chunks.append(data[start:position])
            start = line_end + 2
        position = data.find(delimiter, after)
    raise InvalidMultipart("body is not terminated")


def parse_json_body(request: LocalRequest) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 like OpenAI's."""
    try:
        payload = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: absurd nesting
        raise InvalidJson(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
            "HTTP library correctly. The OpenAI API expects a JSON payload.)"
        ) from exc
    if not isinstance(payload, dict):
        raise InvalidJson("The request body must be a JSON object.")
    return payload


def query_value(request: LocalRequest, name: str) -> str | None:
    """The last value of a query parameter."""
    value = None
    for key, item in request.query:
        if key == name:
            value = item
    return value


def query_int(request: LocalRequest, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high]."""
    raw = query_value(request, name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise InvalidValue(f"Invalid '{name}': expected an integer, got '{raw[:40]}'.", name) from exc
    if not low <= value <= high:
        raise InvalidValue(f"Invalid '{name}': must be between {low} and {high}.", name)
    return value


def metadata_filter(request: LocalRequest) -> tuple[dict[str, str], bool]:
    """`metadata[key]=value` query parameters (the openai client's encoding), and `metadata=null`."""
    filters: dict[str, str] = {}
    for key, value in request.query:
        match = re.fullmatch(r"metadata\[(.*)\]", key)
        if match:
            filters[match.group(1)] = value
    return filters, query_value(request, "metadata") == "null"


# ---------------------------------------------------------------------------------------------
# Router
# ---------------------------------------------------------------------------------------------

Handler = Callable[[LocalRequest, dict[str, str]], LocalResponse]


class Router:
    """The local OpenAI-compatible API as a plain function of a request."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        api_key: str | None = None,
        latency_ms: float = 0.0,
        error_rate: float = 0.0,
        job_seconds: float = 3.0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        fault_seed: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError(f"error_rate must be within [0, 1], got {error_rate}")
        self.backend = LocalOpenAI(data_dir, job_seconds=job_seconds, clock=clock)
        self.api_key = api_key or None
        self.latency_ms = max(0.0, float(latency_ms))
        self.error_rate = float(error_rate)
        self.max_body_bytes = max_body_bytes
        self._rng = random.Random(fault_seed)
        self._lock = threading.Lock()
        # Server-side counters: tests use them to prove injected faults really happened.
        self.stats: dict[str, int] = {"requests": 0, "faults": 0, "429": 0, "500": 0, "503": 0}
        files, jobs, models, chat = self.backend.files, self.backend.jobs, self.backend.models, self.backend.chat
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("GET", re.compile(r"/v1/models"), self._list_models),
            ("GET", re.compile(r"/v1/models/(?P<model>[^/]+)"), _by_path_param(models.get, "model")),
            ("POST", re.compile(r"/v1/files"), self._create_file),
            ("GET", re.compile(r"/v1/files"), self._list_files),
            ("GET", re.compile(r"/v1/files/(?P<file_id>[^/]+)"), _by_path_param(files.get, "file_id")),
            ("DELETE", re.compile(r"/v1/files/(?P<file_id>[^/]+)"), _by_path_param(files.delete, "file_id")),
            ("GET", re.compile(r"/v1/files/(?P<file_id>[^/]+)/content"), self._file_content),
            ("POST", re.compile(r"/v1/fine_tuning/jobs"), _by_json_body(jobs.create)),
            ("GET", re.compile(r"/v1/fine_tuning/jobs"), self._list_jobs),
            ("GET", re.compile(r"/v1/fine_tuning/jobs/(?P<job_id>[^/]+)"), _by_path_param(jobs.get, "job_id")),
            ("POST", re.compile(r"/v1/fine_tuning/jobs/(?P<job_id>[^/]+)/cancel"),
             _by_path_param(jobs.cancel, "job_id")),
            ("GET", re.compile(r"/v1/fine_tuning/jobs/(?P<job_id>[^/]+)/events"),
             _job_timeline(jobs.list_events, default_limit=20, max_limit=10_000)),
            ("GET", re.compile(r"/v1/fine_tuning/jobs/(?P<job_id>[^/]+)/checkpoints"),
             _job_timeline(jobs.list_checkpoints, default_limit=10, max_limit=100)),
            ("POST", re.compile(r"/v1/chat/completions"), _by_json_body(chat.create)),
        ]

    # -- entry point
    def handle(self, request: LocalRequest) -> LocalResponse:
        """Answer one request; never raises."""
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000.0)
        fault = self._injected_fault()
        if fault is not None:
            return fault
        try:
            self._check_size(request)
            self._check_auth(request)
            handler, params = self._route(request)
            return handler(request, params)
        except OpenAIError as error:
            return error_response(error)
        except Exception:  # noqa: BLE001 - report, answer 500, keep serving
            traceback.print_exc(file=sys.stderr)
            return error_response(ServerError())

    def _injected_fault(self) -> LocalResponse | None:
        with self._lock:
            self.stats["requests"] += 1
            if not self.error_rate or self._rng.random() >= self.error_rate:
                return None
            status = self._rng.choice(FAULT_STATUSES)
            self.stats["faults"] += 1
            self.stats[str(status)] += 1
        retry = {"retry-after": "1", "retry-after-ms": str(RETRY_AFTER_MS), "x-local-fault": "injected"}
        if status == 429:
            return error_response(
                RateLimitExceeded("Rate limit reached for requests (injected by the local backend).", headers=retry)
            )
        if status == 503:
            return error_response(ServiceUnavailable(
                "The server is overloaded or not ready yet (injected by the local backend).", headers=retry
            ))
        return error_response(ServerError(
            "The server had an error while processing your request (injected by the local backend).",
            headers={"x-local-fault": "injected"},
        ))

    def _check_size(self, request: LocalRequest) -> None:
        declared = request.headers.get("content-length", "")
        size = max(len(request.body), int(declared) if declared.isdigit() else 0)
        if size > self.max_body_bytes:
            raise RequestTooLarge(self.max_body_bytes, size)

    def _check_auth(self, request: LocalRequest) -> None:
        if self.api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise MissingApiKey()
        # Constant-time comparison; the key is never echoed in the message.
        if not compare_digest(token.strip().encode(), self.api_key.encode()):
            raise InvalidApiKey()

    def _route(self, request: LocalRequest) -> tuple[Handler, dict[str, str]]:
        path = request.path.rstrip("/") or "/"
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match and method == request.method.upper():
                return handler, match.groupdict()
        raise UnknownUrl(request.method, request.path)

    # -- handlers that need more than one call (the rest are built by the helpers below)
    def _list_models(self, request: LocalRequest, params: dict[str, str]) -> LocalResponse:
        return json_response(200, self.backend.models.list().to_api())

    def _create_file(self, request: LocalRequest, params: dict[str, str]) -> LocalResponse:
        content_type = request.headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            raise InvalidContentType("Uploads must be multipart/form-data.")
        parts = parse_multipart(request.body, content_type)
        purpose_part = parts.get("purpose")
        if purpose_part is None:
            raise MissingRequiredParameter("purpose")
        file_part = parts.get("file")
        if file_part is None or file_part.filename is None:
            raise MissingRequiredParameter("file")
        purpose = purpose_part.data.decode("utf-8", "replace").strip()
        return json_response(200, self.backend.files.create(file_part.filename, purpose, file_part.data).to_api())

    def _list_files(self, request: LocalRequest, params: dict[str, str]) -> LocalResponse:
        order = query_value(request, "order") or "desc"
        if order not in ("asc", "desc"):
            raise InvalidValue("Invalid 'order': must be 'asc' or 'desc'.", "order")
        page = self.backend.files.list(
            query_value(request, "purpose"), query_value(request, "after"),
            query_int(request, "limit", 10_000, 1, 10_000), order,
        )
        return json_response(200, page.to_api())

    def _file_content(self, request: LocalRequest, params: dict[str, str]) -> LocalResponse:
        data = self.backend.files.content(params["file_id"])
        return LocalResponse(200, {"content-type": "application/octet-stream", "x-request-id": new_id("req")}, data)

    def _list_jobs(self, request: LocalRequest, params: dict[str, str]) -> LocalResponse:
        filters, only_null = metadata_filter(request)
        page = self.backend.jobs.list(
            query_value(request, "after"), query_int(request, "limit", 20, 1, 100), filters, only_null
        )
        return json_response(200, page.to_api())


def _by_path_param(call: Callable[[str], dict[str, Any]], name: str) -> Handler:
    """A handler answering 200 with `call(<path parameter name>)` as JSON."""
    return lambda request, params: json_response(200, call(params[name]).to_api())


def _by_json_body(call: Callable[[dict[str, Any]], dict[str, Any]]) -> Handler:
    """A handler answering 200 with `call(<the JSON request body>)` as JSON."""
    return lambda request, params: json_response(200, call(parse_json_body(request)).to_api())


def _job_timeline(
    call: Callable[[str, str | None, int], tuple[list[dict[str, Any]], bool]], default_limit: int, max_limit: int
) -> Handler:
    """A handler listing a job's events or checkpoints, paginated by `after` and `limit`."""

    def handler(request: LocalRequest, params: dict[str, str]) -> LocalResponse:
        page = call(
            params["job_id"], query_value(request, "after"), query_int(request, "limit", default_limit, 1, max_limit)
        )
        return json_response(200, page.to_api())

    return handler
