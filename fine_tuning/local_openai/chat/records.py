"""Typed records of chat completions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ChatCompletion:
    """A chat completion: `n` identical choices of one reply, and the usage OpenAI would bill."""

    id: str
    created: int
    model: str
    content: str
    n: int
    prompt_tokens: int
    completion_tokens: int  # of one choice

    def to_api(self) -> dict[str, Any]:
        """The `chat.completion` object."""
        choice = {
            "finish_reason": "stop",
            "logprobs": None,
            "message": {"role": "assistant", "content": self.content, "refusal": None, "annotations": []},
        }
        completion_tokens = self.completion_tokens * self.n
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [dict(choice, index=i) for i in range(self.n)],
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": self.prompt_tokens + completion_tokens,
            },
            "service_tier": "default",
            "system_fingerprint": "fp_local",
        }


