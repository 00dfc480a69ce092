"""FineTuningTask without child processes: its keys and names, the scaffolded YAML, and a source
checked by the first step when it did not exist at load time."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from fine_tuning.core.evaluation_rounds import Round
from fine_tuning.core.grading import Grading, default_free_form_grader
from fine_tuning.core.scoring import Answer, Example, tally
from fine_tuning.core.settings import duckdb_path
from fine_tuning.lib.task.component import FineTuningTask, TaskDefinitionError
from fine_tuning.lib.task.evaluation_metadata import Roles, check_metadata
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


def test_every_attribute_has_the_description_the_ui_docs_tab_shows() -> None:
    # The UI's Docs tab and `dg` read the schema of the model Dagster derives from the component,
    # nested models (source, prompt, splits) included: every attribute there must say what it is.
    schema = FineTuningTask.get_model_cls().model_json_schema()
    models = {"attributes": schema, **schema["$defs"]}
    undocumented = [f"{model}.{name}" for model, body in models.items()
                    for name, field in body["properties"].items() if not field.get("description")]
    assert sorted(models) == ["PromptTextModel", "SourceModel", "SplitsModel", "attributes"]
    assert undocumented == []
    assert "deterministic id hash" in schema["$defs"]["SplitsModel"]["properties"]["seed"]["description"]


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
    ({"answers": "free_form", "labels_sql": "SELECT 'a'"}, "attributes.labels_sql"),
    ({"pass_threshold": 0.5}, "attributes.pass_threshold"),
    ({"answers": "free_form", "grader": {"type": "nope"}}, "attributes.grader.type"),
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


REPLIES = ("Refunded to your card within five days.", "Your parcel ships tomorrow with tracking.")


def test_a_free_form_task_trains_on_its_answer_text_split_unstratified_and_graded_by_its_grader(tmp_path: Path) -> None:
    """Training files of a free-form task: the assistant says the answer column's text, the system message
    names no label set, the seeded split is one stratum (20% of all rows to test); the reinforcement
    method's grader and the accuracy metric are the task's grader."""
    task = load_task(write_task(tmp_path / "orders", answers="free_form", label_column="reply",
                                splits={"seed": 3, "validation_fraction": 0.1, "test_fraction": 0.2}))
    definitions = task.definitions()
    with duckdb.connect(str(duckdb_path())) as conn:
        conn.execute("CREATE TABLE orders AS SELECT i AS order_id, 'order ' || i AS note, "
                     "$replies[1 + i % 2] || ' Ref ' || i AS reply FROM range(50) t(i)", {"replies": list(REPLIES)})
    training_files = next(a for a in definitions.assets if a.node_def.name == "orders__training_files")
    result = dg.materialize([training_files], resources={**pipeline_resources(), "orders_tuning": task.tuning_settings()})
    assert result.success
    lines = [json.loads(line) for line in task.keys.files_dir().joinpath("training.jsonl").read_text().splitlines()]
    assert len(lines) == 35  # 50 rows, one stratum: 10 to test, 5 to validation
    for line in lines:
        system, user, assistant = line["messages"]
        assert system["content"] == "Route orders." and assistant["content"].endswith(f"Ref {user['content'][6:]}")
    with duckdb.connect(str(duckdb_path())) as conn:
        splits = dict(conn.execute("SELECT split, count(*) FROM orders_splits GROUP BY split").fetchall())
    assert splits == {"train": 35, "validation": 5, "test": 10}
    metadata = result.asset_materializations_for_node("orders__training_files")[0].metadata
    assert "(free-form answers)" in metadata["label_distribution"].value
    grading = task.grading()
    assert grading is not None and grading.grader["evaluation_metric"] == "fuzzy_match" and grading.pass_threshold == 0.8
    # DPO: the base model's own answers that failed the grader are the non-preferred ones.
    dpo = load_task(write_task(tmp_path / "dpo", name="dpo", source={"table": "orders"}, answers="free_form",
                               label_column="reply", method={"type": "dpo"}))
    dpo_files = next(a for a in dpo.definitions().assets if a.node_def.name == "dpo__training_files")
    asked = dg.materialize([dpo_files], resources={**pipeline_resources(), "dpo_tuning": dpo.tuning_settings()})
    assert asked.success
    pairs = [json.loads(line) for line in dpo.keys.files_dir().joinpath("training.jsonl").read_text().splitlines()]
    answered = asked.asset_materializations_for_node("dpo__training_files")[0].metadata["dpo_answers"].value
    base = answered["scores"]["gpt-4o-mini-2024-07-18"]
    assert len(pairs) == 35 and base["correct"] == 0 and len(base["grades"]) == 35
    for pair in pairs:
        preferred, rejected = pair["preferred_output"][0]["content"], pair["non_preferred_output"][0]["content"]
        assert preferred.startswith(REPLIES) and rejected in base["answers"].values()
        assert grading.grade(rejected, preferred) < 0.8
    reinforcement = load_task(write_task(tmp_path / "rl", answers="free_form", label_column="reply", pass_threshold=0.5,
                                         model="o4-mini-2025-04-16", method={"type": "reinforcement"}))
    assert reinforcement.tuning_settings().job_method()["reinforcement"]["grader"] == grading.grader
    assert reinforcement.grading() == type(grading)(grading.grader, 0.5)


JUDGE = {"type": "score_model", "name": "judge", "model": "gpt-4o-mini-2024-07-18",
         "input": [{"role": "user", "content": "Grade {{sample.output_text}} against {{item.reference_answer}}."}]}


def test_a_grader_needing_a_model_the_local_backend_lacks_stops_the_first_step_before_any_file(tmp_path: Path) -> None:
    """score_model loads (OpenAI runs it through /graders/run), but the local backend has no grader model:
    the first step asks once, gets the backend's 400, and fails naming it; nothing is written."""
    task = load_task(write_task(tmp_path / "orders", answers="free_form", label_column="team", grader=JUDGE))
    assert task.grader == JUDGE  # OpenAI's {{templates}} as written, not rendered by Dagster
    definitions = task.definitions()
    with duckdb.connect(str(duckdb_path())) as conn:
        conn.execute("CREATE TABLE orders AS SELECT i AS order_id, 'order ' || i AS note, 'team' AS team FROM range(30) t(i)")
    training_files = next(a for a in definitions.assets if a.node_def.name == "orders__training_files")
    result = dg.materialize([training_files], resources={**pipeline_resources(), "orders_tuning": task.tuning_settings()},
                            raise_on_error=False)
    assert not result.success
    text = failure_text(result)
    assert "grader 'judge' needs a grader model" in text and "graders/run" in text and "HTTP 400" in text
    assert not task.keys.files_dir().joinpath("training.jsonl").exists()


