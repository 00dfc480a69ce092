"""A tiny learnable book-classification task shared by the chain and evaluation tests."""

CATEGORIES = ["fantasy", "horror", "romance", "mystery"]
# Signal words that never name a category: the zero-shot base model cannot use them.
SIGNALS = {
    "fantasy": "dragons wizards enchanted swords quest",
    "horror": "ghouls screaming crypt blood night",
    "romance": "kiss wedding sweetheart letters",
    "mystery": "detective clue murder alibi",
}
