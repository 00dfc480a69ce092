"""OpenAI client errors described in one clear, key-free line, and which of them are worth a retry."""

import openai as openai_sdk


def redact(text: str, secret: str | None) -> str:
    """Never let an API key reach a log line or an error message."""
    if secret and len(secret) >= 6 and secret in text:
        return text.replace(secret, "***")
    return text


def describe_api_error(error: openai_sdk.APIError, action: str, client: openai_sdk.OpenAI | None = None) -> str:
    """A one-line explanation of an OpenAI client error, with the client's key redacted."""
    return redact(_describe(error, action), client.api_key if client is not None else None)


def _describe(error: openai_sdk.APIError, action: str) -> str:
    if isinstance(error, openai_sdk.APIStatusError):
        code = getattr(error, "code", None)
        body = error.body if isinstance(error.body, dict) else {}
        message = body.get("message") if isinstance(body.get("message"), str) else error.message
        return (
            f"OpenAI API refused {action}: HTTP {error.status_code} {type(error).__name__}"
            f"{f' ({code})' if code else ''}: {message}"
        )
    if isinstance(error, openai_sdk.APITimeoutError):
        return f"OpenAI API timed out while {action}: {error.message}"
    if isinstance(error, openai_sdk.APIConnectionError):
        return f"Could not reach the OpenAI API while {action}: {error.message}"
    return f"OpenAI API error while {action}: {type(error).__name__}: {error.message}"


def is_transient(error: openai_sdk.APIError) -> bool:
    """Rate limits, server errors and connection problems: worth another poll."""
    if isinstance(error, openai_sdk.APIConnectionError):
        return True
    return isinstance(error, openai_sdk.APIStatusError) and (error.status_code == 429 or error.status_code >= 500)
