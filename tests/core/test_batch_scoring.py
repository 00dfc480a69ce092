"""The Batch-API side of scoring that needs no server: the request file, the join by custom_id, the choice.

Talking to a real Batch API (the local backend's) is tested in tests/defs/fine_tuning.
"""

from __future__ import annotations

import json

from openai.types import Batch

from fine_tuning.core import prompts
from fine_tuning.core.batch_scoring import (
    ENDPOINT,
    choose_batch,
    custom_id,
    line_answer,
    request_lines,
    score_batches,
)
from fine_tuning.core.scoring import Example, chat_request

CATEGORIES = ["fantasy", "horror"]
PROMPT = prompts.Prompt(tuple(CATEGORIES))
EXAMPLES = [
    Example("b1", prompts.user_message("Dragons", "A", "dragons and wizards")["content"], "fantasy"),
    Example("b2", prompts.user_message("Crypt", "B", "ghouls in the crypt")["content"], "horror"),
]
MODELS = ["gpt-4o-mini-2024-07-18", "ft:gpt-4o-mini-2024-07-18:org:x:abc"]


def test_each_model_s_request_file_holds_its_online_request_for_every_book() -> None:
    for model in MODELS:
        lines = [json.loads(line) for line in request_lines(model, EXAMPLES, PROMPT).decode().splitlines()]
        assert [line["custom_id"] for line in lines] == [custom_id(0), custom_id(1)]
        assert all(line["method"] == "POST" and line["url"] == ENDPOINT for line in lines)
        # Exactly the body an online request sends: same model, prompt, temperature and strict schema.
        assert [line["body"] for line in lines] == [chat_request(model, example, PROMPT) for example in EXAMPLES]


def output_line(key: str, category: str) -> dict[str, object]:
    body = {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": prompts.answer_text(category)}}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55},
    }
    return {"id": "batch_req_1", "custom_id": key, "response": {"status_code": 200, "body": body}, "error": None}


def test_results_are_joined_by_custom_id_and_failed_or_missing_lines_count_as_wrong() -> None:
    base, tuned = MODELS
    tuned_lines = [output_line(custom_id(0), "fantasy"), output_line(custom_id(1), "fantasy")]  # right, wrong
    base_lines = [
        {"custom_id": custom_id(0), "response": {"status_code": 500, "body": {"error": {"message": "boom"}}},
         "error": None},  # a failed request; custom_id(1) never came back
    ]
    answers = {
        model: {str(line["custom_id"]): line_answer(line, PROMPT) for line in lines}
        for model, lines in ((tuned, tuned_lines), (base, base_lines))
    }
    scores = score_batches(MODELS, EXAMPLES, answers)
    tuned_score, base_score = scores.models[tuned], scores.models[base]
    assert (tuned_score.examples, tuned_score.correct, tuned_score.failed_requests) == (2, 1, 0)
    assert tuned_score.prompt_tokens == 100 and tuned_score.completion_tokens == 10
    assert (base_score.examples, base_score.correct, base_score.failed_requests) == (2, 0, 2)
    assert scores.failed_requests == 2
    assert any("HTTP 500: boom" in sample for sample in scores.failure_samples)
    assert any("no result line" in sample for sample in scores.failure_samples)


def batch(batch_id: str, status: str, created: int) -> Batch:
    return Batch(id=batch_id, completion_window="24h", created_at=created, endpoint=ENDPOINT,
                 input_file_id="file-x", object="batch", status=status)  # type: ignore[arg-type]


def test_a_batch_in_flight_is_attached_to_a_completed_one_read_and_dead_ones_replaced() -> None:
    done, running, failed = batch("b1", "completed", 1), batch("b2", "in_progress", 2), batch("b3", "failed", 3)
    assert choose_batch([failed, running, done], force=False) == (running, ())
    assert choose_batch([failed, running, done], force=True) == (running, ())  # already paid for
    assert choose_batch([failed, done], force=False) == (done, ())
    assert choose_batch([failed, done], force=True) == (None, (failed,))
    expired, cancelled = batch("b4", "expired", 4), batch("b5", "cancelled", 5)
    assert choose_batch([cancelled, expired], force=False) == (None, (cancelled, expired))
