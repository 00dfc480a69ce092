"""Metadata of `fine_tuned_model_accuracy`: every model's accuracy, tokens and cost by role.

Roles: `fine_tuned` (the challenger), `champion` (the production model it competes with) and
`base`. Numbers are plain ints and floats so Dagster plots them over time; the scores
themselves are stored as JSON, keyed by the prompts' fingerprint, for later evaluations to reuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from fine_tuning.core.evaluation_rounds import Round
from fine_tuning.core.markdown import markdown_table
from fine_tuning.core.score_tables import confusion_table, models_table, per_category_table

TEST_SCORES_KEY = "model_scores"
VALIDATION_SCORES_KEY = "validation_scores"
EVALUATION_FINGERPRINT_KEY = "evaluation_fingerprint"


@dataclass(frozen=True)
class Roles:
    """Who competes: the challenger, the production model (if any), their base; what was trained."""

    challenger: str
    champion: str | None
    base: str
    trained: str  # fine_tuned_model's model_name (the challenger unless a checkpoint won)

    def models(self) -> list[str]:
        """The distinct models to score, challenger first."""
        return list(dict.fromkeys(m for m in (self.challenger, self.champion, self.base) if m))

    def by_role(self) -> list[tuple[str, str]]:
        """(role, model) for every role that has a model."""
        roles = [("fine_tuned", self.challenger), ("champion", self.champion), ("base", self.base)]
        return [(role, model) for role, model in roles if model]


def stored_scores(result: Round) -> dict[str, Any]:
    """The round's scores as JSON, keyed by its prompts' fingerprint (what later rounds reuse)."""
    return {"prompts_sha256": result.prompts_sha256, "scores": {m: s.to_json() for m, s in result.scores.items()}}


def _role_metadata(roles: Roles, test: Round) -> dict[str, Any]:
    """Tokens and cost per role; a model's cost is what this run paid for its answers (0.0 when
    they were reused), counted once under its first role when it plays two (champion = challenger)."""
    metadata: dict[str, Any] = {}
    charged: set[str] = set()
    for role, model in roles.by_role():
        score = test.scores[model]
        metadata[f"{role}_prompt_tokens"] = int(score.prompt_tokens)
        metadata[f"{role}_completion_tokens"] = int(score.completion_tokens)
        metadata[f"{role}_cost_usd"] = 0.0 if model in charged else float(test.cost_usd.get(model, 0.0))
        charged.add(model)
    return metadata


def check_metadata(roles: Roles, test: Round, categories: Sequence[str]) -> dict[str, Any]:
    """Everything the accuracy check records about the test round."""
    challenger, base = test.scores[roles.challenger], test.scores[roles.base]
    champion = test.scores[roles.champion] if roles.champion else None
    distinct = [test.scores[model] for model in roles.models()]
    columns = [("challenger", challenger)]
    if champion is not None and roles.champion != roles.challenger:
        columns.append(("production", champion))
    columns.append(("base", base))
    prompt_tokens = sum(score.prompt_tokens for score in distinct)
    completion_tokens = sum(score.completion_tokens for score in distinct)
    return {
        "fine_tuned_accuracy": float(challenger.accuracy),
        "base_accuracy": float(base.accuracy),
        "champion_accuracy": float(champion.accuracy) if champion is not None else None,
        "eval_examples": int(challenger.examples),
        "fine_tuned_model": roles.challenger,
        "trained_model": roles.trained,
        "challenger_is_checkpoint": roles.challenger != roles.trained,
        "champion_model": roles.champion,
        "base_model": roles.base,
        "accuracy_note": "Accuracy is over all test examples; failed requests and unparseable answers count as wrong.",
        "per_category_accuracy": dg.MetadataValue.md(per_category_table(columns, categories)),
        "confusions": dg.MetadataValue.md("\n\n".join(confusion_table(score) for _, score in columns)),
        "models": dg.MetadataValue.md(models_table(
            [(role, test.scores[model], test.cost_usd.get(model)) for role, model in roles.by_role()]
        )),
        "failed_requests": int(sum(score.failed_requests for score in distinct)),
        "fine_tuned_failed_requests": int(challenger.failed_requests),
        "champion_failed_requests": int(champion.failed_requests) if champion is not None else 0,
        "base_failed_requests": int(base.failed_requests),
        "unparseable_answers": int(sum(score.unparseable for score in distinct)),
        "prompt_tokens": int(prompt_tokens),
        "completion_tokens": int(completion_tokens),
        "total_tokens": int(prompt_tokens + completion_tokens),
        **_role_metadata(roles, test),
        "test_cost_usd": float(test.total_cost_usd),
        "unpriced_models": dg.MetadataValue.json(test.unpriced),
        "mode": test.mode,
        "batch_ids": dg.MetadataValue.json({run.model: run.batch_id for run in test.batches}),
        "batches_submitted": sum(1 for run in test.batches if not run.reused),
        "batches_reused": sum(1 for run in test.batches if run.reused),
        "concurrency": int(test.concurrency),
        "max_in_flight": int(test.max_in_flight),
        EVALUATION_FINGERPRINT_KEY: test.fingerprint,
        "reused_evaluation": not test.asked,
        "asked_models": dg.MetadataValue.json(test.asked),
        "reused_models": dg.MetadataValue.json(test.reused),
        TEST_SCORES_KEY: dg.MetadataValue.json(stored_scores(test)),
    }


def selection_metadata(selection: Round, roles: Roles) -> dict[str, Any]:
    """What choosing among the job's checkpoints on the validation split found and cost."""
    rows = [
        (model, "final" if model == roles.trained else "checkpoint", f"{score.accuracy:.1%}",
         score.failed_requests, "<- challenger" if model == roles.challenger else "")
        for model, score in selection.scores.items()
    ]
    table = markdown_table(("model", "kind", "validation accuracy", "failed", ""), rows, align="llrrl")
    return {
        "checkpoint_candidates": len(selection.scores),
        "checkpoint_scores": dg.MetadataValue.md(table),
        "validation_examples": int(selection.scores[roles.trained].examples),
        "challenger_validation_accuracy": float(selection.scores[roles.challenger].accuracy),
        "final_model_validation_accuracy": float(selection.scores[roles.trained].accuracy),
        "checkpoint_selection_cost_usd": float(selection.total_cost_usd),
        "checkpoint_selection_reused": not selection.asked,
        "checkpoint_selection_batch_ids": dg.MetadataValue.json({run.model: run.batch_id for run in selection.batches}),
        VALIDATION_SCORES_KEY: dg.MetadataValue.json(stored_scores(selection)),
    }
