"""Synthetic Goodreads-shaped data: `python -m fine_tuning.sample_data --out DIR`.

Writes the two UCSD Book Graph files the pipeline reads, with the same names and schema
(every number is a string, `popular_shelves` and `authors` are lists of objects):

- `goodreads_books_comics_graphic.json.gz`: one book per line, the 29 UCSD fields.
- `goodreads_book_authors.json.gz`: one author per line, the 5 UCSD fields.

The data is deterministic per seed (one `random.Random(seed)`, gzip mtime fixed to 0, so the
bytes are identical on every run) and pure standard library.

Why it is learnable: each book has a primary genre (one of the 12 default categories); its
description mixes genre-specific vocabulary with shared noise words, and its `popular_shelves`
give the primary genre the largest category count. Sibling genres share part of their vocabulary
(humor/comedy, horror/supernatural, action/adventure/superheroes), about a quarter of the books
carry a second genre in both text and shelves, and descriptions rarely contain the genre's own
name, so a bag-of-words model clearly beats matching category names in the text.

Faults real files have, at fixed rates: empty and whitespace-only descriptions, HTML breaks and
entities, unknown author ids, books without authors or shelves, category shelves at or below the
count threshold, upper-case shelf names, duplicate book ids, non-English text, very long
descriptions and (at least one per file when the file has >= 100 lines) a truncated JSON line.
`--books N` is the number of lines in the books file (duplicates and the truncated line included).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from fine_tuning.core.settings import DEFAULT_CATEGORIES

BOOKS_FILE_NAME = "goodreads_books_comics_graphic.json.gz"
AUTHORS_FILE_NAME = "goodreads_book_authors.json.gz"
GOODREADS_BOOKS = 89_411
GOODREADS_AUTHORS = 829_529

# Field order of the UCSD Book Graph books file.
BOOK_FIELDS: tuple[str, ...] = (
    "isbn", "text_reviews_count", "series", "country_code", "language_code", "popular_shelves",
    "asin", "is_ebook", "average_rating", "kindle_asin", "similar_books", "description", "format",
    "link", "authors", "publisher", "num_pages", "publication_day", "isbn13", "publication_month",
    "edition_information", "publication_year", "url", "image_url", "book_id", "ratings_count",
    "work_id", "title", "title_without_series",
)
AUTHOR_FIELDS: tuple[str, ...] = (
    "average_rating", "author_id", "text_reviews_count", "name", "ratings_count",
)

# Vocabulary shared by sibling genres: makes the task less trivial than keyword spotting.
_FAMILY_WORDS = {
    "laugh": "hilarious witty gags slapstick jokes punchline silly absurd giggles quirky",
    "dark": "shadows haunted cursed spirits ghostly dread midnight graveyard eerie possessed",
    "fight": "battle mission explosive chase showdown enemy weapons squad rescue danger",
}
_GENRE_WORDS = {
    "fantasy": ("kingdom dragon wizard sorcery elves enchanted sword quest realm prophecy "
                "runes throne mage dwarves spellbook citadel", None),
    "horror": ("blood terror monster scream corpse nightmare butcher gore slasher mutilated "
               "asylum rotting fangs victims lurking", "dark"),
    "humor": ("satire parody cartoonist strips sarcastic nerdy office cats daily wisecracks "
              "webcomic mishaps awkward doodles", "laugh"),
    "adventure": ("expedition treasure jungle voyage explorers island map pirates journey "
                  "ancient ruins compass desert sailing", "fight"),
    "action": ("gunfight martial assassin heist mercenary kung combat vengeance explosion "
               "bullets commando car stunts", "fight"),
    "romance": ("love kiss heart passion wedding boyfriend crush relationship sweetheart "
                "longing desire couple dating", None),
    "ya": ("teen school highschool prom classmates coming-of-age teenager locker homework "
           "bullies graduation sixteen parents", None),
    "superheroes": ("cape powers villain justice vigilante mutant hero costume sidekick "
                    "metropolis league origin superpowered", "fight"),
    "comedy": ("sitcom standup comedian prank farce hijinks buddies zany misadventures "
               "improv sketch clowns shenanigans", "laugh"),
    "mystery": ("detective murder clue suspect investigation sleuth alibi whodunit "
                "inspector crime evidence riddle noir", None),
    "supernatural": ("witches demons vampires occult psychic afterlife werewolves ritual "
                     "angels seance hexes medium portal", "dark"),
    "drama": ("family grief divorce struggle memoir loss tragedy hardship illness "
              "emotional brothers betrayal redemption", None),
}
_NOISE_WORDS = (
    "the a of and to in story with his her their new world life series volume collected "
    "edition comic graphic novel art artist writer acclaimed readers first time one two "
    "must find city years old young man woman friends together when after before into "
    "about this that every discover follows tale brings back original issues chapter "
    "award winning bestselling beautiful stunning pages illustrated presents meet town "
    "secret journey past future home night day best finally never always everything"
).split()
_NON_ENGLISH = (
    ("fre", "Une histoire inoubliable sur l'amitié et le courage, pleine de rebondissements."),
    ("spa", "Una historia inolvidable sobre la amistad y el valor, llena de sorpresas."),
    ("ger", "Eine unvergessliche Geschichte über Freundschaft und Mut, voller Überraschungen."),
    ("jpn", "友情と勇気についての忘れられない物語。驚きに満ちた冒険が始まる。"),
    ("ita", "Una storia indimenticabile di amicizia e coraggio, piena di colpi di scena."),
)
_GENERIC_SHELVES = (
    "to-read", "currently-reading", "comics", "graphic-novels", "graphic-novel", "favorites",
    "owned", "library", "manga", "comic-books", "read-in-2017", "books-i-own", "kindle",
)
_FIRST_NAMES = (
    "Alan Neil Marjane Art Alison Brian Grant Kelly Gail Jeff Raina Noelle Chris Kate Naoki "
    "Hayao Osamu Tove Jason Scott Frank Mike Fiona Rumiko Hiromu Jill Becky Greg Kazu Ana"
).split()
_LAST_NAMES = (
    "Moore Gaiman Satrapi Spiegelman Bechdel Vaughan Morrison Thompson Simone Lemire Telgemeier "
    "Stevenson Ware Beaton Urasawa Miyazaki Tezuka Jansson Aaron Snyder Miller Mignola Staples "
    "Takahashi Arakawa Thompson Cloonan Rucka Kibuishi Ortega"
).split()
_TITLE_WORDS = (
    "Shadow Crown Night Fire Moon Iron Lost City Last Garden Storm Blood Star Silent Broken "
    "Hidden Golden Black White River Dream War Heart Ghost Winter Empire Machine Sea"
).split()
_PUBLISHERS = ("Image Comics", "DC Comics", "Marvel", "Dark Horse", "Viz Media",
               "First Second", "Fantagraphics", "Drawn & Quarterly", "IDW", "Boom! Studios")
_FORMATS = ("Paperback", "Hardcover", "Kindle Edition", "ebook", "")


def _genre_vocab() -> dict[str, list[str]]:
    """Per genre: its own words plus (if any) the words it shares with its sibling genres."""
    vocab: dict[str, list[str]] = {}
    for genre, (words, family) in _GENRE_WORDS.items():
        own = words.split()
        vocab[genre] = own + (_FAMILY_WORDS[family].split() if family else [])
    return vocab


_VOCAB = _genre_vocab()


def _sentence(rng: random.Random, primary: str, secondary: str | None) -> str:
    """A word-salad sentence: ~35% primary-genre words, ~12% secondary, the rest noise."""
    words: list[str] = []
    for _ in range(rng.randint(8, 16)):
        roll = rng.random()
        if roll < 0.35:
            words.append(rng.choice(_VOCAB[primary]))
        elif secondary is not None and roll < 0.47:
            words.append(rng.choice(_VOCAB[secondary]))
        elif roll < 0.49:
            # A random other genre word: the label is not perfectly separable.
            words.append(rng.choice(_VOCAB[rng.choice(DEFAULT_CATEGORIES)]))
        else:
            words.append(rng.choice(_NOISE_WORDS))
    return " ".join(words).capitalize() + "."


def _description(rng: random.Random, primary: str, secondary: str | None) -> tuple[str, str]:
    """(description, language_code) with the configured rates of faults."""
    roll = rng.random()
    if roll < 0.03:
        return "", "eng"
    if roll < 0.04:
        return rng.choice(("   ", "\n", " \t \n ", "<br />")), "eng"
    sentences = [_sentence(rng, primary, secondary) for _ in range(rng.randint(2, 6))]
    if rng.random() < 0.12:
        # Sometimes the genre is named outright, as blurbs do ("a fantasy epic").
        sentences.insert(rng.randrange(len(sentences) + 1), f"A {primary} classic.")
    language = "eng"
    if rng.random() < 0.03:
        language, foreign = rng.choice(_NON_ENGLISH)
        sentences = [foreign, *sentences[:2]]
    if rng.random() < 0.25:
        # HTML as Goodreads serves it: breaks and entities.
        text = "<br /><br />".join(sentences)
        text = text.replace(" and ", " &amp; ", 1).replace(" the ", " &quot;the&quot; ", 1)
        text = text.replace(" story", " story&#39;s", 1)
    else:
        text = " ".join(sentences)
    if rng.random() < 0.005:
        text = " ".join([text] * rng.randint(40, 80))  # very long description
    return text, language


def _shelves(rng: random.Random, primary: str, secondary: str | None) -> list[dict[str, str]]:
    """popular_shelves consistent with the genre; counts as strings like the real files."""
    roll = rng.random()
    if roll < 0.01:
        return []
    shelves: list[tuple[str, int]] = []
    top = rng.randint(25, 2500)
    if roll < 0.03:
        top = rng.choice((1, 2, 3))  # at or below the default threshold: no category
    elif roll < 0.04:
        top = 4  # just above the threshold
    if roll >= 0.06:  # 2% of books only have generic shelves
        shelves.append((primary, top))
    if secondary is not None:
        second = top if rng.random() < 0.04 else max(1, int(top * rng.uniform(0.2, 0.95)))
        shelves.append((secondary, second))
    if rng.random() < 0.3:
        shelves.append((rng.choice(DEFAULT_CATEGORIES), rng.randint(1, max(1, top // 10))))
    shelves.append(("to-read", top * rng.randint(3, 12) + rng.randint(0, 50)))
    for name in rng.sample(_GENERIC_SHELVES[1:], rng.randint(2, 7)):
        shelves.append((name, rng.randint(1, top * 2 + 5)))
    shelves.sort(key=lambda item: -item[1])
    out = []
    for name, count in shelves:
        if name in _VOCAB and rng.random() < 0.05:
            name = name.capitalize()  # "Fantasy": real shelves are not always lower case
        out.append({"count": str(count), "name": name})
    return out


def _authors_of_book(rng: random.Random, n_authors: int) -> list[dict[str, str]]:
    """One or two authors; 2% of books name an author id missing from the authors file."""
    roll = rng.random()
    if roll < 0.005:
        return []
    first = str(rng.randint(1, n_authors))
    if roll < 0.025:
        first = str(n_authors + rng.randint(1, 1_000_000))  # unknown author id
    if rng.random() < 0.2:
        other = {"author_id": str(rng.randint(1, n_authors)), "role": "Illustrator"}
        if rng.random() < 0.3:
            # Illustrator listed first: the author is the one with an empty role.
            return [other, {"author_id": first, "role": ""}]
        return [{"author_id": first, "role": ""}, other]
    return [{"author_id": first, "role": ""}]


def _title(rng: random.Random) -> tuple[str, str, list[str]]:
    """(title, title_without_series, series ids)."""
    base = f"{rng.choice(_TITLE_WORDS)} {rng.choice(_TITLE_WORDS)}"
    if rng.random() < 0.4:
        return f"{base} ({rng.choice(_TITLE_WORDS)} Saga, #{rng.randint(1, 9)})", base, [
            str(rng.randint(100_000, 999_999))
        ]
    return base, base, []


def _book(rng: random.Random, book_id: int, n_authors: int) -> dict[str, object]:
    """One UCSD-shaped book record."""
    primary = rng.choice(DEFAULT_CATEGORIES)
    secondary = None
    if rng.random() < 0.25:
        secondary = rng.choice([c for c in DEFAULT_CATEGORIES if c != primary])
    description, language = _description(rng, primary, secondary)
    title, title_without_series, series = _title(rng)
    isbn = f"{rng.randint(0, 999_999_999):09d}X" if rng.random() < 0.7 else ""
    ratings = rng.randint(0, 20_000)
    year = rng.randint(1975, 2017)
    record = {
        "isbn": isbn,
        "text_reviews_count": str(ratings // rng.randint(5, 20)),
        "series": series,
        "country_code": "US",
        "language_code": language if rng.random() < 0.6 else "",
        "popular_shelves": _shelves(rng, primary, secondary),
        "asin": "",
        "is_ebook": rng.choice(("true", "false")),
        "average_rating": f"{rng.uniform(2.5, 4.9):.2f}",
        "kindle_asin": f"B00{rng.randint(0, 9_999_999):07d}" if rng.random() < 0.3 else "",
        "similar_books": [str(rng.randint(1, 30_000_000)) for _ in range(rng.randint(0, 4))],
        "description": description,
        "format": rng.choice(_FORMATS),
        "link": f"https://www.goodreads.com/book/show/{book_id}",
        "authors": _authors_of_book(rng, n_authors),
        "publisher": rng.choice(_PUBLISHERS),
        "num_pages": str(rng.randint(24, 600)) if rng.random() < 0.9 else "",
        "publication_day": str(rng.randint(1, 28)),
        "isbn13": f"978{rng.randint(0, 9_999_999_999):010d}" if isbn else "",
        "publication_month": str(rng.randint(1, 12)),
        "edition_information": "",
        "publication_year": str(year),
        "url": f"https://www.goodreads.com/book/show/{book_id}",
        "image_url": "https://s.gr-assets.com/assets/nophoto/book/111x148.png",
        "book_id": str(book_id),
        "ratings_count": str(ratings),
        "work_id": str(book_id + 40_000_000),
        "title": title,
        "title_without_series": title_without_series,
    }
    return record


def _truncated_line_positions(rng: random.Random, n_lines: int, rate: float) -> set[int]:
    """Line numbers to write truncated: ~rate of lines, at least one when n_lines >= 100."""
    positions = {i for i in range(n_lines) if rng.random() < rate} if rate else set()
    if n_lines >= 100 and not positions:
        positions.add(rng.randrange(1, n_lines))
    return positions


def book_lines(n_books: int, n_authors: int, seed: int) -> Iterator[str]:
    """The books file's lines (no trailing newline), deterministic per seed."""
    rng = random.Random(seed)
    truncated = _truncated_line_positions(rng, n_books, 0.0005)
    written: list[dict[str, object]] = []
    next_id = 1_000_000
    for line_no in range(n_books):
        if written and rng.random() < 0.01:
            # Duplicate book id: the same book again with fresher counts.
            record = dict(rng.choice(written))
            record["ratings_count"] = str(int(str(record["ratings_count"])) + rng.randint(1, 50))
        else:
            next_id += rng.randint(1, 40)
            record = _book(rng, next_id, n_authors)
            if len(written) < 5000:  # keep memory flat: duplicates come from early books
                written.append(record)
        line = json.dumps(record, ensure_ascii=False)
        if line_no in truncated:
            line = line[: len(line) // 2]  # the odd truncated line
        yield line


def author_lines(n_authors: int, seed: int) -> Iterator[str]:
    """The authors file's lines, author ids "1".."n_authors", deterministic per seed."""
    rng = random.Random(seed + 1)
    truncated = _truncated_line_positions(rng, n_authors, 0.00001)
    first, last = _FIRST_NAMES, _LAST_NAMES
    for author_id in range(1, n_authors + 1):
        ratings = rng.randint(0, 50_000)
        record = {
            "average_rating": f"{rng.uniform(2.0, 5.0):.2f}",
            "author_id": str(author_id),
            "text_reviews_count": str(ratings // 10),
            "name": f"{rng.choice(first)} {rng.choice(last)}",
            "ratings_count": str(ratings),
        }
        line = json.dumps(record, ensure_ascii=False)
        if author_id - 1 in truncated:
            line = line[: len(line) // 2]
        yield line


def _write_gzip_lines(path: Path, lines: Iterator[str]) -> int:
    """Write lines to a gzip file with mtime 0 (byte-identical per seed); returns the count."""
    count = 0
    with open(path, "wb") as raw, gzip.GzipFile(
        filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0
    ) as out:
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= 10_000:
                out.write(("\n".join(batch) + "\n").encode("utf-8"))
                count += len(batch)
                batch.clear()
        if batch:
            out.write(("\n".join(batch) + "\n").encode("utf-8"))
            count += len(batch)
    return count


def write_sample(out_dir: Path, n_books: int, n_authors: int, seed: int = 42) -> dict[str, Path]:
    """Write both files into out_dir; returns {"books": path, "authors": path}."""
    if n_books < 0 or n_authors < 1:
        raise ValueError(f"need books >= 0 and authors >= 1, got {n_books=} {n_authors=}")
    out_dir.mkdir(parents=True, exist_ok=True)
    books = out_dir / BOOKS_FILE_NAME
    authors = out_dir / AUTHORS_FILE_NAME
    _write_gzip_lines(books, book_lines(n_books, n_authors, seed))
    _write_gzip_lines(authors, author_lines(n_authors, seed))
    return {"books": books, "authors": authors}


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m fine_tuning.sample_data",
        description="Write synthetic Goodreads-shaped (UCSD Book Graph) gzipped JSON lines.",
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--books", type=int, default=GOODREADS_BOOKS,
                        help=f"lines in the books file (default {GOODREADS_BOOKS})")
    parser.add_argument("--authors", type=int, default=GOODREADS_AUTHORS,
                        help=f"authors (default {GOODREADS_AUTHORS})")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        paths = write_sample(args.out, args.books, args.authors, args.seed)
    except (ValueError, OSError) as error:
        parser.error(str(error))
    elapsed = time.perf_counter() - started
    for kind, path in paths.items():
        print(f"{kind}: {path} ({path.stat().st_size:,} bytes)")
    print(f"done in {elapsed:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
