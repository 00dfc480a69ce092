"""file_checks: every format rule, token limits, epochs and cost, overlap, and the blocking Dagster checks."""

import json
import shutil
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
import tiktoken
from dagster_duckdb import DuckDBResource

from fine_tuning.file_checks import (
    FILE_CHECKS,
    O200K_BASE_SHA256,
    PRICING_AS_OF,
    UNKNOWN_MODEL_TOKEN_LIMIT,
    auto_epochs,
    count_example_tokens,
    example_token_limit,
    file_sha256,
    find_overlap,
    resolve_model,
    tiktoken_cache_file,
    token_counter,
    training_price_per_million,
    validate_chat_file,
)
from fine_tuning.prompts import training_example
from fine_tuning.settings import duckdb_path, files_dir
from fine_tuning.training_files import training_files
from fine_tuning.tuning import TuningSettings

SHARED_TIKTOKEN = Path(__file__).resolve().parents[2] / "shared" / "tiktoken"
CATEGORIES = ["fantasy", "horror", "humor"]


def good_example(n: int) -> dict[str, Any]:
    """A valid example, distinct per n."""
    return training_example(f"Book {n}", "Someone", f"Story number {n}.", CATEGORIES[n % 3], CATEGORIES)


def write_jsonl(path: Path, lines: Sequence[Any]) -> Path:
    """Objects become JSON lines; str and bytes are written as given (for broken lines)."""
    with path.open("wb") as handle:
        for line in lines:
            if isinstance(line, bytes):
                handle.write(line + b"\n")
            elif isinstance(line, str):
                handle.write(line.encode("utf-8") + b"\n")
            else:
                handle.write(json.dumps(line, ensure_ascii=False).encode("utf-8") + b"\n")
    return path


def with_bad_line(tmp_path: Path, bad: Any, at: int = 5, total: int = 12) -> Path:
    """A file of `total` good examples where line `at` is replaced by `bad`."""
    lines: list[Any] = [good_example(n) for n in range(total)]
    lines[at - 1] = bad
    return write_jsonl(tmp_path / "data.jsonl", lines)


SYSTEM = {"role": "system", "content": "Classify."}
USER = {"role": "user", "content": "A book."}
ASSISTANT = {"role": "assistant", "content": '{"category":"horror"}'}

BAD_LINES: list[tuple[str, Any]] = [
    ("invalid_json", '{"messages": [}'),
    ("invalid_json", ""),  # blank line
    ("invalid_json", b'{"messages": "\xff\xfe"}'),  # not UTF-8
    ("data_type", "[1, 2, 3]"),
    ("data_type", '"just a string"'),
    ("missing_messages_list", {"prompt": "x", "completion": "y"}),
    ("missing_messages_list", {"messages": []}),
    ("missing_messages_list", {"messages": "hello"}),
    ("message_data_type", {"messages": [USER, "assistant: hi"]}),
    ("message_missing_key", {"messages": [{"role": "user"}, ASSISTANT]}),
    ("message_missing_key", {"messages": [USER, {"content": "hi"}]}),
    ("message_unrecognized_key", {"messages": [{**USER, "mood": "happy"}, ASSISTANT]}),
    ("unrecognized_role", {"messages": [{"role": "human", "content": "hi"}, ASSISTANT]}),
    ("missing_content", {"messages": [{"role": "user", "content": ""}, ASSISTANT]}),
    ("missing_content", {"messages": [{"role": "user", "content": None}, ASSISTANT]}),
    ("missing_content", {"messages": [{"role": "user", "content": ["parts"]}, ASSISTANT]}),
    ("empty_content", {"messages": [{"role": "user", "content": " \n\t "}, ASSISTANT]}),
    ("invalid_weight", {"messages": [USER, {**ASSISTANT, "weight": 2}]}),
    ("invalid_weight", {"messages": [USER, {**ASSISTANT, "weight": True}]}),
    ("invalid_weight", {"messages": [{**USER, "weight": 1}, ASSISTANT]}),
    ("roles_order", {"messages": [ASSISTANT, USER, ASSISTANT]}),
    ("roles_order", {"messages": [USER, USER, ASSISTANT]}),
    ("roles_order", {"messages": [SYSTEM, USER, ASSISTANT, USER]}),
    ("roles_order", {"messages": [USER, SYSTEM, ASSISTANT]}),
    ("example_missing_assistant_message", {"messages": [SYSTEM, USER]}),
]


