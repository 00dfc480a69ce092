"""The Goodreads task's definitions, built from its defs.yaml by the FineTuningTask component.

Tests materialize single steps of the chain (with their own resources) as they did when the
steps were module-level definitions; here they get the very objects the code location loads.
"""

from __future__ import annotations

import dagster as dg

from fine_tuning.lib.task.instances import task_named, task_steps

GOODREADS = task_named("goodreads")
STEPS = task_steps("goodreads")

training_files: dg.AssetsDefinition = STEPS["training_file"]  # type: ignore[assignment]
upload_training_file: dg.AssetsDefinition = STEPS["upload_training_file"]  # type: ignore[assignment]
upload_validation_file: dg.AssetsDefinition = STEPS["upload_validation_file"]  # type: ignore[assignment]
fine_tuned_model: dg.AssetsDefinition = STEPS["fine_tuned_model"]  # type: ignore[assignment]
production_model: dg.AssetsDefinition = STEPS["production_model"]  # type: ignore[assignment]
fine_tuned_model_accuracy: dg.AssetChecksDefinition = STEPS["fine_tuned_model_fine_tuned_model_accuracy"]  # type: ignore[assignment]
FILE_CHECKS: list[dg.AssetChecksDefinition] = [STEPS["training_files_checks"]]  # type: ignore[list-item]


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
