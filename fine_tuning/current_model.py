"""`python -m fine_tuning.current_model [--json]`: the model applications should use.

Reads the latest `production_model` materialization from the Dagster instance (DAGSTER_HOME)
and prints what an application passes as `model`: its `deployment` on Azure, else its `model_name`, or with `--json` all of its metadata. Exits 1, saying why, when no
model is in production yet. Applications that do not run Python can ask the Dagster webserver's
GraphQL API for the same materialization (see the README).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import dagster as dg
from dagster._core.errors import DagsterHomeNotSetError

from fine_tuning.defs.fine_tuning.evaluation_history import PRODUCTION_MODEL, plain_metadata


def production_record(instance: dg.DagsterInstance) -> dict[str, Any] | None:
    """The latest production_model decision: its metadata plus when and in which run; None when never made."""
    event = instance.get_latest_materialization_event(PRODUCTION_MODEL)
    materialization = event.asset_materialization if event is not None else None
    if event is None or materialization is None:
        return None
    return {**plain_metadata(materialization.metadata), "run_id": event.run_id, "timestamp": event.timestamp}


def _no_model_message(record: dict[str, Any] | None) -> str:
    if record is None:
        return ("No production model: production_model has never been materialized in this Dagster instance "
                "(DAGSTER_HOME). Run fine_tuning_job first.")
    return f"No production model yet: {record.get('reason') or 'no model has passed its accuracy check'}"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the production model's name (or its metadata as JSON); 1 when there is none."""
    parser = argparse.ArgumentParser(prog="python -m fine_tuning.current_model", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the production model's metadata as JSON")
    args = parser.parse_args(argv)
    try:
        with dg.DagsterInstance.get() as instance:
            record = production_record(instance)
    except DagsterHomeNotSetError:
        print("DAGSTER_HOME is not set: point it at the Dagster instance the pipeline runs in.", file=sys.stderr)
        return 1
    if record is None or not record.get("model_name"):
        print(_no_model_message(record), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(record, indent=2, sort_keys=True, default=str))
    else:
        # On Azure a fine-tuned model answers only through its deployment: that name is the `model`.
        print(record.get("deployment") or record["model_name"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
