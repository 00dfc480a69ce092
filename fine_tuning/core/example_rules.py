"""The format rules of one fine-tuning example, per method: supervised, DPO and reinforcement.

One rule set, used by `core.chat_files` (hence the validator CLI, the blocking file checks and the
local backend's job validation). Each rule is the provider's, as documented by OpenAI (as of
2025-06): the chat format of the fine-tuning guide and cookbook ("Data preparation and analysis
for chat model fine-tuning", "How to fine-tune chat models" with function calling), the
supervised-fine-tuning guide (`weight` 0/1 on assistant messages, `tools`, `parallel_tool_calls`,
legacy `functions`), the vision-fine-tuning guide (image parts and their limits), the
direct-preference-optimization guide (`input`, `preferred_output`, `non_preferred_output`, each
output exactly one assistant message, text only) and the reinforcement-fine-tuning guide
(`messages` ending in a user or developer message, other top-level fields read by the grader as
`item.*`). A rule returns (error kind, what exactly is wrong); kinds are described in
`core.chat_file_report`. No JSON value makes a rule raise.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

Problem = tuple[str, str]  # (error kind, detail naming the message and field)

SUPERVISED, DPO, REINFORCEMENT = "supervised", "dpo", "reinforcement"
METHODS = (SUPERVISED, DPO, REINFORCEMENT)

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
INSTRUCTION_ROLES = frozenset({"system", "developer"})
PLAIN_ROLES = frozenset({"system", "user", "assistant"})
# Keys a message may carry (chat format); which of them a role may use is checked per role.
MESSAGE_KEYS = frozenset({"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call"})
# Top-level keys each method reads; others are accepted (and warned about) for supervised and
# DPO, and are the grader's `item.*` fields for reinforcement.
TOP_LEVEL_KEYS = {
    SUPERVISED: frozenset({"messages", "tools", "functions", "parallel_tool_calls"}),
    DPO: frozenset({"input", "preferred_output", "non_preferred_output"}),
    REINFORCEMENT: frozenset({"messages", "tools", "parallel_tool_calls"}),
}
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # names of message authors, functions and tools

# Vision fine-tuning guide: JPEG, PNG or WEBP; at most 10 MB per image; at most 10 images per
# example; images are not allowed in assistant messages.
IMAGE_MIME_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_IMAGES_PER_EXAMPLE = 10
IMAGE_DETAILS = frozenset({"auto", "low", "high"})
_DATA_URL = re.compile(r"data:([^;,]+);base64,(.*)", re.DOTALL)


@dataclass(frozen=True)
class ImagePart:
    """An image of a training example: its detail level and, for a data URL, its bytes."""

    detail: str
    data: bytes | None  # None for an http(s) URL (fetched by the provider, not here)


# ---------------------------------------------------------------------------------------------
# Content
# ---------------------------------------------------------------------------------------------


def content_text(content: Any) -> str:
    """The text of a content value: the string, or its text parts joined by newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def image_parts(content: Any) -> list[ImagePart]:
    """The well-formed image parts of a content list (none for a string)."""
    if not isinstance(content, list):
        return []
    images = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "image_url" and isinstance(part.get("image_url"), dict):
            image = part["image_url"]
            url = image.get("url")
            found = _DATA_URL.fullmatch(url) if isinstance(url, str) else None
            data = None
            if found:
                try:
                    data = base64.b64decode(found.group(2), validate=True)
                except (binascii.Error, ValueError):
                    data = b""
            images.append(ImagePart(str(image.get("detail") or "auto"), data))
    return images


def _image_shape_problem(part: dict[str, Any], where: str) -> Problem | None:
    image = part.get("image_url")
    if not isinstance(image, dict) or not isinstance(image.get("url"), str) or set(part) != {"type", "image_url"}:
        return "invalid_content_part", f"{where}: an image part is {{'type': 'image_url', 'image_url': {{'url', 'detail'?}}}}"
    unknown = set(image) - {"url", "detail"}
    if unknown:
        return "invalid_content_part", f"{where}: image_url has unknown key(s) {sorted(unknown)}"
    return None


