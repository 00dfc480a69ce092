"""Dagster-free rules shared by the Dagster definitions, the command-line tools and the local backend."""
