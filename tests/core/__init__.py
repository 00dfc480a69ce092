"""Tests of the Dagster-free core (`fine_tuning/core/`)."""
