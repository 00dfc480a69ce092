"""Requests per second of `GET /v1/fine_tuning/jobs/{id}` on the local backend over real HTTP.

Starts `python -m local_openai serve` as a subprocess on a free 127.0.0.1 port with
a temporary store, creates and finishes one fine-tuning job, then retrieves it repeatedly
(bounded by --requests and --seconds) with keep-alive connections: sequentially through the
official `openai` client, and with N concurrent raw HTTP clients. Prints a JSON summary.

    python benchmarks/bench_local_openai.py [--requests 3000] [--seconds 10] [--threads 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx2
import openai

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import support  # noqa: E402

from fine_tuning.core.prompts import training_example  # noqa: E402

CATEGORIES = ("fantasy", "horror", "romance", "mystery")








def finished_job(client: openai.OpenAI) -> str:
    """Create a small job and wait for it to succeed; returns its id."""
    examples = [
        training_example(f"Book {i}", "Author", f"{CATEGORIES[i % 4]} cue {i}", CATEGORIES[i % 4], CATEGORIES)
        for i in range(40)
    ]
    data = "\n".join(json.dumps(e) for e in examples).encode()
    file_id = client.files.create(file=("bench.jsonl", data), purpose="fine-tune").id
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=file_id)
    while job.status not in ("succeeded", "failed", "cancelled"):
        time.sleep(0.05)
        job = client.fine_tuning.jobs.retrieve(job.id)
    if job.status != "succeeded":
        raise RuntimeError(f"benchmark job ended {job.status}: {job.error}")
    return job.id


def summarize(latencies: list[float], elapsed: float) -> dict[str, Any]:
    """Count, rate and latency percentiles."""
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "seconds": round(elapsed, 3),
        "requests_per_second": round(len(ordered) / elapsed, 1) if elapsed else None,
        "latency_ms_p50": round(statistics.median(ordered) * 1000, 3) if ordered else None,
        "latency_ms_p95": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 3) if ordered else None,
    }


def bench_openai_client(client: openai.OpenAI, job_id: str, requests: int, seconds: float) -> dict[str, Any]:
    """Sequential `client.fine_tuning.jobs.retrieve` calls (includes the client's parsing)."""
    latencies: list[float] = []
    start = time.perf_counter()
    deadline = start + seconds
    while len(latencies) < requests and time.perf_counter() < deadline:
        t = time.perf_counter()
        client.fine_tuning.jobs.retrieve(job_id)
        latencies.append(time.perf_counter() - t)
    return summarize(latencies, time.perf_counter() - start)


def bench_raw_concurrent(base_url: str, job_id: str, threads: int, requests: int, seconds: float) -> dict[str, Any]:
    """`threads` keep-alive raw HTTP clients retrieving the job at once."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_thread = max(1, requests // threads)
    start = time.perf_counter()
    deadline = start + seconds
    errors: list[int] = []

    def run() -> None:
        local: list[float] = []
        with httpx2.Client(base_url=base_url, headers={"authorization": "Bearer bench"}) as http:
            while len(local) < per_thread and time.perf_counter() < deadline:
                t = time.perf_counter()
                response = http.get(f"/fine_tuning/jobs/{job_id}")
                local.append(time.perf_counter() - t)
                if response.status_code != 200:
                    errors.append(response.status_code)
        with lock:
            latencies.extend(local)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    result = summarize(latencies, time.perf_counter() - start)
    result.update(threads=threads, errors=len(errors))
    return result


def main() -> None:
    """Run the benchmark and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="maximum requests per measurement")
    parser.add_argument("--seconds", type=float, default=10.0, help="maximum seconds per measurement")
    parser.add_argument("--threads", type=int, default=4, help="concurrent raw clients")
    args = parser.parse_args()
    port = support.free_port()
    with tempfile.TemporaryDirectory(prefix="bench-local-openai-") as data_dir:
        process = support.start_local_server(data_dir, port)
        try:
            base_url = f"http://127.0.0.1:{port}/v1"
            client = openai.OpenAI(base_url=base_url, api_key="bench", max_retries=0)
            support.wait_until_up(client, process)
            job_id = finished_job(client)
            for _ in range(50):  # warm-up: connections, caches
                client.fine_tuning.jobs.retrieve(job_id)
            sequential = bench_openai_client(client, job_id, args.requests, args.seconds)
            concurrent = bench_raw_concurrent(base_url, job_id, args.threads, args.requests, args.seconds)
            client.close()
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(json.dumps({
        "benchmark": "local_openai GET /v1/fine_tuning/jobs/{id} over HTTP (loopback, uvicorn subprocess)",
        "python": sys.version.split()[0],
        "sequential_openai_client": sequential,
        "concurrent_raw_http": concurrent,
    }, indent=2))


if __name__ == "__main__":
    main()
