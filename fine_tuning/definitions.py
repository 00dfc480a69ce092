"""The code location: every asset, check, job, schedule and resource under `fine_tuning/defs/`.

`dg` finds the defs folder through `[tool.dg]` in pyproject.toml; workspace.yaml, `dagster dev`
and `dagster job execute` load this module. Its code location is named `fine_tuning` everywhere
(workspace.yaml, `[tool.dagster]`, `[tool.dg.project]`, `-m fine_tuning`): the name keys the
schedule and sensor state the daemon reads.
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import dagster as dg

LOCATION_NAME = "fine_tuning"
_MISMATCH = re.compile(r"does not match the name '([^']+)' this code location is registered under")


class OneLocationNameWarning(logging.Filter):
    """Dagster warns on every load of the component tree when the location is loaded under another
    name (`-m fine_tuning.definitions` names it `fine_tuning.definitions`): say it once, with the
    consequence and the fix, instead of dozens of times."""

    def __init__(self) -> None:
        super().__init__()
        self.said = False

    def filter(self, record: logging.LogRecord) -> bool:
        found = _MISMATCH.search(record.getMessage())
        if found is None:
            return True
        if self.said:
            return False
        self.said = True
        record.msg = (
            f"This code location is loaded as {found.group(1)!r}, not {LOCATION_NAME!r}: schedule and sensor "
            f"state set through it is not the state the UI and the daemon read. Load it as {LOCATION_NAME!r}: "
            "no -m from the checkout (workspace.yaml), or `-m fine_tuning`."
        )
        record.args = ()
        return True


logging.getLogger("dagster.components.core.component_tree").addFilter(OneLocationNameWarning())
# Checks built by a component reach the repository as AssetsDefinitions, which Dagster converts
# back with a beta constructor argument on every snapshot: its warning says nothing to a user.
warnings.filterwarnings("ignore", message="Parameter `execution_type` of function `AssetsDefinition.__init__`",
                        category=dg.BetaWarning)

# Everything the defs folder defines, discovered by Dagster's project loader.
defs: dg.Definitions = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
