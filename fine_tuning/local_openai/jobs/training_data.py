"""Parsing and validation of uploaded chat-format JSONL training and validation files.

A job's files are checked when the job leaves `validating_files`, not at upload (as OpenAI
does), so a problem becomes the job's `error` rather than an HTTP error: hence its own
exception type instead of an HTTP error.
"""

from __future__ import annotations

import json
from typing import Any

MESSAGE_ROLES = ("system", "developer", "user", "assistant", "tool", "function")


class TrainingDataError(Exception):
    """Why a training or validation file cannot be used (becomes the job's `error`)."""

    def __init__(self, code: str, message: str, param: str) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


def invalid_file_code(param: str) -> str:
    """The error code OpenAI uses for a bad `training_file` or `validation_file`."""
    return "invalid_training_file" if param == "training_file" else "invalid_validation_file"


def parse_chat_jsonl(data: bytes, param: str, minimum: int) -> list[list[dict[str, Any]]]:
    """Conversations of a chat-format JSONL file, or TrainingDataError naming the bad line."""
    code = invalid_file_code(param)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TrainingDataError(code, f"The {param} is not valid UTF-8 ({exc}).", param) from exc
    conversations = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        conversations.append(_parse_example(line, number, param, code))
    if len(conversations) < minimum:
        raise TrainingDataError(
            "invalid_n_examples",
            f"The {param} has {len(conversations)} example(s), but must have at least {minimum} examples.",
            param,
        )
    return conversations


def _parse_example(line: str, number: int, param: str, code: str) -> list[dict[str, Any]]:
    where = f"Invalid file format in {param}: line {number}"
    try:
        example = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TrainingDataError(code, f"{where} is not valid JSON ({exc.msg}).", param) from exc
    except RecursionError as exc:  # json raises this, not JSONDecodeError, on very deep nesting
        raise TrainingDataError(code, f"{where} is nested too deeply to be a chat example.", param) from exc
    if not isinstance(example, dict) or not isinstance(example.get("messages"), list) or not example["messages"]:
        raise TrainingDataError(code, f"{where} must be an object with a non-empty 'messages' list.", param)
    for index, message in enumerate(example["messages"]):
        if not isinstance(message, dict) or message.get("role") not in MESSAGE_ROLES:
            raise TrainingDataError(
                code, f"{where}, messages[{index}] has a missing or unrecognized 'role'.", param
            )
        content = message.get("content")
        if not isinstance(content, (str, list)) and not (message["role"] == "assistant" and message.get("tool_calls")):
            raise TrainingDataError(code, f"{where}, messages[{index}] has no text 'content'.", param)
    if not any(m["role"] == "assistant" for m in example["messages"]):
        raise TrainingDataError(code, f"{where} has no assistant message.", param)
    return example["messages"]
