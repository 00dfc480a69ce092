"""Dagster helpers the asset groups share: DuckDB access and metadata hand-off between steps."""
