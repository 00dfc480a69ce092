"""The fine-tuning chain as a `dg` Component (`FineTuningTask`), one module per step it builds.

`component` holds the class and its attributes; `keys` every name a task's definitions go by;
`source` reads a task's examples; then one module per step: `training_files` (split assignment
and the two JSONL files), `file_checks`, `uploads`, `fine_tuned_model`, `accuracy_check` (with
`evaluation_history` and `evaluation_metadata`), `production_model`, and `automation` (job,
schedule, sensor). `tuning` and `config` hold the per-task run configuration.
"""
