"""Metadata of `fine_tuned_model_accuracy`: what a person reads first, then what later steps reuse.

Roles: `fine_tuned` (the challenger), `champion` (the production model it competes with) and
`base`. A handful of plain numbers the UI plots over time (accuracies, macro-F1s, examples,
failures, tokens, cost), the per-label metrics and the confusion matrices as markdown tables
(free-form: the mean grades, and the grade distribution and histogram tables instead),
every other figure in one `details` JSON entry; the scores themselves (with which prompts each
model got right) are stored as JSON, keyed by the prompts' fingerprint, for later evaluations to
reuse and for `production_model`'s paired test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from fine_tuning.core.evaluation_rounds import Round
from fine_tuning.core.grade_distribution import distribution_table, grade_distribution, histogram_table
from fine_tuning.core.grading import Grading, grade_range
from fine_tuning.core.label_metrics import macro_f1, per_label_metrics
from fine_tuning.core.markdown import markdown_table
from fine_tuning.core.paired_test import DiscordantPairs, discordant_pairs
from fine_tuning.core.score_tables import confusion_matrices, models_table, per_label_table
from fine_tuning.core.scoring import ModelScore

TEST_SCORES_KEY = "model_scores"
VALIDATION_SCORES_KEY = "validation_scores"
EVALUATION_FINGERPRINT_KEY = "evaluation_fingerprint"
SPENT_USD_KEY = "spent_usd"  # what the check paid this run (checkpoint selection included); 0.0 when reused
SPENT_TOKENS_KEY = "spent_tokens"
DETAILS_KEY = "details"
FAILED_REQUESTS_KEY = "failed_requests"  # in the details: requests that failed after every retry


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


def _role_details(roles: Roles, test: Round) -> dict[str, Any]:
    """Failures, tokens and cost per role; a model's cost is what this run paid for its answers (0.0 when
    they were reused), counted once under its first role when it plays two (champion = challenger)."""
    details: dict[str, Any] = {}
    charged: set[str] = set()
    for role, model in roles.by_role():
        score = test.scores[model]
        details[f"{role}_failed_requests"] = int(score.failed_requests)
        details[f"{role}_prompt_tokens"] = int(score.prompt_tokens)
        details[f"{role}_completion_tokens"] = int(score.completion_tokens)
        details[f"{role}_cost_usd"] = 0.0 if model in charged else float(test.cost_usd.get(model, 0.0))
        charged.add(model)
    return details


def paired_test(roles: Roles, test: Round) -> DiscordantPairs | None:
    """The challenger against the production model on the same prompts (None without a production model)."""
    if not roles.champion or roles.champion == roles.challenger:
        return None
    return discordant_pairs(test.scores[roles.challenger].outcomes, test.scores[roles.champion].outcomes)


def _details(roles: Roles, test: Round, pairs: DiscordantPairs | None) -> dict[str, Any]:
    """What the check found besides the plotted numbers and the tables: one JSON entry."""
    distinct = [test.scores[model] for model in roles.models()]
    prompt_tokens = sum(score.prompt_tokens for score in distinct)
    return {
        "accuracy_note": "Accuracy is over all test examples; failed requests and unparseable answers count as wrong.",
        FAILED_REQUESTS_KEY: int(sum(score.failed_requests for score in distinct)),
        "paired_test": {"p_value": pairs.p_value, **pairs.to_json()} if pairs else None,
        "challenger_is_checkpoint": roles.challenger != roles.trained,
        "unparseable_answers": int(sum(score.unparseable for score in distinct)),
        "prompt_tokens": int(prompt_tokens),
        "completion_tokens": int(sum(score.completion_tokens for score in distinct)),
        **_role_details(roles, test),
        "test_cost_usd": float(test.total_cost_usd),
        **({"grader_tokens": test.grader_tokens, "grader_cost_usd": round(test.grader_cost_usd, 6)}
           if test.grader_tokens else {}),
        "unpriced_models": test.unpriced,
        "mode": test.mode,
        "batch_ids": {run.model: run.batch_id for run in test.batches},
        "batches_submitted": sum(1 for run in test.batches if not run.reused),
        "batches_reused": sum(1 for run in test.batches if run.reused),
        "concurrency": int(test.concurrency),
        "max_in_flight": int(test.max_in_flight),
        "asked_models": test.asked,
        "reused_models": test.reused,
    }


def _label_metadata(
    columns: Sequence[tuple[str, ModelScore]], challenger: ModelScore, champion: ModelScore | None, base: ModelScore,
    categories: Sequence[str],
) -> dict[str, Any]:
    """A labelled task's macro-F1s, per-label metrics and confusion matrices."""
    return {
        "macro_f1_base": _macro_f1(base, categories),
        "macro_f1_champion": _macro_f1(champion, categories) if champion is not None else None,
        "macro_f1_fine_tuned": _macro_f1(challenger, categories),
        "per_label_metrics": dg.MetadataValue.md(per_label_table(columns, categories)),
        "confusion_matrix": dg.MetadataValue.md(
            confusion_matrices([column for column in columns if column[0] != "base"], categories)
        ),
    }


