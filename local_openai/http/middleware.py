"""What wraps every request before it reaches its route: latency, faults, errors, size, auth.

A middleware is called with the request and the next step of the chain and returns a
response. The router stacks them outermost first: injected latency and faults come before
any work (so a retried request never duplicates a side effect), then everything inside answers
errors in OpenAI's envelope (an unexpected exception is a 500: the server never dies on a
request), then the body size limit and the bearer-token check guard the routes.
"""

from __future__ import annotations

import random
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from functools import partial
from hmac import compare_digest
from typing import Protocol

from local_openai.exceptions import (
    InvalidApiKey,
    MissingApiKey,
    OpenAIError,
    RateLimitExceeded,
    RequestTooLarge,
    ServerError,
    ServiceUnavailable,
)
from local_openai.http.messages import LocalRequest, LocalResponse, error_response
from local_openai.options import body_limit

App = Callable[[LocalRequest], LocalResponse]
RETRY_AFTER_MS = 100  # what injected 429/503 responses ask the client to wait
FAULT_STATUSES = (429, 500, 503)


class Middleware(Protocol):
    """One layer around the routes."""

    def __call__(self, request: LocalRequest, call_next: App) -> LocalResponse: ...


def stack(layers: Sequence[Middleware], app: App) -> App:
    """`app` wrapped in `layers`, the first one outermost."""
    for layer in reversed(layers):
        app = partial(layer, call_next=app)
    return app


class Latency:
    """Delays every response, as a slow network or a busy server would."""

    def __init__(self, latency_ms: float) -> None:
        self.seconds = latency_ms / 1000.0

    def __call__(self, request: LocalRequest, call_next: App) -> LocalResponse:
        if self.seconds:
            time.sleep(self.seconds)
        return call_next(request)


class FaultInjection:
    """Answers a share of requests 429, 500 or 503 (seeded), before any work is done.

    `stats` counts requests and faults server-side, so tests can prove faults really happened.
    """

    def __init__(self, error_rate: float, seed: int | None) -> None:
        self.error_rate = error_rate
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.stats: dict[str, int] = {"requests": 0, "faults": 0, "429": 0, "500": 0, "503": 0}

    def __call__(self, request: LocalRequest, call_next: App) -> LocalResponse:
        status = self._draw()
        return call_next(request) if status is None else error_response(self._fault(status))

    def _draw(self) -> int | None:
        """The status of an injected fault for this request, or None."""
        with self._lock:
            self.stats["requests"] += 1
            if not self.error_rate or self._rng.random() >= self.error_rate:
                return None
            status = self._rng.choice(FAULT_STATUSES)
            self.stats["faults"] += 1
            self.stats[str(status)] += 1
            return status

    @staticmethod
    def _fault(status: int) -> OpenAIError:
        retry = {"retry-after": "1", "retry-after-ms": str(RETRY_AFTER_MS), "x-local-fault": "injected"}
        if status == 429:
            return RateLimitExceeded("Rate limit reached for requests (injected by the local backend).", headers=retry)
        if status == 503:
            return ServiceUnavailable(
                "The server is overloaded or not ready yet (injected by the local backend).", headers=retry
            )
        return ServerError(
            "The server had an error while processing your request (injected by the local backend).",
            headers={"x-local-fault": "injected"},
        )


def error_envelopes(request: LocalRequest, call_next: App) -> LocalResponse:
    """OpenAI errors in their envelope; anything unexpected is logged and answered 500."""
    try:
        return call_next(request)
    except OpenAIError as error:
        return error_response(error)
    except Exception:  # noqa: BLE001 - report, answer 500, keep serving
        traceback.print_exc(file=sys.stderr)
        return error_response(ServerError())


class BodySizeLimit:
    """413 for a body (or a declared content-length) over the limit (smaller for JSON than uploads)."""

    def __init__(self, max_body_bytes: int) -> None:
        self.max_body_bytes = max_body_bytes

    def __call__(self, request: LocalRequest, call_next: App) -> LocalResponse:
        declared = request.headers.get("content-length", "")
        size = max(len(request.body), int(declared) if declared.isdigit() else 0)
        limit = body_limit(self.max_body_bytes, request.headers.get("content-type", ""))
        if size > limit:
            raise RequestTooLarge(limit, size)
        return call_next(request)


class BearerAuth:
    """401 unless the request carries the server's key as a bearer token (when it has one)."""

    def __init__(self, api_key: str | None) -> None:
        self.api_key = api_key

    def __call__(self, request: LocalRequest, call_next: App) -> LocalResponse:
        if self.api_key is not None:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise MissingApiKey()
            # Exactly the key (no stripping: "key " is another key), compared in constant time;
            # the key is never echoed in the message.
            if not compare_digest(token.encode(), self.api_key.encode()):
                raise InvalidApiKey()
        return call_next(request)
