"""book_category and enriched_graphic_novels on handcrafted rows: one fixture per rule."""

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from tests.support.dagster_runs import failure_description, materialization_metadata
from tests.support.goodreads import GOOD_DESCRIPTION, author, book, materialize_prep, point_at, query, write_lines

AUTHORS = [
    author("1", "Alan Moore"),
    author("2", "Neil Gaiman"),
    author("3", "  Marjane   &amp; Co "),
    author("5", "   "),
]

BOOKS = [
    # shelf ties: equal counts go to the category configured first (fantasy before horror)
    book("tie", shelves=[("horror", "10"), ("fantasy", "10"), ("to-read", "99")]),
    # counts are strings, padded or not numeric
    book("str", shelves=[("romance", " 12 "), ("drama", "9")]),
    book("badcount", shelves=[("mystery", "lots"), ("drama", "5")]),
    # threshold: a shelf counts only when count > 3
    book("t3", shelves=[("horror", "3")]),
    book("t4", shelves=[("horror", "4")]),
    # shelf names are matched case-insensitively and trimmed
    book("upper", shelves=[(" HORROR ", "30"), ("Fantasy", "40")]),
    book("upper2", shelves=[("Comedy", "7"), ("to-read", "70")]),
    # no category shelves / no shelves at all
    book("generic", shelves=[("to-read", "500"), ("comics", "100")]),
    book("noshelves", shelves=[]),
    book("nullshelves", shelves=None),
    # authors: none, unknown id, blank name, roles
    book("noauthors", authors_=[]),
    book("nullauthors", authors_=None),
    book("unknown", authors_=[("999", "")]),
    book("blankname", authors_=[("5", "")]),
    book("role", authors_=[("2", "Illustrator"), ("1", "")]),
    book("noplainrole", authors_=[("2", "Illustrator"), ("1", "Translator")]),
    book("entityname", authors_=[("3", "")]),
    # duplicates: usable description first, then most ratings, then earliest in the file
    book("dup", description="", ratings_count="100", shelves=[("drama", "90")]),
    book("dup", description="Second copy, usable description.", ratings_count="1",
         shelves=[("horror", "20")]),
    book("dup", description="Third copy, the most ratings.", ratings_count="50",
         shelves=[("romance", "20")]),
    book("duptie", description="First copy of an exact tie.", shelves=[("action", "8")]),
    book("duptie", description="Second copy of an exact tie.", shelves=[("drama", "8")]),
    # descriptions without usable text
    book("blank", description=""),
    book("spaces", description="  \n\t  "),
    book("htmlonly", description="<br /><br />"),
    book("short", description="Too short"),
    book("nulldesc", description=None),
    # HTML and entities
    book("html", description=(
        "Line one<br />line two<BR/><b>bold</b> &amp; &quot;q&quot; it&#39;s &#x263A; "
        "&amp;lt;i&amp;gt; &lt;3 &#0; &#xD800;<p>end</p>"
    )),
    # unicode survives; exotic whitespace collapses
    book("unicode", title="Café <i>Noir</i> &amp; Co",
         description="Ｔｏｋｙｏ 東京の物語\u00a0\u00a0と café  naïve\n\nend\u3000fin"),
    book("notitle", title=""),
    book("long", description="word " * 2000),
    # rows the load skips: no book_id, a truncated line, a JSON array
    book(""),
    '{"book_id": "77", "title": "Trunc',
    "[1, 2, 3]",
]

KEPT = {"tie", "str", "badcount", "t4", "upper", "upper2", "noauthors", "nullauthors",
        "unknown", "blankname", "role", "noplainrole", "entityname", "dup", "duptie", "html",
        "unicode", "long"}
NO_CATEGORY = {"t3", "generic", "noshelves", "nullshelves"}
NO_DESCRIPTION = {"blank", "spaces", "htmlonly", "short", "nulldesc"}


