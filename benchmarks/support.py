"""What the benchmarks share: cached datasets, real Dagster instances, timed CLI processes.

Every figure is measured on a path a user takes: a whole `dagster` / `dg` process started the
way a shell starts it, against a real instance (a temporary DAGSTER_HOME with the project's
dagster.yaml, its storage created beforehand as a user's already is), and compared with a
reference measured in the same benchmark run.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CACHE_DIR = Path(os.environ.get("FINE_TUNING_BENCH_CACHE") or Path(tempfile.gettempdir()) / "fine_tuning_bench")
# Goodreads comics & graphic novels: the sizes of the real UCSD Book Graph files.
GOODREADS_BOOKS = 89_411
GOODREADS_AUTHORS = 829_529
BOOKS_FILE_NAME = "goodreads_books_comics_graphic.json.gz"
AUTHORS_FILE_NAME = "goodreads_book_authors.json.gz"
TICKETS_FILE_NAME = "support_tickets.json.gz"
# The two shipped tasks; FINE_TUNING_BENCH_TASKS (comma-separated) narrows a `make bench` to some of them.
TASK_NAMES = ("goodreads", "support_tickets")
# Benchmarks measure the local backend and say so: in-process steps read the provider from here.
os.environ["FINE_TUNING_PROVIDER"] = "local"
# Variables of the caller's shell that would point a run elsewhere (a real API, other inputs).
_FOREIGN_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "FINE_TUNING_PROVIDER",
                "AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY",
                "GOODREADS_BOOKS_URL", "GOODREADS_AUTHORS_URL", "SUPPORT_TICKETS_FILE", "LOCAL_OPENAI_JOB_SECONDS",
                "DAGSTER_HOME")


def dagster_cli(*args: str) -> list[str]:
    """argv of the `dagster` command installed beside this interpreter."""
    return [str(BIN / "dagster"), *args]


def dg_cli(*args: str) -> list[str]:
    """argv of the `dg` command installed beside this interpreter."""
    return [str(BIN / "dg"), *args]


@dataclass(frozen=True)
class Dataset:
    """A generated Goodreads-shaped pair of input files."""

    books: int
    authors: int
    folder: Path

    @property
    def books_file(self) -> Path:
        return self.folder / BOOKS_FILE_NAME

    @property
    def authors_file(self) -> Path:
        return self.folder / AUTHORS_FILE_NAME

    @property
    def input_files(self) -> list[Path]:
        return [self.books_file, self.authors_file]

    def env(self) -> dict[str, str]:
        """The environment that points the pipeline at these files."""
        return {"GOODREADS_BOOKS_URL": str(self.books_file), "GOODREADS_AUTHORS_URL": str(self.authors_file)}

    def describe(self) -> dict[str, Any]:
        return {"books": self.books, "authors": self.authors,
                "books_mb": round(self.books_file.stat().st_size / 1e6, 1),
                "authors_mb": round(self.authors_file.stat().st_size / 1e6, 1)}


def dataset(books: int = GOODREADS_BOOKS, authors: int = GOODREADS_AUTHORS, seed: int = 42) -> Dataset:
    """The cached dataset, generated with `python -m fine_tuning.sample_data` on first use."""
    folder = CACHE_DIR / f"goodreads-{books}-{authors}-seed{seed}"
    data = Dataset(books, authors, folder)
    if not (data.books_file.is_file() and data.authors_file.is_file()):
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=".generating-", dir=CACHE_DIR))
        subprocess.run(
            [sys.executable, "-m", "fine_tuning.sample_data", "--out", str(partial), "--books", str(books),
             "--authors", str(authors), "--seed", str(seed)],
            cwd=ROOT, check=True, stdout=sys.stderr,  # stdout is the benchmark's JSON alone
        )
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)  # a generation cut short never passes for a complete dataset
    return data


@dataclass(frozen=True)
class TicketsDataset:
    """A generated support ticket file (`python -m fine_tuning.sample_tickets`)."""

    tickets: int
    folder: Path

    @property
    def tickets_file(self) -> Path:
        return self.folder / TICKETS_FILE_NAME

    @property
    def input_files(self) -> list[Path]:
        return [self.tickets_file]

    def env(self) -> dict[str, str]:
        """The environment that points the support_tickets task at this file."""
        return {"SUPPORT_TICKETS_FILE": str(self.tickets_file)}

    def describe(self) -> dict[str, Any]:
        return {"tickets": self.tickets, "tickets_mb": round(self.tickets_file.stat().st_size / 1e6, 1)}


def tickets_dataset(tickets: int = GOODREADS_BOOKS, seed: int = 42) -> TicketsDataset:
    """The cached ticket file, generated on first use (as many tickets as Goodreads has books at 1x by default:
    one example per row in both tasks)."""
    folder = CACHE_DIR / f"tickets-{tickets}-seed{seed}"
    data = TicketsDataset(tickets, folder)
    if not data.tickets_file.is_file():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=".generating-", dir=CACHE_DIR))
        subprocess.run([sys.executable, "-m", "fine_tuning.sample_tickets", "--out", str(partial), "--tickets",
                        str(tickets), "--seed", str(seed)], cwd=ROOT, check=True, stdout=sys.stderr)
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    return data


@dataclass(frozen=True)
class BenchTask:
    """One shipped task as the benchmarks drive it: its job, its prep assets and where its files go."""

    name: str
    job: str
    prep_assets: str  # --select / --assets: the source's assets and both files
    training_files_op: str
    tuning_resource: str
    files_subdir: str  # under FINE_TUNING_WORKDIR

    def data(self, scale: int = 1) -> Dataset | TicketsDataset:
        """Its input at `scale` times Goodreads' size (books, or as many tickets)."""
        if self.name == "goodreads":
            return dataset(books=GOODREADS_BOOKS * scale)
        return tickets_dataset(GOODREADS_BOOKS * scale)

    def run_config(self, **extra: Any) -> dict[str, Any]:
        """Run config that lifts the budget: the benchmark measures the checks, not the budget decision."""
        config: dict[str, Any] = {"resources": {self.tuning_resource: {"config": {"max_cost_usd": 1_000_000.0}}}}
        config.update(extra)
        return config


