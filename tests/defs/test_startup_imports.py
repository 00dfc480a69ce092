"""Every `dagster` / `dg` command imports the definitions first: they import nothing they do not need."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_loading_the_definitions_does_not_import_the_learners_numpy() -> None:
    code = "import sys, fine_tuning.definitions; print('numpy' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip() == "False"
