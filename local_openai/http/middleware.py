"""What wraps every request before it reaches its route: latency, rate limits, faults, errors,
size, auth.

A middleware is called with the request and the next step of the chain and returns a
response. The router stacks them outermost first: injected latency, the rate limits (OpenAI's
`x-ratelimit-*` and `openai-processing-ms` headers on every reply) and injected faults come before
any work (so a retried request never duplicates a side effect), then everything inside answers
errors in OpenAI's envelope (an unexpected exception is a 500: the server never dies on a
request), then the body size limit and the bearer-token check guard the routes.
"""

from __future__ import annotations

import math
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
    TokenRateLimitExceeded,
)
from local_openai.http.messages import LocalRequest, LocalResponse, error_response
from local_openai.options import body_limit

App = Callable[[LocalRequest], LocalResponse]
# What injected 429/503 responses ask the client to wait: whole seconds, so that `retry-after`
# (RFC 9110: integer seconds) and `retry-after-ms` say the same.
RETRY_AFTER_SECONDS = 1
FAULT_STATUSES = (429, 500, 503)
# The local server's own per-minute limits (no tier: high enough that tests and benchmarks stay
# under them); reported and enforced as OpenAI reports and enforces an organization's limits.
REQUESTS_PER_MINUTE = 30_000
TOKENS_PER_MINUTE = 150_000_000
# OpenAI estimates a request's tokens before answering it; here: body bytes / 4.
BYTES_PER_TOKEN_ESTIMATE = 4


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
        retry = {**retry_headers(RETRY_AFTER_SECONDS), "x-local-fault": "injected"}
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


def retry_headers(seconds: float) -> dict[str, str]:
    """`retry-after` (whole seconds, rounded up) and `retry-after-ms` saying the same wait."""
    whole = max(1, math.ceil(seconds))
    return {"retry-after": str(whole), "retry-after-ms": str(whole * 1000)}


def reset_duration(seconds: float) -> str:
    """A wait as OpenAI writes it in `x-ratelimit-reset-*`: `17ms`, `1.5s`, `6m0s`."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    rest_text = f"{round(rest, 3):g}s"
    return f"{int(minutes)}m{rest_text}" if minutes else rest_text


class Bucket:
    """A per-minute allowance refilled continuously (a token bucket), as OpenAI's limits behave."""

    def __init__(self, per_minute: int, clock: Callable[[], float]) -> None:
        self.limit = per_minute
        self._level = float(per_minute)
        self._clock = clock
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._level = min(float(self.limit), self._level + (now - self._at) * self.limit / 60.0)
        self._at = now

    def take(self, amount: int) -> float:
        """Take `amount`: 0.0 when it was available, else the seconds until it will be (nothing taken)."""
        self._refill()
        if amount <= self._level:
            self._level -= amount
            return 0.0
        return (amount - self._level) * 60.0 / self.limit

    def give_back(self, amount: int) -> None:
        """Return what was taken for a request that was not answered."""
        self._level = min(float(self.limit), self._level + amount)

    def remaining(self) -> int:
        """What is left now."""
        self._refill()
        return int(self._level)

    def reset_seconds(self) -> float:
        """Seconds until the allowance is full again."""
        self._refill()
        return (self.limit - self._level) * 60.0 / self.limit


class RateLimits:
    """OpenAI's rate-limit headers on every reply, a 429 when a per-minute limit is reached, and
    `openai-processing-ms` (time spent answering)."""

    def __init__(self, requests_per_minute: int = REQUESTS_PER_MINUTE, tokens_per_minute: int = TOKENS_PER_MINUTE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.requests = Bucket(requests_per_minute, clock)
        self.tokens = Bucket(tokens_per_minute, clock)
        self._lock = threading.Lock()

    def __call__(self, request: LocalRequest, call_next: App) -> LocalResponse:
        started = time.perf_counter()
        with self._lock:
            refusal = self._admit(request)
            limits = self._headers()
        response = error_response(refusal) if refusal is not None else call_next(request)
        processing_ms = round((time.perf_counter() - started) * 1000)
        response.headers.update({**limits, "openai-processing-ms": str(processing_ms)})
        return response

    def _admit(self, request: LocalRequest) -> OpenAIError | None:
        """Take one request and its estimated tokens, or the 429 saying how long to wait."""
        wanted = _estimated_tokens(request)
        wait = self.requests.take(1)
        if wait:
            return RateLimitExceeded(self._message("requests per min (RPM)", self.requests, 1, wait), headers=retry_headers(wait))
        wait = self.tokens.take(wanted)
        if wait:
            self.requests.give_back(1)  # not answered: the request does not count
            return TokenRateLimitExceeded(self._message("tokens per min (TPM)", self.tokens, wanted, wait),
                                          headers=retry_headers(wait))
        return None

    @staticmethod
    def _message(what: str, bucket: Bucket, requested: int, wait: float) -> str:
        used = bucket.limit - bucket.remaining()
        return (f"Rate limit reached on {what}: Limit {bucket.limit}, Used {used}, Requested {requested}. "
                f"Please try again in {reset_duration(wait)}.")

    def _headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit-requests": str(self.requests.limit),
            "x-ratelimit-limit-tokens": str(self.tokens.limit),
            "x-ratelimit-remaining-requests": str(self.requests.remaining()),
            "x-ratelimit-remaining-tokens": str(self.tokens.remaining()),
            "x-ratelimit-reset-requests": reset_duration(self.requests.reset_seconds()),
            "x-ratelimit-reset-tokens": reset_duration(self.tokens.reset_seconds()),
        }


def _estimated_tokens(request: LocalRequest) -> int:
    # Only model calls count against the token limit (file uploads and job requests do not).
    if request.method != "POST" or not request.path.endswith("/chat/completions"):
        return 0
    return math.ceil(len(request.body) / BYTES_PER_TOKEN_ESTIMATE)


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
