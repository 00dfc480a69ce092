"""FineTuningTask without child processes: its keys and names, the scaffolded YAML, and a source
checked by the first step when it did not exist at load time."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from fine_tuning.core.settings import duckdb_path
from fine_tuning.lib.task.component import FineTuningTask, TaskDefinitionError
from fine_tuning.lib.task.instances import load_task, task_named
from fine_tuning.lib.task.scaffold import task_yaml

from tests.support.dagster_runs import failure_text, pipeline_resources


def test_the_goodreads_task_keeps_every_original_name() -> None:
    task = task_named("goodreads")
    assert task.keys.prefix == () and task.keys.fine_tuned_model == dg.AssetKey("fine_tuned_model")
    assert (task.job_name_or_default(), task.schedule_name_or_default(), task.sensor_name_or_default()) == (
        "fine_tuning_job", "retune_schedule", "retune_on_new_data")
    assert task.keys.tuning_resource == "tuning" and task.duckdb_resource_key() == "duckdb"
    assert task.keys.check_op("fine_tuned_model", "fine_tuned_model_accuracy") == "fine_tuned_model_fine_tuned_model_accuracy"


def test_another_task_lives_under_its_prefix() -> None:
    task = task_named("support_tickets")
    assert task.keys.fine_tuned_model == dg.AssetKey(["support_tickets", "fine_tuned_model"])
    assert task.keys.op("training_files") == "support_tickets__training_files"
    assert (task.job_name_or_default(), task.schedule_name_or_default()) == (
        "support_tickets_fine_tuning_job", "support_tickets_retune_schedule")
    assert task.keys.tuning_resource == "support_tickets_tuning"
    assert task.duckdb_resource_key() == "support_tickets_duckdb"


def test_a_run_time_method_keeps_the_tasks_own_settings() -> None:
    """Dagster builds a resource configured at run time from the run config and the schema's defaults:
    those are the task's defs.yaml values, not the class defaults (suffix goodreads, budget $5)."""
    task = task_named("support_tickets")
    key = task.keys.tuning_resource
    dpo = {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}}
    with dg.build_resources({key: task.tuning_settings()}, resource_config={key: {"config": {"method": dpo}}}) as built:
        tuning = getattr(built, key)
    assert (tuning.suffix, tuning.max_cost_usd, tuning.method_type()) == ("support_tickets", 1.0, "dpo")
    assert tuning.run_config_path == f"resources.{key}.config"


def test_the_scaffold_has_every_attribute_and_loads_once_filled_in() -> None:
    text = task_yaml("orders")
    attributes = yaml.safe_load(text)["attributes"]
    for name in FineTuningTask.model_fields:
        assert {"base_model": "model"}.get(name, name) in attributes, name
    task = FineTuningTask.resolve_from_yaml(yaml.safe_dump(attributes))
    assert task.name == "orders" and task.base_model == "gpt-4o-mini-2024-07-18"
    task.check_attributes()  # the defaults are valid as they stand


def write_task(folder: Path, **attributes: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    base = {"name": "orders", "source": {"table": "orders"}, "id_column": "order_id", "label_column": "team",
            "prompt": {"system": "Route orders.", "user_template": "{note}"}}
    path = folder / "defs.yaml"
    path.write_text(yaml.safe_dump({"type": "fine_tuning.FineTuningTask", "attributes": {**base, **attributes}}))
    return path


@pytest.mark.parametrize(("attributes", "named"), [
    ({"model": "gpt-9"}, "attributes.model"),
    ({"prompt": {"system": "x", "user_template": "{note!r}"}}, "attributes.prompt.user_template"),
    ({"source": {"sql": "DELETE FROM orders"}}, "attributes.source.sql"),
    ({"splits": {"validation_fraction": 0.4, "test_fraction": 0.3}}, "attributes.splits"),
    ({"labels": []}, "attributes.labels"),
])
def test_bad_attributes_name_the_attribute_and_the_file(tmp_path: Path, attributes: dict, named: str) -> None:
    path = write_task(tmp_path / "orders", **attributes)
    with pytest.raises(TaskDefinitionError) as raised:
        load_task(path).definitions()
    assert named in str(raised.value) and str(path) in str(raised.value)


def test_a_source_missing_at_load_is_checked_by_the_first_step_before_any_file(tmp_path: Path) -> None:
    task = load_task(write_task(tmp_path / "orders"))
    definitions = task.definitions()  # no table yet: nothing to check at load time
    with duckdb.connect(str(duckdb_path())) as conn:  # then the table appears without the template's column
        conn.execute("CREATE TABLE orders AS SELECT 1 AS order_id, 'a' AS team, 'x' AS other")
    training_files = next(a for a in definitions.assets if a.node_def.name == "orders__training_files")
    result = dg.materialize([training_files], resources={**pipeline_resources(), "orders_tuning": task.tuning_settings()},
                            raise_on_error=False)
    assert not result.success
    text = failure_text(result)
    assert "prompt.user_template names column 'note'" in text
    assert not task.keys.files_dir().joinpath("training.jsonl").exists()
