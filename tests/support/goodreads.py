"""Goodreads helpers: handcrafted UCSD-shaped records and files, and real runs of the prep assets."""

import gzip
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from fine_tuning.core import settings
from fine_tuning.defs.goodreads.authors import authors
from fine_tuning.defs.goodreads.book_category import book_category
from fine_tuning.defs.goodreads.enriched_graphic_novels import enriched_graphic_novels
from fine_tuning.defs.goodreads.goodreads_source_dataset import goodreads_source_dataset
from fine_tuning.defs.goodreads.graphic_novels import graphic_novels
from fine_tuning.sample_data import BOOK_FIELDS

PREP_ASSETS = [goodreads_source_dataset, graphic_novels, authors, book_category,
               enriched_graphic_novels]

GOOD_DESCRIPTION = "A long enough description about dragons and kingdoms."


def book(book_id: str, *, title: str = "Some Title", description: str = GOOD_DESCRIPTION,
         shelves: Sequence[tuple[str, Any]] | None = (("fantasy", "50"),),
         authors_: Sequence[tuple[str, str]] | None = (("1", ""),),
         **fields: Any) -> dict[str, Any]:
    """A book record with every UCSD field; shelves and authors as (name, count) / (id, role)."""
    record: dict[str, Any] = {name: "" for name in BOOK_FIELDS}
    record.update(series=[], similar_books=[], ratings_count="10")
    record.update(
        book_id=book_id,
        title=title,
        title_without_series=title,
        description=description,
        popular_shelves=None if shelves is None else [
            {"count": count, "name": name} for name, count in shelves
        ],
        authors=None if authors_ is None else [
            {"author_id": author_id, "role": role} for author_id, role in authors_
        ],
    )
    record.update(fields)
    return record


def author(author_id: str, name: str) -> dict[str, str]:
    """An author record as in goodreads_book_authors.json."""
    return {"average_rating": "4.00", "author_id": author_id, "text_reviews_count": "3",
            "name": name, "ratings_count": "30"}


def write_lines(path: Path, records: Iterable[dict[str, Any] | str]) -> Path:
    """JSON lines (dicts dumped; strings written verbatim, e.g. truncated lines); .gz -> gzip."""
    text = "".join(
        (item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)) + "\n"
        for item in records
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def point_at(monkeypatch, workdir: Path, books_file: Path | str, authors_file: Path | str) -> None:
    """Set FINE_TUNING_WORKDIR and GOODREADS_* for this test."""
    monkeypatch.setenv("FINE_TUNING_WORKDIR", str(workdir))
    monkeypatch.setenv("GOODREADS_BOOKS_URL", str(books_file))
    monkeypatch.setenv("GOODREADS_AUTHORS_URL", str(authors_file))


def materialize_prep(assets: Sequence[Any] = tuple(PREP_ASSETS), *,
                     run_config: dict | None = None, instance: dg.DagsterInstance | None = None,
                     raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    """Materialize assets (include the source for its dependents) against duckdb_path()."""
    assets = list(assets)
    if goodreads_source_dataset not in assets:
        assets.insert(0, goodreads_source_dataset)
    return dg.materialize(
        assets,
        resources={"duckdb": DuckDBResource(database=str(settings.duckdb_path()))},
        run_config=run_config,
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=raise_on_error,
    )


def observe_source(instance: dg.DagsterInstance) -> str:
    """Run one observation of goodreads_source_dataset; returns its data version."""
    defs = dg.Definitions(
        assets=[goodreads_source_dataset],
        jobs=[dg.define_asset_job("observe_goodreads", selection=[goodreads_source_dataset])],
    )
    result = defs.resolve_job_def("observe_goodreads").execute_in_process(instance=instance)
    assert result.success
    record = instance.get_latest_data_version_record(goodreads_source_dataset.key)
    assert record is not None
    return record.asset_observation.tags["dagster/data_version"]


def query(sql: str, params: Sequence[Any] | None = None, *, database: Path | None = None
          ) -> list[tuple]:
    """Run a query on the pipeline's DuckDB file (default: duckdb_path() of this test)."""
    with duckdb.connect(str(database or settings.duckdb_path())) as con:
        return con.execute(sql, params or []).fetchall()

