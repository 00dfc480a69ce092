"""The Batch API: batch files, the lifecycle, output and error files, validation, cancel, expiry."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai.types import Batch, FileObject
from openai.types.chat import ChatCompletion

from tests.support.conformance import (
    BASE_MODEL,
    batch_line,
    chat_body,
    conformance_options,
    error_of,
    jsonl,
    read_jsonl,
    upload_batch_file,
    validated,
)
from tests.support.local_openai import Backend, Clock

DESCRIPTIONS = (
    "A haunted house full of ghosts and blood.",
    "A detective and a murder with no alibi.",
    "Two letters of love before the wedding.",
    "A wizard and a dragon on a quest.",
)
THIRTY_DAYS = 30 * 24 * 3600


@pytest.fixture
def backend_options(clock: Clock) -> dict[str, Any]:
    """Lifecycles of JOB_SECONDS on the stepped clock (the suite's `client` uses these options)."""
    return conformance_options(clock)


def create_batch(client: openai.OpenAI, lines: list, **kwargs) -> Batch:
    file_id = upload_batch_file(client, lines)
    kwargs.setdefault("completion_window", "24h")
    kwargs.setdefault("endpoint", "/v1/chat/completions")
    return validated(Batch, client.batches.with_raw_response.create(input_file_id=file_id, **kwargs))


def retrieve(client: openai.OpenAI, batch_id: str) -> Batch:
    return validated(Batch, client.batches.with_raw_response.retrieve(batch_id))


def book_lines(n: int = 4) -> list:
    return [batch_line(f"book-{i}", chat_body(DESCRIPTIONS[i % 4])) for i in range(n)]


def test_batch_file_expires_after_thirty_days_by_default(client: openai.OpenAI) -> None:
    raw = client.files.with_raw_response.create(file=("in.jsonl", jsonl(book_lines(1))), purpose="batch")
    created = validated(FileObject, raw)
    assert created.purpose == "batch" and created.expires_at == created.created_at + THIRTY_DAYS
    kept = client.files.create(file=("train.jsonl", b"{}\n"), purpose="fine-tune")
    assert kept.expires_at is None


def test_expires_after_is_honoured_and_an_expired_file_is_gone(client: openai.OpenAI, clock) -> None:
    created = client.files.create(
        file=("in.jsonl", jsonl(book_lines(1))), purpose="batch", expires_after={"anchor": "created_at", "seconds": 3600}
    )
    assert created.expires_at == created.created_at + 3600
    assert client.files.retrieve(created.id).expires_at == created.expires_at
    clock.advance(3600)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)
    assert created.id not in [f.id for f in client.files.list()]
    with pytest.raises(openai.NotFoundError):
        client.files.content(created.id)


@pytest.mark.parametrize("seconds", [3599, THIRTY_DAYS + 1])
def test_expires_after_out_of_range_is_refused(client: openai.OpenAI, seconds: int) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.create(
            file=("in.jsonl", b"{}\n"), purpose="batch", expires_after={"anchor": "created_at", "seconds": seconds}
        )
    assert error_of(caught)["param"] == "expires_after.seconds"


