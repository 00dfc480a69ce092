"""FineTuningTask as a user meets it: `dg` lists it, checks a task's defs.yaml, scaffolds a new task
that goes to a promoted production model through `dg launch` with no Python written, and the
second shipped task (support tickets) runs end to end beside Goodreads."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from fine_tuning.lib.facts import check_results

from tests.support.dg_checkout import checked_defs, listed_defs
from tests.support.project import REPO, VENV_BIN
from tests.support.project_copy import copy_project, run_in

pytestmark = pytest.mark.slow  # dg and dagster child processes, whole jobs

TASK = "fine_tuning.FineTuningTask"
FAST = "ops:\n  {op}__fine_tuned_model:\n    config: {{poll_interval_seconds: 0.1}}\n"
DEPARTMENTS = ("billing", "shipping", "technical")
CUES = {"billing": "invoice refund charged card", "shipping": "parcel courier tracking delivery",
        "technical": "error crash login bug"}
# A free-form task's reference answers: each team's reply, naming the message's case number.
REPLIES = {"billing": "We have refunded the charge to your card; expect it within five days.",
           "shipping": "Your parcel is on its way; the courier's tracking link is in your email.",
           "technical": "Please update the app and sign in again; that fixes this crash."}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")


def env_for(dagster_home: Path, workdir: Path) -> dict[str, str]:
    return {"DAGSTER_HOME": str(dagster_home), "FINE_TUNING_WORKDIR": str(workdir), "LOCAL_OPENAI_JOB_SECONDS": "0.5"}


def test_dg_lists_the_component_with_its_description() -> None:
    result = run_in(REPO, "dg", "list", "components", "--json")
    assert result.returncode == 0, result.stderr
    listed = {entry["key"]: entry for entry in json.loads(result.stdout)["items"]}
    assert TASK in listed
    assert "DuckDB table" in json.dumps(listed[TASK])


def test_both_shipped_tasks_load_side_by_side() -> None:
    check = checked_defs()  # the same runs as tests/e2e/test_dg_cli.py reads, once per test process
    assert check.returncode == 0, check.stdout + check.stderr
    listed = json.loads(listed_defs().stdout)
    assets = {asset["asset_key"] for asset in listed["assets"]}
    assert {"fine_tuned_model", "production_model", "support_tickets/fine_tuned_model",
            "support_tickets/production_model", "support_tickets/tickets"} <= assets
    jobs = {job["name"] for job in listed["jobs"]}
    assert {"fine_tuning_job", "support_tickets_fine_tuning_job"} <= jobs
    assert {"retune_schedule", "support_tickets_retune_schedule"} <= {s["name"] for s in listed["schedules"]}
    assert {"retune_on_new_data", "support_tickets_retune_on_new_data"} <= {s["name"] for s in listed["sensors"]}


def write_defs(project: Path, folder: str, text: str) -> Path:
    path = project / "fine_tuning" / "defs" / folder / "defs.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def reviews_table(workdir: Path, rows: int = 90) -> None:
    """A user's own table in the project's DuckDB file: short support messages, their department and
    the reply they got (a free-form answer: the team's reply naming the case number)."""
    workdir.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(workdir / "goodreads.duckdb")) as conn:
        conn.execute("CREATE OR REPLACE TABLE messages (msg_id INTEGER, text VARCHAR, team VARCHAR, extra VARCHAR, "
                     "reply VARCHAR)")
        conn.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?)", [
            (i, f"{CUES[DEPARTMENTS[i % 3]]} number {i}", DEPARTMENTS[i % 3], "x",
             f"Case {i}: {REPLIES[DEPARTMENTS[i % 3]]}") for i in range(rows)
        ])


