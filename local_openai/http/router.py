"""`Router`: the whole API as a plain function of a request (moto's backend + dispatch).

The uvicorn server and the in-process transport both call `Router.handle`, so they cannot
behave differently.
"""

from __future__ import annotations

import os
from typing import Any

from local_openai.exceptions import OpenAIError
from local_openai.http.messages import LocalRequest, LocalResponse, error_response
from local_openai.http.middleware import (
    BodySizeLimit,
    FaultInjection,
    Latency,
    RateLimits,
    error_envelopes,
    stack,
)
from local_openai.http.routes import route
from local_openai.options import BackendOptions
from local_openai.service import LocalOpenAI


class Router:
    """The local OpenAI-compatible API: middleware around the route table, over one backend.

    `Router(options)` or `Router(data_dir, job_seconds=..., ...)` with `BackendOptions` keywords.
    """

    def __init__(self, options: BackendOptions | str | os.PathLike[str], **overrides: Any) -> None:
        # Imported here: the profiles build on this package's route table and middleware.
        from local_openai.profiles import auth_for, routes_for

        self.options = BackendOptions.of(options, **overrides)
        self.routes = routes_for(self.options)  # the profile's route table (openai or azure)
        self.backend = LocalOpenAI(self.options)
        self.faults = FaultInjection(self.options.error_rate, self.options.fault_seed)
        self.stats = self.faults.stats  # server-side counters of requests and injected faults
        self.auth = auth_for(self.options)  # the profile's: bearer token, or Azure's api-key header
        self._app = stack(
            [
                Latency(self.options.latency_ms),
                RateLimits(),
                self.faults,
                error_envelopes,
                BodySizeLimit(self.options.max_body_bytes),
                self.auth,
            ],
            self._dispatch,
        )

    def handle(self, request: LocalRequest) -> LocalResponse:
        """Answer one request; never raises."""
        return self._app(request)

    def refusal(self, request: LocalRequest) -> LocalResponse | None:
        """The 401 for a request whose headers carry no valid key (None: authenticated).

        The HTTP server asks before it reads a body, so an unauthenticated client cannot make
        it buffer an upload.
        """
        try:
            self.auth(request, call_next=lambda _: None)  # type: ignore[arg-type,return-value]
        except OpenAIError as error:
            return error_response(error)
        return None

    def _dispatch(self, request: LocalRequest) -> LocalResponse:
        handler, params = route(request, self.routes)
        return handler(self.backend, request, params)
