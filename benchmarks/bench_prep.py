"""Prep up to both checked files on the paths users take, against a bare DuckDB load of the same files.

    python benchmarks/bench_prep.py [--tasks goodreads,support_tickets] [--scales 1,10] [--repeat 2]
                                    [--paths-10x asset_materialize] [--executors multiprocess,forkserver]

Both shipped tasks (`--tasks`, or FINE_TUNING_BENCH_TASKS; scales also from FINE_TUNING_BENCH_SCALES).
Goodreads: `python -m fine_tuning.sample_data` at Goodreads scale (89,411 books, 829,529 authors)
and with 10x the books; support_tickets: `python -m fine_tuning.sample_tickets` with as many
tickets as Goodreads has books (89,411, and 10x). Generated once and cached
(FINE_TUNING_BENCH_CACHE, default $TMPDIR/fine_tuning_bench). Every measurement is one whole
process against a real instance:

- `bare`: the floor: a Python process that loads the task's input files into a fresh DuckDB
  file (`read_json_auto`, ignore_errors) and nothing else;
- `asset_materialize`: `dagster asset materialize --select <prep assets> -m fine_tuning.definitions`
  runs the implicit asset job with the definitions' default executor: the executor the UI's
  "Materialize all" uses (there through the run launcher);
- `dg_launch`: `dg launch --assets <prep assets>`, the same job from the dg CLI;
- `job_execute`: `dagster job execute -j <task's job> -o <prep ops and the file checks>`.

The prep assets are, for Goodreads, graphic_novels, authors, book_category,
enriched_graphic_novels, training_file and validation_file; for support_tickets, tickets and its
two files; with the file checks (blocking: a run passes only when they pass). The same run
also gives the tokenization reference: one process reading each line of both written files,
parsing it and counting its tokens, once. Each path is compared with
the bare load, and with the bare load plus that pass; the check steps with that pass alone.
`--executors` adds `asset_materialize` with Dagster's multiprocess executor (spawned, and with a
forkserver preloading the definitions) to show why the default is in-process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import support  # noqa: E402

# Targets: wall time against the bare load of the same files, and against the bare load plus
# one tokenization pass of the written files (the work no prep can skip); peak memory against
# the bare load's; the check steps against one tokenization pass.
WALL_LIMIT = {1: 2.5, 10: 2.0}
WALL_VS_LOAD_AND_TOKENIZE_LIMIT = 1.3
RSS_LIMIT = 1.5
CHECKS_LIMIT = 1.1
PATH_NAMES = {
    "asset_materialize": "`dagster asset materialize` (the UI's executor)",
    "dg_launch": "`dg launch --assets`",
    "job_execute": "`dagster job execute -o <prep ops, file checks>`",
}


def check_ops(task: support.BenchTask) -> str:
    """`-o` for the task's job: the prep ops (training_files and its ancestors) and the file checks."""
    import warnings

    warnings.simplefilter("ignore")
    from fine_tuning.definitions import defs

    job = defs.resolve_job_def(task.job)
    deps = job.graph.dependency_structure
    checks = [
        name for name in job.graph.node_dict
        if {out.node_name for outs in deps.input_to_upstream_outputs_for_node(name).values() for out in outs}
        == {task.training_files_op}
    ]
    return ",".join([f"*{task.training_files_op}", *sorted(checks)])


def path_argv(path: str, task: support.BenchTask, config: Path, ops: str) -> list[str]:
    """The command line of one measured path."""
    if path == "asset_materialize":
        return support.dagster_cli("asset", "materialize", "-m", "fine_tuning.definitions", "--select", task.prep_assets,
                                   "-c", str(config))
    if path == "dg_launch":
        return support.dg_cli("launch", "--assets", task.prep_assets, "-c", str(config))
    if path == "job_execute":
        return support.dagster_cli("job", "execute", "-m", "fine_tuning.definitions", "-j", task.job,
                                   "-o", ops, "-c", str(config))
    variant = path.removeprefix("asset_materialize_")  # multiprocess, forkserver
    return support.dagster_cli("asset", "materialize", "-f", str(Path(__file__).parent / "executor_variants.py"),
                               "-a", variant, "--select", task.prep_assets, "-c", str(config))


