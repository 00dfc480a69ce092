"""`retune_on_new_data`: a changed source file launches one fine-tuning run, never two at once.

Real parts throughout: a Dagster instance from the project's dagster.yaml in a temporary
DAGSTER_HOME, the real fine_tuning_job executed on it, the sensor evaluated against that
instance with Dagster's own sensor context, and input files that really change.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster_duckdb import DuckDBResource

import fine_tuning.definitions
from fine_tuning.core.settings import SAMPLE_AUTHORS_FILE, SAMPLE_BOOKS_FILE
from fine_tuning.lib.facts import DATA_VERSION_TAG
from fine_tuning.lib.task.automation import PROVIDER_JOB_TAG, SOURCE_VERSION_TAG, TRIGGER_TAG
from fine_tuning.lib.task.component import FineTuningTask
from fine_tuning.lib.task.instances import load_task

from tests.support.dagster_runs import pipeline_resources

REPO = Path(__file__).resolve().parents[2]
SENSOR = "retune_on_new_data"
FAST_RUN_CONFIG = {"ops": {"fine_tuned_model": {"config": {"poll_interval_seconds": 0.2}}}}


@pytest.fixture()
def inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Copies of the sample files that the test may change; the pipeline reads these."""
    books, authors = tmp_path / "books.json.gz", tmp_path / "authors.json.gz"
    shutil.copy(SAMPLE_BOOKS_FILE, books)
    shutil.copy(SAMPLE_AUTHORS_FILE, authors)
    monkeypatch.setenv("GOODREADS_BOOKS_URL", str(books))
    monkeypatch.setenv("GOODREADS_AUTHORS_URL", str(authors))
    monkeypatch.setenv("LOCAL_OPENAI_JOB_SECONDS", "1")
    return books


@pytest.fixture()
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """The project's instance config (queued runs, run retries) in a temporary DAGSTER_HOME."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


@pytest.fixture()
def defs(inputs: Path) -> dg.Definitions:
    """The code location loaded now, so its resources use this test's workdir and settings."""
    return dg.load_from_defs_folder(path_within_project=Path(fine_tuning.definitions.__file__).parent)


def tick(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.SensorResult:
    """One evaluation of the sensor, as the daemon does it."""
    sensor = defs.resolve_sensor_def(SENSOR)
    result = sensor(dg.build_sensor_context(instance=instance, definitions=defs))
    assert isinstance(result, dg.SensorResult)
    return result


def queued_run(job_name: str) -> dg.DagsterRun:
    """A queued run of this code location as the run coordinator stores it (launching one for
    real needs the daemon: the webserver test does that)."""
    location = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="fine_tuning.definitions", working_directory=str(REPO)), location_name="fine_tuning"
    )
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), job_name)
    return dg.DagsterRun(job_name=job_name, status=dg.DagsterRunStatus.QUEUED, remote_job_origin=origin)


def drop_last_book(books: Path) -> None:
    """A real change to the books file: one book fewer."""
    with gzip.open(books, "rt", encoding="utf-8") as handle:
        lines = handle.readlines()
    with gzip.open(books, "wt", encoding="utf-8") as handle:
        handle.writelines(lines[:-1])


def test_sensor_is_off_by_default_and_launches_the_fine_tuning_job(defs: dg.Definitions) -> None:
    sensor = defs.resolve_sensor_def(SENSOR)
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert sensor.job_name == "fine_tuning_job"


def test_changed_source_file_requests_one_run_per_data_version(
    defs: dg.Definitions, instance: dg.DagsterInstance, inputs: Path
) -> None:
    # Never built: the sensor asks for a run and records what it observed.
    first = tick(defs, instance)
    [request] = first.run_requests
    first_version = request.tags[SOURCE_VERSION_TAG]
    assert request.run_key == f"goodreads_source_dataset:{first_version}"
    assert request.tags[TRIGGER_TAG] == SENSOR
    [observation] = first.asset_events
    assert observation.tags["dagster/data_version"] == first_version

    # The run it asked for, for real: afterwards the same data asks for nothing.
    job = defs.resolve_job_def("fine_tuning_job")
    assert job.execute_in_process(instance=instance, run_config=FAST_RUN_CONFIG, tags=request.tags).success
    unchanged = tick(defs, instance)
    assert not unchanged.run_requests and not unchanged.asset_events
    assert first_version in unchanged.skip_reason.skip_message

    # A changed file is a new data version: one request, keyed by it, and a new observation.
    drop_last_book(inputs)
    changed = tick(defs, instance)
    [retune] = changed.run_requests
    new_version = retune.tags[SOURCE_VERSION_TAG]
    assert new_version != first_version
    assert retune.run_key == f"goodreads_source_dataset:{new_version}"
    assert [event.tags["dagster/data_version"] for event in changed.asset_events] == [new_version]
    # Ticks until the run happens repeat the same run key, which Dagster launches only once.
    assert [again.run_key for again in tick(defs, instance).run_requests] == [retune.run_key]


