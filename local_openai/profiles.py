"""Which provider the backend plays (`--profile`): OpenAI's shape, or Azure OpenAI's.

`openai`: the API at /v1 with bearer-token auth. `azure`: Azure OpenAI's v1 API at /openai/v1
(the same routes), the key in the `api-key` header (or as a bearer token, which Azure's v1 API
also takes), models named by deployment, and the minimal management routes a deployment step
uses (create or update, get, delete a deployment), at the server's own address. Base models
answer under their own names, as if deployed under them; a fine-tuned model answers only
through a deployment.
"""

from __future__ import annotations

import json
from hmac import compare_digest

from local_openai.deployments import AzureError
from local_openai.exceptions import InvalidApiKey, MissingApiKey
from local_openai.http.handlers import Handler
from local_openai.http.messages import LocalRequest, LocalResponse, json_response
from local_openai.http.middleware import App, BearerAuth
from local_openai.http.parsing import parse_json_body, query_value
from local_openai.http.routes import ROUTES, Route
from local_openai.models import BASE_MODELS
from local_openai.options import BackendOptions
from local_openai.service import LocalOpenAI

AZURE_PREFIX = "/openai"
MANAGEMENT_PREFIX = "/subscriptions/"
DEPLOYMENT_PATH = (
    "/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.CognitiveServices"
    "/accounts/{account}/deployments/{deployment}"
)


def _scope(path: dict[str, str]) -> str:
    return (f"/subscriptions/{path['subscription']}/resourceGroups/{path['group']}"
            f"/providers/Microsoft.CognitiveServices/accounts/{path['account']}")


def _require_api_version(request: LocalRequest) -> None:
    if not query_value(request, "api-version"):
        raise AzureError(400, "MissingApiVersionParameter",
                         "The api-version query parameter (?api-version=) is required for all requests.")


def put_deployment(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """PUT .../deployments/{deployment}?api-version= : create or update."""
    _require_api_version(request)
    status, body = backend.azure_deployments().put(_scope(path), path["deployment"], parse_json_body(request))
    return json_response(status, body)


def get_deployment(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """GET .../deployments/{deployment}?api-version="""
    _require_api_version(request)
    return json_response(200, backend.azure_deployments().get(path["deployment"]))


def delete_deployment(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """DELETE .../deployments/{deployment}?api-version="""
    _require_api_version(request)
    status = backend.azure_deployments().delete(path["deployment"])
    return LocalResponse(status, {"content-type": "application/json"}, b"" if status == 204 else b"{}")


def azure_model(backend: LocalOpenAI, name: object) -> object:
    """The model a request's `model` (a deployment name) reaches; base models answer under their own names."""
    if not isinstance(name, str) or name in BASE_MODELS:
        return name
    return backend.azure_deployments().model_for(name)


def _through_deployment(handler: Handler) -> Handler:
    """`handler` with the body's `model` read as a deployment name."""
    def translated(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
        body = parse_json_body(request)
        body["model"] = azure_model(backend, body.get("model"))
        request = LocalRequest(request.method, request.path, request.query, request.headers, json.dumps(body).encode())
        return handler(backend, request, path)
    return translated


def _azure_routes() -> tuple[Route, ...]:
    routes = []
    for original in ROUTES:
        handler = original.handler
        if (original.method, original.path) == ("POST", "/v1/chat/completions"):
            handler = _through_deployment(handler)
        routes.append(Route(original.method, AZURE_PREFIX + original.path, handler))
    return (*routes,
            Route("PUT", DEPLOYMENT_PATH, put_deployment),
            Route("GET", DEPLOYMENT_PATH, get_deployment),
            Route("DELETE", DEPLOYMENT_PATH, delete_deployment))


AZURE_ROUTES: tuple[Route, ...] = _azure_routes()


def routes_for(options: BackendOptions) -> tuple[Route, ...]:
    """The route table of the profile."""
    return AZURE_ROUTES if options.profile == "azure" else ROUTES


class AzureKeyAuth:
    """Azure OpenAI's auth: the `api-key` header (or a bearer token) must be the key; management
    routes take any bearer token (the local server cannot check Entra ID tokens) but need one."""

    def __init__(self, api_key: str | None) -> None:
        self.api_key = api_key

    def __call__(self, request: LocalRequest, call_next: App) -> LocalResponse:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        bearer = token if scheme.lower() == "bearer" else ""  # exactly: "key " is another key
        if request.path.startswith(MANAGEMENT_PREFIX):
            if not bearer:
                raise AzureError(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
            return call_next(request)
        if self.api_key is not None:
            given = request.headers.get("api-key", "") or bearer
            if not given:
                raise MissingApiKey()
            if not compare_digest(given.encode(), self.api_key.encode()):
                raise InvalidApiKey()
        return call_next(request)


def auth_for(options: BackendOptions) -> BearerAuth | AzureKeyAuth:
    """The auth middleware of the profile."""
    return AzureKeyAuth(options.api_key) if options.profile == "azure" else BearerAuth(options.api_key)
