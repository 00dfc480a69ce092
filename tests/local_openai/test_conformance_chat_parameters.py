"""Chat request parameters: each honoured as OpenAI defines it, or refused with OpenAI's 400 naming it."""

from __future__ import annotations

import math
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletion

from fine_tuning.core.prompts import response_format
from local_openai import learner
from local_openai.chat.tokenizer import tokenize

from tests.support.conformance import (
    BASE_MODEL,
    CATEGORIES,
    book_messages,
    conformance_options,
    error_of,
    trained_job,
    validated,
)
from tests.support.local_openai import Clock
from tests.support.tokenizer import without_o200k

GHOSTS = book_messages("A horror story: a haunted house full of ghosts.")
FORMAT = response_format(CATEGORIES)


@pytest.fixture
def backend_options(clock: Clock) -> dict[str, Any]:
    """Lifecycles of JOB_SECONDS on the stepped clock (the suite's `client` uses these options)."""
    return conformance_options(clock)


def ask(client: openai.OpenAI, **kwargs) -> ChatCompletion:
    kwargs.setdefault("model", BASE_MODEL)
    kwargs.setdefault("messages", GHOSTS)
    return validated(ChatCompletion, client.chat.completions.with_raw_response.create(**kwargs))


def refused(client: openai.OpenAI, **kwargs) -> dict:
    kwargs.setdefault("model", BASE_MODEL)
    kwargs.setdefault("messages", GHOSTS)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**kwargs)
    return error_of(caught)


def test_an_alias_answers_as_its_dated_snapshot(client: openai.OpenAI) -> None:
    assert ask(client, model="gpt-4o-mini").model == "gpt-4o-mini-2024-07-18"


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_truncates_with_finish_reason_length(client: openai.OpenAI, param: str) -> None:
    full = ask(client, response_format=FORMAT).choices[0].message.content
    cut = ask(client, response_format=FORMAT, **{param: 3})
    choice = cut.choices[0]
    assert choice.finish_reason == "length" and cut.usage.completion_tokens == 3
    assert full.startswith(choice.message.content) and len(tokenize(choice.message.content)) == 3
    roomy = ask(client, response_format=FORMAT, **{param: 500}).choices[0]
    assert roomy.finish_reason == "stop" and roomy.message.content == full


def test_max_tokens_above_the_models_output_limit_is_refused(client: openai.OpenAI) -> None:
    error = refused(client, max_tokens=100_000)
    assert error["param"] == "max_tokens" and "at most 16384" in error["message"]


def test_stop_cuts_before_the_first_stop_sequence(client: openai.OpenAI) -> None:
    full = ask(client, response_format=FORMAT).choices[0].message.content  # {"category":"horror"}
    for stop in ('":"', ['zzz', '":"']):
        choice = ask(client, response_format=FORMAT, stop=stop).choices[0]
        assert choice.message.content == full[: full.index('":"')] and choice.finish_reason == "stop"
    assert refused(client, stop=["a", "b", "c", "d", "e"])["code"] == "array_above_max_length"


def test_n_choices_are_greedy_unless_a_temperature_asks_for_sampling(client: openai.OpenAI) -> None:
    greedy = ask(client, n=4)
    assert [c.index for c in greedy.choices] == [0, 1, 2, 3]
    assert len({c.message.content for c in greedy.choices}) == 1
    assert greedy.usage.completion_tokens == 4 * ask(client).usage.completion_tokens
    sampled = ask(client, n=32, temperature=2, seed=11)
    again = ask(client, n=32, temperature=2, seed=11)
    assert [c.message.content for c in sampled.choices] == [c.message.content for c in again.choices]
    assert len({c.message.content for c in sampled.choices}) > 1  # a hot temperature spreads the replies
    assert ask(client, n=8, temperature=0, seed=1).choices[0].message.content == greedy.choices[0].message.content


def test_logprobs_come_from_the_learners_own_probabilities(client: openai.OpenAI, clock) -> None:
    job = trained_job(client, clock)
    reply = ask(client, model=job.fine_tuned_model, logprobs=True, top_logprobs=3)
    choice = reply.choices[0]
    tokens = choice.logprobs.content
    assert "".join(t.token for t in tokens) == choice.message.content
    for token in tokens:
        assert token.logprob <= 0 and bytes(token.bytes).decode() == token.token
        assert 1 <= len(token.top_logprobs) <= 3
        assert token.top_logprobs[0].logprob >= token.top_logprobs[-1].logprob
        assert sum(math.exp(t.logprob) for t in token.top_logprobs) <= 1 + 1e-9
    weights = client._local_router.backend.models.weights(job.fine_tuned_model)
    (label, probability), *_ = learner.reply_probabilities(weights, GHOSTS)
    assert label == choice.message.content
    assert math.isclose(sum(t.logprob for t in tokens), math.log(probability), rel_tol=1e-6, abs_tol=1e-9)
    assert ask(client).choices[0].logprobs is None


