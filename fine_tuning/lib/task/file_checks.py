"""Blocking Dagster asset checks on the training and validation files, each file read once.

The seven checks (format, token and cost of the training file; format and token of the
validation file; overlap between them; the test split kept out of both) are one
`multi_asset_check`: one pass over each file (`core.chat_files.validate_chat_file`) yields the
format errors, token counts, cost and the identities the overlap and split checks compare, and
each check judges that one report. Every check stays blocking and keeps its own name, so
selecting a subset of them runs only what they need. `build_file_checks` makes them for one task.

Every result records what it judged (`checked_inputs`: the sha256 of the bytes it read, the
recorded sha256, the settings, the split the files were written from, the rules' own source).
A check whose latest evaluation judged exactly what is there now (the files hashed again, every
other input compared) reports that evaluation again, with `reused_from_run`, instead of reading
and judging the files a second time: an unchanged re-run pays a hash per file, not a pass.
(No `from __future__ import annotations`: Dagster inspects the real `context` annotation.)
"""

import functools
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from fine_tuning.core.catalog import MIN_TRAINING_EXAMPLES, PRICING_AS_OF, TOKEN_LIMITS_AS_OF
from fine_tuning.core.chat_files import (
    FORMAT_ERROR_KINDS,
    MIN_VALIDATION_EXAMPLES,
    FileReport,
    content_digest,
    overlap_between,
    validate_written_file,
)
from fine_tuning.core.checksums import file_sha256
from fine_tuning.core.example_files import SplitError
from fine_tuning.core.time_billing import time_cost
from fine_tuning.core.tokens import token_counter, token_method
from fine_tuning.lib.builds import build_fingerprint, published_fingerprint
from fine_tuning.lib.facts import RecordedEvaluation, latest_check_evaluation, latest_materialization
from fine_tuning.lib.sql import sql_statements
from fine_tuning.lib.task.keys import TRAINING_FILE_NAME, VALIDATION_FILE_NAME, TaskKeys
from fine_tuning.lib.task.source import SourceError
from fine_tuning.lib.task.training_files import BUILD_TARGET as FILES_BUILD_TARGET
from fine_tuning.lib.task.tuning import TuningSettings
from fine_tuning.lib.warehouse import connection, missing_tables, stream_rows

if TYPE_CHECKING:
    from fine_tuning.lib.task.component import FineTuningTask

SQL = sql_statements(__package__, "file_checks")
_FIRST_LINES = 10
# Metadata keys: the fingerprint of what a result judged, and the run whose result is reported again.
CHECKED_INPUTS = "checked_inputs"
REUSED_FROM_RUN = "reused_from_run"


@dataclass(frozen=True)
class _Split:
    """One of the two files: its asset, its name on disk and OpenAI's minimum number of examples."""

    label: str  # "training" / "validation": the prefix of its check names
    key: dg.AssetKey
    file_name: str
    min_examples: int


def file_splits(keys: TaskKeys) -> tuple[_Split, _Split]:
    """The task's training and validation files."""
    return (
        _Split("training", keys.training_file, TRAINING_FILE_NAME, MIN_TRAINING_EXAMPLES),
        _Split("validation", keys.validation_file, VALIDATION_FILE_NAME, MIN_VALIDATION_EXAMPLES),
    )


@dataclass
class _ReadFile:
    """One file at its deterministic path, what its latest materialization recorded, and its report."""

    split: _Split
    path: Path
    materialized_sha256: str | None
    report: FileReport | None  # None: the file cannot be read at all (see `problem`)
    problem: str | None


def _materialized_sha256(context: dg.AssetCheckExecutionContext, split: _Split) -> str | None:
    """The sha256 the file's latest materialization recorded (None: none recorded)."""
    materialized = latest_materialization(context.instance, split.key)
    sha = materialized.metadata.get("sha256") if materialized else None
    return str(sha) if sha is not None else None


