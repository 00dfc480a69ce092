"""Adversarial settings: each nonsense setting stops the whole job before anything is spent or replaced.

Every case runs `fine_tuning_job` itself (every asset and check, the shipped sample, the local
backend in-process, a real SQLite-backed instance) with one bad value in its run config. The run
must fail naming the setting's run-config path, having uploaded no file, created no provider job
and written no table.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from fine_tuning.core.settings import duckdb_path, local_openai_dir
from fine_tuning.definitions import defs
from local_openai.transport import local_client

from tests.support.dagster_runs import pipeline_resources
from tests.support.goodreads_task import project_job

pytestmark = [pytest.mark.adversarial, pytest.mark.slow]

TUNING = "resources.tuning.config"
MODEL = "ops.fine_tuned_model.config"
ACCURACY = "ops.fine_tuned_model_fine_tuned_model_accuracy.config"
SPLITS = "ops.training_files.config"
ENRICHED = "ops.enriched_graphic_novels.config"
CATEGORY = "ops.book_category.config"
PRODUCTION = "ops.production_model.config"


@dataclass(frozen=True)
class Setting:
    """One nonsense value (or several, for rules between settings) and the path the error must name."""

    values: dict[str, Any]  # full run-config path of a field -> value
    named: str  # what the error must name

    @property
    def id(self) -> str:
        return ",".join(f"{path.rsplit('.', 1)[-1]}={str(value)[:12]}" for path, value in self.values.items())


def single(path: str, value: Any) -> Setting:
    return Setting({path: value}, f"{path} = ")


SETTINGS = [
    single(f"{TUNING}.n_epochs", 0),
    single(f"{TUNING}.n_epochs", -3),
    single(f"{TUNING}.n_epochs", 51),
    single(f"{TUNING}.batch_size", 0),
    single(f"{TUNING}.batch_size", 1000),
    single(f"{TUNING}.learning_rate_multiplier", -0.5),
    single(f"{TUNING}.learning_rate_multiplier", 0.0),
    single(f"{TUNING}.learning_rate_multiplier", math.nan),
    single(f"{TUNING}.suffix", "x" * 93),
    single(f"{TUNING}.suffix", "my:model"),
    single(f"{TUNING}.suffix", ""),
    single(f"{TUNING}.max_cost_usd", 0.0),
    single(f"{TUNING}.max_cost_usd", -5.0),
    single(f"{TUNING}.base_model", "gpt 4o"),
    single(f"{TUNING}.seed", -1),
    single(f"{MODEL}.poll_interval_seconds", 0.0),
    single(f"{MODEL}.timeout_hours", 0.0),
    single(f"{ACCURACY}.concurrency", 0),
    single(f"{ACCURACY}.max_examples", 0),
    single(f"{ACCURACY}.max_retries", -1),
    single(f"{SPLITS}.test_fraction", 0.97),
    single(f"{SPLITS}.validation_fraction", 0.0),
    single(f"{SPLITS}.max_train_examples", 5),
    Setting({f"{SPLITS}.validation_fraction": 0.3, f"{SPLITS}.test_fraction": 0.3},
            f"{SPLITS}.validation_fraction + {SPLITS}.test_fraction"),
    single(f"{ENRICHED}.max_description_chars", -5),
    Setting({f"{ENRICHED}.min_description_chars": 500, f"{ENRICHED}.max_description_chars": 20},
            f"{ENRICHED}.min_description_chars = 500: above {ENRICHED}.max_description_chars = 20"),
    single(f"{CATEGORY}.categories", []),
    single(f"{CATEGORY}.categories", ["fantasy"]),
    single(f"{CATEGORY}.categories", ["fantasy", "  "]),
    single(f"{CATEGORY}.categories", ["ya", "YA"]),
    single(f"{CATEGORY}.min_shelf_count_exclusive", -1),
    single(f"{ACCURACY}.poll_interval_seconds", 0.0),
    single(f"{ACCURACY}.timeout_hours", -1.0),
    single(f"{PRODUCTION}.min_improvement", 1.5),
    single(f"{PRODUCTION}.min_improvement", -0.1),
    single(f"{PRODUCTION}.max_p_value", 0.0),
    single(f"{PRODUCTION}.max_p_value", 1.5),
    single(f"{PRODUCTION}.pin_model", "my model"),
    single(f"{PRODUCTION}.pin_model", ""),
]


def run_config_of(values: dict[str, Any]) -> dict[str, Any]:
    """Nested run config from dotted paths."""
    config: dict[str, Any] = {}
    for path, value in values.items():
        *parents, leaf = path.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return config


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dg.DagsterInstance]:
    """One real instance (SQLite run and event storage) for every case of the module."""
    with dg.DagsterInstance.local_temp(str(tmp_path_factory.mktemp("instance"))) as real:
        yield real


def whole_job() -> dg.JobDefinition:
    """fine_tuning_job with its real assets and checks, on this test's workdir and local backend."""
    return project_job(pipeline_resources())


