"""The file checks' one pass vs tokenizing the file once, and token counting on pathological text.

    python benchmarks/bench_file_checks.py [--tasks goodreads,support_tickets] [--examples 20000] [--repeat 3]

Prints one JSON summary:
- `checks_vs_tokenize`, per shipped task (`--tasks`, or FINE_TUNING_BENCH_TASKS; Goodreads-like
  books, or tickets from `fine_tuning.sample_tickets` rendered with the support_tickets task's
  own prompt from its defs.yaml): what the blocking checks run on a file the training-files writer wrote
  (`validate_written_file`: every format rule, sha256, cost, duplicates and the identities the
  overlap and split checks use, with the writer's token counts for the same bytes) against the
  bare minimum of reading, parsing and tokenizing every example once; target: a ratio of at most
  1.1. Also the same pass counting every token itself (`validate_chat_file`, what the validator
  CLI does). Best of --repeat runs each, alternated.
- `long_line`: the validator on a file whose one example holds a 30 MB run without whitespace
  (bounded counting), and tiktoken encoding a 3 MB such run directly (what the validator did
  before counting was bounded; its cost grows with the run's length), each in a child process
  so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import support  # noqa: E402

if TYPE_CHECKING:
    from fine_tuning.core.prompts import Prompt

WORDS = "dragon wizard ghost detective kiss city young old story life world friends family journey secret".split()


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def goodreads_examples(examples: int) -> tuple[list[tuple[str, str]], Prompt]:
    """Book-like (user message, label) rows and the Goodreads prompt."""
    from fine_tuning.core.prompts import Prompt, user_message
    from fine_tuning.core.settings import DEFAULT_CATEGORIES

    rng = random.Random(0)
    rows = [(user_message(f"Title {n}", f"Author {n % 50}",
                          " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 200))))["content"],
             rng.choice(DEFAULT_CATEGORIES)) for n in range(examples)]
    return rows, Prompt(DEFAULT_CATEGORIES)


def ticket_examples(examples: int) -> tuple[list[tuple[str, str]], Prompt]:
    """Generated tickets rendered with the support_tickets task's own template, system text and labels."""
    import yaml

    from fine_tuning.core.prompts import Prompt
    from fine_tuning.sample_tickets import tickets

    task = yaml.safe_load((PROJECT_ROOT / "fine_tuning/defs/support_tickets/task/defs.yaml").read_text())["attributes"]
    template, label = task["prompt"]["user_template"], task["label_column"]
    rows = [(template.format(**ticket), ticket[label]) for ticket in tickets(examples, seed=0)]
    prompt = Prompt(tuple(task["labels"]), task["prompt"]["system"], label, f"{task['name']}_{label}")
    return rows, prompt


def write_training_file(path: Path, examples: int, task: str = "goodreads") -> None:
    """`examples` realistic chat examples of `task`, written as the training-files step writes them (with its token record)."""
    from fine_tuning.core.example_files import WrittenFile, publish_measured, write_examples
    from fine_tuning.core.tokens import token_counter

    rows, prompt = goodreads_examples(examples) if task == "goodreads" else ticket_examples(examples)
    counter = token_counter()
    written = {"train": WrittenFile("train", path)}
    publish_measured({"train": path}, lambda name, handle: write_examples(rows, handle, written[name], prompt, counter),
                     written, counter.method)


