"""The errors the local backend reports, one class per OpenAI error (moto's exceptions.py).

Each class fixes the HTTP status, the envelope's `type` and `code`; an instance carries the
message and the offending `param`. `error_response` (http/messages.py) turns any of them into
OpenAI's envelope `{"error": {"message", "type", "param", "code"}}`. Where OpenAI's message
has a fixed shape, the class builds it from the values, so it is spelled once here.
"""

from __future__ import annotations

from typing import Any, ClassVar


class OpenAIError(Exception):
    """An error the API reports to the client in OpenAI's envelope."""

    status: ClassVar[int] = 400
    type: ClassVar[str] = "invalid_request_error"
    code: ClassVar[str | None] = None

    def __init__(self, message: str, param: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}

    def envelope(self) -> dict[str, Any]:
        """The JSON body OpenAI sends for this error."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


# ---------------------------------------------------------------------------------------------
# 400: the request itself is wrong
# ---------------------------------------------------------------------------------------------


class InvalidRequest(OpenAIError):
    """A 400 that OpenAI sends without a code (a parameter of the wrong type or out of range)."""


class InvalidParameter(OpenAIError):
    """A parameter of the wrong type, out of range or of a value not allowed; `code` says which
    (invalid_type, decimal_above_max_value, integer_below_min_value, array_above_max_length, ...)."""

    def __init__(self, message: str, param: str, code: str) -> None:
        super().__init__(message, param)
        self.code = code  # type: ignore[misc] - one class for OpenAI's many validation codes


class InvalidJson(OpenAIError):
    """The body is not a JSON object."""

    code = "invalid_json"


class InvalidMultipart(OpenAIError):
    """A multipart/form-data body that cannot be parsed."""

    code = "invalid_multipart"

    def __init__(self, problem: str) -> None:
        super().__init__(f"Invalid multipart/form-data request: {problem}.")


class InvalidContentType(OpenAIError):
    """An upload that is not multipart/form-data."""

    code = "invalid_content_type"


class InvalidValue(OpenAIError):
    """A query parameter outside its allowed values."""

    code = "invalid_value"


class MissingRequiredParameter(OpenAIError):
    """A required parameter is absent (or empty)."""

    code = "missing_required_parameter"

    def __init__(self, param: str, message: str | None = None) -> None:
        super().__init__(message or f"Missing required parameter: '{param}'.", param)


class UnsupportedParameter(OpenAIError):
    """A parameter the local backend does not implement."""

    code = "unsupported_parameter"


class UnsupportedValue(OpenAIError):
    """A parameter value the model does not support."""

    code = "unsupported_value"


class UnknownParameter(OpenAIError):
    """A body field the endpoint does not define."""

    code = "unknown_parameter"

    def __init__(self, param: str) -> None:
        super().__init__(f"Unknown parameter: '{param}'.", param)


class UnrecognizedArguments(OpenAIError):
    """Body fields chat completions does not define: OpenAI names them all, with param and code null."""

    def __init__(self, names: list[str]) -> None:
        noun = "argument" if len(names) == 1 else "arguments"
        super().__init__(f"Unrecognized request {noun} supplied: {', '.join(sorted(names))}")


class InvalidFileName(OpenAIError):
    """An upload whose file name cannot be stored as given (control characters, too long, empty)."""

    code = "invalid_file_name"


class InvalidFileFormat(OpenAIError):
    """A fine-tune upload that is not a .jsonl file."""

    code = "invalid_file_format"


class InvalidFilePurpose(OpenAIError):
    """A job's training or validation file uploaded for another purpose."""

    code = "invalid_file_purpose"


class FileNotFound(OpenAIError):
    """A job names a training or validation file that does not exist."""

    code = "file_not_found"

    def __init__(self, param: str, file_id: str) -> None:
        super().__init__(f"invalid {param}: {file_id} (no such file)", param)


class ModelNotAvailable(OpenAIError):
    """A job asks for a model that cannot be fine-tuned."""

    code = "model_not_available"

    def __init__(self, model: str) -> None:
        super().__init__(f"Model {model} is not available for fine-tuning or does not exist.", "model")


class InvalidSuffix(OpenAIError):
    """A fine-tuned model suffix that is too long or has characters a model id cannot carry."""

    code = "invalid_suffix"


class InvalidMetadata(OpenAIError):
    """Job metadata with too many keys, or keys or values too long or not strings."""

    code = "invalid_metadata"


class UnsupportedMethod(OpenAIError):
    """A fine-tuning method other than supervised."""

    code = "unsupported_method"


class InvalidHyperparameters(OpenAIError):
    """A hyperparameter that is neither "auto" nor a number in range."""

    code = "invalid_hyperparameters"


class ContextLengthExceeded(OpenAIError):
    """Messages longer than the model's context window (refused before any work on them)."""

    code = "context_length_exceeded"

    def __init__(self, model: str, limit: int, tokens: int) -> None:
        super().__init__(
            f"This model's maximum context length is {limit} tokens. However, your messages resulted in "
            f"{tokens} tokens. Please reduce the length of the messages.", "messages",
        )


class JobNotCancellable(OpenAIError):
    """Cancelling a job that has already reached a final state."""

    code = "job_not_cancellable"

    def __init__(self, job_id: str, status: str) -> None:
        super().__init__(f"Cannot cancel job {job_id}: it has already {status}.", "fine_tuning_job_id")