TASKS = {
    "goodreads": BenchTask(
        "goodreads", "fine_tuning_job",
        "graphic_novels,authors,book_category,enriched_graphic_novels,training_file,validation_file",
        "training_files", "tuning", "files",
    ),
    "support_tickets": BenchTask(
        "support_tickets", "support_tickets_fine_tuning_job",
        "support_tickets/tickets,support_tickets/training_file,support_tickets/validation_file",
        "support_tickets__training_files", "support_tickets_tuning", "files/support_tickets",
    ),
}


def bench_tasks(requested: str | None = None) -> list[BenchTask]:
    """The tasks to measure: `requested` (comma-separated), else FINE_TUNING_BENCH_TASKS, else both."""
    names = requested or os.environ.get("FINE_TUNING_BENCH_TASKS") or ",".join(TASK_NAMES)
    unknown = [name for name in names.split(",") if name and name not in TASKS]
    if unknown:
        raise SystemExit(f"unknown task(s) {unknown}: choose from {list(TASKS)}")
    return [TASKS[name] for name in names.split(",") if name]


def child_env(workdir: Path, home: Path | None = None, **extra: str) -> dict[str, str]:
    """The caller's environment without anything that points elsewhere, plus the run's own paths."""
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}
    env["FINE_TUNING_WORKDIR"] = str(workdir)
    env["FINE_TUNING_PROVIDER"] = "local"  # benchmarks name their provider: the local backend
    if home is not None:
        env["DAGSTER_HOME"] = str(home)
    env.update(extra)
    return env


def new_instance(parent: Path, name: str = "dagster_home") -> Path:
    """A DAGSTER_HOME with the project's dagster.yaml whose storage already exists (not timed)."""
    home = parent / name
    home.mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = child_env(parent / "unused-workdir", home)
    subprocess.run(dagster_cli("instance", "migrate"), cwd=ROOT, env=env, check=True, capture_output=True)
    return home


