"""`fine_tuned_model_accuracy`: the challenger, the production model and the base on held-out books.

The challenger is this run's fine-tuned model (or, with `evaluate_checkpoints`, whichever of the
job's checkpoints and its final model scores best on the validation split). It is scored with
the current production model (the champion, when there is one) and its base model on the same
test prompts; `production_model` then decides, from this check's result, whether it takes over.
Asking and scoring are Dagster-free (`core.scoring`, `core.batch_scoring`,
`core.evaluation_rounds`); scores already known for these prompts are reused, so an unchanged
run asks nothing. The check is blocking only to order `production_model` after it: its
severity is WARN, so a worse model never stops the run, it just is not promoted.
(No `from __future__ import annotations`: Dagster inspects the real `context` annotation.)
"""

from typing import TYPE_CHECKING, ClassVar, Literal

import dagster as dg
import duckdb as duckdb_lib
import openai as openai_sdk
from dagster_openai import OpenAIResource
from pydantic import Field

from fine_tuning.core.evaluation_rounds import AskSettings, Round, best_model, job_checkpoints, run_round
from fine_tuning.core.example_files import SplitError
from fine_tuning.core.graders import GraderError
from fine_tuning.core.grading import check_grader_runs
from fine_tuning.core.promotion import format_p
from fine_tuning.core.prompts import Prompt
from fine_tuning.core.provider_jobs import Log
from fine_tuning.core.scoring import Example, prompts_fingerprint
from fine_tuning.lib.facts import latest_metadata
from fine_tuning.lib.failures import api_errors, provider_job_failures
from fine_tuning.lib.lifecycle import provider_name
from fine_tuning.lib.run_settings import CheckedConfig, require_valid_run_settings
from fine_tuning.lib.sql import sql_statements
from fine_tuning.lib.task.config import task_config
from fine_tuning.lib.task.evaluation_history import (
    PastEvaluation,
    known_scores,
    past_evaluations,
    same_provider_champion,
)
from fine_tuning.lib.task.evaluation_metadata import (
    TEST_SCORES_KEY,
    VALIDATION_SCORES_KEY,
    Roles,
    check_metadata,
    paired_test,
)
from fine_tuning.lib.task.fine_tuned_model import RUN_INTERRUPTS
from fine_tuning.lib.task.source import SourceError
from fine_tuning.lib.task.tuning import TuningSettings
from fine_tuning.lib.warehouse import connection, missing_tables

if TYPE_CHECKING:
    from fine_tuning.lib.task.component import FineTuningTask

SQL = sql_statements(__package__, "accuracy_check")


class EvaluationConfig(CheckedConfig):
    """Run configuration of `fine_tuned_model_accuracy`."""

    run_config_path: ClassVar[str] = "ops.fine_tuned_model_fine_tuned_model_accuracy.config"

    concurrency: int = Field(
        default=16, ge=1, le=256, description="Most chat requests in flight at once, 1-256 (online mode)."
    )
    max_examples: int | None = Field(
        default=None, ge=1, description="Evaluate only the first N books of each split (by book_id), N >= 1; null = all."
    )
    max_retries: int = Field(
        default=5, ge=0, le=20,
        description="Client retries per request on 429/5xx/connection errors, 0-20 (honours retry-after).",
    )
    force_evaluation: bool = Field(
        default=False,
        description="Ask every model again (and submit a new batch) even when its answers to these prompts are known.",
    )
    mode: Literal["online", "batch"] = Field(
        default="online",
        description="online: chat requests now, bounded by concurrency. batch: one Batch API batch per model at half the "
        "price, outside the rate limits, waited for like the fine-tuning job (resumed after a crash, "
        "cancelled when the run is terminated).",
    )
    evaluate_checkpoints: bool = Field(
        default=False,
        description="Score each of the job's checkpoints and its final model on the validation split; the best "
        "one is the challenger.",
    )
    poll_interval_seconds: float = Field(
        default=10.0, ge=0.1, le=3600, description="Seconds between batch status polls, 0.1-3600 (jittered)."
    )
    timeout_hours: float | None = Field(
        default=None, gt=0, le=720,
        description="Stop waiting for a batch after this long, up to 720 h (it keeps going; the next run attaches).",
    )

    def ask_settings(self) -> AskSettings:
        """How `core.evaluation_rounds` asks the models."""
        return AskSettings(
            mode=self.mode, concurrency=self.concurrency, max_retries=self.max_retries,
            poll_interval_seconds=self.poll_interval_seconds,
            timeout_seconds=self.timeout_hours * 3600 if self.timeout_hours else None,
            force=self.force_evaluation,
        )


