"""`TuningSettings`: what a task tunes how (base model, hyperparameters, budget), a resource per task.

A resource rather than per-asset config because the cost check on the training files and the
`fine_tuned_model` asset must price and train the very same model and epochs. A task's
`defs.yaml` sets its defaults (`model`, `method`, `max_cost_usd`, `min_runway_days`); run config
(`resources.<key>.config`, `resources.tuning.config` for the Goodreads task) overrides them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field, create_model, model_validator
from pydantic.fields import FieldInfo

from fine_tuning.core.catalog import supported_methods
from fine_tuning.core.graders import GraderError, validate_grader
from fine_tuning.core.lifecycle import DEFAULT_MIN_RUNWAY_DAYS
from fine_tuning.core.method_examples import default_grader
from fine_tuning.core.methods import (
    integrations_problems,
    metadata_problems,
    method_grader,
    method_hyperparameters,
    method_problems,
    method_type,
)
from fine_tuning.core.provider_jobs import job_metadata
from fine_tuning.core.settings import DEFAULT_BASE_MODEL
from fine_tuning.lib.run_settings import CheckedResource, SettingProblem, SettingsError, register_section

SUPERVISED_FIELDS = ("n_epochs", "batch_size", "learning_rate_multiplier")


class TuningSettings(CheckedResource):
    """Base model, hyperparameters and budget.

    A resource rather than per-asset config because the cost check on the training files and
    the `fine_tuned_model` asset must price and train the very same model and epochs. The bounds
    are OpenAI's documented ones (n_epochs 1-50, batch_size 1-256, learning_rate_multiplier > 0,
    suffix up to 64 characters), checked before anything is uploaded.
    """

    run_config_path: ClassVar[str] = "resources.tuning.config"

    base_model: str = Field(
        default=DEFAULT_BASE_MODEL, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="Model to fine-tune (a dated snapshot, an alias, or an ft: model to continue).",
    )
    suffix: str = Field(
        default="goodreads", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
        description="Suffix of the fine-tuned model name: 1-64 letters, digits, '-' or '_' (':' would split the name).",
    )
    seed: int = Field(default=42, ge=0, le=2_147_483_647, description="Provider-side training seed (0-2147483647).")
    n_epochs: int | None = Field(default=None, ge=1, le=50, description="Epochs (1-50); null means 'auto'.")
    batch_size: int | None = Field(default=None, ge=1, le=256, description="Batch size (1-256); null means 'auto'.")
    learning_rate_multiplier: float | None = Field(
        default=None, gt=0,
        description="Learning-rate multiplier (> 0, the API's only bound); null means 'auto'.",
    )
    max_cost_usd: float = Field(
        default=5.0, gt=0,
        description="Training files whose estimated training cost exceeds this (USD, > 0) are blocked; a job billed "
        "by training time (reinforcement) is cancelled when its billed time reaches it.",
    )
    min_runway_days: int = Field(
        default=DEFAULT_MIN_RUNWAY_DAYS, ge=0, le=3650,
        description="Refuse (before uploading) a base model whose training is retired or that shuts down within "
        "this many days: a model fine-tuned from it would stop answering with it.",
    )

    method: dict[str, Any] | None = Field(
        default=None,
        description="The API's `method` object: {type: supervised | dpo | reinforcement, <type>: {hyperparameters: "
        "{...}, grader: {...} (reinforcement)}}, checked against the documented bounds and the model's methods "
        "before anything is spent. n_epochs, batch_size and learning_rate_multiplier above override its "
        "hyperparameters. Null: supervised.",
    )
    grader: dict[str, Any] | None = Field(
        default=None, description="The task's grader (OpenAI's JSON shape) for a reinforcement method that names "
        "none (a free-form task's defaults to its `grader` attribute, its accuracy metric); null: an exact-match "
        "string_check of the answer against the example's reference answer.",
    )
    integrations: list[dict[str, Any]] | None = Field(
        default=None, description="The job's `integrations` (Weights & Biases: [{type: wandb, wandb: {project, "
        "name?, entity?, tags?}}]); null: none.",
    )
    job_metadata: dict[str, str] | None = Field(
        default=None, description="Metadata of the provider job (string pairs, at most 14: the pipeline adds two "
        "to find its jobs again).",
    )

    @model_validator(mode="after")
    def _method_is_documented(self) -> TuningSettings:
        # A model the catalog does not know is the cost check's to refuse (unpriced); one it knows must take the method.
        found = method_problems(self.job_method(), self.base_model if supported_methods(self.base_model) else None)
        found += integrations_problems(self.integrations)
        found += metadata_problems(self.job_metadata, reserved=len(job_metadata("")))
        if found:
            raise SettingsError([
                SettingProblem(f"{self.run_config_path}.{problem.field}", _value_at(self, problem.field), problem.message)
                for problem in found
            ])
        if self.grader is not None:  # a supervised task's grader is checked too (a free-form task's metric)
            try:
                validate_grader(self.grader, "grader")
            except GraderError as error:
                raise SettingsError([SettingProblem(f"{self.run_config_path}.{error.param}", self.grader,
                                                    error.message)]) from None
        return self

    def hyperparameters(self) -> dict[str, Any]:
        """The method's hyperparameters as the API takes them ("auto" where unset); the supervised
        fields set here override the method object's."""
        hyper = {name: "auto" for name in SUPERVISED_FIELDS}
        hyper.update(method_hyperparameters(self.method))
        for name in SUPERVISED_FIELDS:
            if getattr(self, name) is not None:
                hyper[name] = getattr(self, name)
        return hyper

    def method_type(self) -> str:
        """supervised, dpo or reinforcement."""
        return method_type(self.method)

    def job_method(self) -> dict[str, Any]:
        """The `method` argument of `fine_tuning.jobs.create` (the `hyperparameters` one is deprecated)."""
        kind = self.method_type()
        settings: dict[str, Any] = {"hyperparameters": self.hyperparameters()}
        if kind == "reinforcement":
            settings["grader"] = method_grader(self.method) or self.grader or default_grader()
        return {"type": kind, kind: settings}

    def epochs(self) -> int | None:
        """The epochs the job will train (None: the provider's "auto" rule)."""
        value = self.hyperparameters()["n_epochs"]
        return value if isinstance(value, int) else None


