"""The method x task table of docs/methods.md: each fine-tuning method on each shipped task, offline.

`FINE_TUNING_PROVIDER=local .venv/bin/python benchmarks/methods_table.py` (about 5 minutes; not
part of `make bench`). Per task, in a fresh workdir and DAGSTER_HOME, the task's job runs three
times the way a user launches it (`dagster job execute -m fine_tuning -j <job> -c run_config.yaml`),
the method set at run time (`resources.tuning.config.method` for Goodreads,
`resources.support_tickets_tuning.config.method` for the tickets):

1. supervised on the task's model (gpt-4o-mini): the first production model;
2. DPO (beta 0.1) continuing the production model, on pairs of its own mistakes;
3. reinforcement on o4-mini with the default exact-match grader.

Each row is what the run recorded: the fine-tuned model's accuracy on the task's test split, its
base model's, the production model's before and after (the same promotion rule decides), the
training file's estimated cost (the cost check's) and the job's billed cost (`cost_usd`:
trained tokens x the training price; reinforcement: billed training seconds x $100/h). The local
backend's jobs run LOCAL_OPENAI_JOB_SECONDS (here 2 s), so a reinforcement job's billed time is
that simulated second or two, not what o4-mini would take. Prints one JSON object and the
Markdown table.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.support import (  # noqa: E402
    child_env,
    dagster_cli,
    emit,
    latest_run,
    machine,
    new_instance,
    run_config_file,
    scratch,
    timed,
)

TASKS = {  # task -> (job, op prefix of its steps, its tuning resource, its asset key prefix)
    "goodreads": ("fine_tuning_job", "", "tuning", ""),
    "support_tickets": ("support_tickets_fine_tuning_job", "support_tickets__", "support_tickets_tuning", "support_tickets/"),
}
JOB_SECONDS = "2"
POLL_SECONDS = 0.5


METHODS = ("supervised", "dpo", "reinforcement")


def tuning_for(method: str, production: str | None) -> dict[str, Any]:
    """The run-time tuning settings of a method's run; DPO continues the production model."""
    if method == "dpo":
        return {"base_model": production, "method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}}}
    if method == "reinforcement":
        return {"base_model": "o4-mini-2025-04-16", "method": {"type": "reinforcement"}}
    return {}


def run_method(folder: Path, home: Path, task: str, method: str, tuning: dict[str, Any]) -> dict[str, Any]:
    """One run of the task's job with `tuning`; the row of the table it gives."""
    job, op_prefix, resource, key_prefix = TASKS[task]
    config: dict[str, Any] = {"ops": {f"{op_prefix}fine_tuned_model": {"config": {"poll_interval_seconds": POLL_SECONDS}}}}
    if tuning:
        config["resources"] = {resource: {"config": tuning}}
    run_folder = folder / method
    run_folder.mkdir()
    env = child_env(folder / "work", home, LOCAL_OPENAI_JOB_SECONDS=JOB_SECONDS)
    process = timed(dagster_cli("job", "execute", "-m", "fine_tuning", "-j", job, "-c",
                                str(run_config_file(run_folder, config))), env).check()
    run = latest_run(home)
    model = run.materializations[f"{key_prefix}fine_tuned_model"]
    decision = run.materializations[f"{key_prefix}production_model"]
    promoted = bool(decision["promoted"])
    champion = decision.get("champion_accuracy")
    return {
        "task": task, "method": method, "base_model": model["base_model"], "model": model["model_name"],
        "fine_tuned_accuracy": decision["challenger_accuracy"], "base_accuracy": decision["base_accuracy"],
        "production_accuracy_before": champion, "promoted": promoted,
        "production_accuracy_after": decision["challenger_accuracy"] if promoted else champion,
        "production_model": decision["model_name"],
        "estimated_cost_usd": model.get("estimated_cost_usd"), "billed_cost_usd": model.get("cost_usd"),
        "billed_training_seconds": model.get("billed_training_seconds"), "run_wall_seconds": process.wall_seconds,
    }


def percent(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) else "-"


def dollars(value: Any, missing: str) -> str:
    return f"${value:.4f}" if isinstance(value, (int, float)) else missing


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table as docs/methods.md shows it."""
    lines = ["| task | method | base model | fine-tuned | base | production before -> after | estimated cost | billed cost |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        after = percent(row["production_accuracy_after"]) + (" (promoted)" if row["promoted"] else " (kept)")
        billed = dollars(row["billed_cost_usd"], "-")
        if row["billed_training_seconds"] is not None:
            billed += f" ({row['billed_training_seconds']} s)"
        base = row["base_model"] if not row["base_model"].startswith("ft:") else "production model (ft:)"
        lines.append(f"| {row['task']} | {row['method']} | {base} | {percent(row['fine_tuned_accuracy'])} | "
                     f"{percent(row['base_accuracy'])} | {percent(row['production_accuracy_before'])} -> {after} | "
                     f"{dollars(row['estimated_cost_usd'], 'by time')} | {billed} |")
    return "\n".join(lines)


def main() -> None:
    rows = []
    for task in TASKS:
        with scratch(f"methods-{task}-") as folder:
            home = new_instance(folder)
            production: str | None = None
            for method in METHODS:
                row = run_method(folder, home, task, method, tuning_for(method, production))
                production = row["production_model"]
                rows.append(row)
                print(f"{task} {method}: {row}", file=sys.stderr, flush=True)
    emit({"benchmark": "methods_table", "machine": machine(), "local_openai_job_seconds": float(JOB_SECONDS),
          "rows": rows})
    print(markdown(rows))


if __name__ == "__main__":
    main()
