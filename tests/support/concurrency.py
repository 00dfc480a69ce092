"""Overlapping real runs: CLI processes on one workdir and one instance, and what they leave behind.

A `Site` is a workdir (DuckDB file, files, local backend store), an instance (DAGSTER_HOME with
the shipped dagster.yaml) and generated Goodreads inputs; `start` launches the CLI the way a user
would (`dagster job execute`, or `dagster asset materialize` as the UI's asset runs do: no provider
tag), `finished` waits for it. `published_state` reads what the DuckDB file publishes, and
`provider_jobs` what the local backend's store holds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import yaml

from fine_tuning.sample_data import write_sample
from local_openai.transport import local_client

from tests.support.project import REPO, VENV_BIN

_RUN_ID = re.compile(r" - ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}) - ")
PREP_ASSETS = "graphic_novels,authors,book_category,enriched_graphic_novels"
RUN_CONFIG = {
    "ops": {"fine_tuned_model": {"config": {"poll_interval_seconds": 0.2}},
            "fine_tuned_model_fine_tuned_model_accuracy": {"config": {"max_examples": 40}}},
    "resources": {"tuning": {"config": {"max_cost_usd": 1000.0}}},
}


@dataclass
class Process:
    """One CLI run in flight."""

    kind: str
    popen: subprocess.Popen
    log: Path
    started: float = field(default_factory=time.monotonic)

    def finished(self, limit_seconds: float = 240) -> tuple[int, str]:
        """Wait for it; its exit code and output."""
        code = self.popen.wait(timeout=limit_seconds)
        return code, self.log.read_text(errors="replace")


@dataclass
class Site:
    """A workdir, an instance and the Goodreads inputs of one test."""

    root: Path

    @property
    def workdir(self) -> Path:
        return self.root / "work"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def database(self) -> Path:
        return self.workdir / "goodreads.duckdb"

    def prepare(self) -> Site:
        """Make the instance (the shipped dagster.yaml) and the first inputs."""
        self.home.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "dagster.yaml", self.home / "dagster.yaml")
        (self.root / "run_config.yaml").write_text(yaml.safe_dump(RUN_CONFIG))
        self.new_inputs(seed=1)
        self.instance().dispose()  # its storage exists before runs race (Dagster's own first start is not race-free)
        return self

    def copy(self, root: Path) -> Site:
        """The same site (instance, DuckDB file, local backend store, inputs) under another folder."""
        shutil.copytree(self.root, root, symlinks=True)
        copied = Site(root)
        copied.books, copied.authors, copied.books_lines = (
            root / self.books.relative_to(self.root), root / self.authors.relative_to(self.root), self.books_lines)
        return copied

    def new_inputs(self, seed: int, books: int = 500) -> None:
        """Generate Goodreads inputs (another seed: other books, so the next load rebuilds)."""
        folder = self.root / f"inputs-{seed}"
        paths = write_sample(folder, books, 150, seed=seed)
        self.books, self.authors = paths["books"], paths["authors"]
        self.books_lines = books

    def env(self) -> dict[str, str]:
        """The environment a user's shell would have for this site (local provider, offline)."""
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("OPENAI_", "AZURE_", "GOODREADS_", "FINE_TUNING_", "DAGSTER_"))}
        env.update(
            DAGSTER_HOME=str(self.home), FINE_TUNING_WORKDIR=str(self.workdir), FINE_TUNING_PROVIDER="local",
            GOODREADS_BOOKS_URL=str(self.books), GOODREADS_AUTHORS_URL=str(self.authors),
            LOCAL_OPENAI_JOB_SECONDS="1",
        )
        return env

    def start(self, kind: str, name: str) -> Process:
        """Launch `job` (dagster job execute fine_tuning_job), `prep` (the job's prep ops) or
        `assets` (dagster asset materialize of the prep assets: a UI-style run without the provider tag)."""
        commands = {
            "job": [str(VENV_BIN / "dagster"), "job", "execute", "-m", "fine_tuning.definitions", "-j",
                    "fine_tuning_job", "-c", str(self.root / "run_config.yaml")],
            "prep": [str(VENV_BIN / "dagster"), "job", "execute", "-m", "fine_tuning.definitions", "-j",
                     "fine_tuning_job", "-o", "*enriched_graphic_novels"],
            "assets": [str(VENV_BIN / "dagster"), "asset", "materialize", "-m", "fine_tuning.definitions",
                       "--select", PREP_ASSETS],
        }
        log = self.root / f"{name}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(commands[kind], cwd=REPO, env=self.env(), stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        return Process(kind, popen, log)

    def instance(self) -> dg.DagsterInstance:
        """The site's instance, read from this process."""
        return dg.DagsterInstance.from_config(str(self.home))

    def query(self, sql: str) -> list[tuple]:
        """A query on the site's DuckDB file (read-only: runs may still hold it afterwards)."""
        with duckdb.connect(str(self.database), read_only=True) as con:
            return con.execute(sql).fetchall()

    def published_state(self) -> dict[str, Any]:
        """What the DuckDB file publishes: loads per table, leftovers, lease, consistency."""
        from fine_tuning.defs.goodreads.loads import same_load_problems, stale_tables
        from fine_tuning.lib.staged_build import published_loads

        with duckdb.connect(str(self.database), read_only=True) as con:
            loads = published_loads(con)
            return {
                "loads": {table: load for table, (load, _) in loads.items()},
                "problems": same_load_problems(con),
                "stale": stale_tables(loads),
                "staging_left": con.execute("SELECT count(*) FROM staging_schemas").fetchone()[0],
                "lease": con.execute("SELECT count(*) FROM prep_lease").fetchone()[0],
                "books": con.execute("SELECT count(DISTINCT book_id) FROM graphic_novels").fetchone()[0],
                "enriched": con.execute("SELECT count(*) FROM enriched_graphic_novels").fetchone()[0],
                "load_schemas": con.execute(
                    "SELECT count(*) FROM duckdb_schemas() WHERE schema_name LIKE 'load_%'").fetchone()[0],
            }

    def expected_books(self) -> int:
        """Distinct usable book ids of the current books file (what a published load must hold)."""
        with duckdb.connect() as con:
            return con.execute(
                "SELECT count(DISTINCT book_id) FROM read_json(?, format='newline_delimited', ignore_errors=true, "
                "columns={'book_id': 'VARCHAR'}) WHERE nullif(trim(book_id), '') IS NOT NULL", [str(self.books)]
            ).fetchone()[0]

    def provider_jobs(self) -> list[Any]:
        """Every fine-tuning job in the local backend's store."""
        client = local_client(self.workdir / "local_openai")
        return list(client.fine_tuning.jobs.list(limit=100))

    def jobs_per_fingerprint(self) -> Counter:
        """How many provider jobs each training fingerprint has (the pipeline tags its jobs' metadata)."""
        return Counter(json.dumps(job.metadata or {}, sort_keys=True) for job in self.provider_jobs())

    def prep_reports(self, run_id: str) -> dict[str, dict[str, Any]]:
        """The prep assets' materialization metadata of one run, by asset."""
        instance = self.instance()
        reports: dict[str, dict[str, Any]] = {}
        for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records:
            materialization = record.event_log_entry.asset_materialization
            if materialization is not None:
                reports[materialization.asset_key.to_user_string()] = {
                    key: value.value for key, value in materialization.metadata.items()}
        return reports


def run_id_of(output: str) -> str | None:
    """The run id a CLI run printed in its event lines."""
    found = _RUN_ID.search(output)
    return found.group(1) if found else None


def wait_for_event(site: Site, run_id_from: Process, event: str, step: str | None, limit_seconds: float = 120) -> str:
    """Poll the instance until the process's run logs `event` (optionally for `step`); returns the run id."""
    deadline = time.monotonic() + limit_seconds
    instance = site.instance()
    while time.monotonic() < deadline:
        run_id = run_id_of(run_id_from.log.read_text(errors="replace"))
        if run_id:
            for record in instance.get_records_for_run(run_id).records:
                entry = record.event_log_entry
                if entry.dagster_event and entry.dagster_event.event_type_value == event and (
                        step is None or entry.step_key == step):
                    return run_id
        if run_id_from.popen.poll() is not None:
            raise AssertionError(f"run ended before {event} {step}: {run_id_from.log.read_text()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError(f"no {event} for {step} within {limit_seconds} s")
