"""The shared-deployment configuration: a Docker run launcher instance Dagster accepts, and
DuckDB on MotherDuck through the environment. No Docker engine or MotherDuck here: the configs
go through Dagster's own validation and the resources the code location really builds."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
import yaml
from dagster import DagsterInvalidConfigError
from dagster._config import validate_config
from dagster._core.instance.config import dagster_instance_config
from dagster._core.instance.ref import InstanceRef
from dagster._core.launcher import RunLauncher
from dagster._core.run_coordinator import RunCoordinator
from dagster_docker import DockerRunLauncher
from dagster_postgres import DagsterPostgresStorage

from fine_tuning.core.settings import DUCKDB_DATABASE_ENV, duckdb_database, workdir
from fine_tuning.defs.resources import build_resources

REPO = Path(__file__).resolve().parents[2]
DOCKER_CONFIG = REPO / "config" / "dagster.docker.yaml"
SECRET_NAMES = {"DAGSTER_PG_PASSWORD", "OPENAI_API_KEY", "MOTHERDUCK_TOKEN"}
POLICY_SECTIONS = ("run_coordinator", "concurrency", "run_monitoring", "run_retries", "telemetry")


@pytest.fixture()
def docker_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAGSTER_HOME holding the Docker instance config, with the values it reads from the environment."""
    shutil.copy(DOCKER_CONFIG, tmp_path / "dagster.yaml")
    for name, value in {"DAGSTER_PG_HOST": "postgres", "DAGSTER_PG_PORT": "5432", "DAGSTER_PG_USER": "dagster",
                        "DAGSTER_PG_PASSWORD": "not-a-real-password", "DAGSTER_PG_DB": "dagster",
                        "FINE_TUNING_RUN_IMAGE": "registry.example/fine-tuning:1"}.items():
        monkeypatch.setenv(name, value)
    return tmp_path


def test_docker_instance_config_passes_dagster_validation(docker_home: Path) -> None:
    config, _ = dagster_instance_config(str(docker_home))  # the instance schema, as every process loads it
    ref = InstanceRef.from_dir(str(docker_home))

    launcher = ref.run_launcher_data.rehydrate(RunLauncher)  # validates against DockerRunLauncher.config_type()
    assert isinstance(launcher, DockerRunLauncher)
    assert launcher.image == "registry.example/fine-tuning:1"
    assert launcher.networks == ["fine_tuning"]
    assert "OPENAI_API_KEY" in launcher.env_vars
    assert launcher.container_kwargs["volumes"] == ["fine_tuning_work:/opt/fine_tuning/work"]
    assert config["run_launcher"]["class"] == "DockerRunLauncher"

    storage = yaml.safe_load(ref.storage_data.config_yaml)  # checked without connecting
    assert ref.storage_data.class_name == "DagsterPostgresStorage"
    assert validate_config(DagsterPostgresStorage.config_type(), storage).success

    assert type(ref.run_coordinator_data.rehydrate(RunCoordinator)).__name__ == "QueuedRunCoordinator"
    assert {"key": "fine_tuning/provider_job", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in (
        config["concurrency"]["runs"]["tag_concurrency_limits"])


def test_a_misspelt_launcher_field_is_rejected(docker_home: Path) -> None:
    text = (docker_home / "dagster.yaml").read_text().replace("    network: fine_tuning", "    netwrok: fine_tuning")
    (docker_home / "dagster.yaml").write_text(text)
    raw = yaml.safe_load(text)["run_launcher"]["config"]
    assert not validate_config(DockerRunLauncher.config_type(), raw).success
    with pytest.raises(DagsterInvalidConfigError):
        InstanceRef.from_dir(str(docker_home)).run_launcher_data.rehydrate(RunLauncher)


def test_docker_config_keeps_the_production_policy() -> None:
    docker = yaml.safe_load(DOCKER_CONFIG.read_text())
    production = yaml.safe_load((REPO / "config" / "dagster.production.yaml").read_text())
    local = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert docker["storage"] == production["storage"]
    for section in POLICY_SECTIONS:
        assert docker[section] == production[section] == local[section], section


def test_secrets_are_passed_by_name_only() -> None:
    docker = yaml.safe_load(DOCKER_CONFIG.read_text())
    env_vars = docker["run_launcher"]["config"]["env_vars"]
    assert SECRET_NAMES <= set(env_vars), "each run container needs these from the daemon's environment"
    assert not [entry for entry in env_vars if "=" in entry and entry.split("=", 1)[0] in SECRET_NAMES]
    assert docker["storage"]["postgres"]["postgres_db"]["password"] == {"env": "DAGSTER_PG_PASSWORD"}


def test_duckdb_database_defaults_to_the_workdir_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DUCKDB_DATABASE_ENV, raising=False)
    assert duckdb_database() == str(workdir() / "goodreads.duckdb")
    assert build_resources()["duckdb"].database == str(workdir() / "goodreads.duckdb")


def test_duckdb_database_from_the_environment_reaches_the_resource(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "shared" / "warehouse.duckdb"
    elsewhere.parent.mkdir()
    monkeypatch.setenv(DUCKDB_DATABASE_ENV, str(elsewhere))
    resource = build_resources()["duckdb"]
    with resource.get_connection() as con:
        con.execute("CREATE TABLE probe AS SELECT 42 AS answer")
    with duckdb.connect(str(elsewhere), read_only=True) as con:
        assert con.execute("SELECT answer FROM probe").fetchone() == (42,)

    # A MotherDuck database is passed through as it is (connecting needs MotherDuck itself).
    monkeypatch.setenv(DUCKDB_DATABASE_ENV, "md:goodreads")
    assert build_resources()["duckdb"].database == "md:goodreads"


def test_a_motherduck_token_in_the_database_string_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DUCKDB_DATABASE_ENV, "md:goodreads?motherduck_token=secret-value")
    with pytest.raises(ValueError, match="MOTHERDUCK_TOKEN") as raised:
        duckdb_database()
    assert "secret-value" not in str(raised.value)
