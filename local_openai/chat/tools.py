"""Tools (and the deprecated functions): the request's tool setup, whether to call one, and the call.

A local model calls a tool when told to (`tool_choice` "required" or a named tool), or, under
"auto", when a tool's name or description shares words with the prompt and the conversation
does not already end with a tool's result. The call's arguments are built from the tool's
parameter schema the way structured outputs are: the predicted label in the first enum (or
string) slot, schema-valid values elsewhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from local_openai import learner, structured_outputs
from local_openai.chat import checks
from local_openai.exceptions import InvalidParameter, InvalidRequest, UnsupportedValue
from local_openai.store import new_id

MAX_TOOLS = 128
_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_MAX_DEPTH = 32


@dataclass(frozen=True)
class ToolSpec:
    """One tool the model may call: a function (with a parameter schema) or a custom tool (free text)."""

    kind: str  # "function" or "custom"
    name: str
    description: str
    parameters: dict[str, Any] | None
    strict: bool


@dataclass(frozen=True)
class ToolSetup:
    """The tools of a request and how the model must choose among them."""

    tools: tuple[ToolSpec, ...]
    mode: str  # "none", "auto", "required" or "named"
    named: str | None = None
    legacy: bool = False  # `functions` / `function_call`: the reply is a message.function_call


def _name(value: Any, param: str) -> str:
    name = checks.string(value, param)
    if not _NAME_RE.match(name):
        raise InvalidParameter(
            f"Invalid '{param}': string does not match pattern. Expected a string that matches the pattern "
            "'^[a-zA-Z0-9_-]+$' (at most 64 characters).", param, "invalid_value",
        )
    return name


def _function(spec: Any, param: str) -> ToolSpec:
    spec = checks.mapping(spec, param)
    name = _name(spec.get("name"), f"{param}.name")
    parameters = spec.get("parameters")
    if parameters is not None:
        checks.mapping(parameters, f"{param}.parameters")
    strict = bool(spec.get("strict"))
    if strict:
        try:
            structured_outputs.check_response_schema(parameters or {})
        except structured_outputs.SchemaError as exc:
            raise InvalidParameter(
                f"Invalid schema for function '{name}': {exc}", f"{param}.parameters", "invalid_function_parameters"
            ) from None
    return ToolSpec("function", name, str(spec.get("description") or ""), parameters, strict)


def _tool(item: Any, index: int) -> ToolSpec:
    where = f"tools[{index}]"
    item = checks.mapping(item, where)
    kind = checks.choice(item.get("type"), f"{where}.type", ("function", "custom"))
    if kind == "function":
        return _function(item.get("function"), f"{where}.function")
    custom = checks.mapping(item.get("custom"), f"{where}.custom")
    format_type = (custom.get("format") or {"type": "text"}).get("type")
    if format_type != "text":
        raise UnsupportedValue(
            f"Custom tools with format '{format_type}' are not supported by the local backend (only 'text').",
            f"{where}.custom.format",
        )
    return ToolSpec("custom", _name(custom.get("name"), f"{where}.custom.name"),
                    str(custom.get("description") or ""), None, False)


def _named(choice: dict[str, Any], names: Sequence[str], param: str) -> str:
    kind = checks.choice(choice.get("type"), f"{param}.type", ("function", "custom", "allowed_tools"))
    name = checks.mapping(choice.get(kind), f"{param}.{kind}").get("name")
    if name not in names:
        raise InvalidRequest(f"Invalid value for '{param}': no tool named '{name}' was given in 'tools'.", param)
    return name


def _choice(choice: Any, tools: tuple[ToolSpec, ...], param: str) -> tuple[tuple[ToolSpec, ...], str, str | None]:
    """(tools the model may call, mode, named tool) from tool_choice."""
    names = [tool.name for tool in tools]
    if choice is None:
        return tools, "auto", None
    if isinstance(choice, str):
        return tools, checks.choice(choice, param, ("none", "auto", "required")), None
    choice = checks.mapping(choice, param)
    if choice.get("type") != "allowed_tools":
        return tools, "named", _named(choice, names, param)
    allowed = checks.mapping(choice.get("allowed_tools"), f"{param}.allowed_tools")
    mode = checks.choice(allowed.get("mode"), f"{param}.allowed_tools.mode", ("auto", "required"))
    listed = checks.array(allowed.get("tools"), f"{param}.allowed_tools.tools", min_length=1)
    keep = {_named(item, names, f"{param}.allowed_tools.tools[{i}]") for i, item in enumerate(listed)}
    return tuple(tool for tool in tools if tool.name in keep), mode, None


def parse_tool_setup(body: dict[str, Any]) -> ToolSetup | None:
    """The request's tools and tool_choice (or functions and function_call), checked; None without tools."""
    if body.get("parallel_tool_calls") is not None:
        checks.boolean(body["parallel_tool_calls"], "parallel_tool_calls")  # at most one call is ever made
    tools, functions = body.get("tools"), body.get("functions")
    if tools is not None and functions is not None:
        raise InvalidRequest("Use either 'tools' or the deprecated 'functions', not both.", "functions")
    if tools is None and functions is None:
        for param in ("tool_choice", "function_call"):
            if body.get(param) is not None:
                given = "tools" if param == "tool_choice" else "functions"
                raise InvalidRequest(f"Invalid value for '{param}': only allowed when '{given}' are specified.", param)
        return None
    if functions is not None:
        specs = tuple(_function(f, f"functions[{i}]")
                      for i, f in enumerate(checks.array(functions, "functions", 1, MAX_TOOLS)))
        call = body.get("function_call")
        if isinstance(call, dict):
            name = call.get("name")
            if name not in [spec.name for spec in specs]:
                raise InvalidRequest(f"Invalid value for 'function_call': no function named '{name}'.", "function_call")
            return ToolSetup(specs, "named", name, legacy=True)
        mode = "auto" if call is None else checks.choice(call, "function_call", ("none", "auto"))
        return ToolSetup(specs, mode, legacy=True)
    specs = tuple(_tool(item, i) for i, item in enumerate(checks.array(tools, "tools", 1, MAX_TOOLS)))
    allowed, mode, named = _choice(body.get("tool_choice"), specs, "tool_choice")
    return ToolSetup(allowed, mode, named)


