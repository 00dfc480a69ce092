"""Persistent state and behaviour of the local backend (moto's "models" layer).

`Store` is the on-disk layout: one JSON document per object plus file blobs under one data
directory, written atomically (temp file + os.replace) so a reader never sees half a record,
and serialised across processes with fcntl.flock where a read-modify-write happens.

`LocalOpenAI` is the service: files, fine-tuning jobs (whose lifecycle advances lazily from
elapsed time whenever a job is observed: no daemon), models and chat completions. Errors are
raised as `ApiError` and rendered in OpenAI's envelope by the HTTP layer.

Layout of the data directory:
    .lock                  global lock (sequence counter, creating and deleting objects)
    meta.json              {"seq": last sequence number}; orders lists newest first
    files/{file-id}.json   file records          blobs/{file-id}   file contents
    jobs/{ftjob-id}.json   job records           locks/{ftjob-id}.lock   per-job lock
    events/{ftjob-id}.json job events            checkpoints/{ftjob-id}.json
    models/{ftjob-id}.json final weights         models/{ftjob-id}.step-{n}.json checkpoints
Uploaded file names are data inside the records; paths are built only from validated ids.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import secrets
import string
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from fine_tuning.local_openai import learner

ORGANIZATION_ID = "org-local"
MODEL_NAME_ORG = "local"
FINE_TUNABLE_MODELS: tuple[str, ...] = (
    "gpt-4o-mini-2024-07-18",
    "gpt-4o-mini",
    "gpt-4o-2024-08-06",
    "gpt-4.1-2025-04-14",
    "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano-2025-04-14",
    "gpt-3.5-turbo-0125",
)
CHAT_ONLY_MODELS: tuple[str, ...] = ("gpt-4o", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano")
BASE_MODEL_CREATED = 1_721_172_741  # a fixed, plausible "created" for base models

FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data")
MIN_TRAINING_EXAMPLES = 10
MAX_SUFFIX_CHARS = 64
MAX_METADATA_KEYS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
MAX_FILENAME_CHARS = 255
# Fractions of job_seconds at which a job leaves validating_files and queued.
VALIDATING_END = 0.1
QUEUED_END = 0.2
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")
MESSAGE_ROLES = ("system", "developer", "user", "assistant", "tool", "function")

_ID_ALPHABET = string.ascii_letters + string.digits
_ID_RE = re.compile(r"^(file|ftjob|ftevent|ftckpt)-[A-Za-z0-9]{1,64}$")


class ApiError(Exception):
    """An error the API reports to the client in OpenAI's envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",  # noqa: A002 - the envelope's field name
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def envelope(self) -> dict[str, Any]:
        """The JSON body OpenAI sends for this error."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    """A 400 invalid_request_error."""
    return ApiError(400, message, param=param, code=code)


def new_id(prefix: str) -> str:
    """A random id like OpenAI's: prefix, dash, 24 letters/digits from `secrets`."""
    return f"{prefix}-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


# ---------------------------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------------------------


