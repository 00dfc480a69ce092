"""The batches resource: create, retrieve, list and cancel batches of chat completion requests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from local_openai.batches.lifecycle import Answer, BatchLifecycle
from local_openai.batches.records import Batch, BatchResult
from local_openai.exceptions import (
    BatchNotCancellable,
    BatchNotFound,
    FileNotFound,
    InvalidFilePurpose,
    InvalidRequest,
    MissingRequiredParameter,
    UnknownParameter,
    UnsupportedParameter,
)
from local_openai.files import Files, expiry_seconds
from local_openai.jobs.create_request import metadata as checked_metadata
from local_openai.records import Page
from local_openai.store import Store, Table, Timeline, new_id, paginate

# Every endpoint OpenAI's Batch API takes; the local backend runs the first.
LOCAL_ENDPOINTS = ("/v1/chat/completions",)
OPENAI_ENDPOINTS = (
    "/v1/chat/completions", "/v1/responses", "/v1/embeddings", "/v1/completions", "/v1/moderations",
    "/v1/images/generations", "/v1/images/edits", "/v1/videos",
)
COMPLETION_WINDOWS = ("24h",)
CREATE_FIELDS = ("input_file_id", "endpoint", "completion_window", "metadata", "output_expires_after")


class Batches:
    """Batches in a `Store`; `files` holds their input and publishes their output and error files."""

    def __init__(
        self, store: Store, files: Files, clock: Callable[[], float], answer: Answer,
        model_exists: Callable[[str], bool], batch_seconds: float, window_seconds: float,
    ) -> None:
        self.store = store
        self.files = files
        self.clock = clock
        self.batch_seconds = batch_seconds
        self.window_seconds = window_seconds
        self.table = Table(store, "batches", Batch.from_store)
        self.results = Timeline(store, "batch_results", BatchResult.from_store)
        self.lifecycle = BatchLifecycle(store, files, self.results, answer, model_exists)

    def create(self, body: dict[str, Any]) -> Batch:
        """Check a create request synchronously; the input file's lines are checked while validating."""
        for name in body:
            if name not in CREATE_FIELDS:
                raise UnknownParameter(name)
        input_file_id = self._input_file(body.get("input_file_id"))
        endpoint = self._endpoint(body.get("endpoint"))
        window = body.get("completion_window")
        if window is None:
            raise MissingRequiredParameter("completion_window")
        if window not in COMPLETION_WINDOWS:
            raise InvalidRequest(
                f"Invalid value for 'completion_window': '{window}'. Supported values are: '24h'.", "completion_window"
            )
        metadata = checked_metadata(body.get("metadata"))
        output_expiry = expiry_seconds(body.get("output_expires_after"), "output_expires_after")
        now = self.clock()
        batch = Batch(
            id=new_id("batch", "_"), created_at=int(now), endpoint=endpoint, input_file_id=input_file_id,
            completion_window=window, metadata=metadata, t0=now, batch_seconds=self.batch_seconds,
            window_seconds=self.window_seconds, output_expiry_seconds=output_expiry,
        )
        self.table.insert(batch)
        return batch

    def _input_file(self, file_id: Any) -> str:
        if not isinstance(file_id, str) or not file_id:
            raise MissingRequiredParameter("input_file_id")
        record = self.files.find(file_id)
        if record is None:
            raise FileNotFound("input_file_id", file_id)
        if record.purpose != "batch":
            raise InvalidFilePurpose(
                f"File {file_id} has purpose '{record.purpose}'; a batch's input file needs purpose 'batch'.",
                "input_file_id",
            )
        return file_id

    @staticmethod
    def _endpoint(endpoint: Any) -> str:
        if endpoint is None:
            raise MissingRequiredParameter("endpoint")
        if endpoint not in OPENAI_ENDPOINTS:
            raise InvalidRequest(
                f"Invalid value for 'endpoint': '{endpoint}'. Supported values are: {', '.join(OPENAI_ENDPOINTS)}.",
                "endpoint",
            )
        if endpoint not in LOCAL_ENDPOINTS:
            raise UnsupportedParameter(
                f"The local backend runs batches for {', '.join(LOCAL_ENDPOINTS)} only, not '{endpoint}'.", "endpoint"
            )
        return endpoint

    def get(self, batch_id: str) -> Batch:
        """A batch as of now (its lifecycle advanced first)."""
        return self.observe(self.record(batch_id))

    def list(self, after: str | None, limit: int) -> Page[Batch]:
        """Batches newest first."""
        page, has_more = paginate(self.table.all(), after, limit)
        return Page([self.observe(batch) for batch in page], has_more)

    def cancel(self, batch_id: str) -> Batch:
        """Start cancelling a batch that has not reached a final state (cancelling -> cancelled)."""
        self.record(batch_id)
        with self.store.job_lock(batch_id):
            now = self.clock()
            batch = self.lifecycle.advance(self.record(batch_id), now)
            if batch.finished:
                self.table.put(batch)
                raise BatchNotCancellable(batch_id, batch.status)
            if batch.status != "cancelling":
                self.lifecycle.cancel(batch, now)
            self.table.put(batch)
        return batch

    def record(self, batch_id: str) -> Batch:
        """A batch as last written (not advanced), or 404."""
        batch = self.table.get(batch_id)
        if batch is None:
            raise BatchNotFound(batch_id)
        return batch

    def observe(self, batch: Batch) -> Batch:
        """The batch advanced to now; a reader never waits while another request answers it."""
        if batch.finished:
            return batch
        if not self.lifecycle.due(batch, self.clock()):
            return self.lifecycle.advance(batch, self.clock())  # only refreshes request_counts
        with self.store.try_job_lock(batch.id) as locked:
            if not locked:
                return self.record(batch.id)
            batch = self.lifecycle.advance(self.record(batch.id), self.clock())
            self.table.put(batch)
        return batch