def test_no_request_while_a_fine_tuning_run_is_queued_or_running(
    defs: dg.Definitions, instance: dg.DagsterInstance, inputs: Path
) -> None:
    queued = instance.add_run(queued_run("fine_tuning_job"))
    waiting = tick(defs, instance)
    assert not waiting.run_requests
    assert queued.run_id in waiting.skip_reason.skip_message
    instance.report_run_canceled(queued)

    # Any run that carries the provider tag counts too, whatever its job (e.g. a UI selection).
    asset_job = defs.resolve_implicit_global_asset_job_def()
    running = instance.create_run_for_job(asset_job, status=dg.DagsterRunStatus.STARTED, tags=PROVIDER_JOB_TAG)
    assert not tick(defs, instance).run_requests
    instance.report_run_failed(running)

    assert len(tick(defs, instance).run_requests) == 1  # nothing in flight: the new data gets its run


def test_an_unreadable_source_skips_the_tick_with_the_reason(
    defs: dg.Definitions, instance: dg.DagsterInstance, inputs: Path
) -> None:
    inputs.unlink()
    result = tick(defs, instance)
    assert not result.run_requests
    assert "books file not found" in result.skip_reason.skip_message


def orders_task(folder: Path) -> tuple[FineTuningTask, dg.AssetsDefinition]:
    """A small task whose source table is built by an ordinary asset (no observable source above it)."""

    @dg.asset(name="orders_table")
    def orders_table(duckdb: DuckDBResource) -> None:
        """Rewrites the `orders` table: every materialization is new data."""
        with duckdb.get_connection() as conn:
            conn.execute("CREATE OR REPLACE TABLE orders AS SELECT i AS order_id, "
                         "CASE i % 2 WHEN 0 THEN 'billing' ELSE 'shipping' END AS team, "
                         "CASE i % 2 WHEN 0 THEN 'refund' ELSE 'parcel' END || ' ' || i AS note FROM range(40) t(i)")

    folder.mkdir()
    (folder / "defs.yaml").write_text(yaml.safe_dump({"type": "fine_tuning.FineTuningTask", "attributes": {
        "name": "orders", "source": {"table": "orders", "deps": ["orders_table"]}, "id_column": "order_id",
        "label_column": "team", "prompt": {"system": "Route orders.", "user_template": "{note}"}}}))
    return load_task(folder / "defs.yaml"), orders_table


def test_a_task_without_an_observable_source_retunes_when_its_deps_change(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    task, orders_table = orders_task(tmp_path / "orders")
    defs = dg.Definitions.merge(task.definitions(), dg.Definitions(assets=[orders_table], resources=pipeline_resources()))
    sensor_name, assets = "orders_retune_on_new_data", defs.resolve_implicit_global_asset_job_def()

    def materialize(*keys: dg.AssetKey) -> None:
        assert assets.execute_in_process(instance=instance, asset_selection=list(keys)).success

    def orders_tick() -> dg.SensorResult:
        result = defs.resolve_sensor_def(sensor_name)(dg.build_sensor_context(instance=instance, definitions=defs))
        assert isinstance(result, dg.SensorResult)
        return result

    never_built = orders_tick()
    assert not never_built.run_requests
    assert "orders_table has no data version yet" in never_built.skip_reason.skip_message

    # The dep and the training files from it: nothing to re-tune.
    materialize(orders_table.key, task.keys.training_file, task.keys.validation_file)
    built = instance.get_latest_data_version_record(dg.AssetKey("orders_table")).event_log_entry.tags[DATA_VERSION_TAG]
    unchanged = orders_tick()
    assert not unchanged.run_requests and built in unchanged.skip_reason.skip_message

    # The dep materialized again is a new data version: one request for the task's job, keyed by it.
    materialize(orders_table.key)
    new = instance.get_latest_data_version_record(dg.AssetKey("orders_table")).event_log_entry.tags[DATA_VERSION_TAG]
    assert new != built
    [request] = orders_tick().run_requests
    assert request.run_key == f"orders_table:{new}" and request.tags[SOURCE_VERSION_TAG] == new
    assert request.tags[TRIGGER_TAG] == sensor_name
    assert defs.resolve_sensor_def(sensor_name).job_name == "orders_fine_tuning_job"
    assert [again.run_key for again in orders_tick().run_requests] == [request.run_key]  # launched once
