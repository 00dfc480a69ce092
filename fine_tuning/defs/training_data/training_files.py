"""Training and validation files: disjoint, stratified, seeded splits of `enriched_graphic_novels`.

One multi-asset writes both files so that they always come from the same split configuration.
The split is recorded in DuckDB (`book_splits`), the test split is never written to a file and
serves evaluation. Rows stream from DuckDB to disk; nothing holds the table in Python.
"""


import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import dagster as dg
import duckdb as duckdb_lib
from dagster_duckdb import DuckDBResource
from pydantic import Field

from fine_tuning.core.prompts import training_example
from fine_tuning.core.settings import files_dir
from fine_tuning.core.tokens import TokenCounter, count_example_tokens, token_counter, token_stats
from fine_tuning.defs.shared.warehouse import connection

# Names inside files_dir(); the file checks read the files back from the same paths.
TRAINING_FILE_NAME = "training.jsonl"
VALIDATION_FILE_NAME = "validation.jsonl"

SPLITS: tuple[str, ...] = ("train", "validation", "test")
FETCH_BATCH = 1000


class SplitConfig(dg.Config):
    """How books are split into train / validation / test (one config for both files)."""

    seed: int = Field(default=42, description="Seed of the deterministic book-id hash that assigns splits.")
    validation_fraction: float = Field(default=0.1, ge=0.0, lt=1.0, description="Share of each category for validation.")
    test_fraction: float = Field(default=0.2, ge=0.0, lt=1.0, description="Share of each category held out for evaluation.")
    max_train_examples: int | None = Field(default=None, ge=1, description="Cap on training examples (null: no cap).")
    max_validation_examples: int | None = Field(
        default=500, ge=1, description="Cap on validation examples (bounds validation cost on the full dataset)."
    )
    max_test_examples: int | None = Field(
        default=500, ge=1, description="Cap on test books (bounds evaluation calls on the full dataset)."
    )


class SplitError(Exception):
    """The input tables cannot produce usable splits."""


# One row per labelled book and one book per distinct prompt: editions that share title, author and
# description would otherwise land in different splits and leak the test set into training.
_SPLIT_EXAMPLES_SQL = """
CREATE OR REPLACE TEMP TABLE split_examples AS
WITH labeled AS (
    SELECT e.book_id,
           coalesce(e.title, '') AS title,
           coalesce(e.author, '') AS author,
           coalesce(e.description, '') AS description,
           e.category
    FROM enriched_graphic_novels e
    WHERE e.book_id IS NOT NULL AND e.category IN (SELECT category FROM categories)
    QUALIFY row_number() OVER (PARTITION BY e.book_id ORDER BY e.category) = 1
),
one_per_prompt AS (
    SELECT * FROM labeled
    QUALIFY row_number() OVER (PARTITION BY title, author, description ORDER BY book_id) = 1
),
keyed AS (
    -- md5 rather than hash(): stable across DuckDB versions, so a seed means the same split forever
    SELECT *, md5(book_id || '#' || CAST($seed AS VARCHAR)) AS split_key FROM one_per_prompt
),
ranked AS (
    SELECT *,
           row_number() OVER (PARTITION BY category ORDER BY split_key, book_id) - 1 AS category_rank,
           count(*) OVER (PARTITION BY category) AS category_size
    FROM keyed
),
assigned AS (
    SELECT *,
           CASE WHEN category_rank < round(category_size * $test_fraction) THEN 'test'
                WHEN category_rank < round(category_size * ($test_fraction + $validation_fraction)) THEN 'validation'
                ELSE 'train' END AS split
    FROM ranked
),
within AS (
    SELECT *,
           row_number() OVER (PARTITION BY split, category ORDER BY split_key, book_id) AS stratum_rank,
           count(*) OVER (PARTITION BY split, category) AS stratum_size
    FROM assigned
),
spread AS (
    -- position inside its split that interleaves categories proportionally, so a cap keeps strata
    SELECT *,
           row_number() OVER (
               PARTITION BY split ORDER BY (stratum_rank - 0.5) / stratum_size, split_key, book_id
           ) AS split_position
    FROM within
)
SELECT book_id, title, author, description, category, split, split_key
FROM spread
WHERE split_position <= coalesce(
    CASE split WHEN 'train' THEN $max_train WHEN 'validation' THEN $max_validation ELSE $max_test END,
    split_position)
"""


