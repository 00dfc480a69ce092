"""The code location's default executor: every step of a run in the run's own process.

It applies to every run that does not name its own executor: the UI's "Materialize all" and
"Materialize selected", `dg launch --assets`, `dagster asset materialize` and asset jobs.

Chosen by measurement (docs/performance.md; `benchmarks/bench_prep.py --executors
multiprocess,forkserver`): prep up to both checked files at Goodreads scale took 44 s with
Dagster's default multiprocess executor (a spawned Python process per step, each importing
Dagster, the OpenAI client and these definitions again), 22 s with a forkserver that preloads
the definitions, and 16 s in process. Parallel steps gain nothing here: one DuckDB file admits a
single writing process, so the prep steps wait for each other whatever the executor.
"""

from __future__ import annotations

import dagster as dg


@dg.definitions
def executor() -> dg.Definitions:
    """Definitions that only set the default executor (merged with the rest of the defs folder)."""
    return dg.Definitions(executor=dg.in_process_executor)
