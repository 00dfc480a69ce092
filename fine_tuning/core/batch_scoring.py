"""Scoring models through OpenAI's Batch API: half the price, outside the rate limits (no Dagster here).

A batch may ask one model only, so every model gets its own JSONL of `/v1/chat/completions`
requests (`scoring.chat_request`, one per example), uploaded with purpose `batch` and submitted
with a 24h completion window; all are submitted before any is waited for. Like a fine-tuning
job, a batch carries a fingerprint of everything its answers depend on (its model and the
prompts) in its metadata, so:

* a batch in flight with that fingerprint is attached to, a completed one is read again: a
  model is never asked about the same prompts twice (unless the caller forces it);
* submitting is never blindly retried: after an ambiguous failure the batch is looked up first;
* the caller's interrupt (a terminated run) cancels every batch it was waiting for.

Results are joined back by `custom_id`; a line that failed, or never came back, is a failed
answer, counted as wrong.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import openai as openai_sdk
from openai.types import Batch

from fine_tuning.core.grading import Grading, ProviderGrader, RemoteGrader
from fine_tuning.core.job_polling import poll_until_final
from fine_tuning.core.openai_errors import describe_api_error
from fine_tuning.core.prompts import Prompt
from fine_tuning.core.provider_jobs import METADATA_FINGERPRINT_KEY, Log, ProviderJobError, create_once
from fine_tuning.core.scoring import (
    Answer,
    Example,
    Scores,
    answer_from_completion,
    chat_request,
    provider_grader,
    tally,
)

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
    """How the batch behind one model's score came about."""

    model: str
    batch_id: str
    reused: bool  # an existing batch with the fingerprint was attached to or read again
    input_file_id: str
    replaced: tuple[str, ...] = ()  # failed, expired or cancelled batches with the fingerprint


def custom_id(example_index: int) -> str:
    """The id of one request line: the example's position among the examples."""
    return f"e{example_index}"


