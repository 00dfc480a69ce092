"""`LocalOpenAI`: the backend's resources wired to one store (moto's backend object).

The behaviour lives in one module per resource: files.py, jobs/, models.py, chat.py and
batches/; store.py is the store they share and records.py the typed objects they return. The
HTTP layer (http/) parses requests, calls these resources and serialises what they return.
"""

from __future__ import annotations

from typing import Any

from local_openai.batches import Batches
from local_openai.chat import ChatCompletions
from local_openai.exceptions import InvalidRequest, ModelNotFound, OpenAIError
from local_openai.files import Files
from local_openai.graders import Graders
from local_openai.jobs import Jobs
from local_openai.models import Models
from local_openai.options import BackendOptions
from local_openai.store import Store


class LocalOpenAI:
    """Files, fine-tuning jobs, graders, models, chat completions and batches backed by one `Store`."""

    def __init__(self, options: BackendOptions) -> None:
        self.store = Store(options.store_dir())
        clock = options.clock
        self.files = Files(self.store, clock)
        self.jobs = Jobs(self.store, self.files, clock, job_seconds=options.job_seconds)
        self.models = Models(self.store, self.jobs)
        self.graders = Graders()
        self.chat = ChatCompletions(self.models, clock)
        self.batches = Batches(
            self.store, self.files, clock, self.answer_batch_request, self.model_exists,
            batch_seconds=options.batch_duration, window_seconds=options.batch_window_seconds,
        )

    def answer_batch_request(self, body: dict[str, Any], at: float) -> tuple[int, dict[str, Any]]:
        """(status, body) of one batch line, answered by the same code as an online request."""
        try:
            if body.get("stream"):
                raise InvalidRequest("Streaming is not supported in the Batch API.", "stream")
            return 200, self.chat.create(body, now=at).to_api()
        except OpenAIError as error:
            return error.status, error.envelope()

    def model_exists(self, model: str) -> bool:
        """Whether chat requests may name this model."""
        try:
            self.models.get(model)
        except ModelNotFound:
            return False
        return True
