"""Where the checkout and its virtualenv are, wherever pytest was started from."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The interpreter running the tests is the project's; its console scripts (dagster, dg) sit beside it.
VENV_BIN = Path(sys.executable).parent
