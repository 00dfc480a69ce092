"""The project's definitions with another default executor, to measure the choice of executor.

    dagster asset materialize -f benchmarks/executor_variants.py -a multiprocess --select ...

`multiprocess` is Dagster's own default (a spawned Python process per step); `forkserver`
forks every step from a server process that imported the definitions once. `bench_prep.py
--executors multiprocess,forkserver` runs them next to the project's in-process default.
"""

from __future__ import annotations

import dagster as dg

from fine_tuning.definitions import defs


def with_executor(executor: dg.ExecutorDefinition) -> dg.Definitions:
    """The same assets, checks, jobs, schedules, sensors and resources with `executor` as default."""
    return dg.Definitions(
        assets=defs.assets,
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        schedules=defs.schedules,
        sensors=defs.sensors,
        resources=defs.resources,
        executor=executor,
    )


multiprocess = with_executor(dg.multiprocess_executor)
forkserver = with_executor(
    dg.multiprocess_executor.configured(
        {"start_method": {"forkserver": {"preload_modules": ["fine_tuning.definitions"]}}}
    )
)
