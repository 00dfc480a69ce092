"""Typed records of chat completions: a choice, a completion, and its stream of chunks."""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass, field
from typing import Any

SYSTEM_FINGERPRINT = "fp_local"


@dataclass(frozen=True)
class Choice:
    """One choice: text content, or a tool (or legacy function) call; why it ended; token logprobs."""

    content: str | None
    finish_reason: str
    completion_tokens: int
    pieces: list[str] = field(default_factory=list)  # the content's tokens, as streamed
    tool_calls: list[dict[str, Any]] | None = None
    function_call: dict[str, Any] | None = None
    logprobs: list[dict[str, Any]] | None = None  # None: not requested

    def message(self) -> dict[str, Any]:
        """The assistant `message` object."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content, "refusal": None, "annotations": []}
        if self.tool_calls is not None:
            message["tool_calls"] = self.tool_calls
        if self.function_call is not None:
            message["function_call"] = self.function_call
        return message

    def logprobs_object(self, requested: bool) -> dict[str, Any] | None:
        """The choice's `logprobs` (null unless requested; a tool call has no content logprobs)."""
        if not requested:
            return None
        return {"content": self.logprobs, "refusal": None}

    def to_api(self, index: int, logprobs_requested: bool) -> dict[str, Any]:
        """One item of `choices`."""
        return {
            "index": index,
            "finish_reason": self.finish_reason,
            "logprobs": self.logprobs_object(logprobs_requested),
            "message": self.message(),
        }


@dataclass(frozen=True)
class ChatCompletion:
    """A chat completion and the usage OpenAI would bill for it."""

    id: str
    created: int
    model: str
    choices: list[Choice]
    prompt_tokens: int
    service_tier: str = "default"
    logprobs_requested: bool = False
    estimated: bool = False  # token counts made without the tokenizer file
    accepted_prediction_tokens: int = 0
    rejected_prediction_tokens: int = 0

    def usage(self) -> dict[str, Any]:
        """The `usage` object (rejected prediction tokens are billed as completion tokens, as OpenAI bills)."""
        completion = sum(choice.completion_tokens for choice in self.choices) + self.rejected_prediction_tokens
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": self.accepted_prediction_tokens,
                "rejected_prediction_tokens": self.rejected_prediction_tokens,
            },
        }
        if self.estimated:
            usage["estimated"] = True  # the local marker: counted without the tokenizer file
        return usage

    def to_api(self) -> dict[str, Any]:
        """The `chat.completion` object."""
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [choice.to_api(i, self.logprobs_requested) for i, choice in enumerate(self.choices)],
            "usage": self.usage(),
            "service_tier": self.service_tier,
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }


@dataclass(frozen=True)
class StreamedCompletion:
    """A completion asked for with `stream: true`: sent as server-sent `chat.completion.chunk` events."""

    completion: ChatCompletion
    include_usage: bool
    obfuscation: bool

    def chunks(self) -> list[dict[str, Any]]:
        """Every chunk, in order: per choice a role chunk, one per token (or tool call), a final one."""
        chunks = []
        for index, choice in enumerate(self.completion.choices):
            for delta, logprobs in _deltas(choice):
                chunks.append(self._chunk([self._choice(index, delta, logprobs, None)]))
            chunks.append(self._chunk([self._choice(index, {}, None, choice.finish_reason)]))
        if self.include_usage:
            chunks.append(self._chunk([], usage=self.completion.usage()))
        return chunks

    def _choice(self, index: int, delta: dict[str, Any], logprobs: Any, finish: str | None) -> dict[str, Any]:
        if logprobs is None and self.completion.logprobs_requested and finish is None:
            logprobs = {"content": [], "refusal": None}
        return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}

    def _chunk(self, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> dict[str, Any]:
        completion = self.completion
        chunk: dict[str, Any] = {
            "id": completion.id, "object": "chat.completion.chunk", "created": completion.created,
            "model": completion.model, "service_tier": completion.service_tier,
            "system_fingerprint": SYSTEM_FINGERPRINT, "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = usage
        if self.obfuscation:
            chunk["obfuscation"] = _padding()
        return chunk

    def to_sse(self) -> bytes:
        """The response body: `data: {chunk}` events, then `data: [DONE]`."""
        events = [f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n" for chunk in self.chunks()]
        return ("".join(events) + "data: [DONE]\n\n").encode()


def _deltas(choice: Choice) -> list[tuple[dict[str, Any], Any]]:
    """(delta, logprobs) of a choice's chunks before its final one."""
    if choice.tool_calls is not None:
        deltas: list[tuple[dict[str, Any], Any]] = [({"role": "assistant", "content": None, "refusal": None}, None)]
        for position, call in enumerate(choice.tool_calls):
            deltas.append(({"tool_calls": [{"index": position, **call}]}, None))
        return deltas
    if choice.function_call is not None:
        return [({"role": "assistant", "content": None, "function_call": choice.function_call, "refusal": None},
                 None)]
    deltas = [({"role": "assistant", "content": "", "refusal": None}, None)]
    for position, piece in enumerate(choice.pieces):
        logprobs = None
        if choice.logprobs is not None:
            logprobs = {"content": choice.logprobs[position : position + 1], "refusal": None}
        deltas.append(({"content": piece}, logprobs))
    return deltas


def _padding() -> str:
    """Random padding OpenAI adds to each chunk (stream_options.include_obfuscation) against size side channels."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(secrets.randbelow(12) + 4))
