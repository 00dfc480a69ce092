"""Azure OpenAI deployments through the Azure management REST API (Dagster-free).

A fine-tuned model on Azure answers only through a deployment. `AzureDeployments.ensure` makes
sure one named deployment serves one model: it reuses a succeeded one, creates it (again, when
Azure deleted it after 15 idle days), or points it at the new model, then waits until Azure
reports `Succeeded`. The bearer token comes from AZURE_MANAGEMENT_TOKEN, else from azure-identity's
DefaultAzureCredential when that package is installed (it is not a dependency of this project).
"""

from __future__ import annotations

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


def deployment_name(task: str, model: str) -> str:
    """A stable deployment name for a fine-tuned model: the task and the model's own id, 2-64 characters."""
    model_id = re.split(r"[:.]", model.strip())[-1] or "model"
    name = _NAME_CHARS.sub("-", f"{task}-{model_id}").strip("-.")
    return name[:64].rstrip("-.")


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
            return self.http.request(method, self.account.deployment_path(name), params={"api-version": API_VERSION}, headers=self._headers, json=body)
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

    def ensure(self, name: str, model: str, *, existed_before: bool = False, timeout_seconds: float = 3600.0) -> DeploymentOutcome:
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
