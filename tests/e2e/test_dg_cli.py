"""The project is a `dg` project: `dg check defs`, `dg list defs` and `dg launch` work from the checkout.

`dg check defs` and `dg list defs` run once per test process (tests.support.dg_checkout); the
shipped-tasks test reads the same outputs."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from tests.support.dg_checkout import checked_defs, listed_defs, run_dg

pytestmark = pytest.mark.slow

ASSETS = {
    "goodreads_source_dataset", "graphic_novels", "authors", "book_category", "enriched_graphic_novels",
    "training_file", "validation_file", "upload_training_file", "upload_validation_file", "fine_tuned_model",
    "production_model",
}
CHECKS = {"training_file_format_check", "validation_file_format_check", "fine_tuned_model_accuracy"}
GROUPS = {"goodreads", "training_data", "fine_tuning"}


def test_dg_check_defs_passes() -> None:
    result = checked_defs()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr


def test_dg_list_defs_names_every_asset_check_job_and_schedule() -> None:
    result = listed_defs()
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assets = {asset["asset_key"]: asset for asset in listed["assets"]}
    assert ASSETS <= set(assets)
    assert {asset["group_name"] for asset in assets.values()} >= GROUPS
    assert CHECKS <= {check["name"] for check in listed["asset_checks"]}
    assert "fine_tuning_job" in {job["name"] for job in listed["jobs"]}
    assert "retune_schedule" in {schedule["name"] for schedule in listed["schedules"]}
    assert {"duckdb", "openai", "tuning"} <= {resource["name"] for resource in listed["resources"]}


def test_dg_launch_materializes_assets_into_the_instance(dagster_home: Path, workdir: Path) -> None:
    result = run_dg("launch", "--assets", "graphic_novels,authors", env={"DAGSTER_HOME": str(dagster_home)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    instance = dg.DagsterInstance.get()  # the dagster_home fixture set DAGSTER_HOME
    try:
        for key in ("graphic_novels", "authors"):
            event = instance.get_latest_materialization_event(dg.AssetKey(key))
            assert event is not None, f"{key} was not materialized by dg launch"
            assert event.asset_materialization.metadata["dagster/row_count"].value > 0
    finally:
        instance.dispose()
    assert (workdir / "goodreads.duckdb").exists()
