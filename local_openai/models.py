"""The models resource: base models from the catalog, and the fine-tuned models of succeeded jobs."""

from __future__ import annotations

import re
from pathlib import Path

from fine_tuning.core.catalog import MODELS, REINFORCEMENT_MODELS
from local_openai import learner
from local_openai.exceptions import ModelNotDeletable, ModelNotFound
from local_openai.jobs import Jobs
from local_openai.records import ORGANIZATION_ID, DeletedModel, Job, Model, ModelList
from local_openai.shutdowns import Shutdowns
from local_openai.store import Store

# Every catalog name (snapshot and alias) is a base model that answers chat requests zero-shot.
BASE_MODELS: tuple[str, ...] = tuple(name for model in (*MODELS, *REINFORCEMENT_MODELS) for name in model.names)
BASE_MODEL_CREATED = 1_721_172_741  # a fixed, plausible "created" for base models
MODEL_CACHE_SIZE = 8
_CHECKPOINT_RE = re.compile(r"^(.*):ckpt-step-(\d+)$")


def _base_model(name: str, shutdown: str | None = None) -> Model:
    return Model(name, BASE_MODEL_CREATED, "system", shutdown)


def _tuned_model(job: Job, name: str | None = None, shutdown: str | None = None) -> Model:
    assert job.fine_tuned_model is not None and job.finished_at is not None
    return Model(name or job.fine_tuned_model, job.finished_at, ORGANIZATION_ID, shutdown)


class Models:
    """Base models, the models of succeeded jobs and their checkpoints, and their weights."""

    def __init__(self, store: Store, jobs: Jobs, shutdowns: Shutdowns | None = None) -> None:
        self.store = store
        self.jobs = jobs
        self.shutdowns = shutdowns or Shutdowns((), jobs.clock)
        # Parsed weights by path, keyed also by mtime so a rewritten file is never served stale.
        self._cache: dict[str, tuple[int, learner.SoftmaxModel]] = {}

    def list(self) -> ModelList:
        """Base models, then each fine-tuned model whose job has succeeded (none that has shut down)."""
        models = [_base_model(name, self._shutdown(name)) for name in BASE_MODELS]
        for job in self.jobs.all_observed():
            if job.status == "succeeded" and job.fine_tuned_model and not job.model_deleted:
                models.append(_tuned_model(job, shutdown=self._shutdown(job.fine_tuned_model)))
        return ModelList([model for model in models if not self.shutdowns.is_shut_down(model.id)])

    def get(self, model: str) -> Model:
        """One model (with its `shutdown_date` when one is set), or 404 model_not_found (also once shut down)."""
        self.shutdowns.require_answering(model)
        if model in BASE_MODELS:
            return _base_model(model, self._shutdown(model))
        job, step = self._tuned_job(model)
        if job is None:
            raise ModelNotFound(model)
        return _tuned_model(job, model if step is not None else None, self._shutdown(model))

    def _shutdown(self, model: str) -> str | None:
        day = self.shutdowns.date_of(model)
        return day.isoformat() if day else None

    def delete(self, model: str) -> DeletedModel:
        """Delete a fine-tuned model: it is 404 everywhere afterwards (its job still names it)."""
        if model in BASE_MODELS or _CHECKPOINT_RE.match(model):
            raise ModelNotDeletable(model)
        self.jobs.delete_model(model)
        return DeletedModel(model)

    def weights(self, model: str) -> learner.SoftmaxModel | None:
        """The weights a model answers with: None for a base model (it answers zero-shot)."""
        self.shutdowns.require_answering(model)
        if model in BASE_MODELS:
            return None
        job, step = self._tuned_job(model)
        if job is None:
            raise ModelNotFound(model)
        suffix = ".json" if step is None else f".step-{step}.json"
        return self._load(self.store.path("models", job.id, suffix))

    def _tuned_job(self, model: str) -> tuple[Job | None, int | None]:
        """The succeeded job behind a fine-tuned model (or checkpoint) name, and the step."""
        if not model.startswith("ft:"):
            return None, None
        name, step = model, None
        match = _CHECKPOINT_RE.match(model)
        if match:
            name, step = match.group(1), int(match.group(2))
        job = self.jobs.tuned_job(name, deleted_too=step is not None)
        if job is None:
            return None, None
        if step is not None and not self.store.path("models", job.id, f".step-{step}.json").exists():
            return None, None
        return job, step

    def _load(self, path: Path) -> learner.SoftmaxModel:
        stamp = path.stat().st_mtime_ns
        cached = self._cache.get(str(path))
        if cached and cached[0] == stamp:
            return cached[1]
        model = learner.SoftmaxModel.from_json(self.store.read_json(path))
        if len(self._cache) > MODEL_CACHE_SIZE:
            self._cache.clear()
        self._cache[str(path)] = (stamp, model)
        return model
