"""A job's lifecycle: validating_files -> queued -> running -> succeeded (or failed, cancelled).

A job advances lazily from elapsed time whenever it is observed (no daemon), at fixed fractions
of `job_seconds` after creation. The transition into `running` trains the model once and dates
its metrics events and checkpoints across the running window; reads hide whatever is dated in
the future, so a job appears to progress while the work was done up front.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from typing import Any

from fine_tuning.core.catalog import MIN_TRAINING_EXAMPLES, resolve_model
from local_openai import learner
from local_openai.files import Files
from local_openai.jobs import methods
from local_openai.jobs.billing import billed_tokens, token_events
from local_openai.jobs.training_data import TrainingDataError, invalid_file_code, parse_examples
from local_openai.records import Job, JobCheckpoint, JobError, JobEvent
from local_openai.store import Store, Timeline, new_id

MODEL_NAME_ORG = "local"
# Fractions of job_seconds at which a job leaves validating_files and queued.
VALIDATING_END = 0.1
QUEUED_END = 0.2
# Metrics and checkpoints are dated strictly inside the running window, so they appear as it "runs".
RUNNING_SHARE = 0.95

Example = dict[str, Any]


def fine_tuned_model_name(base: str, suffix: str | None, job_id: str) -> str:
    """`ft:{base}:{org}:{suffix}:{id}` as OpenAI names fine-tuned models."""
    return f"ft:{base}:{MODEL_NAME_ORG}:{suffix or ''}:{job_id.removeprefix('ftjob-')}"


def result_file(method: str, steps: Sequence[learner.StepMetrics]) -> bytes:
    """The result file as OpenAI serves it: the metrics CSV, base64-encoded (clients b64decode it)."""
    return base64.b64encode(methods.metrics_csv(method, steps))


class Lifecycle:
    """Moves jobs through their states; every method that changes a job runs under its job lock."""

    def __init__(self, store: Store, files: Files, events: Timeline[JobEvent],
                 checkpoints: Timeline[JobCheckpoint]) -> None:
        self.store = store
        self.files = files
        self.events = events
        self.checkpoints = checkpoints

    @staticmethod
    def schedule(job: Job) -> tuple[float, float, float]:
        """When the job leaves validating_files, leaves queued, and finishes running (later by its pauses)."""
        return (job.t0 + VALIDATING_END * job.job_seconds, job.t0 + QUEUED_END * job.job_seconds,
                job.t0 + job.job_seconds + job.paused_seconds)

    @staticmethod
    def horizon(job: Job, now: float) -> float:
        """The latest time whose events and checkpoints are visible: a paused job shows nothing newer."""
        return min(now, job.paused_at) if job.paused_at is not None else now

    def due(self, job: Job, now: float) -> bool:
        """Whether a state change is due by `now`."""
        validated, started, finished = self.schedule(job)
        next_change = {"validating_files": validated, "queued": started, "running": finished}
        return job.status in next_change and now >= next_change[job.status]

    def advance(self, job: Job, now: float) -> Job:
        """Move a job through every state transition due by `now`."""
        validated, started, finished = self.schedule(job)
        if job.status == "validating_files" and now >= validated:
            self._validate(job, validated)
        if job.status == "queued" and now >= started:
            job.status = "running"
            job.estimated_finish = math.ceil(finished)
            self.events.append(job.id, [JobEvent.new(started, "Fine-tuning job started")])
            self._train(job, started, finished)
        if job.status == "running" and now >= finished:
            self._succeed(job, finished)
        return job

    def cancel(self, job: Job, now: float) -> None:
        """Stop a job that is not final; nothing dated after `now` (or its pause) is ever revealed."""
        horizon = self.horizon(job, now)
        job.status = "cancelled"
        job.finished_at = int(now)
        job.estimated_finish = None
        job.paused_at = None
        self.events.write(job.id, self.events.until(job.id, horizon))
        self.checkpoints.write(job.id, self.checkpoints.until(job.id, horizon))
        self.events.append(job.id, [JobEvent.new(now, "Fine-tuning job cancelled")])

    def pause(self, job: Job, now: float) -> None:
        """Hold a running job at `now`."""
        job.status, job.paused_at, job.estimated_finish = "paused", now, None
        self.events.append(job.id, [JobEvent.new(now, "Fine-tuning job paused")])

    def resume(self, job: Job, now: float) -> None:
        """Run a paused job on: what was still to come is re-dated by the time it was paused."""
        assert job.paused_at is not None
        paused_at, held = job.paused_at, now - job.paused_at
        for timeline in (self.events, self.checkpoints):
            items = timeline.read(job.id)
            for item in items:
                if item.at > paused_at:
                    item.at += held
            timeline.write(job.id, items)
        job.status, job.paused_at = "running", None
        job.paused_seconds += held
        job.estimated_finish = math.ceil(self.schedule(job)[2])
        self.events.append(job.id, [JobEvent.new(now, "Fine-tuning job resumed")])

    def _fail(self, job: Job, at: float, code: str, message: str, param: str | None) -> None:
        job.status, job.finished_at, job.estimated_finish = "failed", int(at), None
        job.error = JobError(code, message, param)
        self.events.append(job.id, [JobEvent.new(at, f"Fine-tuning job failed: {message}", level="error")])

    def _load_examples(self, job: Job) -> tuple[list[Example], list[Example]]:
        """Parse the job's files by the rules of its method; raises TrainingDataError."""
        training = self._blob_or_error(job.training_file, "training_file")
        examples = parse_examples(training, "training_file", MIN_TRAINING_EXAMPLES, job.model, job.method_type)
        validation: list[Example] = []
        if job.validation_file:
            data = self._blob_or_error(job.validation_file, "validation_file")
            validation = parse_examples(data, "validation_file", 1, job.model, job.method_type)
        return examples, validation

    def _blob_or_error(self, file_id: str, param: str) -> bytes:
        try:
            return self.store.blob(file_id).read_bytes()
        except (FileNotFoundError, KeyError) as exc:
            message = f"The {param} {file_id} no longer exists."
            raise TrainingDataError(invalid_file_code(param), message, param) from exc

    def _validate(self, job: Job, at: float) -> None:
        try:
            examples, _ = self._load_examples(job)
        except TrainingDataError as exc:
            self._fail(job, at, exc.code, exc.message, exc.param)
            return
        except Exception as exc:  # noqa: BLE001 - unexpected input must fail this job, not every later request
            self._fail(job, at, "invalid_training_file", f"Could not read the training data: {type(exc).__name__}", None)
            return
        job.hyperparameters = methods.resolve(job, len(examples))
        job.status = "queued"
        job.n_examples = len(examples)
        billed = billed_tokens(examples, job.model, job.method_type)
        job.example_tokens, job.tokens_estimated = billed.per_epoch, not billed.exact
        self.events.append(job.id, [
            *token_events(at, billed), JobEvent.new(at, "Files validated, moving job to queued state")
        ])

    def _train(self, job: Job, started: float, finished: float) -> None:
        """Train once; metrics events and checkpoints are dated across the running window."""
        try:
            examples, validation = self._load_examples(job)
            result = methods.train(job, examples, validation, self._continued_weights(job))
        except TrainingDataError as exc:
            self._fail(job, started, exc.code, exc.message, exc.param)
            return
        except Exception as exc:  # noqa: BLE001 - a learner bug must fail the job, not the server
            self._fail(job, started, "training_failed", f"Training failed: {type(exc).__name__}: {exc}", None)
            return
        # A continued model is named after the snapshot at the root of its lineage, as OpenAI does.
        model_name = fine_tuned_model_name(resolve_model(job.model), job.suffix, job.id)
        window = max(finished - started, 0.0)

        def step_time(step: int) -> float:
            return started + window * RUNNING_SHARE * step / max(result.total_steps, 1)

        events = [methods.metrics_event(job.method_type, step_time(s.step), s, result.total_steps) for s in result.steps]
        checkpoints = []
        for checkpoint in result.checkpoints:
            at = step_time(checkpoint.step)
            self.store.write_json(
                self.store.path("models", job.id, f".step-{checkpoint.step}.json"), checkpoint.model.to_json()
            )
            checkpoints.append(self._checkpoint(job, model_name, checkpoint, at))
            events.append(JobEvent.new(at, f"Checkpoint created at step {checkpoint.step}"))
        events.sort(key=lambda event: event.at)
        self.store.write_json(self.store.path("models", job.id), result.model.to_json())
        self.checkpoints.write(job.id, checkpoints)
        self.events.append(job.id, events)
        # The CSV is written now but published as a file only when the job succeeds.
        job.result_file = new_id("file")
        self.store.write_bytes(self.store.blob(job.result_file), result_file(job.method_type, result.steps))
        job.model_name = model_name

    def _continued_weights(self, job: Job) -> learner.SoftmaxModel | None:
        """The weights a continued job starts from (those of the fine-tuned model it names)."""
        if not job.model.startswith("ft:"):
            return None
        parent = "ftjob-" + job.model.rsplit(":", 1)[-1]
        return learner.SoftmaxModel.from_json(self.store.read_json(self.store.path("models", parent)))

    @staticmethod
    def _checkpoint(job: Job, model_name: str, checkpoint: learner.EpochCheckpoint, at: float) -> JobCheckpoint:
        return JobCheckpoint(
            id=new_id("ftckpt"),
            at=at,
            fine_tuned_model_checkpoint=f"{model_name}:ckpt-step-{checkpoint.step}",
            fine_tuning_job_id=job.id,
            metrics=methods.checkpoint_metrics(job.method_type, checkpoint),
            step_number=checkpoint.step,
        )

    def _succeed(self, job: Job, finished: float) -> None:
        assert job.result_file is not None and job.model_name is not None and job.example_tokens is not None
        content = self.store.blob(job.result_file).read_bytes()
        self.files.add("step_metrics.csv", "fine-tune-results", content, int(finished), file_id=job.result_file)
        job.status, job.finished_at, job.estimated_finish = "succeeded", int(finished), None
        job.fine_tuned_model = job.model_name
        job.result_files = [job.result_file]
        job.trained_tokens = job.example_tokens * job.hyperparameters["n_epochs"]
        self.events.append(job.id, [
            JobEvent.new(finished, f"New fine-tuned model created: {job.model_name}"),
            JobEvent.new(finished, "The job has successfully completed"),
        ])