def _image_problem(part: dict[str, Any], where: str) -> Problem | None:
    image = part["image_url"]
    if "detail" in image and image["detail"] not in IMAGE_DETAILS:
        return "invalid_image", f"{where}: detail must be one of auto, low, high"
    url = image["url"]
    if url.startswith(("https://", "http://")):
        return None  # fetched (and checked) by the provider
    found = _DATA_URL.fullmatch(url)
    if not found:
        return "invalid_image", f"{where}: url must be an http(s) URL or a base64 data URL"
    if found.group(1).lower() not in IMAGE_MIME_TYPES:
        return "invalid_image", f"{where}: {found.group(1)!r} is not JPEG, PNG or WEBP"
    try:
        size = len(base64.b64decode(found.group(2), validate=True))
    except (binascii.Error, ValueError):
        return "invalid_image", f"{where}: the data URL is not valid base64"
    if size > MAX_IMAGE_BYTES:
        return "invalid_image", f"{where}: {size} bytes, over the 10 MB limit per image"
    return None


def content_problems(message: dict[str, Any], where: str, images_allowed: bool) -> Iterator[Problem]:
    """Problems of a message's content: a non-blank string, or a non-empty list of text/image parts."""
    content = message.get("content")
    if isinstance(content, str):
        if not content:
            yield "missing_content", f"{where}: content is empty"
        elif content.isspace():
            yield "empty_content", f"{where}: content is only whitespace"
        return
    if not isinstance(content, list):
        yield "missing_content", f"{where}: content must be a string or a list of parts"
        return
    if not content:
        yield "missing_content", f"{where}: content is an empty list"
        return
    for index, part in enumerate(content):
        at = f"{where}.content[{index}]"
        if not isinstance(part, dict) or part.get("type") not in ("text", "image_url"):
            yield "invalid_content_part", f"{at}: a part must be an object of type 'text' or 'image_url'"
        elif part["type"] == "text":
            text = part.get("text")
            if not isinstance(text, str) or not text.strip() or set(part) - {"type", "text"}:
                yield "invalid_content_part", f"{at}: a text part is {{'type': 'text', 'text': <non-blank string>}}"
        elif (shape := _image_shape_problem(part, at)) is not None:
            yield shape
        elif message.get("role") == "assistant":
            yield "image_not_supported", f"{at}: images are not allowed in assistant messages"
        elif not images_allowed:
            yield "image_not_supported", f"{at}: this model/method does not take images (vision fine-tuning)"
        else:
            problem = _image_problem(part, at)
            if problem:
                yield problem


# ---------------------------------------------------------------------------------------------
# Function calling
# ---------------------------------------------------------------------------------------------


def arguments_problem(arguments: Any, where: str) -> Problem | None:
    """Function-call arguments must be JSON text (a string that parses), as the API produces them."""
    if not isinstance(arguments, str):
        return "invalid_tool_arguments", f"{where}: arguments must be a string of JSON text, not {type(arguments).__name__}"
    try:
        json.loads(arguments)
    except ValueError:
        return "invalid_tool_arguments", f"{where}: arguments are not valid JSON text"
    return None


def _function_call_problem(call: Any, where: str) -> Problem | None:
    if not isinstance(call, dict) or set(call) != {"name", "arguments"}:
        return "invalid_function_call", f"{where}: function_call must be {{'name', 'arguments'}}"
    if not isinstance(call["name"], str) or not NAME.fullmatch(call["name"]):
        return "invalid_function_call", f"{where}: function name must be 1-64 letters, digits, '_' or '-'"
    return arguments_problem(call["arguments"], where)


def tool_call_problems(calls: Any, where: str) -> Iterator[Problem]:
    """An assistant's `tool_calls`: a non-empty list of {id, type: function, function: {name, arguments}}."""
    if not isinstance(calls, list) or not calls:
        yield "invalid_tool_calls", f"{where}: tool_calls must be a non-empty list"
        return
    seen: set[str] = set()
    for index, call in enumerate(calls):
        at = f"{where}.tool_calls[{index}]"
        if not isinstance(call, dict) or call.get("type") != "function" or set(call) - {"id", "type", "function"}:
            yield "invalid_tool_calls", f"{at}: a tool call is {{'id', 'type': 'function', 'function'}}"
            continue
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id or call_id in seen:
            yield "invalid_tool_calls", f"{at}: id must be a non-empty string, unique in the message"
        else:
            seen.add(call_id)
        problem = _function_call_problem(call.get("function"), f"{at}.function")
        if problem:
            yield ("invalid_tool_calls", problem[1]) if problem[0] == "invalid_function_call" else problem


