"""`LocalOpenAIResource`: dagster-openai's resource, with its client wired to the local backend."""

from __future__ import annotations

from dagster import InitResourceContext
from pydantic import Field

from fine_tuning.lib.provider_resources import ProviderOpenAIResource
from local_openai.options import DEFAULT_JOB_SECONDS, BackendOptions
from local_openai.transport import local_client


class LocalOpenAIResource(ProviderOpenAIResource):
    """An `OpenAIResource` whose `openai.OpenAI` client reaches the local backend in-process.

    Everything else (get_client, usage metadata on chat completions) is dagster-openai's own.
    """

    provider: str = Field(default="local", description="Always local.")
    api_key: str = Field(default="local", description="Sent as the bearer token; the local store ignores it.")
    data_dir: str = Field(
        default="", description="Store directory; empty means settings.local_openai_dir() (under FINE_TUNING_WORKDIR)."
    )
    job_seconds: float = Field(default=DEFAULT_JOB_SECONDS, description="Seconds from job creation to a final state.")
    batch_seconds: float | None = Field(
        default=None, description="Seconds from batch creation to completed; unset means job_seconds."
    )

    def resolved_data_dir(self) -> str:
        """The store directory actually used."""
        return str(BackendOptions(data_dir=self.data_dir or None).store_dir())

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Create the in-process client instead of a network one."""
        self._client = local_client(
            self.resolved_data_dir(),
            job_seconds=self.job_seconds,
            batch_seconds=self.batch_seconds,
            api_key=self.api_key,
            organization=self.organization,
            project=self.project,
        )
