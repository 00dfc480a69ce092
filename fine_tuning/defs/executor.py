"""The code location's default executor: every step of a run in the run's own process.

It applies to every run that does not name its own executor: the UI's "Materialize all" and
"Materialize selected", `dg launch --assets`, `dagster asset materialize` and asset jobs.

Chosen by measurement (docs/performance.md): Dagster's default multiprocess executor starts a
Python process per step, and each of them imports Dagster, the OpenAI client and these
definitions again (about 2-4 s each on a 2-core machine) before doing a fraction of a second of
work; prep up to the checked files took 9-16x a bare DuckDB load of the same files. The steps
cannot run in parallel anyway: one DuckDB file admits a single writing process, so the
goodreads steps wait for each other whatever the executor. In process, prep to both checked
files costs about the DuckDB work plus one import of Dagster.
"""

from __future__ import annotations

import dagster as dg


@dg.definitions
def executor() -> dg.Definitions:
    """Definitions that only set the default executor (merged with the rest of the defs folder)."""
    return dg.Definitions(executor=dg.in_process_executor)