def measure_bare(data: support.Dataset | support.TicketsDataset, folder: Path) -> dict[str, Any]:
    """The floor: load the input files into a fresh DuckDB file, nothing else."""
    workdir = folder / f"bare-{time.monotonic_ns()}"
    workdir.mkdir()
    argv = [sys.executable, __file__, "--bare", str(workdir / "bare.duckdb"), *map(str, data.input_files)]
    run = support.timed(argv, support.child_env(workdir)).check()
    work = json.loads(run.output.strip().splitlines()[-1])
    shutil.rmtree(workdir)
    return {"wall_seconds": run.wall_seconds, "peak_rss_mb": run.peak_rss_mb, **work}


def measure_path(path: str, task: support.BenchTask, data: support.Dataset | support.TicketsDataset, folder: Path,
                 home: Path, config: Path, ops: str, keep_files: Path | None = None) -> dict[str, Any]:
    """One user path from a cold DuckDB file: wall, peak RSS, and where the time went."""
    workdir = folder / f"{path}-{time.monotonic_ns()}"
    started_at = time.time()
    run = support.timed(path_argv(path, task, config, ops), support.child_env(workdir, home, **data.env())).check()
    events = support.latest_run(home)
    if events.status != "SUCCESS" or not events.checks or not all(events.checks.values()):
        raise SystemExit(f"{path}: run {events.run_id} {events.status}, checks {events.checks}\n{run.output[-3000:]}")
    steps = events.step_seconds()
    check_seconds = sum(s for key, s in steps.items() if "check" in key)
    step_total = sum(steps.values())
    result = {
        "wall_seconds": run.wall_seconds,
        "peak_rss_mb": run.peak_rss_mb,
        "startup_seconds": round(events.run_start - started_at, 3) if events.run_start else None,
        # The steps that load and clean the task's source (everything before the files and their checks).
        "source_steps_seconds": round(sum(s for key, s in steps.items()
                                          if key != task.training_files_op and "check" not in key), 3),
        "training_files_seconds": steps.get(task.training_files_op),
        "check_steps_seconds": round(check_seconds, 3),
        "between_steps_and_exit_seconds": round(run.wall_seconds - step_total - (events.run_start - started_at), 3)
        if events.run_start else None,
        "steps": len(steps),
        "step_seconds": steps,
        # Where the peak is: the largest sampled RSS during each step (MB).
        "step_peak_rss_mb": {key: run.peak_rss_between(start, end) for key, (start, end) in events.steps.items()},
        "examples": {key: values.get("examples") for key, values in events.materializations.items()
                     if key.endswith(("training_file", "validation_file"))},
    }
    files = workdir / task.files_subdir
    if keep_files is not None:
        result["tokenize_once_seconds"] = tokenize_once(files)
        if not keep_files.exists():
            shutil.copytree(files, keep_files)
    shutil.rmtree(workdir, ignore_errors=True)
    return result


def tokenize_once(files: Path) -> float:
    """Target 2's reference: one process reads each line of both files, parses it and counts its tokens."""
    argv = [sys.executable, __file__, "--tokenize-once", str(files / "training.jsonl"), str(files / "validation.jsonl")]
    run = support.timed(argv, support.child_env(files.parent)).check()
    return json.loads(run.output.strip().splitlines()[-1])["seconds"]


