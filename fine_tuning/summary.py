"""`python -m fine_tuning.summary [--task NAME]`: what the latest run of a task's job produced, in a few lines.

The task defaults to Goodreads (`fine_tuning_job`, what `make run` prints last); another task's
job is `<name>_fine_tuning_job`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import dagster as dg

from fine_tuning.lib.cli import CliError, add_task_argument, chosen_task, cli_instance
from fine_tuning.lib.facts import run_check_results, run_materializations
from fine_tuning.lib.task.instances import GOODREADS, task_named


def latest_run_summary(instance: dg.DagsterInstance, task_name: str = GOODREADS) -> dict[str, object] | None:
    """Run id, status, model name and both accuracies of the newest run of the task's job."""
    task = task_named(task_name)
    keys = task.keys
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=task.job_name_or_default()), limit=1)
    if not runs:
        return None
    run = runs[0]
    # What the held-out examples are, in the summary's words (the Goodreads task's are books).
    summary: dict[str, object] = {"run_id": run.run_id, "status": run.status.value,
                                  "examples_noun": "books" if task_name == GOODREADS else "examples"}
    for key, metadata in run_materializations(instance, run.run_id):
        if key == keys.fine_tuned_model:
            summary.update(metadata)
        elif key == keys.production_model:
            summary["production_model"] = metadata.get("model_name")
            summary["promoted"] = metadata.get("promoted")
            summary["production_reason"] = metadata.get("reason")
    for check_key, result in run_check_results(instance, run.run_id):
        if check_key == keys.accuracy_check:
            summary.update(result.metadata)
            summary["check_passed"] = result.passed
    return summary


def _value_line(label: str, value: object) -> str:
    """`label:` padded to one column, then the value (a float with three decimals, or '-')."""
    shown = f"{value:.3f}" if isinstance(value, float) else ("-" if value is None else str(value))
    return f"{label + ':':<21}{shown}"


def model_lines(summary: dict[str, object]) -> list[str]:
    """The fine-tuned model's name, and whether its provider job was reused."""
    reused = " (reused provider job)" if summary.get("reused") else ""
    return [_value_line("fine-tuned model", summary.get("model_name")) + reused]


def training_lines(summary: dict[str, object]) -> list[str]:
    """The trained tokens the provider billed (exact or estimated), or the training time of a job billed by time
    (reinforcement), and what the training cost."""
    tokens, cost, seconds = summary.get("trained_tokens"), summary.get("cost_usd"), summary.get("billed_training_seconds")
    priced = f", cost ${cost:.2f}" if isinstance(cost, float | int) else ""
    if isinstance(seconds, int):
        return [f"{'training time:':<21}{seconds:,} s billed{priced}"]
    if not isinstance(tokens, int):
        return []
    counted = "estimated" if summary.get("trained_tokens_estimated") else "exact"
    return [f"{'trained tokens:':<21}{tokens:,} ({counted}){priced}"]


def accuracy_lines(summary: dict[str, object]) -> list[str]:
    """Both accuracies on the held-out examples, and how many they were measured on, in one line (free-form:
    and both mean grades in a second)."""
    fine_tuned, base = summary.get("fine_tuned_accuracy"), summary.get("base_accuracy")
    if not isinstance(fine_tuned, float) or not isinstance(base, float):
        return [_value_line("accuracy", None)]
    noun = summary.get("examples_noun", "books")
    books = f" on {summary['eval_examples']} held-out {noun}" if "eval_examples" in summary else ""
    reused = " (evaluation reused: same models and prompts)" if summary.get("reused_evaluation") else ""
    lines = [f"{'accuracy:':<21}{fine_tuned:.3f} fine-tuned, {base:.3f} base,{books}{reused}"]
    graded, base_graded = summary.get("mean_grade_fine_tuned"), summary.get("mean_grade_base")
    if isinstance(graded, float) and isinstance(base_graded, float):  # free-form: accuracy is the share passing
        lines.append(f"{'mean grade:':<21}{graded:.3f} fine-tuned, {base_graded:.3f} base "
                     f"(an answer passes at {summary.get('pass_threshold')})")
    return lines


def production_lines(summary: dict[str, object]) -> list[str]:
    """The model applications should use after this run, and why it is that one."""
    if "production_reason" not in summary:
        return []
    verdict = "promoted" if summary.get("promoted") else "kept"
    return [_value_line("production model", summary.get("production_model")) + f" ({verdict})",
            f"{'because:':<21}{summary['production_reason']}"]


def summary_lines(summary: dict[str, object]) -> list[str]:
    """What `make run` prints after the progress lines."""
    lines = [_value_line("run", f"{summary['run_id']} ({summary['status']})")]
    lines += model_lines(summary)
    lines += training_lines(summary)
    lines += accuracy_lines(summary)
    lines += production_lines(summary)
    if summary["status"] != "SUCCESS":
        lines.append("the run did not succeed: its full event log is in the UI (make dev, then Runs)")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Print the summary; exit 1 when there is no successful run to report."""
    parser = argparse.ArgumentParser(prog="python -m fine_tuning.summary", description=__doc__.splitlines()[0])
    add_task_argument(parser)
    args = parser.parse_args(argv)
    try:
        job_name = chosen_task(args.task).job_name_or_default()
        with cli_instance() as instance:
            summary = latest_run_summary(instance, args.task)
    except CliError as error:
        print(error, file=sys.stderr)
        return 1
    if summary is None:
        print(f"No {job_name} run found in this Dagster instance.", file=sys.stderr)
        return 1
    print("\n".join(summary_lines(summary)))
    return 0 if summary["status"] == "SUCCESS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
