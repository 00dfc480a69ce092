"""`LocalOpenAI`: the backend's resources wired to one store (moto's backend object).

The behaviour lives in one module per resource: files.py, jobs/, models.py and chat.py;
store.py is the store they share and records.py the typed objects they return. The HTTP
layer (http/) parses requests, calls these resources and serialises what they return.
"""

from __future__ import annotations

from fine_tuning.local_openai.chat import ChatCompletions
from fine_tuning.local_openai.files import Files
from fine_tuning.local_openai.jobs import Jobs
from fine_tuning.local_openai.models import Models
from fine_tuning.local_openai.options import BackendOptions
from fine_tuning.local_openai.store import Store


class LocalOpenAI:
    """Files, fine-tuning jobs, models and chat completions backed by one `Store`."""

    def __init__(self, options: BackendOptions) -> None:
        self.store = Store(options.store_dir())
        clock = options.clock
        self.files = Files(self.store, clock)
        self.jobs = Jobs(self.store, self.files, clock, job_seconds=options.job_seconds)
        self.models = Models(self.store, self.jobs)
        self.chat = ChatCompletions(self.models, clock)
