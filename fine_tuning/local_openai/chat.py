"""The chat completions resource: a base model's zero-shot answer or a fine-tuned model's learned one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fine_tuning.core.catalog import catalog_model, resolve_model
from fine_tuning.core.tokens import token_counter
from fine_tuning.local_openai import learner, structured_outputs
from fine_tuning.local_openai.exceptions import (
    ContextLengthExceeded,
    InvalidRequest,
    MissingRequiredParameter,
    UnsupportedParameter,
)
from fine_tuning.local_openai.jobs.training_data import MESSAGE_ROLES
from fine_tuning.local_openai.models import Models
from fine_tuning.local_openai.records import ChatCompletion
from fine_tuning.local_openai.store import new_id

RESPONSE_FORMAT_TYPES = ("text", "json_object", "json_schema")
MAX_CHOICES = 8


def _model_name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise MissingRequiredParameter("model")
    return value


def _messages(value: Any) -> list[learner.Message]:
    if not isinstance(value, list) or not value:
        raise MissingRequiredParameter("messages", "'messages' must be a non-empty array.")
    for index, message in enumerate(value):
        if not isinstance(message, dict) or message.get("role") not in MESSAGE_ROLES:
            raise InvalidRequest(f"Invalid message at messages[{index}]: needs a valid 'role'.", f"messages[{index}]")
    return value


def _check_context(model_name: str, prompt_tokens: int) -> None:
    """A 400 for messages over the model's context window, before the answer is worked out.

    Counting is bounded (texts past a size cap are estimated), so even a body at the size limit
    is refused in a second or two instead of being featurised.
    """
    model = catalog_model(resolve_model(model_name))
    if model is not None and prompt_tokens > model.context_window:
        raise ContextLengthExceeded(model_name, model.context_window, prompt_tokens)


def _choices(body: dict[str, Any]) -> int:
    n = body.get("n", 1) if body.get("n") is not None else 1
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_CHOICES:
        raise InvalidRequest(f"'n' must be an integer between 1 and {MAX_CHOICES}.", "n")
    return n


def _response_format(response_format: Any) -> dict[str, Any] | None:
    if response_format is None:
        return None
    if not isinstance(response_format, dict) or response_format.get("type") not in RESPONSE_FORMAT_TYPES:
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


class ChatCompletions:
    """Chat completions from the models a `Models` resource knows."""

    def __init__(self, models: Models, clock: Callable[[], float]) -> None:
        self.models = models
        self.clock = clock

    def create(self, body: dict[str, Any]) -> ChatCompletion:
        """A chat completion from a base model (zero-shot) or a fine-tuned model."""
        model_name = _model_name(body.get("model"))
        messages = _messages(body.get("messages"))
        if body.get("stream"):
            raise UnsupportedParameter("Streaming is not supported by the local backend.", "stream")
        n = _choices(body)
        response_format = _response_format(body.get("response_format"))
        weights = self.models.weights(model_name)
        counter = token_counter()
        prompt_tokens = learner.count_message_tokens(messages, counter)
        _check_context(model_name, prompt_tokens)
        try:
            content = structured_outputs.answer(messages, response_format, weights)
        except structured_outputs.SchemaError as exc:  # $ref, recursion or constraints it cannot satisfy
            raise _invalid_schema(exc) from None
        return ChatCompletion(
            id=new_id("chatcmpl"),
            created=int(self.clock()),
            model=model_name,
            content=content,
            n=n,
            prompt_tokens=prompt_tokens,
            completion_tokens=learner.count_text_tokens(content, counter),
        )
