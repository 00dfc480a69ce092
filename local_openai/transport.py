"""In-process transport: the `openai` client talks to the local router without any socket.

The openai package in this environment is built on httpx2 (the successor of httpx), so the
transport subclasses `httpx2.BaseTransport`; the client code path is otherwise exactly the
one used over the network (serialisation, retries, response parsing).
"""

from __future__ import annotations

import os
from typing import Any

import httpx2
import openai

from local_openai.http import LocalRequest, Router
from local_openai.options import DEFAULT_JOB_SECONDS, BackendOptions

LOCAL_BASE_URL = "http://local-openai.invalid/v1"
LOCAL_AZURE_BASE_URL = "http://local-openai.invalid/openai/v1"  # the azure profile's v1 API
LOCAL_ROOT_URL = "http://local-openai.invalid"  # the azure profile's management routes are under it


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
    job_seconds: float = DEFAULT_JOB_SECONDS,
    *,
    server_api_key: str | None = None,
    **kwargs: Any,
) -> openai.OpenAI:
    """A real `openai.OpenAI` client whose HTTP goes to an in-process local backend.

    Keywords that are `BackendOptions` fields (latency_ms, error_rate, fault_seed, max_body_bytes,
    clock, profile, model_shutdowns, refuse_fine_tuning, job_list_lag_seconds) configure the backend the
    same way the `serve` flags do, with `server_api_key` as its key; `clock` (seconds since the
    epoch) lets tests step a job's lifecycle deterministically. The other keywords go to `openai.OpenAI` (api_key defaults
    to "local"; max_retries, timeout, ...). The router is reachable as `client._local_router`.
    Under profile="azure" the base URL is Azure's v1 path, and `local_http_client(router)`
    reaches the management routes.
    """
    backend = BackendOptions.take(kwargs, keep=("api_key", "data_dir", "job_seconds"))
    router = Router(BackendOptions(data_dir=data_dir, job_seconds=job_seconds, api_key=server_api_key, **backend))
    kwargs.setdefault("api_key", "local")
    kwargs.setdefault("base_url", LOCAL_AZURE_BASE_URL if router.options.profile == "azure" else LOCAL_BASE_URL)
    http_client = httpx2.Client(transport=LocalTransport(router), base_url=kwargs["base_url"])
    client = openai.OpenAI(http_client=http_client, **kwargs)
    client._local_router = router  # type: ignore[attr-defined] - handy for tests and stats
    return client


def local_http_client(router: Router, base_url: str = LOCAL_ROOT_URL) -> httpx2.Client:
    """A plain HTTP client on an in-process router (the azure profile's management routes)."""
    return httpx2.Client(transport=LocalTransport(router), base_url=base_url)
