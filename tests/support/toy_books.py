"""The one toy dataset: a small learnable book-classification task in the pipeline's prompt format.

Each category has cue words that appear in its books' descriptions (the learnable signal). The
cues never name a category, so a zero-shot base model, which can only match category names,
mostly guesses while a fine-tuned one learns them. Used by the backend, fine-tuning and
accuracy tests alike. `many_label_examples` / `many_label_prompts` are the same books over twelve
categories (as many as the Goodreads task has), for learners whose difficulty grows with the labels.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fine_tuning.core.prompts import Prompt, build_messages, training_example, user_message
from fine_tuning.core.scoring import Example

CATEGORIES = ("fantasy", "horror", "romance", "mystery")
CUES = {
    "fantasy": ["dragon", "wizard", "sword", "elf", "quest", "kingdom"],
    "horror": ["ghost", "blood", "scream", "corpse", "haunted", "night"],
    "romance": ["kiss", "love", "wedding", "heart", "date", "letters"],
    "mystery": ["detective", "clue", "murder", "alibi", "suspect", "case"],
}
_FILLER = "the a of city young old story life world friends time family journey secret".split()

Book = tuple[str, str, str, str]  # (title, author, description, category)
PROMPT = Prompt(CATEGORIES)  # the Goodreads prompt over the toy categories


@dataclass(frozen=True)
class HeldOutBook:
    """A toy book as the Goodreads tables hold it, and as the evaluation asks about it (`example`)."""

    book_id: str
    title: str
    author: str
    description: str
    category: str

    def example(self) -> Example:
        """The held-out example: its id, its rendered user message and its label."""
        return Example(self.book_id, user_message(self.title, self.author, self.description)["content"], self.category)


def examples(books: list[HeldOutBook]) -> list[Example]:
    """The evaluation's examples of the books."""
    return [book.example() for book in books]


def signal(category: str) -> str:
    """Every cue word of a category: a description that carries nothing but the signal."""
    return " ".join(CUES[category])


def signal_book(index: int) -> Book:
    """Book `index`: the categories in turn, its description only its category's cue words."""
    category = CATEGORIES[index % len(CATEGORIES)]
    return f"Book {index}", f"Author {index % 7}", f"{signal(category)} volume {index}", category


def toy_book(rng: random.Random, index: int) -> Book:
    """A random book: three of its category's cue words shuffled among filler words."""
    category = rng.choice(CATEGORIES)
    words = [rng.choice(_FILLER) for _ in range(14)] + rng.sample(CUES[category], 3)
    rng.shuffle(words)
    return f"Book {index}", f"Author {index % 7}", " ".join(words), category


BookMaker = Callable[[random.Random, int], Book]


def _examples(make: BookMaker, categories: tuple[str, ...], n: int, seed: int, start: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [training_example(*make(rng, start + i), categories) for i in range(n)]


def _prompts(make: BookMaker, categories: tuple[str, ...], n: int, seed: int) -> list[tuple[list[dict[str, str]], str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        title, author, description, category = make(rng, 10_000 + i)
        out.append((build_messages(title, author, description, categories), category))
    return out


def toy_examples(n: int, seed: int = 0, start: int = 0) -> list[dict[str, Any]]:
    """n chat-format training examples of random toy books."""
    return _examples(toy_book, CATEGORIES, n, seed, start)


def toy_prompts(n: int, seed: int) -> list[tuple[list[dict[str, str]], str]]:
    """n held-out (prompt messages, expected category) pairs."""
    return _prompts(toy_book, CATEGORIES, n, seed)


# Twelve made-up categories, each with six made-up cue words: a task as wide as Goodreads' 12 labels.
MANY_CATEGORIES = tuple(f"genre{index}" for index in range(12))
MANY_CUES = {category: [f"cue{index}x{word}" for word in range(6)] for index, category in enumerate(MANY_CATEGORIES)}


def many_label_book(rng: random.Random, index: int) -> Book:
    """A random book of the twelve categories: four of its cue words shuffled among eight filler words."""
    category = rng.choice(MANY_CATEGORIES)
    words = [rng.choice(_FILLER) for _ in range(8)] + rng.sample(MANY_CUES[category], 4)
    rng.shuffle(words)
    return f"Book {index}", f"Author {index % 7}", " ".join(words), category


def many_label_examples(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """n chat-format training examples over the twelve categories."""
    return _examples(many_label_book, MANY_CATEGORIES, n, seed)


def many_label_prompts(n: int, seed: int) -> list[tuple[list[dict[str, str]], str]]:
    """n held-out (prompt messages, expected category) pairs over the twelve categories."""
    return _prompts(many_label_book, MANY_CATEGORIES, n, seed)