@dataclass(frozen=True)
class PrepRun:
    """One materialization of the prep assets and the DuckDB file it wrote."""

    result: dg.ExecuteInProcessResult
    database: Path

    def query(self, sql: str) -> list[tuple]:
        return query(sql, database=self.database)


@pytest.fixture(scope="module")
def prep(tmp_path_factory) -> PrepRun:
    """One real run of all prep assets over the handcrafted files (shared by the module)."""
    root = tmp_path_factory.mktemp("features")
    books_file = write_lines(root / "books.json.gz", BOOKS)
    authors_file = write_lines(root / "authors.json", AUTHORS)
    with pytest.MonkeyPatch.context() as monkeypatch:
        point_at(monkeypatch, root / "work", books_file, authors_file)
        result = materialize_prep()
    return PrepRun(result=result, database=root / "work" / "goodreads.duckdb")


def categories_by_book(run: PrepRun | None = None) -> dict[str, tuple[str, int]]:
    rows = run.query("SELECT * FROM book_category") if run else query("SELECT * FROM book_category")
    return {book_id: (category, count) for book_id, category, count in rows}


def enriched(run: PrepRun) -> dict[str, dict[str, str]]:
    rows = run.query("SELECT book_id, title, author, description, category "
                     "FROM enriched_graphic_novels")
    return {row[0]: dict(zip(("book_id", "title", "author", "description", "category"), row))
            for row in rows}


def test_categories_table_keeps_configured_order(prep):
    rows = prep.query("SELECT position, category FROM categories ORDER BY position")
    assert [category for _, category in rows][:3] == ["fantasy", "horror", "humor"]
    assert [position for position, _ in rows] == list(range(1, 13))


def test_shelf_rules(prep):
    labels = categories_by_book(prep)
    assert labels["tie"] == ("fantasy", 10)
    assert labels["str"] == ("romance", 12)
    assert labels["badcount"] == ("drama", 5)
    assert "t3" not in labels
    assert labels["t4"] == ("horror", 4)
    assert labels["upper"] == ("fantasy", 40)
    assert labels["upper2"] == ("comedy", 7)
    for book_id in NO_CATEGORY:
        assert book_id not in labels


def test_book_category_is_one_row_per_book_from_the_kept_duplicate(prep):
    labels = categories_by_book(prep)
    assert prep.query("SELECT count(*) - count(DISTINCT book_id) FROM book_category") == [(0,)]
    assert labels["dup"] == ("romance", 20)
    assert labels["duptie"] == ("action", 8)


def test_enriched_keeps_exactly_the_usable_books(prep):
    rows = enriched(prep)
    assert set(rows) == KEPT
    duplicates = "SELECT count(*) - count(DISTINCT book_id) FROM enriched_graphic_novels"
    assert prep.query(duplicates) == [(0,)]


def test_duplicates_resolved_deterministically(prep):
    rows = enriched(prep)
    assert rows["dup"]["description"] == "Third copy, the most ratings."
    assert rows["dup"]["category"] == "romance"
    assert rows["duptie"]["description"] == "First copy of an exact tie."


def test_authors(prep):
    rows = enriched(prep)
    assert rows["tie"]["author"] == "Alan Moore"
    assert rows["role"]["author"] == "Alan Moore"  # the author with an empty role
    assert rows["noplainrole"]["author"] == "Neil Gaiman"  # else the first listed
    assert rows["entityname"]["author"] == "Marjane & Co"
    for book_id in ("noauthors", "nullauthors", "unknown", "blankname"):
        assert rows[book_id]["author"] == "Unknown author"


def test_html_is_cleaned(prep):
    assert enriched(prep)["html"]["description"] == (
        'Line one line two bold & "q" it\'s \u263a &lt;i&gt; <3 &#0; &#xD800; end'
    )