def test_a_free_form_check_records_mean_grades_and_grade_tables_not_a_confusion_matrix() -> None:
    grading = Grading(default_free_form_grader())
    examples = [Example(f"e{i}", f"question {i}", REPLIES[i % 2]) for i in range(4)]
    answers = {"tuned": [REPLIES[0], REPLIES[1], REPLIES[0], REPLIES[1] + "!"], "base": ["no", "idea", "", "x"]}
    scores, _ = tally(["tuned", "base"], examples,
                      lambda model, index: Answer(answers[model][index] or None, False), grading)
    test = Round("sha", "fp", scores, ["tuned", "base"], [], "online")
    metadata = check_metadata(Roles("tuned", None, "base", "tuned"), test, (), grading=grading)
    assert metadata["fine_tuned_accuracy"] == 1.0 and metadata["base_accuracy"] == 0.0
    assert metadata["mean_grade_fine_tuned"] == round(sum(scores["tuned"].grades.values()) / 4, 6) > 0.9
    assert metadata["mean_grade_base"] == round(sum(scores["base"].grades.values()) / 4, 6) < 0.3
    assert "pass rate" in metadata["grade_distribution"].value and "100.0%" in metadata["grade_distribution"].value
    assert "0.9 - 1" in metadata["grade_histogram"].value
    assert not {"confusion_matrix", "per_label_metrics", "macro_f1_fine_tuned"} & set(metadata)