class JobStateConflict(OpenAIError):
    """Pausing a job that is not running, or resuming one that is not paused."""

    code = "invalid_job_status"

    def __init__(self, job_id: str, action: str, status: str) -> None:
        super().__init__(f"Cannot {action} job {job_id}: its status is '{status}'.", "fine_tuning_job_id")


class BatchNotCancellable(OpenAIError):
    """Cancelling a batch that has already reached a final state."""

    code = "batch_not_cancellable"

    def __init__(self, batch_id: str, status: str) -> None:
        super().__init__(f"Cannot cancel batch {batch_id}: its status is '{status}'.", "batch_id")


# ---------------------------------------------------------------------------------------------
# 401, 404, 413: who asks, for what, how much
# ---------------------------------------------------------------------------------------------


class MissingApiKey(OpenAIError):
    """No bearer token although the server requires one."""

    status = 401
    code = "missing_api_key"

    def __init__(self) -> None:
        super().__init__("You didn't provide an API key. Send it as an 'Authorization: Bearer' header.")


class InvalidApiKey(OpenAIError):
    """A bearer token that is not the server's key (the key is never echoed)."""

    status = 401
    code = "invalid_api_key"

    def __init__(self) -> None:
        super().__init__("Incorrect API key provided.")


class UnknownUrl(OpenAIError):
    """No route for this method and path."""

    status = 404
    code = "unknown_url"

    def __init__(self, method: str, path: str) -> None:
        super().__init__(f"Invalid URL ({method.upper()} {path}): this route is not supported.")


class NoSuchFile(OpenAIError):
    """A file id that does not exist (OpenAI sends no code here)."""

    status = 404

    def __init__(self, file_id: str) -> None:
        super().__init__(f"No such File object: {file_id}", "id")


class JobNotFound(OpenAIError):
    """A fine-tuning job id that does not exist."""

    status = 404
    code = "not_found"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"Could not find fine-tuning job: {job_id}", "fine_tuning_job_id")


class BatchNotFound(OpenAIError):
    """A batch id that does not exist."""

    status = 404
    code = "not_found"

    def __init__(self, batch_id: str) -> None:
        super().__init__(f"No batch found with id '{batch_id}'.", "batch_id")


class CompletionNotFound(OpenAIError):
    """A stored chat completion id that does not exist (or was not stored)."""

    status = 404
    code = "not_found"

    def __init__(self, completion_id: str) -> None:
        super().__init__(f"No chat completion found with id '{completion_id}'.", "completion_id")


class ModelNotFound(OpenAIError):
    """A model that does not exist (or is not yet, or no longer, available)."""

    status = 404
    code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(f"The model `{model}` does not exist or you do not have access to it.", "model")


class ModelNotDeletable(OpenAIError):
    """Deleting a model the organization does not own (a base model)."""

    status = 403

    def __init__(self, model: str) -> None:
        super().__init__(
            f"You do not have permission to delete the model '{model}': only fine-tuned models can be deleted.",
            "model",
        )


class RequestTooLarge(OpenAIError):
    """A body over the server's size limit."""

    status = 413
    code = "request_too_large"

    def __init__(self, limit: int, size: int | None = None) -> None:
        body = "Request body" if size is None else f"Request body of {size} bytes"
        super().__init__(f"{body} exceeds the limit of {limit} bytes.")


class RequestTimeout(OpenAIError):
    """A body that did not arrive within the server's time bound (a stalled or trickling client)."""

    status = 408
    code = "request_timeout"

    def __init__(self, seconds: float) -> None:
        super().__init__(f"The request body did not arrive within {seconds:g} seconds.")


# ---------------------------------------------------------------------------------------------
# 429, 500, 503: the server (or fault injection) says no
# ---------------------------------------------------------------------------------------------


class RateLimitExceeded(OpenAIError):
    """Too many requests; the client should wait as the headers say."""

    status = 429
    type = "requests"
    code = "rate_limit_exceeded"


class TokenRateLimitExceeded(RateLimitExceeded):
    """Too many tokens per minute; the client should wait as the headers say."""

    type = "tokens"


class ServerError(OpenAIError):
    """The server failed while handling the request."""

    status = 500
    type = "server_error"

    def __init__(self, message: str = "The server had an error while processing your request.",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message, headers=headers)


class ServiceUnavailable(OpenAIError):
    """The server is overloaded or not ready."""

    status = 503
    type = "server_error"
    code = "service_unavailable"


# ---------------------------------------------------------------------------------------------
# Lifecycle and access: shut-down models, organizations without fine-tuning
# ---------------------------------------------------------------------------------------------

DEPRECATIONS_URL = "https://platform.openai.com/docs/deprecations"


class ModelShutDown(ModelNotFound):
    """A model past its shutdown date (or fine-tuned from one): OpenAI answers as for a missing model."""

    def __init__(self, model: str) -> None:
        OpenAIError.__init__(self, f"The model `{model}` has been deprecated, learn more here: {DEPRECATIONS_URL}", "model")


class FineTuningNotAllowed(OpenAIError):
    """Job creation for an organization that may no longer create fine-tuning jobs (a 403, as
    OpenAI answers since its fine-tuning wind-down; its exact wording could not be confirmed)."""

    status = 403
    code = "fine_tuning_not_allowed"

    def __init__(self) -> None:
        super().__init__(
            "Your organization does not have access to create fine-tuning jobs: self-serve fine-tuning "
            f"is being wound down, see {DEPRECATIONS_URL}.", "model",
        )
