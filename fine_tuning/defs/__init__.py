"""The Dagster definitions, one folder per asset group, loaded with `dg.load_from_defs_folder`."""
