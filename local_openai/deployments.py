"""Azure OpenAI deployments (the azure profile): what a fine-tuned model answers through.

Minimal Azure management API over one account: create or update (PUT), get, delete. A new
deployment is "Creating" for `provision_seconds`, then "Succeeded". As on Azure, a customized
model's deployment with no inference calls for 15 days in a row is deleted (the model stays and
can be deployed again); "today" is the backend's clock, so tests move it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from fine_tuning.core.catalog import AZURE_IDLE_DEPLOYMENT_DAYS
from local_openai.exceptions import OpenAIError
from local_openai.store import Store

DEPLOYMENTS_FILE = "deployments.json"
IDLE_SECONDS = AZURE_IDLE_DEPLOYMENT_DAYS * 24 * 3600.0
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$")  # Azure: 2-64 letters, digits, '.', '-', '_'
RESOURCE_TYPE = "Microsoft.CognitiveServices/accounts/deployments"


class AzureError(OpenAIError):
    """An error in Azure's envelope `{"error": {"code", "message"}}` (the management API's and Azure OpenAI's)."""

    azure_code: str = "BadRequest"

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status  # type: ignore[misc] - one class for the few Azure errors served here
        self.azure_code = code

    def envelope(self) -> dict[str, Any]:
        """Azure's error body."""
        return {"error": {"code": self.azure_code, "message": self.message}}


def deployment_not_found(name: str) -> AzureError:
    """What Azure OpenAI answers for a model name that is no deployment of the resource."""
    return AzureError(
        404, "DeploymentNotFound",
        f"The API deployment {name} for this resource does not exist. If you created the deployment within "
        "the last 5 minutes, please wait a moment and try again.",
    )


@dataclass
class Deployment:
    """One deployment: its name, the model it serves, SKU, and when it was created and last used."""

    name: str
    model: str
    sku: str
    capacity: int
    created_at: float
    last_used_at: float
    scope: str  # /subscriptions/.../accounts/<account>: the resource id's prefix
    ready_at: float  # when provisioning ends, fixed at creation (whoever reads the store later)

    def state(self, now: float) -> str:
        """Azure's provisioningState."""
        return "Succeeded" if now >= self.ready_at else "Creating"

    def to_api(self, now: float) -> dict[str, Any]:
        """The deployment resource as the management API returns it."""
        stamp = datetime.fromtimestamp(self.created_at, UTC).isoformat().replace("+00:00", "Z")
        return {
            "id": f"{self.scope}/deployments/{self.name}", "type": RESOURCE_TYPE, "name": self.name,
            "sku": {"name": self.sku, "capacity": self.capacity},
            "properties": {
                "model": {"format": "OpenAI", "name": self.model, "version": "1"},
                "provisioningState": self.state(now),
            },
            "systemData": {"createdAt": stamp, "lastModifiedAt": stamp},
        }


class Deployments:
    """The account's deployments, kept in one JSON document of the store."""

    def __init__(self, store: Store, clock: Callable[[], float], provision_seconds: float,
                 model_exists: Callable[[str], bool]) -> None:
        self.store = store
        self.clock = clock
        self.provision_seconds = provision_seconds
        self.model_exists = model_exists
        self.path = store.root / DEPLOYMENTS_FILE

    def _load(self) -> dict[str, Deployment]:
        raw = self.store.read_json(self.path) if self.path.exists() else None
        return {name: Deployment(**record) for name, record in (raw or {}).items()}

    def _save(self, deployments: dict[str, Deployment]) -> None:
        self.store.write_json(self.path, {name: asdict(d) for name, d in deployments.items()})

    def _live(self, deployments: dict[str, Deployment], now: float) -> dict[str, Deployment]:
        """Without the deployments Azure deleted for 15 idle days."""
        return {name: d for name, d in deployments.items() if now - max(d.last_used_at, d.created_at) <= IDLE_SECONDS}

    def put(self, scope: str, name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Create (201) or update (200) a deployment of a model this account has."""
        if not _NAME_RE.match(name):
            raise AzureError(400, "InvalidResourceName",
                             f"Deployment name '{name}' is invalid: 2-64 letters, digits, '.', '-' or '_'.")
        sku = body.get("sku") if isinstance(body.get("sku"), dict) else None
        model = ((body.get("properties") or {}).get("model") or {}) if isinstance(body.get("properties"), dict) else {}
        if not sku or not isinstance(sku.get("name"), str):
            raise AzureError(400, "InvalidRequestContent",
                             "The request must name a sku: {\"sku\": {\"name\": ..., \"capacity\": ...}}.")
        if not isinstance(model, dict) or not isinstance(model.get("name"), str) or model.get("format") != "OpenAI":
            raise AzureError(400, "InvalidRequestContent", "properties.model needs format 'OpenAI' and the model's name.")
        if not self.model_exists(model["name"]):
            raise AzureError(400, "DeploymentModelNotSupported", f"The model '{model['name']}' does not exist on this account.")
        now = self.clock()
        with self.store.global_lock():
            deployments = self._live(self._load(), now)
            existing = deployments.get(name)
            created = existing is None or existing.model != model["name"]
            deployments[name] = Deployment(
                name=name, model=model["name"], sku=sku["name"], capacity=int(sku.get("capacity") or 1),
                created_at=now if created else existing.created_at,  # type: ignore[union-attr]
                last_used_at=now if created else existing.last_used_at, scope=scope,  # type: ignore[union-attr]
                ready_at=now + self.provision_seconds if created else existing.ready_at,  # type: ignore[union-attr]
            )
            self._save(deployments)
        return (201 if created else 200), deployments[name].to_api(now)

    def get(self, name: str) -> dict[str, Any]:
        """One deployment, or Azure's 404."""
        now = self.clock()
        found = self._live(self._load(), now).get(name)
        if found is None:
            raise AzureError(404, "DeploymentNotFound", f"Deployment '{name}' not found.")
        return found.to_api(now)

    def delete(self, name: str) -> int:
        """Delete a deployment: 200, or 204 when there was none."""
        with self.store.global_lock():
            deployments = self._live(self._load(), self.clock())
            if deployments.pop(name, None) is None:
                return 204
            self._save(deployments)
        return 200

    def model_for(self, name: str) -> str:
        """The model a succeeded deployment serves (and mark it used), or Azure's DeploymentNotFound."""
        now = self.clock()
        with self.store.global_lock():
            deployments = self._live(self._load(), now)
            found = deployments.get(name)
            if found is None or found.state(now) != "Succeeded":
                raise deployment_not_found(name)
            found.last_used_at = now
            self._save(deployments)
        return found.model
