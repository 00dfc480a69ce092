"""training_file / validation_file: seeded, stratified, disjoint splits written atomically from DuckDB."""

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from fine_tuning.core.prompts import UserTemplate, user_message
from fine_tuning.core.settings import duckdb_path, files_dir

from tests.support.dagster_runs import failure_text, materialization_metadata, pipeline_resources
from tests.support.goodreads_task import FILE_CHECKS, training_files
from tests.support.tokenizer import without_o200k
from tests.support.warehouse import BookRow, write_labelled_books

CATEGORIES = ["fantasy", "horror", "humor", "romance"]
# Uneven category sizes, so stratification is visible.
SIZES = {"fantasy": 300, "horror": 150, "humor": 100, "romance": 50}


def write_library(books: Sequence[BookRow], categories: Sequence[str] = CATEGORIES) -> None:
    """The two upstream tables the multi-asset reads, in a real DuckDB file."""
    write_labelled_books(books, categories)


def sample_books(sizes: dict[str, int] = SIZES) -> list[BookRow]:
    """Distinct books per category; ids are not in category order so the hash must do the work."""
    books = []
    number = 0
    for category, size in sizes.items():
        for _ in range(size):
            number += 1
            book_id = str(1_000_003 * number % 9_999_991)
            books.append(
                (book_id, f"Book {number}", f"Author {number % 37}", f"A {category} tale, number {number}. Ünïcødé ✓", category)
            )
    return books


def materialize(config: dict[str, Any] | None = None, extra: Sequence[Any] = (), **kwargs: Any) -> dg.ExecuteInProcessResult:
    """Run the multi-asset (plus anything in `extra`) for real against the tmp DuckDB file."""
    run_config = {"ops": {"training_files": {"config": config}}} if config else None
    return dg.materialize([training_files, *extra], resources=pipeline_resources(), run_config=run_config, **kwargs)


def splits() -> dict[str, str]:
    """book_id -> split as written to DuckDB."""
    with duckdb.connect(str(duckdb_path())) as conn:
        rows = conn.execute("SELECT book_id, split FROM book_splits").fetchall()
    assert len(rows) == len({book_id for book_id, _ in rows}), "a book is in several splits"
    return dict(rows)


def user_contents(path: Path) -> list[str]:
    """The user message of each line of a JSONL file."""
    return [json.loads(line)["messages"][1]["content"] for line in path.read_text("utf-8").splitlines()]


def test_splits_are_disjoint_complete_and_stratified_by_category() -> None:
    books = sample_books()
    write_library(books)
    result = materialize()
    assert result.success

    assigned = splits()
    assert set(assigned) == {b[0] for b in books}  # every labelled book, once
    category_of = {b[0]: b[4] for b in books}
    per_category = Counter((category_of[book], split) for book, split in assigned.items())
    for category, size in SIZES.items():
        assert per_category[(category, "test")] == round(size * 0.2), category
        assert per_category[(category, "validation")] == round(size * 0.3) - round(size * 0.2), category
        assert per_category[(category, "train")] == size - round(size * 0.3), category

    # The files hold exactly their split's books, and no prompt crosses files or the test split.
    prompt_of = {b[0]: user_message(b[1], b[2], b[3])["content"] for b in books}
    for split, name in (("train", "training.jsonl"), ("validation", "validation.jsonl")):
        expected = sorted(prompt_of[b] for b, s in assigned.items() if s == split)
        assert sorted(user_contents(files_dir() / name)) == expected


def test_assignment_is_deterministic_and_depends_on_the_seed() -> None:
    write_library(sample_books())
    first = materialization_metadata(materialize(), "training_file")
    first_splits = splits()
    second = materialization_metadata(materialize(), "training_file")
    assert second["sha256"] == first["sha256"]
    assert splits() == first_splits

    reseeded = materialization_metadata(materialize({"seed": 7}), "training_file")
    assert reseeded["sha256"] != first["sha256"]
    assert splits() != first_splits


def test_metadata_describes_the_written_files(exact_tokens: None) -> None:
    write_library(sample_books())
    result = materialize()
    training = materialization_metadata(result, "training_file")
    validation = materialization_metadata(result, "validation_file")
    for meta, name in ((training, "training.jsonl"), (validation, "validation.jsonl")):
        path = Path(meta["path"])
        assert path.is_absolute() and path == files_dir() / name
        data = path.read_bytes()
        assert meta["sha256"] == hashlib.sha256(data).hexdigest()
        assert meta["examples"] == meta["dagster/row_count"] == len(data.splitlines())
        details = meta["details"]
        assert details["bytes"] == len(data)
        assert meta["tokens_exact"] is True and meta["token_method"] == "exact: tiktoken o200k_base"
        assert details["tokens_min"] <= details["tokens_mean"] <= details["tokens_p95"] <= details["tokens_max"]
        assert meta["total_tokens"] > meta["examples"] * details["tokens_min"] - 1
        assert "| fantasy | 210 | 30 | 60 |" in meta["label_distribution"]
        assert (details["train_examples"], details["validation_examples"], details["test_examples"]) == (420, 60, 120)
    assert training["examples"] == 420 and validation["examples"] == 60
    # The check metadata (re-counted by file_checks) agrees with the writer's own count.
    checked = dg.materialize([training_files, *FILE_CHECKS], resources=pipeline_resources())
    tokens = {
        e.check_name: e.metadata["details"].value["total_tokens"]
        for e in checked.get_asset_check_evaluations()
        if e.check_name.endswith("format_check")
    }
    assert tokens == {
        "training_file_format_check": training["total_tokens"],
        "validation_file_format_check": validation["total_tokens"],
    }


