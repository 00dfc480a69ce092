"""`python -m fine_tuning.current_model [--task NAME] [--json]`: the model applications should use.

Reads the latest `production_model` materialization of a task (default: the Goodreads task;
another task's sits under its key prefix, `<name>/production_model`) from the Dagster instance
(DAGSTER_HOME) and prints what an application passes as `model` (its `deployment` on Azure, else
its `model_name`), or with `--json` all of its metadata. Exits 1, saying why, when no
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

from fine_tuning.lib.cli import CliError, add_task_argument, chosen_task, cli_instance
from fine_tuning.lib.facts import latest_materialization
from fine_tuning.lib.task.instances import GOODREADS, task_named
from fine_tuning.lib.task.keys import TaskKeys


def production_record(instance: dg.DagsterInstance, keys: TaskKeys | None = None) -> dict[str, Any] | None:
    """A task's latest production_model decision (default: Goodreads): its metadata plus when and in
    which run; None when never made."""
    found = latest_materialization(instance, (keys or task_named(GOODREADS).keys).production_model)
    if found is None:
        return None
    return {**found.metadata, "run_id": found.run_id, "timestamp": found.timestamp}


def _no_model_message(record: dict[str, Any] | None, key: str, job: str) -> str:
    if record is None:
        return (f"No production model: {key} has never been materialized in this Dagster instance "
                f"(DAGSTER_HOME). Run {job} first.")
    return f"No production model yet: {record.get('reason') or 'no model has passed its accuracy check'}"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the production model's name (or its metadata as JSON); 1 when there is none."""
    parser = argparse.ArgumentParser(prog="python -m fine_tuning.current_model", description=__doc__.splitlines()[0])
    add_task_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the production model's metadata as JSON")
    args = parser.parse_args(argv)
    try:
        task = chosen_task(args.task)
        with cli_instance() as instance:
            record = production_record(instance, task.keys)
    except CliError as error:
        print(error, file=sys.stderr)
        return 1
    if record is None or not record.get("model_name"):
        print(_no_model_message(record, task.keys.production_model.to_user_string(), task.job_name_or_default()),
              file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(record, indent=2, sort_keys=True, default=str))
    else:
        # On Azure a fine-tuned model answers only through its deployment: that name is the `model`.
        print(record.get("deployment") or record["model_name"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
