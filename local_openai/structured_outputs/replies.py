"""What a local model replies: plain text, a json_object, or an instance of a strict json_schema."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from local_openai.learner import Message, SoftmaxModel, system_prompt_candidates, zero_shot_choice
from local_openai.structured_outputs.generation import Generator
from local_openai.structured_outputs.schema_check import MISSING, SchemaError
from local_openai.structured_outputs.validation import SchemaDocument, check_response_schema

NO_CANDIDATES_REPLY = "This is a local stand-in model; it only answers with labels it was given."


def schema_of(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """The JSON schema of a json_schema response_format, else None."""
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    schema = (response_format.get("json_schema") or {}).get("schema")
    return schema if isinstance(schema, dict) else None


def structured_answer(
    schema: dict[str, Any], ranked_replies: Sequence[str], messages: Sequence[Message]
) -> str:
    """Compact JSON that is an instance of `schema`; raises SchemaError when there can be none.

    A fine-tuned model's top reply is kept verbatim when it already is an instance. Otherwise
    the predicted label goes into the first string-enum slot (depth-first), mapped into that
    enum: the first ranked reply with a value in the enum (its JSON property of the slot's
    name, any string in it, or its bare text), else the zero-shot choice; with no string enum,
    into the first string slot. Every other slot gets the model's own value there if valid,
    else a filler (first enum value, const, "", 0, false, null, [], {}).
    """
    check_response_schema(schema)
    schemas = SchemaDocument(schema)
    parsed = [_parse_json(reply) for reply in ranked_replies]
    if parsed and parsed[0] is not MISSING and schemas.valid(schema, parsed[0]):
        return _dump(parsed[0])
    result: Any = MISSING
    for mode in ("enum", "string"):
        generator = Generator(schemas, mode, ranked_replies, parsed, messages)
        result = generator.generate(schema, [])
        if generator.placed:
            break
    if not schemas.valid(schema, result):
        raise SchemaError("Cannot produce an answer that satisfies the schema.")
    return _dump(result)


def _dump(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:
        raise SchemaError("Cannot produce a finite JSON answer for the schema.") from None


def _parse_json(text: str) -> Any:
    """The JSON value of a reply, or MISSING when it is not JSON."""
    try:
        return json.loads(text)
    except (ValueError, TypeError, RecursionError):
        return MISSING


def answer(
    messages: Sequence[Message],
    response_format: dict[str, Any] | None,
    model: SoftmaxModel | None,
) -> str:
    """The reply content: a fine-tuned model's learned reply or a base model's zero-shot guess."""
    ranked = model.ranked_replies(messages) if model is not None else []
    return answer_from_ranking(messages, response_format, ranked)


def answer_from_ranking(
    messages: Sequence[Message], response_format: dict[str, Any] | None, ranked: Sequence[str]
) -> str:
    """The reply content for replies ranked best first (none: a base model's zero-shot guess).

    Sampling and logprobs render each candidate reply by ranking it first.
    """
    schema = schema_of(response_format)
    if schema is not None:
        return structured_answer(schema, ranked, messages)
    json_object = isinstance(response_format, dict) and response_format.get("type") == "json_object"
    if ranked:
        if not json_object:
            return ranked[0]
        parsed = _parse_json(ranked[0])
        return _dump(parsed if isinstance(parsed, dict) else {"answer": ranked[0]})
    choice = zero_shot_choice(messages, system_prompt_candidates(messages))
    if json_object:
        return _dump({"answer": choice})
    return choice or NO_CANDIDATES_REPLY
