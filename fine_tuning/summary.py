"""`python -m fine_tuning.summary`: what the latest fine_tuning_job run produced, in three lines."""

from __future__ import annotations

import sys

import dagster as dg
from dagster._core.events import DagsterEventType

JOB_NAME = "fine_tuning_job"


def _metadata_values(metadata: dict[str, dg.MetadataValue]) -> dict[str, object]:
    return {key: getattr(value, "value", value) for key, value in metadata.items()}


def latest_run_summary(instance: dg.DagsterInstance) -> dict[str, object] | None:
    """Run id, status, model name and both accuracies of the newest fine_tuning_job run."""
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=JOB_NAME), limit=1)
    if not runs:
        return None
    run = runs[0]
    summary: dict[str, object] = {"run_id": run.run_id, "status": run.status.value}
    for record in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
        materialization = record.get_dagster_event().step_materialization_data.materialization
        if materialization.asset_key == dg.AssetKey("fine_tuned_model"):
            summary.update(_metadata_values(materialization.metadata))
    for record in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = record.get_dagster_event().asset_check_evaluation_data
        if evaluation.check_name == "fine_tuned_model_accuracy":
            summary.update(_metadata_values(evaluation.metadata))
            summary["check_passed"] = evaluation.passed
    return summary


def main() -> int:
    """Print the summary; exit 1 when there is no successful run to report."""
    with dg.DagsterInstance.get() as instance:
        summary = latest_run_summary(instance)
    if summary is None:
        print(f"No {JOB_NAME} run found in this Dagster instance.", file=sys.stderr)
        return 1
    print(f"run:                 {summary['run_id']} ({summary['status']})")
    print(f"fine-tuned model:    {summary.get('model_name', '-')}"
          f"{' (reused provider job)' if summary.get('reused') else ''}")
    for label, key in (("fine-tuned accuracy", "fine_tuned_accuracy"), ("base accuracy", "base_accuracy")):
        value = summary.get(key)
        print(f"{label + ':':<21}{value:.3f}" if isinstance(value, float) else f"{label + ':':<21}-")
    if "eval_examples" in summary:
        reused = " (same models and prompts as last time: evaluation reused)" if summary.get("reused_evaluation") else ""
        print(f"evaluated on:        {summary['eval_examples']} held-out books{reused}")
    return 0 if summary["status"] == "SUCCESS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
