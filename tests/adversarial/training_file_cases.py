"""Malformed chat-format training files, generated in code, each with a valid twin.

A case is a whole file: twelve good examples with line 5 replaced by the malformed one (or a
file-level defect), and its twin, the same file with the defect fixed in the smallest way. Every
rule of `core.chat_files` is hit, with odd JSON values (lists, objects, numbers, null where a
string belongs), encodings and sizes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.support.chat_files import ASSISTANT, SYSTEM, USER, good_example

BAD_LINE = 5
TOTAL = 12


def _line(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def file_with(line: Any, at: int = BAD_LINE, total: int = TOTAL, method: str = "supervised") -> bytes:
    """Good examples (of `method`) with line `at` replaced by `line`."""
    lines = [_line(GOOD_EXAMPLES[method](n)) for n in range(total)]
    lines[at - 1] = _line(line)
    return b"\n".join(lines) + b"\n"


@dataclass(frozen=True)
class FileCase:
    """A malformed file, the error kind it must be reported as (at `line`), and its valid twin."""

    name: str
    kind: str
    bad: Callable[[], bytes]
    twin: Callable[[], bytes]
    line: int | None = BAD_LINE
    method: str = "supervised"
    model: str = "gpt-4o-mini-2024-07-18"


def line_case(name: str, kind: str, bad: Any, twin: Any = None, method: str = "supervised",
              model: str = "gpt-4o-mini-2024-07-18") -> FileCase:
    """A case whose defect is line 5; the twin's line 5 is `twin` (default: a good example)."""
    fixed = GOOD_EXAMPLES[method](99) if twin is None else twin
    return FileCase(name, kind, lambda: file_with(bad, method=method), lambda: file_with(fixed, method=method),
                    method=method, model=model)


def messages(*items: Any, **top: Any) -> dict[str, Any]:
    """An example object with these messages (and other top-level keys)."""
    return {"messages": list(items), **top}


def dpo_example(n: int) -> dict[str, Any]:
    """A valid preference example made of good_example(n): its answer preferred over another category's."""
    messages = good_example(n)["messages"]
    wrong = good_example(n + 1)["messages"][-1]
    return {"input": {"messages": messages[:-1]}, "preferred_output": [messages[-1]], "non_preferred_output": [wrong]}


def reinforcement_example(n: int) -> dict[str, Any]:
    """A valid reinforcement example made of good_example(n): the prompt and the answer for the grader."""
    messages = good_example(n)["messages"]
    return {"messages": messages[:-1], "reference_answer": messages[-1]["content"]}


GOOD_EXAMPLES: dict[str, Callable[[int], dict[str, Any]]] = {
    "supervised": good_example, "dpo": dpo_example, "reinforcement": reinforcement_example,
}


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _long_assistant_example(tokens_wanted: int) -> dict[str, Any]:
    return messages(SYSTEM, {"role": "user", "content": "word " * tokens_wanted}, ASSISTANT)


GOOD = messages(SYSTEM, USER, ASSISTANT)

