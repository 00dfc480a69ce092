"""Chat completions of the local backend: base (zero-shot) and fine-tuned models, in-process and over HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletion
from openai.types.fine_tuning import FineTuningJob

from fine_tuning.core.prompts import answer_text, build_messages, response_format
from local_openai import learner

from tests.support.local_openai import BASE_MODEL, jsonl, upload, validated, wait_for
from tests.support.toy_books import CATEGORIES

FORMAT = response_format(CATEGORIES)


def two_label_examples(n: int, reply: Callable[[str], str] = str, tale: str = "tale number") -> list[dict[str, Any]]:
    """n examples told apart by two cues ("ghoul crypt" is horror, "dragon sword" fantasy); the assistant says reply(label)."""
    examples = []
    for i in range(n):
        category = CATEGORIES[i % 2]
        cue = "ghoul crypt" if category == "horror" else "dragon sword"
        messages = build_messages(f"T{i}", "A", f"{cue} {tale} {i}", CATEGORIES)
        examples.append({"messages": [*messages, {"role": "assistant", "content": reply(category)}]})
    return examples


def fine_tune(client: openai.OpenAI, examples: list[dict[str, Any]], **create_kwargs: Any) -> FineTuningJob:
    """Fine-tune the base model on `examples` (seed 1) and wait for the job to end."""
    job = client.fine_tuning.jobs.create(
        model=BASE_MODEL, training_file=upload(client, jsonl(examples)), seed=1, **create_kwargs
    )
    return wait_for(client, job.id)


def ask(client: openai.OpenAI, model: str, description: str, **kwargs) -> ChatCompletion:
    messages = build_messages("A title", "An author", description, CATEGORIES)
    raw = client.chat.completions.with_raw_response.create(model=model, messages=messages, **kwargs)
    return validated(ChatCompletion, raw.http_response)


def test_base_model_answers_zero_shot_inside_the_enum(client: openai.OpenAI) -> None:
    reply = ask(client, BASE_MODEL, "A haunted house full of horror and ghosts.", response_format=FORMAT)
    assert reply.choices[0].message.content == answer_text("horror")
    assert reply.choices[0].finish_reason == "stop" and reply.model == BASE_MODEL
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    # No overlap at all: still a valid enum value (the first candidate).
    neutral = ask(client, BASE_MODEL, "Nothing to see here.", response_format=FORMAT)
    assert neutral.choices[0].message.content == answer_text(CATEGORIES[0])


def test_plain_text_answers(client: openai.OpenAI) -> None:
    reply = ask(client, "gpt-4o-mini", "A detective solves a murder mystery.")
    assert reply.choices[0].message.content == "mystery"  # a word of the system prompt
    bare = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hello"}])
    assert bare.choices[0].message.content  # something, not a crash


def test_usage_counts_tokens(client: openai.OpenAI) -> None:
    reply = ask(client, BASE_MODEL, "Romance and love letters.", response_format=FORMAT)
    messages = build_messages("A title", "An author", "Romance and love letters.", CATEGORIES)
    usage = reply.usage
    assert usage.prompt_tokens == learner.count_message_tokens(messages)
    assert usage.completion_tokens == learner.count_text_tokens(reply.choices[0].message.content) > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_n_choices(client: openai.OpenAI) -> None:
    reply = ask(client, BASE_MODEL, "ghosts", response_format=FORMAT, n=3)
    assert [c.index for c in reply.choices] == [0, 1, 2]


def test_fine_tuned_model_maps_its_learned_reply_into_the_enum(client: openai.OpenAI) -> None:
    # Train on bare labels ("horror"), then ask with the strict json_schema: the answer must be
    # the schema's JSON object with an enum value.
    job = fine_tune(client, two_label_examples(40), suffix="bare")
    assert job.status == "succeeded", job.error
    structured = ask(client, job.fine_tuned_model, "a ghoul in the crypt", response_format=FORMAT)
    assert structured.choices[0].message.content == answer_text("horror")
    plain = ask(client, job.fine_tuned_model, "a ghoul in the crypt")
    assert plain.choices[0].message.content == "horror"  # the learned reply, verbatim
    assert structured.model == job.fine_tuned_model


def test_unknown_models_and_bad_requests(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "hi"}]
    for model in ("gpt-99", "ft:gpt-4o-mini-2024-07-18:local:x:doesnotexist", "ft:nonsense"):
        with pytest.raises(openai.NotFoundError) as error:
            client.chat.completions.create(model=model, messages=messages)
        assert error.value.code == "model_not_found"
    bad_requests = [
        {"model": BASE_MODEL, "messages": []},
        {"model": BASE_MODEL, "messages": [{"role": "wizard", "content": "x"}]},
        {"model": BASE_MODEL, "messages": messages, "stream": False, "n": 0},
        {"model": BASE_MODEL, "messages": messages, "response_format": {"type": "xml"}},
        {"model": BASE_MODEL, "messages": messages, "response_format": {"type": "json_schema"}},
    ]
    for body in bad_requests:
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(**body)
    # Streaming is honoured (it used to be refused): the chunks carry the same reply.
    streamed = client.chat.completions.create(model=BASE_MODEL, messages=messages, stream=True)
    pieces = "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)
    assert pieces == client.chat.completions.create(model=BASE_MODEL, messages=messages).choices[0].message.content
    raw = client._client.post("/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "invalid_json"


# ------------------------------------------------------------------------------- structured outputs
# A deliberately small, independent validator: the answers are checked against the schema here,
# not by the generator's own checks.


def _resolve(root: dict, schema: dict) -> dict:
    while "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/"), ref
        target = root
        for part in ref[2:].split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _is_instance(root: dict, schema: dict | bool, value: object) -> bool:
    if isinstance(schema, bool):
        return schema
    schema = _resolve(root, schema)
    kinds = schema.get("type")
    if kinds is not None:
        checks = {
            "string": lambda v: isinstance(v, str),
            "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
            "boolean": lambda v: isinstance(v, bool),
            "null": lambda v: v is None,
            "array": lambda v: isinstance(v, list),
            "object": lambda v: isinstance(v, dict),
        }
        if not any(checks[k](value) for k in (kinds if isinstance(kinds, list) else [kinds])):
            return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if "const" in schema and value != schema["const"]:
        return False
    if "anyOf" in schema and not any(_is_instance(root, s, value) for s in schema["anyOf"]):
        return False
    if isinstance(value, list):
        return len(value) >= schema.get("minItems", 0) and all(
            _is_instance(root, schema.get("items", True), item) for item in value
        )
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        if any(name not in value for name in schema.get("required", [])):
            return False
        if schema.get("additionalProperties") is False and set(value) - set(properties):
            return False
        return all(_is_instance(root, properties.get(k, True), v) for k, v in value.items())
    return True


def _strict(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": schema}}


def _obj(properties: dict, **extra) -> dict:
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False, **extra}


def test_the_test_validator_rejects_wrong_answers() -> None:
    # The checks below rely on _is_instance; make sure it can say no.
    schema = _obj({"c": {"$ref": "#/$defs/C"}, "n": {"type": ["integer", "null"]}},
                  **{"$defs": {"C": {"type": "string", "enum": list(CATEGORIES)}}})
    assert _is_instance(schema, schema, {"c": "horror", "n": None})
    for wrong in ({"c": "horror"}, {"c": "zombie", "n": 1}, {"c": "horror", "n": "1"},
                  {"c": "horror", "n": 1, "x": 0}, ["horror"], None):
        assert not _is_instance(schema, schema, wrong), wrong


@pytest.fixture()
def tuned(client: openai.OpenAI) -> str:
    """A model fine-tuned on the pipeline's own JSON answers ({"category": ...})."""
    job = fine_tune(client, two_label_examples(40, answer_text), suffix="json")
    assert job.status == "succeeded", job.error
    return job.fine_tuned_model


