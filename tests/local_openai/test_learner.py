"""The learner: deterministic, honours hyperparameters, and actually learns."""

from __future__ import annotations

import math

import pytest

from fine_tuning.core import tokens
from fine_tuning.core.prompts import parse_answer, response_format
from local_openai import learner, structured_outputs

from tests.support.local_openai import Backend, train_toy_model
from tests.support.tokenizer import without_o200k
from tests.support.toy_books import CATEGORIES, toy_examples, toy_prompts


def conversations(n: int, seed: int = 0) -> list[list[dict]]:
    return [e["messages"] for e in toy_examples(n, seed)]


@pytest.mark.parametrize(
    ("n_examples", "epochs"),
    [(10, 10), (20, 5), (33, 3), (34, 3), (1000, 3), (8333, 3), (8334, 2), (30_000, 1)],
)
def test_auto_epochs_follow_the_cookbook_rule(n_examples: int, epochs: int) -> None:
    assert learner.auto_n_epochs(n_examples) == epochs
    assert learner.auto_n_epochs(1) == 25  # capped


def test_auto_batch_size_and_multiplier() -> None:
    assert learner.auto_batch_size(10) == 1
    assert learner.auto_batch_size(1000) == 2
    assert learner.auto_batch_size(10_000) == 20
    assert learner.auto_batch_size(1_000_000) == 256
    resolved = learner.resolve_hyperparameters({"n_epochs": "auto", "batch_size": 16}, 500)
    assert resolved == {"n_epochs": 3, "batch_size": 16, "learning_rate_multiplier": 2.0}
    explicit = learner.resolve_hyperparameters({"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 0.5}, 50)
    assert explicit == {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 0.5}


def test_training_honours_epochs_and_batch_size() -> None:
    result = learner.train(conversations(50), n_epochs=2, batch_size=8, learning_rate_multiplier=1.0, seed=1)
    assert result.total_steps == len(result.steps) == 2 * math.ceil(50 / 8)
    assert [c.epoch for c in result.checkpoints] == [1, 2]
    assert result.checkpoints[-1].step == result.total_steps


def test_training_is_deterministic_for_a_seed_and_varies_with_it() -> None:
    data = conversations(40)
    kwargs = {"n_epochs": 2, "batch_size": 3, "learning_rate_multiplier": 1.0}
    first = learner.train(data, seed=5, **kwargs)
    again = learner.train(data, seed=5, **kwargs)
    other = learner.train(data, seed=6, **kwargs)
    assert first.model.to_json() == again.model.to_json()
    assert [s.train_loss for s in first.steps] == [s.train_loss for s in again.steps]
    assert [s.train_loss for s in first.steps] != [s.train_loss for s in other.steps]


def test_learning_rate_multiplier_changes_the_step_size() -> None:
    data = conversations(40)
    slow = learner.train(data, n_epochs=1, batch_size=40, learning_rate_multiplier=0.1, seed=1)
    fast = learner.train(data, n_epochs=1, batch_size=40, learning_rate_multiplier=2.0, seed=1)
    # One full-batch step from zero weights: the update is proportional to the multiplier.
    assert max(abs(b) for b in fast.model.bias) == pytest.approx(20 * max(abs(b) for b in slow.model.bias))


def test_loss_falls_and_validation_metrics_are_reported() -> None:
    result = learner.train(
        conversations(120), n_epochs=3, batch_size=4, learning_rate_multiplier=1.0, seed=3,
        validation=conversations(30, seed=99),
    )
    first, last = result.steps[: len(result.steps) // 10], result.steps[-len(result.steps) // 10 :]
    assert sum(s.train_loss for s in last) < 0.5 * sum(s.train_loss for s in first)
    assert all(s.valid_loss is not None and 0 <= s.valid_mean_token_accuracy <= 1 for s in result.steps)
    final = result.checkpoints[-1]
    assert final.full_valid_loss is not None and final.full_valid_loss < math.log(len(CATEGORIES))


def test_model_round_trips_through_json() -> None:
    result = learner.train(conversations(30), n_epochs=1, batch_size=2, learning_rate_multiplier=1.0, seed=1)
    restored = learner.SoftmaxModel.from_json(result.model.to_json())
    prompt = toy_prompts(1, seed=4)[0][0]
    assert restored.ranked_replies(prompt) == result.model.ranked_replies(prompt)


def test_answers_map_into_the_enum() -> None:
    schema = response_format(CATEGORIES)
    prompt = [{"role": "system", "content": "Classify."}, {"role": "user", "content": "A haunted horror house"}]
    assert structured_outputs.answer(prompt, schema, None) == '{"category":"horror"}'  # zero-shot by word overlap
    # A model that learned bare labels still answers inside the schema's enum.
    bare = [[*p, {"role": "assistant", "content": c}] for p, c in toy_prompts(40, seed=1)]
    model = learner.train(bare, n_epochs=3, batch_size=2, learning_rate_multiplier=1.0, seed=1).model
    answer = structured_outputs.answer(toy_prompts(1, seed=2)[0][0], schema, model)
    assert parse_answer(answer, CATEGORIES) in CATEGORIES
    assert answer.startswith('{"category":"')
    # Enum values the model never learned fall back to the zero-shot choice, never outside the enum.
    other = {"type": "json_schema", "json_schema": {"name": "x", "strict": True, "schema": {
        "type": "object", "properties": {"genre": {"type": "string", "enum": ["sci-fi", "western"]}}}}}
    assert structured_outputs.answer(prompt, other, model) in ('{"genre":"sci-fi"}', '{"genre":"western"}')


def test_token_counts_are_consistent() -> None:
    text = "Hello there, general Kenobi!"
    assert learner.count_text_tokens(text) > 0
    assert learner.count_text_tokens("") == 0
    messages = [{"role": "user", "content": text}]
    # The cookbook's rule: 3 tokens per message and 3 to prime the reply.
    assert learner.count_message_tokens(messages) == learner.count_text_tokens(text) + learner.count_text_tokens(
        "user"
    ) + 3 + 3
    # The backend counts exactly as the pipeline's file checks do.
    assert learner.count_message_tokens(messages) == tokens.count_example_tokens(messages, tokens.token_counter())
    assert tokens.token_counter().method == "exact: tiktoken o200k_base"


def test_token_estimate_when_encoding_is_unavailable(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    without_o200k(monkeypatch, tmp_path)
    assert tokens.token_counter().method.startswith("estimate:")
    assert learner.count_text_tokens("x" * 10) == 4  # ceil(10 UTF-8 bytes / 3)


def test_fine_tuned_model_beats_base_on_held_out_examples(backend: Backend) -> None:
    client = backend.client(job_seconds=0.2)
    job = train_toy_model(client, n=80)
    assert job.status == "succeeded", job.error
    held_out = toy_prompts(60, seed=123)
    fmt = response_format(CATEGORIES)

    def accuracy(model: str) -> float:
        hits = 0
        for messages, expected in held_out:
            reply = client.chat.completions.create(model=model, messages=messages, response_format=fmt)
            hits += parse_answer(reply.choices[0].message.content, CATEGORIES) == expected
        return hits / len(held_out)

    tuned, base = accuracy(job.fine_tuned_model), accuracy(job.model)
    assert tuned >= 0.8
    assert tuned >= base + 0.3