def test_books_sharing_a_prompt_never_land_in_two_splits() -> None:
    books = sample_books()
    # Ten editions of one book: same title, author and description, different ids.
    books += [(f"edition-{i}", "Same Book", "Same Author", "Same description", "horror") for i in range(10)]
    write_library(books)
    assert materialize().success
    assigned = splits()
    editions = [b for b in assigned if b.startswith("edition-")]
    assert editions == ["edition-0"]  # one representative, so one split
    assert materialize({"seed": 1}).success


def test_caps_bound_each_split_and_keep_the_strata() -> None:
    write_library(sample_books())
    result = materialize({"max_train_examples": 100, "max_validation_examples": 20, "max_test_examples": 40})
    training = materialization_metadata(result, "training_file")
    sizes = training["details"]
    assert (sizes["train_examples"], sizes["validation_examples"], sizes["test_examples"]) == (100, 20, 40)
    assigned = splits()
    category_of = {b[0]: b[4] for b in sample_books()}
    train_mix = Counter(category_of[b] for b, s in assigned.items() if s == "train")
    # 300:150:100:50 of 100 examples is 50:25:17:8 (give or take one from rounding).
    for category, expected in {"fantasy": 50, "horror": 25, "humor": 17, "romance": 8}.items():
        assert abs(train_mix[category] - expected) <= 1, train_mix


def test_unlabelled_books_are_left_out() -> None:
    books = sample_books()
    books += [("x1", "No label", "A", "D", None), ("x2", "Unknown label", "A", "D", "cooking")]  # type: ignore[list-item]
    write_library(books)
    training = materialization_metadata(materialize(), "training_file")
    assert not {"x1", "x2"} & set(splits())
    assert training["details"]["books_not_in_a_split"] == 0


def test_missing_upstream_table_fails_with_a_clear_message() -> None:
    with duckdb.connect(str(duckdb_path())) as conn:
        conn.execute("CREATE TABLE categories (position INTEGER, category VARCHAR)")
    result = materialize(raise_on_error=False)
    assert not result.success
    assert "enriched_graphic_novels missing" in failure_text(result)
    assert not (files_dir() / "training.jsonl").exists()


def test_an_empty_split_fails_with_a_clear_message() -> None:
    write_library(sample_books({"fantasy": 3}))  # 3 books: no room for a 10% validation share
    result = materialize(raise_on_error=False)
    assert not result.success
    assert "split(s) validation would be empty" in failure_text(result)


def test_fractions_leaving_nothing_to_train_are_refused() -> None:
    write_library(sample_books())
    result = materialize({"validation_fraction": 0.5, "test_fraction": 0.5}, raise_on_error=False)
    assert not result.success


def test_a_failed_write_leaves_the_previous_files_and_splits_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    write_library(sample_books())
    before = materialization_metadata(materialize(), "training_file")
    before_validation = (files_dir() / "validation.jsonl").read_bytes()
    before_validation_tokens = (files_dir() / "validation.jsonl.tokens.json").read_bytes()
    before_splits = splits()

    # Fault injection: the disk "fails" half-way through the validation file, after the training
    # file's temp copy is complete (this cannot be provoked from valid DuckDB data).
    real_render = UserTemplate.render
    calls = {"n": 0}

    def failing_render(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > 440:
            raise OSError("No space left on device")
        return real_render(*args)

    monkeypatch.setattr(UserTemplate, "render", failing_render)
    result = materialize({"seed": 99}, raise_on_error=False)
    assert not result.success and calls["n"] > 420
    assert sorted(p.name for p in files_dir().iterdir()) == [  # no temp file
        "training.jsonl", "training.jsonl.tokens.json", "validation.jsonl", "validation.jsonl.tokens.json"]
    assert hashlib.sha256((files_dir() / "training.jsonl").read_bytes()).hexdigest() == before["sha256"]
    assert (files_dir() / "validation.jsonl").read_bytes() == before_validation
    assert (files_dir() / "validation.jsonl.tokens.json").read_bytes() == before_validation_tokens
    assert splits() == before_splits  # the book_splits rewrite was rolled back


def test_a_failed_first_write_leaves_no_file(monkeypatch: pytest.MonkeyPatch) -> None:
    write_library(sample_books())

    def failing_example(*args: Any) -> Any:
        raise OSError("No space left on device")

    monkeypatch.setattr(UserTemplate, "render", failing_example)
    assert not materialize(raise_on_error=False).success
    assert list(files_dir().iterdir()) == []


def test_without_the_encoding_token_counts_are_labelled_estimates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    without_o200k(monkeypatch, tmp_path)
    write_library(sample_books())
    training = materialization_metadata(materialize(), "training_file")
    assert training["tokens_exact"] is False
    assert training["token_method"].startswith("estimate:")
    assert training["total_tokens"] > 0