def test_parse_with_a_pydantic_enum_model(client: openai.OpenAI, tuned: str) -> None:
    import enum

    import pydantic

    class Genre(enum.StrEnum):
        fantasy = "fantasy"
        horror = "horror"
        romance = "romance"
        mystery = "mystery"

    class Verdict(pydantic.BaseModel):
        genre: Genre

    messages = build_messages("A title", "An author", "a ghoul in the crypt, pure horror", CATEGORIES)
    for model in (BASE_MODEL, tuned):  # the base model by word overlap, the tuned one by what it learned
        parsed = client.chat.completions.parse(model=model, messages=messages, response_format=Verdict)
        assert parsed.choices[0].message.parsed == Verdict(genre=Genre.horror), model
    # The tuned model maps its learned {"category": "fantasy"} into the Enum too.
    dragon = build_messages("A title", "An author", "a dragon and a sword", CATEGORIES)
    parsed = client.chat.completions.parse(model=tuned, messages=dragon, response_format=Verdict)
    assert parsed.choices[0].message.parsed.genre is Genre.fantasy


SCHEMAS = {
    "nested required objects": _obj({
        "book": _obj({"meta": _obj({"title": {"type": "string"}, "pages": {"type": "integer"}}),
                      "genre": {"type": "string", "enum": list(CATEGORIES)}}),
        "ok": {"type": "boolean"},
    }),
    "const": _obj({"version": {"type": "string", "const": "v1"}, "n": {"const": 3},
                   "genre": {"type": "string", "enum": list(CATEGORIES)}}),
    "type lists": _obj({"genre": {"type": ["string", "null"], "enum": [*CATEGORIES, None]},
                        "note": {"type": ["null", "string"]}, "score": {"type": ["number", "null"]}}),
    "anyOf and arrays": _obj({
        "genre": {"anyOf": [{"$ref": "#/definitions/G"}, {"type": "null"}]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "top": {"type": "array", "items": {"$ref": "#/definitions/G"}, "minItems": 2},
    }, definitions={"G": {"type": "string", "enum": list(CATEGORIES)}}),
    "no enum: the label goes to the first string": _obj({"n": {"type": "integer"}, "label": {"type": "string"}}),
}


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_answers_are_instances_of_strict_schemas(client: openai.OpenAI, tuned: str, name: str) -> None:
    schema = SCHEMAS[name]
    for model in (BASE_MODEL, tuned):
        reply = ask(client, model, "a ghoul in the crypt, pure horror", response_format=_strict(schema))
        content = reply.choices[0].message.content
        value = json.loads(content)
        assert _is_instance(schema, schema, value), (model, content)
        # The predicted label sits in the first string-enum (or string) slot, depth-first.
        assert "horror" in content, (model, content)


def test_labels_go_to_the_first_enum_slot_and_fillers_elsewhere(client: openai.OpenAI, tuned: str) -> None:
    content = ask(client, tuned, "a ghoul in the crypt", response_format=_strict(SCHEMAS["nested required objects"]))
    assert json.loads(content.choices[0].message.content) == {
        "book": {"meta": {"title": "", "pages": 0}, "genre": "horror"}, "ok": False,
    }
    content = ask(client, BASE_MODEL, "a horror tale", response_format=_strict(SCHEMAS["const"]))
    assert json.loads(content.choices[0].message.content) == {"version": "v1", "n": 3, "genre": "horror"}


def test_json_object_mode_returns_a_json_object(client: openai.OpenAI, tuned: str) -> None:
    reply = ask(client, tuned, "a ghoul in the crypt", response_format={"type": "json_object"})
    assert json.loads(reply.choices[0].message.content) == {"category": "horror"}
    reply = ask(client, BASE_MODEL, "a ghoul in the crypt", response_format={"type": "json_object"})
    assert isinstance(json.loads(reply.choices[0].message.content), dict)


def test_json_object_mode_wraps_a_plain_learned_reply(client: openai.OpenAI) -> None:
    job = fine_tune(client, two_label_examples(20, tale="tale"))
    reply = ask(client, job.fine_tuned_model, "a ghoul in the crypt", response_format={"type": "json_object"})
    assert json.loads(reply.choices[0].message.content) == {"answer": "horror"}


MALFORMED = {
    "empty type list": _obj({"a": {"type": []}}),
    "type is an object": _obj({"a": {"type": {"k": 1}}}),
    "unknown type": _obj({"a": {"type": "str"}}),
    "unresolvable $ref": _obj({"a": {"$ref": "#/$defs/Missing"}}),
    "remote $ref": _obj({"a": {"$ref": "https://example.com/schema.json"}}),
    "$ref loop": _obj({"a": {"$ref": "#/$defs/A"}}, **{"$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"$ref": "#/$defs/A"}}}),
    "required recursion": _obj({"a": {"$ref": "#"}}),
    "empty enum": _obj({"a": {"type": "string", "enum": []}}),
    "properties not an object": {"type": "object", "properties": ["a"]},
    "bad pattern": _obj({"a": {"type": "string", "pattern": "("}}),
    "absurd depth": __import__("functools").reduce(lambda inner, _: _obj({"a": inner}), range(100), {"type": "string"}),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_schemas_are_400_on_response_format(client: openai.OpenAI, tuned: str, name: str) -> None:
    for model in (BASE_MODEL, tuned):
        with pytest.raises(openai.BadRequestError) as error:
            ask(client, model, "a ghoul", response_format=_strict(MALFORMED[name]))
        assert error.value.status_code == 400
        assert error.value.body["param"] == "response_format" and error.value.body["type"] == "invalid_request_error"
