"""Which response_format schemas the backend interprets: the keyword vocabulary and `check_schema`.

A schema outside this subset is a 400 `Invalid schema for response_format`, never a 500.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

JSON_TYPES = ("string", "number", "integer", "boolean", "null", "array", "object")
MAX_SCHEMA_DEPTH = 64  # nesting of the schema document, and of the generated instance
MAX_REF_HOPS = 32  # a $ref chain longer than this is a loop
SCHEMA_BUDGET = 200_000  # generation + validation steps per answer: bounds exponential schemas
COMBINATORS = ("anyOf", "oneOf", "allOf")
SCHEMA_MAPS = ("properties", "$defs", "definitions")
COUNTS = ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties")
BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
UNSUPPORTED = (
    "prefixItems", "patternProperties", "if", "then", "else", "contains", "dependentRequired",
    "dependentSchemas", "propertyNames", "unevaluatedProperties", "unevaluatedItems", "$dynamicRef",
    "$recursiveRef",
)
FORMATS: dict[str, tuple[str, str]] = {  # format: (a regex an instance must match, a filler)
    "date-time": (r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$",
                  "1970-01-01T00:00:00Z"),
    "date": (r"^\d{4}-\d{2}-\d{2}$", "1970-01-01"),
    "time": (r"^\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$", "00:00:00Z"),
    "duration": (r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$", "P0D"),
    "email": (r"^[^@\s]+@[^@\s]+\.[^@\s]+$", "user@example.com"),
    "hostname": (r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$",
                 "example.com"),
    "ipv4": (r"^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$", "0.0.0.0"),
    "ipv6": (r"^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$", "::"),
    "uuid": (r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
             "00000000-0000-0000-0000-000000000000"),
}
MISSING = object()  # "no JSON value here" (None is the JSON value null)


class SchemaError(ValueError):
    """A response_format schema the backend cannot interpret or cannot produce an instance of."""


class FatalSchemaError(SchemaError):
    """An error no other anyOf branch can avoid: the budget ran out, or a $ref is broken."""


def is_number(value: Any) -> bool:
    """A JSON number (bool is an int in Python, never a number in JSON)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_schema(schema: Any, where: str = "schema", depth: int = 0) -> None:
    """Raise SchemaError unless `schema` (and every subschema) is one this backend interprets.

    Structure only: $ref targets are resolved (and so checked) when an answer is generated.
    """
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise SchemaError(f"{where} must be a JSON schema object (or a boolean).")
    if depth > MAX_SCHEMA_DEPTH:
        raise SchemaError(f"The schema is nested deeper than {MAX_SCHEMA_DEPTH} levels.")
    for key in UNSUPPORTED:
        if key in schema:
            raise SchemaError(f"{where}: the keyword '{key}' is not supported.")
    kind = schema.get("type", MISSING)
    if kind is not MISSING:
        kinds = kind if isinstance(kind, list) else [kind]
        if not kinds or not all(isinstance(k, str) and k in JSON_TYPES for k in kinds) or len(set(kinds)) < len(kinds):
            raise SchemaError(
                f"{where}.type must be one of {', '.join(JSON_TYPES)} or a non-empty list of distinct ones."
            )
    if "enum" in schema and (not isinstance(schema["enum"], list) or not schema["enum"]):
        raise SchemaError(f"{where}.enum must be a non-empty array.")
    for value in [*schema.get("enum", []), schema.get("const")] if isinstance(schema.get("enum", []), list) else []:
        _check_finite(value, where)
    if "$ref" in schema and not isinstance(schema["$ref"], str):
        raise SchemaError(f"{where}.$ref must be a string.")
    if "required" in schema and (
        not isinstance(schema["required"], list) or not all(isinstance(r, str) for r in schema["required"])
    ):
        raise SchemaError(f"{where}.required must be an array of property names.")
    for key in COUNTS:
        if key in schema and not _is_count(schema[key]):
            raise SchemaError(f"{where}.{key} must be a non-negative integer.")
    for key in (*BOUNDS, "multipleOf"):
        if key in schema and not (is_number(schema[key]) and math.isfinite(schema[key])):
            raise SchemaError(f"{where}.{key} must be a finite number.")
    if "multipleOf" in schema and schema["multipleOf"] <= 0:
        raise SchemaError(f"{where}.multipleOf must be greater than 0.")
    if "uniqueItems" in schema and not isinstance(schema["uniqueItems"], bool):
        raise SchemaError(f"{where}.uniqueItems must be a boolean.")
    if "format" in schema and not isinstance(schema["format"], str):
        raise SchemaError(f"{where}.format must be a string.")
    if "pattern" in schema:
        if not isinstance(schema["pattern"], str):
            raise SchemaError(f"{where}.pattern must be a string.")
        try:
            re.compile(schema["pattern"])
        except (re.error, OverflowError, RecursionError) as exc:
            raise SchemaError(f"{where}.pattern is not a valid regular expression: {exc}") from None
    for key in SCHEMA_MAPS:
        if key in schema:
            if not isinstance(schema[key], dict):
                raise SchemaError(f"{where}.{key} must be an object of schemas.")
            for name, sub in schema[key].items():
                check_schema(sub, f"{where}.{key}.{name}", depth + 1)
    for key in COMBINATORS:
        if key in schema:
            if not isinstance(schema[key], list) or not schema[key]:
                raise SchemaError(f"{where}.{key} must be a non-empty array of schemas.")
            for index, sub in enumerate(schema[key]):
                check_schema(sub, f"{where}.{key}[{index}]", depth + 1)
    for key in ("items", "additionalProperties", "not"):
        if key in schema:
            if isinstance(schema[key], list):
                raise SchemaError(f"{where}.{key} must be a schema (tuple-style 'items' is not supported).")
            check_schema(schema[key], f"{where}.{key}", depth + 1)


def _check_finite(value: Any, where: str) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        raise SchemaError(f"{where}: enum and const values must be finite JSON values.") from None
