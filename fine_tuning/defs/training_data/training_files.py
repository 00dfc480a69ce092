"""`training_file`, `validation_file`: disjoint, stratified, seeded splits of `enriched_graphic_novels`.

One multi-asset writes both files so that they always come from the same split configuration.
The split is assigned in SQL (`sql/training_files.sql`) and recorded in DuckDB (`book_splits`);
the test split is never written to a file and serves evaluation. Rows stream from DuckDB to
disk (`core.splits`); nothing holds the table in Python.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, ClassVar

import dagster as dg
import duckdb as duckdb_lib
from dagster_duckdb import DuckDBResource
from pydantic import Field, model_validator

from fine_tuning.core.catalog import MIN_TRAINING_EXAMPLES
from fine_tuning.core.checksums import file_sha256
from fine_tuning.core.prompts import TrainingExampleLines
from fine_tuning.core.settings import files_dir
from fine_tuning.core.splits import (
    SPLITS,
    SplitError,
    WrittenFile,
    check_fractions,
    check_sizes,
    label_distribution,
    publish_measured,
    write_examples,
)
from fine_tuning.core.tokens import TokenCounter, token_counter, token_stats
from fine_tuning.defs.goodreads.loads import published_loads, same_load_problems
from fine_tuning.lib.builds import (
    REBUILT,
    build_fingerprint,
    forget_build,
    kept_build,
    kept_metadata,
    published_fingerprint,
    record_build,
)
from fine_tuning.lib.run_settings import CheckedConfig, SettingProblem, SettingsError, require_valid_run_settings
from fine_tuning.lib.sql import sql_statements
from fine_tuning.lib.warehouse import (
    configured_categories,
    connection,
    missing_tables,
    stream_rows,
    transaction,
)
from fine_tuning.defs.training_data import GROUP

SQL = sql_statements(__package__, "training_files")
# At most half of every category is held out: the rest is what the model learns from.
MAX_HELD_OUT = 0.5
# Names inside files_dir(); the file checks read the files back from the same paths.
TRAINING_FILE_NAME = "training.jsonl"
VALIDATION_FILE_NAME = "validation.jsonl"


class SplitConfig(CheckedConfig):
    """How books are split into train / validation / test (one config for both files)."""

    run_config_path: ClassVar[str] = "ops.training_files.config"

    seed: int = Field(default=42, description="Seed of the deterministic book-id hash that assigns splits.")
    validation_fraction: float = Field(
        default=0.1, gt=0.0, le=MAX_HELD_OUT, description="Share of each category for validation (0 < x <= 0.5; with test_fraction at most 0.5)."
    )
    test_fraction: float = Field(
        default=0.2, gt=0.0, le=MAX_HELD_OUT, description="Share of each category held out for evaluation (0 < x <= 0.5)."
    )
    max_train_examples: int | None = Field(
        default=None, ge=MIN_TRAINING_EXAMPLES,
        description=f"Cap on training examples (at least OpenAI's minimum of {MIN_TRAINING_EXAMPLES}; null: no cap).",
    )
    max_validation_examples: int | None = Field(
        default=500, ge=1, description="Cap on validation examples, >= 1 (bounds validation cost on the full dataset)."
    )
    max_test_examples: int | None = Field(
        default=500, ge=1, description="Cap on test books, >= 1 (bounds evaluation calls on the full dataset)."
    )

    @model_validator(mode="after")
    def _enough_left_to_train(self) -> "SplitConfig":
        held_out = self.validation_fraction + self.test_fraction
        if held_out > MAX_HELD_OUT + 1e-9:
            raise SettingsError([SettingProblem(
                f"{self.setting('validation_fraction')} + {self.setting('test_fraction')}", round(held_out, 6),
                f"holds out {held_out:.0%} of every category, leaving {1 - held_out:.0%} to train on; "
                f"allowed: validation_fraction + test_fraction <= {MAX_HELD_OUT}",
            )])
        return self


def category_list(conn: duckdb_lib.DuckDBPyConnection) -> list[str]:
    """The configured categories in their configured order (`categories` table)."""
    categories = configured_categories(conn)
    if not categories:
        raise SplitError("the categories table is empty: no label can be assigned")
    return categories


def assign_splits(conn: duckdb_lib.DuckDBPyConnection, config: SplitConfig) -> dict[str, int]:
    """Write `book_splits` (and the temp table `split_examples`); return the size of each split."""
    check_fractions(config.validation_fraction, config.test_fraction)
    missing = missing_tables(conn, ("enriched_graphic_novels", "categories"))
    if missing:
        raise SplitError(
            f"DuckDB table(s) {', '.join(missing)} missing: materialize enriched_graphic_novels "
            "(and book_category, which writes categories) first"
        )
    mixed = same_load_problems(conn)
    if mixed:
        raise SplitError(
            "the Goodreads tables do not come from one load: " + "; ".join(mixed)
            + ". Materialize the goodreads assets together (the whole job) before the training files"
        )
    conn.execute(
        SQL["split_examples"],
        {
            "seed": config.seed,
            "test_fraction": config.test_fraction,
            "validation_fraction": config.validation_fraction,
            "max_train": config.max_train_examples,
            "max_validation": config.max_validation_examples,
            "max_test": config.max_test_examples,
        },
    )
    conn.execute(SQL["book_splits"])
    sizes = dict(conn.execute(SQL["split_sizes"]).fetchall())
    return {split: int(sizes.get(split, 0)) for split in SPLITS}


def _split_settings(config: SplitConfig) -> str:
    """The settings that decide split sizes, by run-config path, for a message about an empty split."""
    names = ("validation_fraction", "test_fraction", "max_train_examples", "max_validation_examples", "max_test_examples")
    return ", ".join(f"{config.setting(name)} = {getattr(config, name)}" for name in names)


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
    with transaction(conn):
        sizes = assign_splits(conn, config)
        try:
            check_sizes(sizes)
        except SplitError as error:
            raise SplitError(f"{error}; with {_split_settings(config)}") from None
        categories = category_list(conn)
        targets = {"train": out_dir / TRAINING_FILE_NAME, "validation": out_dir / VALIDATION_FILE_NAME}
        written = {split: WrittenFile(split, path) for split, path in targets.items()}

        def write_split(split: str, handle: IO[bytes]) -> None:
            rows = stream_rows(conn.execute(SQL["split_rows"], {"split": split}))
            write_examples(rows, handle, written[split], categories, counter)

        publish_measured(targets, write_split, written, counter.method)
        counts = {(category, split): n for category, split, n in conn.execute(SQL["split_counts"]).fetchall()}
        total_labeled = conn.execute(SQL["labeled_books"]).fetchone()[0]
        facts = {
            "sizes": sizes,
            "distribution": label_distribution(counts, categories),
            "excluded": int(total_labeled) - sum(sizes.values()),
            "counter": counter,
        }
    return written["train"], written["validation"], facts


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "training_file",
            deps=["enriched_graphic_novels"],
            group_name=GROUP,
            kinds={"duckdb", "json"},
            description="training.jsonl: the train split of enriched_graphic_novels as OpenAI chat examples "
            "(seeded, stratified by category, disjoint from validation and test).",
        ),
        dg.AssetSpec(
            "validation_file",
            deps=["enriched_graphic_novels"],
            group_name=GROUP,
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
    """Split the labelled books and write training.jsonl and validation.jsonl.

    Both files (and `book_splits`) are kept as they are when the table, the categories, the
    configuration, the SQL and the example format they were written from are unchanged.
    """
    require_valid_run_settings(context)
    out_dir = files_dir()
    with connection(duckdb) as conn:
        fingerprint = files_fingerprint(conn, config)
        metadata = kept_files(conn, fingerprint, out_dir)
        if metadata is not None:
            context.log.info("training files: their inputs are those they were written from; kept both")
        else:
            forget_build(conn, BUILD_TARGET)
            try:
                train, validation, facts = build_training_files(conn, config, out_dir)
            except SplitError as error:
                raise dg.Failure(description=f"Cannot write the training files: {error}") from error
            context.log.info(
                f"splits {facts['sizes']} ({facts['counter'].method}); wrote {train.path} and {validation.path}"
            )
            files = {
                key: _file_metadata(written, facts["sizes"], facts["distribution"], facts["counter"], config,
                                    facts["excluded"])
                for key, written in (("training_file", train), ("validation_file", validation))
            }
            metadata = record_build(conn, BUILD_TARGET, fingerprint, files)
    for key in ("training_file", "validation_file"):
        yield dg.MaterializeResult(asset_key=key, metadata={**metadata[key], REBUILT: metadata[REBUILT]})


BUILD_TARGET = "training_files"


def files_fingerprint(conn: duckdb_lib.DuckDBPyConnection, config: SplitConfig) -> str | None:
    """What both files are written from: the published table and labels, the configuration, the
    SQL, the exact example format (one rendered line per category) and how tokens are counted."""
    categories = configured_categories(conn) if not missing_tables(conn, ["categories"]) else []
    lines = TrainingExampleLines(categories)
    loads = published_loads(conn)
    tables = ("enriched_graphic_novels", "book_category")
    return build_fingerprint(
        BUILD_TARGET,
        *(published_fingerprint(conn, table) for table in tables),
        *(loads[table][0] if table in loads else None for table in tables),
        config.model_dump(), dict(SQL), [lines.line("", category) for category in categories] or None,
        token_counter().method, TRAINING_FILE_NAME, VALIDATION_FILE_NAME,
    )


def kept_files(conn: duckdb_lib.DuckDBPyConnection, fingerprint: str | None, out_dir: Path) -> dict[str, Any] | None:
    """The recorded metadata of both files when they were written from `fingerprint` and are intact on disk."""
    record = kept_build(conn, BUILD_TARGET, fingerprint, ["book_splits"])
    if record is None:
        return None
    kept = kept_metadata(record)
    for key, name in (("training_file", TRAINING_FILE_NAME), ("validation_file", VALIDATION_FILE_NAME)):
        path = out_dir / name
        if not path.is_file() or str(path.resolve()) != kept[key]["path"] or file_sha256(path) != kept[key]["sha256"]:
            return None
    return kept