def _function_definition_problem(spec: Any, where: str, kind: str) -> Problem | None:
    if not isinstance(spec, dict) or set(spec) - {"name", "description", "parameters", "strict"}:
        return kind, f"{where}: a function is {{'name', 'description'?, 'parameters'?, 'strict'?}}"
    if not isinstance(spec.get("name"), str) or not NAME.fullmatch(spec["name"]):
        return kind, f"{where}: name must be 1-64 letters, digits, '_' or '-'"
    if "description" in spec and not isinstance(spec["description"], str):
        return kind, f"{where}: description must be a string"
    if "parameters" in spec and not isinstance(spec["parameters"], dict):
        return kind, f"{where}: parameters must be a JSON Schema object"
    if "strict" in spec and not isinstance(spec["strict"], bool):
        return kind, f"{where}: strict must be a boolean"
    return None


def tools_problems(example: dict[str, Any]) -> Iterator[Problem]:
    """Top-level `tools` (function tools), legacy `functions`, and `parallel_tool_calls` (a boolean)."""
    if "tools" in example:
        tools = example["tools"]
        if not isinstance(tools, list):
            yield "invalid_tools", "tools must be a list"
        else:
            for index, tool in enumerate(tools):
                where = f"tools[{index}]"
                if not isinstance(tool, dict) or tool.get("type") != "function" or set(tool) != {"type", "function"}:
                    yield "invalid_tools", f"{where}: a tool is {{'type': 'function', 'function': {{...}}}}"
                    continue
                problem = _function_definition_problem(tool["function"], f"{where}.function", "invalid_tools")
                if problem:
                    yield problem
    if "functions" in example:
        functions = example["functions"]
        if not isinstance(functions, list):
            yield "invalid_functions", "functions must be a list"
        else:
            for index, spec in enumerate(functions):
                problem = _function_definition_problem(spec, f"functions[{index}]", "invalid_functions")
                if problem:
                    yield problem
    if "parallel_tool_calls" in example and not isinstance(example["parallel_tool_calls"], bool):
        yield "invalid_parallel_tool_calls", "parallel_tool_calls must be true or false"


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------


def _role_keys_problem(message: dict[str, Any], role: str, where: str) -> Iterator[Problem]:
    if "tool_calls" in message and role != "assistant":
        yield "message_unrecognized_key", f"{where}: only assistant messages carry tool_calls"
    if "function_call" in message and role != "assistant":
        yield "message_unrecognized_key", f"{where}: only assistant messages carry function_call"
    if "tool_call_id" in message and role != "tool":
        yield "message_unrecognized_key", f"{where}: only tool messages carry tool_call_id"


def message_problems(message: Any, where: str, images_allowed: bool) -> Iterator[Problem]:
    """The format problems of one message (never raises, whatever the JSON value)."""
    if not isinstance(message, dict):
        yield "message_data_type", f"{where}: a message must be an object"
        return
    role = message.get("role")
    if "role" not in message:
        yield "message_missing_key", f"{where}: no role"
    elif not isinstance(role, str) or role not in ROLES:
        yield "unrecognized_role", f"{where}: role must be system, developer, user, assistant, tool or function"
    unknown = set(message) - MESSAGE_KEYS
    if unknown:
        yield "message_unrecognized_key", f"{where}: unknown key(s) {sorted(unknown)}"
    if isinstance(role, str):
        yield from _role_keys_problem(message, role, where)
    calls = role == "assistant" and ("tool_calls" in message or message.get("function_call") is not None)
    if "content" not in message and not calls:
        yield "message_missing_key", f"{where}: no content"
    elif message.get("content") is None and calls:
        pass  # an assistant message that only calls a tool or function
    else:
        yield from content_problems(message, where, images_allowed)
    if role == "assistant" and "tool_calls" in message:
        yield from tool_call_problems(message["tool_calls"], where)
    if role == "assistant" and message.get("function_call") is not None:
        problem = _function_call_problem(message["function_call"], f"{where}.function_call")
        if problem:
            yield problem
    if role == "tool" and (not isinstance(message.get("tool_call_id"), str) or not message.get("tool_call_id")):
        yield "tool_call_id_unknown", f"{where}: a tool message needs the tool_call_id it answers"
    if role == "function" and (not isinstance(message.get("name"), str)):
        yield "invalid_name", f"{where}: a function message needs the function's name"
    if "name" in message and not (isinstance(message["name"], str) and NAME.fullmatch(message["name"])):
        yield "invalid_name", f"{where}: name must be 1-64 letters, digits, '_' or '-'"
    if "weight" in message:
        weight = message["weight"]
        if role != "assistant" or isinstance(weight, bool) or not isinstance(weight, int | float) or weight not in (0, 1):
            yield "invalid_weight", f"{where}: weight must be 0 or 1, on an assistant message"


