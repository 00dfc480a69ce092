"""`dg` in the checkout, as a user runs it after `make setup`; `dg check defs` and `dg list defs
--json` run once per test process.

Each `dg` launch pays a Python and Dagster start-up and loads every definition; the tests of the
`dg` CLI (tests/e2e/test_dg_cli.py) and of the shipped tasks (tests/e2e/test_tasks.py) read the
same two outputs of the unchanged checkout, so they share one run of each (per xdist worker).
"""

from __future__ import annotations

import os
import subprocess
from functools import cache

from tests.support.project import REPO, VENV_BIN


def run_dg(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`dg` from the project's venv, run in the checkout as a user would after `make setup`."""
    environment = {**os.environ, "VIRTUAL_ENV": str(VENV_BIN.parent), **(env or {})}
    return subprocess.run(
        [str(VENV_BIN / "dg"), *args], cwd=REPO, env=environment, capture_output=True, text=True, timeout=300
    )


@cache
def checked_defs() -> subprocess.CompletedProcess[str]:
    """`dg check defs` on the checkout (one run per test process; the checkout does not change)."""
    return run_dg("check", "defs")


@cache
def listed_defs() -> subprocess.CompletedProcess[str]:
    """`dg list defs --json` on the checkout (one run per test process; the checkout does not change)."""
    return run_dg("list", "defs", "--json")
