"""Typed checks of request fields, each failing with OpenAI's 400 (message shape, code, param).

OpenAI words these errors as, e.g., "Invalid 'temperature': decimal above maximum value.
Expected a value <= 2, but got 5 instead." with code `decimal_above_max_value`; the checks
here build the same shapes so a client's error handling sees what it would see there.
"""

from __future__ import annotations

from typing import Any

from local_openai.exceptions import InvalidParameter

_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a decimal", str: "a string", list: "an array",
               dict: "an object"}


def type_name(value: Any) -> str:
    """How OpenAI names the JSON type of a value it got."""
    if value is None:
        return "null"
    for kind, name in _TYPE_NAMES.items():
        if type(value) is kind:
            return name
    return "value"


def invalid_type(param: str, expected: str, value: Any) -> InvalidParameter:
    """'Invalid type for 'x': expected a decimal, but got a string instead.'"""
    return InvalidParameter(
        f"Invalid type for '{param}': expected {expected}, but got {type_name(value)} instead.", param, "invalid_type"
    )


def number(value: Any, param: str, low: float | None = None, high: float | None = None, integer: bool = False) -> Any:
    """An integer (or any number) within [low, high]."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if not (is_int or (not integer and isinstance(value, float))):
        raise invalid_type(param, "an integer" if integer else "a decimal", value)
    kind = "integer" if integer else "decimal"
    if high is not None and value > high:
        raise InvalidParameter(
            f"Invalid '{param}': {kind} above maximum value. Expected a value <= {high:g}, but got {value:g} instead.",
            param, f"{kind}_above_max_value",
        )
    if low is not None and value < low:
        raise InvalidParameter(
            f"Invalid '{param}': {kind} below minimum value. Expected a value >= {low:g}, but got {value:g} instead.",
            param, f"{kind}_below_min_value",
        )
    return value


def boolean(value: Any, param: str) -> bool:
    """A JSON boolean."""
    if not isinstance(value, bool):
        raise invalid_type(param, "a boolean", value)
    return value


def string(value: Any, param: str, max_length: int | None = None) -> str:
    """A string of at most `max_length` characters."""
    if not isinstance(value, str):
        raise invalid_type(param, "a string", value)
    if max_length is not None and len(value) > max_length:
        raise InvalidParameter(
            f"Invalid '{param}': string too long. Expected a string with maximum length {max_length}, "
            f"but got a string with length {len(value)} instead.",
            param, "string_above_max_length",
        )
    return value


def choice(value: Any, param: str, allowed: tuple[str, ...]) -> str:
    """One of the allowed strings."""
    if value not in allowed:
        options = ", ".join(f"'{item}'" for item in allowed)
        raise InvalidParameter(
            f"Invalid value: '{value}'. Supported values are: {options}.", param, "invalid_value"
        )
    return value


def array(value: Any, param: str, min_length: int = 0, max_length: int | None = None) -> list[Any]:
    """A JSON array with a length in [min_length, max_length]."""
    if not isinstance(value, list):
        raise invalid_type(param, "an array", value)
    if len(value) < min_length:
        if not value:
            raise InvalidParameter(
                f"Invalid '{param}': empty array. Expected an array with minimum length {min_length}, "
                "but got an empty array instead.", param, "empty_array",
            )
        raise InvalidParameter(
            f"Invalid '{param}': array too short. Expected an array with minimum length {min_length}, "
            f"but got an array with length {len(value)} instead.", param, "array_below_min_length",
        )
    if max_length is not None and len(value) > max_length:
        raise InvalidParameter(
            f"Invalid '{param}': array too long. Expected an array with maximum length {max_length}, "
            f"but got an array with length {len(value)} instead.", param, "array_above_max_length",
        )
    return value


def mapping(value: Any, param: str) -> dict[str, Any]:
    """A JSON object."""
    if not isinstance(value, dict):
        raise invalid_type(param, "an object", value)
    return value