def _value_at(settings: TuningSettings, path: str) -> Any:
    """The value a problem's path (e.g. method.dpo.hyperparameters.beta) names, or None."""
    root, *rest = path.split(".")
    value: Any = {"method": settings.job_method(), "integrations": settings.integrations,
                  "metadata": settings.job_metadata}.get(root)
    for part in rest:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def tuning_settings_class(run_config_path: str, defaults: Mapping[str, Any] | None = None) -> type[TuningSettings]:
    """`TuningSettings` checked under a task's run-config path (`resources.<key>.config`), with the task's
    own values (its defs.yaml) as the defaults run config falls back to.

    Dagster builds a resource configured at run time from the run config and the schema's defaults,
    not from the instance's values: without this, a run that overrides only `method` would train
    with the class defaults' suffix and budget instead of the task's.
    """
    changed = {name: value for name, value in (defaults or {}).items() if TuningSettings.model_fields[name].default != value}
    if run_config_path == TuningSettings.run_config_path and not changed:
        return TuningSettings
    name = "TuningSettings_" + "".join(char if char.isalnum() else "_" for char in run_config_path.split(".")[1])
    fields: dict[str, Any] = {}
    for field, value in changed.items():
        base = TuningSettings.model_fields[field]
        fields[field] = (base.annotation, FieldInfo.merge_field_infos(base, default=value))
    cls = create_model(name, __base__=TuningSettings, __doc__=TuningSettings.__doc__, **fields)
    register_section(cls, run_config_path)  # the preflight checks this path with these defaults
    return cls
