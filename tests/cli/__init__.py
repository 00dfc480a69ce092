"""The command-line tools at the package top: validate, sample_data, summary."""