def load_examples(
    conn: duckdb_lib.DuckDBPyConnection, task: "FineTuningTask", split: str, max_examples: int | None = None
) -> list[Example]:
    """The examples of one split of the task's splits table, by id, with their rendered prompts
    (after `task.open_examples`)."""
    rows = conn.execute(task.state_sql(SQL["split_examples"]), {"split": split, "limit": max_examples}).fetchall()
    return [Example(str(example_id), task.render(fields), str(label or "")) for example_id, fields, label in rows]


def load_test_examples(
    conn: duckdb_lib.DuckDBPyConnection, task: "FineTuningTask", max_examples: int | None = None
) -> tuple[list[Example], Prompt]:
    """The test split and the task's prompt (its labels in order)."""
    prompt = task.open_examples(conn)
    if missing_tables(conn, [task.splits_table_name()]):
        return [], prompt
    return load_examples(conn, task, "test", max_examples), prompt


def _choose_challenger(
    client: openai_sdk.OpenAI, job_id: str, trained: str, validation: list[Example], prompt: Prompt,
    history: list[PastEvaluation], settings: AskSettings, log: Log,
) -> tuple[str, Round | None]:
    """The final model, or the best of it and its job's checkpoints on the validation split."""
    if not job_id:
        log.warning("fine_tuned_model recorded no job_id: its checkpoints cannot be listed; the final model competes.")
        return trained, None
    if not validation:
        log.warning("The validation split is empty: the final model competes without its checkpoints.")
        return trained, None
    with api_errors(f"listing the checkpoints of job {job_id}", client):
        checkpoints = job_checkpoints(client, job_id)
    # Later steps first, so a tie goes to the final model, then to the later checkpoint.
    candidates = [trained, *(checkpoint.model for checkpoint in reversed(checkpoints))]
    log.info(f"Scoring {len(candidates)} candidates (final model and {len(checkpoints)} checkpoints) on "
             f"{len(validation)} validation books.")
    known = known_scores(history, VALIDATION_SCORES_KEY, prompts_fingerprint(validation, prompt))
    selection = run_round(client, validation, prompt, candidates, known, settings, log, RUN_INTERRUPTS)
    best = best_model(selection.scores, trained)
    log.info(f"Best on validation: {best} ({selection.scores[best].accuracy:.1%}).")
    return best, selection


def _verdict(roles: Roles, test: Round) -> tuple[bool, str]:
    challenger, base = test.scores[roles.challenger], test.scores[roles.base]
    worse = challenger.accuracy < base.accuracy
    champion = ""
    pairs = paired_test(roles, test)
    if roles.champion and pairs is not None:
        champion = (f", production model {roles.champion} {test.scores[roles.champion].accuracy:.1%} "
                    f"(McNemar p = {format_p(pairs.p_value)})")
    graded = ""
    if challenger.mean_grade is not None and base.mean_grade is not None:
        graded = f" (answers passing the grader; mean grade {challenger.mean_grade:.3f} vs {base.mean_grade:.3f})"
    summary = (
        f"challenger {roles.challenger} {challenger.accuracy:.1%} vs base {base.accuracy:.1%}{champion}{graded} "
        f"on {challenger.examples} test examples; {test.failed_requests} failed requests (counted as wrong)"
    )
    if not test.asked:
        summary = f"Reused the evaluation of these models on these test prompts: {summary}"
    return not worse, ("The fine-tuned model is worse than its base: " if worse else "") + summary


