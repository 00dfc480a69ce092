"""The models and chat completions resources: base and fine-tuned models, and their answers."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fine_tuning.local_openai import learner, structured_outputs
from fine_tuning.local_openai.exceptions import (
    InvalidRequest,
    MissingRequiredParameter,
    ModelNotFound,
    UnsupportedParameter,
)
from fine_tuning.local_openai.jobs import ORGANIZATION_ID, Jobs
from fine_tuning.local_openai.state import Store, new_id
from fine_tuning.local_openai.training_data import MESSAGE_ROLES
from fine_tuning.core.catalog import MODELS
from fine_tuning.core.tokens import token_counter

# Every catalog name (snapshot and alias) is a base model that answers chat requests zero-shot.
BASE_MODELS: tuple[str, ...] = tuple(name for model in MODELS for name in model.names)
BASE_MODEL_CREATED = 1_721_172_741  # a fixed, plausible "created" for base models
MODEL_CACHE_SIZE = 8


def _base_model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": BASE_MODEL_CREATED, "owned_by": "system"}


def _tuned_model(job: dict[str, Any]) -> dict[str, Any]:
    return {"id": job["fine_tuned_model"], "object": "model", "created": job["finished_at"],
            "owned_by": ORGANIZATION_ID}


def _response_format(response_format: Any) -> dict[str, Any] | None:
    if response_format is None:
        return None
    if not isinstance(response_format, dict) or response_format.get("type") not in (
        "text", "json_object", "json_schema"
    ):
        raise InvalidRequest("'response_format.type' must be text, json_object or json_schema.", "response_format")
    if response_format["type"] == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise InvalidRequest(
                "'response_format.json_schema.schema' must be a JSON schema object.", "response_format.json_schema"
            )
        try:
            structured_outputs.check_response_schema(spec["schema"])
        except structured_outputs.SchemaError as exc:
            raise _invalid_schema(exc) from None
    return response_format


def _invalid_schema(error: structured_outputs.SchemaError) -> InvalidRequest:
    return InvalidRequest(f"Invalid schema for response_format: {error}", "response_format")


class ChatModels:
    """Models (base ones, and those of succeeded jobs and their checkpoints) and chat completions."""

    def __init__(self, store: Store, jobs: Jobs, clock: Callable[[], float]) -> None:
        self.store = store
        self.jobs = jobs
        self.clock = clock
        # Parsed weights by path, keyed also by mtime so a rewritten file is never served stale.
        self._model_cache: dict[str, tuple[int, learner.SoftmaxModel]] = {}

    # ----------------------------------------------------------------------------- models
    def list_models(self) -> list[dict[str, Any]]:
        """Base models, then each fine-tuned model whose job has succeeded."""
        models = [_base_model(name) for name in BASE_MODELS]
        for job in self.jobs.all_observed():
            if job["status"] == "succeeded" and job.get("fine_tuned_model"):
                models.append(_tuned_model(job))
        return models

    def get_model(self, model: str) -> dict[str, Any]:
        """One model, or 404 model_not_found."""
        if model in BASE_MODELS:
            return _base_model(model)
        job, step = self._tuned_job(model)
        if job is None:
            raise ModelNotFound(model)
        entry = _tuned_model(job)
        if step is not None:
            entry["id"] = model
        return entry

    def _tuned_job(self, model: str) -> tuple[dict[str, Any] | None, int | None]:
        """The succeeded job behind a fine-tuned model (or checkpoint) name, and the step."""
        if not model.startswith("ft:"):
            return None, None
        name, step = model, None
        match = re.match(r"^(.*):ckpt-step-(\d+)$", model)
        if match:
            name, step = match.group(1), int(match.group(2))
        job_id = "ftjob-" + name.rsplit(":", 1)[-1]
        record = self.store.get("jobs", job_id)
        if record is None:
            return None, None
        job = self.jobs.observe(job_id, record)
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
        if len(self._model_cache) > MODEL_CACHE_SIZE:
            self._model_cache.clear()
        self._model_cache[str(path)] = (stamp, model)
        return model

    def _chat_model(self, model_name: str) -> learner.SoftmaxModel | None:
        """The weights to answer with: None for a base model (it answers zero-shot)."""
        if model_name in BASE_MODELS:
            return None
        job, step = self._tuned_job(model_name)
        if job is None:
            raise ModelNotFound(model_name)
        suffix = ".json" if step is None else f".step-{step}.json"
        return self._load_model(self.store.path("models", job["id"], suffix))

    # ----------------------------------------------------------------------------- chat
    def chat_completion(self, body: dict[str, Any]) -> dict[str, Any]:
        """A chat completion from a base model (zero-shot) or a fine-tuned model."""
        model_name = body.get("model")
        if not isinstance(model_name, str) or not model_name:
            raise MissingRequiredParameter("model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise MissingRequiredParameter("messages", "'messages' must be a non-empty array.")
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in MESSAGE_ROLES:
                raise InvalidRequest(f"Invalid message at messages[{index}]: needs a valid 'role'.", f"messages[{index}]")
        if body.get("stream"):
            raise UnsupportedParameter("Streaming is not supported by the local backend.", "stream")
        n = body.get("n", 1) if body.get("n") is not None else 1
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 8:
            raise InvalidRequest("'n' must be an integer between 1 and 8.", "n")
        response_format = _response_format(body.get("response_format"))
        model = self._chat_model(model_name)
        try:
            content = structured_outputs.answer(messages, response_format, model)
        except structured_outputs.SchemaError as exc:  # $ref, recursion or constraints it cannot satisfy
            raise _invalid_schema(exc) from None
        counter = token_counter()
        prompt_tokens = learner.count_message_tokens(messages, counter)
        completion_tokens = learner.count_text_tokens(content, counter)
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