def _turn(message: Any) -> str:
    """The message's place in the conversation: its role, with an assistant's calls told apart."""
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        return "?"
    role = message["role"]
    if role == "assistant" and message.get("tool_calls"):
        return "assistant_tools"
    if role == "assistant" and message.get("function_call"):
        return "assistant_function"
    return role


# What may follow each turn in a chat example (after the leading system/developer messages).
_FOLLOWERS = {
    "start": {"user"},
    "user": {"assistant", "assistant_tools", "assistant_function"},
    "assistant": {"user"},
    "assistant_tools": {"tool"},
    "tool": {"tool", "assistant", "assistant_tools", "assistant_function"},
    "assistant_function": {"function"},
    "function": {"assistant", "assistant_tools", "assistant_function"},
}
_ASSISTANT_TURNS = ("assistant", "assistant_tools", "assistant_function")


def order_problem(messages: Sequence[Any], *, ends_with: Sequence[str]) -> Problem | None:
    """Leading system/developer messages, then user and assistant turns (an assistant's tool calls
    answered by tool messages, a function_call by a function message) ending in one of `ends_with`."""
    turns = [_turn(message) for message in messages]
    start = 0
    while start < len(turns) and turns[start] in INSTRUCTION_ROLES:
        start += 1
    state = "start"
    for index in range(start, len(turns)):
        turn = turns[index]
        if turn not in _FOLLOWERS[state]:
            where = f"messages[{index}]"
            if turn in INSTRUCTION_ROLES:
                return "roles_order", f"{where}: system/developer messages come first"
            return "roles_order", f"{where}: a {turn} message cannot follow {'the start' if state == 'start' else state}"
        state = turn
    if state not in ends_with:
        wanted = " or ".join(sorted({"assistant" if end in _ASSISTANT_TURNS else end for end in ends_with}))
        return "roles_order", f"the last message must be {wanted}, not {state}"
    return None


def tool_answer_problems(messages: Sequence[Any]) -> Iterator[Problem]:
    """Every tool message answers a call id of the assistant message before it."""
    open_ids: set[str] = set()
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        if message.get("role") == "assistant":
            calls = message.get("tool_calls")
            open_ids = {c.get("id") for c in calls if isinstance(c, dict)} if isinstance(calls, list) else set()
        elif message.get("role") == "tool":
            call_id = message.get("tool_call_id")
            if isinstance(call_id, str) and call_id and call_id not in open_ids:
                yield "tool_call_id_unknown", (
                    f"messages[{index}]: tool_call_id {call_id!r} answers no call of the assistant message before it")
            open_ids.discard(call_id)


def plain_roles(messages: list[Any]) -> list[str] | None:
    """The roles when every message is the common case, decided fast: exactly a system, user or
    assistant role and non-blank text content (nothing else to check); else None."""
    roles = []
    for message in messages:
        if type(message) is not dict or len(message) != 2:
            return None
        role, content = message.get("role"), message.get("content")
        if type(role) is not str or role not in PLAIN_ROLES or type(content) is not str or not content or content.isspace():
            return None
        roles.append(role)
    return roles


def _messages_problems(messages: Any, images_allowed: bool, where: str = "messages") -> list[Problem]:
    """Problems of every message of a list (no order rule)."""
    if not isinstance(messages, list) or not messages:
        return [("missing_messages_list", f"no non-empty '{where}' list")]
    found: list[Problem] = []
    for index, message in enumerate(messages):
        found.extend(message_problems(message, f"{where}[{index}]", images_allowed))
    found.extend(tool_answer_problems(messages))
    return found


# ---------------------------------------------------------------------------------------------
# Examples, per method
# ---------------------------------------------------------------------------------------------


