"""Blocking Dagster asset checks on the training and validation files.

The rules themselves live in the Dagster-free core (`core.chat_files`: format, tokens, cost,
overlap; `core.tokens`; `core.catalog`); this module only reads the materialized files, applies
those rules and turns the reports into check results. Every check is a module-level attribute
so that the defs-folder loader finds it.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_duckdb import DuckDBResource

from fine_tuning.core.catalog import MIN_TRAINING_EXAMPLES, PRICING_AS_OF, TOKEN_LIMITS_AS_OF
from fine_tuning.core.chat_files import (
    FORMAT_ERROR_KINDS,
    MIN_VALIDATION_EXAMPLES,
    FileReport,
    content_digest,
    example_keys,
    find_overlap,
    validate_chat_file,
)
from fine_tuning.core.checksums import file_sha256
from fine_tuning.core.prompts import user_message
from fine_tuning.core.settings import files_dir
from fine_tuning.core.tokens import token_counter
from fine_tuning.defs.resources import TuningSettings
from fine_tuning.defs.shared.sql import sql_statements
from fine_tuning.defs.shared.warehouse import connection, missing_tables, stream_rows
from fine_tuning.defs.training_data.training_files import TRAINING_FILE_NAME, VALIDATION_FILE_NAME

SQL = sql_statements(__package__, "training_files_checks")
_FIRST_LINES = 10


@dataclass(frozen=True)
class _Split:
    """One of the two files: its asset, its name on disk and OpenAI's minimum number of examples."""

    label: str  # "training" / "validation": the prefix of its check names
    key: dg.AssetKey
    file_name: str
    min_examples: int


TRAINING = _Split("training", dg.AssetKey("training_file"), TRAINING_FILE_NAME, MIN_TRAINING_EXAMPLES)
VALIDATION = _Split("validation", dg.AssetKey("validation_file"), VALIDATION_FILE_NAME, MIN_VALIDATION_EXAMPLES)


@dataclass
class _CheckedFile:
    path: Path
    materialized_sha256: str | None
    problem: str | None  # why the file cannot be checked at all


def _checked_file(context: dg.AssetCheckExecutionContext, split: _Split) -> _CheckedFile:
    """The file at its deterministic path, plus what the latest materialization recorded."""
    path = files_dir() / split.file_name
    event = context.instance.get_latest_materialization_event(split.key)
    metadata = event.asset_materialization.metadata if event and event.asset_materialization else {}
    sha = metadata.get("sha256")
    problem = None if path.is_file() else f"{path} does not exist: materialize {split.key.to_user_string()} first"
    return _CheckedFile(
        path=path,
        materialized_sha256=str(sha.value) if sha is not None else None,
        problem=problem,
    )


def _missing_file_result(key: dg.AssetKey, *files: _CheckedFile) -> dg.AssetCheckResult | None:
    """A failed result on `key` for the first file that cannot be checked, or None when all can."""
    for checked in files:
        if checked.problem:
            return dg.AssetCheckResult(
                asset_key=key,
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                description=checked.problem,
                metadata={"path": str(checked.path)},
            )
    return None


# Each file is read once per (content, model, epochs) even though several checks look at it.
_REPORT_CACHE: dict[tuple[Any, ...], FileReport] = {}


def _report_for(checked: _CheckedFile, tuning: TuningSettings, min_examples: int) -> FileReport:
    counter = token_counter()
    key = (str(checked.path), file_sha256(checked.path), tuning.base_model, tuning.n_epochs, min_examples, counter.method)
    if key not in _REPORT_CACHE:
        if len(_REPORT_CACHE) >= 8:
            _REPORT_CACHE.pop(next(iter(_REPORT_CACHE)))
        _REPORT_CACHE[key] = validate_chat_file(
            checked.path, tuning.base_model, n_epochs=tuning.n_epochs, min_examples=min_examples, counter=counter
        )
    return _REPORT_CACHE[key]


def _common_metadata(report: FileReport, checked: _CheckedFile) -> dict[str, Any]:
    stats = report.token_stats()
    return {
        "path": report.path,
        "sha256": report.sha256,
        "materialized_sha256": checked.materialized_sha256 or "none recorded",
        "examples": report.examples,
        **stats,
        "tokens_exact": report.tokens_exact,
        "token_method": report.token_method,
        "estimated_cost_usd": report.estimated_cost_usd if report.estimated_cost_usd is not None else "unknown",
    }


def _sha_mismatch(checked: _CheckedFile, report: FileReport) -> str | None:
    if checked.materialized_sha256 and checked.materialized_sha256 != report.sha256:
        return (
            f"{report.path} changed since it was materialized "
            f"(sha256 {report.sha256[:12]} != recorded {checked.materialized_sha256[:12]})"
        )
    return None


