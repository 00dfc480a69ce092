"""The `openai` resource of each provider: OpenAI, Azure OpenAI, or none chosen (fails at start).

Every one is dagster-openai's `OpenAIResource` (usage metadata, `get_client`), with a `provider`
field the assets record as metadata. The local backend's in-process resource
(`LocalOpenAIResource`) derives from `ProviderOpenAIResource` too.
"""

from __future__ import annotations

import dagster as dg
import httpx2
import openai
from dagster import InitResourceContext
from dagster_openai import OpenAIResource
from pydantic import Field

from fine_tuning.core.azure_deployments import (
    AzureAccount,
    AzureDeploymentError,
    AzureDeployments,
    DeploymentRouting,
    management_token,
)
from fine_tuning.core.providers import OPENAI, azure_v1_base_url


class ProviderOpenAIResource(OpenAIResource):
    """dagster-openai's resource, knowing which provider it reaches (`local`, `openai` or `azure`)."""

    provider: str = Field(default=OPENAI, description="The provider this client reaches: local, openai or azure.")


class AzureOpenAIResource(ProviderOpenAIResource):
    """Azure OpenAI's v1 API (`<endpoint>/openai/v1/`) through the official `openai` client.

    The key goes in Azure's `api-key` header (the v1 API also takes it as a bearer token, which
    the client sends anyway). Fine-tuned models answer only through deployments: the deployment
    step creates them with the management API settings below.
    """

    provider: str = Field(default="azure", description="Always azure.")
    endpoint: str = Field(description="The resource's endpoint, https://<resource>.openai.azure.com (AZURE_OPENAI_ENDPOINT).")
    subscription_id: str | None = Field(default=None, description="Subscription of the account (AZURE_SUBSCRIPTION_ID).")
    resource_group: str | None = Field(default=None, description="Resource group of the account (AZURE_RESOURCE_GROUP).")
    account: str | None = Field(default=None, description="The Azure OpenAI account (resource) name (AZURE_OPENAI_ACCOUNT).")
    management_endpoint: str = Field(
        default="https://management.azure.com", description="The Azure management API (AZURE_MANAGEMENT_ENDPOINT)."
    )
    management_token: str | None = Field(
        default=None, description="Bearer token for the management API (AZURE_MANAGEMENT_TOKEN); else azure-identity."
    )
    deployment_sku: str = Field(default="standard", description="SKU of the fine-tuned model's deployment.")
    deployment_capacity: int = Field(default=1, ge=1, description="Capacity of the deployment (thousands of tokens per minute).")

    def deployments_client(self) -> AzureDeployments:
        """The management API client of this account (fails clearly when a coordinate or credential is missing)."""
        missing = [env for env, value in (("AZURE_SUBSCRIPTION_ID", self.subscription_id),
                                          ("AZURE_RESOURCE_GROUP", self.resource_group),
                                          ("AZURE_OPENAI_ACCOUNT", self.account)) if not value]
        if missing:
            raise AzureDeploymentError(
                f"Deploying a fine-tuned model on Azure needs {', '.join(missing)} (where the deployment is created)."
            )
        account = AzureAccount(
            self.subscription_id or "", self.resource_group or "", self.account or "",
            management_endpoint=self.management_endpoint, sku=self.deployment_sku, capacity=self.deployment_capacity,
        )
        token = self.management_token or management_token()
        return AzureDeployments(account, token)

    def base_url_v1(self) -> str:
        """The v1 API base URL under the endpoint."""
        return azure_v1_base_url(self.endpoint)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """A plain `openai.OpenAI` client at the v1 base URL, sending the key as `api-key` too, whose
        requests naming a fine-tuned model go to its deployment (`DeploymentRouting`)."""
        http_client = openai.DefaultHttpxClient(transport=DeploymentRouting(httpx2.HTTPTransport()))
        self._client = openai.OpenAI(
            api_key=self.api_key, base_url=self.base_url_v1(), default_headers={"api-key": self.api_key},
            http_client=http_client,
        )


class UnchosenProviderResource(OpenAIResource):
    """Stands in when the environment chooses no usable provider: any step needing it fails at once.

    Loading the definitions still works (`dg check defs`, the UI); a run fails at resource start
    with the reason, and the preflight refuses every writing step of the run before it starts.
    """

    api_key: str = Field(default="unset", description="Unused: no provider is chosen.")
    problem: str = Field(description="Why no provider can be used, naming the choices.")
    provider: str = Field(default="none", description="No provider.")

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Refuse to start: the run must not reach any provider by default."""
        raise dg.Failure(description=self.problem, allow_retries=False)
