"""Validation of uploaded training and validation files (supervised chat, DPO, reinforcement): the pipeline's own rules.

The backend applies `fine_tuning.core.chat_files`, the format rules the pipeline's validator and
blocking checks apply, so it refuses every file they reject as malformed (a pipeline tested
against it cannot pass here and fail on OpenAI for its data). Examples over the model's
per-example token limit are the exception, as on OpenAI: they are truncated, billed up to the
limit and announced in a warning event (`billing.py`), while the pipeline's own token check
blocks them before any upload. A job's files are checked when the job leaves
`validating_files`, not at upload (as OpenAI does), so a problem becomes the job's `error`
rather than an HTTP error: hence its own exception type.
"""

from __future__ import annotations

import io
from typing import Any

from fine_tuning.core.chat_files import FORMAT_ERROR_KINDS, validate_chat_lines

# Roles a chat completions request may use (training files follow the stricter file rules).
MESSAGE_ROLES = ("system", "developer", "user", "assistant", "tool", "function")


class TrainingDataError(Exception):
    """Why a training or validation file cannot be used (becomes the job's `error`)."""

    def __init__(self, code: str, message: str, param: str) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


def invalid_file_code(param: str) -> str:
    """The error code OpenAI uses for a bad `training_file` or `validation_file`."""
    return "invalid_training_file" if param == "training_file" else "invalid_validation_file"


def parse_examples(data: bytes, param: str, minimum: int, model: str, method: str = "supervised") -> list[dict[str, Any]]:
    """The examples of a fine-tuning JSONL file for `method`, or TrainingDataError naming the first bad line.

    Format errors only: an example over `model`'s per-example token limit is trained truncated.
    """
    examples: list[dict[str, Any]] = []
    report = validate_chat_lines(
        enumerate(io.BytesIO(data), start=1), label=param, model=model, min_examples=minimum, method=method,
        on_example=lambda _line, example: examples.append(example),
    )
    first = report.first_error(FORMAT_ERROR_KINDS)
    if first is None:
        return examples
    kind, line, description = first
    if kind == "too_few_examples":
        raise TrainingDataError(
            "invalid_n_examples",
            f"The {param} has {report.examples} example(s), but must have at least {minimum} examples.",
            param,
        )
    raise TrainingDataError(invalid_file_code(param), f"Invalid file format in {param}: line {line}: {description}.", param)


def parse_chat_jsonl(data: bytes, param: str, minimum: int, model: str) -> list[list[dict[str, Any]]]:
    """The conversations of a supervised chat-format JSONL file (see `parse_examples`)."""
    return [example["messages"] for example in parse_examples(data, param, minimum, model)]
