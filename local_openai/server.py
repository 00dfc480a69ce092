"""The local backend over real HTTP: a bare ASGI adapter around the router, run by uvicorn.

No web framework: the router already does routing and parsing, so the adapter only turns an
ASGI scope into a `LocalRequest` (reading at most the body limit) and runs the synchronous
router in a worker thread so slow requests (training, injected latency) do not block others.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import uvicorn

from local_openai.exceptions import RequestTooLarge
from local_openai.http import LocalRequest, LocalResponse, Router, error_response
from local_openai.options import BackendOptions, body_limit

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8800


class AsgiApp:
    """ASGI callable serving a `Router`."""

    def __init__(self, router: Router) -> None:
        self.router = router

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        limit = self._body_limit(scope)
        body = await self._read_body(scope, receive, limit)
        if body is None:
            response = error_response(RequestTooLarge(limit))
        else:
            request = LocalRequest(
                method=scope["method"],
                path=scope["path"],
                query=urllib.parse.parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True),
                headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])},
                body=body,
            )
            response = await anyio.to_thread.run_sync(self.router.handle, request)
        await self._send(send, response)

    def _body_limit(self, scope: dict[str, Any]) -> int:
        """The body limit for this request's content type (JSON requests get the smaller one)."""
        for name, value in scope.get("headers", []):
            if name.lower() == b"content-type":
                return body_limit(self.router.options.max_body_bytes, value.decode("latin-1"))
        return body_limit(self.router.options.max_body_bytes, "")

    @staticmethod
    async def _read_body(scope: dict[str, Any], receive: Any, limit: int) -> bytes | None:
        """The body, or None once it exceeds `limit` (stops reading: no unbounded buffering)."""
        headers = {name.lower(): value for name, value in scope.get("headers", [])}
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b""
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    @staticmethod
    async def _send(send: Any, response: LocalResponse) -> None:
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
        headers.append((b"content-length", str(len(response.body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    @staticmethod
    async def _lifespan(receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(options: BackendOptions) -> AsgiApp:
    """The ASGI app serving a backend with these options."""
    return AsgiApp(Router(options))


def serve(options: BackendOptions, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve the API at http://{host}:{port}/v1 (/openai/v1 under the azure profile) until interrupted (loopback by default)."""
    app = create_app(options)
    print(
        f"local OpenAI backend ({options.profile} profile): http://{host}:{port}"
        f"{'/openai/v1' if options.profile == 'azure' else '/v1'} (store {app.router.backend.store.root}, "
        f"auth {'on' if options.api_key else 'off'}, latency {options.latency_ms} ms, "
        f"error rate {options.error_rate}, job {options.job_seconds} s)",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")


@dataclass
class RunningServer:
    """A server started by `running_server`: where it listens and its router (for stats)."""

    base_url: str
    port: int
    router: Router


@contextmanager
def serving(app: AsgiApp, host: str = DEFAULT_HOST, port: int = 0) -> Iterator[int]:
    """Serve `app` with uvicorn in a background thread (port 0 = a free port); yields the bound port.

    Always shut down on exit. Tests use it to serve a router they built themselves.
    """
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="local-openai-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("local OpenAI server did not start")
            time.sleep(0.01)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def running_server(
    data_dir: str | os.PathLike[str], host: str = DEFAULT_HOST, port: int = 0, **options: Any
) -> Iterator[RunningServer]:
    """The backend over HTTP in a background thread until the block ends.

    `options` are `BackendOptions` keywords (job_seconds, api_key, error_rate, ...).
    """
    app = create_app(BackendOptions(data_dir=data_dir, **options))
    with serving(app, host, port) as bound:
        yield RunningServer(f"http://{host}:{bound}/v1", bound, app.router)
