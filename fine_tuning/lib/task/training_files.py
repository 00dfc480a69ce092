"""`training_file`, `validation_file`: disjoint, stratified, seeded splits of a task's examples.

One multi-asset writes both files so that they always come from the same split configuration.
The split is assigned in SQL (`sql/training_files.sql`) over the task's source
(`source.SourceQuery`) and recorded in DuckDB (the task's splits table, `book_splits` for
Goodreads); the test split is never written to a file and serves evaluation. Rows stream from
DuckDB to disk (`core.example_files`); nothing holds the table in Python.
(No `from __future__ import annotations`: Dagster inspects the real `context` and `config` annotations.)
"""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar, Literal

import dagster as dg
import duckdb as duckdb_lib
from pydantic import Field, model_validator

from fine_tuning.core.catalog import MIN_TRAINING_EXAMPLES
from fine_tuning.core.checksums import file_sha256
from fine_tuning.core.evaluation_rounds import AskSettings
from fine_tuning.core.example_files import (
    SPLITS,
    SplitError,
    WrittenFile,
    check_fractions,
    check_sizes,
    label_distribution,
    publish_measured,
    write_examples,
)
from fine_tuning.core.graders import GraderError
from fine_tuning.core.grading import check_grader_runs
from fine_tuning.core.method_files import IdentifiedRow, write_method_examples
from fine_tuning.core.prompts import Prompt, TrainingExampleLines
from fine_tuning.core.tokens import TokenCounter, token_counter, token_method, token_stats
from fine_tuning.lib.builds import (
    REBUILT,
    build_fingerprint,
    forget_build,
    kept_build,
    kept_metadata,
    record_build,
)
from fine_tuning.lib.failures import disk_space_failures, provider_job_failures
from fine_tuning.lib.run_settings import CheckedConfig, SettingProblem, SettingsError, require_valid_run_settings
from fine_tuning.lib.sql import sql_statements
from fine_tuning.lib.task.config import task_config
from fine_tuning.lib.task.keys import TRAINING_FILE_NAME, VALIDATION_FILE_NAME
from fine_tuning.lib.task.method_files import PreferencePairs, answering_model, preference_pairs, split_rows
from fine_tuning.lib.task.source import SourceError
from fine_tuning.lib.warehouse import connection, stream_rows, transaction

if TYPE_CHECKING:
    from fine_tuning.lib.task.component import FineTuningTask

SQL = sql_statements(__package__, "training_files")
# The one row of a free-form task's label distribution (its examples per split).
FREE_FORM_ROW = "(free-form answers)"
# At most half of every label is held out: the rest is what the model learns from.
MAX_HELD_OUT = 0.5


