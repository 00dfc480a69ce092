"""Reading a batch's input file: one request per JSONL line, checked as OpenAI checks it.

As with a fine-tuning file, the content is checked when the batch leaves `validating`, not
when it is created: a problem fails the batch and is listed in its `errors` (code, line,
message, param), it is not an HTTP error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from local_openai.batches.records import BatchLineError
from local_openai.json_values import loads_finite

MAX_REQUESTS = 50_000
MAX_ERRORS = 100  # a file with thousands of bad lines lists the first ones, as a report should


@dataclass(frozen=True)
class BatchRequest:
    """One line of the input file: its number, its id and the body sent to the endpoint."""

    line: int
    custom_id: str
    body: dict[str, Any]


class _Checker:
    """Collects the lines of an input file and every problem found in them."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.requests: list[BatchRequest] = []
        self.errors: list[BatchLineError] = []
        self.seen: set[str] = set()
        self.model: str | None = None

    def error(self, code: str, message: str, line: int | None, param: str | None = None) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(BatchLineError(code, message, param, line))

    def check(self, number: int, text: str) -> None:
        try:
            item = loads_finite(text)  # NaN / Infinity are not JSON: the line is refused, as the API does
        except (ValueError, RecursionError):
            item = None
        if not isinstance(item, dict):
            self.error("invalid_json_line", "This line is not parseable as valid JSON.", number)
            return
        custom_id, body = item.get("custom_id"), item.get("body")
        problems = [
            self._custom_id(custom_id),
            self._method(item.get("method")),
            self._url(item.get("url")),
            self._body(body),
        ]
        for problem in problems:
            if problem is not None:
                code, message, param = problem
                self.error(code, message, number, param)
        if all(problem is None for problem in problems):
            self.seen.add(custom_id)
            self.requests.append(BatchRequest(number, custom_id, body))

    def _custom_id(self, custom_id: Any) -> tuple[str, str, str] | None:
        if not isinstance(custom_id, str) or not custom_id:
            return "missing_required_parameter", "Missing required parameter: 'custom_id'.", "custom_id"
        if custom_id in self.seen:
            return (
                "duplicate_custom_id",
                "The custom_id for this request is a duplicate of another request. "
                "The custom_id parameter must be unique for each request in a batch.",
                "custom_id",
            )
        return None

    @staticmethod
    def _method(method: Any) -> tuple[str, str, str] | None:
        if method is None:
            return "missing_required_parameter", "Missing required parameter: 'method'.", "method"
        if method != "POST":
            return "invalid_value", f"Invalid method '{method}': only POST is supported.", "method"
        return None

    def _url(self, url: Any) -> tuple[str, str, str] | None:
        if url is None:
            return "missing_required_parameter", "Missing required parameter: 'url'.", "url"
        if url != self.endpoint:
            return (
                "url_mismatch",
                f"The URL provided for this request does not match the batch endpoint '{self.endpoint}'.",
                "url",
            )
        return None

    def _body(self, body: Any) -> tuple[str, str, str] | None:
        if not isinstance(body, dict):
            return "missing_required_parameter", "Missing required parameter: 'body'.", "body"
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return "missing_required_parameter", "Missing required parameter: 'body.model'.", "body.model"
        if self.model is None:
            self.model = model
        elif model != self.model:
            return (
                "model_mismatch",
                f"All requests in a batch must use the same model: this line uses '{model}', "
                f"earlier lines use '{self.model}'.",
                "body.model",
            )
        return None


def parse_batch_input(data: bytes, endpoint: str) -> tuple[list[BatchRequest], list[BatchLineError], str | None]:
    """(requests, errors, model) of an input file; the batch fails when `errors` is not empty."""
    checker = _Checker(endpoint)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        checker.error("invalid_file", "The input file is not valid UTF-8.", None)
        return [], checker.errors, None
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        checker.error("empty_file", "The input file is empty.", None)
    elif len(lines) > MAX_REQUESTS:
        checker.error(
            "too_many_tasks", f"The input file has {len(lines)} requests; a batch takes at most {MAX_REQUESTS}.", None
        )
    else:
        for number, line in lines:
            checker.check(number, line)
    return checker.requests, checker.errors, checker.model
