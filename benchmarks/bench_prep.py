"""Prep assets vs a bare DuckDB load at Goodreads scale; prints one JSON summary.

    python benchmarks/bench_prep.py [--books 89411] [--authors 829529] [--seed 42]
                                    [--cache-dir DIR] [--repeat 3]

The dataset is generated once with fine_tuning.sample_data and cached under --cache-dir
(default: $TMPDIR/fine_tuning_bench). Each measurement runs in its own subprocess so its peak RSS
(the child's own ru_maxrss) belongs to that measurement alone:

- prep: `dg.materialize` of goodreads_source_dataset, graphic_novels, authors, book_category,
  enriched_graphic_novels into a fresh DuckDB file (ephemeral Dagster instance);
- bare: `CREATE TABLE ... AS SELECT * FROM read_json_auto(..., ignore_errors = true)` of the same
  two files into a fresh DuckDB file (ignore_errors is needed: the files hold truncated lines,
  on which a plain read_json_auto fails);
- files: prep plus the `training_files` step (split, JSONL writing, token counting), to show
  that streaming the files out of DuckDB keeps peak memory near the prep's.

Wall times are for the whole child process (interpreter start and imports included) and, inside
it, for the work alone. The summary reports the median over --repeat runs.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))


def _peak_rss_mb() -> float:
    """This process's peak resident set size in MB (ru_maxrss is KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def child_prep(workdir: Path, with_training_files: bool = False) -> dict:
    """Materialize the prep assets, optionally plus the training files (inside the child process)."""
    started = time.perf_counter()
    import dagster as dg
    from dagster_duckdb import DuckDBResource

    from fine_tuning.core import settings
    from fine_tuning.defs.goodreads.authors import authors
    from fine_tuning.defs.goodreads.book_category import book_category
    from fine_tuning.defs.goodreads.enriched_graphic_novels import enriched_graphic_novels
    from fine_tuning.defs.goodreads.goodreads_source_dataset import goodreads_source_dataset
    from fine_tuning.defs.goodreads.graphic_novels import graphic_novels
    from fine_tuning.defs.training_data.training_files import training_files

    imported = time.perf_counter()
    extra = [training_files] if with_training_files else []
    result = dg.materialize(
        [goodreads_source_dataset, graphic_novels, authors, book_category, enriched_graphic_novels, *extra],
        resources={"duckdb": DuckDBResource(database=str(settings.duckdb_path()))},
        instance=dg.DagsterInstance.ephemeral(),
    )
    done = time.perf_counter()
    rows = {}
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        rows[event.asset_key.to_user_string()] = metadata["dagster/row_count"].value
        if "total_tokens" in metadata:
            rows[event.asset_key.to_user_string() + "_tokens"] = metadata["total_tokens"].value
    return {"import_seconds": round(imported - started, 3),
            "work_seconds": round(done - imported, 3), "rows": rows}


def child_bare(workdir: Path, books: str, authors: str) -> dict:
    """Bare DuckDB load of both files (run inside the child process)."""
    started = time.perf_counter()
    import duckdb

    imported = time.perf_counter()
    with duckdb.connect(str(workdir / "bare.duckdb")) as con:
        con.execute("CREATE TABLE books AS SELECT * FROM read_json_auto(?, ignore_errors = true)",
                    [books])
        con.execute(
            "CREATE TABLE authors AS SELECT * FROM read_json_auto(?, ignore_errors = true)",
            [authors],
        )
        rows = {"books": con.execute("SELECT count(*) FROM books").fetchone()[0],
                "authors": con.execute("SELECT count(*) FROM authors").fetchone()[0]}
    done = time.perf_counter()
    return {"import_seconds": round(imported - started, 3),
            "work_seconds": round(done - imported, 3), "rows": rows}


