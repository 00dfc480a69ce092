"""Dagster helpers the asset groups share: DuckDB access, SQL files, metadata hand-off, failures."""
