"""The local backend's learner on Goodreads-scale training files: 56k examples x 1 epoch.

    python benchmarks/bench_learner.py [--tasks goodreads,support_tickets] [--repeat 3]

The files are the pipeline's own, for each shipped task (`--tasks`, or FINE_TUNING_BENCH_TASKS):
`training.jsonl` and `validation.jsonl` written by the prep at Goodreads scale (support_tickets:
as many tickets as Goodreads has books), cached by bench_prep.py; produced here with
`dagster asset materialize` when the cache has none. A fresh process parses them, then trains with the backend's
"auto" batch size and learning-rate multiplier for one epoch, as many times as --repeat; the
median is compared with the target of 5 s. The validation accuracy of the trained model
shows that speed did not cost learning.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import support  # noqa: E402

LIMIT_SECONDS = 5.0


def task_files(task: support.BenchTask) -> Path:
    """The folder holding the task's training.jsonl and validation.jsonl at Goodreads scale (made once)."""
    data = task.data()
    files = data.folder / "files"
    if (files / "training.jsonl").is_file() and (files / "validation.jsonl").is_file():
        return files
    with support.scratch("learner-files-") as folder:
        home = support.new_instance(folder)
        config = support.run_config_file(folder, task.run_config())
        argv = support.dagster_cli("asset", "materialize", "-m", "fine_tuning.definitions", "--select", task.prep_assets,
                                   "-c", str(config))
        support.timed(argv, support.child_env(folder / "work", home, **data.env())).check()
        (folder / "work" / task.files_subdir).rename(files)
    return files


def child(files: Path, repeat: int) -> None:
    """Inside the measuring process: parse once, train `repeat` times, report each run."""
    from local_openai import learner

    def conversations(name: str) -> list[list[dict[str, Any]]]:
        with open(files / name, encoding="utf-8") as handle:
            return [json.loads(line)["messages"] for line in handle]

    training, validation = conversations("training.jsonl"), conversations("validation.jsonl")
    hyper = learner.resolve_hyperparameters({"n_epochs": 1}, len(training))
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = learner.train(training, n_epochs=1, batch_size=hyper["batch_size"],
                               learning_rate_multiplier=hyper["learning_rate_multiplier"], seed=42, validation=validation)
        seconds.append(round(time.perf_counter() - started, 3))
    model = result.model
    correct = sum(model.ranked_replies(m[:-1])[0] == m[-1]["content"] for m in validation)
    print(json.dumps({
        "train_seconds_all": seconds,
        "examples": len(training),
        "validation_examples": len(validation),
        "hyperparameters": hyper,
        "steps": result.total_steps,
        "features": len(model.weights),
        "final_train_loss": round(result.steps[-1].train_loss, 4),
        "full_valid_loss": round(result.checkpoints[-1].full_valid_loss or 0.0, 4),
        "valid_accuracy": round(correct / len(validation), 4),
    }))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=None, help="goodreads,support_tickets (default: FINE_TUNING_BENCH_TASKS, else both)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.repeat)
        return 0
    summary: dict[str, Any] = {"benchmark": "local learner: Goodreads-scale training file x 1 epoch",
                               "machine_before": support.machine()}
    rows: list[str] = []
    for task in support.bench_tasks(args.tasks):
        files = task_files(task)
        run = support.timed([sys.executable, __file__, "--child", str(files), "--repeat", str(args.repeat)],
                            support.child_env(files.parent)).check()
        report = json.loads(run.output.strip().splitlines()[-1])
        seconds = statistics.median(report["train_seconds_all"])
        target = support.target(seconds, LIMIT_SECONDS)
        summary[task.name] = {**report, "train_seconds": seconds, "target_train_seconds": target,
                              "process_peak_rss_mb": run.peak_rss_mb}
        rows.append(support.readme_row(
            "-", f"{task.name}: local learner, {report['examples']:,} examples x 1 epoch (median of {args.repeat})",
            support.seconds(seconds), limit=f"{LIMIT_SECONDS:g} s", holds=target["pass"]))
    summary["machine_after"] = support.machine()
    support.emit(summary, rows)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    raise SystemExit(main())
