"""Fixtures of the conformance tests: every test runs against the backend in-process and over HTTP.

`client` is an `openai.OpenAI` client of a fresh backend reached through the transport the test
is parametrized with ("inprocess": the router in this process; "http": uvicorn on a free port).
`make_client(**options)` builds one with other `BackendOptions`; `clock` is the backend's clock,
stepped by hand so lifecycles are deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import openai
import pytest

from fine_tuning.local_openai.server import running_server
from fine_tuning.local_openai.transport import local_client

START = 1_750_000_000.0
JOB_SECONDS = 10.0


class Clock:
    """Seconds since the epoch, moved only by `advance`."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["inprocess", "http"])
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture()
def make_client(transport: str, tmp_path: Path, clock: Clock) -> Iterator[Callable[..., openai.OpenAI]]:
    """Builds clients of new backends (each its own store) with `BackendOptions` keywords."""
    with ExitStack() as stack:
        count = 0

        def build(**options: Any) -> openai.OpenAI:
            nonlocal count
            count += 1
            options = {"job_seconds": JOB_SECONDS, "clock": clock, **options}
            store = tmp_path / f"store-{count}"
            if transport == "inprocess":
                return local_client(store, max_retries=0, **options)
            server = stack.enter_context(running_server(store, **options))
            return openai.OpenAI(base_url=server.base_url, api_key="local", max_retries=0)

        yield build


@pytest.fixture()
def client(make_client: Callable[..., openai.OpenAI]) -> openai.OpenAI:
    return make_client()