def run_errors(instance: dg.DagsterInstance, run_id: str) -> str:
    """Every error and failure description the run's event log holds."""
    texts = []
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        data = getattr(event, "event_specific_data", None) if event else None
        error = getattr(data, "error", None)
        if error is not None:
            texts.append(error.to_string())
        failure = getattr(data, "user_failure_data", None)
        if failure is not None:
            texts.append(failure.description or "")
    return "\n".join(texts)


def provider_counts() -> tuple[int, int]:
    """(files uploaded, fine-tuning jobs) in this test's local backend store."""
    client = local_client(local_openai_dir())
    return len(list(client.files.list())), len(list(client.fine_tuning.jobs.list()))


@pytest.mark.parametrize("setting", SETTINGS, ids=[s.id for s in SETTINGS])
def test_a_nonsense_setting_stops_the_job_before_anything_is_spent(instance: dg.DagsterInstance, setting: Setting) -> None:
    result = whole_job().execute_in_process(
        run_config=run_config_of(setting.values), instance=instance, raise_on_error=False
    )
    assert not result.success
    errors = run_errors(instance, result.run_id)
    assert setting.named in errors, errors[-2000:]
    assert "SettingsError" in errors and "allowed" in errors
    for crash in ("ValidationError", "TypeError", "KeyError", "AttributeError", "ZeroDivisionError"):
        assert crash not in errors
    assert provider_counts() == (0, 0)
    assert not Path(duckdb_path()).exists()  # not one table written, staged or replaced
    assert not result.get_asset_materialization_events()


def test_every_problem_of_the_steps_is_named_at_once(instance: dg.DagsterInstance) -> None:
    # (An invalid `tuning` stops the run even earlier, when resources are initialised: alone.)
    values = {f"{ACCURACY}.concurrency": 0, f"{MODEL}.poll_interval_seconds": 0.0, f"{SPLITS}.test_fraction": 0.97}
    result = whole_job().execute_in_process(run_config=run_config_of(values), instance=instance, raise_on_error=False)
    errors = run_errors(instance, result.run_id)
    assert all(f"{path} = " in errors for path in values)
    assert provider_counts() == (0, 0)


def test_every_run_config_section_is_checked() -> None:
    from fine_tuning.lib.run_settings import registered_sections

    job = defs.resolve_job_def("fine_tuning_job")
    configured = {
        f"ops.{node.name}.config" for node in job.graph.node_defs
        if node.config_schema is not None and getattr(node.config_schema.config_type, "fields", None)
    }
    assert configured <= set(registered_sections()), configured - set(registered_sections())
    assert f"{TUNING}" in registered_sections()


def test_fractions_that_leave_a_split_empty_on_the_data_name_the_settings() -> None:
    from tests.support.dagster_runs import failure_text
    from tests.support.goodreads_task import training_files
    from tests.support.warehouse import write_labelled_books

    categories = ["fantasy", "horror"]
    write_labelled_books([(f"b{n}", f"Book {n}", "A", f"About {n}.", categories[n % 2]) for n in range(8)], categories)
    result = dg.materialize(
        [training_files], resources=pipeline_resources(), raise_on_error=False,
        run_config={"ops": {"training_files": {"config": {"test_fraction": 0.05}}}},
    )
    text = failure_text(result)
    assert "would be empty" in text and f"{SPLITS}.test_fraction = 0.05" in text


def test_a_value_outside_an_enumeration_is_refused_before_the_run_is_created(instance: dg.DagsterInstance) -> None:
    # Choices are part of Dagster's own config schema: no run starts at all.
    runs_before = len(instance.get_runs())
    with pytest.raises(dg.DagsterInvalidConfigError, match="mode"):
        whole_job().execute_in_process(run_config=run_config_of({f"{ACCURACY}.mode": "offline"}), instance=instance)
    assert len(instance.get_runs()) == runs_before
    assert provider_counts() == (0, 0)