def _read(context: dg.AssetCheckExecutionContext, keys: TaskKeys, split: _Split, tuning: TuningSettings) -> _ReadFile:
    """Validate the file in one pass (or say why it cannot be)."""
    path = keys.files_dir() / split.file_name
    recorded = _materialized_sha256(context, split)
    if not path.is_file():
        problem = f"{path} does not exist: materialize {split.key.to_user_string()} first"
        return _ReadFile(split, path, recorded, None, problem)
    # The writer's token counts of these exact bytes are taken, not counted again (same sha256).
    report = validate_written_file(
        path, tuning.base_model, n_epochs=tuning.epochs(), min_examples=split.min_examples, counter=token_counter(),
        method=tuning.method_type(),
    )
    return _ReadFile(split, path, recorded, report, None)


def _unreadable(key: dg.AssetKey, name: str, *files: _ReadFile) -> dg.AssetCheckResult | None:
    """A failed result for check `name` when one of `files` cannot be read, else None."""
    for read in files:
        if read.problem:
            return dg.AssetCheckResult(
                asset_key=key, check_name=name, passed=False, severity=dg.AssetCheckSeverity.ERROR,
                description=read.problem, metadata={"path": str(read.path)},
            )
    return None


def _common_metadata(read: _ReadFile, report: FileReport, numbers: dict[str, Any], **details: Any) -> dict[str, Any]:
    """A check's own few `numbers` (the UI plots every number), what identifies the file, and one details entry
    with the file's token statistics and the check's other figures."""
    return {
        **numbers,
        "path": report.path,
        "sha256": report.sha256,
        "materialized_sha256": read.materialized_sha256 or "none recorded",
        "tokens_exact": report.tokens_exact,
        "token_method": report.token_method,
        "token_counts": report.token_counts_source,
        "details": dg.MetadataValue.json({
            "examples": report.examples,
            **report.token_stats(),
            "approximately_counted_examples": len(report.approximate_token_lines),
            "estimated_cost_usd": report.estimated_cost_usd,
            **details,
        }),
    }


def _sha_mismatch(read: _ReadFile, report: FileReport) -> str | None:
    if read.materialized_sha256 and read.materialized_sha256 != report.sha256:
        return (
            f"{report.path} changed since it was materialized "
            f"(sha256 {report.sha256[:12]} != recorded {read.materialized_sha256[:12]})"
        )
    return None


def _result(read: _ReadFile, aspect: str, passed: bool, description: str, metadata: dict[str, Any]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=read.split.key, check_name=f"{read.split.label}_file_{aspect}_check", passed=passed,
        severity=dg.AssetCheckSeverity.ERROR, description=description, metadata=metadata,
    )


def _time_billed(read: _ReadFile, report: FileReport, tuning: TuningSettings) -> dg.AssetCheckResult:
    """Reinforcement fine-tuning is billed by training time, which no file predicts: reported as a
    warning with the hourly rate, so the budget is a decision the user sees, not a number made up.
    The budget binds while the job trains (`fine_tuned_model` cancels it when its billed time reaches it)."""
    rate = f"${report.price_per_hour:.2f} per training hour" if report.price_per_hour is not None else "an unknown hourly rate"
    description = (
        f"reinforcement fine-tuning of {tuning.base_model} is billed by training time at {rate} (prices as of "
        f"{PRICING_AS_OF}) plus the grader's tokens: the file cannot be priced in advance; the job is cancelled "
        f"when its billed training time reaches the ${tuning.max_cost_usd:.2f} budget"
    )
    # Billing is prorated to the second: a budget below one second's price could not pay for any training.
    too_small = report.price_per_hour is not None and time_cost(1, report.price_per_hour) > tuning.max_cost_usd
    if too_small:
        description = (f"the ${tuning.max_cost_usd:.4f} budget does not pay for one second of reinforcement "
                       f"fine-tuning of {tuning.base_model} ({rate}, prices as of {PRICING_AS_OF}): nothing is uploaded")
    return dg.AssetCheckResult(
        asset_key=read.split.key, check_name=f"{read.split.label}_file_cost_check", passed=False,
        severity=dg.AssetCheckSeverity.ERROR if too_small else dg.AssetCheckSeverity.WARN, description=description, metadata={
            **_common_metadata(
                read, report, {"max_cost_usd": tuning.max_cost_usd}, model=tuning.base_model, method=report.method,
                price_per_training_hour_usd=report.price_per_hour, pricing_as_of=PRICING_AS_OF,
            ),
        },
    )


