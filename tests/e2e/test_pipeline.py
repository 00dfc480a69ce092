"""The whole chain through the `dagster` CLI, offline, against the local backend.

Each run is a real `dagster job execute` in a child process with its own DAGSTER_HOME (the
project's dagster.yaml), the real DuckDB file, the real openai client and the local backend,
in-process or over HTTP.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from fine_tuning.core.settings import SAMPLE_AUTHORS_FILE, SAMPLE_BOOKS_FILE
from fine_tuning.lib.facts import run_check_results
from fine_tuning.lib.task.file_checks import REUSED_FROM_RUN
from fine_tuning.summary import latest_run_summary
from local_openai.transport import local_client

from tests.support.local_openai import serve_subprocess
from tests.support.project import REPO, VENV_BIN

pytestmark = pytest.mark.slow  # every test runs the whole job in child processes

FAST_RUN_CONFIG = "ops:\n  fine_tuned_model:\n    config:\n      poll_interval_seconds: 0.2\n"


@pytest.fixture()
def run_config(tmp_path: Path) -> Path:
    path = tmp_path / "run_config.yaml"
    path.write_text(FAST_RUN_CONFIG)
    return path


def execute_job(home: Path, run_config: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`dagster job execute` for fine_tuning_job, exactly as a user would type it."""
    full_env = {**os.environ, "DAGSTER_HOME": str(home), "LOCAL_OPENAI_JOB_SECONDS": "1", **env}
    return subprocess.run(
        [str(VENV_BIN / "dagster"), "job", "execute", "-m", "fine_tuning.definitions",
         "-j", "fine_tuning_job", "-c", str(run_config)],
        cwd=REPO, env=full_env, capture_output=True, text=True, timeout=480,
    )


def summary(home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """What `make run` would print about the latest run on the instance at `home`."""
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        result = latest_run_summary(instance)
    assert result is not None
    return result


def provider_counts(store: Path) -> tuple[int, int]:
    """(fine-tuning jobs, uploaded fine-tune files) in a local backend store."""
    client = local_client(str(store))
    jobs = list(client.fine_tuning.jobs.list(limit=100))
    files = [f for f in client.files.list(purpose="fine-tune") if f.purpose == "fine-tune"]
    return len(jobs), len(files)


def _copy_with_extra_books(tmp_path: Path) -> Path:
    """The shipped books plus copies of some books under new ids: the data really changed."""
    changed = tmp_path / "goodreads_books_comics_graphic.json.gz"
    with gzip.open(SAMPLE_BOOKS_FILE, "rt", encoding="utf-8") as src, gzip.open(changed, "wt", encoding="utf-8") as dst:
        extra = []
        for index, line in enumerate(src):
            dst.write(line)
            if index < 150:
                try:
                    book = json.loads(line)
                except json.JSONDecodeError:
                    continue
                book["book_id"] = f"9{index:08d}"
                book["title"] = f"{book.get('title', '')} (second printing)"
                extra.append(json.dumps(book))
        dst.write("\n".join(extra) + "\n")
    return changed


def test_full_run_then_unchanged_rerun_costs_nothing_then_changed_input_trains_a_new_model(
    dagster_home: Path, run_config: Path, tmp_path: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user's three runs in a row: the first trains, an unchanged re-run pays nothing, new books train
    again. (One test: the third run needs a first run as much as the second does, and each whole job
    in a child process costs a Python and Dagster start-up.)"""
    first = execute_job(dagster_home, run_config)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    result = summary(dagster_home, monkeypatch)
    assert result["status"] == "SUCCESS"
    assert str(result["model_name"]).startswith("ft:gpt-4o-mini-2024-07-18:")
    assert result["reused"] is False
    assert result["fine_tuned_accuracy"] > result["base_accuracy"] + 0.1  # type: ignore[operator]
    assert result["eval_examples"] >= 100  # type: ignore[operator]
    assert provider_counts(workdir / "local_openai") == (1, 2)

    second = execute_job(dagster_home, run_config)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    again = summary(dagster_home, monkeypatch)
    assert again["model_name"] == result["model_name"]
    assert again["job_id"] == result["job_id"]
    assert again["reused"] is True
    assert again["reused_evaluation"] is True, "an unchanged re-run must not ask the models again"
    assert again["fine_tuned_accuracy"] == result["fine_tuned_accuracy"]
    assert provider_counts(workdir / "local_openai") == (1, 2), "an unchanged re-run must not pay again"
    # The seven file checks report what they judged in the first run: the same bytes are not read again.
    with dg.DagsterInstance.get() as instance:
        rerun, first_run = instance.get_runs(limit=2)
        reported = {key.name: check for key, check in run_check_results(instance, rerun.run_id)
                    if key.name.startswith(("training_file_", "validation_file_"))}
    assert len(reported) == 7 and all(check.passed for check in reported.values())
    assert {check.metadata.get(REUSED_FROM_RUN) for check in reported.values()} == {first_run.run_id}

    changed = _copy_with_extra_books(tmp_path)
    third = execute_job(dagster_home, run_config, GOODREADS_BOOKS_URL=str(changed),
                        GOODREADS_AUTHORS_URL=str(SAMPLE_AUTHORS_FILE))
    assert third.returncode == 0, third.stdout[-4000:] + third.stderr[-4000:]
    after = summary(dagster_home, monkeypatch)
    assert after["reused"] is False
    assert after["model_name"] != result["model_name"]
    jobs, files = provider_counts(workdir / "local_openai")
    assert jobs == 2
    assert files >= 3  # at least the new training file; an unchanged validation file is reused


@pytest.fixture()
def http_backend(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """The local backend served over real HTTP with an API key, as a separate process."""
    key, data_dir = "sk-test-e2e-secret-7f3a9c", tmp_path / "served"
    with serve_subprocess("--data-dir", str(data_dir), "--api-key", key, "--job-seconds", "1") as served:
        yield served.base_url, key, data_dir


def test_full_run_over_http_with_a_key_never_stores_the_key(
    dagster_home: Path, run_config: Path, http_backend: tuple[str, str, Path],
    workdir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    base_url, key, served_dir = http_backend
    run = execute_job(dagster_home, run_config, OPENAI_API_KEY=key, OPENAI_BASE_URL=base_url)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    result = summary(dagster_home, monkeypatch)
    assert str(result["model_name"]).startswith("ft:")
    assert result["fine_tuned_accuracy"] > result["base_accuracy"]  # type: ignore[operator]
    # The job went to the served backend, not the in-process one.
    assert not (workdir / "local_openai").exists()
    assert provider_counts(served_dir)[0] == 1
    assert key not in run.stdout + run.stderr
    for root in (dagster_home, workdir, served_dir):
        for path in root.rglob("*"):
            if path.is_file():
                assert key.encode() not in path.read_bytes(), f"API key stored in {path}"
