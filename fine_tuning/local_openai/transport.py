"""In-process transport: the `openai` client talks to the local router without any socket.

The openai package in this environment is built on httpx2 (the successor of httpx), so the
transport subclasses `httpx2.BaseTransport`; the client code path is otherwise exactly the
one used over the network (serialisation, retries, response parsing).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import httpx2
import openai

from fine_tuning.local_openai.http import DEFAULT_MAX_BODY_BYTES, LocalRequest, Router

LOCAL_BASE_URL = "http://local-openai.invalid/v1"


class LocalTransport(httpx2.BaseTransport):
    """An httpx2 transport that hands each request to a `Router` in this process."""

    def __init__(self, router: Router) -> None:
        self.router = router

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Translate the request, let the router answer, translate the response back."""
        body = request.read()
        local = LocalRequest(
            method=request.method,
            path=request.url.path,
            query=list(request.url.params.multi_items()),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        answer = self.router.handle(local)
        return httpx2.Response(answer.status, headers=answer.headers, content=answer.body, request=request)


def local_client(
    data_dir: str | os.PathLike[str],
    job_seconds: float = 3.0,
    *,
    server_api_key: str | None = None,
    latency_ms: float = 0.0,
    error_rate: float = 0.0,
    fault_seed: int | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    clock: Callable[[], float] = time.time,
    **client_kwargs: Any,
) -> openai.OpenAI:
    """A real `openai.OpenAI` client whose HTTP goes to an in-process local backend.

    `client_kwargs` go to `openai.OpenAI` (api_key defaults to "local"; max_retries, timeout,
    ...). `server_api_key`, `latency_ms`, `error_rate`, `fault_seed` and `max_body_bytes`
    configure the backend the same way the `serve` flags do; `clock` (seconds since the epoch)
    lets tests step a job's lifecycle deterministically. The router is reachable as `client._local_router`.
    """
    router = Router(
        data_dir,
        api_key=server_api_key,
        latency_ms=latency_ms,
        error_rate=error_rate,
        job_seconds=job_seconds,
        fault_seed=fault_seed,
        max_body_bytes=max_body_bytes,
        clock=clock,
    )
    client_kwargs.setdefault("api_key", "local")
    client_kwargs.setdefault("base_url", LOCAL_BASE_URL)
    http_client = httpx2.Client(transport=LocalTransport(router), base_url=client_kwargs["base_url"])
    client = openai.OpenAI(http_client=http_client, **client_kwargs)
    client._local_router = router  # type: ignore[attr-defined] - handy for tests and stats
    return client
