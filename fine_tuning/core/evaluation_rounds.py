"""One evaluation round: several models on the same prompts, asking only what is not known yet.

A model's clean score on exactly these prompts (same fingerprint, no failed request) is reused
instead of paid for again: temperature-0 answers of a dated model do not change. The rest are
asked online (bounded concurrency) or through the Batch API, and each model's requests are
priced (half in a batch). Also: a fine-tuning job's checkpoints as candidate models. No Dagster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import openai as openai_sdk

from fine_tuning.core.batch_scoring import BatchRun, ask_models_in_batch
from fine_tuning.core.costs import inference_cost
from fine_tuning.core.prompts import Prompt
from fine_tuning.core.provider_jobs import Log
from fine_tuning.core.scoring import Example, ModelScore, ask_models, evaluation_fingerprint, prompts_fingerprint

Mode = Literal["online", "batch"]


@dataclass(frozen=True)
class AskSettings:
    """How to ask: online or in a batch, and the knobs of each."""

    mode: Mode = "online"
    concurrency: int = 16
    max_retries: int = 5
    poll_interval_seconds: float = 10.0
    timeout_seconds: float | None = None
    force: bool = False  # ask again even what is known (and submit a new batch)


@dataclass
class Round:
    """The models' scores on one set of prompts and what asking for them took."""

    prompts_sha256: str
    fingerprint: str  # of every model in the round and the prompts
    scores: dict[str, ModelScore]
    asked: list[str]
    reused: list[str]
    mode: Mode
    cost_usd: dict[str, float] = field(default_factory=dict)  # paid in this round, per model asked
    unpriced: list[str] = field(default_factory=list)  # models asked that the catalog has no price for
    batches: list[BatchRun] = field(default_factory=list)  # one per model asked in batch mode
    concurrency: int = 0
    max_in_flight: int = 0
    failure_samples: list[str] = field(default_factory=list)
    # Free-form graders that need a model: its tokens per grader model ([prompt, completion]) and their price.
    grader_tokens: dict[str, list[int]] = field(default_factory=dict)
    grader_cost_usd: float = 0.0

    @property
    def failed_requests(self) -> int:
        """Failed requests of every model in the round (reused scores have none)."""
        return sum(score.failed_requests for score in self.scores.values())

    @property
    def total_cost_usd(self) -> float:
        """What this round paid, all models together (the grader model's tokens included)."""
        return round(sum(self.cost_usd.values()) + self.grader_cost_usd, 6)


def run_round(
    client: openai_sdk.OpenAI,
    examples: Sequence[Example],
    prompt: Prompt,
    models: Sequence[str],
    known: Mapping[str, ModelScore],
    settings: AskSettings,
    log: Log,
    interrupts: tuple[type[BaseException], ...] = (KeyboardInterrupt,),
) -> Round:
    """Score every model on `examples`, reusing `known` scores unless `settings.force`."""
    models = list(dict.fromkeys(models))
    prompts_sha = prompts_fingerprint(examples, prompt)
    reused = [] if settings.force else [model for model in models if model in known]
    to_ask = [model for model in models if model not in reused]
    result = Round(
        prompts_sha, evaluation_fingerprint(models, prompts_sha),
        {model: known[model] for model in reused}, to_ask, reused, settings.mode,
    )
    what = f"{len(examples)} examples"
    if not to_ask:
        log.info(f"Same models, same {what}: reusing the known scores of {', '.join(reused)} (no API calls).")
        return result
    log.info(
        f"Asking {', '.join(to_ask)} about {what} ({settings.mode})"
        + (f"; reusing the known scores of {', '.join(reused)}." if reused else ".")
    )
    if settings.mode == "batch":
        # One batch per model (a batch asks one model), each named by its model and the prompts.
        fingerprints = {model: evaluation_fingerprint([model], prompts_sha) for model in to_ask}
        scores, result.batches = ask_models_in_batch(
            client, examples, prompt, to_ask, fingerprints, log, settings.poll_interval_seconds,
            force=settings.force, timeout_seconds=settings.timeout_seconds, interrupts=interrupts,
        )
    else:
        scores = ask_models(
            client, examples, prompt, to_ask, settings.concurrency, settings.max_retries, log=log.warning
        )
        result.concurrency, result.max_in_flight = scores.concurrency, scores.max_in_flight
    result.scores.update(scores.models)
    result.scores = {model: result.scores[model] for model in models}  # keep the caller's order
    result.failure_samples = scores.failure_samples
    for model in to_ask:
        score = scores.models[model]
        cost = inference_cost(model, score.prompt_tokens, score.completion_tokens, batch=settings.mode == "batch")
        if cost is None:
            result.unpriced.append(model)
        result.cost_usd[model] = cost or 0.0
    result.grader_tokens = scores.grader_tokens
    for model, (prompt_tokens, completion_tokens) in scores.grader_tokens.items():
        cost = inference_cost(model, prompt_tokens, completion_tokens)
        if cost is None:
            result.unpriced.append(model)
        result.grader_cost_usd += cost or 0.0
    return result


@dataclass(frozen=True)
class Checkpoint:
    """A model a fine-tuning job kept along the way."""

    model: str
    step: int


def job_checkpoints(client: openai_sdk.OpenAI, job_id: str) -> list[Checkpoint]:
    """Every checkpoint the job kept (all pages), in step order."""
    found = [
        Checkpoint(item.fine_tuned_model_checkpoint, int(item.step_number))
        for item in client.fine_tuning.jobs.checkpoints.list(job_id, limit=100)
    ]
    return sorted(found, key=lambda checkpoint: checkpoint.step)


def best_model(scores: Mapping[str, ModelScore], final_model: str) -> str:
    """The most accurate model; a tie goes to the final model (no reason to serve a checkpoint)."""
    best = max(score.accuracy for score in scores.values())
    if scores[final_model].accuracy >= best:
        return final_model
    return next(model for model, score in scores.items() if score.accuracy >= best)
