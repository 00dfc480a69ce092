"""Local backend support: one backend reachable in-process or over real HTTP, and request helpers.

`Backend` hands out real `openai` clients to one store, either through the in-process transport
or over a socket to the same ASGI app `python -m local_openai serve` runs; the suite's
`client` fixture is parametrized over both, so every backend test runs both ways (as moto's
server mode does). The rest: JSONL bytes, uploads, polling, raw-body validation against the
openai package's pydantic types, and the `serve` command as a child process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import openai
from openai.types.fine_tuning import FineTuningJob

from local_openai.http import Router
from local_openai.server import AsgiApp, serving
from local_openai.transport import local_client, local_http_client

from tests.support.processes import free_port, stop, wait_for_port
from tests.support.toy_books import toy_examples

BASE_MODEL = "gpt-4o-mini-2024-07-18"
FINAL = ("succeeded", "failed", "cancelled")
BACKEND_MODES = ("in-process", "http")
# local_client's backend options and the Router arguments they become; the rest configure the client.
_ROUTER_OPTIONS = {"server_api_key": "api_key", "latency_ms": "latency_ms", "error_rate": "error_rate",
                   "fault_seed": "fault_seed", "max_body_bytes": "max_body_bytes", "clock": "clock",
                   "batch_seconds": "batch_seconds", "batch_window_seconds": "batch_window_seconds",
                   "profile": "profile", "model_shutdowns": "model_shutdowns", "refuse_fine_tuning": "refuse_fine_tuning",
                   "job_list_lag_seconds": "job_list_lag_seconds"}


class Clock:
    """A clock the test moves by hand (set `now`), for the backend's lazily advanced jobs."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


@contextmanager
def serving_router(router: Router) -> Iterator[str]:
    """Serve `router` over real HTTP on a free loopback port until the block ends; yields the base URL.

    The ASGI app and uvicorn server of `python -m local_openai serve` around a router the
    test built itself: its options, a stepped clock included, hold over the socket exactly as in-process.
    """
    with serving(AsgiApp(router), "127.0.0.1") as port:
        yield f"http://127.0.0.1:{port}/v1"


class ServerPool:
    """Loopback servers of the backend's ASGI app, kept for the whole test process and lent to one
    test at a time.

    A new uvicorn server per HTTP test cost about 0.2 s to start and stop (its shutdown waits for
    the 0.1 s tick of its loop), some two hundred times a suite. A lent server's app gets the
    test's router (AsgiApp reads its router on every request), so each request still crosses the
    socket, uvicorn, the bounded protocol and the app of `python -m local_openai serve`; a test
    that holds several clients at once gets as many servers.
    """

    def __init__(self, stack: ExitStack) -> None:
        self._stack = stack  # stops the servers when the test process's session ends
        self._idle: list[tuple[AsgiApp, int]] = []

    @contextmanager
    def lend(self, router: Router) -> Iterator[str]:
        """A server that serves `router` until the block ends; yields the base URL."""
        if self._idle:
            app, port = self._idle.pop()
            app.router = router
        else:
            app = AsgiApp(router)
            port = self._stack.enter_context(serving(app, "127.0.0.1"))
        try:
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            self._idle.append((app, port))


