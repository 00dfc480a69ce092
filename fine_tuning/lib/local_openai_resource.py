"""`LocalOpenAIResource`: dagster-openai's resource, with its client wired to the local backend."""

from __future__ import annotations

import httpx2
from dagster import InitResourceContext
from pydantic import Field

from fine_tuning.core.azure_deployments import AzureAccount, AzureDeployments, DeploymentRouting
from fine_tuning.lib.provider_resources import ProviderOpenAIResource
from local_openai.options import DEFAULT_JOB_SECONDS, BackendOptions
from local_openai.transport import LocalTransport, local_client, local_http_client

# The account the in-process azure profile pretends to be (its management routes accept any).
LOCAL_AZURE_ACCOUNT = AzureAccount("local-subscription", "local-group", "local-account")


class LocalOpenAIResource(ProviderOpenAIResource):
    """An `OpenAIResource` whose `openai.OpenAI` client reaches the local backend in-process.

    Everything else (get_client, usage metadata on chat completions) is dagster-openai's own.
    """

    provider: str = Field(default="local", description="local; azure when the backend plays Azure (profile azure).")
    api_key: str = Field(default="local", description="Sent as the bearer token; the local store ignores it.")
    data_dir: str = Field(
        default="", description="Store directory; empty means settings.local_openai_dir() (under FINE_TUNING_WORKDIR)."
    )
    job_seconds: float = Field(default=DEFAULT_JOB_SECONDS, description="Seconds from job creation to a final state.")
    batch_seconds: float | None = Field(
        default=None, description="Seconds from batch creation to completed; unset means job_seconds."
    )

    profile: str = Field(default="openai", description="The provider the backend plays: openai or azure.")
    model_shutdowns: dict[str, str] = Field(
        default_factory=dict, description="Model -> YYYY-MM-DD shutdown date, as `serve --model-shutdown` sets it."
    )
    refuse_fine_tuning: bool = Field(default=False, description="Refuse job creation as for an organization without access.")

    def deployments_client(self) -> AzureDeployments:
        """The azure profile's management routes on the same in-process backend (the deployment step's client)."""
        router = self._client._local_router  # type: ignore[attr-defined]
        return AzureDeployments(LOCAL_AZURE_ACCOUNT, "local", local_http_client(router), poll_seconds=0.2)

    def resolved_data_dir(self) -> str:
        """The store directory actually used."""
        return str(BackendOptions(data_dir=self.data_dir or None).store_dir())

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Create the in-process client instead of a network one (playing Azure: routed to deployments)."""
        client = local_client(
            self.resolved_data_dir(),
            job_seconds=self.job_seconds,
            batch_seconds=self.batch_seconds,
            profile=self.profile,
            model_shutdowns=dict(self.model_shutdowns),
            refuse_fine_tuning=self.refuse_fine_tuning,
            api_key=self.api_key,
            organization=self.organization,
            project=self.project,
        )
        if self.profile == "azure":
            router = client._local_router  # type: ignore[attr-defined]
            http_client = httpx2.Client(transport=DeploymentRouting(LocalTransport(router)), base_url=client.base_url)
            client = client.with_options(http_client=http_client)
            client._local_router = router  # type: ignore[attr-defined]
        self._client = client