# A judge turns one file's report into a check result; the factory below does the reading.
_Judge = Callable[[_Split, _CheckedFile, FileReport, TuningSettings], dg.AssetCheckResult]


def _file_check(split: _Split, aspect: str, judge: _Judge, description: str) -> dg.AssetChecksDefinition:
    """The blocking check `{split.label}_file_{aspect}_check`: read the file once (cached), then judge it."""

    @dg.asset_check(
        asset=split.key, name=f"{split.label}_file_{aspect}_check", blocking=True, description=description
    )
    def _check(context: dg.AssetCheckExecutionContext, tuning: TuningSettings) -> dg.AssetCheckResult:
        checked = _checked_file(context, split)
        missing = _missing_file_result(split.key, checked)
        if missing is not None:
            return missing
        return judge(split, checked, _report_for(checked, tuning, split.min_examples), tuning)

    return _check


def _judge_format(split: _Split, checked: _CheckedFile, report: FileReport, tuning: TuningSettings) -> dg.AssetCheckResult:
    """Format rules, and the file is the one that was materialized."""
    mismatch = _sha_mismatch(checked, report)
    counts = report.format_error_counts
    passed = not counts and mismatch is None
    problems = [f"{sum(counts.values())} format error(s): {', '.join(counts)}"] if counts else []
    if mismatch:
        problems.append(mismatch)
    return dg.AssetCheckResult(
        asset_key=split.key,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(problems) or f"{report.examples} examples, all well-formed",
        metadata={
            **_common_metadata(report, checked),
            "errors_by_kind": dg.MetadataValue.md(report.errors_markdown(FORMAT_ERROR_KINDS)),
            "format_errors": sum(counts.values()),
            "min_examples": split.min_examples,
            "first_offending_lines": str(report.first_lines(FORMAT_ERROR_KINDS, _FIRST_LINES)),
        },
    )


def _judge_tokens(split: _Split, checked: _CheckedFile, report: FileReport, tuning: TuningSettings) -> dg.AssetCheckResult:
    """No example over the base model's per-example token limit."""
    over = report.over_limit
    truncated = ", ".join(f"line {line} ({tokens} tokens)" for line, tokens in over[:_FIRST_LINES])
    return dg.AssetCheckResult(
        asset_key=split.key,
        passed=not over,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(over)} example(s) over the {report.token_limit}-token limit of {tuning.base_model} "
            f"would be truncated: {truncated}"
            if over
            else f"every example fits the {report.token_limit}-token limit of {tuning.base_model}"
        ),
        metadata={
            **_common_metadata(report, checked),
            "model": tuning.base_model,
            "token_limit": report.token_limit,
            "token_limit_known": report.token_limit_known,
            "token_limits_as_of": TOKEN_LIMITS_AS_OF,
            "examples_over_limit": len(over),
            "truncated_examples": truncated or "none",
            "first_offending_lines": str([line for line, _ in over[:_FIRST_LINES]]),
        },
    )


def _judge_cost(split: _Split, checked: _CheckedFile, report: FileReport, tuning: TuningSettings) -> dg.AssetCheckResult:
    """Estimated training cost within the `tuning` budget; an unpriced model fails."""
    cost = report.estimated_cost_usd
    if cost is None:
        passed = False
        description = (
            f"no training price for {tuning.base_model} in the table dated {PRICING_AS_OF}: the "
            f"${tuning.max_cost_usd:.2f} budget cannot be verified (add the model to "
            "the model catalog, fine_tuning/core/catalog.py)"
        )
    else:
        passed = cost <= tuning.max_cost_usd
        description = (
            f"estimated ${cost:.4f} {'<=' if passed else '>'} budget ${tuning.max_cost_usd:.2f} "
            f"({report.billing_tokens} tokens x {report.n_epochs} epochs ({report.epochs_rule}) x "
            f"${report.price_per_million:.2f}/1M, prices as of {PRICING_AS_OF})"
        )
    if not report.tokens_exact:
        description += " [token counts estimated]"
    return dg.AssetCheckResult(
        asset_key=split.key,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            **_common_metadata(report, checked),
            "model": tuning.base_model,
            "billing_tokens": report.billing_tokens,
            "n_epochs": report.n_epochs,
            "epochs_rule": report.epochs_rule,
            "price_per_million_usd": report.price_per_million if report.price_per_million is not None else "unknown",
            "pricing_as_of": PRICING_AS_OF,
            "max_cost_usd": tuning.max_cost_usd,
        },
    )


