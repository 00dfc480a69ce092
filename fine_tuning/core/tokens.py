"""Token counting for chat examples: exact with a locally cached o200k_base, else a labelled estimate.

Never touches the network: tiktoken would download the encoding when its cache file is missing
and delete-then-download it when the file's hash is wrong, so both cases are decided here first.
Counting follows OpenAI's cookbook "Data preparation and analysis for chat model fine-tuning".

Work is bounded on any text: tiktoken's byte-pair merge of one long run without whitespace costs
seconds and gigabytes (a 30 MB line: 23 s, 1.7 GB), so long texts are encoded in pieces cut
right before a space (where o200k_base's pre-tokenizer always ends a piece, so the count stays
exact), a run with no space to cut at is cut anyway (the count is then approximate), and a text
longer than EXACT_LIMIT_CHARS is not encoded at all but estimated. Approximate counts are
reported as such (`TokenCount.exact`).
"""

import functools
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

O200K_BASE_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
O200K_BASE_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
ESTIMATE_BYTES_PER_TOKEN = 3
# Longer texts are estimated rather than encoded: far over every model's per-example limit
# (65,536 tokens), so the exact number could not change a verdict, only cost time.
EXACT_LIMIT_CHARS = 1_000_000
# Texts are encoded in pieces of at most this many characters (bounded time and memory).
CHUNK_CHARS = 16_384
# Only short texts (system prompt, role names, answers: what every example repeats) are memoised;
# long ones are unique and would pin memory.
MEMO_MAX_CHARS = 2_048


@dataclass(frozen=True)
class TokenCount:
    """A number of tokens and whether it is exact (False: estimated or approximated)."""

    tokens: int
    exact: bool


@dataclass(frozen=True)
class TokenCounter:
    """Counts tokens of a text: exactly with o200k_base, or a labelled estimate without it."""

    exact: bool
    method: str
    _count: Callable[[str], int] = field(repr=False, compare=False)

    def count(self, text: str) -> int:
        """Number of tokens in `text` (bounded work; see `measure` for whether it is exact)."""
        return self.measure(text).tokens

    def measure(self, text: str) -> TokenCount:
        """Tokens of `text` and whether the number is exact, in time and memory linear in its length."""
        if not self.exact or len(text) > EXACT_LIMIT_CHARS:
            return TokenCount(_estimate_tokens(text), False)
        if len(text) <= CHUNK_CHARS:
            return TokenCount(self._count(text), True)
        total, exact = 0, True
        for piece, cut_at_space in text_pieces(text):
            total += self._count(piece)
            exact = exact and cut_at_space
        return TokenCount(total, exact)


def text_pieces(text: str, size: int = CHUNK_CHARS) -> Iterator[tuple[str, bool]]:
    """`text` in pieces of at most `size` characters, each with whether it ends where o200k_base's
    pre-tokenizer ends a piece anyway (right before a space that follows a non-space)."""
    start, end_of_text = 0, len(text)
    while end_of_text - start > size:
        cut = _space_cut(text, start + size // 2, start + size)
        yield text[start:cut or start + size], cut is not None
        start = cut or start + size
    yield text[start:], True


def _space_cut(text: str, low: int, high: int) -> int | None:
    """The last position in (low, high] holding a space that follows a non-space, if any."""
    position = text.rfind(" ", low, high + 1)
    while position > low:
        if not text[position - 1].isspace():
            return position
        position = text.rfind(" ", low, position)
    return None


def _estimate_tokens(text: str) -> int:
    # ~4 bytes per token for English with o200k_base; 3 errs on the high side so that
    # limits and budgets are not passed on an underestimate.
    return math.ceil(len(text.encode("utf-8", "surrogatepass")) / ESTIMATE_BYTES_PER_TOKEN)


ESTIMATED_COUNTER = TokenCounter(
    exact=False,
    method=f"estimate: ceil(UTF-8 bytes / {ESTIMATE_BYTES_PER_TOKEN}) (o200k_base not available)",
    _count=_estimate_tokens,
)


def tiktoken_cache_file() -> Path | None:
    """Where tiktoken would look for o200k_base (same rules as tiktoken.load), or None when caching is off."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        cache_dir = os.environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in os.environ:
        cache_dir = os.environ["DATA_GYM_CACHE_DIR"]
    else:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if not cache_dir:
        return None
    return Path(cache_dir) / hashlib.sha1(O200K_BASE_URL.encode()).hexdigest()


def token_counter() -> TokenCounter:
    """The o200k_base counter when its file is cached and intact, else the labelled estimate (offline)."""
    cache_file = tiktoken_cache_file()
    try:
        stat = cache_file.stat() if cache_file is not None else None
    except OSError:
        stat = None
    if cache_file is None or stat is None:
        return ESTIMATED_COUNTER
    # mtime and size in the cache key: a file replaced on disk is hashed again.
    return _load_o200k(str(cache_file), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _load_o200k(cache_file: str, _mtime_ns: int, _size: int) -> TokenCounter:
    try:
        with open(cache_file, "rb") as handle:
            intact = hashlib.file_digest(handle, "sha256").hexdigest() == O200K_BASE_SHA256
        if not intact:
            return ESTIMATED_COUNTER
        import tiktoken

        encoding = tiktoken.get_encoding("o200k_base")
    except Exception:  # noqa: BLE001 - any failure to load means "estimate", never a crash
        return ESTIMATED_COUNTER
    # encode_ordinary: text such as "<|endoftext|>" in a description is just text here.
    # Every example repeats the system prompt, the role names and a dozen answers: memoised,
    # those are encoded once per file instead of once per example.
    @functools.lru_cache(maxsize=4096)
    def memoised(text: str) -> int:
        return len(encoding.encode_ordinary(text))

    def count(text: str) -> int:
        return memoised(text) if len(text) <= MEMO_MAX_CHARS else len(encoding.encode_ordinary(text))

    return TokenCounter(exact=True, method="exact: tiktoken o200k_base", _count=count)


def count_example_tokens(messages: Sequence[Any], counter: TokenCounter) -> int:
    """Tokens of one chat example, counted as the cookbook does (3 per message, 1 per name, 3 to prime)."""
    return measure_example_tokens(messages, counter).tokens


def measure_example_tokens(messages: Sequence[Any], counter: TokenCounter) -> TokenCount:
    """`count_example_tokens` and whether every text in the example was counted exactly."""
    total, exact = 3, counter.exact
    # Short texts (nearly all of them) skip `measure`: this loop runs for every message of every example.
    short = counter._count if counter.exact else None
    for message in messages:
        total += 3
        if not isinstance(message, Mapping):
            continue
        for key, value in message.items():
            if key == "weight" or value is None:
                continue
            if key == "name":
                total += 1
            if type(value) is not str:
                value = json.dumps(value, ensure_ascii=False)
            if short is not None and len(value) <= CHUNK_CHARS:
                total += short(value)
                continue
            counted = counter.measure(value)
            total += counted.tokens
            exact = exact and counted.exact
    return TokenCount(total, exact)


def token_stats(counts: Sequence[int]) -> dict[str, float | int]:
    """min / mean / p95 / max / total of per-example token counts (zeros for no examples)."""
    if not counts:
        return {"tokens_min": 0, "tokens_mean": 0.0, "tokens_p95": 0, "tokens_max": 0, "total_tokens": 0}
    ordered = sorted(counts)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]  # nearest-rank
    total = sum(ordered)
    return {
        "tokens_min": ordered[0],
        "tokens_mean": round(total / len(ordered), 1),
        "tokens_p95": p95,
        "tokens_max": ordered[-1],
        "total_tokens": total,
    }