def judge_format(read: _ReadFile, report: FileReport, tuning: TuningSettings) -> dg.AssetCheckResult:
    """Format rules, and the file is the one that was materialized; warnings are reported, not failed."""
    mismatch = _sha_mismatch(read, report)
    counts = report.format_error_counts
    problems = [f"{sum(counts.values())} format error(s): {', '.join(counts)}"] if counts else []
    if mismatch:
        problems.append(mismatch)
    warnings = {kind: n for kind, n in report.warning_counts.items() if n}
    summary = f"{report.examples} examples, all well-formed"
    if warnings:
        summary += f" ({', '.join(f'{n} {kind}' for kind, n in warnings.items())} warning(s))"
    numbers = {"examples": report.examples, "format_errors": sum(counts.values()), "warnings": sum(warnings.values())}
    return _result(read, "format", not problems, "; ".join(problems) or summary, {
        **_common_metadata(read, report, numbers, min_examples=read.split.min_examples),
        "errors_by_kind": dg.MetadataValue.md(report.errors_markdown(FORMAT_ERROR_KINDS)),
        "warnings_by_kind": dg.MetadataValue.md(report.warnings_markdown()),
        "first_offending_lines": str(report.first_lines(FORMAT_ERROR_KINDS, _FIRST_LINES)),
    })


def judge_tokens(read: _ReadFile, report: FileReport, tuning: TuningSettings) -> dg.AssetCheckResult:
    """No example over the base model's per-example token limit."""
    over = report.over_limit
    truncated = ", ".join(f"line {line} ({tokens} tokens)" for line, tokens in over[:_FIRST_LINES])
    description = (
        f"{len(over)} example(s) over the {report.token_limit}-token limit of {tuning.base_model} would be truncated: {truncated}"
        if over else f"every example fits the {report.token_limit}-token limit of {tuning.base_model}"
    )
    numbers = {"examples_over_limit": len(over), "token_limit": report.token_limit,
               "tokens_max": report.token_stats()["tokens_max"]}
    return _result(read, "token", not over, description, {
        **_common_metadata(read, report, numbers, token_limit_known=report.token_limit_known,
                           token_limits_as_of=TOKEN_LIMITS_AS_OF),
        "model": tuning.base_model,
        "truncated_examples": truncated or "none",
        "first_offending_lines": str([line for line, _ in over[:_FIRST_LINES]]),
    })


def judge_cost(read: _ReadFile, report: FileReport, tuning: TuningSettings) -> dg.AssetCheckResult:
    """Estimated training cost within the `tuning` budget; an unpriced model fails."""
    cost = report.estimated_cost_usd
    if report.method == "reinforcement":
        return _time_billed(read, report, tuning)
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
    numbers = {"billing_tokens": report.billing_tokens,
               "estimated_cost_usd": cost if cost is not None else "unknown", "max_cost_usd": tuning.max_cost_usd}
    return _result(read, "cost", passed, description, {
        **_common_metadata(read, report, numbers, n_epochs=report.n_epochs, epochs_rule=report.epochs_rule,
                           price_per_million_usd=report.price_per_million, pricing_as_of=PRICING_AS_OF),
        "model": tuning.base_model,
    })


