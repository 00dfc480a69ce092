"""Scoring models through OpenAI's Batch API: half the price, outside the rate limits (no Dagster here).

One JSONL holds a `/v1/chat/completions` request (`scoring.chat_request`) for every model and
book; it is uploaded with purpose `batch` and submitted with a 24h completion window. Like a
fine-tuning job, the batch carries a fingerprint of everything its answers depend on (the models
and the prompts) in its metadata, so:

* a batch in flight with that fingerprint is attached to, a completed one is read again: the
  same models are never asked about the same prompts twice (unless the caller forces it);
* submitting is never blindly retried: after an ambiguous failure the batch is looked up first;
* the caller's interrupt (a terminated run) cancels the batch it was waiting for.

Results are joined back by `custom_id`; a line that failed, or never came back, is a failed
answer, counted as wrong.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import openai as openai_sdk
from openai.types import Batch

from fine_tuning.core.job_polling import poll_until_final
from fine_tuning.core.provider_jobs import FINGERPRINT_KEY, Log, ProviderJobError, create_once
from fine_tuning.core.scoring import Answer, Example, Scores, answer_from_completion, chat_request, tally

ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"
FILE_PURPOSE = "batch"
PURPOSE_TAG_KEY = "dagster_asset"
PURPOSE_TAG = "fine_tuned_model_accuracy"
MAX_REQUESTS = 50_000  # OpenAI's limit of requests in one batch
IN_FLIGHT = frozenset({"validating", "in_progress", "finalizing"})
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
UNUSABLE = frozenset({"failed", "expired", "cancelled", "cancelling"})


@dataclass(frozen=True)
class BatchRun:
    """How the batch behind a score came about."""

    batch_id: str
    reused: bool  # an existing batch with the fingerprint was attached to or read again
    input_file_id: str
    replaced: tuple[str, ...] = ()  # failed, expired or cancelled batches with the fingerprint


def custom_id(model_index: int, example_index: int) -> str:
    """The id of one request line: models by their sorted position, books by their position."""
    return f"m{model_index}-e{example_index}"


def request_lines(models: Sequence[str], examples: Sequence[Example], categories: Sequence[str]) -> bytes:
    """The batch input: one chat request per (model, book), models in sorted order."""
    lines = [
        json.dumps(
            {"custom_id": custom_id(m, e), "method": "POST", "url": ENDPOINT,
             "body": chat_request(model, example, categories)},
            ensure_ascii=False, separators=(",", ":"),
        )
        for e, example in enumerate(examples)
        for m, model in enumerate(sorted(models))
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def batch_metadata(fingerprint: str) -> dict[str, str]:
    """The provider-side metadata that lets a later run find this batch again."""
    return {FINGERPRINT_KEY: fingerprint, PURPOSE_TAG_KEY: PURPOSE_TAG}


def find_batches(client: openai_sdk.OpenAI, fingerprint: str) -> list[Batch]:
    """Every batch with this fingerprint, newest first (the list has no metadata filter: all pages)."""
    found = [batch for batch in client.batches.list(limit=100) if (batch.metadata or {}).get(FINGERPRINT_KEY) == fingerprint]
    return sorted(found, key=lambda batch: batch.created_at, reverse=True)


def choose_batch(batches: Sequence[Batch], force: bool) -> tuple[Batch | None, tuple[Batch, ...]]:
    """(the batch to attach to or read, or None to submit one; the unusable ones being replaced).

    A batch in flight is always attached to: its requests are already paid for.
    """
    in_flight = [batch for batch in batches if batch.status in IN_FLIGHT]
    completed = [batch for batch in batches if batch.status == "completed"]
    unusable = tuple(batch for batch in batches if batch.status in UNUSABLE)
    if in_flight:
        return in_flight[0], ()
    if completed and not force:
        return completed[0], ()
    return None, unusable


def upload_filename(fingerprint: str) -> str:
    """The name the input file is uploaded under, so an upload whose batch was never created is reused."""
    return f"{fingerprint[:16]}-evaluation-batch.jsonl"


def upload_input(client: openai_sdk.OpenAI, fingerprint: str, content: bytes, log: Log) -> str:
    """The id of the uploaded batch input: an earlier upload of these bytes, else a new one."""
    name = upload_filename(fingerprint)
    for uploaded in client.files.list(purpose=FILE_PURPOSE):
        if uploaded.filename == name and uploaded.bytes == len(content) and uploaded.status != "error":
            log.info(f"Reusing the uploaded batch input {uploaded.id} ({name}).")
            return uploaded.id
    return client.files.create(file=(name, content, "application/jsonl"), purpose=FILE_PURPOSE).id


def submit_batch(
    client: openai_sdk.OpenAI, fingerprint: str, content: bytes, log: Log, sleep: Callable[[float], None] = time.sleep
) -> Batch:
    """Upload the input and create the batch, never twice (looked up by fingerprint before a retry)."""
    file_id = upload_input(client, fingerprint, content, log)
    once = client.with_options(max_retries=0)

    def find_existing() -> Batch | None:
        live = [batch for batch in find_batches(client, fingerprint) if batch.status not in UNUSABLE]
        return live[0] if live else None

    batch, _ = create_once(
        lambda: once.batches.create(
            input_file_id=file_id, endpoint=ENDPOINT, completion_window=COMPLETION_WINDOW,
            metadata=batch_metadata(fingerprint),
        ),
        find_existing, "creating the evaluation batch", client, log, sleep,
    )
    return batch


def _report(log: Log, seen: list[tuple[object, ...]]) -> Callable[[Batch, float], None]:
    def report(batch: Batch, _now: float) -> None:
        counts = batch.request_counts
        state = (batch.status, counts.completed if counts else None, counts.failed if counts else None)
        if seen and seen[-1] == state:
            return
        seen.append(state)
        done = f", {counts.completed}/{counts.total} done, {counts.failed} failed" if counts else ""
        log.info(f"Batch {batch.id}: {batch.status}{done}")
    return report


def cancel_batch_quietly(client: openai_sdk.OpenAI, batch_id: str, log: Log) -> None:
    """Cancel a batch on the way out; a failure to cancel is logged, not raised."""
    try:
        batch = client.batches.cancel(batch_id)
        log.warning(f"Run interrupted: cancelled evaluation batch {batch_id} (status {batch.status}).")
    except openai_sdk.APIError as error:
        log.error(f"Could not cancel evaluation batch {batch_id}: {type(error).__name__}")


def wait_for_batch(
    client: openai_sdk.OpenAI,
    batch_id: str,
    log: Log,
    poll_interval_seconds: float,
    timeout_seconds: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    interrupts: tuple[type[BaseException], ...] = (KeyboardInterrupt,),
) -> Batch:
    """Poll the batch until it is final; one of `interrupts` cancels it (then re-raises)."""
    return poll_until_final(
        lambda: client.batches.retrieve(batch_id), lambda batch: batch.status, TERMINAL,
        f"evaluation batch {batch_id}", client, log, poll_interval_seconds,
        on_poll=_report(log, []),
        cancel=lambda: cancel_batch_quietly(client, batch_id, log),
        timeout_seconds=timeout_seconds, sleep=sleep, clock=clock, interrupts=interrupts,
    )


def _file_lines(client: openai_sdk.OpenAI, file_id: str | None) -> list[dict[str, object]]:
    if not file_id:
        return []
    lines = []
    for raw in client.files.content(file_id).text.splitlines():
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            continue  # a torn line names no request; that request is counted missing below
        if isinstance(line, dict):
            lines.append(line)
    return lines


def line_answer(line: Mapping[str, object], categories: Sequence[str]) -> Answer:
    """One output or error line as an Answer: a 200 body is scored, anything else is a failure."""
    response = line.get("response") if isinstance(line.get("response"), Mapping) else None
    body = response.get("body") if response is not None else None  # type: ignore[union-attr]
    status = response.get("status_code") if response is not None else None  # type: ignore[union-attr]
    if status == 200 and isinstance(body, Mapping):
        return answer_from_completion(body, categories)
    error = line.get("error") or (body.get("error") if isinstance(body, Mapping) else None)
    message = error.get("message") if isinstance(error, Mapping) else str(error or "no result")
    return Answer(None, failed=True, error=f"{line.get('custom_id')}: HTTP {status or '-'}: {message}")


def batch_answers(
    client: openai_sdk.OpenAI, batch: Batch, categories: Sequence[str]
) -> dict[str, Answer]:
    """Answers by custom_id from the batch's output and error files."""
    answers: dict[str, Answer] = {}
    for line in _file_lines(client, batch.error_file_id) + _file_lines(client, batch.output_file_id):
        key = line.get("custom_id")
        if isinstance(key, str):
            answers[key] = line_answer(line, categories)  # an output line wins over an error line
    return answers


