"""Typed records of the local backend (moto's models.py): files, jobs, events, checkpoints, models.

Chat completions have theirs in chat/records.py, batches in batches/records.py.

Each record has a `to_api()` that builds the exact JSON object OpenAI sends. What only the
backend needs (list order, exact times, the job's schedule) lives in separate fields that
`to_api()` leaves out. `to_store()` / `from_store()` are the on-disk form: the API object
plus a `_local` block of backend state for files and jobs, and an exact time `_t` for events
and checkpoints (the layout earlier versions wrote, so an existing store still loads).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from local_openai.store import new_id

ORGANIZATION_ID = "org-local"
STATE_KEY = "_local"  # stored files and jobs: backend state under this key, beside the API fields
TIME_KEY = "_t"  # stored events and checkpoints: the exact time (created_at is whole seconds)
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")


class ApiObject(Protocol):
    """Anything that serialises to an OpenAI JSON object."""

    id: str

    def to_api(self) -> dict[str, Any]: ...


A = TypeVar("A", bound=ApiObject)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


@dataclass
class FileObject:
    """An uploaded file, or a result file a job published."""

    id: str
    bytes: int
    created_at: int
    filename: str
    purpose: str
    expires_at: int | None = None  # after this the file is gone (batch files expire by default)
    seq: int = 0  # list position; backend state

    def to_api(self) -> dict[str, Any]:
        """The `file` object."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": self.expires_at,
            "status_details": None,
        }

    def to_store(self) -> dict[str, Any]:
        """The stored document."""
        return {**self.to_api(), STATE_KEY: {"seq": self.seq}}

    @classmethod
    def from_store(cls, document: dict[str, Any]) -> FileObject:
        """Inverse of to_store."""
        return cls(
            id=document["id"],
            bytes=document["bytes"],
            created_at=document["created_at"],
            filename=document["filename"],
            purpose=document["purpose"],
            expires_at=document.get("expires_at"),
            seq=document.get(STATE_KEY, {}).get("seq", 0),
        )


@dataclass(frozen=True)
class DeletedFile:
    """What deleting a file answers."""

    id: str

    def to_api(self) -> dict[str, Any]:
        """The deletion status object."""
        return {"id": self.id, "object": "file", "deleted": True}


# ---------------------------------------------------------------------------------------------
# Fine-tuning jobs
# ---------------------------------------------------------------------------------------------


@dataclass
class JobError:
    """Why a job failed."""

    code: str
    message: str
    param: str | None

    def to_api(self) -> dict[str, Any]:
        """The job's `error` object."""
        return {"code": self.code, "message": self.message, "param": self.param}


@dataclass
class Job:
    """A fine-tuning job: the API fields, then the backend's own schedule and results."""

    id: str
    created_at: int
    model: str
    training_file: str
    validation_file: str | None
    seed: int
    suffix: str | None
    metadata: dict[str, str] | None
    method_type: str
    hyperparameters: dict[str, Any]  # as requested ("auto" allowed) until validated, then resolved
    integrations: list[dict[str, Any]]  # echoed (the local backend sends nothing anywhere)
    # Backend state: the exact creation time, the lifecycle's length and the request as made.
    t0: float
    job_seconds: float
    requested: dict[str, Any]
    status: str = "validating_files"
    error: JobError | None = None
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    estimated_finish: int | None = None
    result_files: list[str] = field(default_factory=list)
    trained_tokens: int | None = None
    # Backend state filled in as the job advances.
    seq: int = 0
    n_examples: int | None = None
    example_tokens: int | None = None
    result_file: str | None = None  # written when training runs, published when the job succeeds
    model_name: str | None = None
    paused_at: float | None = None  # while paused: when; nothing dated later is visible
    paused_seconds: float = 0.0  # time spent paused, which pushes the finish back
    model_deleted: bool = False  # its fine-tuned model was deleted (the job still names it)
    tokens_estimated: bool = False  # counted without the tokenizer file
    grader: dict[str, Any] | None = None  # a reinforcement job's grader, as given

    @property
    def finished(self) -> bool:
        """Whether the job has reached a final state."""
        return self.status in TERMINAL_STATUSES

    def to_api(self) -> dict[str, Any]:
        """The `fine_tuning.job` object (with the local marker when trained_tokens is an estimate)."""
        api = self._api_fields()
        if self.tokens_estimated and self.trained_tokens is not None:
            api["trained_tokens_estimated"] = True
        return api

    def _api_fields(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "fine_tuning.job",
            "created_at": self.created_at,
            "error": self.error.to_api() if self.error else None,
            "fine_tuned_model": self.fine_tuned_model,
            "finished_at": self.finished_at,
            "hyperparameters": dict(self.hyperparameters),
            "model": self.model,
            "organization_id": ORGANIZATION_ID,
            "result_files": list(self.result_files),
            "seed": self.seed,
            "status": self.status,
            "trained_tokens": self.trained_tokens,
            "training_file": self.training_file,
            "validation_file": self.validation_file,
            "estimated_finish": self.estimated_finish,
            "integrations": [dict(item) for item in self.integrations],
            "metadata": self.metadata,
            "method": self._method(),
            "user_provided_suffix": self.suffix,
        }

    def _method(self) -> dict[str, Any]:
        settings: dict[str, Any] = {"hyperparameters": dict(self.hyperparameters)}
        if self.grader is not None:
            settings["grader"] = self.grader
        return {"type": self.method_type, self.method_type: settings}

    def to_store(self) -> dict[str, Any]:
        """The stored document."""
        state = {"t0": self.t0, "job_seconds": self.job_seconds, "requested": self.requested, "seq": self.seq}
        optional = {
            "n_examples": self.n_examples, "example_tokens": self.example_tokens,
            "result_file": self.result_file, "model_name": self.model_name, "paused_at": self.paused_at,
            "paused_seconds": self.paused_seconds or None, "model_deleted": self.model_deleted or None,
            "tokens_estimated": self.tokens_estimated or None,
        }
        state.update({key: value for key, value in optional.items() if value is not None})
        return {**self.to_api(), STATE_KEY: state}

    @classmethod
    def from_store(cls, document: dict[str, Any]) -> Job:
        """Inverse of to_store."""
        state = document[STATE_KEY]
        error = document.get("error")
        return cls(
            id=document["id"],
            created_at=document["created_at"],
            model=document["model"],
            training_file=document["training_file"],
            validation_file=document.get("validation_file"),
            seed=document["seed"],
            suffix=document.get("user_provided_suffix"),
            metadata=document.get("metadata"),
            method_type=document["method"]["type"],
            hyperparameters=dict(document["hyperparameters"]),
            integrations=list(document.get("integrations") or []),
            t0=state["t0"],
            job_seconds=state["job_seconds"],
            requested=dict(state["requested"]),
            status=document["status"],
            error=JobError(error["code"], error["message"], error.get("param")) if error else None,
            fine_tuned_model=document.get("fine_tuned_model"),
            finished_at=document.get("finished_at"),
            estimated_finish=document.get("estimated_finish"),
            result_files=list(document.get("result_files") or []),
            trained_tokens=document.get("trained_tokens"),
            seq=state.get("seq", 0),
            n_examples=state.get("n_examples"),
            example_tokens=state.get("example_tokens"),
            result_file=state.get("result_file"),
            model_name=state.get("model_name"),
            paused_at=state.get("paused_at"),
            paused_seconds=state.get("paused_seconds") or 0.0,
            model_deleted=bool(state.get("model_deleted")),
            tokens_estimated=bool(state.get("tokens_estimated")),
            grader=document["method"].get(document["method"]["type"], {}).get("grader"),
        )