@dataclass
class Timed:
    """One whole process: its wall time, the peak RSS of its largest process, its output."""

    argv: list[str]
    wall_seconds: float
    peak_rss_mb: float
    returncode: int
    output: str
    # (epoch seconds, RSS in MB of the largest process of its tree), sampled while it ran
    rss_samples: list[tuple[float, float]] = field(default_factory=list, repr=False)

    def check(self) -> Timed:
        if self.returncode != 0:
            raise SystemExit(f"{' '.join(self.argv[:6])} ... failed ({self.returncode}):\n{self.output[-4000:]}")
        return self

    def peak_rss_between(self, start: float, end: float) -> float | None:
        """The largest sampled RSS (MB) within [start, end] (epoch seconds), None without a sample."""
        inside = [rss for at, rss in self.rss_samples if start <= at <= end]
        return max(inside) if inside else None


RSS_SAMPLE_SECONDS = 0.05


def _tree_rss_mb(pid: int) -> float:
    """RSS of the largest process among `pid` and its descendants (0 when it is gone)."""
    largest, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                largest = max(largest, int(line.split()[1]) / 1024)
        todo.extend(int(child) for child in children)
    return largest


def timed(argv: Sequence[str], env: dict[str, str], timeout: float = 3600) -> Timed:
    """Run a process to its end; wall time from start to exit, peak RSS from wait4.

    wait4's ru_maxrss is the largest resident set of the process and of the descendants it
    waited for: with steps in subprocesses it is the largest of them, not their sum. The RSS is
    also sampled every RSS_SAMPLE_SECONDS, so that a run's peak can be placed in a step.
    """
    samples: list[tuple[float, float]] = []
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        process = subprocess.Popen(list(argv), cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
        deadline, next_sample = started + timeout, started
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            now = time.perf_counter()
            if now > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            if now >= next_sample:
                samples.append((time.time(), round(_tree_rss_mb(process.pid), 1)))
                next_sample = now + RSS_SAMPLE_SECONDS
            time.sleep(0.01)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read().decode("utf-8", "replace")
    return Timed(list(argv), round(wall, 3), round(usage.ru_maxrss / 1024, 1), process.returncode, text, samples)


@dataclass
class RunEvents:
    """What the instance recorded about one run: when it started and ended, and each step."""

    run_id: str
    job_name: str
    status: str
    run_start: float | None
    run_end: float | None
    steps: dict[str, tuple[float, float]] = field(default_factory=dict)  # step key -> (start, end)
    materializations: dict[str, dict[str, Any]] = field(default_factory=dict)  # asset -> metadata
    checks: dict[str, bool] = field(default_factory=dict)  # check name -> passed

    def step_seconds(self) -> dict[str, float]:
        return {key: round(end - start, 3) for key, (start, end) in self.steps.items()}


def latest_run(home: Path) -> RunEvents:
    """The newest run of the instance at `home`, read through Dagster's own API."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_runs(limit=1)[0]
        records = instance.all_logs(run.run_id)
    events = RunEvents(run.run_id, run.job_name, run.status.value, None, None)
    kinds = dg.DagsterEventType
    starts: dict[str, float] = {}
    for record in records:
        event = record.dagster_event
        if event is None:
            continue
        kind = event.event_type
        if kind == kinds.RUN_START:
            events.run_start = record.timestamp
        elif kind in (kinds.RUN_SUCCESS, kinds.RUN_FAILURE):
            events.run_end = record.timestamp
        elif kind == kinds.STEP_START and record.step_key:
            starts[record.step_key] = record.timestamp
        elif kind in (kinds.STEP_SUCCESS, kinds.STEP_FAILURE) and record.step_key in starts:
            events.steps[record.step_key] = (starts[record.step_key], record.timestamp)
        elif kind == kinds.ASSET_MATERIALIZATION:
            materialization = event.step_materialization_data.materialization
            events.materializations[materialization.asset_key.to_user_string()] = {
                name: value.value for name, value in materialization.metadata.items()
            }
        elif kind == kinds.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            events.checks[evaluation.check_name] = evaluation.passed
    return events


def run_config_file(folder: Path, config: dict[str, Any]) -> Path:
    """Run config as a YAML file (JSON is YAML) for `-c`."""
    path = folder / "run_config.yaml"
    path.write_text(json.dumps(config))
    return path


def median(values: Sequence[float]) -> float:
    return round(statistics.median(values), 3)


def ratio(figure: float, reference: float) -> float:
    return round(figure / reference, 2) if reference else float("inf")


def machine() -> dict[str, Any]:
    """Where and when: the figures mean little without the load the machine was under."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def target(figure: float, limit: float, comparison: str = "<=") -> dict[str, Any]:
    """A figure next to its limit, and whether it holds."""
    passed = figure <= limit if comparison == "<=" else figure >= limit
    return {"figure": figure, "limit": f"{comparison} {limit}", "pass": passed}


@contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A temporary folder under the benchmark cache (same disk as the datasets)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=CACHE_DIR))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def emit(summary: dict[str, Any], rows: Sequence[str] = ()) -> None:
    """One JSON object on stdout: the benchmark's whole result; then its rows of the README's Performance
    table (also in the JSON as `readme_rows`) on stderr, and appended to FINE_TUNING_BENCH_ROWS when set
    (`make bench` collects every script's rows in one file)."""
    if rows:
        summary["readme_rows"] = list(rows)
    print(json.dumps(summary, indent=2), flush=True)
    if rows:
        print("\n".join(["README Performance rows:", *rows]), file=sys.stderr, flush=True)
        collected = os.environ.get("FINE_TUNING_BENCH_ROWS")
        if collected:
            with open(collected, "a", encoding="utf-8") as handle:
                handle.write("\n".join(rows) + "\n")


