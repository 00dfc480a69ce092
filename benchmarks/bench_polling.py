"""How soon a finished fine-tuning job is noticed, and how many status requests waiting costs.

    python benchmarks/bench_polling.py [--rounds 4] [--interval 4] [--job-seconds 21]

The local backend serves over real HTTP (uvicorn in this process, every request counted on
the server side); the pipeline runs from the CLI against it on a real instance, on the shipped
sample: one whole `dagster job execute -j fine_tuning_job`, then --rounds runs of the
`fine_tuned_model` step alone with force_retrain (a new provider job each time, lasting
--job-seconds). For each round: the time from the job's `finished_at` to the end of the step
(target: median at most interval/2 + 1 s), and the status requests (GET
/v1/fine_tuning/jobs/{id}) per poll interval of waiting (target: at most 1 on average).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import support  # noqa: E402


def job_config(interval: float, force: bool) -> dict[str, Any]:
    return {"ops": {"fine_tuned_model": {"config": {"poll_interval_seconds": interval, "force_retrain": force}}}}


def one_round(folder: Path, env: dict[str, str], home: Path, base_url: str, log: support.RequestLog,
              interval: float) -> dict[str, Any]:
    """One `fine_tuned_model` run that trains a new job; when its end was seen and what waiting cost."""
    import openai

    config = support.run_config_file(folder, job_config(interval, force=True))
    argv = support.dagster_cli("job", "execute", "-m", "fine_tuning.definitions", "-j", "fine_tuning_job",
                               "-o", "fine_tuned_model", "-c", str(config))
    run = support.timed(argv, env).check()
    events = support.latest_run(home)
    step_start, step_end = events.steps["fine_tuned_model"]
    job_id = events.materializations["fine_tuned_model"]["job_id"]
    with openai.OpenAI(base_url=base_url, api_key="sk-local-benchmark") as client:
        job = client.fine_tuning.jobs.retrieve(job_id)
    waited = step_end - job.created_at
    status_requests = log.count("GET", f"/v1/fine_tuning/jobs/{job_id}", since=step_start, until=step_end)
    return {
        "job_id": job_id,
        "process_seconds": run.wall_seconds,
        "job_seconds": job.finished_at - job.created_at,
        "finished_to_step_end_seconds": round(step_end - job.finished_at, 3),
        "waited_seconds": round(waited, 3),
        "status_requests": status_requests,
        "events_requests": log.count("GET", f"/v1/fine_tuning/jobs/{job_id}/events", since=step_start, until=step_end),
        "status_requests_per_interval": round(status_requests / max(waited / interval, 1.0), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--interval", type=float, default=4.0, help="poll_interval_seconds of fine_tuned_model")
    parser.add_argument("--job-seconds", type=float, default=21.0, help="how long the local backend's jobs take")
    args = parser.parse_args(argv)
    before = support.machine()
    with support.scratch("polling-") as folder:
        home = support.new_instance(folder)
        with support.counted_local_server(folder / "store", job_seconds=args.job_seconds) as (base_url, log):
            env = support.child_env(folder / "work", home, **support.remote_backend_env(base_url))
            config = support.run_config_file(folder, job_config(args.interval, force=False))
            first = support.timed(support.dagster_cli("job", "execute", "-m", "fine_tuning.definitions", "-j",
                                                      "fine_tuning_job", "-c", str(config)), env).check()
            rounds = [one_round(folder, env, home, base_url, log, args.interval) for _ in range(args.rounds)]
    latency = statistics.median(r["finished_to_step_end_seconds"] for r in rounds)
    per_interval = statistics.mean(r["status_requests_per_interval"] for r in rounds)
    latency_target = support.target(round(latency, 3), args.interval / 2 + 1.0)
    requests_target = support.target(round(per_interval, 3), 1.0)
    rows = [
        support.readme_row("-", f"polling: median `finished_at` -> end of `fine_tuned_model` (interval {args.interval:g} s)",
                           support.seconds(latency), f"interval / 2 + 1 s = {args.interval / 2 + 1:g} s",
                           limit=f"{args.interval / 2 + 1:g} s", holds=latency_target["pass"]),
        support.readme_row("-", "status requests per poll interval", f"{per_interval:.2f}", limit="1",
                           holds=requests_target["pass"]),
    ]
    support.emit({
        "benchmark": "polling: finished_at to the end of fine_tuned_model, status requests per interval",
        "machine_before": before,
        "poll_interval_seconds": args.interval,
        "local_job_seconds": args.job_seconds,
        "first_whole_job_seconds": first.wall_seconds,
        "rounds": rounds,
        "median_finished_to_step_end_seconds": round(latency, 3),
        "target_latency": latency_target,
        "mean_status_requests_per_interval": round(per_interval, 3),
        "target_status_requests_per_interval": requests_target,
        "machine_after": support.machine(),
    }, rows)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    raise SystemExit(main())
