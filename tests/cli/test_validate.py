"""`python -m fine_tuning.validate`: the report and the exit codes, run as a real subprocess."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fine_tuning.core.catalog import PRICING_AS_OF

from tests.support.chat_files import good_example, write_jsonl
from tests.support.project import REPO
from tests.support.tokenizer import corrupt_ranks_package

pytestmark = pytest.mark.slow  # every test starts the CLI in a fresh interpreter


def write_examples(path: Path, count: int, extra_lines: tuple[str, ...] = (), description: str = "A tale") -> Path:
    """`count` valid examples followed by `extra_lines` verbatim."""
    return write_jsonl(path, [*(good_example(n, description) for n in range(count)), *extra_lines])


def run_cli(*args: str, shadow_packages: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh interpreter without tiktoken's cache variable; packages under
    `shadow_packages` come before the installed ones."""
    env = {key: value for key, value in os.environ.items() if key != "TIKTOKEN_CACHE_DIR"}
    if shadow_packages is not None:
        env["PYTHONPATH"] = str(shadow_packages)
    return subprocess.run(
        [sys.executable, "-m", "fine_tuning.validate", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )


def test_a_good_file_exits_0_with_tokens_and_a_dated_cost(tmp_path: Path, exact_tokens: None) -> None:
    result = run_cli(str(write_examples(tmp_path / "good.jsonl", 12)))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Examples: 12" in out and "Errors by kind:\n  none" in out
    assert "Tokens (exact: tiktoken o200k_base)" in out
    assert "per example: min" in out and "p95" in out
    assert "x 8 epochs (auto)" in out  # cookbook rule: 100 // 12 examples
    assert f"prices as of {PRICING_AS_OF}" in out and "$3.00 per 1M" in out
    assert out.rstrip().endswith("Result: OK")


def test_format_errors_exit_1_and_name_kinds_and_lines(tmp_path: Path) -> None:
    bad = write_examples(
        tmp_path / "bad.jsonl", 12,
        extra_lines=("not json", '{"messages": [{"role": "user", "content": "hi"}]}', '{"messages": []}'),
    )
    result = run_cli(str(bad))
    assert result.returncode == 1
    assert "invalid_json: 1 at lines 13" in result.stdout
    assert "example_missing_assistant_message: 1 at lines 14" in result.stdout
    assert "missing_messages_list: 1 at lines 15" in result.stdout
    assert "Result: FAILED" in result.stdout


def test_too_few_examples_exit_1_unless_the_minimum_is_lowered(tmp_path: Path) -> None:
    small = write_examples(tmp_path / "small.jsonl", 5)
    assert run_cli(str(small)).returncode == 1
    assert run_cli(str(small), "--min-examples", "1").returncode == 0


def test_a_missing_file_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    result = run_cli(str(tmp_path / "absent.jsonl"))
    assert result.returncode == 2
    assert "not found" in result.stderr and "absent.jsonl" in result.stderr
    assert "Traceback" not in result.stderr


def test_explicit_epochs_and_other_models_change_the_estimate(tmp_path: Path) -> None:
    path = str(write_examples(tmp_path / "good.jsonl", 12))
    explicit = run_cli(path, "--n-epochs", "2", "--model", "gpt-4o-2024-08-06")
    assert explicit.returncode == 0
    assert "x 2 epochs (explicit)" in explicit.stdout and "$25.00 per 1M" in explicit.stdout
    unknown = run_cli(path, "--model", "brand-new-model")
    assert unknown.returncode == 0  # an unknown price is reported, it is not a format error
    assert "price for brand-new-model unknown" in unknown.stdout
    assert "conservative default" in unknown.stdout


def test_a_budget_can_fail_the_run(tmp_path: Path) -> None:
    path = str(write_examples(tmp_path / "good.jsonl", 12))
    result = run_cli(path, "--max-cost-usd", "0.000001")
    assert result.returncode == 1 and "exceeds $0.00" in result.stdout
    assert run_cli(path, "--max-cost-usd", "100").returncode == 0


def test_examples_over_the_model_limit_exit_1(tmp_path: Path) -> None:
    path = str(write_examples(tmp_path / "long.jsonl", 10, description="word " * 20_000))
    result = run_cli(path, "--model", "gpt-3.5-turbo-0125")
    assert result.returncode == 1
    assert "too_many_tokens: 10" in result.stdout and "would be truncated to 16385" in result.stdout
    assert run_cli(path).returncode == 0  # gpt-4o-mini takes 65,536 tokens per example


def test_with_tampered_ranks_the_report_says_estimated_and_why(tmp_path: Path) -> None:
    tampered = corrupt_ranks_package(tmp_path / "shadow")
    result = run_cli(str(write_examples(tmp_path / "good.jsonl", 12)), shadow_packages=tmp_path / "shadow")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Tokens (estimate:" in result.stdout and "ESTIMATED" in result.stdout
    assert "fail tiktoken's sha256 check" in result.stdout and tampered.name in result.stdout


def test_absurdly_nested_json_is_a_format_error_not_a_crash(tmp_path: Path) -> None:
    deep = write_examples(tmp_path / "deep.jsonl", 12, extra_lines=("[" * 100_000 + "]" * 100_000,))
    result = run_cli(str(deep))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "invalid_json: 1 at lines 13" in result.stdout