def tool_to_call(setup: ToolSetup, messages: Sequence[learner.Message]) -> ToolSpec | None:
    """The tool the model calls now, or None for a plain reply."""
    if setup.mode == "none" or not setup.tools:
        return None
    if setup.mode == "named":
        return next(tool for tool in setup.tools if tool.name == setup.named)
    described = [f"{tool.name} {tool.description}".replace("_", " ").replace("-", " ") for tool in setup.tools]
    scores = learner.overlap_scores(messages, described)
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    if setup.mode == "required":
        return setup.tools[best]
    answered = bool(messages) and messages[-1].get("role") in ("tool", "function")
    return setup.tools[best] if scores[best] > 0 and not answered else None


def call_input(tool: ToolSpec, ranked: Sequence[str], messages: Sequence[learner.Message], reply: str) -> str:
    """A function call's JSON arguments (built from its schema), or a custom tool's text input."""
    if tool.kind == "custom":
        return reply
    if tool.parameters is None:
        return "{}"
    try:
        return structured_outputs.structured_answer(tool.parameters, ranked, messages)
    except structured_outputs.SchemaError:
        if tool.strict:
            raise
    label = ranked[0] if ranked else reply
    return json.dumps(_loose_instance(tool.parameters, label, [False]), separators=(",", ":"))


def _loose_instance(schema: Any, label: str, placed: list[bool], depth: int = 0) -> Any:
    """A plausible value for a schema structured outputs cannot take (non-strict tools accept anything)."""
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return None
    kind = schema.get("type")
    kind = next((k for k in kind if k != "null"), None) if isinstance(kind, list) else kind
    if "enum" in schema and schema["enum"]:
        return label if label in schema["enum"] else schema["enum"][0]
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        names = schema.get("required") or list(properties)
        return {name: _loose_instance(properties.get(name), label, placed, depth + 1) for name in names}
    if kind == "array":
        return []
    if kind == "string":
        first = not placed[0]
        placed[0] = True
        return label if first else ""
    return {"integer": 0, "number": 0, "boolean": False}.get(kind)


def tool_call(tool: ToolSpec, arguments: str) -> dict[str, Any]:
    """The `tool_calls` item of a call (or, for legacy functions, the `function_call` object)."""
    if tool.kind == "custom":
        return {"id": new_id("call", "_"), "type": "custom", "custom": {"name": tool.name, "input": arguments}}
    return {"id": new_id("call", "_"), "type": "function", "function": {"name": tool.name, "arguments": arguments}}
