"""The production instance configuration (PostgreSQL storage) really runs the pipeline's job."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from tests.support.project import REPO, VENV_BIN

PG = {"host": os.environ.get("PGHOST_TEST", "127.0.0.1"), "port": 5432, "user": "postgres"}


def _connect(dbname: str = "postgres"):  # type: ignore[no-untyped-def]
    import psycopg2

    return psycopg2.connect(dbname=dbname, connect_timeout=3, **PG)


@pytest.fixture()
def postgres_database() -> Iterator[str]:
    """A throw-away database on the machine's PostgreSQL; skipped when no server answers."""
    try:
        admin = _connect()
    except Exception as error:  # noqa: BLE001 - any connection failure means "no server here"
        pytest.skip(f"no PostgreSQL server reachable at {PG['host']}:{PG['port']}: {error}")
    admin.autocommit = True
    name = f"fine_tuning_test_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')  # identifier generated above, not user input
    try:
        yield name
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_production_config_shares_queue_and_retry_policy_with_local_config() -> None:
    local = yaml.safe_load((REPO / "dagster.yaml").read_text())
    production = yaml.safe_load((REPO / "config" / "dagster.production.yaml").read_text())
    for section in ("run_coordinator", "concurrency", "run_monitoring", "run_retries", "telemetry"):
        assert production[section] == local[section], section


@pytest.mark.slow
def test_job_runs_on_postgres_backed_instance(tmp_path: Path, dagster_home: Path, postgres_database: str) -> None:
    home = dagster_home
    shutil.copy(REPO / "config" / "dagster.production.yaml", home / "dagster.yaml")
    env = {
        **os.environ, "DAGSTER_HOME": str(home), "DAGSTER_PG_HOST": PG["host"],
        "DAGSTER_PG_PORT": str(PG["port"]), "DAGSTER_PG_USER": PG["user"],
        "DAGSTER_PG_PASSWORD": "", "DAGSTER_PG_DB": postgres_database,
        "LOCAL_OPENAI_JOB_SECONDS": "1",
    }
    config = tmp_path / "run.yaml"
    config.write_text("ops:\n  fine_tuned_model:\n    config:\n      poll_interval_seconds: 0.2\n")
    result = subprocess.run(
        [str(VENV_BIN / "dagster"), "job", "execute", "-m", "fine_tuning.definitions",
         "-j", "fine_tuning_job", "-c", str(config)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=480,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    # The run and its materializations live in PostgreSQL, not in SQLite files under DAGSTER_HOME.
    assert not list(home.rglob("*.db"))
    with _connect(postgres_database) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT status FROM runs WHERE pipeline_name = %s", ("fine_tuning_job",))
        assert cursor.fetchall() == [("SUCCESS",)]
        cursor.execute(
            "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
            " AND asset_key = %s",
            (dg.AssetKey("fine_tuned_model").to_string(),),
        )
        assert cursor.fetchone()[0] == 1
