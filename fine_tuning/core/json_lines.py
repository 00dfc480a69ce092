"""Integrity of a JSON-lines input file (plain or gzip), and why its lines cannot be used. No Dagster.

DuckDB reads the Goodreads files, but it reads a corrupt gzip stream (bad CRC, damaged block) as
far as it goes without a word, and would read a UTF-8 byte-order mark as part of the first record
(dropping it as malformed). So a gzip file (or one with a byte-order mark) reaches DuckDB through
`copy_verified`, which decompresses it once, checks it as it goes and drops the mark. When no line is usable, `line_problems`
says why, line by line, instead of a bare "no book_id".
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO

UTF8_BOM = b"\xef\xbb\xbf"
GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


class InputFileError(Exception):
    """The file is damaged (truncated, corrupt gzip) and must not be loaded."""


def is_gzip(path: Path) -> bool:
    """True when the file starts with the gzip magic bytes (the name does not matter)."""
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def _open(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")  # type: ignore[return-value]


def copy_counting(source: IO[bytes], target: IO[bytes]) -> int:
    """Copy everything from `source` to `target`; returns the number of bytes copied."""
    copied = 0
    while chunk := source.read(_CHUNK):
        target.write(chunk)
        copied += len(chunk)
    return copied


def check_length(received: int, declared: str | None) -> None:
    """InputFileError when the server promised a different number of bytes (Content-Length)."""
    if declared is not None and declared.strip().isdigit() and received != int(declared):
        raise InputFileError(
            f"download incomplete: received {received} bytes, the server announced {int(declared)} (Content-Length)"
        )


def starts_with_bom(path: Path) -> bool:
    """True when the (decompressed) content starts with a UTF-8 byte-order mark."""
    try:
        with _open(path) as handle:
            return handle.read(len(UTF8_BOM)) == UTF8_BOM
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise InputFileError(f"{path.name} is a damaged gzip file (truncated or corrupt: {error})") from error


def copy_verified(path: Path, target: BinaryIO) -> int:
    """Write the decompressed content of `path` to `target` without a leading byte-order mark,
    checking the gzip stream as it goes (CRC and length at its end); returns the bytes written.

    InputFileError when the gzip stream is truncated or corrupt: the reader must then discard what
    it read. BrokenPipeError when the reader stopped reading (it failed on its own).
    """
    written = 0
    try:
        with _open(path) as source:
            head = source.read(len(UTF8_BOM))
            if head != UTF8_BOM:
                target.write(head)
                written += len(head)
            while chunk := source.read(_CHUNK):
                target.write(chunk)
                written += len(chunk)
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise InputFileError(f"{path.name} is a damaged gzip file (truncated or corrupt: {error})") from error
    return written


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with _open(path) as handle:
        yield from enumerate(handle, start=1)


def line_problem(raw: bytes, key: str) -> str | None:
    """Why one line is not a usable record with a non-blank `key` (None: Python sees no problem)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"not valid UTF-8 (byte {error.start})"
    if not text.strip():
        return None  # blank lines are not records
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return "not a complete JSON value (truncated or malformed)"
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return "holds a lone surrogate escape (\\ud800-\\udfff without its pair): invalid Unicode"
    if not isinstance(value, dict):
        return f"a JSON {type(value).__name__}, not an object"
    if not str(value.get(key) or "").strip():
        return f"no {key}"
    return None


def line_problems(path: Path, key: str, limit: int = 3, max_lines: int = 100_000) -> list[str]:
    """'line N: why' for the first `limit` unusable lines among the first `max_lines` (bounded work)."""
    found = []
    for number, raw in _lines(path):
        if number > max_lines or len(found) >= limit:
            break
        problem = line_problem(raw, key)
        if problem:
            found.append(f"line {number}: {problem}")
    return found