def build_accuracy_check(task: "FineTuningTask") -> dg.AssetChecksDefinition:
    """The task's `fine_tuned_model_accuracy` check."""
    keys = task.keys
    config_class = task_config(EvaluationConfig, f"ops.{keys.check_op('fine_tuned_model', 'fine_tuned_model_accuracy')}.config")

    @dg.asset_check(
        asset=keys.fine_tuned_model,
        name="fine_tuned_model_accuracy",
        description=(
            "Accuracy of the challenger (this run's fine-tuned model or its best checkpoint), the production "
            "model and the base model on the held-out test split, same prompt, strict json_schema answers; "
            "warns when the challenger is worse than its base. Blocking only so production_model waits for it "
            "(severity WARN never stops the run)."
        ),
        blocking=True,
        required_resource_keys={"openai", keys.tuning_resource, task.duckdb_resource_key()},
        pool=task.provider_job_pool(),  # batch mode creates provider batch jobs
    )
    def fine_tuned_model_accuracy(context: dg.AssetCheckExecutionContext, config: config_class) -> dg.AssetCheckResult:  # type: ignore[valid-type]
        """Score the challenger, the production model and the base model on every test example."""
        return evaluate(context, config, context.resources.openai, getattr(context.resources, keys.tuning_resource), task)

    return fine_tuned_model_accuracy


def evaluate(
    context: dg.AssetCheckExecutionContext, config: EvaluationConfig, openai: OpenAIResource, tuning: TuningSettings,
    task: "FineTuningTask",
) -> dg.AssetCheckResult:
    """Score the challenger, the production model and the base model on every test example."""
    keys = task.keys
    require_valid_run_settings(context)
    produced = latest_metadata(context, keys.fine_tuned_model)
    trained = str(produced.get("model_name") or "")
    if not trained:
        raise dg.Failure(description="The latest fine_tuned_model materialization has no model_name metadata.")
    # Compare with the model this one was actually trained from, even if the tuning config has changed.
    base_model = str(produced.get("base_model") or tuning.base_model)
    with connection(task.duckdb(context)) as conn:
        try:
            examples, prompt = load_test_examples(conn, task, config.max_examples)
        except (SourceError, SplitError) as error:
            raise dg.Failure(description=f"Cannot read the test examples: {error}") from None
        validation = load_examples(conn, task, "validation", config.max_examples) if config.evaluate_checkpoints else []
    if not examples:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"No test examples: {task.splits_table_name()} has no 'test' rows joined to "
            f"{task.source_query.described()}.",
            metadata={"eval_examples": 0, "trained_model": trained},
        )
    settings = config.ask_settings()
    history = [] if config.force_evaluation else past_evaluations(context.instance, keys)
    with openai.get_client(context) as client, provider_job_failures():
        if prompt.grading is not None:
            try:
                check_grader_runs(client, prompt.grading)
            except GraderError as error:
                raise dg.Failure(description=f"Cannot grade the answers: {error}") from None
        challenger, selection = trained, None
        if config.evaluate_checkpoints:
            job_id = str(produced.get("job_id") or "")
            challenger, selection = _choose_challenger(
                client, job_id, trained, validation, prompt, history, settings, context.log
            )
        roles = Roles(challenger, same_provider_champion(context.instance, keys, provider_name(openai)), base_model, trained)
        known = known_scores(history, TEST_SCORES_KEY, prompts_fingerprint(examples, prompt))
        test = run_round(client, examples, prompt, roles.models(), known, settings, context.log, RUN_INTERRUPTS)
    passed, description = _verdict(roles, test)
    context.log.info(description)
    return dg.AssetCheckResult(
        passed=passed, severity=dg.AssetCheckSeverity.WARN, description=description,
        metadata=check_metadata(roles, test, prompt.labels, selection, prompt.grading),
    )
