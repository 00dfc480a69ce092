"""The whole job from the CLI, then the same job again with nothing changed.

    python benchmarks/bench_job.py [--books 89411] [--job-seconds 3] [--reruns 3]

`dagster job execute -m fine_tuning.definitions -j fine_tuning_job` on a real instance, at
Goodreads scale (generated data, cached), against the local backend over real HTTP (uvicorn
in this process, every request counted on the server side). The first run loads, writes,
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


def run_job(env: dict[str, str], home: Path, config: Path, log: support.RequestLog) -> dict[str, Any]:
    """One whole job: its wall time, peak RSS, where the time went and the paid requests it made."""
    argv = support.dagster_cli("job", "execute", "-m", "fine_tuning.definitions", "-j", "fine_tuning_job", "-c", str(config))
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
        "reused_provider_job": events.materializations.get("fine_tuned_model", {}).get("reused"),
        **{name: log.count(method, path, since=started, until=ended) for name, (method, path) in PAID_REQUESTS.items()},
        "requests": sum(1 for at, *_ in log.entries if started <= at <= ended),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=int, default=support.GOODREADS_BOOKS)
    parser.add_argument("--job-seconds", type=float, default=3.0, help="how long the local backend's jobs take")
    parser.add_argument("--reruns", type=int, default=3, help="unchanged re-runs after the first run")
    args = parser.parse_args(argv)
    data = support.dataset(books=args.books)
    before = support.machine()
    with support.scratch("job-") as folder:
        home = support.new_instance(folder)
        # The files at Goodreads scale cost more than the default $5 budget to train on.
        config = support.run_config_file(folder, {
            "resources": {"tuning": {"config": {"max_cost_usd": 1_000_000.0}}},
            "ops": {"fine_tuned_model": {"config": {"poll_interval_seconds": 0.5}}},
        })
        with support.counted_local_server(folder / "store", job_seconds=args.job_seconds) as (base_url, log):
            env = support.child_env(folder / "work", home, **data.env(), **support.remote_backend_env(base_url))
            first = run_job(env, home, config, log)
            reruns = [run_job(env, home, config, log) for _ in range(args.reruns)]
    again = sorted(reruns, key=lambda run: run["wall_seconds"])[len(reruns) // 2]  # the median re-run
    ratio = support.ratio(again["wall_seconds"], first["wall_seconds"])
    support.emit({
        "benchmark": "whole fine_tuning_job from the CLI: first run, then an unchanged re-run",
        "machine_before": before,
        "dataset": data.describe(),
        "first_run": first,
        "unchanged_rerun": again,
        "rerun_wall_seconds_all": [run["wall_seconds"] for run in reruns],
        "rerun_vs_first_wall": ratio,
        "target_rerun_wall": support.target(ratio, 0.25),
        "target_rerun_paid_requests": {
            "figure": {name: sum(run[name] for run in reruns) for name in PAID_REQUESTS}, "limit": "all 0",
            "pass": all(run[name] == 0 for run in reruns for name in PAID_REQUESTS),
        },
        "machine_after": support.machine(),
    })
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    raise SystemExit(main())