def judge_overlap(training: _ReadFile, validation: _ReadFile) -> dg.AssetCheckResult:
    """Train and validation are disjoint, by whole example and by user message."""
    name = "validation_file_overlap_check"
    unreadable = _unreadable(validation.split.key, name, training, validation)
    if unreadable is not None:
        return unreadable
    assert training.report is not None and validation.report is not None
    overlap = overlap_between(training.report, validation.report)
    pairs = overlap.identical_examples + overlap.shared_user_messages
    return dg.AssetCheckResult(
        asset_key=validation.split.key, check_name=name, passed=overlap.ok, severity=dg.AssetCheckSeverity.ERROR,
        description=(
            "training and validation share no example and no user message" if overlap.ok
            else f"{len(overlap.identical_examples)} identical example(s) and "
            f"{len(overlap.shared_user_messages)} shared user message(s) between training and validation"
        ),
        metadata={
            "identical_examples": len(overlap.identical_examples),
            "shared_user_messages": len(overlap.shared_user_messages),
            "first_offending_lines": str([f"training:{a} validation:{b}" for a, b in pairs[:_FIRST_LINES]]),
        },
    )


def judge_splits_disjoint(training: _ReadFile, validation: _ReadFile, task: "FineTuningTask",
                          context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """The splits table is a partition, and the test split's prompts are absent from both files."""
    name = "training_file_splits_disjoint_check"
    key = training.split.key
    unreadable = _unreadable(key, name, training, validation)
    if unreadable is not None:
        return unreadable
    file_users: dict[int, str] = {}
    for read in (training, validation):
        assert read.report is not None
        for digest, line in read.report.user_digests.items():
            file_users.setdefault(digest, f"{read.split.label}:{line}")
    splits_table = task.splits_table_name()
    with connection(task.duckdb(context)) as conn:
        missing = missing_tables(conn, [splits_table])
        try:
            task.open_examples(conn)
        except SourceError as error:
            missing.append(f"the source ({error})")
        if missing:
            return dg.AssetCheckResult(
                asset_key=key, check_name=name, passed=False, severity=dg.AssetCheckSeverity.ERROR,
                description=f"{' and '.join(missing)} missing: materialize {key.to_user_string()} first",
            )
        repeated = conn.execute(task.state_sql(SQL["examples_in_several_splits"])).fetchone()[0]
        test_books, leaked = 0, []
        for example_id, fields in stream_rows(conn.execute(task.state_sql(SQL["split_examples"]), {"split": "test"})):
            test_books += 1
            where = file_users.get(content_digest(task.render(fields)))
            if where is not None:
                leaked.append(f"{example_id} -> {where}")
    passed = repeated == 0 and not leaked
    return dg.AssetCheckResult(
        asset_key=key, check_name=name, passed=passed, severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"splits are disjoint; none of {test_books} test books is in a file" if passed
            else f"{repeated} book(s) in several splits; {len(leaked)} test book(s) found in a file"
        ),
        metadata={
            "books_in_several_splits": int(repeated),
            "test_books": test_books,
            "test_books_in_files": len(leaked),
            "first_offending": str(leaked[:_FIRST_LINES]),
        },
    )


_FileJudge = Callable[[_ReadFile, FileReport, TuningSettings], dg.AssetCheckResult]
# Checks on one file: (split label, aspect) -> judge.
FILE_JUDGES: dict[tuple[str, str], _FileJudge] = {
    ("training", "format"): judge_format,
    ("validation", "format"): judge_format,
    ("training", "token"): judge_tokens,
    ("validation", "token"): judge_tokens,
    ("training", "cost"): judge_cost,
}
PAIR_CHECKS = ("validation_file_overlap_check", "training_file_splits_disjoint_check")


@functools.lru_cache(maxsize=1)
def rules_version() -> str:
    """sha256 of the source of the rules the checks apply (`fine_tuning/core`, this module): a result
    judged under other rules, prices or limits is never reported again."""
    digest = hashlib.sha256()
    core = Path(__file__).resolve().parents[2] / "core"
    for path in [*sorted(core.glob("*.py")), Path(__file__).resolve()]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


# The files each check reads: a file check its own, the pair checks both.
def _labels_of(name: str) -> tuple[str, ...]:
    return ("training", "validation") if name in PAIR_CHECKS else (name.split("_", 1)[0],)