@dataclass
class WrittenFile:
    """A JSONL file written from one split, with what was measured while writing it."""

    split: str
    path: Path
    examples: int = 0
    bytes: int = 0
    sha256: str = ""
    token_counts: list[int] = field(default_factory=list)


def _require_tables(conn: duckdb_lib.DuckDBPyConnection) -> None:
    present = {row[0] for row in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    missing = [t for t in ("enriched_graphic_novels", "categories") if t not in present]
    if missing:
        raise SplitError(
            f"DuckDB table(s) {', '.join(missing)} missing: materialize enriched_graphic_novels "
            "(and book_category, which writes categories) first"
        )


def category_list(conn: duckdb_lib.DuckDBPyConnection) -> list[str]:
    """The configured categories in their configured order (`categories` table)."""
    categories = [row[0] for row in conn.execute("SELECT category FROM categories ORDER BY position").fetchall()]
    if not categories:
        raise SplitError("the categories table is empty: no label can be assigned")
    return categories


def assign_splits(conn: duckdb_lib.DuckDBPyConnection, config: SplitConfig) -> dict[str, int]:
    """Write `book_splits` (and the temp table `split_examples`); return the size of each split."""
    if config.validation_fraction + config.test_fraction >= 1.0:
        raise SplitError(
            f"validation_fraction + test_fraction = {config.validation_fraction + config.test_fraction} "
            "leaves nothing for training (must be < 1)"
        )
    _require_tables(conn)
    conn.execute(
        _SPLIT_EXAMPLES_SQL,
        {
            "seed": config.seed,
            "test_fraction": config.test_fraction,
            "validation_fraction": config.validation_fraction,
            "max_train": config.max_train_examples,
            "max_validation": config.max_validation_examples,
            "max_test": config.max_test_examples,
        },
    )
    conn.execute(
        "CREATE OR REPLACE TABLE book_splits AS "
        "SELECT book_id, split FROM split_examples ORDER BY split, book_id"
    )
    sizes = dict(conn.execute("SELECT split, count(*) FROM split_examples GROUP BY split").fetchall())
    return {split: int(sizes.get(split, 0)) for split in SPLITS}


def _temp_file_beside(target: Path) -> IO[bytes]:
    """An open temp file in the target's folder, so that os.replace onto the target is atomic."""
    return tempfile.NamedTemporaryFile(
        "wb", dir=target.parent, prefix=f".{target.name}.", suffix=".tmp", delete=False
    )


def write_split_file(
    conn: duckdb_lib.DuckDBPyConnection,
    split: str,
    handle: IO[bytes],
    written: WrittenFile,
    categories: Sequence[str],
    counter: TokenCounter,
) -> None:
    """Stream one split's examples from DuckDB into `handle`, measuring as it goes."""
    digest = hashlib.sha256()
    cursor = conn.execute(
        "SELECT title, author, description, category FROM split_examples "
        "WHERE split = ? ORDER BY split_key, book_id",
        [split],
    )
    while rows := cursor.fetchmany(FETCH_BATCH):
        for title, author, description, category in rows:
            example = training_example(title, author, description, category, categories)
            data = (json.dumps(example, ensure_ascii=False) + "\n").encode("utf-8")
            handle.write(data)
            digest.update(data)
            written.examples += 1
            written.bytes += len(data)
            written.token_counts.append(count_example_tokens(example["messages"], counter))
    written.sha256 = digest.hexdigest()


def label_distribution(conn: duckdb_lib.DuckDBPyConnection, categories: Sequence[str]) -> str:
    """Markdown table: examples per category and split."""
    counts = {
        (category, split): n
        for category, split, n in conn.execute(
            "SELECT category, split, count(*) FROM split_examples GROUP BY ALL"
        ).fetchall()
    }
    rows = ["| category | train | validation | test |", "|---|---:|---:|---:|"]
    for category in categories:
        cells = " | ".join(str(counts.get((category, split), 0)) for split in SPLITS)
        rows.append(f"| {category} | {cells} |")
    totals = " | ".join(str(sum(n for (_, s), n in counts.items() if s == split)) for split in SPLITS)
    rows.append(f"| **total** | {totals} |")
    return "\n".join(rows)


def _file_metadata(
    written: WrittenFile,
    sizes: dict[str, int],
    distribution: str,
    counter: TokenCounter,
    config: SplitConfig,
    excluded: int,
) -> dict[str, Any]:
    stats = token_stats(written.token_counts)
    return {
        "path": str(written.path.resolve()),
        "examples": written.examples,
        "sha256": written.sha256,
        "bytes": written.bytes,
        **stats,
        "tokens_exact": counter.exact,
        "token_method": counter.method,
        "label_distribution": dg.MetadataValue.md(distribution),
        "train_examples": sizes["train"],
        "validation_examples": sizes["validation"],
        "test_examples": sizes["test"],
        "books_not_in_a_split": excluded,
        "seed": config.seed,
        "validation_fraction": config.validation_fraction,
        "test_fraction": config.test_fraction,
        "dagster/row_count": written.examples,
    }


def build_training_files(
    conn: duckdb_lib.DuckDBPyConnection, config: SplitConfig, out_dir: Path
) -> tuple[WrittenFile, WrittenFile, dict[str, Any]]:
    """Split, then write both files atomically; returns the two files and shared facts.

    Both files are written to temp files first and published only when both are complete, inside
    the transaction that writes `book_splits`: a failure leaves the old files and the old splits.
    """
    counter = token_counter()
    conn.execute("BEGIN TRANSACTION")
    try:
        sizes = assign_splits(conn, config)
        empty = [split for split, n in sizes.items() if n == 0]
        if empty:
            raise SplitError(
                f"split(s) {', '.join(empty)} would be empty (sizes {sizes}): enriched_graphic_novels "
                "has too few labelled books for these fractions/caps"
            )
        categories = category_list(conn)
        targets = {"train": out_dir / TRAINING_FILE_NAME, "validation": out_dir / VALIDATION_FILE_NAME}
        written = {split: WrittenFile(split, path) for split, path in targets.items()}
        temps: dict[str, Path] = {}
        try:
            for split, target in targets.items():
                with _temp_file_beside(target) as handle:
                    temps[split] = Path(handle.name)
                    write_split_file(conn, split, handle, written[split], categories, counter)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.chmod(temps[split], 0o644)  # temp files are created 0600; the published file is not secret
            for split, target in targets.items():
                os.replace(temps[split], target)
        finally:
            for temp in temps.values():  # after a failure: no partial file is left behind
                temp.unlink(missing_ok=True)
        total_labeled = conn.execute(
            "SELECT count(DISTINCT book_id) FROM enriched_graphic_novels "
            "WHERE category IN (SELECT category FROM categories)"
        ).fetchone()[0]
        facts = {
            "sizes": sizes,
            "distribution": label_distribution(conn, categories),
            "excluded": int(total_labeled) - sum(sizes.values()),
            "counter": counter,
        }
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return written["train"], written["validation"], facts


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "training_file",
            deps=["enriched_graphic_novels"],
            group_name="training_data",
            kinds={"duckdb", "json"},
            description="training.jsonl: the train split of enriched_graphic_novels as OpenAI chat examples "
            "(seeded, stratified by category, disjoint from validation and test).",
        ),
        dg.AssetSpec(
            "validation_file",
            deps=["enriched_graphic_novels"],
            group_name="training_data",
            kinds={"duckdb", "json"},
            description="validation.jsonl: the validation split, same prompts, disjoint from train and test. "
            "The test split is recorded in book_splits for evaluation and never uploaded.",
        ),
    ],
    can_subset=False,
)
def training_files(
    context: dg.AssetExecutionContext, config: SplitConfig, duckdb: DuckDBResource
) -> Iterator[dg.MaterializeResult]:
    """Split the labelled books and write training.jsonl and validation.jsonl."""
    out_dir = files_dir()
    with connection(duckdb) as conn:
        try:
            train, validation, facts = build_training_files(conn, config, out_dir)
        except SplitError as error:
            raise dg.Failure(description=f"Cannot write the training files: {error}") from error
    context.log.info(
        f"splits {facts['sizes']} ({facts['counter'].method}); wrote {train.path} and {validation.path}"
    )
    for key, written in (("training_file", train), ("validation_file", validation)):
        yield dg.MaterializeResult(
            asset_key=key,
            metadata=_file_metadata(
                written, facts["sizes"], facts["distribution"], facts["counter"], config, facts["excluded"]
            ),
        )
