"""The chat completions resource: answers from a base model (zero-shot) or a fine-tuned model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fine_tuning.core.catalog import catalog_model, resolve_model
from fine_tuning.core.tokens import token_counter
from local_openai import learner
from local_openai.chat.answering import Answerer, prediction_tokens
from local_openai.chat.records import ChatCompletion, StreamedCompletion
from local_openai.chat.request import parse_request
from local_openai.chat.stored import StoredCompletions
from local_openai.exceptions import ContextLengthExceeded
from local_openai.models import Models
from local_openai.store import new_id


def reported_model(model: str) -> str:
    """The model a completion names: an alias answers as its dated snapshot, as OpenAI's does."""
    entry = catalog_model(model)
    return entry.snapshot if entry is not None else model


def check_context(model_name: str, prompt_tokens: int) -> None:
    """A 400 for messages over the model's context window, before the answer is worked out.

    Counting is bounded (texts past a size cap are estimated), so even a body at the JSON size
    limit is refused in about a second instead of being featurised.
    """
    model = catalog_model(resolve_model(model_name))
    if model is not None and prompt_tokens > model.context_window:
        raise ContextLengthExceeded(model_name, model.context_window, prompt_tokens)


class ChatCompletions:
    """Chat completions from the models a `Models` resource knows; those asked to be stored are kept."""

    def __init__(self, models: Models, clock: Callable[[], float]) -> None:
        self.models = models
        self.clock = clock
        self.stored = StoredCompletions(models.store)

    def create(self, body: dict[str, Any], now: float | None = None) -> ChatCompletion | StreamedCompletion:
        """A chat completion (streamed when asked); `now` dates it (batches answer at their own times)."""
        request = parse_request(body)
        weights = self.models.weights(request.model)
        counter = token_counter()
        prompt_tokens = learner.count_message_tokens(request.messages, counter)
        check_context(request.model, prompt_tokens)
        choices = Answerer(request, weights, counter).choices()
        accepted, rejected = prediction_tokens(request.prediction, choices)
        completion = ChatCompletion(
            id=new_id("chatcmpl"),
            created=int(self.clock() if now is None else now),
            model=reported_model(request.model),
            choices=choices,
            prompt_tokens=prompt_tokens,
            service_tier=request.service_tier,
            logprobs_requested=request.logprobs,
            estimated=not counter.exact,
            accepted_prediction_tokens=accepted,
            rejected_prediction_tokens=rejected,
        )
        if request.store:
            self.stored.save(completion, request.messages, request.metadata)
        if request.stream:
            return StreamedCompletion(completion, request.include_usage, request.obfuscation)
        return completion
