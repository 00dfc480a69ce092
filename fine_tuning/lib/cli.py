"""What the command-line tools share: the task `--task` names, and the project's Dagster instance,
each failing as a one-line message on stderr and exit status 1 (`CliError`)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from fine_tuning.lib.facts import DagsterHomeNotSetError, project_instance
from fine_tuning.lib.task.component import FineTuningTask
from fine_tuning.lib.task.instances import GOODREADS, task_named

NO_INSTANCE = ("DAGSTER_HOME is not set and no .env here names it: run this from the checkout after `make setup`, "
               "or point DAGSTER_HOME at the Dagster instance the pipeline runs in.")


class CliError(Exception):
    """What the tool tells the user before it exits with status 1."""


def add_task_argument(parser: argparse.ArgumentParser) -> None:
    """`--task NAME`, the Goodreads task by default."""
    parser.add_argument("--task", default=GOODREADS, help=f"the task (default: {GOODREADS})")


def chosen_task(name: str) -> FineTuningTask:
    """The project's task `name`; CliError naming the tasks there are."""
    try:
        return task_named(name)
    except KeyError as error:
        raise CliError(error.args[0]) from None


@contextmanager
def cli_instance() -> Iterator[dg.DagsterInstance]:
    """The project's Dagster instance (`facts.project_instance`); CliError when none is named."""
    try:
        instance = project_instance()
    except DagsterHomeNotSetError:
        raise CliError(NO_INSTANCE) from None
    with instance:
        yield instance
