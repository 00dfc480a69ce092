"""The local backend over real HTTP: a bare ASGI adapter around the router, run by uvicorn.

No web framework: the router already does routing and parsing, so the adapter only turns an
ASGI scope into a `LocalRequest` and runs the synchronous router in a worker thread so slow
requests (training, injected latency) do not block others. Against hostile clients it checks
the key from the headers before reading any body, reads at most the body limit within a time
bound (408 after it), and closes a connection whose headers take too long.
"""

from __future__ import annotations

import asyncio
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
from uvicorn.protocols.http.h11_impl import H11Protocol

from local_openai.exceptions import RequestTimeout, RequestTooLarge
from local_openai.http import LocalRequest, LocalResponse, Router, error_response
from local_openai.options import BackendOptions, body_limit

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8800


# Per-connection time bounds: a client that trickles its headers or its body (slowloris) holds
# a connection and, for the body, a buffer; these cut it off. Generous for real clients: a
# 128 MB upload at 2 MB/s takes 64 s.
HEADER_SECONDS = 10.0
BODY_SECONDS = 120.0


class AsgiApp:
    """ASGI callable serving a `Router`: authenticates from the headers, then reads the body within a time bound."""

    def __init__(self, router: Router, body_seconds: float = BODY_SECONDS) -> None:
        self.router = router
        self.body_seconds = body_seconds

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = LocalRequest(
            method=scope["method"],
            path=scope["path"],
            query=urllib.parse.parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True),
            headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])},
        )
        refused = self.router.refusal(request)  # before a byte of the body is read
        if refused is not None:
            await self._send(send, refused)
            return
        limit = self._body_limit(scope)
        try:
            with anyio.fail_after(self.body_seconds):
                body = await self._read_body(scope, receive, limit)
        except TimeoutError:
            await self._send(send, error_response(RequestTimeout(self.body_seconds)))
            return
        if body is None:
            response = error_response(RequestTooLarge(limit))
        else:
            request.body = body
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


class BoundedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a bound on the time a request's headers may take.

    uvicorn bounds only the idle time between requests (keep-alive), and a byte of a request
    cancels even that: a client sending its headers one byte a minute would hold the connection
    for ever. The timer runs from the connection's start (and from each response's end) until a
    request's headers are complete; then the connection is closed.
    """

    header_seconds: float = HEADER_SECONDS
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before and self._header_timer is not None:  # headers complete
            self._header_timer.cancel()
            self._header_timer = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._header_timer = self.loop.call_later(self.header_seconds, self._headers_too_slow)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def bounded_protocol(header_seconds: float = HEADER_SECONDS) -> type[BoundedH11Protocol]:
    """The HTTP protocol class uvicorn should use, with its header time bound."""
    return type("BoundedH11Protocol", (BoundedH11Protocol,), {"header_seconds": header_seconds})


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
        f"error rate {options.error_rate}, job {options.job_seconds} s"
        + (f", job list lag {options.job_list_lag_seconds} s" if options.job_list_lag_seconds else "") + ")",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on",
                http=bounded_protocol())


@dataclass
class RunningServer:
    """A server started by `running_server`: where it listens and its router (for stats)."""

    base_url: str
    port: int
    router: Router


@contextmanager
def serving(
    app: AsgiApp, host: str = DEFAULT_HOST, port: int = 0, header_seconds: float = HEADER_SECONDS
) -> Iterator[int]:
    """Serve `app` with uvicorn in a background thread (port 0 = a free port); yields the bound port.

    Always shut down on exit. Tests use it to serve a router they built themselves.
    """
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
                            http=bounded_protocol(header_seconds))
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
