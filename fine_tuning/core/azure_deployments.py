"""Azure OpenAI deployments through the Azure management REST API (Dagster-free).

A fine-tuned model on Azure answers only through a deployment. `AzureDeployments.ensure` makes
sure one named deployment serves one model: it reuses a succeeded one, creates it (again, when
Azure deleted it after 15 idle days), or points it at the new model, then waits until Azure
reports `Succeeded`. The bearer token comes from AZURE_MANAGEMENT_TOKEN, else from azure-identity's
DefaultAzureCredential when that package is installed (it is not a dependency of this project).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx2

# Management API version of the deployment calls (Microsoft's fine-tuning deployment guide uses it).
API_VERSION = "2024-10-21"
DEFAULT_MANAGEMENT_ENDPOINT = "https://management.azure.com"
MANAGEMENT_SCOPE = "https://management.azure.com/.default"
TOKEN_ENV = "AZURE_MANAGEMENT_TOKEN"
_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


class AzureDeploymentError(RuntimeError):
    """A deployment call Azure refused, or a deployment that did not reach Succeeded (Azure's words)."""


@dataclass(frozen=True)
class AzureAccount:
    """Where deployments are created: the account's coordinates and the deployment SKU."""

    subscription_id: str
    resource_group: str
    account: str
    management_endpoint: str = DEFAULT_MANAGEMENT_ENDPOINT
    sku: str = "standard"
    capacity: int = 1

    def deployment_path(self, name: str) -> str:
        """The deployment's resource path under the management endpoint."""
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}/providers/"
                f"Microsoft.CognitiveServices/accounts/{self.account}/deployments/{name}")


@dataclass(frozen=True)
class DeploymentOutcome:
    """What `ensure` did: the deployment name (what applications pass as `model`), its model and action."""

    name: str
    model: str
    action: str  # "reused" | "created" | "recreated" | "updated"
    state: str


def is_fine_tuned(model: str) -> bool:
    """Whether a model name is a fine-tuned model's (OpenAI's `ft:...` or Azure's `<base>.ft-<id>`)."""
    return model.startswith("ft:") or ".ft-" in model


def deployment_name(model: str) -> str:
    """The deployment a fine-tuned model answers through: a pure function of its name, so every step
    (and every application) finds it without a lookup. `ft:BASE:ORG:SUFFIX:ID` -> `SUFFIX-ID`;
    Azure's `BASE.ft-ID` -> `ft-ID`; 2-64 letters, digits, '.', '-', '_'."""
    parts = model.strip().split(":")
    if model.startswith("ft:") and len(parts) >= 5:
        raw = f"{parts[3]}-{parts[4]}" if parts[3] else parts[4]
    else:
        raw = re.split(r"\.(?=ft-)", model.strip())[-1]
    name = _NAME_CHARS.sub("-", raw).strip("-.")
    return name[:64].rstrip("-.") or "fine-tuned-model"


