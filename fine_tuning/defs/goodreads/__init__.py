"""Group `goodreads`: the observed source files and the DuckDB tables built from them."""

GROUP = "goodreads"
# The concurrency pool of every step that writes the Goodreads tables (dagster.yaml: one run at a time).
TABLES_POOL = "goodreads_tables"
