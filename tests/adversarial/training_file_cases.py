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


def file_with(line: Any, at: int = BAD_LINE, total: int = TOTAL) -> bytes:
    """Good examples with line `at` replaced by `line`."""
    lines = [_line(good_example(n)) for n in range(total)]
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


def line_case(name: str, kind: str, bad: Any, twin: Any = None) -> FileCase:
    """A case whose defect is line 5; the twin's line 5 is `twin` (default: a good example)."""
    fixed = good_example(99) if twin is None else twin
    return FileCase(name, kind, lambda: file_with(bad), lambda: file_with(fixed))


def messages(*items: Any, **top: Any) -> dict[str, Any]:
    """An example object with these messages (and other top-level keys)."""
    return {"messages": list(items), **top}


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
    line_case("role-developer", "unrecognized_role", messages({"role": "developer", "content": "q"}, USER, ASSISTANT)),
    line_case("content-empty", "missing_content", messages({"role": "user", "content": ""}, ASSISTANT)),
    line_case("content-null", "missing_content", messages({"role": "user", "content": None}, ASSISTANT)),
    line_case("content-list", "missing_content", messages({"role": "user", "content": [{"type": "text"}]}, ASSISTANT)),
    line_case("content-number", "missing_content", messages({"role": "user", "content": 7}, ASSISTANT)),
    line_case("content-object", "missing_content", messages({"role": "user", "content": {"text": "q"}}, ASSISTANT)),
    line_case("content-whitespace", "empty_content", messages({"role": "user", "content": " \n\t "}, ASSISTANT)),
    line_case("content-unicode-spaces", "empty_content", messages({"role": "user", "content": "\u00a0\u3000"}, ASSISTANT)),
    line_case("name-number", "invalid_name", messages({**USER, "name": 5}, ASSISTANT)),
    line_case("name-with-space", "invalid_name", messages({**USER, "name": "a reader"}, ASSISTANT),
              messages({**USER, "name": "a_reader"}, ASSISTANT)),
    line_case("name-too-long", "invalid_name", messages({**USER, "name": "n" * 65}, ASSISTANT),
              messages({**USER, "name": "n" * 64}, ASSISTANT)),
    line_case("weight-2", "invalid_weight", messages(USER, {**ASSISTANT, "weight": 2}), messages(USER, {**ASSISTANT, "weight": 1})),
    line_case("weight-true", "invalid_weight", messages(USER, {**ASSISTANT, "weight": True}), messages(USER, {**ASSISTANT, "weight": 1})),
    line_case("weight-string", "invalid_weight", messages(USER, {**ASSISTANT, "weight": "1"}), messages(USER, {**ASSISTANT, "weight": 1})),
    line_case("weight-half", "invalid_weight", messages(USER, {**ASSISTANT, "weight": 0.5}), messages(USER, {**ASSISTANT, "weight": 0})),
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
}