@pytest.fixture
def exact_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point tiktoken at the shared o200k_base cache (skip when it is not there)."""
    if not SHARED_TIKTOKEN.is_dir():
        pytest.skip("no shared tiktoken cache")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(SHARED_TIKTOKEN))


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Any attempt to open a connection is recorded and refused."""
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


# --- format rules ---------------------------------------------------------------------------


def test_a_well_formed_file_passes(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "ok.jsonl", [good_example(n) for n in range(12)])
    report = validate_chat_file(path)
    assert report.ok and not report.has_format_errors
    assert report.examples == 12
    assert report.sha256 == file_sha256(path)
    assert report.errors_markdown() == "No errors."


@pytest.mark.parametrize(("kind", "bad"), BAD_LINES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(BAD_LINES)])
def test_each_format_rule_names_the_kind_and_the_line(tmp_path: Path, kind: str, bad: Any) -> None:
    report = validate_chat_file(with_bad_line(tmp_path, bad, at=5))
    assert report.has_format_errors and not report.ok
    assert report.error_lines[kind] == [5], report.error_lines
    assert report.error_counts[kind] == 1
    assert all(lines == [5] for lines in report.error_lines.values())  # no good line is blamed
    assert f"| {kind} | 1 | 5 |" in report.errors_markdown()


@pytest.mark.parametrize(
    "messages",
    [
        [USER, ASSISTANT],  # system is optional
        [SYSTEM, USER, {**ASSISTANT, "weight": 0}, USER, {**ASSISTANT, "weight": 1}],  # multi-turn, weights
        [SYSTEM, {**USER, "name": "reader"}, ASSISTANT],
        [USER, {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}},
         {"role": "function", "name": "f", "content": "42"}, ASSISTANT],
    ],
)
def test_allowed_variants_pass(tmp_path: Path, messages: list[dict[str, Any]]) -> None:
    report = validate_chat_file(with_bad_line(tmp_path, {"messages": messages}))
    assert report.ok, report.error_lines


def test_errors_are_reported_for_every_offending_line(tmp_path: Path) -> None:
    lines: list[Any] = [good_example(n) for n in range(20)]
    for at in (3, 9, 17):
        lines[at - 1] = "not json"
    report = validate_chat_file(write_jsonl(tmp_path / "d.jsonl", lines))
    assert report.error_lines["invalid_json"] == [3, 9, 17]
    assert report.first_lines(["invalid_json"], limit=2) == [3, 9]


def test_at_least_ten_training_examples(tmp_path: Path) -> None:
    nine = validate_chat_file(write_jsonl(tmp_path / "9.jsonl", [good_example(n) for n in range(9)]))
    assert nine.format_error_counts == {"too_few_examples": 1}
    ten = validate_chat_file(write_jsonl(tmp_path / "10.jsonl", [good_example(n) for n in range(10)]))
    assert ten.ok
    assert validate_chat_file(tmp_path / "9.jsonl", min_examples=1).ok


def test_a_missing_file_raises_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        validate_chat_file(tmp_path / "nope.jsonl")


# --- tokens ---------------------------------------------------------------------------------


def test_examples_over_the_token_limit_are_named(tmp_path: Path) -> None:
    long_example = training_example("Long", "A", "word " * 200, "horror", CATEGORIES)
    path = with_bad_line(tmp_path, long_example, at=7)
    report = validate_chat_file(path, token_limit=150)
    assert not report.has_format_errors  # a token problem, not a format problem
    assert report.token_error_counts == {"too_many_tokens": 1}
    ((line, tokens),) = report.over_limit
    assert line == 7 and tokens > 150
    assert report.billing_tokens == sum(min(150, n) for n in report.token_counts)  # truncated when billed
    assert "line 7" in report.text() and "would be truncated to 150" in report.text()
    assert validate_chat_file(path, token_limit=tokens).ok


def test_exact_counts_follow_the_cookbook_formula(exact_tokens: None) -> None:
    counter = token_counter()
    assert counter.exact and counter.method == "exact: tiktoken o200k_base"
    encoding = tiktoken.get_encoding("o200k_base")
    messages = [SYSTEM, {**USER, "name": "reader"}, {**ASSISTANT, "weight": 1}]
    expected = 3 + sum(
        3 + sum(len(encoding.encode(v)) for k, v in m.items() if k != "weight") + (1 if "name" in m else 0)
        for m in messages
    )
    assert count_example_tokens(messages, counter) == expected
    assert counter.count("<|endoftext|>") > 1  # special tokens are plain text in a description


