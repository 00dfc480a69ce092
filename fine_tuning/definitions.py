"""The code location: every asset, check, job, schedule and resource under `fine_tuning/defs/`.

`dg` finds the defs folder through `[tool.dg]` in pyproject.toml; `dagster job execute -m
fine_tuning.definitions`, `dagster dev` and workspace.yaml load this module.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

# Everything the defs folder defines, discovered by Dagster's project loader.
defs: dg.Definitions = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
