"""Tools (and legacy functions), streaming, stored completions and unknown routes, through the official client."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import openai
import pydantic
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionDeleted

from fine_tuning.core.prompts import response_format

from tests.support.conformance import (
    BASE_MODEL,
    CATEGORIES,
    book_messages,
    conformance_options,
    error_of,
    validated,
)
from tests.support.local_openai import Clock

GHOSTS = book_messages("A horror story: a haunted house full of ghosts.")
CATEGORY_SCHEMA = {
    "type": "object", "properties": {"category": {"type": "string", "enum": list(CATEGORIES)}},
    "required": ["category"], "additionalProperties": False,
}
RECORD = {"type": "function", "function": {"name": "record_category", "description": "record the category of a book",
                                           "parameters": CATEGORY_SCHEMA, "strict": True}}
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}}}


@pytest.fixture
def backend_options(clock: Clock) -> dict[str, Any]:
    """Lifecycles of JOB_SECONDS on the stepped clock (the suite's `client` uses these options)."""
    return conformance_options(clock)


class Genre(pydantic.BaseModel):
    category: str


def ask(client: openai.OpenAI, **kwargs) -> ChatCompletion:
    kwargs.setdefault("model", BASE_MODEL)
    kwargs.setdefault("messages", GHOSTS)
    return validated(ChatCompletion, client.chat.completions.with_raw_response.create(**kwargs))


# ------------------------------------------------------------------------------------------------ tools
def test_required_tool_call_has_arguments_built_from_the_schema(client: openai.OpenAI) -> None:
    choice = ask(client, tools=[WEATHER, RECORD], tool_choice="required").choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "record_category"  # its description shares words with the prompt
    assert json.loads(call.function.arguments) == {"category": "horror"}


def test_a_named_tool_is_called_and_finishes_with_stop(client: openai.OpenAI) -> None:
    choice = ask(client, tools=[WEATHER, RECORD],
                 tool_choice={"type": "function", "function": {"name": "get_weather"}}).choices[0]
    assert choice.finish_reason == "stop"  # as OpenAI reports a forced function
    arguments = json.loads(choice.message.tool_calls[0].function.arguments)
    assert isinstance(arguments["city"], str) and isinstance(arguments.get("days", 0), int)
    assert set(arguments) <= {"city", "days"}


def test_auto_calls_a_relevant_tool_and_answers_its_result_in_text(client: openai.OpenAI) -> None:
    first = ask(client, tools=[WEATHER, RECORD]).choices[0]
    (call,) = first.message.tool_calls
    assert call.function.name == "record_category"
    follow_up = [*GHOSTS, first.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "recorded"}]
    second = ask(client, messages=follow_up, tools=[WEATHER, RECORD]).choices[0]
    assert second.message.tool_calls is None and second.message.content and second.finish_reason == "stop"
    assert ask(client, tools=[WEATHER]).choices[0].message.tool_calls is None  # nothing relevant: text
    assert ask(client, tools=[RECORD], tool_choice="none").choices[0].message.tool_calls is None


def test_allowed_tools_restrict_the_choice(client: openai.OpenAI) -> None:
    choice = ask(client, tools=[WEATHER, RECORD], tool_choice={"type": "allowed_tools", "allowed_tools": {
        "mode": "required", "tools": [{"type": "function", "function": {"name": "get_weather"}}]}}).choices[0]
    assert choice.message.tool_calls[0].function.name == "get_weather"


def test_legacy_functions_answer_with_function_call(client: openai.OpenAI) -> None:
    choice = ask(client, functions=[RECORD["function"]], function_call={"name": "record_category"}).choices[0]
    assert choice.message.function_call.name == "record_category" and choice.finish_reason == "stop"
    auto = ask(client, functions=[RECORD["function"]]).choices[0]
    assert auto.finish_reason == "function_call" and auto.message.tool_calls is None


def test_custom_tools_get_text_input(client: openai.OpenAI) -> None:
    tool = {"type": "custom", "custom": {"name": "note", "description": "write a horror note"}}
    call = ask(client, tools=[tool], tool_choice="required").choices[0].message.tool_calls[0]
    assert call.type == "custom" and call.custom.name == "note" and call.custom.input


def test_parse_with_a_pydantic_tool(client: openai.OpenAI) -> None:
    tool = openai.pydantic_function_tool(Genre, name="record_category", description="record the category of a book")
    parsed = client.chat.completions.parse(model=BASE_MODEL, messages=GHOSTS, tools=[tool], tool_choice="required")
    arguments = parsed.choices[0].message.tool_calls[0].function.parsed_arguments
    assert isinstance(arguments, Genre) and arguments.category


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": [RECORD], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools[0].function.name"),
        ({"tools": [{"type": "function", "function": {"name": "f", "strict": True, "parameters": {
            "type": "object", "properties": {"a": {"type": "str"}}}}}]}, "tools[0].function.parameters"),
        ({"tools": [RECORD], "functions": [RECORD["function"]]}, "functions"),
        ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
    ],
)
def test_bad_tool_requests_are_400(client: openai.OpenAI, kwargs: dict, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=BASE_MODEL, messages=GHOSTS, **kwargs)
    assert error_of(caught)["param"] == param