class DeploymentRouting(httpx2.BaseTransport):
    """Sends requests naming a fine-tuned model to its deployment (Azure answers a fine-tuned model
    only through one): the JSON body's `model` becomes `deployment_name(model)`. The pipeline keeps
    using model names everywhere else (scores, promotion, metadata)."""

    def __init__(self, inner: httpx2.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Rewrite the model of a JSON request body, then send it on."""
        if request.method == "POST" and request.headers.get("content-type", "").startswith("application/json"):
            body = request.read()
            try:
                payload = json.loads(body or b"null")
            except ValueError:
                payload = None
            if isinstance(payload, dict) and isinstance(payload.get("model"), str) and is_fine_tuned(payload["model"]):
                payload["model"] = deployment_name(payload["model"])
                headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
                request = httpx2.Request(request.method, request.url, headers=headers, content=json.dumps(payload).encode(),
                                         extensions=request.extensions)
        return self.inner.handle_request(request)

    def close(self) -> None:
        """Close the transport underneath."""
        self.inner.close()


def management_token(environ: dict[str, str] | None = None) -> str:
    """AZURE_MANAGEMENT_TOKEN, else a token from azure-identity's DefaultAzureCredential if installed."""
    env = os.environ if environ is None else environ
    token = env.get(TOKEN_ENV)
    if token:
        return token
    try:
        from azure.identity import DefaultAzureCredential  # type: ignore[import-not-found]
    except ImportError:
        raise AzureDeploymentError(
            f"No Azure management credential: set {TOKEN_ENV} (for example from `az account get-access-token "
            "--resource https://management.azure.com --query accessToken -o tsv`), or install azure-identity "
            "so DefaultAzureCredential can find one in the environment."
        ) from None
    return DefaultAzureCredential().get_token(MANAGEMENT_SCOPE).token


class AzureDeployments:
    """Create, read and wait for deployments of one account over the management REST API."""

    def __init__(
        self, account: AzureAccount, token: str, http: httpx2.Client | None = None, *,
        poll_seconds: float = 5.0, sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.account = account
        self._headers = {"authorization": f"Bearer {token}"}
        # An injected client (tests: the local backend in-process) must have the endpoint as base URL.
        self.http = http or httpx2.Client(base_url=account.management_endpoint, timeout=60.0)
        self.poll_seconds = poll_seconds
        self.sleep = sleep
        self.monotonic = monotonic

    def _call(self, method: str, name: str, body: dict[str, Any] | None = None) -> httpx2.Response:
        try:  # relative to the client's base URL: the management endpoint
            return self.http.request(method, self.account.deployment_path(name), params={"api-version": API_VERSION},
                                     headers=self._headers, json=body)
        except httpx2.HTTPError as error:
            raise AzureDeploymentError(f"Azure management API unreachable ({type(error).__name__}): {error}") from None

    @staticmethod
    def _refusal(response: httpx2.Response, what: str) -> AzureDeploymentError:
        try:
            error = response.json().get("error") or {}
            words = f"{error.get('code')}: {error.get('message')}"
        except ValueError:
            words = response.text[:500]
        return AzureDeploymentError(f"Azure refused to {what} (HTTP {response.status_code}): {words}")

    def get(self, name: str) -> dict[str, Any] | None:
        """The deployment, or None when it does not exist (never made, deleted, or deleted for idleness)."""
        response = self._call("GET", name)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._refusal(response, f"read deployment {name}")
        return response.json()

    def put(self, name: str, model: str) -> dict[str, Any]:
        """Create or update the deployment so it serves `model`."""
        body = {"sku": {"name": self.account.sku, "capacity": self.account.capacity},
                "properties": {"model": {"format": "OpenAI", "name": model, "version": "1"}}}
        response = self._call("PUT", name, body)
        if response.status_code not in (200, 201):
            raise self._refusal(response, f"deploy {model} as {name}")
        return response.json()

    def ensure(
        self, name: str, model: str, *, existed_before: bool = False, timeout_seconds: float = 3600.0
    ) -> DeploymentOutcome:
        """Make `name` serve `model` and wait until Azure reports it Succeeded."""
        current = self.get(name)
        serving = (current or {}).get("properties", {}).get("model", {}).get("name")
        if current is None:
            action = "recreated" if existed_before else "created"
            current = self.put(name, model)
        elif serving != model:
            action, current = "updated", self.put(name, model)
        else:
            action = "reused"
        state = self._wait(name, current, timeout_seconds)
        return DeploymentOutcome(name=name, model=model, action=action, state=state)

    def _wait(self, name: str, current: dict[str, Any], timeout_seconds: float) -> str:
        deadline = self.monotonic() + timeout_seconds
        while True:
            state = current.get("properties", {}).get("provisioningState", "")
            if state == "Succeeded":
                return state
            if state in ("Failed", "Canceled"):
                raise AzureDeploymentError(f"Deployment {name} ended {state}: {current.get('properties')}")
            if self.monotonic() >= deadline:
                raise AzureDeploymentError(f"Deployment {name} still {state or 'not ready'} after {timeout_seconds:.0f} s")
            self.sleep(self.poll_seconds)
            found = self.get(name)
            if found is None:
                raise AzureDeploymentError(f"Deployment {name} disappeared while being created")
            current = found