@dataclass
class JobEvent:
    """One line of a job's event log."""

    id: str
    at: float  # exact time: created_at is whole seconds, too coarse to hide future events
    level: str
    message: str
    data: dict[str, Any]
    type: str

    @classmethod
    def new(
        cls, at: float, message: str, *, level: str = "info", data: dict[str, Any] | None = None, kind: str = "message"
    ) -> JobEvent:
        """A new event with a fresh id (`kind` is its `type`: "message" or "metrics")."""
        return cls(new_id("ftevent"), at, level, message, data or {}, kind)

    def to_api(self) -> dict[str, Any]:
        """The `fine_tuning.job.event` object."""
        return {
            "id": self.id,
            "object": "fine_tuning.job.event",
            "created_at": int(self.at),
            "level": self.level,
            "message": self.message,
            "data": self.data,
            "type": self.type,
        }

    def to_store(self) -> dict[str, Any]:
        """The stored item."""
        return {**self.to_api(), TIME_KEY: self.at}

    @classmethod
    def from_store(cls, item: dict[str, Any]) -> JobEvent:
        """Inverse of to_store."""
        return cls(item["id"], item[TIME_KEY], item["level"], item["message"], item.get("data") or {}, item["type"])


@dataclass
class JobCheckpoint:
    """A model saved at the end of an epoch, usable as a chat model."""

    id: str
    at: float
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: dict[str, Any]
    step_number: int

    def to_api(self) -> dict[str, Any]:
        """The `fine_tuning.job.checkpoint` object."""
        return {
            "id": self.id,
            "object": "fine_tuning.job.checkpoint",
            "created_at": int(self.at),
            "fine_tuned_model_checkpoint": self.fine_tuned_model_checkpoint,
            "fine_tuning_job_id": self.fine_tuning_job_id,
            "metrics": self.metrics,
            "step_number": self.step_number,
        }

    def to_store(self) -> dict[str, Any]:
        """The stored item."""
        return {**self.to_api(), TIME_KEY: self.at}

    @classmethod
    def from_store(cls, item: dict[str, Any]) -> JobCheckpoint:
        """Inverse of to_store."""
        return cls(
            item["id"], item[TIME_KEY], item["fine_tuned_model_checkpoint"], item["fine_tuning_job_id"],
            item["metrics"], item["step_number"],
        )


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    """A base model or a fine-tuned one (or one of its checkpoints)."""

    id: str
    created: int
    owned_by: str
    shutdown_date: str | None = None  # YYYY-MM-DD; None: not announced

    def to_api(self) -> dict[str, Any]:
        """The `model` object; `shutdown_date` is null until a shutdown is announced, as OpenAI sends it."""
        return {"id": self.id, "object": "model", "created": self.created, "owned_by": self.owned_by,
                "shutdown_date": self.shutdown_date}


@dataclass(frozen=True)
class DeletedModel:
    """What deleting a fine-tuned model answers."""

    id: str

    def to_api(self) -> dict[str, Any]:
        """The deletion status object."""
        return {"id": self.id, "object": "model", "deleted": True}


# ---------------------------------------------------------------------------------------------
# Lists
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page(Generic[A]):
    """One page of a cursor-paginated list."""

    items: Sequence[A]
    has_more: bool

    def to_api(self) -> dict[str, Any]:
        """The `list` object with its cursors."""
        return {
            "object": "list",
            "data": [item.to_api() for item in self.items],
            "has_more": self.has_more,
            "first_id": self.items[0].id if self.items else None,
            "last_id": self.items[-1].id if self.items else None,
        }


@dataclass(frozen=True)
class ModelList:
    """Every model (the models list has no cursors)."""

    models: Sequence[Model]

    def to_api(self) -> dict[str, Any]:
        """The `list` object."""
        return {"object": "list", "data": [model.to_api() for model in self.models]}
