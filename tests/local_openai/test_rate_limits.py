"""OpenAI's rate-limit and processing headers on every reply; per-minute limits enforced with a
429 whose retry headers agree."""

from __future__ import annotations

import json
import re

import openai

from local_openai.http.messages import LocalRequest, LocalResponse, json_response
from local_openai.http.middleware import RateLimits, reset_duration

from tests.support.local_openai import BASE_MODEL

RESET = re.compile(r"^(\d+ms|(\d+m)?\d+(\.\d+)?s)$")
LIMIT_HEADERS = ("x-ratelimit-limit-requests", "x-ratelimit-limit-tokens", "x-ratelimit-remaining-requests",
                 "x-ratelimit-remaining-tokens", "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")


def test_every_reply_carries_the_rate_limit_and_processing_headers(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Title: Ghosts\n\nA haunted house."}]
    chat = client.chat.completions.with_raw_response.create(model=BASE_MODEL, messages=messages)
    files = client.files.with_raw_response.list()
    for raw in (chat, files):
        headers = raw.headers
        assert set(LIMIT_HEADERS) <= set(headers)
        assert int(headers["x-ratelimit-remaining-requests"]) < int(headers["x-ratelimit-limit-requests"])
        assert RESET.match(headers["x-ratelimit-reset-requests"]) and RESET.match(headers["x-ratelimit-reset-tokens"])
        assert int(headers["openai-processing-ms"]) >= 0
    # A chat request counts against the token limit; listing files does not.
    assert int(chat.headers["x-ratelimit-remaining-tokens"]) < int(chat.headers["x-ratelimit-limit-tokens"])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def answered(request: LocalRequest) -> LocalResponse:
    return json_response(200, {"ok": True})


def chat_request(prompt_bytes: int) -> LocalRequest:
    body = json.dumps({"model": BASE_MODEL, "messages": [{"role": "user", "content": "x" * prompt_bytes}]}).encode()
    return LocalRequest("POST", "/v1/chat/completions", body=body)


def test_the_request_limit_refuses_with_agreeing_retry_headers_then_refills() -> None:
    clock = Clock()
    limits = RateLimits(requests_per_minute=2, tokens_per_minute=1_000_000, clock=clock)
    get = LocalRequest("GET", "/v1/files")
    assert [limits(get, answered).status for _ in range(2)] == [200, 200]
    refused = limits(get, answered)
    assert refused.status == 429
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert "Limit 2, Used 2, Requested 1" in error["message"]
    # One request comes back every 30 s: both headers say so, in their own units.
    assert (refused.headers["retry-after"], refused.headers["retry-after-ms"]) == ("30", "30000")
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"] == "1m0s"
    clock.now += 30
    assert limits(get, answered).status == 200


def test_the_token_limit_counts_model_calls_only() -> None:
    clock = Clock()
    limits = RateLimits(requests_per_minute=100, tokens_per_minute=100, clock=clock)
    first = limits(chat_request(200), answered)
    assert first.status == 200 and int(first.headers["x-ratelimit-remaining-tokens"]) < 100
    refused = limits(chat_request(200), answered)
    assert refused.status == 429 and refused.json()["error"]["type"] == "tokens"
    assert int(refused.headers["retry-after-ms"]) == 1000 * int(refused.headers["retry-after"])
    assert limits(LocalRequest("GET", "/v1/files"), answered).status == 200  # no tokens needed


def test_reset_durations_are_written_as_openai_writes_them() -> None:
    assert [reset_duration(s) for s in (0.017, 1.5, 360.0, 61.25)] == ["17ms", "1.5s", "6m0s", "1m1.25s"]
