"""Group `goodreads`: the observed source files and the DuckDB tables built from them."""

GROUP = "goodreads"
