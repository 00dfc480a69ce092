"""Evaluation throughput under latency: the accuracy check's online scoring against the sequential bound.

Starts `python -m local_openai serve --latency-ms 200` as a subprocess on a free
127.0.0.1 port with a temporary store, fine-tunes a small model there, then scores it and its
base model on 100 held-out books (200 chat requests) through `core.scoring.ask_models`, the
code the check runs, with the official `openai` client over real HTTP, at several concurrency
limits. The sequential bound is requests x latency (40 s). Prints one JSON object: each figure
next to its reference (the bound, the 10x target, the limit's ideal rate = concurrency / latency).

    python benchmarks/bench_evaluation.py [--books 100] [--latency-ms 200] [--concurrency 4 16 32]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import openai

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import support  # noqa: E402

from fine_tuning.core.prompts import Prompt, training_example, user_message  # noqa: E402
from fine_tuning.core.scoring import Example, ask_models  # noqa: E402

BASE_MODEL = "gpt-4o-mini-2024-07-18"
CATEGORIES = ("fantasy", "horror", "romance", "mystery")
SIGNALS = {
    "fantasy": "dragons wizards enchanted swords quest",
    "horror": "ghouls screaming crypt blood night",
    "romance": "kiss wedding sweetheart letters",
    "mystery": "detective clue murder alibi",
}
TARGET_SPEEDUP = 10.0  # issue 11, target 4




def book(index: int) -> tuple[str, str, str, str]:
    """A deterministic held-out book (title, author, description, category) whose description
    carries its category's signal words."""
    category = CATEGORIES[index % len(CATEGORIES)]
    return f"Book {index}", f"Author {index % 7}", f"{SIGNALS[category]} volume {index}", category


def example(index: int) -> Example:
    """Book `index` as the evaluation asks about it."""
    title, author, description, category = book(index)
    return Example(f"b{index:05d}", user_message(title, author, description)["content"], category)






def fine_tuned_model(client: openai.OpenAI) -> str:
    """Fine-tune on 60 signal books (not the evaluated ones) and return the model's name."""
    lines = [
        json.dumps(training_example(*book(i), CATEGORIES)) for i in range(10_000, 10_060)
    ]
    file_id = client.files.create(file=("bench.jsonl", "\n".join(lines).encode()), purpose="fine-tune").id
    job = client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=file_id)
    while job.status not in ("succeeded", "failed", "cancelled"):
        time.sleep(0.5)
        job = client.fine_tuning.jobs.retrieve(job.id)
    if job.status != "succeeded" or not job.fine_tuned_model:
        raise RuntimeError(f"benchmark job ended {job.status}: {job.error}")
    return job.fine_tuned_model


def measure(client: openai.OpenAI, models: list[str], books: list[Example], concurrency: int,
            latency_s: float) -> dict[str, Any]:
    """One scoring pass at this concurrency limit, with the figures that judge it."""
    start = time.perf_counter()
    scores = ask_models(client, books, Prompt(CATEGORIES), models, concurrency=concurrency, max_retries=0)
    seconds = time.perf_counter() - start
    requests = len(books) * len(models)
    answered = sum(score.examples for score in scores.models.values())
    sequential_bound = requests * latency_s
    ideal_rate = concurrency / latency_s
    rate = requests / seconds
    return {
        "concurrency_limit": concurrency,
        "seconds": round(seconds, 3),
        "sequential_bound_seconds": round(sequential_bound, 3),
        "speedup_vs_sequential_bound": round(sequential_bound / seconds, 2),
        "target_speedup": TARGET_SPEEDUP,
        "meets_target": sequential_bound / seconds >= TARGET_SPEEDUP,
        "requests_per_second": round(rate, 1),
        "limit_requests_per_second": round(ideal_rate, 1),
        "share_of_limit": round(rate / ideal_rate, 3),
        "max_in_flight": scores.max_in_flight,
        "requests": requests,
        "answered": answered,
        "failed_requests": scores.failed_requests,
        "lost_requests": requests - answered,
        "accuracy": {model: round(score.accuracy, 3) for model, score in scores.models.items()},
    }


def main() -> None:
    """Run the benchmark and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=int, default=100, help="held-out books (each asked of 2 models)")
    parser.add_argument("--latency-ms", type=float, default=200.0, help="server latency per request")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 16, 32], help="limits to measure")
    args = parser.parse_args()
    latency_s = args.latency_ms / 1000.0
    books = [example(i) for i in range(args.books)]
    port = support.free_port()
    with tempfile.TemporaryDirectory(prefix="bench-evaluation-") as data_dir:
        process = support.start_local_server(data_dir, port, "--latency-ms", str(args.latency_ms))
        try:
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="bench", max_retries=0)
            support.wait_until_up(client, process)
            models = [fine_tuned_model(client), BASE_MODEL]
            runs = [measure(client, models, books, limit, latency_s) for limit in args.concurrency]
            client.close()
        finally:
            process.terminate()
            process.wait(timeout=30)
    default = next((run for run in runs if run["concurrency_limit"] == 16), runs[-1])
    holds = default["meets_target"] and default["lost_requests"] == 0
    row = support.readme_row(
        "-", f"evaluation, {args.books} books x 2 models, {args.latency_ms:g} ms latency, concurrency "
        f"{default['concurrency_limit']}", f"{support.seconds(default['seconds'])}, {default['requests_per_second']:.0f} req/s, "
        f"{default['lost_requests']} lost", f"sequential bound {support.seconds(default['sequential_bound_seconds'])}",
        f"{default['speedup_vs_sequential_bound']}x faster", f"{TARGET_SPEEDUP:g}x", holds)
    support.emit({
        "benchmark": "evaluation: core.scoring.ask_models over HTTP, local backend with injected latency",
        "python": sys.version.split()[0],
        "books": args.books,
        "models": 2,
        "latency_ms": args.latency_ms,
        "default_concurrency": 16,
        "speedup_at_default": default["speedup_vs_sequential_bound"],
        "target_speedup": TARGET_SPEEDUP,
        "meets_target": holds,
        "runs": runs,
    }, [row])


if __name__ == "__main__":
    main()
