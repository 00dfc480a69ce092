"""The framework-free HTTP layer of the local backend.

- `messages`: `LocalRequest`, `LocalResponse`, OpenAI's JSON and error envelopes.
- `parsing`: multipart uploads, JSON bodies, query parameters.
- `handlers`: one thin function per endpoint (parse, call the backend, serialise).
- `routes`: the route table (method + path pattern -> handler).
- `middleware`: latency and fault injection, error envelopes, body size limit, bearer auth.
- `router`: `Router`, the middleware stacked around the routes.
"""

from local_openai.http.messages import LocalRequest, LocalResponse, error_response
from local_openai.http.router import Router

__all__ = ["LocalRequest", "LocalResponse", "Router", "error_response"]