def test_without_the_cached_encoding_tokens_are_estimated_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[Any]
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty"))
    counter = token_counter()
    assert not counter.exact and counter.method.startswith("estimate:")
    assert counter.count("abcdef") == 2  # 6 bytes / 3
    report = validate_chat_file(write_jsonl(tmp_path / "d.jsonl", [good_example(n) for n in range(10)]))
    assert report.ok and not report.tokens_exact and "ESTIMATED" in report.text()
    assert no_network == []


def test_a_corrupt_cached_encoding_is_not_replaced_from_the_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[Any]
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    corrupt = tiktoken_cache_file()
    assert corrupt is not None and corrupt.parent == cache
    corrupt.write_bytes(b"not an encoding")
    assert not token_counter().exact
    assert corrupt.read_bytes() == b"not an encoding"  # tiktoken would have deleted and re-downloaded it
    assert no_network == []


def test_the_shared_cache_file_is_o200k_base(exact_tokens: None) -> None:
    path = tiktoken_cache_file()
    assert path is not None and path.name == "fb374d419588a4632f3f557e76b4b70aebbca790"
    assert file_sha256(path) == O200K_BASE_SHA256


# --- epochs, prices, models -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("examples", "epochs"),
    [(1, 25), (3, 25), (10, 10), (20, 5), (33, 3), (34, 3), (1000, 3), (8333, 3), (8334, 2), (30000, 1)],
)
def test_auto_epochs_follow_the_cookbook(examples: int, epochs: int) -> None:
    assert auto_epochs(examples) == epochs


def test_models_resolve_to_dated_snapshots() -> None:
    assert resolve_model("gpt-4o-mini") == "gpt-4o-mini-2024-07-18"
    assert resolve_model("ft:gpt-4o-mini-2024-07-18:org:goodreads:abc123") == "gpt-4o-mini-2024-07-18"
    assert example_token_limit("gpt-4o-mini-2024-07-18") == (65_536, True)
    assert example_token_limit("gpt-3.5-turbo") == (16_385, True)
    assert example_token_limit("brand-new-model") == (UNKNOWN_MODEL_TOKEN_LIMIT, False)
    assert training_price_per_million("gpt-4.1-nano-2025-04-14") == 1.50
    assert training_price_per_million("brand-new-model") is None


def test_cost_is_tokens_times_epochs_times_the_dated_price(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [good_example(n) for n in range(40)])
    auto = validate_chat_file(path, "gpt-4o-2024-08-06")
    assert auto.n_epochs == 3 and auto.epochs_rule == "auto"
    assert auto.estimated_cost_usd == round(auto.billing_tokens * 3 * 25.0 / 1e6, 4)
    explicit = validate_chat_file(path, "gpt-4o-2024-08-06", n_epochs=7)
    assert explicit.n_epochs == 7 and explicit.epochs_rule == "explicit"
    assert explicit.estimated_cost_usd == round(explicit.billing_tokens * 7 * 25.0 / 1e6, 4)
    assert f"prices as of {PRICING_AS_OF}" in explicit.text()
    unknown = validate_chat_file(path, "brand-new-model")
    assert unknown.estimated_cost_usd is None and "unknown" in unknown.text()


# --- overlap --------------------------------------------------------------------------------


def test_overlap_finds_identical_examples_and_shared_prompts(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "t.jsonl", [good_example(n) for n in range(10)])
    clean = write_jsonl(tmp_path / "v.jsonl", [good_example(n) for n in range(10, 15)])
    assert find_overlap(train, clean).ok

    same_prompt_other_answer = good_example(4)
    same_prompt_other_answer["messages"][2]["content"] = '{"category":"humor"}'
    leaky = write_jsonl(tmp_path / "leaky.jsonl", [good_example(11), good_example(2), same_prompt_other_answer])
    report = find_overlap(train, leaky)
    assert not report.ok
    assert report.identical_examples == [(3, 2)]
    assert report.shared_user_messages == [(3, 2), (5, 3)]


# --- Dagster: the checks block what comes after ------------------------------------------------

ran_downstream: list[str] = []


@dg.asset(deps=["training_file", "validation_file"])
def pretend_upload() -> None:
    """Stands in for the upload assets: must not run when a blocking check fails."""
    ran_downstream.append("ran")


def write_library(books: int, categories: Sequence[str] = CATEGORIES, description: str = "A tale.") -> None:
    """The upstream tables in a real DuckDB file: `books` labelled books spread over `categories`."""
    with duckdb.connect(str(duckdb_path())) as conn:
        conn.execute("CREATE OR REPLACE TABLE categories (position INTEGER, category VARCHAR)")
        conn.executemany("INSERT INTO categories VALUES (?, ?)", list(enumerate(categories)))
        conn.execute(
            "CREATE OR REPLACE TABLE enriched_graphic_novels AS "
            "SELECT 'b' || i AS book_id, 'Book ' || i AS title, 'Author' AS author, "
            "$description || ' #' || i AS description, $categories[1 + i % len($categories)] AS category "
            "FROM range($books) t(i)",
            {"books": books, "categories": list(categories), "description": description},
        )