def batch_failure(batch: Batch) -> ProviderJobError:
    """The error for a batch that ended without answers, in the provider's own words."""
    errors = batch.errors.data if batch.errors and batch.errors.data else []
    reason = "; ".join(f"[{e.code}] {e.message}" + (f" (line {e.line})" if e.line else "") for e in errors[:3])
    return ProviderJobError(
        f"Evaluation batch {batch.id} {batch.status}: {reason or 'no error reported by the provider'}",
        {"batch_id": batch.id, "status": batch.status},
    )


def score_batch(
    models: Sequence[str], examples: Sequence[Example], answers: Mapping[str, Answer]
) -> Scores:
    """Every model's score from the answers by custom_id; a request without a line is a failure."""
    ordered = sorted(set(models))
    position = {model: index for index, model in enumerate(ordered)}

    def answer(model: str, index: int) -> Answer:
        key = custom_id(position[model], index)
        return answers.get(key) or Answer(None, failed=True, error=f"{key} ({model}): no result line in the batch")

    scores, failures = tally(list(dict.fromkeys(models)), examples, answer)
    return Scores(scores, len(examples), failure_samples=failures)


def ask_models_in_batch(
    client: openai_sdk.OpenAI,
    examples: Sequence[Example],
    categories: Sequence[str],
    models: Sequence[str],
    fingerprint: str,
    log: Log,
    poll_interval_seconds: float,
    force: bool = False,
    timeout_seconds: float | None = None,
    interrupts: tuple[type[BaseException], ...] = (KeyboardInterrupt,),
) -> tuple[Scores, BatchRun]:
    """Ask every model about every example through one batch, resuming any batch with the fingerprint."""
    content = request_lines(models, examples, categories)
    requests = len(set(models)) * len(examples)
    if requests > MAX_REQUESTS:
        raise ProviderJobError(f"{requests} requests exceed the Batch API's {MAX_REQUESTS} per batch; lower max_examples.")
    batch, replaced = choose_batch(find_batches(client, fingerprint), force)
    for old in replaced:
        log.warning(f"Earlier evaluation batch {old.id} with this fingerprint ended {old.status}; submitting a new one.")
    reused = batch is not None
    if batch is None:
        batch = submit_batch(client, fingerprint, content, log)
        log.info(f"Submitted evaluation batch {batch.id}: {requests} requests, window {COMPLETION_WINDOW}.")
    else:
        log.info(f"{'Reading completed' if batch.status == 'completed' else 'Attaching to'} evaluation batch {batch.id}.")
    if batch.status not in TERMINAL:
        batch = wait_for_batch(client, batch.id, log, poll_interval_seconds, timeout_seconds, interrupts=interrupts)
    if batch.status not in ("completed", "expired"):
        raise batch_failure(batch)
    if batch.status == "expired":
        log.warning(f"Evaluation batch {batch.id} expired: the requests it did not finish count as failed.")
    scores = score_batch(models, examples, batch_answers(client, batch, categories))
    return scores, BatchRun(batch.id, reused, batch.input_file_id, tuple(old.id for old in replaced))
