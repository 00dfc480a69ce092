"""Goodreads -> DuckDB -> OpenAI fine-tuning, as a Dagster code location."""