def run_pipeline(
    tuning: TuningSettings | None = None, selection: Any = None, instance: dg.DagsterInstance | None = None
) -> dg.ExecuteInProcessResult:
    """Files, every file check and a downstream asset, in one real run."""
    ran_downstream.clear()
    return dg.materialize(
        [training_files, *FILE_CHECKS, pretend_upload],
        resources={
            "duckdb": DuckDBResource(database=str(duckdb_path())),
            "tuning": tuning or TuningSettings(),
        },
        selection=selection,
        instance=instance,
        raise_on_error=False,
    )


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    """Check name -> evaluation."""
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_all_checks_pass_and_downstream_runs_on_good_files() -> None:
    write_library(120)
    result = run_pipeline()
    checks = check_results(result)
    assert result.success
    assert {key.name for c in FILE_CHECKS for key in c.check_keys} == set(checks)
    assert all(c.passed for c in checks.values()), {n: c.description for n, c in checks.items()}
    assert ran_downstream == ["ran"]
    cost = checks["training_file_cost_check"].metadata
    assert cost["pricing_as_of"].value == PRICING_AS_OF
    assert 0 < cost["estimated_cost_usd"].value < 5.0


def test_a_failed_format_check_blocks_downstream() -> None:
    write_library(12, categories=["fantasy"])  # 12 books: 8 train examples, under OpenAI's minimum of 10
    result = run_pipeline()
    checks = check_results(result)
    fmt = checks["training_file_format_check"]
    assert not fmt.passed and fmt.blocking
    assert "too_few_examples" in fmt.metadata["errors_by_kind"].value
    assert ran_downstream == [] and not result.success


def test_an_over_budget_cost_check_blocks_downstream() -> None:
    write_library(120)
    result = run_pipeline(TuningSettings(max_cost_usd=0.0001))
    cost = check_results(result)["training_file_cost_check"]
    assert not cost.passed and "> budget $0.00" in (cost.description or "")
    assert ran_downstream == []


def test_an_unpriced_model_fails_the_cost_check() -> None:
    write_library(120)
    result = run_pipeline(TuningSettings(base_model="brand-new-model"))
    cost = check_results(result)["training_file_cost_check"]
    assert not cost.passed and "cannot be verified" in (cost.description or "")
    assert ran_downstream == []


def test_examples_over_the_model_limit_block_downstream() -> None:
    # gpt-3.5-turbo-0125 takes 16,385 tokens per example; these descriptions are ~20,000.
    write_library(36, description="word " * 20_000)
    result = run_pipeline(TuningSettings(base_model="gpt-3.5-turbo-0125"))
    token = check_results(result)["training_file_token_check"]
    assert not token.passed
    assert token.metadata["examples_over_limit"].value == token.metadata["examples"].value
    assert "would be truncated" in (token.description or "")
    assert ran_downstream == []


def test_a_file_changed_after_materialization_fails_the_format_check() -> None:
    write_library(120)
    instance = dg.DagsterInstance.ephemeral()  # shared, so the second run sees the first's metadata
    assert run_pipeline(instance=instance).success
    path = files_dir() / "training.jsonl"
    path.write_text(path.read_text("utf-8") + "oops\n", "utf-8")
    result = run_pipeline(
        selection=dg.AssetSelection.checks_for_assets("training_file", "validation_file"), instance=instance
    )
    fmt = check_results(result)["training_file_format_check"]
    assert not fmt.passed
    assert "changed since it was materialized" in (fmt.description or "")
    assert "invalid_json" in fmt.metadata["errors_by_kind"].value


def test_overlap_between_files_fails_the_overlap_check() -> None:
    write_library(120)
    assert run_pipeline().success
    training, validation = files_dir() / "training.jsonl", files_dir() / "validation.jsonl"
    shutil.copy(training, validation)  # the public example's flaw: validation rows drawn from training
    result = run_pipeline(selection=dg.AssetSelection.checks_for_assets("validation_file"))
    overlap = check_results(result)["validation_file_overlap_check"]
    assert not overlap.passed
    assert overlap.metadata["identical_examples"].value == overlap.metadata["shared_user_messages"].value > 0
