"""Tests of the Dagster definitions (`fine_tuning/defs/`), one folder per asset group."""
