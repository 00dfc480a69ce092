"""`production_model`: the champion, the model applications should use.

Each materialization records the model in production after this run's decision, so the latest
one is what `python -m fine_tuning.current_model` prints. The decision reads this run's
`fine_tuned_model_accuracy` result (the check is blocking, so it runs first; in a run without
the check, the newest evaluation of the current fine-tuned model): the challenger is promoted
only when the check passed, it beats the champion by at least `min_improvement` and McNemar's
exact test on the prompts only one of them got right gives p below `max_p_value`
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

from fine_tuning.core.azure_deployments import deployment_name
from fine_tuning.core.lifecycle import utc_today
from fine_tuning.core.openai_errors import describe_api_error
from fine_tuning.core.paired_test import DiscordantPairs, discordant_pairs
from fine_tuning.core.promotion import (
    DEFAULT_MAX_P_VALUE,
    DEFAULT_MIN_IMPROVEMENT,
    Contest,
    Decision,
    Thresholds,
    decide,
)
from fine_tuning.core.scoring import ModelScore
from fine_tuning.lib.facts import latest_materialization, latest_metadata
from fine_tuning.lib.lifecycle import deploy_on_azure, lifecycle_metadata, lookup_dates, needs_deployment, provider_name
from fine_tuning.lib.run_settings import CheckedConfig, require_valid_run_settings
from fine_tuning.lib.task.config import task_config
from fine_tuning.lib.task.evaluation_history import PastEvaluation, evaluation_of, spending
from fine_tuning.lib.task.evaluation_metadata import TEST_SCORES_KEY
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
        default=DEFAULT_MIN_IMPROVEMENT, ge=0.0, le=1.0,
        description="How much more accurate (0..1) than the production model a challenger must be to replace "
        "it: the smallest gain worth a model swap; it must be strictly better in any case, so a tie keeps the "
        "production model.",
    )
    max_p_value: float = Field(
        default=DEFAULT_MAX_P_VALUE, gt=0.0, le=1.0,
        description="A challenger replaces the production model only when McNemar's exact test on the test "
        "prompts exactly one of them got right gives p below this (the risk of promoting a model that is no "
        "better); 1.0 turns the test off.",
    )

    def thresholds(self) -> Thresholds:
        """What `core.promotion` asks of a challenger."""
        return Thresholds(min_improvement=self.min_improvement, max_p_value=self.max_p_value)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _outcomes(metadata: dict[str, Any], model: str | None) -> dict[str, bool]:
    """Which test prompts `model` got right, as the check stored its score (empty when unknown)."""
    stored = metadata.get(TEST_SCORES_KEY)
    scores = stored.get("scores") if isinstance(stored, dict) else None
    data = scores.get(model) if isinstance(scores, dict) and model else None
    return ModelScore.from_json(data).outcomes if isinstance(data, dict) else {}


def _pairs(metadata: dict[str, Any], challenger: str, champion: str | None) -> DiscordantPairs | None:
    """The paired test's discordant pairs, or None when either model's answers per prompt are unknown."""
    mine, theirs = _outcomes(metadata, challenger), _outcomes(metadata, champion)
    if not mine or not theirs or mine.keys() != theirs.keys():
        return None
    return discordant_pairs(mine, theirs)


def _contest(evaluation: PastEvaluation) -> Contest:
    metadata = evaluation.metadata
    challenger = str(metadata.get("fine_tuned_model") or metadata.get("trained_model"))
    champion = metadata.get("champion_model") or None
    return Contest(
        challenger=challenger,
        challenger_accuracy=_number(metadata.get("fine_tuned_accuracy")) or 0.0,
        champion=champion,
        champion_accuracy=_number(metadata.get("champion_accuracy")),
        check_passed=evaluation.passed,
        check_description=evaluation.description,
        pairs=_pairs(metadata, challenger, champion),
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
    config: ProductionModelConfig, champion: str | None, trained: str, evaluation: PastEvaluation | None,
    providers: tuple[str | None, str] = (None, ""),
) -> Decision:
    if config.pin_model:
        return Decision(config.pin_model, False, f"Pinned by run config: {config.pin_model} (was {champion or 'none'}).")
    champion_provider, provider = providers
    if champion and champion_provider and champion_provider != provider:
        # Scores from two providers are not a contest on equal terms, and applications would have to
        # switch endpoints: only a pin moves production to another provider, on purpose.
        return Decision(
            champion, False,
            f"{trained or 'The challenger'} was trained on {provider}, {champion} is on {champion_provider}: a "
            f"challenger from another provider is never promoted; pin_model moves production on purpose.",
        )
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
    return decide(contest, config.thresholds())


def build_production_model(task: "FineTuningTask") -> dg.AssetsDefinition:
    """The task's `production_model` asset (its YAML's `min_improvement` and `max_p_value` are the run config's defaults)."""
    keys = task.keys
    config_class = task_config(
        ProductionModelConfig, f"ops.{keys.op('production_model')}.config",
        min_improvement=task.min_improvement, max_p_value=task.max_p_value,
    )
    command = "python -m fine_tuning.current_model" + (f" --task {task.name}" if keys.prefix else "")

    @dg.asset(
        key=keys.production_model,
        kinds={"openai"},
        group_name=task.model_group(),
        deps=[keys.fine_tuned_model],
        description=(
            "The model in production (the champion). A new fine-tuned model replaces it only when its accuracy "
            "check passed and it beats the champion on the same test prompts by at least min_improvement, with "
            "McNemar's exact test below max_p_value (no luck); pin_model rolls back to any existing model. Read it "
            f"with `{command}`."
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
    provider = provider_name(openai)
    recorded = previous.metadata if previous else {}
    champion_provider = str(recorded["provider"]) if recorded.get("provider") else None
    decision = _decision(config, champion, trained, evaluation, (champion_provider, provider))
    context.log.info(decision.reason)
    contest = _contest(evaluation) if evaluation is not None else None
    spent = spending(context.instance, keys, context.run.run_id)
    # The decision first, then the numbers the UI plots side by side, then the context of the decision.
    metadata: dict[str, Any] = {
        "model_name": decision.model_name,
        "promoted": decision.promoted,
        "reason": decision.reason,
        "challenger_accuracy": contest.challenger_accuracy if contest else None,
        "champion_accuracy": contest.champion_accuracy if contest else None,
        "base_accuracy": _number(evaluation.metadata.get("base_accuracy")) if evaluation else None,
        "p_value": decision.p_value,
        "run_cost_usd": spent.run_usd,
        "total_cost_usd": spent.total_usd,
        "challenger": contest.challenger if contest else (trained or None),
        "previous_model": champion,
        "discordant_pairs": dg.MetadataValue.json(decision.pairs.to_json()) if decision.pairs else None,
        "pinned": bool(config.pin_model),
        "thresholds": dg.MetadataValue.json(
            {"min_improvement": config.min_improvement, "max_p_value": config.max_p_value}
        ),
        "evaluation_run_id": evaluation.run_id if evaluation else None,
        "challenger_provider": provider,
        "champion_provider": champion_provider,
    }
    kept_elsewhere = decision.model_name == champion and not config.pin_model and champion_provider not in (None, provider)
    if kept_elsewhere:  # this run's client cannot see the other provider: its last known facts stand
        metadata.update({key: recorded.get(key) for key in ("shutdown_date", "days_until_shutdown", "deployment")})
        metadata["provider"] = champion_provider
    elif decision.model_name:
        with openai.get_client(context) as client:
            dates, _, _ = lookup_dates(client, decision.model_name, provider)
        metadata.update(lifecycle_metadata(dates, utc_today()))
        if needs_deployment(provider):
            if config.pin_model:  # a pinned model may never have been deployed here
                deploy_on_azure(openai, decision.model_name, existed_before=True, log=context.log)
            metadata["deployment"] = deployment_name(decision.model_name)  # what applications pass as `model`
    else:
        metadata.update({"shutdown_date": None, "days_until_shutdown": None, "provider": provider})
    return dg.MaterializeResult(metadata=metadata)
