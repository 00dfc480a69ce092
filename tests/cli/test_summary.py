"""`python -m fine_tuning.summary` (what `make run` prints last), run as a real subprocess.

Its report of a finished run is checked by the whole-job runs in tests/e2e.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_make_run_summary_reports_when_nothing_ran(dagster_home: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    out = subprocess.run([sys.executable, "-m", "fine_tuning.summary"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "No fine_tuning_job run found" in out.stderr