CASES: list[FileCase] = [
    # --- not JSON, not UTF-8, not Unicode -----------------------------------------------------
    line_case("truncated-object", "invalid_json", '{"messages": [{"role": "user", "content": "a'),
    line_case("blank-line", "invalid_json", ""),
    line_case("whitespace-line", "invalid_json", " \t "),
    line_case("latin1-bytes", "invalid_json", b'{"messages": "caf\xe9"}'),
    line_case("utf16-line", "invalid_json", json.dumps(GOOD).encode("utf-16")),
    line_case("nan-literal", "invalid_json", '{"messages": [], "score": NaN}'),
    line_case("infinity-literal", "invalid_json", '{"messages": [], "score": -Infinity}'),
    line_case("trailing-garbage", "invalid_json", json.dumps(GOOD) + " }"),
    line_case("two-objects-one-line", "invalid_json", json.dumps(GOOD) + json.dumps(GOOD)),
    line_case("deep-nesting", "invalid_json", _deep(200_000)),
    line_case("huge-integer", "invalid_json", '{"messages": [], "n": ' + "9" * 5000 + "}"),
    line_case("lone-high-surrogate", "invalid_unicode", '{"messages": [{"role": "user", "content": "a\\ud800b"}, '
              '{"role": "assistant", "content": "x"}]}'),
    line_case("lone-low-surrogate", "invalid_unicode", '{"messages": [{"role": "user", "content": "q"}, '
              '{"role": "assistant", "content": "\\udc00"}]}'),
    line_case("surrogate-in-key", "invalid_unicode", '{"messages": [{"role": "user", "content": "q"}, '
              '{"role": "assistant", "content": "x"}], "\\ud800": 1}'),
    # --- the example is not an object with messages -------------------------------------------
    line_case("array", "data_type", "[1, 2, 3]"),
    line_case("string", "data_type", '"just text"'),
    line_case("number", "data_type", "42"),
    line_case("null", "data_type", "null"),
    line_case("boolean", "data_type", "true"),
    line_case("prompt-completion", "missing_messages_list", {"prompt": "a", "completion": "b"}),
    line_case("messages-empty", "missing_messages_list", {"messages": []}),
    line_case("messages-string", "missing_messages_list", {"messages": "hello"}),
    line_case("messages-object", "missing_messages_list", {"messages": {"role": "user"}}),
    line_case("messages-null", "missing_messages_list", {"messages": None}),
    # --- a message is not a well-formed message -----------------------------------------------
    line_case("message-string", "message_data_type", messages(USER, "assistant: hi")),
    line_case("message-null", "message_data_type", messages(USER, None, ASSISTANT)),
    line_case("message-list", "message_data_type", messages(USER, ["assistant", "hi"])),
    line_case("no-role", "message_missing_key", messages({"content": "q"}, ASSISTANT)),
    line_case("no-content", "message_missing_key", messages(USER, {"role": "assistant"})),
    line_case("extra-key", "message_unrecognized_key", messages({**USER, "mood": "happy"}, ASSISTANT)),
    line_case("role-human", "unrecognized_role", messages({"role": "human", "content": "q"}, ASSISTANT)),
    line_case("role-list", "unrecognized_role", messages({"role": ["user"], "content": "q"}, ASSISTANT)),
    line_case("role-object", "unrecognized_role", messages({"role": {"name": "user"}, "content": "q"}, ASSISTANT)),
    line_case("role-number", "unrecognized_role", messages({"role": 1, "content": "q"}, ASSISTANT)),
    line_case("role-null", "unrecognized_role", messages({"role": None, "content": "q"}, ASSISTANT)),
    line_case("role-developer-late", "roles_order", messages(USER, {"role": "developer", "content": "q"}, ASSISTANT),
              messages({"role": "developer", "content": "q"}, USER, ASSISTANT)),
    line_case("content-empty", "missing_content", messages({"role": "user", "content": ""}, ASSISTANT)),
    line_case("content-null", "missing_content", messages({"role": "user", "content": None}, ASSISTANT)),
    line_case("content-part-without-text", "invalid_content_part",
              messages({"role": "user", "content": [{"type": "text"}]}, ASSISTANT),
              messages({"role": "user", "content": [{"type": "text", "text": "q"}]}, ASSISTANT)),
    line_case("content-list-empty", "missing_content", messages({"role": "user", "content": []}, ASSISTANT)),
    line_case("content-number", "missing_content", messages({"role": "user", "content": 7}, ASSISTANT)),
    line_case("content-object", "missing_content", messages({"role": "user", "content": {"text": "q"}}, ASSISTANT)),
    line_case("content-whitespace", "empty_content", messages({"role": "user", "content": " \n\t "}, ASSISTANT)),
    line_case("content-unicode-spaces", "empty_content", messages({"role": "user", "content": "\u00a0\u3000"}, ASSISTANT)),
    line_case("name-number", "invalid_name", messages({**USER, "name": 5}, ASSISTANT)),
    line_case("name-with-space", "invalid_name", messages({**USER, "name": "a reader"}, ASSISTANT),
              messages({**USER, "name": "a_reader"}, ASSISTANT)),
    line_case("name-too-long", "invalid_name", messages({**USER, "name": "n" * 65}, ASSISTANT),
              messages({**USER, "name": "n" * 64}, ASSISTANT)),
    line_case("weight-2", "invalid_weight", messages(USER, {**ASSISTANT, "weight": 2}),
              messages(USER, {**ASSISTANT, "weight": 1})),
    line_case("weight-true", "invalid_weight", messages(USER, {**ASSISTANT, "weight": True}),
              messages(USER, {**ASSISTANT, "weight": 1})),
    line_case("weight-string", "invalid_weight", messages(USER, {**ASSISTANT, "weight": "1"}),
              messages(USER, {**ASSISTANT, "weight": 1})),
    line_case("weight-half", "invalid_weight", messages(USER, {**ASSISTANT, "weight": 0.5}),
              messages(USER, {**ASSISTANT, "weight": 0})),
    line_case("weight-on-user", "invalid_weight", messages({**USER, "weight": 1}, ASSISTANT)),
    # --- order and completeness ---------------------------------------------------------------
    line_case("assistant-first", "roles_order", messages(ASSISTANT, USER, ASSISTANT), messages(USER, ASSISTANT, USER, ASSISTANT)),
    line_case("two-users", "roles_order", messages(USER, USER, ASSISTANT)),
    line_case("ends-with-user", "roles_order", messages(SYSTEM, USER, ASSISTANT, USER)),
    line_case("system-not-first", "roles_order", messages(USER, SYSTEM, ASSISTANT)),
    line_case("no-assistant", "example_missing_assistant_message", messages(SYSTEM, USER)),
    # --- sizes --------------------------------------------------------------------------------
    line_case("70k-token-example", "too_many_tokens", _long_assistant_example(70_000), _long_assistant_example(2_000)),
    line_case("30mb-line-without-whitespace", "too_many_tokens",
              messages(SYSTEM, {"role": "user", "content": "a" * 30_000_000}, ASSISTANT)),
    FileCase("nine-examples", "too_few_examples",
             lambda: b"".join(_line(good_example(n)) + b"\n" for n in range(9)),
             lambda: b"".join(_line(good_example(n)) + b"\n" for n in range(10)), line=None),
    FileCase("bom-at-start", "invalid_json", lambda: b"\xef\xbb\xbf" + file_with(good_example(4)),
             lambda: file_with(good_example(4)), line=1),
    FileCase("empty-file", "too_few_examples", lambda: b"", lambda: file_with(good_example(4)), line=None),
]

