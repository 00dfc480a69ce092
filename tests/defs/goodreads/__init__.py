"""The `goodreads` group: ingestion and features."""
