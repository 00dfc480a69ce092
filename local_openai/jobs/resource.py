"""The fine-tuning jobs resource: create, retrieve, list, cancel, and a job's events and checkpoints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from local_openai.exceptions import (
    FileNotFound,
    InvalidFilePurpose,
    JobNotCancellable,
    JobNotFound,
    JobStateConflict,
    MissingRequiredParameter,
    ModelNotAvailable,
    ModelNotFound,
)
from local_openai.files import Files
from local_openai.jobs import create_request
from local_openai.jobs.lifecycle import Lifecycle
from local_openai.records import Job, JobCheckpoint, JobEvent, Page
from local_openai.store import Store, Table, Timeline, TimelineItem, new_id, paginate

T = TypeVar("T", bound=TimelineItem)


class Jobs:
    """Fine-tuning jobs in a `Store`; `files` publishes their result files."""

    def __init__(
        self, store: Store, files: Files, clock: Callable[[], float], job_seconds: float,
        admit: Callable[[Any], None] | None = None, list_lag_seconds: float = 0.0,
    ) -> None:
        self.store = store
        self.list_lag_seconds = list_lag_seconds  # fault knob: how long a new job stays out of `list`
        self.admit = admit  # refuses a create request before any work (organization access, shut-down base)
        self.files = files
        self.clock = clock
        self.job_seconds = job_seconds
        self.table = Table(store, "jobs", Job.from_store)
        self.events = Timeline(store, "events", JobEvent.from_store)
        self.checkpoints = Timeline(store, "checkpoints", JobCheckpoint.from_store)
        self.lifecycle = Lifecycle(store, files, self.events, self.checkpoints)

    # ----------------------------------------------------------------------------- requests
    def create(self, body: dict[str, Any]) -> Job:
        """Validate a create request synchronously (in OpenAI's order); the training data is checked later."""
        if self.admit is not None:
            self.admit(body.get("model"))
        create_request.known_fields(body)
        model = self._model_to_train(body.get("model"))
        training_file = self._job_file(body.get("training_file"), "training_file", required=True)
        validation_file = self._job_file(body.get("validation_file"), "validation_file", required=False)
        suffix = create_request.suffix(body.get("suffix"))
        metadata = create_request.metadata(body.get("metadata"))
        seed = create_request.seed(body.get("seed"))
        method_type, hyper, hyper_param, grader = create_request.method(body, model)
        integrations = create_request.integrations(body.get("integrations"))
        now = self.clock()
        requested = create_request.hyperparameters(hyper, hyper_param, method_type)
        job = Job(
            id=new_id("ftjob"), created_at=int(now), model=model, training_file=training_file,
            validation_file=validation_file, seed=seed, suffix=suffix, metadata=metadata, method_type=method_type,
            hyperparameters=dict(requested), integrations=integrations, t0=now, job_seconds=self.job_seconds, requested=requested,
            grader=grader,
        )
        validating = f"Validating training file: {training_file}" + (
            f" and validation file: {validation_file}" if validation_file else ""
        )
        # Events first: once the record is listed, a reader must find its events.
        self.events.write(job.id, [JobEvent.new(now, f"Created fine-tuning job: {job.id}"), JobEvent.new(now, validating)])
        self.table.insert(job)
        return job

    def _model_to_train(self, model: Any) -> str:
        """A catalog model's dated snapshot, or a fine-tuned model of this store to train further."""
        if isinstance(model, str) and model.startswith("ft:"):
            if self.tuned_job(model) is None:
                raise ModelNotAvailable(model)
            return model  # as OpenAI does, a continued job reports the model it continues
        return create_request.base_model(model)

    def tuned_job(self, model: str, deleted_too: bool = False) -> Job | None:
        """The succeeded job whose fine-tuned model is `model` (`ft:...:{job id}`), else None.

        A deleted model has no job unless `deleted_too` (its checkpoints are models of their own).
        """
        job = self.find("ftjob-" + model.rsplit(":", 1)[-1])
        if job is None:
            return None
        job = self.observe(job.id, job)
        available = job.status == "succeeded" and (deleted_too or not job.model_deleted)
        return job if available and job.fine_tuned_model == model else None

    def _job_file(self, file_id: Any, param: str, required: bool) -> str | None:
        if file_id is None and not required:
            return None
        if not isinstance(file_id, str) or not file_id:
            raise MissingRequiredParameter(param)
        record = self.files.find(file_id)
        if record is None:
            raise FileNotFound(param, file_id)
        if record.purpose != "fine-tune":
            raise InvalidFilePurpose(
                f"File {file_id} has purpose '{record.purpose}'; {param} needs purpose 'fine-tune'.", param
            )
        return file_id

    def get(self, job_id: str) -> Job:
        """A job as of now (its lifecycle advanced first)."""
        return self.observe(job_id)

    def list(
        self, after: str | None, limit: int, metadata: dict[str, str] | None, metadata_null: bool = False
    ) -> Page[Job]:
        """Jobs newest first, optionally only those whose metadata matches every key=value.

        With the list-lag fault on, a job is listed only `list_lag_seconds` after its creation.
        """
        jobs = self.table.all()
        if self.list_lag_seconds:
            listed_by = self.clock() - self.list_lag_seconds
            jobs = [job for job in jobs if job.t0 <= listed_by]
        if metadata_null:
            jobs = [job for job in jobs if not job.metadata]
        elif metadata:
            jobs = [job for job in jobs if all((job.metadata or {}).get(k) == v for k, v in metadata.items())]
        page, has_more = paginate(jobs, after, limit)
        return Page([self.observe(job.id, job) for job in page], has_more)

    def all_observed(self) -> list[Job]:
        """Every job advanced to now, newest first."""
        return [self.observe(job.id, job) for job in self.table.all()]

    def cancel(self, job_id: str) -> Job:
        """Cancel a job that has not reached a final state."""
        self.record(job_id)
        with self.store.job_lock(job_id):
            now = self.clock()
            job = self.lifecycle.advance(self.record(job_id), now)
            if job.finished:
                self.table.put(job)
                raise JobNotCancellable(job_id, job.status)
            self.lifecycle.cancel(job, now)
            self.table.put(job)
        return job

    def pause(self, job_id: str) -> Job:
        """Pause a running job: nothing more happens, or shows, until it is resumed."""
        return self._change(job_id, "running", "pause", self.lifecycle.pause)

    def resume(self, job_id: str) -> Job:
        """Resume a paused job where it stopped; its finish moves back by the time it was paused."""
        return self._change(job_id, "paused", "resume", self.lifecycle.resume)

    def _change(self, job_id: str, required: str, action: str, change: Callable[[Job, float], None]) -> Job:
        self.record(job_id)
        with self.store.job_lock(job_id):
            now = self.clock()
            job = self.lifecycle.advance(self.record(job_id), now)
            if job.status != required:
                self.table.put(job)
                raise JobStateConflict(job_id, action, job.status)
            change(job, now)
            self.table.put(job)
        return job

    def delete_model(self, model: str) -> Job:
        """Mark a fine-tuned model deleted: from now on it is unknown everywhere (404)."""
        job = self.tuned_job(model)
        if job is None:
            raise ModelNotFound(model)
        with self.store.job_lock(job.id):
            job = self.record(job.id)
            job.model_deleted = True
            self.table.put(job)
        return job

    def list_events(self, job_id: str, after: str | None, limit: int) -> Page[JobEvent]:
        """Events that have happened by now, newest first."""
        return self._past_page(self.events, job_id, after, limit)

    def list_checkpoints(self, job_id: str, after: str | None, limit: int) -> Page[JobCheckpoint]:
        """Checkpoints created by now, newest first."""
        return self._past_page(self.checkpoints, job_id, after, limit)

    def _past_page(self, timeline: Timeline[T], job_id: str, after: str | None, limit: int) -> Page[T]:
        """A page of a job's events or checkpoints dated by now, newest first."""
        job = self.observe(job_id)
        visible = list(reversed(timeline.until(job_id, self.lifecycle.horizon(job, self.clock()))))
        page, has_more = paginate(visible, after, limit)
        return Page(page, has_more)

    # ----------------------------------------------------------------------------- lifecycle
    def find(self, job_id: str) -> Job | None:
        """A job as last written (not advanced), or None."""
        return self.table.get(job_id)

    def record(self, job_id: str) -> Job:
        """A job as last written (not advanced), or 404."""
        job = self.find(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def observe(self, job_id: str, job: Job | None = None) -> Job:
        """The job advanced to now; takes the job lock only when there is something to do."""
        job = job or self.record(job_id)
        if not self.lifecycle.due(job, self.clock()):
            return job
        with self.store.try_job_lock(job_id) as locked:
            if not locked:
                # Another request is advancing it (training can take seconds): answer with the
                # stored state instead of making every reader of the job list wait.
                return self.record(job_id)
            # Re-read under the lock: another thread or process may have advanced it meanwhile.
            job = self.lifecycle.advance(self.record(job_id), self.clock())
            self.table.put(job)
        return job