# -------------------------------------------------------------------------------------------- streaming
def test_stream_chunks_rebuild_the_same_completion(client: openai.OpenAI) -> None:
    plain = ask(client, response_format=response_format(CATEGORIES), logprobs=True, n=2)
    raw = client.chat.completions.with_raw_response.create(
        model=BASE_MODEL, messages=GHOSTS, response_format=response_format(CATEGORIES), logprobs=True, n=2,
        stream=True, stream_options={"include_usage": True})
    assert raw.http_response.headers["content-type"].startswith("text/event-stream")
    chunks = [ChatCompletionChunk.model_validate(chunk.model_dump()) for chunk in raw.parse()]
    *body, last = chunks
    assert last.choices == [] and last.usage.total_tokens == plain.usage.total_tokens
    assert all(chunk.usage is None and chunk.obfuscation for chunk in body)
    for index in (0, 1):
        mine = [c.choices[0] for c in body if c.choices[0].index == index]
        assert mine[0].delta.role == "assistant" and mine[-1].finish_reason == "stop"
        assert "".join(c.delta.content or "" for c in mine) == plain.choices[index].message.content
        streamed_logprobs = [t for c in mine if c.logprobs for t in c.logprobs.content or []]
        assert [t.token for t in streamed_logprobs] == [t.token for t in plain.choices[index].logprobs.content]


def test_stream_helper_parses_structured_outputs(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(model=BASE_MODEL, messages=GHOSTS, response_format=Genre) as stream:
        kinds = {event.type for event in stream}
        final = stream.get_final_completion()
    assert {"chunk", "content.delta", "content.done"} <= kinds
    assert isinstance(final.choices[0].message.parsed, Genre)


def test_streamed_tool_calls_and_truncation(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model=BASE_MODEL, messages=GHOSTS, tools=[RECORD],
                                                 tool_choice="required", stream=True))
    calls = [call for chunk in chunks for call in chunk.choices[0].delta.tool_calls or []]
    assert calls[0].function.name == "record_category" and chunks[-1].choices[0].finish_reason == "tool_calls"
    cut = list(client.chat.completions.create(model=BASE_MODEL, messages=GHOSTS, max_tokens=2, stream=True,
                                              response_format=response_format(CATEGORIES),
                                              stream_options={"include_obfuscation": False}))
    assert cut[-1].choices[0].finish_reason == "length" and all(chunk.obfuscation is None for chunk in cut)


# ------------------------------------------------------------------------------------ stored completions
def test_stored_completions_can_be_listed_read_updated_and_deleted(client: openai.OpenAI) -> None:
    stored = ask(client, store=True, metadata={"run": "a"})
    ask(client, model="gpt-4o-2024-08-06", store=True, metadata={"run": "b"})
    ask(client)  # not stored
    listed = client.chat.completions.with_raw_response.list().http_response.json()
    assert [ChatCompletion.model_validate(item).id for item in listed["data"]][0] == stored.id  # oldest first
    assert len(listed["data"]) == 2
    assert [c.id for c in client.chat.completions.list(metadata={"run": "a"})] == [stored.id]
    assert [c.model for c in client.chat.completions.list(model="gpt-4o-2024-08-06")] == ["gpt-4o-2024-08-06"]
    got = validated(ChatCompletion, client.chat.completions.with_raw_response.retrieve(stored.id))
    assert got.choices[0].message.content == stored.choices[0].message.content
    updated = client.chat.completions.update(stored.id, metadata={"run": "c"})
    assert updated.id == stored.id and [c.id for c in client.chat.completions.list(metadata={"run": "c"})]
    messages = client.chat.completions.messages.list(stored.id)
    assert [m.role for m in messages] == [m["role"] for m in GHOSTS]
    assert [m.content for m in messages] == [m["content"] for m in GHOSTS]
    deleted = validated(ChatCompletionDeleted, client.chat.completions.with_raw_response.delete(stored.id))
    assert deleted.deleted and deleted.id == stored.id
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.retrieve(stored.id)


# ------------------------------------------------------------------------------------------------ routes
def test_unknown_routes_are_404_in_openais_envelope(client: openai.OpenAI) -> None:
    with httpx2.Client(base_url=str(client.base_url), transport=client._client._transport) as raw:
        for method, path in (("GET", "/assistants"), ("POST", "/embeddings"), ("PUT", "/files")):
            response = raw.request(method, path)
            error = response.json()["error"]
            assert response.status_code == 404 and set(error) == {"message", "type", "param", "code"}
            assert error["message"].startswith(f"Invalid URL ({method} /v1{path})") and "not supported" in error["message"]