def summarize(scale: int, bare: list[dict[str, Any]], paths: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians per path, each next to the floor measured in the same run, and the targets."""
    floor = {key: support.median([b[key] for b in bare]) for key in ("wall_seconds", "peak_rss_mb", "work_seconds")}
    summary: dict[str, Any] = {"bare_duckdb_load": {**floor, "wall_seconds_all": [b["wall_seconds"] for b in bare]}}
    # Every path writes the same files: one tokenization reference serves them all.
    tokenize = [r["tokenize_once_seconds"] for runs in paths.values() for r in runs if "tokenize_once_seconds" in r]
    if tokenize:
        summary["tokenize_once"] = {"seconds": support.median(tokenize), "seconds_all": tokenize}
    for path, runs in paths.items():
        medians = {key: support.median([r[key] for r in runs]) for key in runs[0]
                   if isinstance(runs[0][key], (int, float)) and runs[0][key] is not None}
        entry = {**medians, "wall_seconds_all": [r["wall_seconds"] for r in runs], "examples": runs[0]["examples"],
                 "step_seconds_first_run": runs[0]["step_seconds"],
                 "step_peak_rss_mb_first_run": runs[0]["step_peak_rss_mb"],
                 "wall_vs_bare": support.ratio(medians["wall_seconds"], floor["wall_seconds"]),
                 "peak_rss_vs_bare": support.ratio(medians["peak_rss_mb"], floor["peak_rss_mb"])}
        if path.endswith("forkserver"):
            entry["peak_rss_note"] = "steps run in the forkserver's children, which wait4 does not see: not comparable"
        if path in ("asset_materialize", "dg_launch", "job_execute"):
            entry["target_wall"] = support.target(entry["wall_vs_bare"], WALL_LIMIT.get(scale, WALL_LIMIT[10]))
            entry["target_peak_rss"] = support.target(entry["peak_rss_vs_bare"], RSS_LIMIT)
        if tokenize:
            once = summary["tokenize_once"]["seconds"]
            entry["wall_vs_bare_plus_tokenize_once"] = support.ratio(medians["wall_seconds"], floor["wall_seconds"] + once)
            entry["target_wall_vs_bare_plus_tokenize_once"] = support.target(
                entry["wall_vs_bare_plus_tokenize_once"], WALL_VS_LOAD_AND_TOKENIZE_LIMIT)
            entry["checks_vs_tokenize_once"] = support.ratio(medians["check_steps_seconds"], once)
            entry["target_checks"] = support.target(entry["checks_vs_tokenize_once"], CHECKS_LIMIT)
        summary[path] = entry
    return summary


def run_scale(task: support.BenchTask, scale: int, repeat: int, paths: list[str], ops: str) -> dict[str, Any]:
    """Every measurement at one data size, interleaved so drifting machine load hits all alike."""
    data = task.data(scale)
    bare: list[dict[str, Any]] = []
    results: dict[str, list[dict[str, Any]]] = {path: [] for path in paths}
    files_cache = data.folder / "files"
    with support.scratch(f"prep-{task.name}-{scale}x-") as folder:
        home = support.new_instance(folder)
        config = support.run_config_file(folder, task.run_config())
        for _ in range(repeat):
            bare.append(measure_bare(data, folder))
            for path in paths:
                keep = files_cache if path == "asset_materialize" else None
                results[path].append(measure_path(path, task, data, folder, home, config, ops, keep_files=keep))
    return {"dataset": data.describe(), "repeat": repeat, **summarize(scale, bare, results)}


def child_bare(database: str, *inputs: str) -> None:
    """Inside the bare child: the floor's own work (each input file into its own table), timed after the import."""
    import duckdb

    started = time.perf_counter()
    rows = []
    with duckdb.connect(database) as con:
        for number, path in enumerate(inputs):
            con.execute(f"CREATE TABLE input_{number} AS SELECT * FROM read_json_auto(?, ignore_errors = true)", [path])
            rows.append(con.execute(f"SELECT count(*) FROM input_{number}").fetchone()[0])
    print(json.dumps({"work_seconds": round(time.perf_counter() - started, 3), "rows": rows}))


def child_tokenize_once(files: list[str]) -> None:
    """Inside the tokenize child: read, parse and count every example of the files once."""
    from fine_tuning.core.tokens import count_example_tokens, token_counter

    counter = token_counter()
    counter.count("warm-up")  # loading the encoding is not tokenizing
    started = time.perf_counter()
    total = 0
    for name in files:
        with open(name, encoding="utf-8") as handle:
            for line in handle:
                total += count_example_tokens(json.loads(line)["messages"], counter)
    print(json.dumps({"seconds": round(time.perf_counter() - started, 3), "tokens": total, "method": counter.method}))


def readme_rows(task: str, summary: dict[str, Any]) -> list[str]:
    """This run's rows of the README's Performance table (targets 1-3), each figure beside its same-run reference."""
    row, rows = support.readme_row, []
    for key, scale_summary in summary.items():
        if not key.startswith("scale_"):
            continue
        scale = key.removeprefix("scale_")
        bare = scale_summary["bare_duckdb_load"]
        once = scale_summary.get("tokenize_once", {}).get("seconds")
        for path, label in PATH_NAMES.items():
            entry = scale_summary.get(path)
            if entry is None:
                continue
            wall = entry["wall_seconds"]
            what = f"{task}: prep to both checked files, {scale}, {label}"
            rows.append(row("1", what, support.seconds(wall), f"bare DuckDB load {support.seconds(bare['wall_seconds'])}",
                            f"{entry['wall_vs_bare']}x", f"{entry['target_wall']['limit'].split()[-1]}x",
                            entry["target_wall"]["pass"]))
            if once is not None:
                reference = f"{support.seconds(bare['wall_seconds'])} + {support.seconds(once)} = " \
                            f"{support.seconds(bare['wall_seconds'] + once)}"
                rows.append(row("1", "same, against bare load + one tokenization pass", support.seconds(wall), reference,
                                f"{entry['wall_vs_bare_plus_tokenize_once']}x", f"{WALL_VS_LOAD_AND_TOKENIZE_LIMIT}x",
                                entry["target_wall_vs_bare_plus_tokenize_once"]["pass"]))
        entry = scale_summary.get("asset_materialize")
        if entry is not None and once is not None:
            rows.append(row("2", f"{task}: file checks on the user path, {scale} (check steps of `dagster asset "
                            "materialize`)", support.seconds(entry["check_steps_seconds"]),
                            f"one tokenization pass of both files {support.seconds(once)}",
                            f"{entry['checks_vs_tokenize_once']}x", f"{CHECKS_LIMIT}x", entry["target_checks"]["pass"]))
        if entry is not None:
            rows.append(row("3", f"{task}: peak memory, {scale}", f"{entry['peak_rss_mb']:,.0f} MB",
                            f"bare load {bare['peak_rss_mb']:,.0f} MB", f"{entry['peak_rss_vs_bare']}x", f"{RSS_LIMIT}x",
                            entry["target_peak_rss"]["pass"]))
    growth = summary.get("peak_rss_10x_vs_1x")
    if growth:
        rows.append(row("3", f"{task}: peak memory growth 1x -> 10x", f"{growth['asset_materialize']}x",
                        f"bare load's growth {growth['bare_duckdb_load']}x", "", "no faster", growth["target"]["pass"]))
    return rows


def measure_task(task: support.BenchTask, scales: list[int], args: argparse.Namespace) -> dict[str, Any]:
    """Every scale of one task, and its memory growth from 1x to 10x."""
    summary: dict[str, Any] = {}
    ops = check_ops(task)
    for scale in scales:
        paths = (args.paths if scale == 1 else args.paths_10x).split(",")
        paths += [f"asset_materialize_{name}" for name in args.executors.split(",") if name and scale == 1]
        summary[f"scale_{scale}x"] = run_scale(task, scale, args.repeat if scale == 1 else args.repeat_10x, paths, ops)
    if "scale_1x" in summary and "scale_10x" in summary:
        one, ten = summary["scale_1x"]["asset_materialize"], summary["scale_10x"]["asset_materialize"]
        growth = support.ratio(ten["peak_rss_mb"], one["peak_rss_mb"])
        bare_growth = support.ratio(summary["scale_10x"]["bare_duckdb_load"]["peak_rss_mb"],
                                    summary["scale_1x"]["bare_duckdb_load"]["peak_rss_mb"])
        # "Grows no faster than the data": from 1x to 10x, no faster than the bare load's own peak.
        summary["peak_rss_10x_vs_1x"] = {"asset_materialize": growth, "bare_duckdb_load": bare_growth,
                                         "target": support.target(growth, bare_growth)}
    return summary


def main(argv: list[str] | None = None) -> int:
    """Generate or reuse the data, measure every path at every scale of every task, print one JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=None, help="goodreads,support_tickets (default: FINE_TUNING_BENCH_TASKS, else both)")
    parser.add_argument("--scales", default=os.environ.get("FINE_TUNING_BENCH_SCALES") or "1,10",
                        help="multiples of the Goodreads books count (default: FINE_TUNING_BENCH_SCALES, else 1,10)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per path at 1x (medians are reported)")
    parser.add_argument("--repeat-10x", type=int, default=1, help="runs per path at larger scales")
    parser.add_argument("--paths", default="asset_materialize,dg_launch,job_execute", help="paths at 1x")
    parser.add_argument("--paths-10x", default="asset_materialize", help="paths at larger scales")
    parser.add_argument("--executors", default="", help="also measure asset_materialize with these: multiprocess,forkserver")
    parser.add_argument("--bare", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--tokenize-once", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare:
        child_bare(*args.bare)
        return 0
    if args.tokenize_once:
        child_tokenize_once(args.tokenize_once)
        return 0
    started = time.perf_counter()
    summary: dict[str, Any] = {"benchmark": "prep to both checked files vs bare DuckDB load", "machine_before": support.machine()}
    scales = [int(s) for s in args.scales.split(",") if s]
    rows: list[str] = []
    for task in support.bench_tasks(args.tasks):
        summary[task.name] = measure_task(task, scales, args)
        rows += readme_rows(task.name, summary[task.name])
    summary["machine_after"] = support.machine()
    summary["benchmark_seconds"] = round(time.perf_counter() - started, 1)
    support.emit(summary, rows)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    raise SystemExit(main())
