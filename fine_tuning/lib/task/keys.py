"""Every name a task's definitions go by (asset and check keys, op names, resources, files, tables), from one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from fine_tuning.core.settings import files_dir

TRAINING_FILE_NAME = "training.jsonl"
VALIDATION_FILE_NAME = "validation.jsonl"


@dataclass(frozen=True)
class TaskKeys:
    """The keys and names of one task. An unprefixed task (the Goodreads one) keeps the project's
    original names: its resources are `duckdb` and `tuning`, its files sit directly in files_dir()."""

    name: str
    prefix: tuple[str, ...]

    def asset(self, name: str) -> dg.AssetKey:
        """The task's asset `name` under its key prefix."""
        return dg.AssetKey([*self.prefix, name])

    def check(self, asset_name: str, check_name: str) -> dg.AssetCheckKey:
        """The check `check_name` on the task's asset `asset_name`."""
        return dg.AssetCheckKey(self.asset(asset_name), check_name)

    def op(self, name: str) -> str:
        """The op name of a step: the asset's key as a Python identifier (`a__b` under a prefix)."""
        return self.asset(name).to_python_identifier()

    def check_op(self, asset_name: str, check_name: str) -> str:
        """The op name Dagster gives an `@asset_check` on `asset_name`."""
        return f"{self.op(asset_name)}_{check_name}"

    @property
    def training_file(self) -> dg.AssetKey:
        return self.asset("training_file")

    @property
    def validation_file(self) -> dg.AssetKey:
        return self.asset("validation_file")

    @property
    def upload_training_file(self) -> dg.AssetKey:
        return self.asset("upload_training_file")

    @property
    def upload_validation_file(self) -> dg.AssetKey:
        return self.asset("upload_validation_file")

    @property
    def fine_tuned_model(self) -> dg.AssetKey:
        return self.asset("fine_tuned_model")

    @property
    def production_model(self) -> dg.AssetKey:
        return self.asset("production_model")

    @property
    def accuracy_check(self) -> dg.AssetCheckKey:
        return self.check("fine_tuned_model", "fine_tuned_model_accuracy")

    @property
    def cost_check(self) -> dg.AssetCheckKey:
        return self.check("training_file", "training_file_cost_check")

    @property
    def tuning_resource(self) -> str:
        """Resource key of the task's `TuningSettings` (run config `resources.<key>.config`)."""
        return f"{self.name}_tuning" if self.prefix else "tuning"

    def files_dir(self) -> Path:
        """Where the task's training and validation files are written (read at call time: FINE_TUNING_WORKDIR)."""
        if not self.prefix:
            return files_dir()
        path = files_dir() / self.name
        path.mkdir(parents=True, exist_ok=True)
        return path