def supervised_problems(example: dict[str, Any], images_allowed: bool) -> list[Problem]:
    """A chat example: messages (ending with an assistant message) and optional tools/functions."""
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        return [("missing_messages_list", "no non-empty 'messages' list")]
    if example.keys() == {"messages"} and (roles := plain_roles(messages)) is not None:
        found: list[Problem] = []  # the common case: only the order can be wrong
    else:
        found = _messages_problems(messages, images_allowed)
        found.extend(tools_problems(example))
        roles = [_turn(message) for message in messages]
    if not any(role in _ASSISTANT_TURNS for role in roles):
        found.append(("example_missing_assistant_message", "no assistant message to learn from"))
    problem = order_problem(messages, ends_with=_ASSISTANT_TURNS)
    if problem:
        found.append(problem)
    images = sum(len(image_parts(m.get("content"))) for m in messages if isinstance(m, dict))
    if images > MAX_IMAGES_PER_EXAMPLE:
        found.append(("invalid_image", f"{images} images, over the limit of {MAX_IMAGES_PER_EXAMPLE} per example"))
    return found


def _output_problems(example: dict[str, Any], key: str) -> list[Problem]:
    output = example.get(key)
    if not isinstance(output, list) or len(output) != 1:
        return [("invalid_preference_output", f"{key} must be a list of exactly one assistant message")]
    message = output[0]
    if not isinstance(message, dict) or message.get("role") != "assistant":
        return [("invalid_preference_output", f"{key}[0] must be an assistant message")]
    if "weight" in message:
        return [("invalid_preference_output", f"{key}[0]: weight is not allowed in a preference output")]
    return list(message_problems(message, f"{key}[0]", images_allowed=False))


def dpo_problems(example: dict[str, Any]) -> list[Problem]:
    """A preference example: `input` (messages, optional tools, parallel_tool_calls) and exactly one
    assistant message in each of `preferred_output` and `non_preferred_output` (text only)."""
    prompt = example.get("input")
    if not isinstance(prompt, dict):
        return [("missing_input", "no 'input' object with the prompt's messages")]
    messages = prompt.get("messages")
    if not isinstance(messages, list) or not messages:
        return [("missing_input", "input has no non-empty 'messages' list")]
    found = _messages_problems(messages, images_allowed=False, where="input.messages")
    unknown = set(prompt) - {"messages", "tools", "parallel_tool_calls"}
    if unknown:
        found.append(("missing_input", f"input has unknown key(s) {sorted(unknown)}"))
    if "functions" not in prompt:
        found.extend(tools_problems(prompt))
    found.extend(_output_problems(example, "preferred_output"))
    found.extend(_output_problems(example, "non_preferred_output"))
    outputs_ok = not any(kind == "invalid_preference_output" for kind, _ in found)
    if outputs_ok:
        problem = order_problem([*messages, example["preferred_output"][0]], ends_with=_ASSISTANT_TURNS)
        if problem:
            found.append(problem)
        if _same_output(example["preferred_output"][0], example["non_preferred_output"][0]):
            found.append(("invalid_preference_output", "preferred_output and non_preferred_output are the same"))
    return found


def _same_output(first: Any, second: Any) -> bool:
    return isinstance(first, dict) and isinstance(second, dict) and first == second


def reinforcement_problems(example: dict[str, Any]) -> list[Problem]:
    """A reinforcement example: messages ending in a user or developer message (the model writes
    the answer); every other top-level field is data for the grader (`item.*`)."""
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        return [("missing_messages_list", "no non-empty 'messages' list")]
    found = _messages_problems(messages, images_allowed=False)
    found.extend(tools_problems({k: v for k, v in example.items() if k in ("tools", "parallel_tool_calls")}))
    turns = [_turn(message) for message in messages]
    if turns[-1] not in ("user", "developer"):
        found.append(("reinforcement_last_message", f"the last message is {turns[-1]}; it must be user or developer"))
    else:
        body = messages[:-1] if turns[-1] == "developer" and len(turns) > 1 and turns[-2] == "user" else messages
        problem = order_problem(body, ends_with=("user", "developer"))
        if problem:
            found.append(problem)
    return found


def example_problems(example: Any, method: str, images_allowed: bool = False) -> list[Problem]:
    """The format problems of one parsed example for `method`, each kind once, in rule order."""
    if not isinstance(example, dict):
        return [("data_type", "the line is not a JSON object")]
    if method == DPO:
        found = dpo_problems(example)
    elif method == REINFORCEMENT:
        found = reinforcement_problems(example)
    else:
        found = supervised_problems(example, images_allowed)
    kinds: set[str] = set()
    unique = []
    for kind, detail in found:
        if kind not in kinds:
            kinds.add(kind)
            unique.append((kind, detail))
    return unique