class SplitConfig(CheckedConfig):
    """How examples are split into train / validation / test (one config for both files)."""

    run_config_path: ClassVar[str] = "ops.training_files.config"

    seed: int = Field(default=42, description="Seed of the deterministic example-id hash that assigns splits.")
    validation_fraction: float = Field(
        default=0.1, gt=0.0, le=MAX_HELD_OUT,
        description="Share of each category for validation (0 < x <= 0.5; with test_fraction at most 0.5).",
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
    answers_mode: Literal["online", "batch"] = Field(
        default="online", description="DPO only: how the production (or base) model is asked about the training "
        "examples whose mistakes become the pairs: online, or one Batch API batch at half the price (resumed "
        "after a crash). Answers already known for these prompts are reused, never asked twice.",
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


def assign_splits(conn: duckdb_lib.DuckDBPyConnection, task: "FineTuningTask", labels: list[str],
                  config: SplitConfig, free_form: bool = False) -> dict[str, int]:
    """Write the task's splits table (and the temp table `split_examples`); return the size of each split.

    Stratified by label; free-form answers (no label set) are one stratum: a seeded, unstratified split.
    """
    check_fractions(config.validation_fraction, config.test_fraction)
    conn.execute(
        SQL["split_examples"],
        {
            "labels": labels,
            "free_form": free_form,
            "seed": config.seed,
            "test_fraction": config.test_fraction,
            "validation_fraction": config.validation_fraction,
            "max_train": config.max_train_examples,
            "max_validation": config.max_validation_examples,
            "max_test": config.max_test_examples,
        },
    )
    conn.execute(task.state_sql(SQL["record_splits"]))
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
    # Three numbers for the UI to plot (it plots every number); the rest in one details entry.
    details = {
        "bytes": written.bytes,
        **{name: value for name, value in stats.items() if name != "total_tokens"},
        "train_examples": sizes["train"],
        "validation_examples": sizes["validation"],
        "test_examples": sizes["test"],
        "books_not_in_a_split": excluded,
        "seed": config.seed,
        "validation_fraction": config.validation_fraction,
        "test_fraction": config.test_fraction,
    }
    return {
        "dagster/row_count": written.examples,
        "examples": written.examples,
        "total_tokens": stats["total_tokens"],
        "path": str(written.path.resolve()),
        "sha256": written.sha256,
        "tokens_exact": counter.exact,
        "token_method": counter.method,
        "label_distribution": dg.MetadataValue.md(distribution),
        "details": dg.MetadataValue.json(details),
    }


# Builds the DPO pairs of a task from its prompt and the (id, user message, label) rows of train and validation.
PairsSource = Callable[[Prompt, list[IdentifiedRow], list[IdentifiedRow]], PreferencePairs]


def build_training_files(
    conn: duckdb_lib.DuckDBPyConnection, task: "FineTuningTask", config: SplitConfig, out_dir: Path,
    method: str = "supervised", pairs_source: PairsSource | None = None,
) -> tuple[WrittenFile, WrittenFile, dict[str, Any]]:
    """Split, then write both files atomically, as `method`'s lines; returns the two files and shared facts.

    Both files are written to temp files first and published only when both are complete, inside
    the transaction that writes the splits table: a failure leaves the old files and the old splits.
    DPO files hold the pairs `pairs_source` makes (a model's own mistakes on the training examples).
    """
    counter = token_counter()
    with transaction(conn):
        prompt = task.open_examples(conn)
        labels = list(prompt.labels)
        sizes = assign_splits(conn, task, labels, config, prompt.free_form)
        try:
            check_sizes(sizes, task.source_query.described())
        except SplitError as error:
            raise SplitError(f"{error}; with {_split_settings(config)}") from None
        targets = {"train": out_dir / TRAINING_FILE_NAME, "validation": out_dir / VALIDATION_FILE_NAME}
        written = {split: WrittenFile(split, path) for split, path in targets.items()}
        pairs = None
        if method == "dpo":
            assert pairs_source is not None, "a DPO file needs the model whose mistakes it pairs"
            rows = {split: split_rows(conn, task, SQL["split_rows_with_ids"], split) for split in targets}
            pairs = pairs_source(prompt, rows["train"], rows["validation"])

        def write_split(split: str, handle: IO[bytes]) -> None:
            if method == "supervised":
                rows = stream_rows(conn.execute(SQL["split_rows"], {"split": split}))
                examples = ((task.render(fields), label) for fields, label in rows)
                write_examples(examples, handle, written[split], prompt, counter)
                return
            rejected = None if pairs is None else (pairs.train if split == "train" else pairs.validation)
            identified = split_rows(conn, task, SQL["split_rows_with_ids"], split)
            write_method_examples(identified, handle, written[split], prompt, counter, method, rejected)

        publish_measured(targets, write_split, written, counter.method)
        counts = {(label or FREE_FORM_ROW, split): n for label, split, n in conn.execute(SQL["split_counts"]).fetchall()}
        total_labeled = conn.execute(
            SQL["labeled_examples"], {"labels": labels, "free_form": prompt.free_form}
        ).fetchone()[0]
        facts = {
            "sizes": sizes,
            "distribution": label_distribution(counts, [FREE_FORM_ROW] if prompt.free_form else labels),
            "excluded": int(total_labeled) - sum(sizes.values()),
            "counter": counter,
            "method": method,
            "pairs": pairs,
        }
    return written["train"], written["validation"], facts


BUILD_TARGET = "training_files"


def files_fingerprint(conn: duckdb_lib.DuckDBPyConnection, task: "FineTuningTask", config: SplitConfig,
                      method: str = "supervised", answering: str | None = None) -> str | None:
    """What both files are written from: the source (as its recorded builds and loads say, else its
    content), the labels, the configuration, the SQL, the exact example format (one rendered line
    per label), how tokens are counted, the method and (DPO) whose mistakes they pair. None (never
    kept) when the source cannot be read."""
    try:
        prompt = task.open_examples(conn)
    except (SourceError, SplitError):
        return None
    lines = TrainingExampleLines(prompt)
    return build_fingerprint(
        task.build_target(BUILD_TARGET),
        task.source_fingerprint(conn),
        config.model_dump(), dict(SQL), task.splits_table_name(), task.prompt.user_template,
        [lines.line("", label) for label in prompt.labels] or None,
        token_method(), TRAINING_FILE_NAME, VALIDATION_FILE_NAME,
        *(() if method == "supervised" else (method, answering)),
        # Free-form: the example format (no answer format in the system message) and, for DPO, the
        # grader deciding which answers are mistakes.
        *((FREE_FORM_ROW, lines.line("", ""), prompt.grading.fingerprint()) if prompt.grading is not None else ()),
    )


def kept_files(conn: duckdb_lib.DuckDBPyConnection, task: "FineTuningTask", fingerprint: str | None,
               out_dir: Path) -> dict[str, Any] | None:
    """The recorded metadata of both files when they were written from `fingerprint` and are intact on disk."""
    record = kept_build(conn, task.build_target(BUILD_TARGET), fingerprint, [task.splits_table_name()])
    if record is None:
        return None
    kept = kept_metadata(record)
    for key, name in (("training_file", TRAINING_FILE_NAME), ("validation_file", VALIDATION_FILE_NAME)):
        path = out_dir / name
        if not path.is_file() or str(path.resolve()) != kept[key]["path"] or file_sha256(path) != kept[key]["sha256"]:
            return None
    return kept


# What a failed write leaves (the files are published together with the splits table, or not at all).
KEPT_ON_FAILURE = "the previous training and validation files and the previous splits"


def build_training_files_asset(task: "FineTuningTask") -> dg.AssetsDefinition:
    """The task's `training_file` and `validation_file`, written by one step (`training_files`)."""
    keys = task.keys
    config_class = task_config(SplitConfig, f"ops.{keys.op('training_files')}.config", **task.splits.model_dump())
    source = task.source_query.described()

    @dg.multi_asset(
        name=keys.op("training_files"),
        specs=[
            dg.AssetSpec(
                keys.training_file,
                deps=task.dep_keys(),
                group_name=task.files_group(),
                kinds={"duckdb", "json"},
                description=f"training.jsonl: the train split of {source} as OpenAI chat examples "
                "(seeded, stratified by label, disjoint from validation and test).",
            ),
            dg.AssetSpec(
                keys.validation_file,
                deps=task.dep_keys(),
                group_name=task.files_group(),
                kinds={"duckdb", "json"},
                description="validation.jsonl: the validation split, same prompts, disjoint from train and test. "
                f"The test split is recorded in {task.splits_table_name()} for evaluation and never uploaded.",
            ),
        ],
        can_subset=False,
        # openai: a DPO file asks the production (or base) model about the training examples.
        required_resource_keys={task.duckdb_resource_key(), keys.tuning_resource, "openai"},
        pool=task.tables_pool(),
    )
    def training_files(context: dg.AssetExecutionContext, config: config_class) -> Iterator[dg.MaterializeResult]:  # type: ignore[valid-type]
        """Split the labelled examples and write training.jsonl and validation.jsonl.

        Both files (and the splits table) are kept as they are when the source, the labels, the
        configuration, the SQL and the example format they were written from are unchanged.
        """
        require_valid_run_settings(context)
        out_dir = keys.files_dir()
        tuning = getattr(context.resources, keys.tuning_resource)
        method = tuning.method_type()
        answering = answering_model(context, task, tuning.base_model) if method == "dpo" else None

        def pairs_source(prompt: Prompt, train: list[IdentifiedRow], validation: list[IdentifiedRow]) -> PreferencePairs:
            assert answering is not None
            with context.resources.openai.get_client_for_asset(context, keys.training_file) as client, provider_job_failures():
                return preference_pairs(context, task, client, answering, prompt, train, validation,
                                        AskSettings(mode=config.answers_mode))

        grading = task.grading()
        if grading is not None and grading.needs_model:  # refused by the provider: stop before any file or job
            with context.resources.openai.get_client_for_asset(context, keys.training_file) as client:
                try:
                    check_grader_runs(client, grading)
                except GraderError as error:
                    raise dg.Failure(description=f"Cannot grade the task's answers: {error}") from None
        with connection(task.duckdb(context)) as conn:
            fingerprint = files_fingerprint(conn, task, config, method, answering)
            metadata = kept_files(conn, task, fingerprint, out_dir)
            if metadata is not None:
                context.log.info("training files: their inputs are those they were written from; kept both")
            else:
                forget_build(conn, task.build_target(BUILD_TARGET))
                try:
                    with disk_space_failures(out_dir, kept=KEPT_ON_FAILURE):
                        train, validation, facts = build_training_files(conn, task, config, out_dir, method,
                                                                        pairs_source)
                except (SplitError, SourceError) as error:
                    raise dg.Failure(description=f"Cannot write the training files: {error}") from error
                context.log.info(
                    f"splits {facts['sizes']} ({facts['counter'].method}); wrote {train.path} and {validation.path}"
                )
                files = {
                    key: {**_file_metadata(written, facts["sizes"], facts["distribution"], facts["counter"], config,
                                           facts["excluded"]), "method": method}
                    for key, written in (("training_file", train), ("validation_file", validation))
                }
                if facts["pairs"] is not None:
                    files["training_file"].update(facts["pairs"].metadata())
                metadata = record_build(conn, task.build_target(BUILD_TARGET), fingerprint, files)
        for name, key in (("training_file", keys.training_file), ("validation_file", keys.validation_file)):
            yield dg.MaterializeResult(asset_key=key, metadata={**metadata[name], REBUILT: metadata[REBUILT]})

    return training_files