training_file_format_check = _file_check(
    TRAINING,
    "format",
    _judge_format,
    "Blocking: every example of training.jsonl follows OpenAI's chat format (cookbook rules "
    "plus role order, weights, blank content, valid JSON), there are at least 10, and the file is "
    "the one that was materialized (sha256).",
)
validation_file_format_check = _file_check(
    VALIDATION,
    "format",
    _judge_format,
    "Blocking: every example of validation.jsonl follows OpenAI's chat format, the file is "
    "not empty, and it is the one that was materialized (sha256).",
)
training_file_token_check = _file_check(
    TRAINING,
    "token",
    _judge_tokens,
    "Blocking: no training example exceeds the base model's per-example token limit "
    "(o200k_base; examples that would be truncated are named).",
)
validation_file_token_check = _file_check(
    VALIDATION,
    "token",
    _judge_tokens,
    "Blocking: no validation example exceeds the base model's per-example token limit.",
)
training_file_cost_check = _file_check(
    TRAINING,
    "cost",
    _judge_cost,
    "Blocking: estimated training cost (billing tokens x epochs x dated price per 1M "
    "training tokens) must not exceed tuning.max_cost_usd. A model without a known price fails: "
    "the budget cannot be verified.",
)


@dg.asset_check(
    asset=VALIDATION.key,
    name="validation_file_overlap_check",
    blocking=True,
    description="Blocking: the validation file shares no example and no user message with the "
    "training file.",
)
def validation_file_overlap_check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """Train and validation are disjoint, by whole example and by user message."""
    training, validation = _checked_file(context, TRAINING), _checked_file(context, VALIDATION)
    missing = _missing_file_result(VALIDATION.key, training, validation)
    if missing is not None:
        return missing
    overlap = find_overlap(training.path, validation.path)
    pairs = overlap.identical_examples + overlap.shared_user_messages
    return dg.AssetCheckResult(
        asset_key=VALIDATION.key,
        passed=overlap.ok,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            "training and validation share no example and no user message"
            if overlap.ok
            else f"{len(overlap.identical_examples)} identical example(s) and "
            f"{len(overlap.shared_user_messages)} shared user message(s) between training and validation"
        ),
        metadata={
            "identical_examples": len(overlap.identical_examples),
            "shared_user_messages": len(overlap.shared_user_messages),
            "first_offending_lines": str(
                [f"training:{a} validation:{b}" for a, b in pairs[:_FIRST_LINES]]
            ),
        },
    )


@dg.asset_check(
    asset=TRAINING.key,
    name="training_file_splits_disjoint_check",
    blocking=True,
    description="Blocking: every book is in at most one split of book_splits, and no test-split "
    "book's prompt appears in the training or validation file (evaluation never sees trained books).",
)
def training_file_splits_disjoint_check(
    context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource
) -> dg.AssetCheckResult:
    """book_splits is a partition, and the test split's prompts are absent from both files."""
    training, validation = _checked_file(context, TRAINING), _checked_file(context, VALIDATION)
    missing = _missing_file_result(TRAINING.key, training, validation)
    if missing is not None:
        return missing
    file_users: dict[bytes, str] = {}
    for split, checked in ((TRAINING, training), (VALIDATION, validation)):
        for line, _, user_digests in example_keys(checked.path):
            for digest in user_digests:
                file_users.setdefault(digest, f"{split.label}:{line}")
    with connection(duckdb) as conn:
        if missing_tables(conn, ("book_splits", "enriched_graphic_novels")):
            return dg.AssetCheckResult(
                asset_key=TRAINING.key,
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                description="book_splits or enriched_graphic_novels is missing: materialize training_file first",
            )
        repeated = conn.execute(SQL["books_in_several_splits"]).fetchone()[0]
        test_books = 0
        leaked: list[str] = []
        for book_id, title, author, description in stream_rows(conn.execute(SQL["split_books"], {"split": "test"})):
            test_books += 1
            where = file_users.get(content_digest(user_message(title, author, description)["content"]))
            if where is not None:
                leaked.append(f"{book_id} -> {where}")
    passed = repeated == 0 and not leaked
    return dg.AssetCheckResult(
        asset_key=TRAINING.key,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"splits are disjoint; none of {test_books} test books is in a file"
            if passed
            else f"{repeated} book(s) in several splits; {len(leaked)} test book(s) found in a file"
        ),
        metadata={
            "books_in_several_splits": int(repeated),
            "test_books": test_books,
            "test_books_in_files": len(leaked),
            "first_offending": str(leaked[:_FIRST_LINES]),
        },
    )


FILE_CHECKS: list[dg.AssetChecksDefinition] = [
    training_file_format_check,
    validation_file_format_check,
    training_file_token_check,
    validation_file_token_check,
    training_file_cost_check,
    validation_file_overlap_check,
    training_file_splits_disjoint_check,
]