def measure(kind: str, books: Path, authors: Path, cache_dir: Path) -> dict:
    """Run one measurement in a fresh subprocess and a fresh workdir."""
    workdir = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=cache_dir))
    env = dict(os.environ, FINE_TUNING_WORKDIR=str(workdir), GOODREADS_BOOKS_URL=str(books),
               GOODREADS_AUTHORS_URL=str(authors))
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--workdir", str(workdir)],
        env=env, capture_output=True, text=True,
    )
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{completed.stderr[-4000:]}")
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    report["wall_seconds"] = round(wall, 3)
    for leftover in workdir.glob("*.duckdb*"):
        leftover.unlink()  # keep the cache dir small; the data files stay
    return report


def dataset(cache_dir: Path, books: int, authors: int, seed: int) -> dict:
    """The cached generated dataset (generated on first use)."""
    from fine_tuning.sample_data import AUTHORS_FILE_NAME, BOOKS_FILE_NAME, write_sample

    folder = cache_dir / f"goodreads-{books}-{authors}-seed{seed}"
    info: dict = {"books": books, "authors": authors, "seed": seed, "dir": str(folder)}
    if not (folder / BOOKS_FILE_NAME).is_file() or not (folder / AUTHORS_FILE_NAME).is_file():
        started = time.perf_counter()
        write_sample(folder, books, authors, seed)
        info["generate_seconds"] = round(time.perf_counter() - started, 2)
    info["books_bytes"] = (folder / BOOKS_FILE_NAME).stat().st_size
    info["authors_bytes"] = (folder / AUTHORS_FILE_NAME).stat().st_size
    info["books_file"] = str(folder / BOOKS_FILE_NAME)
    info["authors_file"] = str(folder / AUTHORS_FILE_NAME)
    return info


def _summary(runs: list[dict]) -> dict:
    """Median wall/work seconds and peak RSS over the runs, plus the first run's row counts."""
    return {
        "wall_seconds": statistics.median(r["wall_seconds"] for r in runs),
        "work_seconds": statistics.median(r["work_seconds"] for r in runs),
        "import_seconds": statistics.median(r["import_seconds"] for r in runs),
        "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
        "wall_seconds_all": [r["wall_seconds"] for r in runs],
        "rows": runs[0]["rows"],
    }


def main(argv: list[str] | None = None) -> int:
    """Parent: generate/cache the data, run the measurements, print the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=int, default=89_411)
    parser.add_argument("--authors", type=int, default=829_529)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "fine_tuning_bench")
    parser.add_argument("--child", choices=("prep", "files", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        if args.child in ("prep", "files"):
            report = child_prep(args.workdir, with_training_files=args.child == "files")
        else:
            report = child_bare(args.workdir, os.environ["GOODREADS_BOOKS_URL"],
                                os.environ["GOODREADS_AUTHORS_URL"])
        report["peak_rss_mb"] = _peak_rss_mb()
        print(json.dumps(report))
        return 0

    args.cache_dir.mkdir(parents=True, exist_ok=True)
    data = dataset(args.cache_dir, args.books, args.authors, args.seed)
    books, authors = Path(data.pop("books_file")), Path(data.pop("authors_file"))
    prep_runs, bare_runs, files_runs = [], [], []
    for _ in range(args.repeat):  # interleaved, so drift in machine load hits all alike
        bare_runs.append(measure("bare", books, authors, args.cache_dir))
        prep_runs.append(measure("prep", books, authors, args.cache_dir))
        files_runs.append(measure("files", books, authors, args.cache_dir))
    prep, bare, files = _summary(prep_runs), _summary(bare_runs), _summary(files_runs)
    print(json.dumps({
        "benchmark": "prep_assets_vs_bare_duckdb_load",
        "dataset": data,
        "cpus": os.cpu_count(),
        "prep_assets": prep,
        "bare_duckdb_load": bare,
        # The training files stream from DuckDB: peak memory should stay near the prep's.
        "prep_plus_training_files": files,
        "wall_ratio": round(prep["wall_seconds"] / bare["wall_seconds"], 2),
        "work_ratio": round(prep["work_seconds"] / bare["work_seconds"], 2),
        "peak_rss_ratio": round(prep["peak_rss_mb"] / bare["peak_rss_mb"], 2),
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
