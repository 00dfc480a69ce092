"""`goodreads_source_dataset`: the two Goodreads input files, observed for changes."""

import hashlib
import warnings

import dagster as dg

from fine_tuning.core import settings
from fine_tuning.defs.goodreads import GROUP
from fine_tuning.defs.goodreads.source_files import display_source, source_version

# observable_source_asset is marked beta; its warning would be printed by every CLI command.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)

    @dg.observable_source_asset(
        name="goodreads_source_dataset",
        group_name=GROUP,
        description=(
            "The two Goodreads input files (GOODREADS_BOOKS_URL, GOODREADS_AUTHORS_URL; default: the "
            "shipped sample). Its data version combines both files' versions (local: sha256 of the "
            "content; http(s): ETag/Last-Modified, else sha256 of the content), so downstream assets "
            "go stale exactly when an input changes."
        ),
    )
    def goodreads_source_dataset() -> dg.ObserveResult:
        """Observe both inputs and return one data version derived from both."""
        books, authors_file = settings.books_source(), settings.authors_source()
        books_version = source_version(books, "books")
        authors_version = source_version(authors_file, "authors")
        combined = hashlib.sha256(f"books:{books_version}\nauthors:{authors_version}".encode())
        return dg.ObserveResult(
            data_version=dg.DataVersion(combined.hexdigest()[:32]),
            metadata={
                "books_source": display_source(books),
                "authors_source": display_source(authors_file),
                "books_version": books_version,
                "authors_version": authors_version,
            },
        )
