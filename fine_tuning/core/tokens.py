"""Token counting for chat examples: exact with a locally cached o200k_base, else a labelled estimate.

Never touches the network: tiktoken would download the encoding when its cache file is missing
and delete-then-download it when the file's hash is wrong, so both cases are decided here first.
Counting follows OpenAI's cookbook "Data preparation and analysis for chat model fine-tuning".
"""

import functools
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

O200K_BASE_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
O200K_BASE_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
ESTIMATE_BYTES_PER_TOKEN = 3


@dataclass(frozen=True)
class TokenCounter:
    """Counts tokens of a text: exactly with o200k_base, or a labelled estimate without it."""

    exact: bool
    method: str
    _count: Callable[[str], int] = field(repr=False, compare=False)

    def count(self, text: str) -> int:
        """Number of tokens in `text`."""
        return self._count(text)


def _estimate_tokens(text: str) -> int:
    # ~4 bytes per token for English with o200k_base; 3 errs on the high side so that
    # limits and budgets are not passed on an underestimate.
    return math.ceil(len(text.encode("utf-8")) / ESTIMATE_BYTES_PER_TOKEN)


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
    def count(text: str) -> int:
        return len(encoding.encode_ordinary(text))

    return TokenCounter(exact=True, method="exact: tiktoken o200k_base", _count=count)


def count_example_tokens(messages: Sequence[Any], counter: TokenCounter) -> int:
    """Tokens of one chat example, counted as the cookbook does (3 per message, 1 per name, 3 to prime)."""
    total = 3
    for message in messages:
        total += 3
        if not isinstance(message, Mapping):
            continue
        for key, value in message.items():
            if key == "weight":
                continue
            if isinstance(value, str):
                total += counter.count(value)
            elif value is not None:
                total += counter.count(json.dumps(value, ensure_ascii=False))
            if key == "name":
                total += 1
    return total


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