class Backend:
    """One local backend store that hands out real `openai` clients, in-process or over HTTP."""

    def __init__(self, mode: str, store: Path, stack: ExitStack, servers: ServerPool | None = None) -> None:
        assert mode in BACKEND_MODES, mode
        self.mode = mode
        self.store = store
        self._stack = stack  # gives back the servers lent to this test, closes its plain HTTP clients
        self._servers = servers  # None: a server of its own for each client

    def client(self, job_seconds: float = 3.0, **options: Any) -> openai.OpenAI:
        """A client configured as `local_client(store, job_seconds, **options)` would be.

        Over HTTP each call serves a router with these backend options on its own port (a server
        lent from the pool when there is one); either way the router is reachable as
        `client._local_router` (stats, probes).
        """
        if self.mode == "in-process":
            return local_client(self.store, job_seconds, **options)
        router_options = {_ROUTER_OPTIONS[name]: options.pop(name) for name in list(options) if name in _ROUTER_OPTIONS}
        router = Router(self.store, job_seconds=job_seconds, **router_options)
        options.setdefault("api_key", "local")
        served = self._servers.lend(router) if self._servers is not None else serving_router(router)
        base_url = self._stack.enter_context(served)
        if router.options.profile == "azure":  # Azure's v1 API, and its management routes at the root
            base_url = base_url.removesuffix("/v1") + "/openai/v1"
        client = openai.OpenAI(base_url=base_url, **options)
        client._local_router = router  # type: ignore[attr-defined] - the same handle local_client gives
        return client

    def http(self, client: openai.OpenAI) -> httpx2.Client:
        """A plain HTTP client to the same server as `client` (the azure profile's management routes)."""
        if self.mode == "in-process":
            return local_http_client(client._local_router)  # type: ignore[attr-defined]
        root = str(client.base_url).split("/openai/v1")[0].split("/v1")[0]
        return self._stack.enter_context(httpx2.Client(base_url=root))


@dataclass
class ServedProcess:
    """`python -m local_openai serve` running as a child process."""

    base_url: str
    process: subprocess.Popen
    stderr: bytes = b""  # what it printed, once it has stopped


@contextmanager
def serve_subprocess(*flags: str) -> Iterator[ServedProcess]:
    """The `serve` command on a free port with `flags`, listening, until the block ends."""
    port = free_port()
    with tempfile.TemporaryFile() as stderr:  # a file, not a pipe: nothing blocks however much it prints
        process = subprocess.Popen(
            [sys.executable, "-m", "local_openai", "serve", "--port", str(port), *flags],
            stdout=subprocess.DEVNULL, stderr=stderr,
        )
        served = ServedProcess(f"http://127.0.0.1:{port}/v1", process)
        try:
            wait_for_port(port, process)
            yield served
        finally:
            stop(process)
            stderr.seek(0)
            served.stderr = stderr.read()


def jsonl(examples: Sequence[dict[str, Any]]) -> bytes:
    """JSONL bytes."""
    return ("\n".join(json.dumps(e) for e in examples) + "\n").encode()


def upload(client: openai.OpenAI, data: bytes, name: str = "train.jsonl") -> str:
    """Upload bytes as a fine-tune file; returns the file id."""
    return client.files.create(file=(name, data), purpose="fine-tune").id


def wait_for(client: openai.OpenAI, job_id: str, statuses: Sequence[str] = FINAL, timeout: float = 60) -> FineTuningJob:
    """Poll a job until it reaches one of `statuses`; fail when it stays in one status `timeout` seconds.

    The timeout only guards against hangs: it runs from the last status change, so the retrieve that
    trains the model (the local backend trains on the move to `running`, however long a loaded
    machine makes that) never counts against it.
    """
    deadline, last = time.monotonic() + timeout, None
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        if job.status != last:
            deadline, last = time.monotonic() + timeout, job.status
        assert time.monotonic() < deadline, f"job {job_id} stuck in {job.status}"
        time.sleep(0.05)


def train_toy_model(client: openai.OpenAI, n: int = 60, **create_kwargs: Any) -> FineTuningJob:
    """Upload toy data, fine-tune, wait; returns the finished job."""
    file_id = upload(client, jsonl(toy_examples(n)))
    create_kwargs.setdefault("suffix", "toy")
    create_kwargs.setdefault("seed", 7)
    job = client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=file_id, **create_kwargs)
    return wait_for(client, job.id)


def validated(model_type: Any, raw: Any) -> Any:
    """Validate a raw JSON body (an httpx response or parsed JSON) against an openai type."""
    data = raw.json() if hasattr(raw, "json") and callable(raw.json) else raw
    return model_type.model_validate(data)
