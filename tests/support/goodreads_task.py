"""The Goodreads task's definitions, built from its defs.yaml by the FineTuningTask component.

Tests materialize single steps of the chain (with their own resources) as they did when the
steps were module-level definitions; here they get the very objects the code location loads.
"""

from __future__ import annotations

import dagster as dg

from fine_tuning.lib.task.instances import task_definitions, task_named

GOODREADS = task_named("goodreads")
DEFINITIONS = task_definitions("goodreads")
_ASSETS = {key.to_user_string(): assets_def for assets_def in DEFINITIONS.assets for key in assets_def.keys}  # type: ignore[union-attr]
_CHECKS = {check.node_def.name: check for check in DEFINITIONS.asset_checks}  # type: ignore[union-attr]

training_files: dg.AssetsDefinition = _ASSETS["training_file"]
upload_training_file: dg.AssetsDefinition = _ASSETS["upload_training_file"]
upload_validation_file: dg.AssetsDefinition = _ASSETS["upload_validation_file"]
fine_tuned_model: dg.AssetsDefinition = _ASSETS["fine_tuned_model"]
production_model: dg.AssetsDefinition = _ASSETS["production_model"]
fine_tuned_model_accuracy: dg.AssetChecksDefinition = _CHECKS["fine_tuned_model_fine_tuned_model_accuracy"]
FILE_CHECKS: list[dg.AssetChecksDefinition] = [_CHECKS["training_files_checks"]]


def project_job(resources: dict[str, object], job_name: str = "fine_tuning_job") -> dg.JobDefinition:
    """A job of the code location (default: fine_tuning_job, every Goodreads asset and check) with the
    test's resources in place of the location's own (the others, e.g. each task's tuning, kept)."""
    from fine_tuning.definitions import defs

    scoped = dg.Definitions(
        assets=list(defs.assets or []), asset_checks=list(defs.asset_checks or []), jobs=list(defs.jobs or []),
        sensors=list(defs.sensors or []), schedules=list(defs.schedules or []),
        resources={**(defs.resources or {}), **resources},
    )
    return scoped.resolve_job_def(job_name)
