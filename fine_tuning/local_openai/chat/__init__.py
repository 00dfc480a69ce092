"""The chat completions resource."""

from fine_tuning.local_openai.chat.resource import ChatCompletions

__all__ = ["ChatCompletions"]
