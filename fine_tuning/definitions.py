"""The Dagster code location: every asset, check, job, schedule and resource of the pipeline."""

from __future__ import annotations

import dagster as dg

from fine_tuning import (
    evaluation,
    features,
    file_checks,
    ingestion,
    openai_job,
    training_files,
    uploads,
)
from fine_tuning.automation import fine_tuning_job, retune_schedule
from fine_tuning.resources import build_resources

_ASSET_MODULES = [ingestion, features, training_files, uploads, openai_job]
_CHECK_MODULES = [file_checks, evaluation]

defs = dg.Definitions(
    assets=dg.load_assets_from_modules(_ASSET_MODULES),
    asset_checks=dg.load_asset_checks_from_modules(_CHECK_MODULES),
    jobs=[fine_tuning_job],
    schedules=[retune_schedule],
    resources=build_resources(),
)