def seconds(value: float) -> str:
    """Seconds as the README's table writes them."""
    return f"{value:,.1f} s" if value >= 1 else f"{value:.2f} s"


def readme_row(number: str, what: str, figure: str, reference: str = "", ratio: str = "", limit: str = "",
               holds: bool | None = None) -> str:
    """One row of the README's Performance table: | # | target | figure | reference (same run) | ratio | limit | holds |."""
    verdict = "" if holds is None else ("yes" if holds else "no")
    return f"| {number} | {what} | {figure} | {reference} | {ratio} | {limit} | {verdict} |"


@dataclass
class RequestLog:
    """Every request a local backend served: (time, method, path, status), in order."""

    entries: list[tuple[float, str, str, int]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.entries.append((time.time(), method, path, status))

    def count(self, method: str, path_pattern: str, since: float = 0.0, until: float = float("inf")) -> int:
        """Requests with this method whose path matches the regex, served within [since, until]."""
        pattern = re.compile(path_pattern)
        with self._lock:
            return sum(1 for at, m, path, _ in self.entries
                       if m == method and pattern.fullmatch(path) and since <= at <= until)


@contextmanager
def counted_local_server(store: Path, **options: Any) -> Iterator[tuple[str, RequestLog]]:
    """The local backend over real HTTP (uvicorn in a thread of this process), counting what it serves.

    `options` are the backend's options (job_seconds, latency_ms, ...). Yields (base URL, log).
    """
    from local_openai.server import running_server

    log = RequestLog()
    with running_server(store, **options) as server:
        router, handle = server.router, server.router.handle

        def counted(request: Any) -> Any:
            response = handle(request)
            log.add(request.method, request.path, response.status)
            return response

        router.handle = counted  # the ASGI app looks the method up on every request
        yield server.base_url, log


def remote_backend_env(base_url: str) -> dict[str, str]:
    """What points a run at an OpenAI-compatible server (the local one accepts any key)."""
    return {"OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "sk-local-benchmark"}


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_local_server(data_dir: str, port: int, *flags: str) -> subprocess.Popen[bytes]:
    """`python -m local_openai serve` as its own process on loopback (jobs of 0.5 s)."""
    return subprocess.Popen(
        [sys.executable, "-m", "local_openai", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--data-dir", data_dir, "--job-seconds", "0.5", *flags],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def wait_until_up(client: openai.OpenAI, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Block until the server answers; fail when it exits or the timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.models.list()
            return
        except openai.APIConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("local OpenAI server did not start") from None
            time.sleep(0.05)