BAD = {
    "unknown attribute": ("  colour: blue\n", "colour"),
    "missing column": ("", "label_column"),
    "template column": ("", "prompt.user_template"),
    "unknown model": ("", "model"),
    "free-form with labels": ("  answers: free_form\n  labels: [billing, shipping]\n", "attributes.labels"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_yaml_is_a_clear_error_from_dg_check_defs(project: Path, tmp_path: Path, case: str) -> None:
    workdir = tmp_path / "work"
    reviews_table(workdir)
    label = "no_such_column" if case == "missing column" else "team"
    template = "{text} {nope}" if case == "template column" else "{text}"
    model = "gpt-9-turbo" if case == "unknown model" else "gpt-4o-mini-2024-07-18"
    path = write_defs(project, "messages_task", (
        f"type: {TASK}\nattributes:\n  name: messages\n  source:\n    table: messages\n  id_column: msg_id\n"
        f"  label_column: {label}\n  prompt:\n    system: Route messages.\n    user_template: \"{template}\"\n"
        f"  model: {model}\n" + BAD[case][0]
    ))
    result = run_in(project, "dg", "check", "defs", env={"FINE_TUNING_WORKDIR": str(workdir)})
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert BAD[case][1] in output, output[-3000:]
    assert str(path) in output or "messages_task/defs.yaml" in output, output[-3000:]


@pytest.mark.parametrize("answers", ["labels", "free_form"])
def test_a_scaffolded_task_reaches_a_promoted_production_model_with_no_python(
    project: Path, tmp_path: Path, dagster_home: Path, answers: str
) -> None:
    """Labels: the team of each message. Free-form: the reply it got, graded by the default grader
    (fuzzy_match, passing at 0.8): the fine-tuned model answers a seen reply of the right team (its
    case number may differ), the base model one word of the system prompt."""
    scaffold = run_in(project, "dg", "scaffold", "defs", TASK, "messages")
    assert scaffold.returncode == 0, scaffold.stdout + scaffold.stderr
    defs_yaml = project / "fine_tuning" / "defs" / "messages" / "defs.yaml"
    text = defs_yaml.read_text()
    assert "# FILL IN" in text and "max_cost_usd: 5.0" in text and "model: \"gpt-4o-mini-2024-07-18\"" in text
    free_form = answers == "free_form"
    # What the user fills in, as a user would: the marked lines of the YAML (free-form: and the answers line).
    for old, new in (('table: "messages"', 'table: "messages"'), ('id_column: "id"', 'id_column: "msg_id"'),
                     ('label_column: "label"', f'label_column: "{"reply" if free_form else "team"}"'),
                     ('answers: "labels"', f'answers: "{answers}"'),
                     ('system: "Classify each row."', 'system: "Reply to each message."' if free_form
                      else 'system: "Route each message to its team."'),
                     ('user_template: "{text}"', 'user_template: "Message: {text}"')):
        assert old in text, old
        text = text.replace(old, new)
    defs_yaml.write_text(text)
    workdir = tmp_path / "work"
    reviews_table(workdir)
    env = env_for(dagster_home, workdir)
    config = tmp_path / "fast.yaml"
    # The free-form run asks its models through the Batch API (the labelled tasks' runs ask online).
    batch = ("  messages__fine_tuned_model_fine_tuned_model_accuracy:\n"
             "    config: {mode: batch, poll_interval_seconds: 0.1}\n") if free_form else ""
    config.write_text(FAST.format(op="messages") + batch)
    launch = run_in(project, "dg", "launch", "--job", "messages_fine_tuning_job", "-c", str(config), env=env)
    assert launch.returncode == 0, launch.stdout[-3000:] + launch.stderr[-3000:]
    current = run_in(project, "python", "-m", "fine_tuning.current_model", "--task", "messages", "--json", env=env)
    assert current.returncode == 0, current.stderr
    record = json.loads(current.stdout)
    assert record["promoted"] is True and record["model_name"].startswith("ft:gpt-4o-mini-2024-07-18:")
    assert record["challenger_accuracy"] > record["base_accuracy"]
    if free_form:
        check_free_form_evaluation(dagster_home, record)


def check_free_form_evaluation(dagster_home: Path, record: dict[str, object]) -> None:
    """The accuracy check of the free-form task: accuracy is the share of grades >= 0.8, the mean grades
    and the grade tables are recorded, and there is no confusion matrix."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        [result] = check_results(instance, dg.AssetCheckKey(dg.AssetKey(["messages", "fine_tuned_model"]),
                                                            "fine_tuned_model_accuracy"), 1)
    metadata = result.metadata
    scores = metadata["model_scores"]["scores"]
    for role, model in (("fine_tuned", metadata["fine_tuned_model"]), ("base", metadata["base_model"])):
        grades = scores[model]["grades"]
        assert len(grades) == metadata["eval_examples"] > 0
        assert metadata[f"{role}_accuracy"] == sum(grade >= 0.8 for grade in grades.values()) / len(grades)
        assert metadata[f"mean_grade_{role}"] == round(sum(grades.values()) / len(grades), 6)
    print(f"free-form: fine-tuned accuracy {metadata['fine_tuned_accuracy']:.3f}, mean grade "
          f"{metadata['mean_grade_fine_tuned']:.3f}; base accuracy {metadata['base_accuracy']:.3f}, mean grade "
          f"{metadata['mean_grade_base']:.3f}")
    assert metadata["mean_grade_fine_tuned"] > metadata["mean_grade_base"]
    assert record["challenger_accuracy"] == metadata["fine_tuned_accuracy"]
    assert metadata["pass_threshold"] == 0.8 and "pass rate" in metadata["grade_distribution"]
    assert "confusion_matrix" not in metadata and "macro_f1_fine_tuned" not in metadata
    assert metadata["details"]["mode"] == "batch" and metadata["details"]["batches_submitted"] == 2


def test_both_shipped_tasks_run_at_once_without_blocking_each_other(
    tmp_path: Path, dagster_home: Path, instance: dg.DagsterInstance
) -> None:
    """The Goodreads job and the tickets job in two processes at the same time (each its own DuckDB
    file): both succeed, and each task gets its own production model. (`instance` creates the
    instance's storage first: two processes creating it at once would race.)"""
    workdir = tmp_path / "work"
    env = env_for(dagster_home, workdir)
    goodreads_config = tmp_path / "goodreads.yaml"
    goodreads_config.write_text("ops:\n  fine_tuned_model:\n    config: {poll_interval_seconds: 0.1}\n")
    tickets_config = tmp_path / "tickets.yaml"
    tickets_config.write_text(FAST.format(op="support_tickets"))
    environment = {**os.environ, "VIRTUAL_ENV": str(REPO / ".venv"), "FINE_TUNING_PROVIDER": "local", **env}
    environment.pop("OPENAI_API_KEY", None)
    dagster = str(VENV_BIN / "dagster")
    runs = [
        subprocess.Popen([dagster, "job", "execute", "-m", "fine_tuning", "-j", job, "-c", str(config)], cwd=REPO,
                         env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for job, config in (("fine_tuning_job", goodreads_config), ("support_tickets_fine_tuning_job", tickets_config))
    ]
    outputs = [run.communicate(timeout=900)[0] for run in runs]
    for run, output in zip(runs, outputs):
        assert run.returncode == 0, output[-4000:]
    assert (workdir / "goodreads.duckdb").exists() and (workdir / "support_tickets.duckdb").exists()
    for task in ("goodreads", "support_tickets"):
        current = run_in(REPO, "python", "-m", "fine_tuning.current_model", "--task", task, env=env)
        assert current.returncode == 0, current.stderr
        assert current.stdout.strip().startswith("ft:")
    summary = run_in(REPO, "python", "-m", "fine_tuning.summary", "--task", "support_tickets", env=env)
    assert summary.returncode == 0, summary.stderr
    lines = summary.stdout.splitlines()
    assert lines[0].startswith("run:") and "(SUCCESS)" in lines[0]
    assert "fine-tuned model:    ft:gpt-4o-mini-2024-07-18:" in summary.stdout
    assert any(line.startswith("accuracy:") and "fine-tuned" in line and "held-out examples" in line for line in lines)
    assert "production model:    ft:" in summary.stdout
    assert instance.get_latest_materialization_event(dg.AssetKey(["support_tickets", "tickets"])) is not None
    records = {record.dagster_run.job_name: record for record in instance.get_run_records()}
    assert set(records) == {"fine_tuning_job", "support_tickets_fine_tuning_job"}
    goodreads, tickets = records["fine_tuning_job"], records["support_tickets_fine_tuning_job"]
    # They ran at the same time: neither waited for the other's DuckDB file or provider job.
    assert goodreads.start_time < tickets.end_time and tickets.start_time < goodreads.end_time
