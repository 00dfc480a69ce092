"""The `response_format` of a chat request: text, json_object, or a json_schema the backend can satisfy."""

from __future__ import annotations

from typing import Any

from local_openai import structured_outputs
from local_openai.exceptions import InvalidRequest

RESPONSE_FORMAT_TYPES = ("text", "json_object", "json_schema")


def invalid_schema(error: structured_outputs.SchemaError) -> InvalidRequest:
    """The 400 for a schema structured outputs cannot take."""
    return InvalidRequest(f"Invalid schema for response_format: {error}", "response_format")


def check_response_format(response_format: Any) -> dict[str, Any] | None:
    """The response_format, or a 400 naming it."""
    if response_format is None:
        return None
    if not isinstance(response_format, dict) or response_format.get("type") not in RESPONSE_FORMAT_TYPES:
        raise InvalidRequest("'response_format.type' must be text, json_object or json_schema.", "response_format")
    if response_format["type"] == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise InvalidRequest(
                "'response_format.json_schema.schema' must be a JSON schema object.", "response_format.json_schema"
            )
        try:
            structured_outputs.check_response_schema(spec["schema"])
        except structured_outputs.SchemaError as exc:
            raise invalid_schema(exc) from None
    return response_format
