"""Replies as tokens: for max_tokens, logprobs, logit_bias and streamed chunks.

With o200k_base available (the verified ranks of fine_tuning.core.tokens, the same condition under
which the pipeline counts exactly) these are the real tokens and ids; without it a reply is cut
into pieces of at most 3 UTF-8 bytes, matching the labelled estimate's count, and there are no
token ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fine_tuning.core.tokens import ESTIMATE_BYTES_PER_TOKEN, o200k_encoding


@dataclass(frozen=True)
class Token:
    """One token of a reply: its bytes, its text and (with the tokenizer file) its id."""

    data: bytes
    id: int | None = None

    @property
    def text(self) -> str:
        """The token as text (a token that splits a character shows the replacement character)."""
        return self.data.decode("utf-8", "replace")


def exact() -> bool:
    """Whether real o200k_base tokens are available."""
    return o200k_encoding() is not None


def _encoding() -> Any:
    encoding = o200k_encoding()
    if encoding is None:
        raise RuntimeError("o200k_base is not available; check exact() first")
    return encoding


def tokenize(text: str) -> list[Token]:
    """The tokens of `text`, in order; their bytes join to the text's UTF-8."""
    if exact():
        encoding = _encoding()
        return [Token(encoding.decode_single_token_bytes(i), i) for i in encoding.encode_ordinary(text)]
    return [Token(piece.encode()) for piece in _pieces(text)]


def _pieces(text: str) -> list[str]:
    """Runs of whole characters of at most ESTIMATE_BYTES_PER_TOKEN bytes (a longer character alone)."""
    pieces: list[str] = []
    current, size = "", 0
    for char in text:
        width = len(char.encode())
        if current and size + width > ESTIMATE_BYTES_PER_TOKEN:
            pieces.append(current)
            current, size = "", 0
        current += char
        size += width
    if current:
        pieces.append(current)
    return pieces


def join(tokens: list[Token]) -> str:
    """The text of a run of tokens (a character cut in half at the end is dropped)."""
    return b"".join(token.data for token in tokens).decode("utf-8", "ignore")


def token_ids(text: str) -> list[int]:
    """The o200k_base ids of `text`; only call when `exact()`."""
    return list(_encoding().encode_ordinary(text))
