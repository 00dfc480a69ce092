"""file_validation: every format rule, token limits in the report, epochs and cost, and overlap."""

from pathlib import Path
from typing import Any

import pytest

from fine_tuning.core.catalog import PRICING_AS_OF
from fine_tuning.core.chat_files import find_overlap, validate_chat_file
from fine_tuning.core.checksums import file_sha256
from fine_tuning.core.prompts import training_example

from tests.support.chat_files import ASSISTANT, CATEGORIES, SYSTEM, USER, good_example, with_bad_line, write_jsonl

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
    ("invalid_content_part", {"messages": [{"role": "user", "content": ["parts"]}, ASSISTANT]}),
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


# --- tokens and cost in the report ---------------------------------------------------------


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
