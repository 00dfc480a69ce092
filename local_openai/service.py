"""`LocalOpenAI`: the backend's resources wired to one store (moto's backend object).

The behaviour lives in one module per resource: files.py, jobs/, models.py, chat.py and
batches/; store.py is the store they share and records.py the typed objects they return. The
HTTP layer (http/) parses requests, calls these resources and serialises what they return.
"""

from __future__ import annotations

from typing import Any

from local_openai.batches import Batches
from local_openai.chat import ChatCompletions
from local_openai.deployments import Deployments
from local_openai.exceptions import FineTuningNotAllowed, InvalidRequest, ModelNotFound, OpenAIError
from local_openai.files import Files
from local_openai.graders import Graders
from local_openai.jobs import Jobs
from local_openai.models import BASE_MODELS, Models
from local_openai.options import BackendOptions
from local_openai.shutdowns import Shutdowns
from local_openai.store import Store


class LocalOpenAI:
    """Files, fine-tuning jobs, graders, models, chat completions and batches backed by one `Store`."""

    def __init__(self, options: BackendOptions) -> None:
        self.store = Store(options.store_dir())
        clock = options.clock
        self.files = Files(self.store, clock)
        self.shutdowns = Shutdowns(options.model_shutdowns, clock)  # type: ignore[arg-type] - normalised to pairs
        self.refuse_fine_tuning = options.refuse_fine_tuning
        self.jobs = Jobs(
            self.store, self.files, clock, job_seconds=options.job_seconds, admit=self.admit_job,
            list_lag_seconds=options.job_list_lag_seconds,
        )
        self.models = Models(self.store, self.jobs, self.shutdowns)
        self.graders = Graders()
        self.chat = ChatCompletions(self.models, clock)
        # The azure profile: fine-tuned models answer through deployments (deployments.py).
        self.deployments = (
            Deployments(self.store, clock, options.job_seconds, self.model_exists) if options.profile == "azure" else None
        )
        self.batches = Batches(
            self.store, self.files, clock, self.answer_batch_request, self.request_model_exists,
            batch_seconds=options.batch_duration, window_seconds=options.batch_window_seconds,
        )

    def azure_deployments(self) -> Deployments:
        """The account's deployments (azure profile only: the routes exist only there)."""
        assert self.deployments is not None, "deployments exist only under the azure profile"
        return self.deployments

    def admit_job(self, model: Any) -> None:
        """Refuse a job before any work: an organization without access (403), a shut-down base model."""
        if self.refuse_fine_tuning:
            raise FineTuningNotAllowed()
        self.shutdowns.require_trainable(model)

    def answer_batch_request(self, body: dict[str, Any], at: float) -> tuple[int, dict[str, Any]]:
        """(status, body) of one batch line, answered by the same code as an online request."""
        try:
            if body.get("stream"):
                raise InvalidRequest("Streaming is not supported in the Batch API.", "stream")
            if self.deployments is not None and body.get("model") not in BASE_MODELS:
                body = {**body, "model": self.deployments.model_for(str(body.get("model")))}
            return 200, self.chat.create(body, now=at).to_api()
        except OpenAIError as error:
            return error.status, error.envelope()

    def request_model_exists(self, model: str) -> bool:
        """Whether a request may name this model: under the azure profile, a deployment (or a base model)."""
        if self.deployments is None or model in BASE_MODELS:
            return self.model_exists(model)
        try:
            return self.model_exists(self.deployments.model_for(model))
        except OpenAIError:
            return False

    def model_exists(self, model: str) -> bool:
        """Whether chat requests may name this model."""
        try:
            self.models.get(model)
        except ModelNotFound:
            return False
        return True