def test_batch_upload_must_be_jsonl(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.create(file=("in.csv", b"a,b\n"), purpose="batch")
    assert "Must be .jsonl" in error_of(caught)["message"]


def test_lifecycle_counts_usage_and_output_in_openais_shape(client: openai.OpenAI, clock) -> None:
    batch = create_batch(client, book_lines(4), metadata={"fingerprint": "abc123"})
    assert batch.status == "validating" and batch.object == "batch"
    assert batch.metadata == {"fingerprint": "abc123"} and batch.expires_at == batch.created_at + 24 * 3600
    assert batch.request_counts.total == 0 and batch.output_file_id is None
    clock.advance(1.0)
    running = retrieve(client, batch.id)
    assert running.status == "in_progress" and running.in_progress_at == batch.created_at + 1
    assert running.request_counts.total == 4 and running.model == BASE_MODEL
    clock.advance(4.0)  # halfway through in_progress: half the requests are answered
    halfway = retrieve(client, batch.id)
    assert halfway.request_counts.completed == 2 and halfway.usage.input_tokens > 0
    clock.advance(4.0)
    assert retrieve(client, batch.id).status == "finalizing"
    clock.advance(1.0)
    done = retrieve(client, batch.id)
    assert done.status == "completed" and done.completed_at == batch.created_at + 10
    assert done.request_counts.model_dump() == {"completed": 4, "failed": 0, "total": 4}
    assert done.error_file_id is None and done.errors is None
    assert done.usage.total_tokens == done.usage.input_tokens + done.usage.output_tokens > 0
    output = client.files.retrieve(done.output_file_id)
    assert output.purpose == "batch_output" and output.filename == f"{batch.id}_output.jsonl"
    assert output.expires_at == output.created_at + THIRTY_DAYS
    lines = read_jsonl(client, done.output_file_id)
    assert [line["custom_id"] for line in lines] == [f"book-{i}" for i in range(4)]
    for line in lines:
        assert set(line) == {"id", "custom_id", "response", "error"} and line["error"] is None
        assert line["id"].startswith("batch_req_") and line["response"]["request_id"].startswith("req_")
        assert line["response"]["status_code"] == 200
        ChatCompletion.model_validate(line["response"]["body"])
    assert sum(line["response"]["body"]["usage"]["prompt_tokens"] for line in lines) == done.usage.input_tokens


def test_batch_answers_equal_online_answers(client: openai.OpenAI, clock) -> None:
    lines = book_lines(4)
    batch = create_batch(client, lines)
    clock.advance(10.0)
    done = retrieve(client, batch.id)
    answers = {line["custom_id"]: line["response"]["body"] for line in read_jsonl(client, done.output_file_id)}
    for line in lines:
        online = client.chat.completions.create(**line["body"])
        batched = ChatCompletion.model_validate(answers[line["custom_id"]])
        assert batched.choices[0].message.content == online.choices[0].message.content
        assert batched.usage.model_dump() == online.usage.model_dump()
        assert batched.model == online.model


def test_requests_the_endpoint_refuses_go_to_the_error_file(client: openai.OpenAI, clock) -> None:
    lines = [*book_lines(2), batch_line("no-messages", {"model": BASE_MODEL})]
    batch = create_batch(client, lines)
    clock.advance(10.0)
    done = retrieve(client, batch.id)
    assert done.status == "completed"
    assert done.request_counts.model_dump() == {"completed": 2, "failed": 1, "total": 3}
    (error_line,) = read_jsonl(client, done.error_file_id)
    assert error_line["custom_id"] == "no-messages" and error_line["error"] is None
    assert error_line["response"]["status_code"] == 400
    assert error_line["response"]["body"]["error"]["param"] == "messages"
    assert client.files.retrieve(done.error_file_id).filename == f"{batch.id}_error.jsonl"


def test_find_a_batch_by_metadata_in_the_list(client: openai.OpenAI) -> None:
    first = create_batch(client, book_lines(1), metadata={"fingerprint": "one"})
    second = create_batch(client, book_lines(1), metadata={"fingerprint": "two"})
    raw = client.batches.with_raw_response.list(limit=10).http_response.json()
    listed = [Batch.model_validate(item) for item in raw["data"]]
    assert [b.id for b in listed] == [second.id, first.id]  # newest first
    assert raw["first_id"] == second.id and raw["has_more"] is False
    assert [b.id for b in listed if (b.metadata or {}).get("fingerprint") == "one"] == [first.id]
    page = client.batches.list(limit=1)
    assert [b.id for b in page.data] == [second.id] and page.has_more
    assert [b.id for b in client.batches.list(after=second.id).data] == [first.id]


@pytest.mark.parametrize(
    ("line", "code", "param"),
    [
        ("not json", "invalid_json_line", None),
        (batch_line("a", chat_body("x"), url="/v1/embeddings"), "url_mismatch", "url"),
        (batch_line("a", chat_body("x"), method="GET"), "invalid_value", "method"),
        ({"method": "POST", "url": "/v1/chat/completions", "body": chat_body("x")}, "missing_required_parameter",
         "custom_id"),
        (batch_line("a", {"messages": []}), "missing_required_parameter", "body.model"),
        (batch_line("book-0", chat_body("x")), "duplicate_custom_id", "custom_id"),
        (batch_line("a", chat_body("x", model="gpt-4o-2024-08-06")), "model_mismatch", "body.model"),
    ],
)
def test_an_invalid_line_fails_the_batch_with_its_line_number(client: openai.OpenAI, clock, line, code, param) -> None:
    batch = create_batch(client, [*book_lines(1), line])
    clock.advance(1.0)
    failed = retrieve(client, batch.id)
    assert failed.status == "failed" and failed.failed_at == batch.created_at + 1
    (error,) = failed.errors.data
    assert (error.code, error.line, error.param) == (code, 2, param) and error.message
    assert failed.output_file_id is None and failed.request_counts.total == 0


def test_an_empty_file_or_an_unknown_model_fails_the_batch(client: openai.OpenAI, clock) -> None:
    empty = create_batch(client, [])
    unknown = create_batch(client, [batch_line("a", chat_body("x", model="gpt-nonexistent"))])
    clock.advance(1.0)
    assert [e.code for e in retrieve(client, empty.id).errors.data] == ["empty_file"]
    assert [e.code for e in retrieve(client, unknown.id).errors.data] == ["model_not_found"]


def test_cancel_keeps_what_was_answered_before_it(client: openai.OpenAI, clock) -> None:
    batch = create_batch(client, book_lines(4))
    clock.advance(5.0)  # two of four answered
    cancelling = validated(Batch, client.batches.with_raw_response.cancel(batch.id))
    assert cancelling.status == "cancelling" and cancelling.cancelling_at == batch.created_at + 5
    assert client.batches.cancel(batch.id).status == "cancelling"  # asking again changes nothing
    clock.advance(1.0)
    cancelled = retrieve(client, batch.id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at == batch.created_at + 6
    assert cancelled.request_counts.model_dump() == {"completed": 2, "failed": 0, "total": 4}
    assert [line["custom_id"] for line in read_jsonl(client, cancelled.output_file_id)] == ["book-0", "book-1"]
    with pytest.raises(openai.BadRequestError):
        client.batches.cancel(batch.id)


def test_a_validating_batch_can_be_cancelled(client: openai.OpenAI, clock) -> None:
    batch = create_batch(client, book_lines(2))
    assert client.batches.cancel(batch.id).status == "cancelling"
    clock.advance(5.0)
    cancelled = retrieve(client, batch.id)
    assert cancelled.status == "cancelled" and cancelled.output_file_id is None


def test_a_batch_still_running_when_its_window_closes_expires(backend: Backend, clock: Clock) -> None:
    client = backend.client(max_retries=0, **conformance_options(clock), batch_window_seconds=5.0)
    batch = create_batch(client, book_lines(4), output_expires_after={"anchor": "created_at", "seconds": 7200})
    assert batch.expires_at == batch.created_at + 5
    clock.advance(6.0)
    expired = retrieve(client, batch.id)
    assert expired.status == "expired" and expired.expired_at == batch.created_at + 5
    assert expired.request_counts.model_dump() == {"completed": 2, "failed": 2, "total": 4}
    assert [line["custom_id"] for line in read_jsonl(client, expired.output_file_id)] == ["book-0", "book-1"]
    errors = read_jsonl(client, expired.error_file_id)
    assert [line["custom_id"] for line in errors] == ["book-2", "book-3"]
    assert all(line["response"] is None and line["error"]["code"] == "batch_expired" for line in errors)
    output = client.files.retrieve(expired.output_file_id)
    assert output.expires_at == output.created_at + 7200


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"endpoint": "/v1/embeddings"}, "endpoint"),
        ({"endpoint": "/v1/nowhere"}, "endpoint"),
        ({"completion_window": "1h"}, "completion_window"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"output_expires_after": {"anchor": "created_at", "seconds": 60}}, "output_expires_after.seconds"),
        ({"extra_body": {"priority": "high"}}, "priority"),
    ],
)
def test_create_refuses_what_openai_refuses(client: openai.OpenAI, kwargs: dict, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        create_batch(client, book_lines(1), **kwargs)
    assert error_of(caught)["param"] == param


def test_the_input_file_must_exist_and_be_for_batch(client: openai.OpenAI) -> None:
    tuning = client.files.create(file=("train.jsonl", jsonl(book_lines(1))), purpose="fine-tune")
    for file_id in (tuning.id, "file-doesnotexist"):
        with pytest.raises(openai.BadRequestError) as caught:
            client.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h")
        assert error_of(caught)["param"] == "input_file_id"


def test_an_unknown_batch_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_doesnotexist")
    with pytest.raises(openai.NotFoundError):
        client.batches.cancel("batch_doesnotexist")