def test_unicode_and_whitespace(prep):
    row = enriched(prep)["unicode"]
    assert row["description"] == "Ｔｏｋｙｏ 東京の物語 と café naïve end fin"
    assert row["title"] == "Café Noir & Co"


def test_long_descriptions_are_cut(prep):
    description = enriched(prep)["long"]["description"]
    assert len(description) <= 4000 and description.startswith("word word")
    assert enriched(prep)["tie"]["description"] == GOOD_DESCRIPTION


def test_metadata_counts_drops_by_reason(prep):
    loaded = materialization_metadata(prep.result, "graphic_novels")
    assert loaded["rows_skipped"] == 3
    assert loaded["duplicate_book_id_rows"] == 3
    labeled = materialization_metadata(prep.result, "book_category")
    assert labeled["dagster/row_count"] == len(categories_by_book(prep))
    meta = materialization_metadata(prep.result, "enriched_graphic_novels")
    assert meta["dagster/row_count"] == len(KEPT)
    details = meta["details"]
    assert details["dropped_no_description"] == len(NO_DESCRIPTION)
    assert details["dropped_no_category"] == len(NO_CATEGORY)
    assert details["dropped_no_title"] == 1
    assert details["unknown_author_rows"] == 4
    assert details["truncated_descriptions"] == 1
    assert meta["rows_dropped"] == sum(value for key, value in details.items() if key.startswith("dropped_"))
    fantasy = sum(row["category"] == "fantasy" for row in enriched(prep).values())
    assert fantasy == 12
    assert f"| fantasy | {fantasy} |" in meta["category_distribution"]
    assert "| superheroes | 0 |" in meta["category_distribution"]
    columns = [c.name for c in meta["dagster/column_schema"].columns]
    assert columns == ["book_id", "title", "author", "description", "category"]


def test_threshold_and_order_are_configuration(tmp_path, monkeypatch):
    books_file = write_lines(tmp_path / "books.json", [
        book("tie", shelves=[("fantasy", "10"), ("horror", "10")]),
        book("t3", shelves=[("mystery", "3")]),
        book("t2", shelves=[("mystery", "2")]),
    ])
    authors_file = write_lines(tmp_path / "authors.json", AUTHORS)
    point_at(monkeypatch, tmp_path / "work", books_file, authors_file)
    config = {"categories": ["Horror", "fantasy", "mystery"], "min_shelf_count_exclusive": 2}
    materialize_prep(run_config={"ops": {"book_category": {"config": config}}})
    labels = categories_by_book()
    assert labels == {"tie": ("horror", 10), "t3": ("mystery", 3)}
    assert query("SELECT category FROM categories ORDER BY position") == [
        ("horror",), ("fantasy",), ("mystery",)
    ]


def test_duplicate_categories_are_rejected(tmp_path, monkeypatch):
    books_file = write_lines(tmp_path / "books.json", [book("1")])
    authors_file = write_lines(tmp_path / "authors.json", AUTHORS)
    point_at(monkeypatch, tmp_path / "work", books_file, authors_file)
    result = materialize_prep(
        run_config={"ops": {"book_category": {"config": {"categories": ["ya", "YA"]}}}},
        raise_on_error=False,
    )
    assert not result.success
    assert "duplicate categories" in failure_description(result)


def test_no_usable_book_fails_and_keeps_previous_table(tmp_path, monkeypatch):
    authors_file = write_lines(tmp_path / "authors.json", AUTHORS)
    books_file = tmp_path / "books.json"
    point_at(monkeypatch, tmp_path / "work", books_file, authors_file)
    write_lines(books_file, [book("good")])
    materialize_prep()
    write_lines(books_file, [book("x", description=""), book("y", shelves=[])])
    result = materialize_prep(raise_on_error=False)
    assert not result.success
    assert "no usable books" in failure_description(result)
    assert query("SELECT book_id FROM enriched_graphic_novels") == [("good",)]
    assert isinstance(result, dg.ExecuteInProcessResult)
