"""Thin handlers (moto's responses.py): parse the request, call the backend, serialise the record.

Each has the signature of `Handler`: the backend, the request, and the path parameters its
route captured. Business rules and their errors live in the resources, not here.
"""

from __future__ import annotations

from collections.abc import Callable

from local_openai.chat import StreamedCompletion
from local_openai.http.messages import LocalRequest, LocalResponse, bytes_response, ok, sse_response
from local_openai.http.parsing import (
    metadata_filter,
    parse_json_body,
    parse_upload,
    query_choice,
    query_int,
    query_value,
)
from local_openai.service import LocalOpenAI

Handler = Callable[[LocalOpenAI, LocalRequest, dict[str, str]], LocalResponse]

# (default, maximum) page sizes, as OpenAI pages each list.
FILES_PAGE = (10_000, 10_000)
JOBS_PAGE = (20, 100)
EVENTS_PAGE = (20, 10_000)
CHECKPOINTS_PAGE = (10, 100)
BATCHES_PAGE = (20, 100)
COMPLETIONS_PAGE = (20, 100)


def _limit(request: LocalRequest, page: tuple[int, int]) -> int:
    default, maximum = page
    return query_int(request, "limit", default, 1, maximum)


# -- models
def list_models(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """GET /v1/models"""
    return ok(backend.models.list())


def retrieve_model(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """GET /v1/models/{model}"""
    return ok(backend.models.get(path["model"]))


def delete_model(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """DELETE /v1/models/{model}"""
    return ok(backend.models.delete(path["model"]))


# -- files
def create_file(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """POST /v1/files (multipart/form-data: file, purpose, expires_after)"""
    upload = parse_upload(request)
    return ok(backend.files.create(upload.filename, upload.purpose, upload.data, upload.expires_after))


def list_files(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """GET /v1/files?purpose=&order=&after=&limit="""
    order = query_choice(request, "order", ("asc", "desc"), "desc")
    purpose, after = query_value(request, "purpose"), query_value(request, "after")
    return ok(backend.files.list(purpose, after, _limit(request, FILES_PAGE), order))


def retrieve_file(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """GET /v1/files/{file_id}"""
    return ok(backend.files.get(path["file_id"]))


def delete_file(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """DELETE /v1/files/{file_id}"""
    return ok(backend.files.delete(path["file_id"]))


def file_content(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """GET /v1/files/{file_id}/content"""
    return bytes_response(backend.files.content(path["file_id"]))


# -- fine-tuning jobs
def create_job(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """POST /v1/fine_tuning/jobs"""
    return ok(backend.jobs.create(parse_json_body(request)))


def list_jobs(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """GET /v1/fine_tuning/jobs?after=&limit=&metadata[key]=value"""
    filters, only_null = metadata_filter(request)
    return ok(backend.jobs.list(query_value(request, "after"), _limit(request, JOBS_PAGE), filters, only_null))


def retrieve_job(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """GET /v1/fine_tuning/jobs/{job_id}"""
    return ok(backend.jobs.get(path["job_id"]))


def cancel_job(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """POST /v1/fine_tuning/jobs/{job_id}/cancel"""
    return ok(backend.jobs.cancel(path["job_id"]))


def pause_job(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """POST /v1/fine_tuning/jobs/{job_id}/pause"""
    return ok(backend.jobs.pause(path["job_id"]))


def resume_job(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """POST /v1/fine_tuning/jobs/{job_id}/resume"""
    return ok(backend.jobs.resume(path["job_id"]))


def list_job_events(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """GET /v1/fine_tuning/jobs/{job_id}/events?after=&limit="""
    after, limit = query_value(request, "after"), _limit(request, EVENTS_PAGE)
    return ok(backend.jobs.list_events(path["job_id"], after, limit))


def list_job_checkpoints(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """GET /v1/fine_tuning/jobs/{job_id}/checkpoints?after=&limit="""
    after, limit = query_value(request, "after"), _limit(request, CHECKPOINTS_PAGE)
    return ok(backend.jobs.list_checkpoints(path["job_id"], after, limit))


# -- graders
def validate_grader(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """POST /v1/fine_tuning/alpha/graders/validate"""
    return ok(backend.graders.validate(parse_json_body(request)))


def run_grader(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """POST /v1/fine_tuning/alpha/graders/run"""
    return ok(backend.graders.run(parse_json_body(request)))


# -- chat
def create_chat_completion(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """POST /v1/chat/completions (server-sent events when `stream` is true)"""
    completion = backend.chat.create(parse_json_body(request))
    if isinstance(completion, StreamedCompletion):
        return sse_response(completion.to_sse())
    return ok(completion)


def list_chat_completions(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """GET /v1/chat/completions?after=&limit=&order=&model=&metadata[key]=value (stored completions)"""
    order = query_choice(request, "order", ("asc", "desc"), "asc")
    filters, _ = metadata_filter(request)
    return ok(backend.chat.stored.list(
        query_value(request, "after"), _limit(request, COMPLETIONS_PAGE), order, query_value(request, "model"), filters
    ))


def retrieve_chat_completion(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """GET /v1/chat/completions/{completion_id}"""
    return ok(backend.chat.stored.get(path["completion_id"]))


def update_chat_completion(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """POST /v1/chat/completions/{completion_id} (metadata only)"""
    return ok(backend.chat.stored.update(path["completion_id"], parse_json_body(request)))


def delete_chat_completion(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """DELETE /v1/chat/completions/{completion_id}"""
    return ok(backend.chat.stored.delete(path["completion_id"]))


def list_chat_completion_messages(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """GET /v1/chat/completions/{completion_id}/messages?after=&limit=&order="""
    order = query_choice(request, "order", ("asc", "desc"), "asc")
    after, limit = query_value(request, "after"), _limit(request, COMPLETIONS_PAGE)
    return ok(backend.chat.stored.messages(path["completion_id"], after, limit, order))


# -- batches
def create_batch(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """POST /v1/batches"""
    return ok(backend.batches.create(parse_json_body(request)))


def list_batches(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """GET /v1/batches?after=&limit="""
    return ok(backend.batches.list(query_value(request, "after"), _limit(request, BATCHES_PAGE)))


def retrieve_batch(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """GET /v1/batches/{batch_id}"""
    return ok(backend.batches.get(path["batch_id"]))


def cancel_batch(backend: LocalOpenAI, request: LocalRequest, path: dict[str, str]) -> LocalResponse:
    """POST /v1/batches/{batch_id}/cancel"""
    return ok(backend.batches.cancel(path["batch_id"]))