def checked_inputs(name: str, file_sha256s: dict[str, str | None], materialized: dict[str, str | None],
                   tuning: TuningSettings, split_fingerprint: str | None) -> str | None:
    """The fingerprint of what check `name` judges: the bytes of the files it reads, what their
    materializations recorded, the settings, the rules, and (the splits check) the split the files
    were written from. None when one of them is unknown: such a result is never reported again."""
    labels = _labels_of(name)
    shas = [file_sha256s.get(label) for label in labels]
    split = split_fingerprint if name == "training_file_splits_disjoint_check" else "-"
    if any(value is None for value in shas) or split is None:
        return None
    inputs = [name, rules_version(), token_method(), tuning.model_dump(mode="json"), shas,
              [materialized.get(label) for label in labels], split]
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _reportable_again(recorded: RecordedEvaluation | None, fingerprint: str | None) -> bool:
    """A recorded result judged exactly these inputs, and did not block (passed, or only warned)."""
    if recorded is None or fingerprint is None:
        return False
    judged = recorded.metadata.get(CHECKED_INPUTS)
    return getattr(judged, "value", None) == fingerprint and (
        recorded.passed or recorded.severity == dg.AssetCheckSeverity.WARN)


def _again(key: dg.AssetKey, name: str, recorded: RecordedEvaluation) -> dg.AssetCheckResult:
    """The recorded result of `name`, reported again with the run that judged it (a result reported
    again keeps naming the run that read the files)."""
    judged_in = getattr(recorded.metadata.get(REUSED_FROM_RUN), "value", None) or recorded.run_id
    return dg.AssetCheckResult(
        asset_key=key, check_name=name, passed=recorded.passed, severity=recorded.severity,
        description=recorded.description, metadata={**recorded.metadata, REUSED_FROM_RUN: judged_in},
    )


def _with_inputs(result: dg.AssetCheckResult, fingerprint: str | None) -> dg.AssetCheckResult:
    """`result` recording what it judged (nothing to record when an input is unknown)."""
    if fingerprint is None:
        return result
    return result.with_metadata({**result.metadata, CHECKED_INPUTS: fingerprint})


def _split_fingerprint(task: "FineTuningTask", context: dg.AssetCheckExecutionContext) -> str | None:
    """What the splits check compares: what the published splits table and files were written from,
    and the source as it is now (its test examples are rendered from it). None: nothing says."""
    with connection(task.duckdb(context)) as conn:
        written_from = published_fingerprint(conn, task.build_target(FILES_BUILD_TARGET))
        if written_from is None:
            return None
        try:
            task.open_examples(conn)
        except (SourceError, SplitError):
            return None
        return build_fingerprint("splits_check", written_from, task.source_fingerprint(conn))


def check_descriptions(task: "FineTuningTask") -> dict[str, str]:
    """Every check's name and what it blocks on."""
    budget = f"resources.{task.keys.tuning_resource}.config.max_cost_usd"
    return {
        "training_file_format_check": "Blocking: every example of training.jsonl follows OpenAI's chat format (cookbook "
        "rules plus role order, weights, names, blank content, valid JSON and Unicode), there are at least 10, and the "
        "file is the one that was materialized (sha256). Unknown top-level keys and duplicate examples are warnings.",
        "validation_file_format_check": "Blocking: every example of validation.jsonl follows OpenAI's chat format, the "
        "file is not empty, and it is the one that was materialized (sha256).",
        "training_file_token_check": "Blocking: no training example exceeds the base model's per-example token limit "
        "(o200k_base; examples that would be truncated are named).",
        "validation_file_token_check": "Blocking: no validation example exceeds the base model's per-example token limit.",
        "training_file_cost_check": "Blocking: estimated training cost (billing tokens x epochs x dated price per 1M "
        f"training tokens) must not exceed {budget}. A model without a known price fails: the budget cannot "
        "be verified.",
        "validation_file_overlap_check": "Blocking: the validation file shares no example and no user message with the "
        "training file.",
        "training_file_splits_disjoint_check": f"Blocking: every example is in at most one split of "
        f"{task.splits_table_name()}, and no test-split example's prompt appears in the training or validation file "
        "(evaluation never sees trained examples).",
    }


