"""Chat completions of the local backend: base (zero-shot) and fine-tuned models."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from openai.types.chat import ChatCompletion

from fine_tuning.local_openai import learner
from fine_tuning.local_openai.transport import local_client
from fine_tuning.prompts import answer_text, build_messages, response_format

from test_local_openai_support import BASE_MODEL, CATEGORIES, jsonl, upload, validated, wait_for

FORMAT = response_format(CATEGORIES)


@pytest.fixture()
def client(tmp_path: Path) -> openai.OpenAI:
    return local_client(tmp_path / "store", job_seconds=0.2, max_retries=0)


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
    examples = []
    for i in range(40):
        category = CATEGORIES[i % 2]
        cue = "ghoul crypt" if category == "horror" else "dragon sword"
        messages = build_messages(f"T{i}", "A", f"{cue} tale number {i}", CATEGORIES)
        examples.append({"messages": [*messages, {"role": "assistant", "content": category}]})
    job = client.fine_tuning.jobs.create(
        model=BASE_MODEL, training_file=upload(client, jsonl(examples)), seed=1, suffix="bare"
    )
    job = wait_for(client, job.id)
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
    with pytest.raises(openai.BadRequestError) as streaming:
        client.chat.completions.create(model=BASE_MODEL, messages=messages, stream=True)
    assert streaming.value.body["param"] == "stream"
    raw = client._client.post("/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "invalid_json"