def test_top_logprobs_needs_logprobs_and_stays_within_20(client: openai.OpenAI) -> None:
    assert refused(client, top_logprobs=2)["param"] == "top_logprobs"
    assert refused(client, logprobs=True, top_logprobs=21)["code"] == "integer_above_max_value"


def test_logit_bias_can_ban_the_greedy_reply(client: openai.OpenAI) -> None:
    greedy = ask(client).choices[0].message.content
    banned = {str(token.id): -100 for token in tokenize(greedy)}
    assert ask(client, logit_bias=banned).choices[0].message.content != greedy
    assert refused(client, logit_bias={"50256": 101})["param"] == "logit_bias.50256"
    assert refused(client, logit_bias={"hello": 1})["param"] == "logit_bias"


@pytest.mark.parametrize(
    ("kwargs", "param", "code"),
    [
        ({"temperature": 5}, "temperature", "decimal_above_max_value"),
        ({"temperature": -0.1}, "temperature", "decimal_below_min_value"),
        ({"top_p": 1.5}, "top_p", "decimal_above_max_value"),
        ({"presence_penalty": 3}, "presence_penalty", "decimal_above_max_value"),
        ({"frequency_penalty": -2.5}, "frequency_penalty", "decimal_below_min_value"),
        ({"n": 0}, "n", "integer_below_min_value"),
        ({"n": 129}, "n", "integer_above_max_value"),
        ({"seed": "seven"}, "seed", "invalid_type"),
        ({"logprobs": "yes"}, "logprobs", "invalid_type"),
        ({"max_tokens": 0}, "max_tokens", "integer_below_min_value"),
        ({"service_tier": "gold"}, "service_tier", "invalid_value"),
        ({"extra_body": {"best_of": 2}}, None, None),  # "Unrecognized request argument supplied: best_of"
        ({"reasoning_effort": "low"}, "reasoning_effort", "unsupported_parameter"),
        ({"verbosity": "low"}, "verbosity", "unsupported_parameter"),
        ({"web_search_options": {}}, "web_search_options", "unsupported_parameter"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio", "unsupported_parameter"),
        ({"modalities": ["text", "audio"]}, "modalities", "unsupported_value"),
        ({"stream_options": {"include_usage": True}}, "stream_options", None),
        ({"messages": []}, "messages", "empty_array"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role", "invalid_value"),
        ({"messages": [{"role": "tool", "content": "x", "tool_call_id": "call_1"}]}, "messages[0].role", None),
        ({"metadata": {"k": 1}}, "metadata.k", "invalid_metadata"),
        ({"prediction": {"type": "content", "content": "x"}, "n": 2}, "n", None),
    ],
)
def test_out_of_range_wrong_and_unknown_parameters_are_openais_400(
    client: openai.OpenAI, kwargs: dict, param: str, code: str | None
) -> None:
    error = refused(client, **kwargs)
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    assert error["message"]


def test_bookkeeping_parameters_are_accepted(client: openai.OpenAI) -> None:
    reply = ask(client, user="reader-1", safety_identifier="hash-1", prompt_cache_key="books", metadata={"run": "1"},
                presence_penalty=0.5, frequency_penalty=0.5, parallel_tool_calls=False, modalities=["text"],
                service_tier="priority", prompt_cache_retention="24h")
    assert reply.service_tier == "priority" and reply.usage.prompt_tokens_details.cached_tokens == 0
    assert ask(client, service_tier="auto").service_tier == "default"


def test_prediction_tokens_are_reported_and_rejected_ones_billed(client: openai.OpenAI) -> None:
    plain = ask(client, response_format=FORMAT)
    content = plain.choices[0].message.content
    predicted = ask(client, response_format=FORMAT, prediction={"type": "content", "content": content + " extra words"})
    details = predicted.usage.completion_tokens_details
    assert details.accepted_prediction_tokens == len(tokenize(content))
    assert details.rejected_prediction_tokens == len(tokenize(" extra words"))
    assert predicted.usage.completion_tokens == plain.usage.completion_tokens + details.rejected_prediction_tokens


def test_counts_made_without_the_tokenizer_file_are_marked(client: openai.OpenAI, monkeypatch, tmp_path) -> None:
    exact = client.chat.completions.with_raw_response.create(model=BASE_MODEL, messages=GHOSTS)
    assert exact.headers["x-local-token-count"] == "exact"
    assert "estimated" not in exact.http_response.json()["usage"]
    without_o200k(monkeypatch, tmp_path)
    raw = client.chat.completions.with_raw_response.create(model=BASE_MODEL, messages=GHOSTS)
    assert raw.headers["x-local-token-count"] == "estimate"
    assert raw.http_response.json()["usage"]["estimated"] is True
    ChatCompletion.model_validate(raw.http_response.json())
    assert refused(client, logit_bias={"1": 1})["code"] == "unsupported_parameter"
