"""Whole-system runs: the dagster CLI, instances (SQLite and PostgreSQL), the run queue."""
