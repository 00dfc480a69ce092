"""The `messages` of a chat request, checked as OpenAI checks them."""

from __future__ import annotations

from typing import Any

from local_openai import learner
from local_openai.chat import checks
from local_openai.exceptions import InvalidRequest, MissingRequiredParameter

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
PART_TYPES = ("text", "image_url", "input_audio", "file", "refusal")


def check_messages(value: Any) -> list[learner.Message]:
    """A non-empty array of messages with valid roles, contents and tool results."""
    messages = checks.array(value, "messages", 1)
    call_ids: set[str] = set()
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        message = checks.mapping(message, where)
        role = checks.choice(message.get("role"), f"{where}.role", ROLES)
        if role == "assistant":
            call_ids.update(_assistant(message, where))
        elif role == "tool":
            _tool_result(message, where, call_ids)
        else:
            if message.get("content") is None:
                raise MissingRequiredParameter(f"{where}.content")
            _content(message["content"], f"{where}.content")
            if role == "function":
                checks.string(message.get("name"), f"{where}.name")
    return messages


def _content(content: Any, where: str) -> None:
    if isinstance(content, str):
        return
    for index, part in enumerate(checks.array(content, where)):
        part = checks.mapping(part, f"{where}[{index}]")
        kind = checks.choice(part.get("type"), f"{where}[{index}].type", PART_TYPES)
        if kind in ("text", "refusal"):
            checks.string(part.get(kind), f"{where}[{index}].{kind}")


def _assistant(message: dict[str, Any], where: str) -> list[str]:
    """The ids of the assistant message's tool calls (tool results must answer one of them)."""
    calls = message.get("tool_calls")
    # An assistant turn with neither content nor calls is tolerated (an empty earlier reply).
    if message.get("content") is not None:
        _content(message["content"], f"{where}.content")
    ids = []
    for index, call in enumerate(checks.array(calls, f"{where}.tool_calls") if calls is not None else []):
        call = checks.mapping(call, f"{where}.tool_calls[{index}]")
        ids.append(checks.string(call.get("id"), f"{where}.tool_calls[{index}].id"))
    return ids


def _tool_result(message: dict[str, Any], where: str, call_ids: set[str]) -> None:
    call_id = message.get("tool_call_id")
    if call_id is None:
        raise MissingRequiredParameter(f"{where}.tool_call_id")
    if call_id not in call_ids:
        raise InvalidRequest(
            "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with "
            "'tool_calls'.", f"{where}.role",
        )
    if message.get("content") is None:
        raise MissingRequiredParameter(f"{where}.content")
    _content(message["content"], f"{where}.content")
