"""Training files are written fast without changing a byte or a token count."""

from __future__ import annotations

import io
import json

import pytest

from fine_tuning.core.example_files import WrittenFile, write_examples
from fine_tuning.core.prompts import Prompt, TrainingExampleLines, training_example, user_message
from fine_tuning.core.tokens import ESTIMATED_COUNTER, count_example_tokens, token_counter

CATEGORIES = ("fantasy", "horror", "manga")
BOOKS = [
    ("Plain", "Ann Author", "A dragon and a wizard.", "fantasy"),
    ('Quotes "and" \\ backslashes', "O'Brien", 'He said "boo"\nthen left.\ttab', "horror"),
    ("Ünïcödé ✓ 日本語", "José", "emoji 🐉 and a non-BMP character", "manga"),
    ("Control \x00 \x1f chars", "", "", "fantasy"),
    ("Looks like the slot", "x", "\x00user message\x00", "horror"),
]


@pytest.mark.parametrize("book", BOOKS)
def test_each_line_is_exactly_the_json_of_the_training_example(book: tuple[str, str, str, str]) -> None:
    lines = TrainingExampleLines(CATEGORIES)
    title, author, description, category = book
    expected = json.dumps(training_example(title, author, description, category, CATEGORIES), ensure_ascii=False)
    content = user_message(title, author, description)["content"]
    assert lines.line(content, category) == expected
    assert lines.messages(content, category) == training_example(title, author, description, category, CATEGORIES)["messages"]


@pytest.mark.parametrize("counter", [token_counter(), ESTIMATED_COUNTER], ids=["tiktoken-or-estimate", "estimate"])
def test_written_files_hold_the_examples_and_their_cookbook_token_counts(counter) -> None:
    handle, written = io.BytesIO(), WrittenFile("train", None)  # type: ignore[arg-type]
    rows = [(user_message(title, author, description)["content"], category) for title, author, description, category in BOOKS * 3]
    write_examples(rows, handle, written, Prompt(CATEGORIES), counter)
    examples = [training_example(*book, CATEGORIES) for book in BOOKS * 3]
    assert handle.getvalue().decode("utf-8").splitlines() == [json.dumps(e, ensure_ascii=False) for e in examples]
    assert written.token_counts == [count_example_tokens(e["messages"], counter) for e in examples]
    assert written.examples == len(examples) and written.bytes == len(handle.getvalue())
