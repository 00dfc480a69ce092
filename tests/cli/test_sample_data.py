"""The synthetic Goodreads generator: schema, determinism, faults, learnability, shipped sample."""

import gzip
import json
import math
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from fine_tuning.core.settings import DEFAULT_CATEGORIES, SAMPLE_AUTHORS_FILE, SAMPLE_BOOKS_FILE
from fine_tuning.sample_data import (
    AUTHOR_FIELDS,
    AUTHORS_FILE_NAME,
    BOOK_FIELDS,
    BOOKS_FILE_NAME,
    write_sample,
)

from tests.support.dagster_runs import materialization_metadata
from tests.support.goodreads import materialize_prep, query

NUMERIC_BOOK_FIELDS = ("text_reviews_count", "average_rating", "ratings_count", "book_id",
                       "work_id", "publication_year")


def read_lines(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return handle.read().splitlines()


def parse(lines: list[str]) -> tuple[list[dict], int]:
    """(records, malformed line count)."""
    records, malformed = [], 0
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            malformed += 1
    return records, malformed


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> dict[str, list]:
    out = tmp_path_factory.mktemp("sample")
    paths = write_sample(out, n_books=3000, n_authors=1500, seed=7)
    books, bad_books = parse(read_lines(paths["books"]))
    authors, bad_authors = parse(read_lines(paths["authors"]))
    return {"books": books, "authors": authors, "bad": [bad_books, bad_authors]}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    first = write_sample(tmp_path / "a", n_books=200, n_authors=100, seed=1)
    again = write_sample(tmp_path / "b", n_books=200, n_authors=100, seed=1)
    other = write_sample(tmp_path / "c", n_books=200, n_authors=100, seed=2)
    for kind in ("books", "authors"):
        assert first[kind].read_bytes() == again[kind].read_bytes()
    assert first["books"].read_bytes() != other["books"].read_bytes()
    assert first["books"].name == BOOKS_FILE_NAME and first["authors"].name == AUTHORS_FILE_NAME


def test_ucsd_schema_with_numbers_as_strings(sample):
    assert len(BOOK_FIELDS) == 29
    for record in sample["books"]:
        assert tuple(record) == BOOK_FIELDS
        for field in NUMERIC_BOOK_FIELDS:
            assert isinstance(record[field], str)
        for shelf in record["popular_shelves"]:
            assert set(shelf) == {"count", "name"} and shelf["count"].isdigit()
        for entry in record["authors"]:
            assert set(entry) == {"author_id", "role"}
    for record in sample["authors"]:
        assert tuple(record) == AUTHOR_FIELDS
        assert all(isinstance(value, str) for value in record.values())


def test_faults_real_files_have(sample):
    books = sample["books"]
    descriptions = [b["description"] for b in books]
    author_ids = {a["author_id"] for a in sample["authors"]}
    shelf_names = {s["name"] for b in books for s in b["popular_shelves"]}
    assert any(d == "" for d in descriptions)
    assert any(d and not d.strip() for d in descriptions)
    assert any("<br />" in d for d in descriptions)
    assert all(any(e in d for d in descriptions) for e in ("&amp;", "&quot;", "&#39;"))
    assert any(a["author_id"] not in author_ids for b in books for a in b["authors"])
    assert any(not b["authors"] for b in books)
    assert any(not b["popular_shelves"] for b in books)
    assert len({b["book_id"] for b in books}) < len(books)  # duplicate ids
    assert {"fre", "spa", "ger", "jpn", "ita"} & {b["language_code"] for b in books}
    assert any(re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", d) for d in descriptions)
    assert max(len(d) for d in descriptions) > 10_000
    assert sample["bad"][0] >= 1 and sample["bad"][1] >= 1  # truncated lines
    assert {"to-read", "comics", "graphic-novels"} <= shelf_names
    assert any(name[0].isupper() and name.lower() in DEFAULT_CATEGORIES for name in shelf_names)
    counts = {int(s["count"]) for b in books for s in b["popular_shelves"]
              if s["name"].lower() in DEFAULT_CATEGORIES}
    assert {3, 4} <= counts


def label(record: dict) -> str | None:
    """The pipeline's rule, restated in Python: the top category shelf with count > 3."""
    best: tuple[int, int, str] | None = None
    for shelf in record["popular_shelves"]:
        name, count = shelf["name"].strip().lower(), int(shelf["count"])
        if name in DEFAULT_CATEGORIES and count > 3:
            key = (-count, DEFAULT_CATEGORIES.index(name), name)
            best = key if best is None or key < best else best
    return best[2] if best else None


def words(text: str) -> list[str]:
    return re.findall(r"[a-z][a-z-]+", text.lower())


def test_bag_of_words_beats_label_name_matching(sample):
    examples = [(words(b["description"]), label(b)) for b in sample["books"]]
    examples = [(w, y) for w, y in examples if w and y]
    train, test = examples[: len(examples) * 2 // 3], examples[len(examples) * 2 // 3:]
    # Multinomial naive Bayes with add-one smoothing.
    word_counts: dict[str, Counter] = defaultdict(Counter)
    priors = Counter(y for _, y in train)
    for tokens, y in train:
        word_counts[y].update(tokens)
    vocab = {w for counts in word_counts.values() for w in counts}
    totals = {y: sum(c.values()) + len(vocab) for y, c in word_counts.items()}

    def predict(tokens: list[str]) -> str:
        return max(priors, key=lambda y: math.log(priors[y]) + sum(
            math.log((word_counts[y][t] + 1) / totals[y]) for t in tokens if t in vocab))

    def name_match(tokens: list[str]) -> str:
        present = [c for c in DEFAULT_CATEGORIES if c in tokens]
        return present[0] if present else priors.most_common(1)[0][0]

    bow = sum(predict(t) == y for t, y in test) / len(test)
    baseline = sum(name_match(t) == y for t, y in test) / len(test)
    print(f"bag-of-words {bow:.3f} vs label-name match {baseline:.3f}")
    assert bow > 0.6
    assert bow > baseline + 0.3, (bow, baseline)


@pytest.mark.slow
def test_cli_writes_both_files(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "fine_tuning.sample_data", "--out", str(tmp_path),
         "--books", "120", "--authors", "40", "--seed", "3"],
        capture_output=True, text=True, check=True,
    )
    assert BOOKS_FILE_NAME in completed.stdout
    assert len(read_lines(tmp_path / BOOKS_FILE_NAME)) == 120
    assert len(read_lines(tmp_path / AUTHORS_FILE_NAME)) == 40


@pytest.mark.slow
def test_shipped_sample_is_what_the_readme_command_writes(tmp_path):
    readme = (SAMPLE_BOOKS_FILE.parent / "README.md").read_text()
    command = re.search(r"python -m fine_tuning\.sample_data --out \S+ (.*)", readme)
    assert command, "README must show the exact generator command"
    args = command.group(1).split()
    subprocess.run([sys.executable, "-m", "fine_tuning.sample_data", "--out", str(tmp_path),
                    *args], check=True, capture_output=True)
    assert (tmp_path / BOOKS_FILE_NAME).read_bytes() == SAMPLE_BOOKS_FILE.read_bytes()
    assert (tmp_path / AUTHORS_FILE_NAME).read_bytes() == SAMPLE_AUTHORS_FILE.read_bytes()
    assert SAMPLE_BOOKS_FILE.stat().st_size + SAMPLE_AUTHORS_FILE.stat().st_size < 3_000_000


def test_prep_assets_on_the_shipped_sample():
    """No GOODREADS_* set: the pipeline reads the shipped sample."""
    result = materialize_prep()
    meta = materialization_metadata(result, "enriched_graphic_novels")
    assert meta["dagster/row_count"] >= 1200
    assert materialization_metadata(result, "graphic_novels")["rows_skipped"] >= 1
    categories = dict(query("SELECT category, count(*) FROM enriched_graphic_novels GROUP BY 1"))
    assert set(categories) == set(DEFAULT_CATEGORIES)
    assert min(categories.values()) >= 50
