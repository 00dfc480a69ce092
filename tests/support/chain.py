"""The fine-tuning chain in isolation: uploads and `fine_tuned_model` with real Dagster and the local backend.

A `Chain` is one world: a Dagster instance, a local backend store and the two JSONL files of toy
books, reported on the instance as the files step would report them (`path`, `sha256`,
`examples`), so the chain's assets run without the steps before them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import openai

from fine_tuning.core import prompts
from fine_tuning.core.checksums import file_sha256
from fine_tuning.lib.local_openai_resource import LocalOpenAIResource
from fine_tuning.lib.task.tuning import TuningSettings
from local_openai.transport import local_client

from tests.support.dagster_runs import latest_metadata_of
from tests.support.goodreads_task import fine_tuned_model, upload_training_file, upload_validation_file
from tests.support.toy_books import CATEGORIES, signal_book

CHAIN = [upload_training_file, upload_validation_file, fine_tuned_model]


def write_examples(path: Path, count: int, start: int = 0) -> Path:
    """A chat-format JSONL file of toy books `start`.. with a learnable signal, built with the shared prompt builder."""
    lines = [json.dumps(prompts.training_example(*signal_book(i), CATEGORIES)) for i in range(start, start + count)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def report_file(instance: dg.DagsterInstance, kind: str, path: Path) -> None:
    """Stand in for the files step: a `{kind}_file` materialization with its contract metadata."""
    examples = sum(1 for line in path.read_text().splitlines() if line.strip())
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=f"{kind}_file",
            metadata={"path": str(path.resolve()), "sha256": file_sha256(path), "examples": examples},
        )
    )


@dataclass
class Chain:
    """One isolated world: a Dagster instance, a local backend store and the two JSONL files."""

    instance: dg.DagsterInstance
    backend_dir: Path
    files_dir: Path
    tuning: TuningSettings

    def client(self, job_seconds: float = 1.0) -> openai.OpenAI:
        """An in-process client on the chain's backend store."""
        return local_client(str(self.backend_dir), job_seconds=job_seconds)

    def resources(self, job_seconds: float = 1.0) -> dict[str, Any]:
        """The chain's `openai` and `tuning` resources."""
        return {
            "openai": LocalOpenAIResource(data_dir=str(self.backend_dir), job_seconds=job_seconds),
            "tuning": self.tuning,
        }

    def write_and_report(self, kind: str, count: int, start: int = 0) -> Path:
        """(Re)write the `kind` file with `count` toy examples and report it materialized."""
        path = write_examples(self.files_dir / f"{kind}.jsonl", count, start)
        report_file(self.instance, kind, path)
        return path

    def materialize(
        self, assets: list[Any] = CHAIN, raise_on_error: bool = True, **model_config: Any
    ) -> dg.ExecuteInProcessResult:
        """Materialize `assets` (the whole chain by default); `model_config` is fine_tuned_model's config."""
        run_config = None
        if fine_tuned_model in assets:
            config = {"poll_interval_seconds": 0.1, **model_config}
            run_config = {"ops": {"fine_tuned_model": {"config": config}}}
        return dg.materialize(
            assets, instance=self.instance, resources=self.resources(),
            run_config=run_config, raise_on_error=raise_on_error,
        )

    def jobs(self) -> list[Any]:
        """Every fine-tuning job at the backend."""
        return list(self.client().fine_tuning.jobs.list())

    def uploaded_files(self) -> list[Any]:
        """Every fine-tune file at the backend."""
        return list(self.client().files.list(purpose="fine-tune"))

    def model_metadata(self) -> dict[str, Any]:
        """The latest `fine_tuned_model` materialization's metadata."""
        return latest_metadata_of(self.instance, "fine_tuned_model")


def new_chain(tmp_path: Path, instance: dg.DagsterInstance) -> Chain:
    """A world with 24 training and 12 validation examples already "materialized"."""
    files_dir = tmp_path / "files"
    files_dir.mkdir()
    world = Chain(instance=instance, backend_dir=tmp_path / "backend", files_dir=files_dir,
                  tuning=TuningSettings(n_epochs=2))
    world.write_and_report("training", 24)
    world.write_and_report("validation", 12, start=1000)
    return world