def _check_name(split: _Split, aspect: str) -> str:
    return f"{split.label}_file_{aspect}_check"


def build_file_checks(task: "FineTuningTask") -> dg.AssetChecksDefinition:
    """The task's seven blocking file checks, as one multi-asset check (`training_files_checks`)."""
    keys = task.keys
    training_split, validation_split = file_splits(keys)
    by_label = {split.label: split for split in (training_split, validation_split)}
    descriptions = check_descriptions(task)

    @dg.multi_asset_check(
        specs=[
            dg.AssetCheckSpec(
                name, asset=(training_split if name.startswith("training") else validation_split).key,
                blocking=True, description=description,
            )
            for name, description in descriptions.items()
        ],
        can_subset=True,
        name=keys.op("training_files_checks"),
        description="The blocking checks of training.jsonl and validation.jsonl, from one pass over each file.",
        required_resource_keys={keys.tuning_resource, task.duckdb_resource_key()},
    )
    def training_files_checks(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        """Report again each selected check whose inputs are those it last judged; read each file
        the others need once, then judge them from its report."""
        tuning: TuningSettings = getattr(context.resources, keys.tuning_resource)
        wanted = [key.name for key in context.selected_asset_check_keys]
        asset_of = {name: (training_split if name.startswith("training") else validation_split).key for name in wanted}
        materialized = {split.label: _materialized_sha256(context, split) for split in (training_split, validation_split)}
        split_fingerprint = _split_fingerprint(task, context) if "training_file_splits_disjoint_check" in wanted else None
        recorded = {name: latest_check_evaluation(context.instance, dg.AssetCheckKey(asset_of[name], name)) for name in wanted}

        def fingerprints(shas: dict[str, str | None]) -> dict[str, str | None]:
            return {name: checked_inputs(name, shas, materialized, tuning, split_fingerprint) for name in wanted}

        remaining = list(wanted)
        if any(evaluation is not None and CHECKED_INPUTS in evaluation.metadata for evaluation in recorded.values()):
            # Hashing is a fraction of a pass: only worth it when a recorded result may be reported again.
            needed = {label for name in wanted for label in _labels_of(name)}
            paths = {split.label: keys.files_dir() / split.file_name for split in (training_split, validation_split)}
            hashed = {label: file_sha256(paths[label]) if paths[label].is_file() else None for label in needed}
            current = fingerprints(hashed)
            for name in wanted:
                if _reportable_again(recorded[name], current[name]):
                    assert recorded[name] is not None
                    yield _again(asset_of[name], name, recorded[name])
                    remaining.remove(name)
            if remaining:
                context.log.info(f"file checks: judging {', '.join(remaining)} again (reported "
                                 f"{len(wanted) - len(remaining)} unchanged result(s) again)")
            else:
                context.log.info("file checks: both files, the settings and the split are those last judged; "
                                 "reported the recorded results again")
        if not remaining:
            return
        needs_both = bool(set(remaining) & set(PAIR_CHECKS))
        files = {
            split.label: _read(context, keys, split, tuning)
            for split in (training_split, validation_split)
            if needs_both or any(name.startswith(split.label) for name in remaining)
        }
        judged = fingerprints({label: read.report.sha256 if read.report else None for label, read in files.items()})
        for (label, aspect), judge in FILE_JUDGES.items():
            split = by_label[label]
            name = _check_name(split, aspect)
            if name in remaining:
                read = files[label]
                unreadable = _unreadable(split.key, name, read)
                result = unreadable if unreadable is not None else judge(read, read.report, tuning)  # type: ignore[arg-type]
                yield _with_inputs(result, judged[name] if unreadable is None else None)
        if "validation_file_overlap_check" in remaining:
            yield _with_inputs(judge_overlap(files["training"], files["validation"]), judged["validation_file_overlap_check"])
        if "training_file_splits_disjoint_check" in remaining:
            yield _with_inputs(judge_splits_disjoint(files["training"], files["validation"], task, context),
                               judged["training_file_splits_disjoint_check"])

    return training_files_checks