def request_lines(model: str, examples: Sequence[Example], prompt: Prompt) -> bytes:
    """One model's batch input: its chat request about every example, in order."""
    lines = [
        json.dumps(
            {"custom_id": custom_id(index), "method": "POST", "url": ENDPOINT,
             "body": chat_request(model, example, prompt)},
            ensure_ascii=False, separators=(",", ":"),
        )
        for index, example in enumerate(examples)
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def batch_metadata(fingerprint: str) -> dict[str, str]:
    """The provider-side metadata that lets a later run find this batch again."""
    return {METADATA_FINGERPRINT_KEY: fingerprint, PURPOSE_TAG_KEY: PURPOSE_TAG}


def find_batches(client: openai_sdk.OpenAI, fingerprints: Iterable[str]) -> dict[str, list[Batch]]:
    """The batches with each fingerprint, newest first (the list has no metadata filter: one pass over all pages)."""
    found: dict[str, list[Batch]] = {fingerprint: [] for fingerprint in fingerprints}
    for batch in client.batches.list(limit=100):
        fingerprint = (batch.metadata or {}).get(METADATA_FINGERPRINT_KEY)
        if fingerprint in found:
            found[fingerprint].append(batch)
    return {key: sorted(batches, key=lambda b: b.created_at, reverse=True) for key, batches in found.items()}


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
        live = [batch for batch in find_batches(client, [fingerprint])[fingerprint] if batch.status not in UNUSABLE]
        return live[0] if live else None

    batch, _ = create_once(
        lambda: once.batches.create(
            input_file_id=file_id, endpoint=ENDPOINT, completion_window=COMPLETION_WINDOW,
            metadata=batch_metadata(fingerprint),
        ),
        find_existing, "creating the evaluation batch", client, log, sleep,
    )
    return batch


def _report(log: Log) -> Callable[[Batch, float], None]:
    """A progress line whenever the batch's status or counts change."""
    seen: list[tuple[object, ...]] = []

    def report(batch: Batch, _now: float) -> None:
        counts = batch.request_counts
        state = (batch.status, counts.completed if counts else None, counts.failed if counts else None)
        if seen and seen[-1] == state:
            return
        seen.append(state)
        done = f", {counts.completed}/{counts.total} done, {counts.failed} failed" if counts else ""
        log.info(f"Batch {batch.id}: {batch.status}{done}")

    return report


def cancel_batches_quietly(client: openai_sdk.OpenAI, batch_ids: Iterable[str], log: Log) -> None:
    """Cancel batches on the way out; a failure to cancel is logged, not raised."""
    for batch_id in batch_ids:
        try:
            batch = client.batches.cancel(batch_id)
            log.warning(f"Run interrupted: cancelled evaluation batch {batch_id} (status {batch.status}).")
        except openai_sdk.APIError as error:
            log.error(describe_api_error(error, f"cancelling evaluation batch {batch_id}", client))


def wait_for_batches(
    client: openai_sdk.OpenAI,
    batches: Mapping[str, Batch],
    log: Log,
    poll_interval_seconds: float,
    timeout_seconds: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    interrupts: tuple[type[BaseException], ...] = (KeyboardInterrupt,),
) -> dict[str, Batch]:
    """Poll each batch (by model) until it is final; one of `interrupts` cancels every unfinished one.

    The batches run side by side at the provider, so waiting for them one after the other
    takes as long as the slowest.
    """
    final = {model: batch for model, batch in batches.items() if batch.status in TERMINAL}
    started = clock()
    for model, batch in batches.items():
        if model in final:
            continue
        unfinished = [b.id for m, b in batches.items() if m not in final]
        remaining = None if timeout_seconds is None else max(timeout_seconds - (clock() - started), 0.0)
        final[model] = poll_until_final(
            lambda batch_id=batch.id: client.batches.retrieve(batch_id), lambda b: b.status, TERMINAL,
            f"evaluation batch {batch.id}", client, log, poll_interval_seconds,
            on_poll=_report(log),
            cancel=lambda ids=unfinished: cancel_batches_quietly(client, ids, log),
            timeout_seconds=remaining, sleep=sleep, clock=clock, interrupts=interrupts,
        )
    return {model: final[model] for model in batches}


def _file_lines(client: openai_sdk.OpenAI, file_id: str | None) -> list[dict[str, object]]:
    if not file_id:
        return []
    lines = []
    for raw in client.files.content(file_id).text.splitlines():
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            continue  # a torn line names no request; that request is counted missing
        if isinstance(line, dict):
            lines.append(line)
    return lines


def line_answer(line: Mapping[str, object], prompt: Prompt) -> Answer:
    """One output or error line as an Answer: a 200 body is scored, anything else is a failure."""
    response = line.get("response") if isinstance(line.get("response"), Mapping) else None
    body = response.get("body") if response is not None else None  # type: ignore[union-attr]
    status = response.get("status_code") if response is not None else None  # type: ignore[union-attr]
    if status == 200 and isinstance(body, Mapping):
        return answer_from_completion(body, prompt)
    error = line.get("error") or (body.get("error") if isinstance(body, Mapping) else None)
    message = error.get("message") if isinstance(error, Mapping) else str(error or "no result")
    return Answer(None, failed=True, error=f"{line.get('custom_id')}: HTTP {status or '-'}: {message}")


def batch_answers(client: openai_sdk.OpenAI, batch: Batch, prompt: Prompt) -> dict[str, Answer]:
    """Answers by custom_id from the batch's output and error files."""
    answers: dict[str, Answer] = {}
    for line in _file_lines(client, batch.error_file_id) + _file_lines(client, batch.output_file_id):
        key = line.get("custom_id")
        if isinstance(key, str):
            answers[key] = line_answer(line, prompt)  # an output line wins over an error line
    return answers


def batch_problem(batch: Batch) -> str:
    """Why a batch did not answer everything, in the provider's own words."""
    errors = batch.errors.data if batch.errors and batch.errors.data else []
    reason = "; ".join(f"[{e.code}] {e.message}" + (f" (line {e.line})" if e.line else "") for e in errors[:3])
    return f"evaluation batch {batch.id} {batch.status}: {reason or 'no error reported by the provider'}"


def score_batches(
    models: Sequence[str], examples: Sequence[Example], answers: Mapping[str, Mapping[str, Answer]],
    problems: Mapping[str, str] | None = None, grading: Grading | None = None, remote: RemoteGrader | None = None,
) -> Scores:
    """Every model's score from its answers by custom_id; a request without a line is a failure
    (`problems[model]` says why its batch did not answer everything). Free-form: graded by `grading`."""

    def answer(model: str, index: int) -> Answer:
        key = custom_id(index)
        found = answers.get(model, {}).get(key)
        why = (problems or {}).get(model) or "no result line in the batch"
        return found or Answer(None, failed=True, error=f"{model} / {key}: {why}")

    scores, failures = tally(list(dict.fromkeys(models)), examples, answer, grading, remote)
    tokens = remote.tokens if isinstance(remote, ProviderGrader) else {}
    return Scores(scores, len(examples), failure_samples=failures, grader_tokens=tokens)


def _start(
    client: openai_sdk.OpenAI, model: str, fingerprint: str, existing: list[Batch], content: bytes, force: bool,
    log: Log,
) -> tuple[Batch, BatchRun]:
    """The model's batch: one in flight or completed with the fingerprint, else a new one."""
    batch, replaced = choose_batch(existing, force)
    for old in replaced:
        log.warning(f"Earlier evaluation batch {old.id} of {model} ended {old.status}; submitting a new one.")
    reused = batch is not None
    if batch is None:
        batch = submit_batch(client, fingerprint, content, log)
        log.info(f"Submitted evaluation batch {batch.id} for {model} ({COMPLETION_WINDOW} window).")
    else:
        verb = "Reading completed" if batch.status == "completed" else "Attaching to"
        log.info(f"{verb} evaluation batch {batch.id} for {model} ({batch.status}).")
    return batch, BatchRun(model, batch.id, reused, batch.input_file_id, tuple(old.id for old in replaced))


def ask_models_in_batch(
    client: openai_sdk.OpenAI,
    examples: Sequence[Example],
    prompt: Prompt,
    models: Sequence[str],
    fingerprints: Mapping[str, str],
    log: Log,
    poll_interval_seconds: float,
    force: bool = False,
    timeout_seconds: float | None = None,
    interrupts: tuple[type[BaseException], ...] = (KeyboardInterrupt,),
) -> tuple[Scores, list[BatchRun]]:
    """Ask every model about every example, one batch per model (named by `fingerprints[model]`),
    resuming any batch with its fingerprint; all are submitted first, then waited for."""
    if len(examples) > MAX_REQUESTS:
        raise ProviderJobError(
            f"{len(examples)} requests exceed the Batch API's {MAX_REQUESTS} per batch; lower max_examples."
        )
    models = list(dict.fromkeys(models))
    existing = find_batches(client, [fingerprints[model] for model in models])
    started: dict[str, Batch] = {}
    runs: list[BatchRun] = []
    try:
        for model in models:
            content = request_lines(model, examples, prompt)
            batch, run = _start(client, model, fingerprints[model], existing[fingerprints[model]], content, force, log)
            started[model] = batch
            runs.append(run)
    except interrupts:
        cancel_batches_quietly(client, [b.id for b in started.values() if b.status not in TERMINAL], log)
        raise
    finished = wait_for_batches(client, started, log, poll_interval_seconds, timeout_seconds, interrupts=interrupts)
    answers: dict[str, dict[str, Answer]] = {}
    problems: dict[str, str] = {}
    for model, batch in finished.items():
        if batch.status != "completed":
            # Failed (say, the model is gone), expired or cancelled elsewhere: whatever it did not
            # answer counts as wrong, as the same requests failing online would.
            problems[model] = batch_problem(batch)
            log.warning(f"The {problems[model]}; its unanswered requests count as failed.")
        answers[model] = batch_answers(client, batch, prompt)
    remote = provider_grader(client, prompt)
    return score_batches(models, examples, answers, problems, prompt.grading, remote), runs
