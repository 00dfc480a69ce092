"""The code location loads, names every asset, check, job and schedule outside tools rely on, and its automation is wired."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from fine_tuning.definitions import defs
from fine_tuning.lib.task.automation import DEFAULT_RETUNE_CRON, PROVIDER_JOB_TAG

from tests.support.project import REPO, VENV_BIN

ASSETS = {
    "graphic_novels", "authors", "book_category", "enriched_graphic_novels", "training_file",
    "validation_file", "upload_training_file", "upload_validation_file", "fine_tuned_model", "production_model",
}
CHECKS = {"training_file_format_check", "validation_file_format_check", "fine_tuned_model_accuracy"}


def test_definitions_name_every_asset_check_job_and_schedule() -> None:
    repo = defs.get_repository_def()
    keys = {key.to_user_string() for key in repo.asset_graph.get_all_asset_keys()}
    assert ASSETS | {"goodreads_source_dataset"} <= keys
    check_names = {key.name for key in repo.asset_graph.asset_check_keys}
    assert CHECKS <= check_names
    assert defs.resolve_job_def("fine_tuning_job").tags["fine_tuning/provider_job"] == "goodreads"
    assert defs.resolve_schedule_def("retune_schedule").job_name == "fine_tuning_job"


def test_format_checks_block_the_uploads() -> None:
    repo = defs.get_repository_def()
    for key in repo.asset_graph.asset_check_keys:
        if key.name in ("training_file_format_check", "validation_file_format_check"):
            assert repo.asset_graph.get_check_spec(key).blocking, key.name


def test_fine_tuning_job_covers_every_asset_and_check() -> None:
    job = defs.resolve_job_def("fine_tuning_job")
    selected = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
    assert ASSETS <= selected
    assert CHECKS <= {key.name for key in job.asset_layer.asset_graph.asset_check_keys}


def test_schedule_requests_a_tagged_run_of_the_job() -> None:
    retune_schedule = defs.resolve_schedule_def("retune_schedule")
    tick = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    request = retune_schedule(dg.build_schedule_context(scheduled_execution_time=tick))
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == tick.isoformat()
    assert retune_schedule.job_name == "fine_tuning_job"
    # Weekly by default; RETUNE_CRON (read when the code location loads) overrides it.
    assert retune_schedule.cron_schedule == (os.environ.get("RETUNE_CRON") or DEFAULT_RETUNE_CRON)
    assert PROVIDER_JOB_TAG.items() <= defs.resolve_job_def("fine_tuning_job").tags.items()


def test_default_cron_is_weekly() -> None:
    assert DEFAULT_RETUNE_CRON == "0 3 * * 1"


@pytest.mark.slow
def test_schedule_cron_is_configurable_by_environment(tmp_path: Path) -> None:
    code = "from fine_tuning.definitions import defs; print(defs.resolve_schedule_def('retune_schedule').cron_schedule)"
    env = {**os.environ, "RETUNE_CRON": "0 6 * * *"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0 6 * * *"


@pytest.mark.slow
def test_dagster_cli_validates_the_code_location() -> None:
    dagster = shutil.which("dagster", path=str(VENV_BIN))
    assert dagster, "dagster CLI missing from the virtualenv"
    result = subprocess.run(
        [dagster, "definitions", "validate", "-m", "fine_tuning.definitions"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_instance_config_queues_fine_tuning_runs_one_at_a_time(instance: dg.DagsterInstance) -> None:
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    assert {"key": "fine_tuning/provider_job", "limit": 1} in limits
    assert instance.run_retries_enabled
    assert not instance.telemetry_enabled
