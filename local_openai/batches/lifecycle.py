"""A batch's lifecycle: validating -> in_progress -> finalizing -> completed (or failed, expired,
cancelling -> cancelled).

Like a fine-tuning job, a batch advances lazily from elapsed time whenever it is observed, at
fixed fractions of `batch_seconds` after creation. Leaving `validating` checks the input file
and answers every request at once with the same chat code as online requests; each answer is
dated across the `in_progress` window, so `request_counts` grow as reads reach those dates.
Should the completion window (`window_seconds`, OpenAI's 24 hours) close first, the batch
expires: what was answered by then is kept, the rest is reported as `batch_expired`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

from fine_tuning.core.tokens import token_counter
from local_openai.batches.input_file import BatchRequest, parse_batch_input
from local_openai.batches.records import Batch, BatchLineError, BatchResult
from local_openai.files import DEFAULT_BATCH_EXPIRY_SECONDS, Files
from local_openai.store import Store, Timeline

# Fractions of batch_seconds at which a batch leaves validating, in_progress and finalizing.
VALIDATING_END = 0.1
IN_PROGRESS_END = 0.9
FINALIZING_END = 1.0
CANCELLING_SHARE = 0.1  # how long cancelling lasts, as a share of batch_seconds
EXPIRED = ("batch_expired", "This request could not be executed before the completion window expired.")

Answer = Callable[[dict[str, Any], float], tuple[int, dict[str, Any]]]  # (body, time) -> (status, body)


def jsonl_bytes(lines: Sequence[dict[str, Any]]) -> bytes:
    """JSON lines, one object each."""
    return "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines).encode()


class BatchLifecycle:
    """Moves batches through their states; every method that changes one runs under its lock."""

    def __init__(
        self, store: Store, files: Files, results: Timeline[BatchResult], answer: Answer,
        model_exists: Callable[[str], bool],
    ) -> None:
        self.store = store
        self.files = files
        self.results = results
        self.answer = answer
        self.model_exists = model_exists

    @staticmethod
    def next_change(batch: Batch) -> float:
        """When the batch leaves its current state (inf for a final one)."""
        if batch.status == "cancelling":
            assert batch.cancel_time is not None
            return batch.cancel_time + CANCELLING_SHARE * batch.batch_seconds
        share = {"validating": VALIDATING_END, "in_progress": IN_PROGRESS_END, "finalizing": FINALIZING_END}
        if batch.status not in share:
            return math.inf
        return batch.t0 + share[batch.status] * batch.batch_seconds

    def due(self, batch: Batch, now: float) -> bool:
        """Whether a state change (or expiry) is due by `now`."""
        if batch.finished:
            return False
        return now >= min(self.next_change(batch), self._expiry(batch))

    @staticmethod
    def _expiry(batch: Batch) -> float:
        return math.inf if batch.status == "cancelling" else batch.t0 + batch.window_seconds

    def advance(self, batch: Batch, now: float) -> Batch:
        """Apply every change due by `now`, in time order; counts reflect what is answered by `now`."""
        while not batch.finished:
            change, expiry = self.next_change(batch), self._expiry(batch)
            if expiry < change:  # the window closes before the batch gets further
                if now >= expiry:
                    self._expire(batch, expiry)
                break
            if now < change:
                break
            self._step(batch, change)
        if not batch.finished:
            self._count(batch, self.results.until(batch.id, min(now, batch.cancel_time or math.inf)))
        return batch

    def cancel(self, batch: Batch, now: float) -> None:
        """Start cancelling: nothing answered after `now` will be kept."""
        batch.status, batch.cancel_time = "cancelling", now
        batch.stamps["cancelling_at"] = int(now)

    def _step(self, batch: Batch, at: float) -> None:
        if batch.status == "validating":
            self._validate(batch, at)
        elif batch.status == "in_progress":
            batch.status = "finalizing"
            batch.stamps["finalizing_at"] = int(at)
        elif batch.status == "finalizing":
            self._finish(batch, at, "completed", self.results.read(batch.id))
        elif batch.status == "cancelling":
            assert batch.cancel_time is not None
            self._finish(batch, at, "cancelled", self.results.until(batch.id, batch.cancel_time))

    def _validate(self, batch: Batch, at: float) -> None:
        try:
            data = self.store.blob(batch.input_file_id).read_bytes()
        except (FileNotFoundError, KeyError):
            data = None
        if data is None or self.files.find(batch.input_file_id) is None:
            errors = [BatchLineError("invalid_file", f"The input file {batch.input_file_id} no longer exists.")]
            requests, model = [], None
        else:
            requests, errors, model = parse_batch_input(data, batch.endpoint)
        if not errors and model is not None and not self.model_exists(model):
            line = requests[0].line if requests else None
            errors = [BatchLineError(
                "model_not_found", f"The provided model '{model}' is not supported by the Batch API.", "body.model", line
            )]
        if errors:
            batch.status, batch.errors = "failed", errors
            batch.stamps["failed_at"] = int(at)
            return
        batch.status, batch.model = "in_progress", model
        batch.stamps["in_progress_at"] = int(at)
        batch.request_counts["total"] = len(requests)
        batch.usage_estimated = not token_counter().exact
        self.results.write(batch.id, self._answer_all(batch, requests, at))

    def _answer_all(self, batch: Batch, requests: Sequence[BatchRequest], started: float) -> list[BatchResult]:
        """Every request answered now, dated evenly across the in_progress window."""
        span = (IN_PROGRESS_END - VALIDATING_END) * batch.batch_seconds
        results = []
        for index, request in enumerate(requests):
            at = started + span * (index + 1) / len(requests)
            status, body = self.answer(request.body, at)
            results.append(BatchResult.answered(request.custom_id, at, status, body))
        return results

    def _expire(self, batch: Batch, at: float) -> None:
        answered = self.results.until(batch.id, at)
        done = {result.custom_id for result in answered}
        expired = [
            BatchResult.not_run(result.custom_id, at, *EXPIRED)
            for result in self.results.read(batch.id) if result.custom_id not in done
        ]
        self._finish(batch, at, "expired", [*answered, *expired])

    def _finish(self, batch: Batch, at: float, status: str, results: Sequence[BatchResult]) -> None:
        """Publish the output and error files of `results` and enter a final state."""
        output = [result for result in results if result.succeeded]
        failed = [result for result in results if not result.succeeded]
        batch.output_file_id = self._publish(batch, "output", output, at)
        batch.error_file_id = self._publish(batch, "error", failed, at)
        self._count(batch, results)
        batch.status = status
        batch.stamps[f"{status}_at"] = int(at)

    def _publish(self, batch: Batch, kind: str, results: Sequence[BatchResult], at: float) -> str | None:
        if not results:
            return None
        created = int(at)
        expiry = batch.output_expiry_seconds or DEFAULT_BATCH_EXPIRY_SECONDS
        content = jsonl_bytes([result.to_line() for result in results])
        record = self.files.add(f"{batch.id}_{kind}.jsonl", "batch_output", content, created, expires_at=created + expiry)
        return record.id

    @staticmethod
    def _count(batch: Batch, results: Sequence[BatchResult]) -> None:
        """request_counts and usage of the requests answered so far."""
        succeeded = [result for result in results if result.succeeded]
        batch.request_counts["completed"] = len(succeeded)
        batch.request_counts["failed"] = len(results) - len(succeeded)
        usages = [(result.body or {}).get("usage") or {} for result in succeeded]
        batch.usage = {
            "input_tokens": sum(usage.get("prompt_tokens", 0) for usage in usages),
            "output_tokens": sum(usage.get("completion_tokens", 0) for usage in usages),
        }
