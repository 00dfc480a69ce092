"""The fine-tuning jobs resource: request validation, the lifecycle, events and checkpoints.

A job's lifecycle advances lazily from elapsed time whenever the job is observed (no daemon):
validating_files -> queued -> running -> succeeded, at fixed fractions of `job_seconds`
after creation. The transition into `running` trains the model once and dates its metrics
events and checkpoints across the running window; reads hide whatever is dated in the future,
so a job appears to progress while the work was done up front.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from fine_tuning.local_openai import learner
from fine_tuning.local_openai.exceptions import (
    FileNotFound,
    InvalidFilePurpose,
    InvalidHyperparameters,
    InvalidMetadata,
    InvalidRequest,
    InvalidSuffix,
    JobNotCancellable,
    JobNotFound,
    MissingRequiredParameter,
    ModelNotAvailable,
    OpenAIError,
    UnsupportedMethod,
)
from fine_tuning.local_openai.files import Files
from fine_tuning.local_openai.state import Store, new_id, paginate, public
from fine_tuning.local_openai.training_data import TrainingDataError, invalid_file_code, parse_chat_jsonl
from fine_tuning.core.catalog import MIN_TRAINING_EXAMPLES, catalog_model
from fine_tuning.core.tokens import token_counter

ORGANIZATION_ID = "org-local"
MODEL_NAME_ORG = "local"
MAX_SUFFIX_CHARS = 64
MAX_METADATA_KEYS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
# Fractions of job_seconds at which a job leaves validating_files and queued.
VALIDATING_END = 0.1
QUEUED_END = 0.2
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")


def fine_tuned_model_name(base: str, suffix: str | None, job_id: str) -> str:
    """`ft:{base}:{org}:{suffix}:{id}` as OpenAI names fine-tuned models."""
    return f"ft:{base}:{MODEL_NAME_ORG}:{suffix or ''}:{job_id.removeprefix('ftjob-')}"


# ---------------------------------------------------------------------------------------------
# Request fields (checked synchronously, as OpenAI does, before a job exists)
# ---------------------------------------------------------------------------------------------


def _check_length(
    value: str, maximum: int, subject: str, param: str, error: type[OpenAIError], unit: str = "characters"
) -> None:
    if len(value) > maximum:
        raise error(f"{subject} is {len(value)} {unit}; the maximum is {maximum}.", param)


def _suffix(suffix: Any) -> str | None:
    if suffix is None:
        return None
    if not isinstance(suffix, str):
        raise InvalidRequest("'suffix' must be a string.", "suffix")
    _check_length(suffix, MAX_SUFFIX_CHARS, "suffix", "suffix", InvalidSuffix, unit="characters long")
    if ":" in suffix or any(ch.isspace() for ch in suffix):
        raise InvalidSuffix("suffix may not contain ':' or whitespace.", "suffix")
    return suffix or None


def _metadata(metadata: Any) -> dict[str, str] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise InvalidRequest("'metadata' must be an object of string keys and values.", "metadata")
    if len(metadata) > MAX_METADATA_KEYS:
        raise InvalidMetadata(f"metadata has {len(metadata)} keys; at most {MAX_METADATA_KEYS} are allowed.", "metadata")
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise InvalidMetadata(f"metadata value for '{key}' must be a string.", f"metadata.{key}")
        _check_length(key, MAX_METADATA_KEY_CHARS, f"metadata key '{key[:20]}...'", "metadata", InvalidMetadata)
        _check_length(
            value, MAX_METADATA_VALUE_CHARS, f"metadata value for '{key}'", f"metadata.{key}", InvalidMetadata
        )
    return dict(metadata)


def _seed(seed: Any) -> int:
    if seed is None:
        return secrets.randbelow(2**31)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= 2**31 - 1:
        raise InvalidRequest("'seed' must be an integer between 0 and 2147483647.", "seed")
    return seed


def _method(body: dict[str, Any]) -> tuple[str, Any, str]:
    """(method type, requested hyperparameters, their param name for errors)."""
    method = body.get("method")
    if method is None:
        return "supervised", body.get("hyperparameters"), "hyperparameters"
    if not isinstance(method, dict):
        raise InvalidRequest("'method' must be an object.", "method")
    method_type = method.get("type", "supervised")
    if method_type != "supervised":
        raise UnsupportedMethod(
            f"method.type '{method_type}' is not supported by the local backend (only 'supervised').", "method.type"
        )
    supervised = method.get("supervised") or {}
    if not isinstance(supervised, dict):
        raise InvalidRequest("'method.supervised' must be an object.", "method.supervised")
    hyper = supervised.get("hyperparameters")
    if hyper is None:
        hyper = body.get("hyperparameters")
    return "supervised", hyper, "method.supervised.hyperparameters"


def _hyperparameters(hyper: Any, param: str) -> dict[str, Any]:
    """Requested hyperparameters, each a checked number or "auto" (resolved at validation)."""
    if hyper is None:
        hyper = {}
    if not isinstance(hyper, dict):
        raise InvalidRequest(f"'{param}' must be an object.", param)
    limits: dict[str, tuple[type, float, float]] = {
        "n_epochs": (int, 1, 50),
        "batch_size": (int, 1, 256),
        "learning_rate_multiplier": (float, 1e-6, 10.0),
    }
    unknown = set(hyper) - set(limits)
    if unknown:
        raise InvalidRequest(f"Unknown hyperparameter(s): {', '.join(sorted(unknown))}.", param)
    resolved: dict[str, Any] = {}
    for name, (kind, low, high) in limits.items():
        value = hyper.get(name, "auto")
        if value is None or value == "auto":
            resolved[name] = "auto"
            continue
        number_ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        # Range first: float() of a huge int would overflow instead of being a 400.
        if not number_ok or not low <= value <= high or (kind is int and not float(value).is_integer()):
            raise InvalidHyperparameters(
                f"{name} must be 'auto' or a number between {low:g} and {high:g} (got {value!r}).", f"{param}.{name}"
            )
        resolved[name] = int(value) if kind is int else float(value)
    return resolved


# ---------------------------------------------------------------------------------------------
# Events and results
# ---------------------------------------------------------------------------------------------


def _event(
    at: float, message: str, *, level: str = "info", data: dict[str, Any] | None = None, type_: str = "message"
) -> dict[str, Any]:
    # "_t" keeps the exact time: created_at is whole seconds, too coarse to hide future events.
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


def _metrics_csv(steps: Sequence[learner.StepMetrics]) -> bytes:
    lines = ["step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"]
    for s in steps:
        valid_loss = "" if s.valid_loss is None else f"{s.valid_loss:.6f}"
        valid_acc = "" if s.valid_mean_token_accuracy is None else f"{s.valid_mean_token_accuracy:.6f}"
        # OpenAI's train_accuracy is the batch's token accuracy, like the valid column beside it.
        lines.append(f"{s.step},{s.train_loss:.6f},{s.train_mean_token_accuracy:.6f},{valid_loss},{valid_acc}")
    return ("\n".join(lines) + "\n").encode()


# ---------------------------------------------------------------------------------------------
# The resource
# ---------------------------------------------------------------------------------------------


class Jobs:
    """Fine-tuning jobs in a `Store`; `files` publishes their result files."""

    def __init__(self, store: Store, files: Files, clock: Callable[[], float], job_seconds: float) -> None:
        self.store = store
        self.files = files
        self.clock = clock
        self.job_seconds = job_seconds

    # ----------------------------------------------------------------------------- requests
    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validate a create request synchronously; the training data is checked later."""
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise MissingRequiredParameter("model")
        entry = catalog_model(model)
        if entry is None or not entry.fine_tunable:
            raise ModelNotAvailable(model)
        model = entry.snapshot  # as OpenAI does, a job trains (and reports) the dated snapshot
        training_file = self._job_file(body.get("training_file"), "training_file", required=True)
        validation_file = self._job_file(body.get("validation_file"), "validation_file", required=False)
        suffix = _suffix(body.get("suffix"))
        metadata = _metadata(body.get("metadata"))
        seed = _seed(body.get("seed"))
        method_type, hyper, hyper_param = _method(body)
        now = self.clock()
        job_id = new_id("ftjob")
        requested = _hyperparameters(hyper, hyper_param)
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
            _event(now, f"Created fine-tuning job: {job_id}"),
            _event(now, f"Validating training file: {training_file}"
                   + (f" and validation file: {validation_file}" if validation_file else "")),
        ]
        # Events first: once the record is listed, a reader must find its events.
        self.store.write_list("events", job_id, events)
        self.store.insert("jobs", record)
        return public(record)

    def _job_file(self, file_id: Any, param: str, required: bool) -> str | None:
        if file_id is None and not required:
            return None
        if not isinstance(file_id, str) or not file_id:
            raise MissingRequiredParameter(param)
        record = self.store.get("files", file_id)
        if record is None:
            raise FileNotFound(param, file_id)
        if record.get("purpose") != "fine-tune":
            raise InvalidFilePurpose(
                f"File {file_id} has purpose '{record.get('purpose')}'; {param} needs purpose 'fine-tune'.", param
            )
        return file_id

    def get(self, job_id: str) -> dict[str, Any]:
        """A job as of now (its lifecycle advanced first)."""
        return public(self.observe(job_id))

    def list(
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
        return [public(self.observe(r["id"], r)) for r in page], has_more

    def all_observed(self) -> list[dict[str, Any]]:
        """Every job record advanced to now, newest first."""
        return [self.observe(record["id"], record) for record in self.store.all("jobs")]

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a job that has not reached a final state."""
        self.record(job_id)
        with self.store.job_lock(job_id):
            now = self.clock()
            job = self._advance(self.record(job_id), now)
            if job["status"] in TERMINAL_STATUSES:
                self.store.put("jobs", job)
                raise JobNotCancellable(job_id, job["status"])
            job["status"] = "cancelled"
            job["finished_at"] = int(now)
            job["estimated_finish"] = None
            self._drop_future(job_id, now)
            self._append_events(job_id, [_event(now, "Fine-tuning job cancelled")])
            self.store.put("jobs", job)
        return public(job)

    def list_events(self, job_id: str, after: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Events that have happened by now, newest first."""
        return self._past_page("events", job_id, after, limit)

    def list_checkpoints(self, job_id: str, after: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Checkpoints created by now, newest first."""
        return self._past_page("checkpoints", job_id, after, limit)

    def _past_page(
        self, kind: str, job_id: str, after: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """A page of a job's events or checkpoints dated by now, newest first, without "_t"."""
        self.observe(job_id)
        now = self.clock()
        visible = [item for item in reversed(self.store.read_list(kind, job_id)) if item["_t"] <= now]
        page, has_more = paginate(visible, after, limit)
        return [{k: v for k, v in item.items() if k != "_t"} for item in page], has_more

    # ----------------------------------------------------------------------------- lifecycle
    def record(self, job_id: str) -> dict[str, Any]:
        """A job's stored record as last written (not advanced), or 404."""
        record = self.store.get("jobs", job_id)
        if record is None:
            raise JobNotFound(job_id)
        return record

    def observe(self, job_id: str, record: dict[str, Any] | None = None) -> dict[str, Any]:
        """The job advanced to now; takes the job lock only when there is something to do."""
        job = record or self.record(job_id)
        if not self._due(job, self.clock()):
            return job
        with self.store.try_job_lock(job_id) as locked:
            if not locked:
                # Another request is advancing it (training can take seconds): answer with the
                # stored state instead of making every reader of the job list wait.
                return self.record(job_id)
            # Re-read under the lock: another thread or process may have advanced it meanwhile.
            job = self._advance(self.record(job_id), self.clock())
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
            self._append_events(job["id"], [_event(started, "Fine-tuning job started")])
            self._train(job, started, finished)
        if job["status"] == "running" and now >= finished:
            self._succeed(job, finished)
        return job

    def _fail(self, job: dict[str, Any], at: float, code: str, message: str, param: str | None) -> None:
        job.update(status="failed", finished_at=int(at), estimated_finish=None)
        job["error"] = {"code": code, "message": message, "param": param}
        self._append_events(job["id"], [_event(at, f"Fine-tuning job failed: {message}", level="error")])

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
            return self.store.blob(file_id).read_bytes()
        except (FileNotFoundError, KeyError) as exc:
            message = f"The {param} {file_id} no longer exists."
            raise TrainingDataError(invalid_file_code(param), message, param) from exc

    def _validate(self, job: dict[str, Any], at: float) -> None:
        try:
            conversations, _ = self._load_conversations(job)
        except TrainingDataError as exc:
            self._fail(job, at, exc.code, exc.message, exc.param)
            return
        except Exception as exc:  # noqa: BLE001 - unexpected input must fail this job, not every later request
            self._fail(job, at, "invalid_training_file", f"Could not read the training data: {type(exc).__name__}", None)
            return
        resolved = learner.resolve_hyperparameters(job["_local"]["requested"], len(conversations))
        job["hyperparameters"] = dict(resolved)
        job["method"]["supervised"]["hyperparameters"] = dict(resolved)
        job["status"] = "queued"
        job["_local"]["n_examples"] = len(conversations)
        counter = token_counter()
        job["_local"]["example_tokens"] = sum(learner.count_message_tokens(c, counter) for c in conversations)
        self._append_events(job["id"], [_event(at, "Files validated, moving job to queued state")])

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
            events.append(_event(step_time(s.step), text, data=data, type_="metrics"))
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
            events.append(_event(at, f"Checkpoint created at step {ckpt.step}"))
        events.sort(key=lambda e: e["_t"])
        self.store.write_json(self.store.path("models", job_id), result.model.to_json())
        self.store.write_list("checkpoints", job_id, checkpoints)
        self._append_events(job_id, events)
        # The CSV is written now but published as a file only when the job succeeds.
        result_file = new_id("file")
        self.store.write_bytes(self.store.blob(result_file), _metrics_csv(result.steps))
        job["_local"].update(result_file=result_file, model_name=model_name)

    def _succeed(self, job: dict[str, Any], finished: float) -> None:
        local = job["_local"]
        csv_bytes = self.store.blob(local["result_file"]).read_bytes()
        self.files.add("step_metrics.csv", "fine-tune-results", csv_bytes, int(finished), file_id=local["result_file"])
        job.update(
            status="succeeded",
            finished_at=int(finished),
            estimated_finish=None,
            fine_tuned_model=local["model_name"],
            result_files=[local["result_file"]],
            trained_tokens=local["example_tokens"] * job["hyperparameters"]["n_epochs"],
        )
        self._append_events(job["id"], [
            _event(finished, f"New fine-tuned model created: {local['model_name']}"),
            _event(finished, "The job has successfully completed"),
        ])

    def _append_events(self, job_id: str, events: list[dict[str, Any]]) -> None:
        self.store.write_list("events", job_id, self.store.read_list("events", job_id) + events)

    def _drop_future(self, job_id: str, now: float) -> None:
        # A cancelled job must not go on to "reveal" events and checkpoints dated after it.
        for kind in ("events", "checkpoints"):
            past = [item for item in self.store.read_list(kind, job_id) if item["_t"] <= now]
            self.store.write_list(kind, job_id, past)
