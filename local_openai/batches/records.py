"""Typed records of the Batch API: the batch, an input-file error, and one answered request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from local_openai.records import STATE_KEY, TIME_KEY
from local_openai.store import new_id

BATCH_FINAL_STATUSES = ("failed", "completed", "expired", "cancelled")
# Timestamps a batch reports, one per status it has reached.
_STAMPS = (
    "in_progress_at", "finalizing_at", "completed_at", "failed_at", "expired_at", "cancelling_at", "cancelled_at",
)


@dataclass(frozen=True)
class BatchLineError:
    """Why an input file was refused (a batch that fails validation lists these)."""

    code: str
    message: str
    param: str | None = None
    line: int | None = None

    def to_api(self) -> dict[str, Any]:
        """One item of the batch's `errors.data`."""
        return {"code": self.code, "message": self.message, "param": self.param, "line": self.line}


@dataclass
class Batch:
    """A batch: the API fields, then the backend's schedule (exact creation time, lengths)."""

    id: str
    created_at: int
    endpoint: str
    input_file_id: str
    completion_window: str
    metadata: dict[str, str] | None
    # Backend state: when it was created exactly, how long it runs, when its window closes.
    t0: float
    batch_seconds: float
    window_seconds: float
    output_expiry_seconds: int | None = None
    status: str = "validating"
    model: str | None = None
    errors: list[BatchLineError] = field(default_factory=list)
    stamps: dict[str, int] = field(default_factory=dict)  # in_progress_at, ..., cancelled_at
    output_file_id: str | None = None
    error_file_id: str | None = None
    request_counts: dict[str, int] = field(default_factory=lambda: {"total": 0, "completed": 0, "failed": 0})
    usage: dict[str, int] = field(default_factory=lambda: {"input_tokens": 0, "output_tokens": 0})
    usage_estimated: bool = False  # token counts made without the tokenizer file
    cancel_time: float | None = None  # exact time cancel was asked; nothing answered later is kept
    seq: int = 0

    @property
    def finished(self) -> bool:
        """Whether the batch has reached a final state."""
        return self.status in BATCH_FINAL_STATUSES

    @property
    def expires_at(self) -> int:
        """When the completion window closes."""
        return int(self.t0 + self.window_seconds)

    def to_api(self) -> dict[str, Any]:
        """The `batch` object."""
        usage = {
            "input_tokens": self.usage["input_tokens"],
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": self.usage["output_tokens"],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.usage["input_tokens"] + self.usage["output_tokens"],
        }
        if self.usage_estimated:
            usage["estimated"] = True  # the local marker: counted without the tokenizer file
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.model,
            "errors": {"object": "list", "data": [e.to_api() for e in self.errors]} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            **{name: self.stamps.get(name) for name in _STAMPS},
            "expires_at": self.expires_at,
            "request_counts": dict(self.request_counts),
            "usage": usage,
            "metadata": self.metadata,
        }

    def to_store(self) -> dict[str, Any]:
        """The stored document."""
        state = {
            "t0": self.t0, "batch_seconds": self.batch_seconds, "window_seconds": self.window_seconds,
            "output_expiry_seconds": self.output_expiry_seconds, "cancel_time": self.cancel_time,
            "usage": self.usage, "usage_estimated": self.usage_estimated, "seq": self.seq,
        }
        return {**self.to_api(), STATE_KEY: state}

    @classmethod
    def from_store(cls, document: dict[str, Any]) -> Batch:
        """Inverse of to_store."""
        state = document[STATE_KEY]
        errors = (document.get("errors") or {}).get("data") or []
        return cls(
            id=document["id"],
            created_at=document["created_at"],
            endpoint=document["endpoint"],
            input_file_id=document["input_file_id"],
            completion_window=document["completion_window"],
            metadata=document.get("metadata"),
            t0=state["t0"],
            batch_seconds=state["batch_seconds"],
            window_seconds=state["window_seconds"],
            output_expiry_seconds=state.get("output_expiry_seconds"),
            status=document["status"],
            model=document.get("model"),
            errors=[BatchLineError(e["code"], e["message"], e.get("param"), e.get("line")) for e in errors],
            stamps={name: document[name] for name in _STAMPS if document.get(name) is not None},
            output_file_id=document.get("output_file_id"),
            error_file_id=document.get("error_file_id"),
            request_counts=dict(document["request_counts"]),
            usage=dict(state["usage"]),
            usage_estimated=bool(state.get("usage_estimated")),
            cancel_time=state.get("cancel_time"),
            seq=state.get("seq", 0),
        )


@dataclass
class BatchResult:
    """One request of a batch as answered: an HTTP response, or an error that kept it from running."""

    id: str
    custom_id: str
    at: float  # exact time it was answered; hidden from reads before then
    status_code: int | None
    request_id: str | None
    body: dict[str, Any] | None
    error: dict[str, str] | None = None

    @classmethod
    def answered(cls, custom_id: str, at: float, status_code: int, body: dict[str, Any]) -> BatchResult:
        """A request the endpoint answered (successfully or with an HTTP error)."""
        return cls(new_id("batch_req", "_"), custom_id, at, status_code, new_id("req", "_"), body)

    @classmethod
    def not_run(cls, custom_id: str, at: float, code: str, message: str) -> BatchResult:
        """A request that never ran (the batch expired first)."""
        return cls(new_id("batch_req", "_"), custom_id, at, None, None, None, {"code": code, "message": message})

    @property
    def succeeded(self) -> bool:
        """Whether the endpoint answered 2xx (the request belongs in the output file)."""
        return self.status_code is not None and 200 <= self.status_code < 300

    def to_line(self) -> dict[str, Any]:
        """The output (or error) file line, in OpenAI's shape."""
        response = None
        if self.status_code is not None:
            response = {"status_code": self.status_code, "request_id": self.request_id, "body": self.body}
        return {"id": self.id, "custom_id": self.custom_id, "response": response, "error": self.error}

    def to_store(self) -> dict[str, Any]:
        """The stored item."""
        return {**self.to_line(), TIME_KEY: self.at}

    @classmethod
    def from_store(cls, item: dict[str, Any]) -> BatchResult:
        """Inverse of to_store."""
        response = item.get("response") or {}
        return cls(
            item["id"], item["custom_id"], item[TIME_KEY], response.get("status_code"), response.get("request_id"),
            response.get("body"), item.get("error"),
        )