def _grade_metadata(
    columns: Sequence[tuple[str, ModelScore]], challenger: ModelScore, champion: ModelScore | None, base: ModelScore,
    grading: Grading,
) -> dict[str, Any]:
    """A free-form task's mean grades (numbers the UI plots), its pass threshold, and the grade
    distribution and histogram of each model as markdown tables (no confusion matrix: no label set)."""
    low, high = grade_range(grading.grader)
    grades = [(role, list(score.grades.values())) for role, score in columns if score.grades]
    if grades:  # a multi formula may leave [0, 1]: the histogram widens to hold every grade
        low = min(low, *(min(values) for _, values in grades))
        high = max(high, *(max(values) for _, values in grades))
    return {
        "mean_grade_base": _mean(base),
        "mean_grade_champion": _mean(champion) if champion is not None else None,
        "mean_grade_fine_tuned": _mean(challenger),
        "pass_threshold": float(grading.pass_threshold),
        "grade_distribution": dg.MetadataValue.md(distribution_table(
            [(role, grade_distribution(values, grading.pass_threshold)) for role, values in grades]
        )) if grades else None,
        "grade_histogram": dg.MetadataValue.md(histogram_table(grades, low, high)) if grades else None,
        "grader": dg.MetadataValue.json(grading.grader),
    }


def _mean(score: ModelScore) -> float | None:
    mean = score.mean_grade
    return round(mean, 6) if mean is not None else None


def check_metadata(
    roles: Roles, test: Round, categories: Sequence[str], selection: Round | None = None,
    grading: Grading | None = None,
) -> dict[str, Any]:
    """Everything the accuracy check records: a few numbers to plot, then tables, then one JSON of details
    (free-form, with `grading`: mean grades and grade distributions instead of label metrics)."""
    challenger, base = test.scores[roles.challenger], test.scores[roles.base]
    champion = test.scores[roles.champion] if roles.champion else None
    distinct = [test.scores[model] for model in roles.models()]
    columns = [("challenger", challenger)]
    if champion is not None and roles.champion != roles.challenger:
        columns.append(("production", champion))
    columns.append(("base", base))
    pairs = paired_test(roles, test)
    spent = test.total_cost_usd + (selection.total_cost_usd if selection else 0.0)
    details = _details(roles, test, pairs)
    if selection is not None:
        details["checkpoint_selection"] = _selection_details(selection, roles)
    if grading is not None:
        details["accuracy_note"] = (f"Accuracy is the share of all test examples whose answer's grade is at least "
                                    f"{grading.pass_threshold}; failed requests and empty answers grade 0.")
        quality = _grade_metadata(columns, challenger, champion, base, grading)
    else:
        quality = _label_metadata(columns, challenger, champion, base, categories)
    # The UI lists metadata and plots in alphabetical order, so the names keep related numbers together:
    # the accuracies (with eval_examples, their denominator), the macro-F1s, then what was spent.
    return {
        "base_accuracy": float(base.accuracy),
        "champion_accuracy": float(champion.accuracy) if champion is not None else None,
        "eval_examples": int(challenger.examples),
        "fine_tuned_accuracy": float(challenger.accuracy),
        **{key: value for key, value in quality.items() if key.startswith(("macro_f1", "mean_grade"))},
        SPENT_TOKENS_KEY: int(sum(score.prompt_tokens + score.completion_tokens for score in distinct)
                              + sum(sum(tokens) for tokens in test.grader_tokens.values())),
        SPENT_USD_KEY: round(spent, 6),
        "fine_tuned_model": roles.challenger,
        "champion_model": roles.champion,
        "base_model": roles.base,
        "trained_model": roles.trained,
        **{key: value for key, value in quality.items()
           if not key.startswith(("macro_f1", "mean_grade")) and value is not None},
        "models": dg.MetadataValue.md(models_table(
            [(role, test.scores[model], test.cost_usd.get(model)) for role, model in roles.by_role()]
        )),
        **({"checkpoint_scores": dg.MetadataValue.md(_selection_table(selection, roles))} if selection else {}),
        "reused_evaluation": not test.asked,
        DETAILS_KEY: dg.MetadataValue.json(details),
        EVALUATION_FINGERPRINT_KEY: test.fingerprint,
        TEST_SCORES_KEY: dg.MetadataValue.json(stored_scores(test)),
        **({VALIDATION_SCORES_KEY: dg.MetadataValue.json(stored_scores(selection))} if selection else {}),
    }


def _macro_f1(score: ModelScore, categories: Sequence[str]) -> float:
    return round(macro_f1(per_label_metrics(score, categories)), 6)


def _selection_table(selection: Round, roles: Roles) -> str:
    """Every checkpoint candidate's validation accuracy, the challenger marked."""
    rows = [
        (model, "final" if model == roles.trained else "checkpoint", f"{score.accuracy:.1%}",
         score.failed_requests, "<- challenger" if model == roles.challenger else "")
        for model, score in selection.scores.items()
    ]
    return markdown_table(("model", "kind", "validation accuracy", "failed", ""), rows, align="llrrl")


def _selection_details(selection: Round, roles: Roles) -> dict[str, Any]:
    """What choosing among the job's checkpoints on the validation split found and cost."""
    return {
        "candidates": len(selection.scores),
        "validation_examples": int(selection.scores[roles.trained].examples),
        "challenger_validation_accuracy": float(selection.scores[roles.challenger].accuracy),
        "final_model_validation_accuracy": float(selection.scores[roles.trained].accuracy),
        "cost_usd": float(selection.total_cost_usd),
        "reused": not selection.asked,
        "batch_ids": {run.model: run.batch_id for run in selection.batches},
    }
