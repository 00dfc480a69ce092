"""The whole job from the CLI, then the same job again with nothing changed.

    python benchmarks/bench_job.py [--tasks goodreads,support_tickets] [--books 89411] [--job-seconds 3] [--reruns 3]

`dagster job execute -m fine_tuning.definitions -j <task's job>` on a real instance, for each
shipped task (`--tasks`, or FINE_TUNING_BENCH_TASKS): Goodreads at Goodreads scale, support
tickets with as many tickets as --books (generated data, cached), against the local backend over
real HTTP (uvicorn in this process, every request counted on the server side). The first run loads, writes,
checks, uploads, fine-tunes and evaluates; the --reruns that follow have nothing new to do
(their median is reported). Targets: an unchanged re-run takes at most a quarter of the first
run's wall time, with 0 uploads, 0 fine-tuning jobs and 0 chat completions.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import support  # noqa: E402

PAID_REQUESTS = {
    "uploads": ("POST", "/v1/files"),
    "fine_tuning_jobs": ("POST", "/v1/fine_tuning/jobs"),
    "chat_completions": ("POST", "/v1/chat/completions"),
}


def run_job(job: str, env: dict[str, str], home: Path, config: Path, log: support.RequestLog) -> dict[str, Any]:
    """One whole job: its wall time, peak RSS, where the time went and the paid requests it made."""
    argv = support.dagster_cli("job", "execute", "-m", "fine_tuning.definitions", "-j", job, "-c", str(config))
    started = time.time()
    run = support.timed(argv, env).check()
    ended = time.time()
    events = support.latest_run(home)
    steps = events.step_seconds()
    return {
        "wall_seconds": run.wall_seconds,
        "peak_rss_mb": run.peak_rss_mb,
        "startup_seconds": round(events.run_start - started, 3) if events.run_start else None,
        "steps_seconds": round(sum(steps.values()), 3),
        "slowest_steps": dict(sorted(steps.items(), key=lambda item: -item[1])[:6]),
        "rebuilt": {key: values.get("rebuilt") for key, values in events.materializations.items() if "rebuilt" in values},
        "reused_provider_job": next((values.get("reused") for key, values in events.materializations.items()
                                     if key.endswith("fine_tuned_model")), None),
        **{name: log.count(method, path, since=started, until=ended) for name, (method, path) in PAID_REQUESTS.items()},
        "requests": sum(1 for at, *_ in log.entries if started <= at <= ended),
    }


def measure_task(task: support.BenchTask, books: int, job_seconds: float, reruns: int) -> dict[str, Any]:
    """The task's first run and its unchanged re-runs, on one instance and one backend."""
    data = task.data() if books == support.GOODREADS_BOOKS else (
        support.dataset(books=books) if task.name == "goodreads" else support.tickets_dataset(books))
    with support.scratch(f"job-{task.name}-") as folder:
        home = support.new_instance(folder)
        # The files at Goodreads scale cost more than the task's default budget to train on.
        fine_tuned_model = "fine_tuned_model" if task.name == "goodreads" else f"{task.name}__fine_tuned_model"
        config = support.run_config_file(folder, task.run_config(
            ops={fine_tuned_model: {"config": {"poll_interval_seconds": 0.5}}}))
        with support.counted_local_server(folder / "store", job_seconds=job_seconds) as (base_url, log):
            env = support.child_env(folder / "work", home, **data.env(), **support.remote_backend_env(base_url))
            first = run_job(task.job, env, home, config, log)
            again_all = [run_job(task.job, env, home, config, log) for _ in range(reruns)]
    again = sorted(again_all, key=lambda run: run["wall_seconds"])[len(again_all) // 2]  # the median re-run
    ratio = support.ratio(again["wall_seconds"], first["wall_seconds"])
    return {
        "dataset": data.describe(),
        "first_run": first,
        "unchanged_rerun": again,
        "rerun_wall_seconds_all": [run["wall_seconds"] for run in again_all],
        "rerun_vs_first_wall": ratio,
        "target_rerun_wall": support.target(ratio, 0.25),
        "target_rerun_paid_requests": {
            "figure": {name: sum(run[name] for run in again_all) for name in PAID_REQUESTS}, "limit": "all 0",
            "pass": all(run[name] == 0 for run in again_all for name in PAID_REQUESTS),
        },
    }


def readme_rows(task: str, result: dict[str, Any], reruns: int) -> list[str]:
    """This task's rows of the README's Performance table (target 4)."""
    first, again = result["first_run"], result["unchanged_rerun"]
    paid = result["target_rerun_paid_requests"]
    return [
        support.readme_row("4", f"{task}: whole job, unchanged re-run (median of {reruns}) vs first run, 1x, over HTTP",
                           support.seconds(again["wall_seconds"]), f"first run {support.seconds(first['wall_seconds'])}",
                           f"{result['rerun_vs_first_wall']}", "0.25", result["target_rerun_wall"]["pass"]),
        support.readme_row("4", f"{task}: uploads, fine-tuning jobs, chat completions in the re-runs",
                           ", ".join(str(n) for n in paid["figure"].values()),
                           "first run: " + ", ".join(str(first[name]) for name in PAID_REQUESTS), "", "all 0",
                           paid["pass"]),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=None, help="goodreads,support_tickets (default: FINE_TUNING_BENCH_TASKS, else both)")
    parser.add_argument("--books", type=int, default=support.GOODREADS_BOOKS, help="books (Goodreads), tickets (support_tickets)")
    parser.add_argument("--job-seconds", type=float, default=3.0, help="how long the local backend's jobs take")
    parser.add_argument("--reruns", type=int, default=3, help="unchanged re-runs after the first run")
    args = parser.parse_args(argv)
    summary: dict[str, Any] = {"benchmark": "whole job from the CLI: first run, then an unchanged re-run",
                               "machine_before": support.machine()}
    rows: list[str] = []
    for task in support.bench_tasks(args.tasks):
        summary[task.name] = measure_task(task, args.books, args.job_seconds, args.reruns)
        rows += readme_rows(task.name, summary[task.name], args.reruns)
    summary["machine_after"] = support.machine()
    support.emit(summary, rows)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    raise SystemExit(main())