class Store:
    """JSON records and blobs under one directory, atomic and safe across processes."""

    SUBDIRS = ("files", "blobs", "jobs", "locks", "events", "checkpoints", "models")

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        for sub in self.SUBDIRS:
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # -- paths: built from validated ids only, so a request can never reach outside the store
    def path(self, kind: str, object_id: str, suffix: str = ".json") -> Path:
        """Path of an object's record; raises KeyError for anything that is not a valid id."""
        if kind not in self.SUBDIRS or not isinstance(object_id, str) or not _ID_RE.match(object_id):
            raise KeyError(object_id)
        return self.root / kind / f"{object_id}{suffix}"

    # -- locking
    @contextmanager
    def _flock(self, path: Path) -> Iterator[None]:
        # flock locks belong to the open file description, so separate opens in one process
        # (server threads) exclude each other just as separate processes do.
        with open(path, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def global_lock(self) -> AbstractContextManager[None]:
        """Exclusive lock for the sequence counter and creating/deleting objects."""
        return self._flock(self.root / ".lock")

    def job_lock(self, job_id: str) -> AbstractContextManager[None]:
        """Exclusive lock for advancing or cancelling one job (never taken inside global_lock)."""
        return self._flock(self.path("locks", job_id, ".lock"))

    def next_seq(self) -> int:
        """Next sequence number; call only while holding global_lock."""
        meta_path = self.root / "meta.json"
        meta = self.read_json(meta_path) or {"seq": 0}
        meta["seq"] = int(meta.get("seq", 0)) + 1
        self.write_json(meta_path, meta)
        return meta["seq"]

    # -- atomic IO
    @staticmethod
    def read_json(path: Path) -> Any:
        """A JSON document, or None when it does not exist."""
        try:
            with open(path, encoding="utf-8") as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None

    @staticmethod
    def write_bytes(path: Path, data: bytes) -> None:
        """Write via a temp file in the same directory and os.replace (atomic on POSIX)."""
        # The ".tmp" suffix keeps half-written files out of every "*.json" listing.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    def write_json(self, path: Path, data: Any) -> None:
        """Atomically write a JSON document."""
        self.write_bytes(path, json.dumps(data, separators=(",", ":")).encode("utf-8"))

    def get(self, kind: str, object_id: str) -> dict[str, Any] | None:
        """A record by id, or None (also for ids that are not valid)."""
        try:
            return self.read_json(self.path(kind, object_id))
        except KeyError:
            return None

    def put(self, kind: str, record: dict[str, Any]) -> None:
        """Atomically write a record under its own id."""
        self.write_json(self.path(kind, record["id"]), record)

    def all(self, kind: str) -> list[dict[str, Any]]:
        """Every record of a kind, newest first."""
        records = []
        for path in (self.root / kind).glob("*.json"):
            if path.name.startswith("."):
                continue
            record = self.read_json(path)
            if isinstance(record, dict):
                records.append(record)
        records.sort(key=lambda r: r.get("_local", {}).get("seq", 0), reverse=True)
        return records


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def public(record: dict[str, Any]) -> dict[str, Any]:
    """A record without the backend's private bookkeeping."""
    return {k: v for k, v in record.items() if k != "_local"}


def paginate(
    items: Sequence[dict[str, Any]], after: str | None, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """Cursor pagination over items already in list order: those after `after`, at most `limit`."""
    start = 0
    if after:
        ids = [item["id"] for item in items]
        start = ids.index(after) + 1 if after in ids else len(items)
    page = list(items[start : start + limit])
    return page, start + limit < len(items)


def fine_tuned_model_name(base: str, suffix: str | None, job_id: str) -> str:
    """`ft:{base}:{org}:{suffix}:{id}` as OpenAI names fine-tuned models."""
    return f"ft:{base}:{MODEL_NAME_ORG}:{suffix or ''}:{job_id.removeprefix('ftjob-')}"


def _metrics_csv(steps: Sequence[learner.StepMetrics]) -> bytes:
    lines = ["step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"]
    for s in steps:
        valid_loss = "" if s.valid_loss is None else f"{s.valid_loss:.6f}"
        valid_acc = "" if s.valid_mean_token_accuracy is None else f"{s.valid_mean_token_accuracy:.6f}"
        lines.append(f"{s.step},{s.train_loss:.6f},{s.train_accuracy:.6f},{valid_loss},{valid_acc}")
    return ("\n".join(lines) + "\n").encode()


class TrainingDataError(Exception):
    """Why a training or validation file cannot be used (becomes the job's `error`)."""

    def __init__(self, code: str, message: str, param: str) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


def parse_chat_jsonl(data: bytes, param: str, minimum: int) -> list[list[dict[str, Any]]]:
    """Conversations of a chat-format JSONL file, or TrainingDataError naming the bad line."""
    code = "invalid_training_file" if param == "training_file" else "invalid_validation_file"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TrainingDataError(code, f"The {param} is not valid UTF-8 ({exc}).", param) from exc
    conversations = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        conversations.append(_parse_example(line, number, param, code))
    if len(conversations) < minimum:
        raise TrainingDataError(
            "invalid_n_examples",
            f"The {param} has {len(conversations)} example(s), but must have at least {minimum} examples.",
            param,
        )
    return conversations


def _parse_example(line: str, number: int, param: str, code: str) -> list[dict[str, Any]]:
    where = f"Invalid file format in {param}: line {number}"
    try:
        example = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TrainingDataError(code, f"{where} is not valid JSON ({exc.msg}).", param) from exc
    if not isinstance(example, dict) or not isinstance(example.get("messages"), list) or not example["messages"]:
        raise TrainingDataError(code, f"{where} must be an object with a non-empty 'messages' list.", param)
    for index, message in enumerate(example["messages"]):
        if not isinstance(message, dict) or message.get("role") not in MESSAGE_ROLES:
            raise TrainingDataError(
                code, f"{where}, messages[{index}] has a missing or unrecognized 'role'.", param
            )
        content = message.get("content")
        if not isinstance(content, (str, list)) and not (message["role"] == "assistant" and message.get("tool_calls")):
            raise TrainingDataError(code, f"{where}, messages[{index}] has no text 'content'.", param)
    if not any(m["role"] == "assistant" for m in example["messages"]):
        raise TrainingDataError(code, f"{where} has no assistant message.", param)
    return example["messages"]


# ---------------------------------------------------------------------------------------------
# The service
# ---------------------------------------------------------------------------------------------


class LocalOpenAI:
    """Files, fine-tuning jobs, models and chat completions backed by a `Store`."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        job_seconds: float = 3.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = Store(data_dir)
        self.job_seconds = max(0.0, float(job_seconds))
        self.clock = clock
        self._model_cache: dict[str, tuple[int, learner.SoftmaxModel]] = {}

    # ----------------------------------------------------------------------------- files
    def create_file(self, filename: str, purpose: str, content: bytes) -> dict[str, Any]:
        """Store an uploaded file; the name is kept as data (its last path component)."""
        if purpose not in FILE_PURPOSES:
            raise bad_request(f"Invalid purpose '{purpose}'. Expected one of {', '.join(FILE_PURPOSES)}.", "purpose")
        name = re.split(r"[\\/]", filename or "")[-1][:MAX_FILENAME_CHARS] or "upload"
        if purpose == "fine-tune" and not name.lower().endswith(".jsonl"):
            raise bad_request(
                f"Invalid file format for Fine-Tuning API. Must be .jsonl (got '{name}').",
                "file",
                "invalid_file_format",
            )
        return self._add_file(name, purpose, content, created_at=int(self.clock()))

    def _add_file(
        self, name: str, purpose: str, content: bytes, created_at: int, file_id: str | None = None
    ) -> dict[str, Any]:
        file_id = file_id or new_id("file")
        record = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": created_at,
            "filename": name,
            "purpose": purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }
        blob = self.store.path("blobs", file_id, "")
        if not blob.exists():
            self.store.write_bytes(blob, content)
        with self.store.global_lock():
            record["_local"] = {"seq": self.store.next_seq()}
            self.store.put("files", record)
        return public(record)

    def _file_record(self, file_id: str) -> dict[str, Any]:
        record = self.store.get("files", file_id)
        if record is None:
            raise ApiError(404, f"No such File object: {file_id}", param="id", code=None)
        return record

    def get_file(self, file_id: str) -> dict[str, Any]:
        """A file object."""
        return public(self._file_record(file_id))

    def file_content(self, file_id: str) -> bytes:
        """A file's bytes."""
        self._file_record(file_id)
        try:
            return self.store.path("blobs", file_id, "").read_bytes()
        except FileNotFoundError as exc:
            raise ApiError(404, f"No such File object: {file_id}", param="id") from exc

    def delete_file(self, file_id: str) -> dict[str, Any]:
        """Delete a file and its contents."""
        self._file_record(file_id)
        with self.store.global_lock():
            for path in (self.store.path("files", file_id), self.store.path("blobs", file_id, "")):
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
        return {"id": file_id, "object": "file", "deleted": True}

    def list_files(
        self, purpose: str | None, after: str | None, limit: int, order: str
    ) -> tuple[list[dict[str, Any]], bool]:
        """Files newest first (order=desc) or oldest first, optionally of one purpose."""
        records = [r for r in self.store.all("files") if purpose is None or r.get("purpose") == purpose]
        if order == "asc":
            records.reverse()
        page, has_more = paginate(records, after, limit)
        return [public(r) for r in page], has_more

    # ----------------------------------------------------------------------------- jobs
    def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validate a create request synchronously; the training data is checked later."""
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise bad_request("Missing required parameter: 'model'.", "model", "missing_required_parameter")
        if model not in FINE_TUNABLE_MODELS:
            raise bad_request(
                f"Model {model} is not available for fine-tuning or does not exist.", "model", "model_not_available"
            )
        training_file = self._job_file(body.get("training_file"), "training_file", required=True)
        validation_file = self._job_file(body.get("validation_file"), "validation_file", required=False)
        suffix = self._suffix(body.get("suffix"))
        metadata = self._metadata(body.get("metadata"))
        seed = body.get("seed")
        if seed is None:
            seed = secrets.randbelow(2**31)
        elif not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= 2**31 - 1:
            raise bad_request("'seed' must be an integer between 0 and 2147483647.", "seed")
        method_type, hyper, hyper_param = self._method(body)
        now = self.clock()
        job_id = new_id("ftjob")
        requested = self._hyperparameters(hyper, hyper_param)
        record: dict[str, Any] = {
            "id": job_id,
            "object": "fine_tuning.job",
            "created_at": int(now),
            "error": None,
            "fine_tuned_model": None,
            "finished_at": None,
            "hyperparameters": dict(requested),
            "model": model,
            "organization_id": ORGANIZATION_ID,
            "result_files": [],
            "seed": seed,
            "status": "validating_files",
            "trained_tokens": None,
            "training_file": training_file,
            "validation_file": validation_file,
            "estimated_finish": None,
            "integrations": [],
            "metadata": metadata,
            "method": {"type": method_type, method_type: {"hyperparameters": dict(requested)}},
            "user_provided_suffix": suffix,
            "_local": {"t0": now, "job_seconds": self.job_seconds, "requested": requested},
        }
        events = [
            self._event(now, f"Created fine-tuning job: {job_id}"),
            self._event(now, f"Validating training file: {training_file}"
                        + (f" and validation file: {validation_file}" if validation_file else "")),
        ]
        self.store.write_json(self.store.path("events", job_id), events)
        with self.store.global_lock():
            record["_local"]["seq"] = self.store.next_seq()
            self.store.put("jobs", record)
        return public(record)

    def _job_file(self, file_id: Any, param: str, required: bool) -> str | None:
        if file_id is None and not required:
            return None
        if not isinstance(file_id, str) or not file_id:
            raise bad_request(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")
        record = self.store.get("files", file_id)
        if record is None:
            raise bad_request(f"invalid {param}: {file_id} (no such file)", param, "file_not_found")
        if record.get("purpose") != "fine-tune":
            raise bad_request(
                f"File {file_id} has purpose '{record.get('purpose')}'; {param} needs purpose 'fine-tune'.",
                param,
                "invalid_file_purpose",
            )
        return file_id

    @staticmethod
    def _suffix(suffix: Any) -> str | None:
        if suffix is None:
            return None
        if not isinstance(suffix, str):
            raise bad_request("'suffix' must be a string.", "suffix")
        if len(suffix) > MAX_SUFFIX_CHARS:
            raise bad_request(
                f"suffix is {len(suffix)} characters long; the maximum is {MAX_SUFFIX_CHARS}.",
                "suffix",
                "invalid_suffix",
            )
        if ":" in suffix or any(ch.isspace() for ch in suffix):
            raise bad_request("suffix may not contain ':' or whitespace.", "suffix", "invalid_suffix")
        return suffix or None

    @staticmethod
    def _metadata(metadata: Any) -> dict[str, str] | None:
        if metadata is None:
            return None
        if not isinstance(metadata, dict):
            raise bad_request("'metadata' must be an object of string keys and values.", "metadata")
        if len(metadata) > MAX_METADATA_KEYS:
            raise bad_request(
                f"metadata has {len(metadata)} keys; at most {MAX_METADATA_KEYS} are allowed.",
                "metadata",
                "invalid_metadata",
            )
        for key, value in metadata.items():
            if not isinstance(value, str):
                raise bad_request(
                    f"metadata value for '{key}' must be a string.", f"metadata.{key}", "invalid_metadata"
                )
            if len(key) > MAX_METADATA_KEY_CHARS:
                raise bad_request(
                    f"metadata key '{key[:20]}...' is {len(key)} characters; the maximum is {MAX_METADATA_KEY_CHARS}.",
                    "metadata",
                    "invalid_metadata",
                )
            if len(value) > MAX_METADATA_VALUE_CHARS:
                raise bad_request(
                    f"metadata value for '{key}' is {len(value)} characters; "
                    f"the maximum is {MAX_METADATA_VALUE_CHARS}.",
                    f"metadata.{key}",
                    "invalid_metadata",
                )
        return dict(metadata)

    @staticmethod
    def _method(body: dict[str, Any]) -> tuple[str, Any, str]:
        method = body.get("method")
        if method is None:
            return "supervised", body.get("hyperparameters"), "hyperparameters"
        if not isinstance(method, dict):
            raise bad_request("'method' must be an object.", "method")
        method_type = method.get("type", "supervised")
        if method_type != "supervised":
            raise bad_request(
                f"method.type '{method_type}' is not supported by the local backend (only 'supervised').",
                "method.type",
                "unsupported_method",
            )
        supervised = method.get("supervised") or {}
        if not isinstance(supervised, dict):
            raise bad_request("'method.supervised' must be an object.", "method.supervised")
        hyper = supervised.get("hyperparameters")
        if hyper is None:
            hyper = body.get("hyperparameters")
        return "supervised", hyper, "method.supervised.hyperparameters"

    @staticmethod
    def _hyperparameters(hyper: Any, param: str) -> dict[str, Any]:
        if hyper is None:
            hyper = {}
        if not isinstance(hyper, dict):
            raise bad_request(f"'{param}' must be an object.", param)
        limits: dict[str, tuple[type, float, float]] = {
            "n_epochs": (int, 1, 50),
            "batch_size": (int, 1, 256),
            "learning_rate_multiplier": (float, 1e-6, 10.0),
        }
        unknown = set(hyper) - set(limits)
        if unknown:
            raise bad_request(f"Unknown hyperparameter(s): {', '.join(sorted(unknown))}.", param)
        resolved: dict[str, Any] = {}
        for name, (kind, low, high) in limits.items():
            value = hyper.get(name, "auto")
            if value is None or value == "auto":
                resolved[name] = "auto"
                continue
            number_ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number_ok or (kind is int and not float(value).is_integer()) or not low <= value <= high:
                raise bad_request(
                    f"{name} must be 'auto' or a number between {low:g} and {high:g} (got {value!r}).",
                    f"{param}.{name}",
                    "invalid_hyperparameters",
                )
            resolved[name] = int(value) if kind is int else float(value)
        return resolved

    def get_job(self, job_id: str) -> dict[str, Any]:
        """A job as of now (its lifecycle advanced first)."""
        return public(self._observe(job_id))

    def list_jobs(
        self, after: str | None, limit: int, metadata: dict[str, str] | None, metadata_null: bool = False
    ) -> tuple[list[dict[str, Any]], bool]:
        """Jobs newest first, optionally only those whose metadata matches every key=value."""
        records = self.store.all("jobs")
        if metadata_null:
            records = [r for r in records if not r.get("metadata")]
        elif metadata:
            records = [
                r for r in records
                if all((r.get("metadata") or {}).get(k) == v for k, v in metadata.items())
            ]
        page, has_more = paginate(records, after, limit)
        return [public(self._observe(r["id"], r)) for r in page], has_more

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        """Cancel a job that has not reached a final state."""
        self._job_record(job_id)
        with self.store.job_lock(job_id):
            now = self.clock()
            job = self._advance(self._job_record(job_id), now)
            if job["status"] in TERMINAL_STATUSES:
                self.store.put("jobs", job)
                raise bad_request(
                    f"Cannot cancel job {job_id}: it has already {job['status']}.",
                    "fine_tuning_job_id",
                    "job_not_cancellable",
                )
            job["status"] = "cancelled"
            job["finished_at"] = int(now)
            job["estimated_finish"] = None
            self._drop_future(job_id, now)
            self._append_events(job_id, [self._event(now, "Fine-tuning job cancelled")])
            self.store.put("jobs", job)
        return public(job)

    def list_events(self, job_id: str, after: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Events that have happened by now, newest first."""
        self._observe(job_id)
        now = self.clock()
        events = self.store.read_json(self.store.path("events", job_id)) or []
        visible = [e for e in reversed(events) if e["_t"] <= now]
        page, has_more = paginate(visible, after, limit)
        return [{k: v for k, v in e.items() if k != "_t"} for e in page], has_more

    def list_checkpoints(self, job_id: str, after: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Checkpoints created by now, newest first."""
        self._observe(job_id)
        now = self.clock()
        checkpoints = self.store.read_json(self.store.path("checkpoints", job_id)) or []
        visible = [c for c in reversed(checkpoints) if c["_t"] <= now]
        page, has_more = paginate(visible, after, limit)
        return [{k: v for k, v in c.items() if k != "_t"} for c in page], has_more

    # -- lifecycle
    def _job_record(self, job_id: str) -> dict[str, Any]:
        record = self.store.get("jobs", job_id)
        if record is None:
            raise ApiError(
                404, f"Could not find fine-tuning job: {job_id}", param="fine_tuning_job_id", code="not_found"
            )
        return record

    def _observe(self, job_id: str, record: dict[str, Any] | None = None) -> dict[str, Any]:
        """The job advanced to now; takes the job lock only when there is something to do."""
        job = record or self._job_record(job_id)
        if not self._due(job, self.clock()):
            return job
        with self.store.job_lock(job_id):
            job = self._advance(self._job_record(job_id), self.clock())
            self.store.put("jobs", job)
        return job

    @staticmethod
    def _schedule(job: dict[str, Any]) -> tuple[float, float, float]:
        local = job["_local"]
        t0, seconds = local["t0"], local["job_seconds"]
        return t0 + VALIDATING_END * seconds, t0 + QUEUED_END * seconds, t0 + seconds

    def _due(self, job: dict[str, Any], now: float) -> bool:
        validated, started, finished = self._schedule(job)
        next_change = {"validating_files": validated, "queued": started, "running": finished}
        return job["status"] in next_change and now >= next_change[job["status"]]

    def _advance(self, job: dict[str, Any], now: float) -> dict[str, Any]:
        """Move a job through every state transition due by `now` (call under its job lock)."""
        validated, started, finished = self._schedule(job)
        if job["status"] == "validating_files" and now >= validated:
            self._validate(job, validated)
        if job["status"] == "queued" and now >= started:
            job["status"] = "running"
            job["estimated_finish"] = math.ceil(finished)
            self._append_events(job["id"], [self._event(started, "Fine-tuning job started")])
            self._train(job, started, finished)
        if job["status"] == "running" and now >= finished:
            self._succeed(job, finished)
        return job

    def _fail(self, job: dict[str, Any], at: float, code: str, message: str, param: str | None) -> None:
        job.update(status="failed", finished_at=int(at), estimated_finish=None)
        job["error"] = {"code": code, "message": message, "param": param}
        self._append_events(job["id"], [self._event(at, f"Fine-tuning job failed: {message}", level="error")])

    def _load_conversations(self, job: dict[str, Any]) -> tuple[list[list[dict]], list[list[dict]]]:
        """Parse the job's files; raises TrainingDataError."""
        training = self._blob_or_error(job["training_file"], "training_file")
        conversations = parse_chat_jsonl(training, "training_file", MIN_TRAINING_EXAMPLES)
        validation: list[list[dict]] = []
        if job.get("validation_file"):
            data = self._blob_or_error(job["validation_file"], "validation_file")
            validation = parse_chat_jsonl(data, "validation_file", 1)
        return conversations, validation

    def _blob_or_error(self, file_id: str, param: str) -> bytes:
        try:
            return self.store.path("blobs", file_id, "").read_bytes()
        except (FileNotFoundError, KeyError) as exc:
            code = "invalid_training_file" if param == "training_file" else "invalid_validation_file"
            raise TrainingDataError(code, f"The {param} {file_id} no longer exists.", param) from exc

    def _validate(self, job: dict[str, Any], at: float) -> None:
        try:
            conversations, _ = self._load_conversations(job)
        except TrainingDataError as exc:
            self._fail(job, at, exc.code, exc.message, exc.param)
            return
        resolved = learner.resolve_hyperparameters(job["_local"]["requested"], len(conversations))
        job["hyperparameters"] = dict(resolved)
        job["method"]["supervised"]["hyperparameters"] = dict(resolved)
        job["status"] = "queued"
        job["_local"]["n_examples"] = len(conversations)
        job["_local"]["example_tokens"] = sum(learner.count_message_tokens(c) for c in conversations)
        self._append_events(job["id"], [self._event(at, "Files validated, moving job to queued state")])

    def _train(self, job: dict[str, Any], started: float, finished: float) -> None:
        """Train once; metrics events and checkpoints are dated across the running window."""
        job_id = job["id"]
        try:
            conversations, validation = self._load_conversations(job)
            hyper = job["hyperparameters"]
            result = learner.train(
                conversations,
                n_epochs=hyper["n_epochs"],
                batch_size=hyper["batch_size"],
                learning_rate_multiplier=hyper["learning_rate_multiplier"],
                seed=job["seed"],
                validation=validation,
            )
        except TrainingDataError as exc:
            self._fail(job, started, exc.code, exc.message, exc.param)
            return
        except Exception as exc:  # noqa: BLE001 - a learner bug must fail the job, not the server
            self._fail(job, started, "training_failed", f"Training failed: {type(exc).__name__}: {exc}", None)
            return
        model_name = fine_tuned_model_name(job["model"], job.get("user_provided_suffix"), job_id)
        window = max(finished - started, 0.0)

        def step_time(step: int) -> float:
            # Strictly inside the running window so events appear as the job "runs".
            return started + window * 0.95 * step / max(result.total_steps, 1)

        events = []
        for s in result.steps:
            data = {"step": s.step, "train_loss": s.train_loss, "total_steps": result.total_steps,
                    "train_mean_token_accuracy": s.train_mean_token_accuracy}
            text = f"Step {s.step}/{result.total_steps}: training loss={s.train_loss:.4f}"
            if s.valid_loss is not None:
                data["valid_loss"] = s.valid_loss
                data["valid_mean_token_accuracy"] = s.valid_mean_token_accuracy
                text += f", validation loss={s.valid_loss:.4f}"
            events.append(self._event(step_time(s.step), text, data=data, type_="metrics"))
        checkpoints = []
        for ckpt in result.checkpoints:
            at = step_time(ckpt.step)
            self.store.write_json(self.store.path("models", job_id, f".step-{ckpt.step}.json"), ckpt.model.to_json())
            m = ckpt.metrics
            checkpoints.append({
                "id": new_id("ftckpt"),
                "object": "fine_tuning.job.checkpoint",
                "created_at": int(at),
                "fine_tuned_model_checkpoint": f"{model_name}:ckpt-step-{ckpt.step}",
                "fine_tuning_job_id": job_id,
                "metrics": {
                    "step": float(ckpt.step),
                    "train_loss": m.train_loss,
                    "train_mean_token_accuracy": m.train_mean_token_accuracy,
                    "valid_loss": m.valid_loss,
                    "valid_mean_token_accuracy": m.valid_mean_token_accuracy,
                    "full_valid_loss": ckpt.full_valid_loss,
                    "full_valid_mean_token_accuracy": ckpt.full_valid_mean_token_accuracy,
                },
                "step_number": ckpt.step,
                "_t": at,
            })
            events.append(self._event(at, f"Checkpoint created at step {ckpt.step}"))
        events.sort(key=lambda e: e["_t"])
        self.store.write_json(self.store.path("models", job_id), result.model.to_json())
        self.store.write_json(self.store.path("checkpoints", job_id), checkpoints)
        self._append_events(job_id, events)
        result_file = new_id("file")
        self.store.write_bytes(self.store.path("blobs", result_file, ""), _metrics_csv(result.steps))
        job["_local"].update(result_file=result_file, model_name=model_name)

    def _succeed(self, job: dict[str, Any], finished: float) -> None:
        local = job["_local"]
        csv_bytes = self.store.path("blobs", local["result_file"], "").read_bytes()
        self._add_file("step_metrics.csv", "fine-tune-results", csv_bytes, int(finished), file_id=local["result_file"])
        job.update(
            status="succeeded",
            finished_at=int(finished),
            estimated_finish=None,
            fine_tuned_model=local["model_name"],
            result_files=[local["result_file"]],
            trained_tokens=local["example_tokens"] * job["hyperparameters"]["n_epochs"],
        )
        self._append_events(job["id"], [
            self._event(finished, f"New fine-tuned model created: {local['model_name']}"),
            self._event(finished, "The job has successfully completed"),
        ])

    # -- events
    @staticmethod
    def _event(
        at: float, message: str, *, level: str = "info", data: dict[str, Any] | None = None, type_: str = "message"
    ) -> dict[str, Any]:
        return {
            "id": new_id("ftevent"),
            "object": "fine_tuning.job.event",
            "created_at": int(at),
            "level": level,
            "message": message,
            "data": data or {},
            "type": type_,
            "_t": at,
        }

    def _append_events(self, job_id: str, events: list[dict[str, Any]]) -> None:
        path = self.store.path("events", job_id)
        existing = self.store.read_json(path) or []
        self.store.write_json(path, existing + events)

    def _drop_future(self, job_id: str, now: float) -> None:
        for kind in ("events", "checkpoints"):
            path = self.store.path(kind, job_id)
            items = self.store.read_json(path) or []
            self.store.write_json(path, [item for item in items if item["_t"] <= now])

    # ----------------------------------------------------------------------------- models
    def list_models(self) -> list[dict[str, Any]]:
        """Base models, then each fine-tuned model whose job has succeeded."""
        models = [self._base_model(name) for name in FINE_TUNABLE_MODELS + CHAT_ONLY_MODELS]
        for record in self.store.all("jobs"):
            job = self._observe(record["id"], record)
            if job["status"] == "succeeded" and job.get("fine_tuned_model"):
                models.append(self._tuned_model(job))
        return models

    def get_model(self, model: str) -> dict[str, Any]:
        """One model, or 404 model_not_found."""
        if model in FINE_TUNABLE_MODELS or model in CHAT_ONLY_MODELS:
            return self._base_model(model)
        job, step = self._tuned_job(model)
        if job is None:
            raise self._model_not_found(model)
        entry = self._tuned_model(job)
        if step is not None:
            entry["id"] = model
        return entry

    @staticmethod
    def _base_model(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": BASE_MODEL_CREATED, "owned_by": "system"}

    @staticmethod
    def _tuned_model(job: dict[str, Any]) -> dict[str, Any]:
        return {"id": job["fine_tuned_model"], "object": "model", "created": job["finished_at"],
                "owned_by": ORGANIZATION_ID}

    @staticmethod
    def _model_not_found(model: str) -> ApiError:
        return ApiError(
            404, f"The model `{model}` does not exist or you do not have access to it.", param="model",
            code="model_not_found",
        )

    def _tuned_job(self, model: str) -> tuple[dict[str, Any] | None, int | None]:
        """The succeeded job behind a fine-tuned model (or checkpoint) name, and the step."""
        if not model.startswith("ft:"):
            return None, None
        name, step = model, None
        match = re.match(r"^(.*):ckpt-step-(\d+)$", model)
        if match:
            name, step = match.group(1), int(match.group(2))
        job_id = "ftjob-" + name.rsplit(":", 1)[-1]
        if self.store.get("jobs", job_id) is None:
            return None, None
        job = self._observe(job_id)
        if job["status"] != "succeeded" or job.get("fine_tuned_model") != name:
            return None, None
        if step is not None and not self.store.path("models", job_id, f".step-{step}.json").exists():
            return None, None
        return job, step

    def _load_model(self, path: Path) -> learner.SoftmaxModel:
        stamp = path.stat().st_mtime_ns
        cached = self._model_cache.get(str(path))
        if cached and cached[0] == stamp:
            return cached[1]
        model = learner.SoftmaxModel.from_json(self.store.read_json(path))
        if len(self._model_cache) > 8:
            self._model_cache.clear()
        self._model_cache[str(path)] = (stamp, model)
        return model

    # ----------------------------------------------------------------------------- chat
    def chat_completion(self, body: dict[str, Any]) -> dict[str, Any]:
        """A chat completion from a base model (zero-shot) or a fine-tuned model."""
        model_name = body.get("model")
        if not isinstance(model_name, str) or not model_name:
            raise bad_request("Missing required parameter: 'model'.", "model", "missing_required_parameter")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise bad_request("'messages' must be a non-empty array.", "messages", "missing_required_parameter")
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in MESSAGE_ROLES:
                raise bad_request(f"Invalid message at messages[{index}]: needs a valid 'role'.", f"messages[{index}]")
        if body.get("stream"):
            raise bad_request("Streaming is not supported by the local backend.", "stream", "unsupported_parameter")
        n = body.get("n", 1) if body.get("n") is not None else 1
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 8:
            raise bad_request("'n' must be an integer between 1 and 8.", "n")
        response_format = self._response_format(body.get("response_format"))
        model = self._chat_model(model_name)
        content = learner.answer(messages, response_format, model)
        prompt_tokens = learner.count_message_tokens(messages)
        completion_tokens = learner.count_text_tokens(content)
        choice = {
            "finish_reason": "stop",
            "logprobs": None,
            "message": {"role": "assistant", "content": content, "refusal": None, "annotations": []},
        }
        return {
            "id": new_id("chatcmpl"),
            "object": "chat.completion",
            "created": int(self.clock()),
            "model": model_name,
            "choices": [dict(choice, index=i) for i in range(n)],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens * n,
                "total_tokens": prompt_tokens + completion_tokens * n,
            },
            "service_tier": "default",
            "system_fingerprint": "fp_local",
        }

    @staticmethod
    def _response_format(response_format: Any) -> dict[str, Any] | None:
        if response_format is None:
            return None
        if not isinstance(response_format, dict) or response_format.get("type") not in (
            "text", "json_object", "json_schema"
        ):
            raise bad_request("'response_format.type' must be text, json_object or json_schema.", "response_format")
        if response_format["type"] == "json_schema":
            spec = response_format.get("json_schema")
            if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
                raise bad_request(
                    "'response_format.json_schema.schema' must be a JSON schema object.", "response_format.json_schema"
                )
        return response_format

    def _chat_model(self, model_name: str) -> learner.SoftmaxModel | None:
        if model_name in FINE_TUNABLE_MODELS or model_name in CHAT_ONLY_MODELS:
            return None
        job, step = self._tuned_job(model_name)
        if job is None:
            raise self._model_not_found(model_name)
        suffix = ".json" if step is None else f".step-{step}.json"
        return self._load_model(self.store.path("models", job["id"], suffix))
