"""A file the writer measured is not tokenized again: its recorded counts are taken for the same bytes only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fine_tuning.core.chat_files import COUNTED, RECORDED, validate_chat_file, validate_written_file
from fine_tuning.core.example_files import WrittenFile, publish_measured, write_examples
from fine_tuning.core.prompts import Prompt, user_message
from fine_tuning.core.recorded_tokens import read_recorded_tokens, tokens_path
from fine_tuning.core.tokens import ESTIMATED_COUNTER, TokenCounter, token_counter

CATEGORIES = ("fantasy", "horror", "manga")


PROMPT = Prompt(CATEGORIES)


def books(n: int) -> Iterator[tuple[str, str]]:
    """Books (user message, category) whose descriptions differ in length (a few long enough to pass a
    small token limit)."""
    for i in range(n):
        description = "A dragon and a wizard. " * (1 + i % 9 * 6)
        yield user_message(f"Book {i}", f"Author {i % 7}", description)["content"], CATEGORIES[i % 3]


def write_files(folder: Path, counter: TokenCounter, n: int = 40) -> Path:
    """training.jsonl and its token record, written and published as the training-files step does."""
    target = folder / "training.jsonl"
    written = {"train": WrittenFile("train", target)}
    publish_measured({"train": target}, lambda name, handle: write_examples(books(n), handle, written[name],
                                                                             PROMPT, counter),
                     written, counter.method)
    return target


class CountingCounter:
    """The real counter, counting how many texts it was asked to encode."""

    def __init__(self, counter: TokenCounter) -> None:
        self.texts = 0
        inner = counter._count

        def count(text: str) -> int:
            self.texts += 1
            return inner(text)

        self.counter = TokenCounter(exact=counter.exact, method=counter.method, _count=count)


def same_report(recorded: object, counted: object) -> None:
    fields = ("sha256", "examples", "token_counts", "billing_tokens", "over_limit", "approximate_token_lines",
              "tokens_exact", "error_counts", "error_lines", "warning_counts", "example_digests", "user_digests")
    assert {f: getattr(recorded, f) for f in fields} == {f: getattr(counted, f) for f in fields}


@pytest.mark.parametrize("counter", [token_counter(), ESTIMATED_COUNTER], ids=["tiktoken-or-estimate", "estimate"])
def test_the_record_gives_the_report_counting_would_without_encoding_anything(tmp_path: Path, counter: TokenCounter) -> None:
    path = write_files(tmp_path, counter)
    record = read_recorded_tokens(path)
    assert record is not None and record.token_method == counter.method and len(record.counts) == 40
    spy = CountingCounter(counter)
    # A small limit puts some examples over it: over_limit, billing and errors come from the record too.
    report = validate_written_file(path, token_limit=150, counter=spy.counter)
    assert spy.texts == 0 and report.token_counts_source == RECORDED
    counted = validate_chat_file(path, token_limit=150, counter=counter)
    assert counted.token_counts_source == COUNTED and counted.over_limit
    same_report(report, counted)


def test_a_file_changed_after_writing_is_counted_again(tmp_path: Path) -> None:
    counter = token_counter()
    path = write_files(tmp_path, counter)
    lines = path.read_text("utf-8").splitlines(keepends=True)
    example = json.loads(lines[3])
    example["messages"][1] = user_message("Changed", "Someone", "much longer now " * 40)
    lines[3] = json.dumps(example, ensure_ascii=False) + "\n"  # same number of lines, other bytes
    path.write_text("".join(lines), "utf-8")
    spy = CountingCounter(counter)
    report = validate_written_file(path, counter=spy.counter)
    assert spy.texts > 0 and report.token_counts_source == COUNTED
    same_report(report, validate_chat_file(path, counter=counter))
    assert report.token_counts[3] != read_recorded_tokens(path).counts[3]  # type: ignore[union-attr]


def test_counts_recorded_by_another_method_are_not_taken(tmp_path: Path) -> None:
    path = write_files(tmp_path, ESTIMATED_COUNTER)
    counter = token_counter()
    if not counter.exact:
        pytest.skip("needs o200k_base to differ from the estimate")
    report = validate_written_file(path, counter=counter)
    assert report.token_counts_source == COUNTED
    same_report(report, validate_chat_file(path, counter=counter))


@pytest.mark.parametrize("damage", ["missing", "truncated", "one count short", "not a count"])
def test_a_missing_or_damaged_record_means_counting(tmp_path: Path, damage: str) -> None:
    counter = token_counter()
    path = write_files(tmp_path, counter)
    record_file = tokens_path(path)
    value = json.loads(record_file.read_bytes())
    if damage == "missing":
        record_file.unlink()
    elif damage == "truncated":
        record_file.write_bytes(record_file.read_bytes()[:-20])
    elif damage == "one count short":
        value["counts"].pop()
        value["examples"] -= 1
        record_file.write_text(json.dumps(value))
    else:
        value["counts"][0] = "12"
        record_file.write_text(json.dumps(value))
    report = validate_written_file(path, counter=counter)
    assert report.token_counts_source == COUNTED and report.ok
    same_report(report, validate_chat_file(path, counter=counter))


def test_a_failed_write_publishes_neither_the_file_nor_its_record(tmp_path: Path) -> None:
    counter = token_counter()
    path = write_files(tmp_path, counter)
    before = (path.read_bytes(), tokens_path(path).read_bytes())

    def failing_books() -> Iterator[tuple[str, str]]:
        yield from books(5)
        raise OSError("No space left on device")

    written = {"train": WrittenFile("train", path)}
    with pytest.raises(OSError):
        publish_measured({"train": path}, lambda name, handle: write_examples(failing_books(), handle, written[name],
                                                                              PROMPT, counter),
                         written, counter.method)
    assert (path.read_bytes(), tokens_path(path).read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["training.jsonl", "training.jsonl.tokens.json"]
