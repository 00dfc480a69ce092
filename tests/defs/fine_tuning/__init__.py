"""The `fine_tuning` group: uploads, `fine_tuned_model` and its accuracy check."""
