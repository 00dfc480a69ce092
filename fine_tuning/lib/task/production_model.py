"""`production_model`: the champion, the model applications should use.

Each materialization records the model in production after this run's decision, so the latest
one is what `python -m fine_tuning.current_model` prints. The decision reads this run's
`fine_tuned_model_accuracy` result (the check is blocking, so it runs first; in a run without
the check, the newest evaluation of the current fine-tuned model): the challenger is promoted
only when the check passed and it beats the champion by at least `min_improvement`
(`core.promotion`). A failed run never gets here and a worse model is not promoted, so neither
changes production. `pin_model` overrides the decision (a rollback), after checking that the
provider has the model.
(No `from __future__ import annotations`: Dagster inspects the real `context` annotation.)
"""

from typing import TYPE_CHECKING, Any, ClassVar

import dagster as dg
import openai as openai_sdk
from dagster_openai import OpenAIResource
from pydantic import Field

from fine_tuning.core.openai_errors import describe_api_error
from fine_tuning.core.promotion import Contest, Decision, decide
from fine_tuning.lib.facts import latest_materialization, latest_metadata
from fine_tuning.lib.run_settings import CheckedConfig, require_valid_run_settings
from fine_tuning.lib.task.config import task_config
from fine_tuning.lib.task.evaluation_history import PastEvaluation, evaluation_of, spending
from fine_tuning.lib.task.keys import TaskKeys

if TYPE_CHECKING:
    from fine_tuning.lib.task.component import FineTuningTask


class ProductionModelConfig(CheckedConfig):
    """Run configuration of `production_model`."""

    run_config_path: ClassVar[str] = "ops.production_model.config"

    pin_model: str | None = Field(
        default=None, min_length=1, max_length=256, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description='Make this model the production model whatever the evaluation says (a rollback), e.g. '
        '"ft:gpt-4o-mini-2024-07-18:org:goodreads:abc123". It must exist on the provider.',
    )
    min_improvement: float = Field(
        default=0.0, ge=0.0, le=1.0,
        description="How much more accurate (0..1) than the production model a challenger must be to replace "
        "it; it must be strictly better in any case, so a tie keeps the production model.",
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _contest(evaluation: PastEvaluation) -> Contest:
    metadata = evaluation.metadata
    return Contest(
        challenger=str(metadata.get("fine_tuned_model") or metadata.get("trained_model")),
        challenger_accuracy=_number(metadata.get("fine_tuned_accuracy")) or 0.0,
        champion=metadata.get("champion_model") or None,
        champion_accuracy=_number(metadata.get("champion_accuracy")),
        check_passed=evaluation.passed,
        check_description=evaluation.description,
    )


def _verify_pin(client: openai_sdk.OpenAI, model: str) -> None:
    """Raise a clear `dg.Failure` unless the provider knows the model."""
    try:
        client.models.retrieve(model)
    except openai_sdk.NotFoundError:
        raise dg.Failure(
            description=f"pin_model {model!r} does not exist on the provider (models.retrieve answered 404): "
            "production is unchanged. Pin a model this account can use (`fine_tuned_model`'s model_name).",
        ) from None
    except openai_sdk.APIError as error:
        raise dg.Failure(
            description=describe_api_error(error, f"checking pin_model {model!r}", client) + "; production is unchanged."
        ) from None


def _decision(
    config: ProductionModelConfig, champion: str | None, trained: str, evaluation: PastEvaluation | None
) -> Decision:
    if config.pin_model:
        return Decision(config.pin_model, False, f"Pinned by run config: {config.pin_model} (was {champion or 'none'}).")
    if evaluation is None:
        keep = f"{champion} stays in production" if champion else "there is no production model yet"
        return Decision(champion, False, f"No accuracy check has evaluated {trained} yet; {keep}.")
    contest = _contest(evaluation)
    if (contest.champion or None) != champion:
        return Decision(
            champion, False,
            f"The accuracy check compared {contest.challenger} with {contest.champion or 'no production model'}, "
            f"but {champion or 'none'} is in production now: re-run the check; {champion or 'nothing'} stays.",
        )
    return decide(contest, config.min_improvement)


def build_production_model(task: "FineTuningTask") -> dg.AssetsDefinition:
    """The task's `production_model` asset (its YAML's `min_improvement` is the run config's default)."""
    keys = task.keys
    config_class = task_config(
        ProductionModelConfig, f"ops.{keys.op('production_model')}.config", min_improvement=task.min_improvement
    )
    command = "python -m fine_tuning.current_model" + (f" --task {task.name}" if keys.prefix else "")

    @dg.asset(
        key=keys.production_model,
        kinds={"openai"},
        group_name=task.model_group(),
        deps=[keys.fine_tuned_model],
        description=(
            "The model in production (the champion). A new fine-tuned model replaces it only when its accuracy "
            "check passed and it beats the champion on the same test prompts by at least min_improvement; "
            f"pin_model rolls back to any existing model. Read it with `{command}`."
        ),
    )
    def production_model(
        context: dg.AssetExecutionContext, config: config_class, openai: OpenAIResource  # type: ignore[valid-type]
    ) -> dg.MaterializeResult:
        """Decide which model is in production after this run and record it."""
        return decide_production(context, config, openai, keys)

    return production_model


def decide_production(
    context: dg.AssetExecutionContext, config: ProductionModelConfig, openai: OpenAIResource, keys: TaskKeys
) -> dg.MaterializeResult:
    """Decide which model is in production after this run and record it."""
    require_valid_run_settings(context)
    previous = latest_materialization(context.instance, keys.production_model)
    champion = str(previous.metadata["model_name"]) if previous and previous.metadata.get("model_name") else None
    trained = str(latest_metadata(context, keys.fine_tuned_model).get("model_name") or "")
    if config.pin_model:
        with openai.get_client(context) as client:
            _verify_pin(client, config.pin_model)
    evaluation = evaluation_of(context.instance, keys, context.run.run_id, trained)
    decision = _decision(config, champion, trained, evaluation)
    context.log.info(decision.reason)
    contest = _contest(evaluation) if evaluation is not None else None
    spent = spending(context.instance, keys, context.run.run_id)
    metadata: dict[str, Any] = {
        "model_name": decision.model_name,
        "promoted": decision.promoted,
        "pinned": bool(config.pin_model),
        "challenger": contest.challenger if contest else (trained or None),
        "previous_model": champion,
        "challenger_accuracy": contest.challenger_accuracy if contest else None,
        "champion_accuracy": contest.champion_accuracy if contest else None,
        "base_accuracy": _number(evaluation.metadata.get("base_accuracy")) if evaluation else None,
        "reason": decision.reason,
        "min_improvement": float(config.min_improvement),
        "evaluation_run_id": evaluation.run_id if evaluation else None,
        "total_cost_usd": spent.total_usd,
        "run_cost_usd": spent.run_usd,
    }
    return dg.MaterializeResult(metadata=metadata)
