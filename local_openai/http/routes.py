"""The API's routes as data (moto's urls.py): method and path pattern -> handler."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from local_openai.exceptions import UnknownUrl
from local_openai.http import handlers
from local_openai.http.handlers import Handler
from local_openai.http.messages import LocalRequest

_PARAMETER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Route:
    """One endpoint: `path` has `{name}` placeholders, each matching one path segment."""

    method: str
    path: str
    handler: Handler
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        literal_parts = _PARAMETER.split(self.path)[::2]
        names = _PARAMETER.findall(self.path)
        regex = "".join(
            re.escape(part) + (f"(?P<{names[i]}>[^/]+)" if i < len(names) else "")
            for i, part in enumerate(literal_parts)
        )
        object.__setattr__(self, "pattern", re.compile(regex))

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters when this route serves the request, else None."""
        found = self.pattern.fullmatch(path)
        return found.groupdict() if found and method == self.method else None


ROUTES: tuple[Route, ...] = (
    Route("GET", "/v1/models", handlers.list_models),
    Route("GET", "/v1/models/{model}", handlers.retrieve_model),
    Route("DELETE", "/v1/models/{model}", handlers.delete_model),
    Route("POST", "/v1/files", handlers.create_file),
    Route("GET", "/v1/files", handlers.list_files),
    Route("GET", "/v1/files/{file_id}", handlers.retrieve_file),
    Route("DELETE", "/v1/files/{file_id}", handlers.delete_file),
    Route("GET", "/v1/files/{file_id}/content", handlers.file_content),
    Route("POST", "/v1/fine_tuning/jobs", handlers.create_job),
    Route("GET", "/v1/fine_tuning/jobs", handlers.list_jobs),
    Route("GET", "/v1/fine_tuning/jobs/{job_id}", handlers.retrieve_job),
    Route("POST", "/v1/fine_tuning/jobs/{job_id}/cancel", handlers.cancel_job),
    Route("POST", "/v1/fine_tuning/jobs/{job_id}/pause", handlers.pause_job),
    Route("POST", "/v1/fine_tuning/jobs/{job_id}/resume", handlers.resume_job),
    Route("GET", "/v1/fine_tuning/jobs/{job_id}/events", handlers.list_job_events),
    Route("GET", "/v1/fine_tuning/jobs/{job_id}/checkpoints", handlers.list_job_checkpoints),
    Route("POST", "/v1/fine_tuning/alpha/graders/validate", handlers.validate_grader),
    Route("POST", "/v1/fine_tuning/alpha/graders/run", handlers.run_grader),
    Route("POST", "/v1/chat/completions", handlers.create_chat_completion),
    Route("GET", "/v1/chat/completions", handlers.list_chat_completions),
    Route("GET", "/v1/chat/completions/{completion_id}", handlers.retrieve_chat_completion),
    Route("POST", "/v1/chat/completions/{completion_id}", handlers.update_chat_completion),
    Route("DELETE", "/v1/chat/completions/{completion_id}", handlers.delete_chat_completion),
    Route("GET", "/v1/chat/completions/{completion_id}/messages", handlers.list_chat_completion_messages),
    Route("POST", "/v1/batches", handlers.create_batch),
    Route("GET", "/v1/batches", handlers.list_batches),
    Route("GET", "/v1/batches/{batch_id}", handlers.retrieve_batch),
    Route("POST", "/v1/batches/{batch_id}/cancel", handlers.cancel_batch),
)


def route(request: LocalRequest, routes: tuple[Route, ...] = ROUTES) -> tuple[Handler, dict[str, str]]:
    """The handler for a request and its path parameters, or 404 unknown_url."""
    path = request.path.rstrip("/") or "/"
    method = request.method.upper()
    for candidate in routes:
        params = candidate.match(method, path)
        if params is not None:
            return candidate.handler, params
    raise UnknownUrl(request.method, request.path)
