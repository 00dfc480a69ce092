"""Accounting and result files: trained_tokens billed as OpenAI bills them, estimates marked, and result
files served as OpenAI serves them (base64-encoded CSV)."""

from __future__ import annotations

import base64
import csv
import io
import math
from typing import Any

import openai
import pytest
from openai.types import FileObject
from openai.types.fine_tuning import FineTuningJob

from fine_tuning.core.catalog import catalog_model
from fine_tuning.core.provider_jobs import result_file_text
from local_openai import learner

from tests.support.conformance import conformance_options, jsonl, validated
from tests.support.local_openai import Clock
from tests.support.tokenizer import without_o200k
from tests.support.toy_books import toy_examples

GPT35 = "gpt-3.5-turbo-0125"


@pytest.fixture
def backend_options(clock: Clock) -> dict[str, Any]:
    """Lifecycles of JOB_SECONDS on the stepped clock (the suite's `client` uses these options)."""
    return conformance_options(clock)


def run_job(client: openai.OpenAI, clock: Clock, examples: list, **kwargs: Any) -> FineTuningJob:
    file_id = client.files.create(file=("train.jsonl", jsonl(examples)), purpose="fine-tune").id
    job = client.fine_tuning.jobs.create(training_file=file_id, seed=3, **kwargs)
    clock.advance(60.0)
    return validated(FineTuningJob, client.fine_tuning.jobs.with_raw_response.retrieve(job.id))


def test_trained_tokens_are_capped_per_example_as_billing_is(client: openai.OpenAI, clock: Clock) -> None:
    examples = toy_examples(12)
    # system, a long user message, the answer (well-formed: the backend refuses what the validator rejects)
    long_example = {"messages": [examples[0]["messages"][0], {"role": "user", "content": "word " * 20_000},
                                 examples[0]["messages"][-1]]}
    examples.append(long_example)
    job = run_job(client, clock, examples, model=GPT35, hyperparameters={"n_epochs": 2})
    assert job.status == "succeeded", job.error
    limit = catalog_model(GPT35).example_token_limit
    counts = [learner.count_message_tokens(example["messages"]) for example in examples]
    assert max(counts) > limit
    assert job.trained_tokens == 2 * sum(min(count, limit) for count in counts)
    warnings = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100) if e.level == "warn"]
    assert any("1 example(s) are longer than the 16385-token limit" in message for message in warnings)


def test_counts_without_the_tokenizer_file_are_marked_estimates(
    client: openai.OpenAI, clock: Clock, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    exact = run_job(client, clock, toy_examples(12), model="gpt-4o-mini")
    assert "trained_tokens_estimated" not in client.fine_tuning.jobs.with_raw_response.retrieve(
        exact.id).http_response.json()
    without_o200k(monkeypatch, tmp_path)
    estimated = run_job(client, clock, toy_examples(12), model="gpt-4o-mini")
    raw = client.fine_tuning.jobs.with_raw_response.retrieve(estimated.id)
    assert raw.http_response.json()["trained_tokens_estimated"] is True
    assert raw.headers["x-local-token-count"] == "estimate"
    assert estimated.trained_tokens > exact.trained_tokens  # the estimate errs on the high side
    events = [e.message for e in client.fine_tuning.jobs.list_events(estimated.id, limit=100)]
    assert any(message.startswith("Token counts of this job are estimates") for message in events)


def test_result_files_are_base64_encoded_csv_as_openai_serves_them(client: openai.OpenAI, clock: Clock) -> None:
    job = run_job(client, clock, toy_examples(20), model="gpt-4o-mini", hyperparameters={"n_epochs": 2})
    (result_id,) = job.result_files
    record = validated(FileObject, client.files.with_raw_response.retrieve(result_id))
    assert (record.filename, record.purpose) == ("step_metrics.csv", "fine-tune-results")
    content = client.files.content(result_id).content
    assert record.bytes == len(content)
    decoded = base64.b64decode(content, validate=True).decode()  # what public client code does
    rows = list(csv.DictReader(io.StringIO(decoded)))
    assert list(rows[0]) == ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy"]
    assert len(rows) == 2 * math.ceil(20 / job.hyperparameters.batch_size)  # one row per step
    assert result_file_text(content) == decoded  # the pipeline's reader


def test_the_pipelines_reader_takes_plain_csv_too() -> None:
    assert result_file_text(b"step,train_loss\n1,0.5\n") == "step,train_loss\n1,0.5\n"
    assert result_file_text(base64.b64encode(b"step,train_loss\n1,0.5\n")) == "step,train_loss\n1,0.5\n"
    assert result_file_text(b"not csv, not base64!") == "not csv, not base64!"