# --- function calling, content parts, images (supervised) -----------------------------------
TOOLS = [{"type": "function", "function": {"name": "set_category", "description": "Files a book.",
                                           "parameters": {"type": "object", "properties": {"category": {"type": "string"}}}}}]


def call(arguments: Any = '{"category": "horror"}', call_id: str = "call_1", **function: Any) -> dict[str, Any]:
    """An assistant message calling set_category."""
    spec = {"name": "set_category", "arguments": arguments, **function}
    return {"role": "assistant", "content": None, "tool_calls": [{"id": call_id, "type": "function", "function": spec}]}


def result(call_id: str = "call_1", **extra: Any) -> dict[str, Any]:
    """The tool message answering a call."""
    return {"role": "tool", "tool_call_id": call_id, "content": '{"ok": true}', **extra}


PNG_1X1 = ("data:image/png;base64,"
           "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def image(url: str = PNG_1X1, **extra: Any) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url, **extra}}


def parts(*items: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(items)}


TEXT = {"type": "text", "text": "A book."}

METHOD_CASES: list[FileCase] = [
    line_case("tool-call-arguments-object", "invalid_tool_arguments", messages(USER, call({"category": "horror"}), tools=TOOLS),
              messages(USER, call(), tools=TOOLS)),
    line_case("tool-call-arguments-not-json", "invalid_tool_arguments", messages(USER, call("{category: horror}"), tools=TOOLS),
              messages(USER, call('{"category": "horror"}'), tools=TOOLS)),
    line_case("tool-call-without-id", "invalid_tool_calls", messages(USER, call(call_id=""), tools=TOOLS),
              messages(USER, call(), tools=TOOLS)),
    line_case("tool-calls-empty", "invalid_tool_calls", messages(USER, {"role": "assistant", "tool_calls": []}),
              messages(USER, {"role": "assistant", "tool_calls": call()["tool_calls"]})),
    line_case("tool-call-extra-key", "invalid_tool_calls", messages(USER, call(strict=True)), messages(USER, call())),
    line_case("tool-result-unknown-id", "tool_call_id_unknown", messages(USER, call(), result("call_9"), ASSISTANT),
              messages(USER, call(), result("call_1"), ASSISTANT)),
    line_case("tool-result-without-id", "tool_call_id_unknown",
              messages(USER, call(), {"role": "tool", "content": "{}"}, ASSISTANT),
              messages(USER, call(), result(), ASSISTANT)),
    line_case("tool-result-without-call", "roles_order", messages(USER, result(), ASSISTANT),
              messages(USER, call(), result(), ASSISTANT)),
    line_case("tool-call-id-on-user", "message_unrecognized_key", messages({**USER, "tool_call_id": "call_1"}, ASSISTANT)),
    line_case("legacy-function-call-arguments-object", "invalid_tool_arguments",
              messages(USER, {"role": "assistant", "function_call": {"name": "f", "arguments": {}}}),
              messages(USER, {"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}})),
    line_case("legacy-function-call-no-name", "invalid_function_call",
              messages(USER, {"role": "assistant", "function_call": {"arguments": "{}"}}),
              messages(USER, {"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}})),
    line_case("tools-not-a-list", "invalid_tools", messages(USER, ASSISTANT, tools=TOOLS[0]),
              messages(USER, ASSISTANT, tools=TOOLS)),
    line_case("tool-type-code", "invalid_tools", messages(USER, ASSISTANT, tools=[{**TOOLS[0], "type": "code_interpreter"}]),
              messages(USER, ASSISTANT, tools=TOOLS)),
    line_case("tool-name-with-space", "invalid_tools",
              messages(USER, ASSISTANT, tools=[{"type": "function", "function": {"name": "set category"}}]),
              messages(USER, ASSISTANT, tools=[{"type": "function", "function": {"name": "set_category"}}])),
    line_case("functions-parameters-list", "invalid_functions",
              messages(USER, ASSISTANT, functions=[{"name": "f", "parameters": []}]),
              messages(USER, ASSISTANT, functions=[{"name": "f", "parameters": {"type": "object"}}])),
    line_case("parallel-tool-calls-string", "invalid_parallel_tool_calls",
              messages(USER, ASSISTANT, tools=TOOLS, parallel_tool_calls="false"),
              messages(USER, ASSISTANT, tools=TOOLS, parallel_tool_calls=False)),
    line_case("image-for-a-text-model", "image_not_supported", messages(parts(TEXT, image()), ASSISTANT),
              messages(parts(TEXT, TEXT), ASSISTANT)),
    line_case("image-gif", "invalid_image", messages(parts(TEXT, image("data:image/gif;base64,R0lGODlhAQABAAAAACw=")), ASSISTANT),
              messages(parts(TEXT, image()), ASSISTANT), model="gpt-4o-2024-08-06"),
    line_case("image-not-base64", "invalid_image", messages(parts(TEXT, image("data:image/png;base64,***")), ASSISTANT),
              messages(parts(TEXT, image()), ASSISTANT), model="gpt-4o-2024-08-06"),
    line_case("image-detail-max", "invalid_image", messages(parts(TEXT, image(detail="max")), ASSISTANT),
              messages(parts(TEXT, image(detail="low")), ASSISTANT), model="gpt-4o-2024-08-06"),
    line_case("image-eleven", "invalid_image", messages(parts(TEXT, *[image()] * 11), ASSISTANT),
              messages(parts(TEXT, *[image()] * 10), ASSISTANT), model="gpt-4o-2024-08-06"),
    line_case("image-in-assistant", "image_not_supported",
              messages(parts(TEXT), {"role": "assistant", "content": [image()]}),
              messages(parts(TEXT, image()), ASSISTANT), model="gpt-4o-2024-08-06"),
    line_case("image-part-without-url", "invalid_content_part", messages(parts(TEXT, {"type": "image_url"}), ASSISTANT),
              messages(parts(TEXT), ASSISTANT)),
    line_case("content-part-audio", "invalid_content_part",
              messages(parts(TEXT, {"type": "input_audio", "input_audio": {}}), ASSISTANT), messages(parts(TEXT), ASSISTANT)),
    # --- DPO ------------------------------------------------------------------------------------
    line_case("dpo-chat-line", "missing_input", good_example(99), method="dpo"),
    line_case("dpo-input-without-messages", "missing_input", {**dpo_example(5), "input": {"messages": []}}, method="dpo"),
    line_case("dpo-two-preferred", "invalid_preference_output",
              {**dpo_example(5), "preferred_output": dpo_example(5)["preferred_output"] * 2}, method="dpo"),
    line_case("dpo-preferred-user", "invalid_preference_output",
              {**dpo_example(5), "preferred_output": [USER]}, method="dpo"),
    line_case("dpo-no-non-preferred", "invalid_preference_output",
              {k: v for k, v in dpo_example(5).items() if k != "non_preferred_output"}, method="dpo"),
    line_case("dpo-same-outputs", "invalid_preference_output",
              {**dpo_example(5), "non_preferred_output": dpo_example(5)["preferred_output"]}, method="dpo"),
    line_case("dpo-input-ends-with-assistant", "roles_order",
              {**dpo_example(5), "input": {"messages": [*dpo_example(5)["input"]["messages"], ASSISTANT]}}, method="dpo"),
    line_case("dpo-output-tool-arguments-object", "invalid_tool_arguments",
              {**dpo_example(5), "preferred_output": [call({"category": "horror"})]},
              {**dpo_example(5), "preferred_output": [call()]}, method="dpo"),
    line_case("dpo-image", "image_not_supported",
              {**dpo_example(5), "input": {"messages": [parts(TEXT, image())]}},
              {**dpo_example(5), "input": {"messages": [parts(TEXT)]}}, method="dpo"),
    # --- reinforcement --------------------------------------------------------------------------
    line_case("rl-ends-with-assistant", "reinforcement_last_message", good_example(99), method="reinforcement"),
    line_case("rl-no-messages", "missing_messages_list", {"reference_answer": "x"}, method="reinforcement"),
    line_case("rl-user-after-user", "roles_order",
              {**reinforcement_example(5), "messages": [USER, USER]}, method="reinforcement"),
    line_case("rl-bad-tools", "invalid_tools", {**reinforcement_example(5), "tools": "set_category"},
              {**reinforcement_example(5), "tools": TOOLS}, method="reinforcement"),
]

# Accepted by OpenAI, so never errors, but reported: each with its twin that has no warning.
WARNING_CASES: list[FileCase] = [
    line_case("unknown-top-level-key", "unknown_top_level_key", {**good_example(99), "id": "x-1"}),
    line_case("duplicate-example", "duplicate_example", good_example(0)),
]

# Valid variants that look odd: never an error nor a warning.
VALID_ODDITIES: dict[str, Callable[[], bytes]] = {
    "crlf-line-endings": lambda: file_with(good_example(4)).replace(b"\n", b"\r\n"),
    "no-final-newline": lambda: file_with(good_example(4)).rstrip(b"\n"),
    "surrogate-pair-emoji": lambda: file_with('{"messages": [{"role": "user", "content": "\\ud83d\\ude00"}, '
                                              '{"role": "assistant", "content": "x"}]}'),
    "function-call": lambda: file_with(messages(
        USER, {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}},
        {"role": "function", "name": "f", "content": "42"}, ASSISTANT)),
    "developer-message": lambda: file_with(messages({"role": "developer", "content": "Classify."}, USER, ASSISTANT)),
    "tool-call-answered-then-reply": lambda: file_with(messages(
        SYSTEM, USER, call(), result(), ASSISTANT, tools=TOOLS, parallel_tool_calls=False)),
    "parallel-tool-calls": lambda: file_with(messages(
        USER, {"role": "assistant", "tool_calls": [*call()["tool_calls"], *call(call_id="call_2")["tool_calls"]]},
        result("call_1"), result("call_2"), ASSISTANT, tools=TOOLS, parallel_tool_calls=True)),
    "ends-with-a-tool-call": lambda: file_with(messages(SYSTEM, USER, call(), tools=TOOLS)),
    "content-parts-text": lambda: file_with(messages({"role": "system", "content": [TEXT]}, parts(TEXT, TEXT),
                                                     {"role": "assistant", "content": [TEXT], "weight": 1})),
    "weight-0-turn": lambda: file_with(messages(USER, {**ASSISTANT, "weight": 0}, USER, ASSISTANT)),
}

# Valid files of the other methods (validated with their method): never an error.
METHOD_VALID: dict[str, tuple[str, Callable[[], bytes]]] = {
    "dpo-pairs": ("dpo", lambda: file_with(dpo_example(4), method="dpo")),
    "dpo-with-tools": ("dpo", lambda: file_with({**dpo_example(4), "input": {
        "messages": dpo_example(4)["input"]["messages"], "tools": TOOLS, "parallel_tool_calls": True}}, method="dpo")),
    "rl-developer-last": ("reinforcement", lambda: file_with(
        {**reinforcement_example(4), "messages": [USER, {"role": "developer", "content": "Answer in JSON."}]},
        method="reinforcement")),
    "rl-nested-item-fields": ("reinforcement", lambda: file_with(
        {**reinforcement_example(4), "meta": {"label": "horror", "tags": [1, 2]}}, method="reinforcement")),
}