def checks_vs_tokenize(path: Path, repeat: int) -> dict:
    """The checks' pass, with the writer's token record and counting, against one tokenization pass."""
    from fine_tuning.core.chat_files import RECORDED, validate_chat_file, validate_written_file
    from fine_tuning.core.tokens import count_example_tokens, token_counter

    counter = token_counter()

    def tokenize_once() -> None:
        with path.open("rb") as handle:
            for line in handle:
                count_example_tokens(json.loads(line)["messages"], counter)

    def checks() -> None:
        assert validate_written_file(path, counter=counter).token_counts_source == RECORDED

    def checks_counting() -> None:
        validate_chat_file(path, counter=counter)

    tokenize_once()  # all share the tokenizer's memo of repeated texts: warm it first
    works = (("tokenize_once", tokenize_once), ("checks", checks), ("checks_counting", checks_counting))
    timings: dict[str, list[float]] = {name: [] for name, _ in works}
    for _ in range(repeat):
        for name, work in works:
            started = time.perf_counter()
            work()
            timings[name].append(time.perf_counter() - started)
    best = {name: min(values) for name, values in timings.items()}
    return {
        "token_method": counter.method,
        "tokenize_once_seconds": round(best["tokenize_once"], 3),
        "checks_seconds": round(best["checks"], 3),
        "checks_counting_seconds": round(best["checks_counting"], 3),
        "ratio": round(best["checks"] / best["tokenize_once"], 2),
        "counting_ratio": round(best["checks_counting"] / best["tokenize_once"], 2),
        "target_ratio": 1.1,
        "pass": best["checks"] / best["tokenize_once"] <= 1.1,
    }


def child_long_line(kind: str, chars: int) -> dict:
    """In a child: validate a file with one `chars`-long run ('validator'), or encode it directly ('tiktoken')."""
    started = time.perf_counter()
    if kind == "tiktoken":
        from fine_tuning.core.tokens import o200k_encoding

        encoding = o200k_encoding()  # the packaged, sha256-checked ranks, offline
        assert encoding is not None, "o200k_base ranks unavailable"
        tokens = len(encoding.encode_ordinary("a" * chars))
        seconds = round(time.perf_counter() - started, 2)
        return {"tokens": tokens, "exact": True, "seconds": seconds, "peak_rss_mb": _peak_rss_mb()}
    from fine_tuning.core.chat_files import validate_chat_file

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "long.jsonl"
        example = {"messages": [{"role": "user", "content": "a" * chars}, {"role": "assistant", "content": "x"}]}
        path.write_text(json.dumps(example) + "\n", encoding="utf-8")
        started = time.perf_counter()
        report = validate_chat_file(path, min_examples=1)
    return {"tokens": report.token_counts[0], "exact": report.tokens_exact,
            "seconds": round(time.perf_counter() - started, 2), "peak_rss_mb": _peak_rss_mb()}


def in_child(kind: str, chars: int) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--chars", str(chars)], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def readme_rows(task: str, examples: int, result: dict) -> list[str]:
    """This task's rows of the README's Performance table (target 2, in process)."""
    row, seconds = support.readme_row, support.seconds
    return [
        row("2", f"{task}: `validate_written_file` in process (`bench_file_checks.py`, {examples // 1000}k examples)",
            seconds(result["checks_seconds"]), f"tokenizing once {seconds(result['tokenize_once_seconds'])}",
            f"{result['ratio']}x", f"{result['target_ratio']}x", result["pass"]),
        row("2", "same pass counting every token (`validate_chat_file`, the validator CLI)",
            seconds(result["checks_counting_seconds"]), seconds(result["tokenize_once_seconds"]),
            f"{result['counting_ratio']}x"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", default=None, help="goodreads,support_tickets (default: FINE_TUNING_BENCH_TASKS, else both)")
    parser.add_argument("--examples", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=["validator", "tiktoken"])
    parser.add_argument("--chars", type=int, default=30_000_000)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_long_line(args.child, args.chars)))
        return
    summary: dict = {"benchmark": "file_checks", "examples": args.examples}
    rows: list[str] = []
    for task in support.bench_tasks(args.tasks):
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "training.jsonl"
            write_training_file(path, args.examples, task.name)
            result = {"file_bytes": path.stat().st_size, **checks_vs_tokenize(path, args.repeat)}
        summary[task.name] = {"checks_vs_tokenize": result}
        rows += readme_rows(task.name, args.examples, result)
    summary["long_line"] = {
        "validator_30mb_line": in_child("validator", 30_000_000),
        "unbounded_tiktoken_3mb_run": in_child("tiktoken", 3_000_000),
    }
    support.emit(summary, rows)


if __name__ == "__main__":
    main()
