"""What the training files need per fine-tuning method, in a running step.

DPO files pair each training example's true answer with a model's own wrong answer on it: the
production model's, or the base model's before there is one. Those answers are collected with
the evaluation's scoring (`core.evaluation_rounds.run_round`: online or in a resumable batch,
priced), and a model's answers on the same prompts are never asked twice: they are kept in the
training file's metadata (`dpo_answers`) and reused by the next build.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dagster as dg
import duckdb as duckdb_lib

from fine_tuning.core.evaluation_rounds import AskSettings, run_round
from fine_tuning.core.method_examples import Mistakes, failed_answers, mistakes_of
from fine_tuning.core.method_files import IdentifiedRow, rejected_labels
from fine_tuning.core.prompts import Prompt
from fine_tuning.core.scoring import NO_ANSWER, Example, ModelScore, prompts_fingerprint
from fine_tuning.lib.facts import latest_materialization
from fine_tuning.lib.task.evaluation_history import production_model_name

if TYPE_CHECKING:
    from fine_tuning.lib.task.component import FineTuningTask

ANSWERS_KEY = "dpo_answers"


@dataclass
class PreferencePairs:
    """The examples each DPO file pairs, with the label each rejects, and how the answers were had."""

    model: str
    train: dict[str, str]
    validation: dict[str, str]
    mistakes: int
    asked: bool
    cost_usd: float
    stored: dict[str, Any]

    def metadata(self) -> dict[str, Any]:
        """What the training file records about its pairs."""
        return {
            "dpo_answering_model": self.model, "dpo_mistakes": self.mistakes, "dpo_pairs": len(self.train),
            "dpo_answers_asked": self.asked, "dpo_answers_cost_usd": self.cost_usd,
            ANSWERS_KEY: dg.MetadataValue.json(self.stored),
        }


def answering_model(context: Any, task: FineTuningTask, base_model: str) -> str:
    """Whose mistakes a DPO file is made of: the production model, else the base model."""
    return production_model_name(context.instance, task.keys) or base_model


def _known(context: Any, task: FineTuningTask, prompts_sha256: str) -> dict[str, ModelScore]:
    found = latest_materialization(context.instance, task.keys.training_file)
    stored = (found.metadata.get(ANSWERS_KEY) if found else None) or {}
    if not isinstance(stored, dict) or stored.get("prompts_sha256") != prompts_sha256:
        return {}
    return {model: ModelScore.from_json(data) for model, data in (stored.get("scores") or {}).items()
            if isinstance(data, dict) and data.get("failed_requests") == 0 and data.get("answers")}


def preference_pairs(
    context: Any, task: FineTuningTask, client: Any, model: str, prompt: Prompt,
    train: Sequence[IdentifiedRow], validation: Sequence[IdentifiedRow], settings: AskSettings,
) -> PreferencePairs:
    """Ask `model` about the training examples (unless its answers are known) and pair its mistakes."""
    examples = [Example(example_id, content, label) for example_id, content, label in train]
    prompts_sha = prompts_fingerprint(examples, prompt)
    known = _known(context, task, prompts_sha)
    round_ = run_round(client, examples, prompt, [model], known, settings, context.log)
    score = round_.scores[model]
    truths = {example_id: label for example_id, _, label in train}
    if prompt.free_form:
        # Its answers that failed the grader; a pair it passed rejects another example's reference answer.
        mistakes = failed_answers(model, score.answers, score.outcomes, truths, NO_ANSWER)
        choices = sorted(set(truths.values()))
    else:
        mistakes = mistakes_of(model, score.answers, truths, prompt.labels)
        choices = list(prompt.labels)
    context.log.info(
        f"DPO pairs: {model} answered {score.correct} of {score.examples} training examples right"
        f"{' (passed the grader)' if prompt.free_form else ''}; "
        f"{len(mistakes.wrong)} of its mistakes become preference pairs"
        + (" (answers reused, nothing asked)" if not round_.asked else f" (asked, ${round_.total_cost_usd:.4f})")
    )
    held_out = Mistakes(model, {}, mistakes.confusions)
    return PreferencePairs(
        model,
        rejected_labels(train, mistakes, choices),
        rejected_labels(validation, held_out, choices, minimum=len(validation)),
        len(mistakes.wrong),
        bool(round_.asked),
        round_.total_cost_usd,
        {"prompts_sha256": prompts_sha, "scores": {model: score.to_json()}},
    )


def split_rows(conn: duckdb_lib.DuckDBPyConnection, task: FineTuningTask, statement: str, split: str) -> list[IdentifiedRow]:
    """One split's (id, user message, label) rows in file order."""
    rows = conn.execute(statement, {"split": split}).fetchall()
    return [(str(example_id), task.render(fields), str(label)) for example_id, fields, label in rows]
